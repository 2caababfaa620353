"""The fake Feishu's im/v1: messages, replies, card updates, message resources, images.

Mixed into ``FakeFeishu``, whose state and helpers it uses."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import deque
from typing import Any

from tests.support.feishu.records import (
    CARD_LIMIT_BYTES,
    IMAGE_LIMIT_BYTES,
    INVALID_PARAM,
    MESSAGE_EDIT_WINDOW_MS,
    MSG_TYPES,
    RECEIVE_ID_PREFIXES,
    RESOURCE_LIMIT_BYTES,
    TEXT_LIMIT_BYTES,
    FakeMedia,
    FakeMessage,
    FeishuApiError,
    RecordedRequest,
    _now_ms,
    _Reply,
)


class MessagesApi:
    # Set by FakeFeishu.
    _lock: Any

    def _body(self, rec: RecordedRequest) -> dict[str, Any]:
        if not isinstance(rec.json, dict):
            raise FeishuApiError(400, 9499, "Bad Request: the body is not a JSON object")
        return rec.json

    @staticmethod
    def _check_body_size(rec: RecordedRequest, msg_type: str) -> None:
        """Feishu's card limit counts the request body, where the card is a JSON string inside JSON: every
        quote and backslash in the card takes two bytes there."""
        if msg_type != "text" and len(rec.body) > CARD_LIMIT_BYTES:
            raise FeishuApiError(400, 230025, "The length of the message content reaches its limit.")

    def _check_content(self, msg_type: str, content: Any) -> str:
        if msg_type not in MSG_TYPES:
            raise FeishuApiError(
                400, 230001, f"Your request contains an invalid request parameter, ext=invalid msg_type {msg_type}."
            )
        if not isinstance(content, str):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=content must be a JSON string."
            )
        try:
            parsed = json.loads(content)
        except json.JSONDecodeError:
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=content is not valid JSON."
            ) from None
        if not isinstance(parsed, dict):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=content must be a JSON object."
            )
        if msg_type == "text" and not isinstance(parsed.get("text"), str):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=text content needs a text key."
            )
        if msg_type == "text" and len(content.encode("utf-8")) > TEXT_LIMIT_BYTES:
            raise FeishuApiError(400, 230025, "The length of the message content reaches its limit.")
        return content

    def _message_data(self, msg: FakeMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": msg.message_id,
            "msg_type": msg.msg_type,
            "create_time": str(msg.create_time_ms),
            "update_time": str(msg.create_time_ms),
            "deleted": False,
            "updated": False,
            "chat_id": msg.chat_id,
            "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": self.tenant_key},
            "body": {"content": msg.content},
        }
        if msg.parent_id:
            data["root_id"] = msg.parent_id
            data["parent_id"] = msg.parent_id
            data["upper_message_id"] = msg.parent_id
        return data

    def _dedupe_uuid(self, value: Any) -> FakeMessage | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 50:
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=uuid longer than 50."
            )
        message_id = self._message_uuids.get(value)
        return self.messages[message_id] if message_id else None

    def _store_message(self, msg: FakeMessage) -> _Reply:
        msg.history.append(msg.content)
        self.messages[msg.message_id] = msg
        if msg.uuid:
            self._message_uuids[msg.uuid] = msg.message_id
        return self._ok(self._message_data(msg))

    def _create_message(self, rec: RecordedRequest) -> _Reply:
        id_type = rec.query.get("receive_id_type", "")
        if id_type not in ("open_id", "user_id", "union_id", "email", "chat_id"):
            raise FeishuApiError(400, 99992402, "field validation failed: receive_id_type")
        body = self._body(rec)
        receive_id = body.get("receive_id")
        prefix = RECEIVE_ID_PREFIXES.get(id_type, "")
        if (
            not isinstance(receive_id, str)
            or not receive_id.startswith(prefix)
            or (id_type == "email" and "@" not in receive_id)
        ):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=invalid receive_id."
            )
        msg_type = str(body.get("msg_type", ""))
        content = self._check_content(msg_type, body.get("content"))
        self._check_body_size(rec, msg_type)
        existing = self._dedupe_uuid(body.get("uuid"))
        if existing is not None:
            return self._ok(self._message_data(existing))
        chat_id = receive_id if id_type == "chat_id" else "oc_" + hashlib.md5(receive_id.encode()).hexdigest()  # noqa: S324
        return self._store_message(
            FakeMessage(
                message_id="om_" + secrets.token_hex(16),
                msg_type=msg_type,
                content=content,
                chat_id=chat_id,
                receive_id=receive_id,
                receive_id_type=id_type,
                uuid=body.get("uuid") or None,
                create_time_ms=_now_ms(),
            )
        )

    def _reply_message(self, rec: RecordedRequest, message_id: str) -> _Reply:
        if not message_id.startswith("om_"):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=invalid message_id."
            )
        if message_id in self._recalled:
            raise FeishuApiError(400, 230011, "The message is recalled.")
        body = self._body(rec)
        msg_type = str(body.get("msg_type", ""))
        content = self._check_content(msg_type, body.get("content"))
        self._check_body_size(rec, msg_type)
        existing = self._dedupe_uuid(body.get("uuid"))
        if existing is not None:
            return self._ok(self._message_data(existing))
        parent = self.messages.get(message_id)
        chat_id = parent.chat_id if parent else "oc_" + hashlib.md5(message_id.encode()).hexdigest()  # noqa: S324
        return self._store_message(
            FakeMessage(
                message_id="om_" + secrets.token_hex(16),
                msg_type=msg_type,
                content=content,
                chat_id=chat_id,
                parent_id=message_id,
                uuid=body.get("uuid") or None,
                reply_in_thread=bool(body.get("reply_in_thread")),
                create_time_ms=_now_ms(),
            )
        )

    @staticmethod
    def _is_shared_card(card: Any) -> bool:
        if not isinstance(card, dict):
            return False
        config = card.get("config")
        update_multi = config.get("update_multi") if isinstance(config, dict) else None
        # Card JSON 2.0 only has shared cards: update_multi defaults to (and must be) true.
        if card.get("schema") == "2.0":
            return update_multi is None or update_multi is True
        return update_multi is True

    def _patch_message(self, rec: RecordedRequest, message_id: str) -> _Reply:
        msg = self.messages.get(message_id)
        if msg is None:
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=invalid message_id."
            )
        if msg.recalled or message_id in self._recalled:
            raise FeishuApiError(400, 230011, "The message is recalled.")
        if msg.deleted:
            raise FeishuApiError(400, 230110, "Action unavailable as the message has been deleted.")
        if _now_ms() - msg.create_time_ms > MESSAGE_EDIT_WINDOW_MS:
            raise FeishuApiError(400, 230031, "Message can only be modified within 14 days after sending.")
        if msg.msg_type != "interactive":
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=only cards can be updated."
            )
        content = self._body(rec).get("content")
        if not isinstance(content, str):
            raise FeishuApiError(
                400, 230001, "Your request contains an invalid request parameter, ext=content is required."
            )
        try:
            json.loads(content)
        except json.JSONDecodeError:
            raise FeishuApiError(
                400, 230099, "Failed to create card content, ext=ErrCode: 200621; ErrMsg: parse card json err"
            ) from None
        self._check_body_size(rec, "interactive")
        # The card on screen must be shared; a patch without update_multi unshares it (the next fails).
        if not self._is_shared_card(msg.body):
            raise FeishuApiError(
                400,
                230001,
                INVALID_PARAM + "only shared cards (config.update_multi=true) can be updated.",
            )
        if self.patch_qps_limit is not None:
            now = self.clock()
            times = self._patch_times.setdefault(message_id, deque())
            while times and now - times[0] >= 1.0:
                times.popleft()
            if len(times) >= self.patch_qps_limit:
                raise FeishuApiError(400, 230020, "This operation triggers the frequency limit.")
            times.append(now)
        msg.content = content
        msg.history.append(content)
        return self._ok({})

    def _message_resource(self, rec: RecordedRequest, message_id: str, file_key: str) -> _Reply:
        if rec.query.get("type") not in ("file", "image"):
            raise FeishuApiError(400, 234001, "Invalid request param.")
        if message_id in self._recalled:
            raise FeishuApiError(400, 230110, "Action unavailable as the message has been deleted.")
        res = self.resources.get((message_id, file_key))
        if res is None:
            raise FeishuApiError(400, 234003, "File not in message.")
        if len(res.data) > RESOURCE_LIMIT_BYTES:
            raise FeishuApiError(400, 234037, "Downloaded file size exceeds limit.")
        return self._file_reply(res)

    def _file_reply(self, media: FakeMedia) -> _Reply:
        # Feishu sends the UTF-8 file name raw; the SDK decodes latin-1 -> UTF-8 (Files.parse_file_name).
        disposition = b'attachment; filename="' + media.name.encode("utf-8") + b'"'
        return _Reply(
            200,
            media.data,
            [
                ("Content-Type", media.content_type),
                ("Content-Disposition", disposition),
                ("X-Tt-Logid", self._log_id()),
            ],
        )

    def _upload_image(self, rec: RecordedRequest) -> _Reply:
        image_type = rec.form_value("image_type")
        part = (rec.form or {}).get("image")
        if image_type not in ("message", "avatar") or part is None or not part.data:
            raise FeishuApiError(400, 234001, "Invalid request param.")
        if len(part.data) > IMAGE_LIMIT_BYTES:
            raise FeishuApiError(400, 234006, "The file size exceed the max value.")
        key = "img_v3_" + secrets.token_hex(12)
        self.images[key] = part.data
        return self._ok({"image_key": key})
