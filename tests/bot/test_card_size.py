"""Feishu's 30 KB card limit counts the request body, where the card is an escaped JSON string: a card
full of quote characters fits as JSON yet is refused, unless the cards measure what Feishu measures."""

from __future__ import annotations

from bot import cards
from bot.cards.primitives import request_bytes
from bot.feishu import FeishuClient, TooLarge, card_json
from pipeline.models import UserText
from tests.support.feishu import CARD_LIMIT_BYTES, FakeFeishu

QUOTES = '"' * 130  # what a user may paste: each quote is 2 bytes in the card JSON, 4 in the request body
REJECTED = [UserText(zh=f"不支持的链接 {i}: {QUOTES}", en=f"not a link {i}: {QUOTES}") for i in range(40)]


def quoted_card(n_quotes: int) -> dict[str, object]:
    return {"config": {"update_multi": True}, "elements": [{"tag": "markdown", "content": '"' * n_quotes}]}


def test_the_fake_counts_the_escaped_body_not_the_card(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    card = quoted_card(10_000)  # 20 KB as card JSON, 40 KB once escaped into the request body
    assert len(card_json(card).encode()) < CARD_LIMIT_BYTES < request_bytes(card)

    try:
        feishu_client.reply_card("om_user1", card)
    except TooLarge as exc:
        assert exc.code == 230025
    else:
        raise AssertionError("a 40 KB request body was accepted")
    feishu_client.reply_card("om_user1", quoted_card(6_000))  # 24 KB once escaped: fits


def test_a_card_full_of_quotes_is_fitted_to_the_escaped_size(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    everything = sum(len(r.zh.encode()) + len(r.en.encode()) for r in REJECTED) * 2  # quotes escaped once
    assert everything < CARD_LIMIT_BYTES - 4096  # as card JSON the full list would fit ...
    assert everything * 2 > CARD_LIMIT_BYTES  # ... escaped once more, in the request body, it would not
    card = cards.nothing_card(UserText(zh="没有可用的链接", en="No usable link"), REJECTED)

    assert request_bytes(card) <= CARD_LIMIT_BYTES  # ... but escaped it would not: some are left out
    text = card_json(card)
    assert "不支持的链接 0" in text and "不支持的链接 39" not in text and "另有" in text and "more" in text
    message_id = feishu_client.reply_card("om_user1", card)
    assert fake_feishu.message(message_id).msg_type == "interactive"
