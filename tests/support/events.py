"""What Feishu POSTs to the bot's webhook: payload builders, encryption and signing.

Two steps, so tests can assert on the payload and still send exactly what Feishu sends:

    payload = events.text_message("https://example.com/v.mp4", sender_open_id="ou_a")
    headers, body = events.webhook_request(payload, encrypt_key="test key")

``EventFactory`` bundles the credentials (verification token, encrypt key, app id) and returns
``(headers, body)`` directly. Payloads follow the official samples in ``tests/fixtures/feishu-samples/``
(envelope v2.0); ids default to fresh random values so deduplication never merges two test events.

Encryption is Feishu's: key = sha256(encrypt_key), random 16-byte IV prefixed to the AES-256-CBC
ciphertext (PKCS7), base64, sent as ``{"encrypt": ...}``. Signature:
``X-Lark-Signature = sha256_hex(timestamp + nonce + encrypt_key + raw_body)``. Header names are
Title-Case exactly as Feishu sends them.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES

# Values of the official samples.
SAMPLE_APP_ID = "cli_9f5343c580712544"
SAMPLE_VERIFICATION_TOKEN = "rvaYgkND1GOiu5MM0E1rncYC6PLtF7JV"
SAMPLE_TENANT_KEY = "2ca1d211f64f6438"
SAMPLE_OPEN_ID = "ou_84aad35d084aa403a838cf73ee18467"
SAMPLE_CHAT_ID = "oc_5ce6d572455d361153b7xx51da133945"
SAMPLE_ENCRYPT_KEY = "test key"
SAMPLE_CARD_TOKEN = "c-xxxxxxxx"

Headers = dict[str, str]


# --------------------------------------------------------------------------------------------------
# Crypto
# --------------------------------------------------------------------------------------------------


def encrypt(plaintext: str | bytes, encrypt_key: str, *, iv: bytes | None = None) -> str:
    """Encrypt like Feishu: base64(IV + AES-256-CBC(PKCS7(plaintext))) with key sha256(encrypt_key)."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    iv = iv if iv is not None else secrets.token_bytes(16)
    if len(iv) != 16:
        raise ValueError("IV must be 16 bytes")
    pad = 16 - len(data) % 16
    cipher = AES.new(hashlib.sha256(encrypt_key.encode("utf-8")).digest(), AES.MODE_CBC, iv)
    return base64.b64encode(iv + cipher.encrypt(data + bytes([pad]) * pad)).decode("ascii")


