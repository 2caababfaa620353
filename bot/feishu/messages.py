"""Sending, replying to and updating messages (cards and text), and images for cards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.feishu.errors import NotFound
from bot.feishu.transport import Transport


def card_json(card: Mapping[str, Any]) -> str:
    """A card as the ``content`` string the message APIs take."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class FetchedMessage:
    """A chat message read back with the get-message API (a parent a user replied to)."""

    message_id: str
    message_type: str
    content: str  # the raw JSON string, as in a receive event
    chat_id: str = ""
    sender_type: str = ""
    deleted: bool = False  # recalled


class Messages(Transport):
    def send_card(
        self, receive_id: str, card: Mapping[str, Any], *, receive_id_type: str = "chat_id", uuid: str | None = None
    ) -> str:
        """Send an interactive card; returns the new message_id."""
        return self._create_message(receive_id, receive_id_type, "interactive", card_json(card), uuid)

    def send_text(
        self, receive_id: str, text: str, *, receive_id_type: str = "chat_id", uuid: str | None = None
    ) -> str:
        return self._create_message(
            receive_id, receive_id_type, "text", json.dumps({"text": text}, ensure_ascii=False), uuid
        )

    def reply_card(
        self, message_id: str, card: Mapping[str, Any], *, uuid: str | None = None, reply_in_thread: bool = False
    ) -> str:
        """Reply to a message with an interactive card; returns the new message_id."""
        return self._reply(message_id, "interactive", card_json(card), uuid, reply_in_thread)

    def reply_text(self, message_id: str, text: str, *, uuid: str | None = None, reply_in_thread: bool = False) -> str:
        return self._reply(message_id, "text", json.dumps({"text": text}, ensure_ascii=False), uuid, reply_in_thread)

    def update_card(self, message_id: str, card: Mapping[str, Any]) -> None:
        """Replace a sent card (PATCH). The card must be shared: ``config.update_multi: true``."""
        from lark_oapi.api.im.v1 import PatchMessageRequest, PatchMessageRequestBody

        content = card_json(card)

        def call() -> Any:
            body = PatchMessageRequestBody.builder().content(content).build()
            request = PatchMessageRequest.builder().message_id(message_id).request_body(body).build()
            return self._sdk.im.v1.message.patch(request)

        self._run("im.message.patch", call)

    def get_message(self, message_id: str) -> FetchedMessage:
        """One message by id (``GET /open-apis/im/v1/messages/:message_id``); the bot must be in its chat."""
        from lark_oapi.api.im.v1 import GetMessageRequest

        def call() -> Any:
            return self._sdk.im.v1.message.get(GetMessageRequest.builder().message_id(message_id).build())

        items = self._run("im.message.get", call).data.items or []
        if not items:
            raise NotFound(-1, "no such message", operation="im.message.get")
        item = items[0]
        return FetchedMessage(
            message_id=item.message_id or message_id,
            message_type=item.msg_type or "",
            content=(item.body.content if item.body is not None else "") or "",
            chat_id=item.chat_id or "",
            sender_type=(item.sender.sender_type if item.sender is not None else "") or "",
            deleted=bool(item.deleted),
        )

    def _create_message(
        self, receive_id: str, receive_id_type: str, msg_type: str, content: str, key: str | None
    ) -> str:
        from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

        # Without a caller's key, one per logical send still makes our own retries land once.
        key = key or str(uuid.uuid4())

        def call() -> Any:
            body = (
                CreateMessageRequestBody.builder()
                .receive_id(receive_id)
                .msg_type(msg_type)
                .content(content)
                .uuid(key)
                .build()
            )
            request = CreateMessageRequest.builder().receive_id_type(receive_id_type).request_body(body).build()
            return self._sdk.im.v1.message.create(request)

        return str(self._run("im.message.create", call).data.message_id)

    def _reply(self, message_id: str, msg_type: str, content: str, key: str | None, in_thread: bool) -> str:
        from lark_oapi.api.im.v1 import ReplyMessageRequest, ReplyMessageRequestBody

        key = key or str(uuid.uuid4())

        def call() -> Any:
            builder = ReplyMessageRequestBody.builder().msg_type(msg_type).content(content).uuid(key)
            if in_thread:
                builder = builder.reply_in_thread(True)
            request = ReplyMessageRequest.builder().message_id(message_id).request_body(builder.build()).build()
            return self._sdk.im.v1.message.reply(request)

        return str(self._run("im.message.reply", call).data.message_id)

    def upload_image(self, path: Path, *, image_type: str = "message") -> str:
        """Upload an image for use in cards and messages; returns the image_key."""
        from lark_oapi.api.im.v1 import CreateImageRequest, CreateImageRequestBody

        def call() -> Any:
            with path.open("rb") as fh:
                body = CreateImageRequestBody.builder().image_type(image_type).image(fh).build()
                return self._sdk.im.v1.image.create(CreateImageRequest.builder().request_body(body).build())

        return str(self._run("im.image.create", call).data.image_key)
