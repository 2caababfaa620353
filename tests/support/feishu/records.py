"""The fake Feishu's constants, stored objects, recorded requests and small helpers."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
APP_TOKEN_PATH = "/open-apis/auth/v3/app_access_token/internal"

MB = 1024 * 1024
CARD_LIMIT_BYTES = 30 * 1024  # cards and rich text (230025 above it)
TEXT_LIMIT_BYTES = 150 * 1024
UPLOAD_ALL_LIMIT_BYTES = 20 * MB
IMAGE_LIMIT_BYTES = 10 * MB
RESOURCE_LIMIT_BYTES = 100 * MB
MESSAGE_EDIT_WINDOW_MS = 14 * 24 * 3600 * 1000
RECORDS_PER_BATCH = 1000
MAX_PAGE_SIZE = 500

# Field types (https://open.feishu.cn/document/server-docs/docs/bitable-v1/bitable-structure)
TEXT, NUMBER, SINGLE_SELECT, MULTI_SELECT, DATE, CHECKBOX, PERSON, PHONE, URL, ATTACHMENT = (
    1,
    2,
    3,
    4,
    5,
    7,
    11,
    13,
    15,
    17,
)
UI_TYPES = {
    TEXT: "Text",
    NUMBER: "Number",
    SINGLE_SELECT: "SingleSelect",
    MULTI_SELECT: "MultiSelect",
    DATE: "DateTime",
    CHECKBOX: "Checkbox",
    PERSON: "User",
    PHONE: "Phone",
    URL: "Url",
    ATTACHMENT: "Attachment",
    18: "SingleLink",
    20: "Formula",
    21: "DuplexLink",
    22: "Location",
    23: "GroupChat",
    1001: "CreatedTime",
    1002: "ModifiedTime",
    1003: "CreatedUser",
    1004: "ModifiedUser",
    1005: "AutoNumber",
}
RECEIVE_ID_PREFIXES = {"open_id": "ou_", "chat_id": "oc_", "union_id": "on_"}
MSG_TYPES = {
    "text",
    "post",
    "image",
    "file",
    "audio",
    "media",
    "sticker",
    "interactive",
    "share_chat",
    "share_user",
    "system",
}
MEMBER_TYPES = {"email", "openid", "unionid", "openchat", "opendepartmentid", "userid", "groupid", "wikispaceid"}
PERMS = {"view", "edit", "full_access"}
INVALID_PARAM = "Your request contains an invalid request parameter, ext="
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# --------------------------------------------------------------------------------------------------
# What the fake received
# --------------------------------------------------------------------------------------------------


@dataclass
class FormPart:
    """One part of a multipart/form-data body."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass
class RecordedRequest:
    """One request as the fake received it, plus what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # raw header names, as sent
    body: bytes
    json: Any = None  # parsed JSON body (whatever the Content-Type said), else None
    form: dict[str, FormPart] | None = None  # parsed multipart body, else None
    token: str | None = None  # the bearer token used, if any
    status: int = 0  # HTTP status answered
    code: int | None = None  # Feishu code answered (None for binary downloads)
    fault: bool = False  # answered by an injected fault
    at: float = 0.0  # time.monotonic() when received

    def header(self, name: str) -> str | None:
        """Header value by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def form_value(self, name: str) -> str | None:
        """A text field of a multipart body; empty parts (how the SDK sends ``None``) read as None."""
        if self.form is None or name not in self.form or not self.form[name].data:
            return None
        return self.form[name].text


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeMessage:
    message_id: str
    msg_type: str
    content: str  # the JSON string, as Feishu stores it
    chat_id: str
    receive_id: str = ""
    receive_id_type: str = ""
    parent_id: str = ""  # set for replies
    uuid: str | None = None
    reply_in_thread: bool = False
    create_time_ms: int = 0
    history: list[str] = field(default_factory=list)  # every content the message had, oldest first
    recalled: bool = False
    deleted: bool = False

    @property
    def body(self) -> Any:
        """The current content, parsed."""
        return json.loads(self.content)

    @property
    def card(self) -> dict[str, Any]:
        body = self.body
        assert isinstance(body, dict)
        return body

    @property
    def patches(self) -> list[Any]:
        """Contents set by PATCH, oldest first (parsed)."""
        return [json.loads(c) for c in self.history[1:]]


@dataclass
class FakeTable:
    table_id: str
    name: str
    fields: list[dict[str, Any]]  # {field_id, field_name, type, ui_type, is_primary, property}
    records: list[dict[str, Any]] = field(default_factory=list)  # {record_id, fields}
    client_tokens: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    default_view_id: str = ""

    def field_named(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.fields if f["field_name"] == name), None)

    def rows(self) -> list[dict[str, Any]]:
        """Field values of every record (copies), in insertion order."""
        return [copy.deepcopy(r["fields"]) for r in self.records]


@dataclass
class FakeApp:
    app_token: str
    name: str
    folder_token: str
    url: str
    tables: dict[str, FakeTable] = field(default_factory=dict)
    default_table_id: str = ""
    time_zone: str = ""
    readable: bool = True
    owner: dict[str, str] = field(default_factory=dict)  # {member_type, member_id}
    members: list[dict[str, Any]] = field(default_factory=list)  # {member_type, member_id, perm, type, ...}
    created_time: int = field(default_factory=lambda: int(time.time()))  # unix seconds, as Drive lists it


@dataclass
class FakeMedia:
    file_token: str
    data: bytes
    name: str
    content_type: str = "application/octet-stream"
    parent_type: str = ""
    parent_node: str = ""


@dataclass
class _Rule:
    method: str
    pattern: str | re.Pattern[str]
    remaining: int | None  # None = forever

    def matches(self, method: str, path: str) -> bool:
        return _method_matches(self.method, method) and _path_matches(self.pattern, path)


@dataclass
class _Fault(_Rule):
    status: int = 429
    code: int = 99991400
    msg: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    drop_connection: bool = False
    applied: bool = False  # carry the request out, then answer with the error anyway


@dataclass
class _Delay(_Rule):
    seconds: float = 0.0


@dataclass
class _LostAnswer(_Rule):
    hold_s: float = 0.0  # how long the connection stays silent before it is dropped


class _Reply:
    """What a handler answers: status, raw header pairs, body (bytes or a chunk iterator)."""

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: Iterable[tuple[str, str | bytes]] = (),
        code: int | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)
        self.code = code


class FeishuApiError(Exception):
    """Raised inside handlers: answered as a JSON error."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def _method_matches(rule_method: str, method: str) -> bool:
    return rule_method in ("*", "") or rule_method.upper() == method.upper()


def _path_matches(pattern: str | re.Pattern[str], path: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(path) is not None
    return fnmatch.fnmatchcase(path, pattern)


def _random_token(prefix: str, length: int = 24) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _guess_type(name: str) -> str:
    lower = name.lower()
    for suffix, ctype in (
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".mp4", "video/mp4"),
        (".json", "application/json"),
        (".srt", "application/x-subrip"),
        (".txt", "text/plain"),
        (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ):
        if lower.endswith(suffix):
            return ctype
    return "application/octet-stream"


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """Parse multipart/form-data from the raw body (parts without filename or with empty data kept)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ValueError("multipart body without boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: dict[str, FormPart] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        data = data.removesuffix(b"\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is None:
            continue
        parts[name.group(1)] = FormPart(
            name=name.group(1),
            data=data,
            filename=filename.group(1) if filename else None,
            content_type=headers.get("content-type"),
        )
    return parts