def decrypt(encrypted: str, encrypt_key: str) -> str:
    """The inverse of ``encrypt`` (checks the padding)."""
    raw = base64.b64decode(encrypted)
    cipher = AES.new(hashlib.sha256(encrypt_key.encode("utf-8")).digest(), AES.MODE_CBC, raw[:16])
    padded = cipher.decrypt(raw[16:])
    pad = padded[-1]
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        raise ValueError("invalid PKCS7 padding")
    return padded[:-pad].decode("utf-8")


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """X-Lark-Signature for a raw body."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def webhook_request(
    payload: Mapping[str, Any],
    *,
    encrypt_key: str | None = None,
    timestamp: int | str | None = None,
    nonce: str | None = None,
    iv: bytes | None = None,
    sign: bool = True,
) -> tuple[Headers, bytes]:
    """Serialise a payload as Feishu POSTs it: plain JSON without an encrypt key; with one, the JSON
    encrypted into ``{"encrypt": ...}`` and signed (``sign=False`` leaves the signature headers out).

    ``timestamp`` is seconds since the epoch (default: now), as in ``X-Lark-Request-Timestamp``."""
    plaintext = json.dumps(payload, ensure_ascii=False)
    headers: Headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Request-Id": secrets.token_hex(16),
    }
    if not encrypt_key:
        return headers, plaintext.encode("utf-8")
    body = json.dumps({"encrypt": encrypt(plaintext, encrypt_key, iv=iv)}).encode("utf-8")
    if sign:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce if nonce is not None else secrets.token_hex(8)
        headers["X-Lark-Request-Timestamp"] = ts
        headers["X-Lark-Request-Nonce"] = nonce
        headers["X-Lark-Signature"] = signature(ts, nonce, encrypt_key, body)
    return headers, body


# --------------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------------


def _event_id() -> str:
    return secrets.token_hex(16)


def _message_id() -> str:
    return "om_" + secrets.token_hex(16)


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def url_verification(*, challenge: str = "ajls384kdjx98XX", token: str = SAMPLE_VERIFICATION_TOKEN) -> dict[str, Any]:
    """The body Feishu POSTs when the request URL is configured (reply ``{"challenge": ...}``)."""
    return {"challenge": challenge, "token": token, "type": "url_verification"}


def message_event(
    *,
    message_type: str,
    content: Mapping[str, Any] | str,
    sender_open_id: str = SAMPLE_OPEN_ID,
    sender_type: str = "user",
    message_id: str | None = None,
    event_id: str | None = None,
    chat_id: str = SAMPLE_CHAT_ID,
    chat_type: str = "p2p",
    app_id: str = SAMPLE_APP_ID,
    create_time: int | str | None = None,
    token: str = SAMPLE_VERIFICATION_TOKEN,
    tenant_key: str = SAMPLE_TENANT_KEY,
    mentions: Sequence[Mapping[str, Any]] | None = None,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """``im.message.receive_v1`` as in the official sample, with the given message.

    ``create_time`` is milliseconds (header and message); default now. ``content`` may be a dict
    (serialised to the JSON string Feishu sends) or that string itself."""
    created = str(create_time) if create_time is not None else _now_ms()
    message: dict[str, Any] = {
        "message_id": message_id or _message_id(),
        "create_time": created,
        "update_time": created,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "message_type": message_type,
        "content": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 13_2_1) Lark/6.7.5 LarkLocale/en_US",
    }
    if parent_id:
        message["root_id"] = parent_id
        message["parent_id"] = parent_id
    if mentions:
        message["mentions"] = [dict(m) for m in mentions]
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or _event_id(),
            "event_type": "im.message.receive_v1",
            "create_time": created,
            "token": token,
            "app_id": app_id,
            "tenant_key": tenant_key,
        },
        "event": {
            "sender": {
                "sender_id": {
                    "union_id": "on_" + hashlib.md5(sender_open_id.encode()).hexdigest(),  # noqa: S324 - an id
                    "user_id": sender_open_id[-8:],
                    "open_id": sender_open_id,
                },
                "sender_type": sender_type,
                "tenant_key": tenant_key,
            },
            "message": message,
        },
    }


def text_message(text: str, **overrides: Any) -> dict[str, Any]:
    """A text message; ``overrides`` are ``message_event`` keywords (sender_open_id, chat_id, ...)."""
    return message_event(message_type="text", content={"text": text}, **overrides)


def post_content(
    paragraphs: Sequence[Sequence[Mapping[str, Any]]], *, title: str = "", locale: str | None = None
) -> dict[str, Any]:
    """Rich-text content: paragraphs of elements (``{"tag": "text"|"a"|"at"|"img", ...}``).

    Received messages carry ``{"title", "content"}``; ``locale="zh_cn"`` wraps it as sent messages do."""
    body = {"title": title, "content": [[dict(e) for e in p] for p in paragraphs]}
    return {locale: body} if locale else body


def post_message(
    paragraphs: Sequence[Sequence[Mapping[str, Any]]],
    *,
    title: str = "",
    locale: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A rich-text (post) message, e.g. links as ``{"tag": "a", "href": url, "text": label}``."""
    return message_event(message_type="post", content=post_content(paragraphs, title=title, locale=locale), **overrides)


def link_paragraph(url: str, *, text: str | None = None, before: str = "") -> list[dict[str, Any]]:
    """One rich-text paragraph with an optional lead text and a hyperlink."""
    elements: list[dict[str, Any]] = []
    if before:
        elements.append({"tag": "text", "text": before})
    elements.append({"tag": "a", "href": url, "text": text if text is not None else url})
    return elements


def media_message(
    file_key: str = "75235e0c-4f92-430a-a99b-8446610223cg",
    file_name: str = "测试视频.mp4",
    *,
    image_key: str = "img_xxxxxx",
    duration_ms: int = 2000,
    **overrides: Any,
) -> dict[str, Any]:
    """A video sent as media (content as the official "视频 media" example)."""
    content = {"file_key": file_key, "image_key": image_key, "file_name": file_name, "duration": duration_ms}
    return message_event(message_type="media", content=content, **overrides)


def file_message(
    file_key: str = "75235e0c-4f92-430a-a99b-8446610223cg", file_name: str = "test.txt", **overrides: Any
) -> dict[str, Any]:
    """A file attachment (content as the official "文件 file" example)."""
    return message_event(message_type="file", content={"file_key": file_key, "file_name": file_name}, **overrides)


