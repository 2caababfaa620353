"""Card JSON 2.0 builders. Pure functions of plain data; Chinese first, English second everywhere.

Anything a user wrote (links, file names, task names) goes into ``plain_text`` elements, never into
``markdown``, so it cannot inject mentions or links. Every card stays under Feishu's 30 KB limit: long
lists are cut with an "and N more" line, and ``fit`` shrinks them further if a card is still too big.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from bot.feishu.messages import card_json
from pipeline.models import UserText
from pipeline.names import clean_name

Card = dict[str, Any]

CARD_LIMIT_BYTES = 30 * 1024
# Feishu counts the limit on the request body, where the card travels as an escaped JSON string beside
# the receive id, msg_type and uuid: leave room for those.
_CARD_BUDGET_BYTES = CARD_LIMIT_BYTES - 1024
MAX_LINE_CHARS = 200
# A single message (a reason, a problem) may quote what the user sent: long, but not unbounded.
MAX_MESSAGE_CHARS = 1000
SHOWN_VIDEOS = 10
# Rejected inputs are all named when they fit (a user should learn which of 50 links were not taken).
SHOWN_REJECTED = 40


def make_card(title: UserText, template: str, elements: list[dict[str, Any]]) -> Card:
    return {
        "schema": "2.0",
        # update_multi: the card is shared by everyone in the chat and can be PATCHed in place later.
        "config": {"update_multi": True, "width_mode": "fill"},
        "header": {
            "title": {"tag": "plain_text", "content": title.zh},
            "subtitle": {"tag": "plain_text", "content": title.en},
            "template": template,
        },
        "body": {"elements": elements},
    }


def markdown(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content}


def plain(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": content}}


def hr() -> dict[str, Any]:
    return {"tag": "hr"}


def button(label: UserText, value: dict[str, Any], *, kind: str = "default", confirm: UserText | None = None) -> Any:
    button: dict[str, Any] = {
        "tag": "button",
        "text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "type": kind,
        "behaviors": [{"type": "callback", "value": value}],
    }
    if confirm is not None:
        button["confirm"] = {
            "title": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
            "text": {"tag": "plain_text", "content": f"{confirm.zh}\n{confirm.en}"},
        }
    return button


def clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    return clean_name(text, limit)


def bulleted(lines: Sequence[str], shown: int, more: Callable[[int], str]) -> str:
    out = [f"• {clip(line)}" for line in lines[:shown]]
    if len(lines) > shown:
        out.append(more(len(lines) - shown))
    return "\n".join(out)


def rejected_block(rejected: Sequence[UserText], shown: int) -> list[dict[str, Any]]:
    if not rejected:
        return []
    return [
        markdown("**未处理的输入 / Not used**"),
        plain(bulleted([r.zh for r in rejected], shown, lambda n: f"……另有 {n} 项")),
        plain(bulleted([r.en for r in rejected], shown, lambda n: f"… and {n} more")),
    ]


def request_bytes(card: Card) -> int:
    """The card's size as Feishu measures it: the ``content`` string it becomes, escaped inside the JSON
    request body (a quote or backslash costs two bytes there, a newline two, a CJK character three)."""
    return len(json.dumps(card_json(card), ensure_ascii=False).encode())


def fit(build: Callable[[int], Card], start: int) -> Card:
    """Build with ``start`` list items shown; halve until the JSON fits the card budget."""
    shown = start
    while True:
        card = build(shown)
        if shown <= 1 or request_bytes(card) <= _CARD_BUDGET_BYTES:
            return card
        shown //= 2


__all__ = ["Card", "card_json", "fit"]
