"""bot.inbound.questions: what a follow-up question says, and the card that answers it (pure parts)."""

from __future__ import annotations

import json
from typing import Any

from bot.cards import card_json
from bot.inbound.events import IncomingMessage, Mention
from bot.inbound.questions import MAX_ANSWER_CHARS, answer_card, question_text


def message(message_type: str, content: Any, *, mentions: tuple[Mention, ...] = ()) -> IncomingMessage:
    return IncomingMessage(
        event_id="ev",
        message_id="om_q",
        chat_id="oc_1",
        chat_type="group",
        message_type=message_type,
        content=json.dumps(content, ensure_ascii=False),
        sender_open_id="ou_1",
        sender_type="user",
        mentions=mentions,
        parent_id="om_card",
        root_id="om_start",
    )


def test_the_question_is_the_text_without_mentions() -> None:
    said = message("text", {"text": "@_user_1  提到 价格 了吗？ "}, mentions=(Mention("@_user_1", "Bot"),))
    assert question_text(said) == "提到 价格 了吗？"


def test_a_rich_text_question_is_read_in_order() -> None:
    post = {
        "zh_cn": {"title": "", "content": [[{"tag": "text", "text": "What about "}, {"tag": "a", "text": "budget"}]]}
    }
    assert question_text(message("post", post)) == "What about budget"


def test_other_messages_ask_nothing() -> None:
    assert question_text(message("image", {"image_key": "img"})) == ""
    broken = IncomingMessage("e", "m", "c", "p2p", "text", "{not json", "ou", "user")
    assert question_text(broken) == ""


def test_the_answer_card_quotes_the_question_as_plain_text_and_stays_small() -> None:
    card = answer_card("<at id=all></at> price?", "x" * (MAX_ANSWER_CHARS * 3), answered=True)
    plain_texts = [e["text"]["content"] for e in card["body"]["elements"] if e["tag"] == "div"]
    assert plain_texts[0] == "<at id=all></at> price?"  # plain_text: shown, never a mention
    assert len(plain_texts[1]) == MAX_ANSWER_CHARS
    assert len(card_json(card).encode()) < 30 * 1024