def card_action(
    *,
    value: Mapping[str, Any],
    operator_open_id: str = SAMPLE_OPEN_ID,
    open_message_id: str = "om_5ce6d572455d361153b7cb51da133945",
    open_chat_id: str = SAMPLE_CHAT_ID,
    form_value: Mapping[str, Any] | None = None,
    name: str | None = None,
    tag: str = "button",
    event_id: str | None = None,
    app_id: str = SAMPLE_APP_ID,
    create_time: int | str | None = None,
    token: str = SAMPLE_VERIFICATION_TOKEN,
    tenant_key: str = SAMPLE_TENANT_KEY,
    card_token: str = SAMPLE_CARD_TOKEN,
) -> dict[str, Any]:
    """``card.action.trigger`` (callback 2.0) as in the constructed sample.

    Note: the sample's ``header.create_time`` is in MICROseconds (16 digits); the default follows it.
    Replay checks should rely on ``X-Lark-Request-Timestamp`` (seconds)."""
    action: dict[str, Any] = {"value": dict(value), "tag": tag}
    if form_value is not None:
        action["form_value"] = dict(form_value)
    if name is not None:
        action["name"] = name
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or _event_id(),
            "token": token,
            "create_time": str(create_time) if create_time is not None else str(int(time.time() * 1_000_000)),
            "event_type": "card.action.trigger",
            "tenant_key": tenant_key,
            "app_id": app_id,
        },
        "event": {
            "operator": {
                "tenant_key": tenant_key,
                "user_id": operator_open_id[-8:],
                "open_id": operator_open_id,
                "union_id": "on_" + hashlib.md5(operator_open_id.encode()).hexdigest(),  # noqa: S324 - an id
            },
            "token": card_token,
            "action": action,
            "host": "im_message",
            "context": {"open_message_id": open_message_id, "open_chat_id": open_chat_id},
        },
    }


# --------------------------------------------------------------------------------------------------
# A factory bound to one app's credentials
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFactory:
    """Builds complete webhook requests ``(headers, body)`` for one app's credentials.

    ``encrypt_key=""`` gives plain, unsigned events (an app without an Encrypt Key)."""

    verification_token: str = SAMPLE_VERIFICATION_TOKEN
    encrypt_key: str = SAMPLE_ENCRYPT_KEY
    app_id: str = SAMPLE_APP_ID
    tenant_key: str = SAMPLE_TENANT_KEY

    def request(self, payload: Mapping[str, Any], **options: Any) -> tuple[Headers, bytes]:
        """``webhook_request`` with this factory's encrypt key (options: timestamp, nonce, iv, sign)."""
        return webhook_request(payload, encrypt_key=self.encrypt_key or None, **options)

    def _ids(self, overrides: dict[str, Any]) -> dict[str, Any]:
        merged = {"app_id": self.app_id, "token": self.verification_token, "tenant_key": self.tenant_key}
        merged.update(overrides)
        return merged

    def url_verification(self, challenge: str = "ajls384kdjx98XX", **options: Any) -> tuple[Headers, bytes]:
        return self.request(url_verification(challenge=challenge, token=self.verification_token), **options)

    def text(self, text: str, **overrides: Any) -> tuple[Headers, bytes]:
        return self.request(text_message(text, **self._ids(overrides)))

    def post(self, paragraphs: Sequence[Sequence[Mapping[str, Any]]], **overrides: Any) -> tuple[Headers, bytes]:
        return self.request(post_message(paragraphs, **self._ids(overrides)))

    def media(self, file_key: str, file_name: str = "video.mp4", **overrides: Any) -> tuple[Headers, bytes]:
        return self.request(media_message(file_key, file_name, **self._ids(overrides)))

    def file(self, file_key: str, file_name: str = "video.mp4", **overrides: Any) -> tuple[Headers, bytes]:
        return self.request(file_message(file_key, file_name, **self._ids(overrides)))

    def card_action(self, **fields: Any) -> tuple[Headers, bytes]:
        return self.request(card_action(**self._ids(fields)))

    def payload_of(self, body: bytes) -> dict[str, Any]:
        """The plaintext payload inside a body this factory built (for assertions)."""
        outer = json.loads(body)
        if "encrypt" in outer:
            decoded: dict[str, Any] = json.loads(decrypt(outer["encrypt"], self.encrypt_key))
            return decoded
        return copy.deepcopy(outer)
