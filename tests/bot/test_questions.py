"""bot.inbound.questions: what a follow-up question says, and the card that answers it (pure parts)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.cards import card_json
from bot.inbound.events import IncomingMessage, Mention
from bot.inbound.questions import MAX_ANSWER_CHARS, FollowUps, answer_card, question_text
from bot.outbox import InlineOutbox
from pipeline.jobs import JobStore
from pipeline.models import AnalysisOptions, JobSpec, VideoSource
from tests.support.insight_support import insight_settings


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


def test_which_replies_are_questions_about_a_job(tmp_path: Path) -> None:
    settings = insight_settings(tmp_path, "http://127.0.0.1:9/v1")
    with JobStore(tmp_path / "jobs.sqlite3") as store:
        spec = JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),), options=AnalysisOptions())
        job, _ = store.create(spec, idempotency_key="om_start")
        store.set_card_message(job.id, "om_card")
        follow_ups = FollowUps(settings=settings, store=store, replier=_NoReplies(), workers=InlineOutbox())

        def asked(text: str, **ids: str) -> str | None:
            found = follow_ups.job_for(dataclasses.replace(message("text", {"text": text}), **ids))
            return found.id if found else None

        assert asked("price?", parent_id="om_card", root_id="om_start") == job.id
        assert asked("price?", parent_id="om_other", root_id="om_start") == job.id  # in the thread it started
        assert asked("price?", parent_id="om_x", root_id="om_y") is None
        assert asked("price?", parent_id="", root_id="") is None
        # A bare @-mention asks nothing: in a group it asks to analyse the message it replies to.
        assert asked("@_user_1", parent_id="om_card", root_id="om_start") is None
        off = FollowUps(settings=insight_settings(tmp_path, "", llm_model=""), store=store, replier=_NoReplies(),
                        workers=InlineOutbox())  # fmt: skip
        assert off.job_for(message("text", {"text": "price?"})) is None


class _NoReplies:
    def reply_card(self, message_id: str, card: Mapping[str, Any], *, uuid: str | None = None) -> str:
        raise AssertionError("job_for sends nothing")
