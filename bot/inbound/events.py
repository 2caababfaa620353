"""What the webhook hands to the rest of the bot: typed, SDK-free views of the two inbound kinds.

The webhook turns the SDK's loosely typed models into these once, at the edge; everything behind it
(commands, intake, card actions) works with plain frozen dataclasses it can build in a test by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.models import UserText


@dataclass(frozen=True)
class Mention:
    """An @mention inside a message: ``key`` is the placeholder in the text (``@_user_1``)."""

    key: str
    name: str = ""
    open_id: str = ""


@dataclass(frozen=True)
class IncomingMessage:
    """One ``im.message.receive_v1`` event. ``content`` is the raw JSON string Feishu sends; its
    shape depends on ``message_type`` (text, post, media, file, ...)."""

    event_id: str
    message_id: str
    chat_id: str
    chat_type: str  # "p2p" | "group"
    message_type: str
    content: str
    sender_open_id: str
    sender_type: str  # "user" for people; "app" for bots, including this one
    mentions: tuple[Mention, ...] = ()
    tenant_key: str = ""
    parent_id: str = ""  # the message this one replies to (quotes), if any

    @property
    def from_person(self) -> bool:
        return self.sender_type == "user"


@dataclass(frozen=True)
class CardAction:
    """One ``card.action.trigger`` callback: who clicked what on which card."""

    event_id: str
    operator_open_id: str
    value: Mapping[str, Any] = field(default_factory=dict)
    form_value: Mapping[str, Any] = field(default_factory=dict)
    tag: str = ""
    name: str = ""
    open_message_id: str = ""
    open_chat_id: str = ""

    @property
    def action(self) -> str:
        """The ``action`` key our cards put in every callback value ("" when absent)."""
        name = self.value.get("action")
        return name if isinstance(name, str) else ""


TOAST_TYPES = ("info", "success", "error", "warning")


@dataclass(frozen=True)
class CardActionReply:
    """The synchronous answer to a card callback: a toast, and optionally a card that replaces the
    clicked one (Feishu wants this within 3 s)."""

    toast: UserText
    toast_type: str = "info"
    card: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.toast_type not in TOAST_TYPES:
            raise ValueError(f"toast_type must be one of {TOAST_TYPES}")

    def to_feishu(self) -> dict[str, Any]:
        """The JSON Feishu expects (the same shape the SDK marshals from P2CardActionTriggerResponse)."""
        body: dict[str, Any] = {
            "toast": {
                "type": self.toast_type,
                "content": self.toast.zh,
                "i18n": {"zh_cn": self.toast.zh, "en_us": self.toast.en},
            }
        }
        if self.card is not None:
            body["card"] = {"type": "raw", "data": dict(self.card)}
        return body
