"""Users' chat messages in the fake Feishu, readable with the get-message API.

    chat = ChatMessages(fake)                        # adds GET /open-apis/im/v1/messages/:message_id
    video_id = chat.add("media", {"file_key": ..., "file_name": "talk.mp4"}, chat_id=GROUP)
    chat.recall(video_id)                            # answered with "deleted": true, as Feishu does
    chat.hide(other_id)                              # the bot is not in that chat: 230002

The answer follows the API (``data.items[0]`` with ``message_id``, ``msg_type``, ``body.content`` (the JSON
string), ``chat_id``, ``sender``, ``deleted``). A message the fake does not hold is answered 400 with
230001 (invalid message id).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.support.feishu import FakeFeishu, FeishuApiError, RecordedRequest, _Reply

GET_MESSAGE_PATH = r"^/open-apis/im/v1/messages/([^/]+)$"


@dataclass
class ChatMessage:
    message_id: str
    msg_type: str
    content: str
    chat_id: str
    sender_open_id: str
    create_time_ms: int
    deleted: bool = False
    visible: bool = True


class ChatMessages:
    def __init__(self, fake: FakeFeishu) -> None:
        self.fake = fake
        self.messages: dict[str, ChatMessage] = {}
        self._lock = threading.Lock()
        fake.add_route("GET", GET_MESSAGE_PATH, self._get, needs_auth=True)

    def add(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        chat_id: str = "oc_group",
        sender_open_id: str = "ou_sender",
        message_id: str | None = None,
    ) -> str:
        message_id = message_id or "om_" + secrets.token_hex(16)
        with self._lock:
            self.messages[message_id] = ChatMessage(
                message_id,
                msg_type,
                json.dumps(content, ensure_ascii=False),
                chat_id,
                sender_open_id,
                int(time.time() * 1000),
            )
        return message_id

    def recall(self, message_id: str) -> None:
        with self._lock:
            self.messages[message_id].deleted = True

    def hide(self, message_id: str) -> None:
        with self._lock:
            self.messages[message_id].visible = False

    def _get(self, rec: RecordedRequest, message_id: str) -> _Reply:
        with self._lock:
            message = self.messages.get(message_id)
        if message is None:
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=invalid message_id"
            )
        if not message.visible:
            raise FeishuApiError(400, 230002, "Bot/User can NOT be out of the chat.")
        # A recalled message's body is gone; Feishu answers a placeholder text.
        recalled = json.dumps({"text": "This message was recalled"})
        item = {
            "message_id": message.message_id,
            "msg_type": message.msg_type,
            "create_time": str(message.create_time_ms),
            "update_time": str(message.create_time_ms),
            "deleted": message.deleted,
            "updated": False,
            "chat_id": message.chat_id,
            "sender": {
                "id": message.sender_open_id,
                "id_type": "open_id",
                "sender_type": "user",
                "tenant_key": self.fake.tenant_key,
            },
            "body": {"content": recalled if message.deleted else message.content},
        }
        return self.fake._ok({"items": [item]})
