"""A fake Feishu Open Platform on loopback: a real HTTP server the real lark-oapi SDK talks to.

Tests point ``FeishuClient`` (or any ``lark.Client``) at ``fake.url`` and then assert on what the fake
received (``fake.requests``, ``find``, ``wait_for``) and on the state it keeps (messages and their patch
history, Bases, tables, records, uploaded media, collaborators and owners).

Behaviour follows ``/work/shared/FEISHU.md`` and the official samples in ``feishu-samples/``:

* every non-download endpoint answers ``{"code", "msg", "data"}`` (errors add ``error.log_id``), with the
  HTTP status Feishu documents for the code; every answer carries an ``X-Tt-Logid`` header;
* the token endpoint answers at top level (``tenant_access_token``, ``expire``) and parses a body sent
  without a Content-Type header, as the SDK sends it;
* header names are written exactly (``Content-Disposition``, ``Content-Type``): the SDK reads them
  case-sensitively;
* multipart bodies are parsed from the raw bytes (the SDK sends the file part without a filename and
  ``None`` fields as empty parts).

Fault injection: ``fail`` (429 with ``x-ogw-ratelimit-reset`` by default, 5xx, any code, dropped
connections), ``delay`` and ``invalidate_tokens``. Built on the standard library only
(``ThreadingHTTPServer`` in a daemon thread), so it starts in milliseconds.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

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


@dataclass
class _Delay(_Rule):
    seconds: float = 0.0


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


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeFeishu:
    """The fake Open Platform. Use as a context manager or call ``start()``/``stop()``.

    ``app_id``/``app_secret`` default to random values: the SDK caches tenant tokens process-wide per
    app_id, so a fresh app_id per fake keeps tests from seeing each other's tokens.
    """

    def __init__(
        self,
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        tenant_key: str = "736588c9260f175e",
        patch_qps_limit: int | None = 5,
        token_expire_s: int = 7200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id or "cli_" + secrets.token_hex(8)
        self.app_secret = app_secret or secrets.token_urlsafe(24)
        self.tenant_key = tenant_key
        self.patch_qps_limit = patch_qps_limit
        self.token_expire_s = token_expire_s
        self.clock = clock  # for the per-message PATCH rate window
        # Bitable answers 1254130 TooLargeCell for an oversized text cell; the size is not documented
        # (reports put it near 196,608 bytes of JSON). None = no limit; tests that need it set it.
        self.text_cell_limit_bytes: int | None = None
        self.tmp_download_keys: dict[str, str] = {}  # key in a temporary download URL -> file token

        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, FakeMessage] = {}
        self.apps: dict[str, FakeApp] = {}
        self.media: dict[str, FakeMedia] = {}
        self.images: dict[str, bytes] = {}
        self.resources: dict[tuple[str, str], FakeMedia] = {}
        self.wiki_nodes: dict[str, dict[str, str]] = {}
        self.issued_tokens: list[str] = []

        self._lock = threading.RLock()
        self._valid_tokens: set[str] = set()
        self._message_uuids: dict[str, str] = {}
        self._recalled: set[str] = set()
        self._patch_times: dict[str, deque[float]] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeFeishu:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-feishu", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeFeishu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for ``lark.Client.builder().domain(...)`` (no trailing slash)."""
        assert self._server is not None, "FakeFeishu is not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # ---- the record ------------------------------------------------------------------------------

    def find(self, method: str, path_pattern: str | re.Pattern[str]) -> list[RecordedRequest]:
        """Recorded requests whose method matches (``"*"`` for any) and whose path matches the pattern:
        a glob (``fnmatch``; ``*`` also crosses ``/``) or a compiled regex (``search``)."""
        with self._lock:
            return [
                r for r in self.requests if _method_matches(method, r.method) and _path_matches(path_pattern, r.path)
            ]

    def wait_for(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[RecordedRequest]:
        """Poll until at least ``count`` matching requests have been answered; return them.

        Raises AssertionError (listing what was received) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.find(method, path_pattern) if r.status]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = "\n  ".join(f"{r.method} {r.path} -> {r.status}/{r.code}" for r in self.requests)
                raise AssertionError(
                    f"expected {count} x {method} {path_pattern}, got {len(found)} in {timeout}s; received:\n  {seen}"
                )
            time.sleep(0.02)

    def reset_record(self) -> None:
        """Forget recorded requests (state such as messages and Bases is kept)."""
        with self._lock:
            self.requests.clear()

    # ---- fault injection -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        *,
        status: int = 429,
        code: int | None = None,
        times: int | None = 1,
        headers: Mapping[str, str] | None = None,
        msg: str | None = None,
        body: bytes | None = None,
        drop_connection: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests (``None`` = all) with an error instead.

        Defaults: 429 / 99991400 with ``x-ogw-ratelimit-limit`` and ``x-ogw-ratelimit-reset: 1``;
        5xx default to code 1 "internal error". ``body`` replaces the JSON body (e.g. an HTML 502 page);
        ``drop_connection`` closes the socket without answering. Faults are checked before auth."""
        if code is None:
            code = 99991400 if status == 429 else 1
        if msg is None:
            msg = "request trigger frequency limit" if code == 99991400 else "internal error"
        all_headers: dict[str, str] = {}
        if status == 429:
            all_headers = {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"}
        all_headers.update(headers or {})
        with self._lock:
            self._faults.append(
                _Fault(
                    method=method,
                    pattern=path_pattern,
                    remaining=times,
                    status=status,
                    code=code,
                    msg=msg,
                    headers=all_headers,
                    body=body,
                    drop_connection=drop_connection,
                )
            )

    def delay(
        self, method: str, path_pattern: str | re.Pattern[str], seconds: float, *, times: int | None = None
    ) -> None:
        """Sleep ``seconds`` before answering matching requests (``times`` = None: every one)."""
        with self._lock:
            self._delays.append(_Delay(method=method, pattern=path_pattern, remaining=times, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def invalidate_tokens(self) -> None:
        """Every token issued so far now gets 99991663; a freshly fetched one works."""
        with self._lock:
            self._valid_tokens.clear()

    # ---- state helpers for tests -----------------------------------------------------------------

    def add_message_resource(
        self,
        message_id: str,
        file_key: str,
        data: bytes,
        file_name: str = "video.mp4",
        content_type: str = "video/mp4",
    ) -> None:
        """A file attached to a user's message, served by GET .../messages/:id/resources/:file_key."""
        with self._lock:
            self.resources[(message_id, file_key)] = FakeMedia(file_key, data, file_name, content_type)

    def add_drive_media(
        self,
        file_token: str,
        data: bytes,
        name: str = "video.mp4",
        content_type: str = "video/mp4",
        *,
        parent_node: str = "",
    ) -> None:
        """A Drive media file (e.g. a Bitable attachment) served by GET /drive/v1/medias/:token/download."""
        with self._lock:
            self.media[file_token] = FakeMedia(file_token, data, name, content_type, parent_node=parent_node)

    def add_bitable(
        self,
        app_token: str,
        table_id: str,
        fields: Iterable[Mapping[str, Any]],
        records: Iterable[Mapping[str, Any]] = (),
        *,
        readable: bool = True,
        name: str = "Source Base",
        table_name: str = "数据表",
    ) -> FakeTable:
        """A Base the app did not create (a user's source table).

        ``fields``: ``{"field_name", "type", "property"?}``. ``records``: field values as the list API
        returns them (attachments: ``[{"file_token", "name", "size", "type"}]``, URL: ``{"text", "link"}``).
        ``readable=False``: the app was not added to the Base, every read answers 403 / 91403."""
        with self._lock:
            app = self.apps.get(app_token)
            if app is None:
                app = FakeApp(
                    app_token=app_token,
                    name=name,
                    folder_token="",
                    url=f"https://example.feishu.cn/base/{app_token}",
                    readable=readable,
                    owner={"member_type": "openid", "member_id": "ou_" + secrets.token_hex(16)},
                )
                self.apps[app_token] = app
            app.readable = readable
            table = FakeTable(table_id=table_id, name=table_name, fields=self._make_fields(fields))
            for values in records:
                table.records.append({"record_id": self._record_id(), "fields": copy.deepcopy(dict(values))})
            app.tables[table_id] = table
            if not app.default_table_id:
                app.default_table_id = table_id
            return table

    def add_wiki_node(self, node_token: str, obj_token: str, obj_type: str = "bitable", title: str = "") -> None:
        """A wiki node (``/wiki/<node_token>`` links) that wraps a document such as a Base."""
        with self._lock:
            self.wiki_nodes[node_token] = {
                "space_id": "6946843325487912356",
                "node_token": node_token,
                "obj_token": obj_token,
                "obj_type": obj_type,
                "node_type": "origin",
                "title": title,
            }

    def add_bot_message(
        self,
        message_id: str,
        content: Mapping[str, Any] | str,
        *,
        msg_type: str = "interactive",
        chat_id: str = "oc_5ce6d572455d361153b7xx51da133945",
        age_days: float = 0.0,
    ) -> FakeMessage:
        """A message the bot sent earlier (e.g. the card a callback refers to)."""
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        with self._lock:
            msg = FakeMessage(
                message_id=message_id,
                msg_type=msg_type,
                content=text,
                chat_id=chat_id,
                create_time_ms=_now_ms() - int(age_days * 24 * 3600 * 1000),
                history=[text],
            )
            self.messages[message_id] = msg
            return msg

    def age_message(self, message_id: str, days: float) -> None:
        """Pretend a sent message is ``days`` old (PATCH after 14 days answers 230031)."""
        with self._lock:
            self.messages[message_id].create_time_ms = _now_ms() - int(days * 24 * 3600 * 1000)

    def recall_message(self, message_id: str) -> None:
        """The message was recalled (PATCH/reply answer 230011); works for users' message ids too."""
        with self._lock:
            self._recalled.add(message_id)
            if message_id in self.messages:
                self.messages[message_id].recalled = True

    # ---- accessors -------------------------------------------------------------------------------

    def message(self, message_id: str) -> FakeMessage:
        with self._lock:
            return self.messages[message_id]

    @property
    def sent_messages(self) -> list[FakeMessage]:
        """Messages created by send/reply, in order."""
        with self._lock:
            return [m for m in self.messages.values() if m.receive_id or m.parent_id]

    def patch_history(self, message_id: str) -> list[Any]:
        """Contents set by PATCH on this message, oldest first (parsed JSON)."""
        with self._lock:
            return self.messages[message_id].patches

    def app(self, app_token: str) -> FakeApp:
        with self._lock:
            return self.apps[app_token]

    def table(self, app_token: str, table_id: str) -> FakeTable:
        with self._lock:
            return self.apps[app_token].tables[table_id]

    def records(self, app_token: str, table_id: str) -> list[dict[str, Any]]:
        """Field values of every record in a table (copies)."""
        with self._lock:
            return self.apps[app_token].tables[table_id].rows()

    def members(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.apps[token].members)

    def owner(self, token: str) -> dict[str, str]:
        with self._lock:
            return dict(self.apps[token].owner)

    # ---- request handling ------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., _Reply], bool]]:
        seg = r"([^/]+)"
        table = rf"^/open-apis/bitable/v1/apps/{seg}/tables/{seg}"
        routes: list[tuple[str, str, Callable[..., _Reply], bool]] = [
            ("POST", rf"^{TOKEN_PATH}/?$", self._tenant_token, False),
            ("POST", rf"^{APP_TOKEN_PATH}/?$", self._app_token, False),
            ("POST", r"^/open-apis/im/v1/messages$", self._create_message, True),
            ("POST", rf"^/open-apis/im/v1/messages/{seg}/reply$", self._reply_message, True),
            ("PATCH", rf"^/open-apis/im/v1/messages/{seg}$", self._patch_message, True),
            ("GET", rf"^/open-apis/im/v1/messages/{seg}/resources/{seg}$", self._message_resource, True),
            ("POST", r"^/open-apis/im/v1/images$", self._upload_image, True),
            ("POST", r"^/open-apis/bitable/v1/apps$", self._create_app, True),
            ("GET", rf"^/open-apis/bitable/v1/apps/{seg}/tables$", self._list_tables, True),
            ("POST", rf"^/open-apis/bitable/v1/apps/{seg}/tables$", self._create_table, True),
            ("DELETE", rf"{table}$", self._delete_table, True),
            ("GET", rf"{table}/fields$", self._list_fields, True),
            ("GET", rf"{table}/records$", self._list_records, True),
            ("POST", rf"{table}/records/batch_create$", self._batch_create_records, True),
            ("POST", r"^/open-apis/drive/v1/medias/upload_all$", self._upload_all, True),
            ("GET", rf"^/open-apis/drive/v1/medias/{seg}/download$", self._download_media, True),
            ("GET", r"^/open-apis/drive/v1/medias/batch_get_tmp_download_url$", self._tmp_download_urls, True),
            # What a temporary download URL points at: Feishu's CDN, no token needed (the URL is the key).
            ("GET", rf"^/cdn/tmp/{seg}$", self._tmp_download, False),
            ("POST", rf"^/open-apis/drive/v1/permissions/{seg}/members/transfer_owner$", self._transfer_owner, True),
            ("POST", rf"^/open-apis/drive/v1/permissions/{seg}/members$", self._add_member, True),
            ("GET", r"^/open-apis/wiki/v2/spaces/get_node$", self._wiki_node, True),
        ]
        return [(m, re.compile(p), h, auth) for m, p, h, auth in routes]

    def add_route(self, method: str, pattern: str, handler: Callable[..., _Reply], *, needs_auth: bool = False) -> None:
        """Serve one more endpoint (a regex on the path; groups become arguments), e.g. the long
        connection's (``tests/fakes/feishu_ws.py``)."""
        with self._lock:
            self._routes.append((method, re.compile(pattern), handler, needs_auth))

    def _handle(self, rec: RecordedRequest) -> _Reply | None:
        """Answer one recorded request. None = drop the connection."""
        with self._lock:
            self.requests.append(rec)
            delay = self._take_rule(self._delays, rec)
        if delay is not None:
            time.sleep(delay.seconds)
        with self._lock:
            fault = self._take_rule(self._faults, rec)
            if fault is not None:
                rec.fault = True
                if fault.drop_connection:
                    return None
                if fault.body is not None:
                    return _Reply(fault.status, fault.body, [("Content-Type", "text/html"), *fault.headers.items()])
                reply = self._error(fault.status, fault.code, fault.msg)
                reply.headers.extend(fault.headers.items())
                return reply
            for method, pattern, handler, needs_auth in self._routes:
                match = pattern.match(rec.path)
                if match is None or method != rec.method:
                    continue
                try:
                    if needs_auth:
                        self._check_token(rec)
                    params = [unquote(g) for g in match.groups()]
                    return handler(rec, *params)
                except FeishuApiError as err:
                    return self._error(err.status, err.code, err.msg)
            return self._error(404, 404, f"404 page not found: {rec.method} {rec.path}")

    @staticmethod
    def _take_rule(rules: list[Any], rec: RecordedRequest) -> Any:
        for rule in rules:
            if rule.matches(rec.method, rec.path) and (rule.remaining is None or rule.remaining > 0):
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None

    def _check_token(self, rec: RecordedRequest) -> None:
        if rec.token is None:
            raise FeishuApiError(
                400, 99991661, "Missing access token for authorization. Please make a request with token attached."
            )
        if rec.token not in self._valid_tokens:
            raise FeishuApiError(
                400, 99991663, "Invalid access token for authorization. Please make a request with token attached."
            )

    # ---- answers ---------------------------------------------------------------------------------

    @staticmethod
    def _log_id() -> str:
        return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9).upper()

    def _json(self, status: int, payload: Mapping[str, Any]) -> _Reply:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        code = payload.get("code")
        return _Reply(
            status,
            body,
            [("Content-Type", "application/json; charset=utf-8"), ("X-Tt-Logid", self._log_id())],
            code=code if isinstance(code, int) else None,
        )

    def _ok(self, data: Any = None, msg: str = "success") -> _Reply:
        return self._json(200, {"code": 0, "msg": msg, "data": {} if data is None else data})

    def _error(self, status: int, code: int, msg: str) -> _Reply:
        log_id = self._log_id()
        reply = self._json(
            status,
            {
                "code": code,
                "msg": msg,
                "data": {},
                "error": {
                    "log_id": log_id,
                    "troubleshooter": f"https://open.feishu.cn/search?from=openapi&log_id={log_id}&code={code}",
                },
            },
        )
        reply.headers = [(k, log_id if k == "X-Tt-Logid" else v) for k, v in reply.headers]
        return reply

    # ---- auth ------------------------------------------------------------------------------------

    def _credentials(self, rec: RecordedRequest) -> None:
        body = rec.json if isinstance(rec.json, dict) else {}
        if body.get("app_id") != self.app_id:
            raise FeishuApiError(400, 10003, "invalid param: app_id")
        if body.get("app_secret") != self.app_secret:
            raise FeishuApiError(400, 10014, "app secret invalid")

    def _new_token(self, prefix: str) -> str:
        token = f"{prefix}{secrets.token_hex(20)}"
        self._valid_tokens.add(token)
        self.issued_tokens.append(token)
        return token

    def _tenant_token(self, rec: RecordedRequest) -> _Reply:
        self._credentials(rec)
        token = self._new_token("t-")
        return self._json(200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_expire_s})

    def _app_token(self, rec: RecordedRequest) -> _Reply:
        self._credentials(rec)
        token = self._new_token("a-")
        return self._json(200, {"code": 0, "msg": "ok", "app_access_token": token, "expire": self.token_expire_s})

    # ---- messages --------------------------------------------------------------------------------

    def _body(self, rec: RecordedRequest) -> dict[str, Any]:
        if not isinstance(rec.json, dict):
            raise FeishuApiError(400, 9499, "Bad Request: the body is not a JSON object")
        return rec.json

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
        limit = TEXT_LIMIT_BYTES if msg_type == "text" else CARD_LIMIT_BYTES
        if len(content.encode("utf-8")) > limit:
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
        if len(content.encode("utf-8")) > CARD_LIMIT_BYTES:
            raise FeishuApiError(400, 230025, "The length of the message content reaches its limit.")
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

    # ---- Bitable ---------------------------------------------------------------------------------

    @staticmethod
    def _record_id() -> str:
        return _random_token("rec", 10)

    @staticmethod
    def _make_fields(specs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = []
        names: set[str] = set()
        for index, spec in enumerate(specs):
            name = spec.get("field_name")
            ftype = spec.get("type")
            if not isinstance(name, str) or not name or not isinstance(ftype, int) or ftype not in UI_TYPES:
                raise FeishuApiError(400, 1254001, f"WrongRequestBody: bad field {spec!r}")
            if name in names:
                raise FeishuApiError(400, 1254014, f"FieldNameDuplicated: {name}")
            names.add(name)
            prop = copy.deepcopy(spec.get("property"))
            if ftype in (SINGLE_SELECT, MULTI_SELECT):
                prop = dict(prop or {})
                prop["options"] = [
                    {
                        "id": opt.get("id") or _random_token("opt", 7),
                        "name": opt["name"],
                        "color": opt.get("color", i % 10),
                    }
                    for i, opt in enumerate(prop.get("options") or [])
                ]
            fields.append(
                {
                    "field_id": _random_token("fld", 7),
                    "field_name": name,
                    "type": ftype,
                    "ui_type": spec.get("ui_type") or UI_TYPES[ftype],
                    "is_primary": index == 0,
                    "property": prop,
                }
            )
        return fields

    def _app_for(self, app_token: str, *, read: bool = True) -> FakeApp:
        app = self.apps.get(app_token)
        if app is None:
            raise FeishuApiError(400, 1254040, "BaseTokenNotFound")
        if read and not app.readable:
            raise FeishuApiError(403, 91403, "Forbidden")
        return app

    def _table_for(self, app_token: str, table_id: str) -> FakeTable:
        table = self._app_for(app_token).tables.get(table_id)
        if table is None:
            raise FeishuApiError(400, 1254041, "TableIdNotFound")
        return table

    def _create_app(self, rec: RecordedRequest) -> _Reply:
        body = self._body(rec)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FeishuApiError(400, 1254001, "WrongRequestBody: name is required")
        app_token = _random_token("", 27)
        app = FakeApp(
            app_token=app_token,
            name=name,
            folder_token=str(body.get("folder_token") or ""),
            url=f"https://example.feishu.cn/base/{app_token}",
            time_zone=str(body.get("time_zone") or ""),
            owner={"member_type": "app", "member_id": self.app_id},
        )
        # A new Base comes with one table holding Feishu's default fields.
        default = FakeTable(
            table_id=_random_token("tbl", 13),
            name="数据表",
            fields=self._make_fields(
                [
                    {"field_name": "多行文本", "type": TEXT},
                    {"field_name": "单选", "type": SINGLE_SELECT},
                    {"field_name": "日期", "type": DATE},
                    {"field_name": "附件", "type": ATTACHMENT},
                ]
            ),
            default_view_id=_random_token("vew", 7),
        )
        app.tables[default.table_id] = default
        app.default_table_id = default.table_id
        self.apps[app_token] = app
        return self._ok(
            {
                "app": {
                    "app_token": app_token,
                    "default_table_id": default.table_id,
                    "folder_token": app.folder_token,
                    "name": name,
                    "url": app.url,
                    "time_zone": app.time_zone,
                }
            }
        )

    def _list_tables(self, rec: RecordedRequest, app_token: str) -> _Reply:
        app = self._app_for(app_token)
        items = [{"table_id": t.table_id, "name": t.name, "revision": 1} for t in app.tables.values()]
        return self._ok({"has_more": False, "total": len(items), "items": items})

    def _create_table(self, rec: RecordedRequest, app_token: str) -> _Reply:
        app = self._app_for(app_token)
        spec = self._body(rec).get("table")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise FeishuApiError(400, 1254001, "WrongRequestBody: table.name is required")
        if any(t.name == spec["name"] for t in app.tables.values()):
            raise FeishuApiError(400, 1254013, "TableNameDuplicated")
        field_specs = spec.get("fields") or [{"field_name": "多行文本", "type": TEXT}]
        if not isinstance(field_specs, list):
            raise FeishuApiError(400, 1254001, "WrongRequestBody: table.fields must be a list")
        table = FakeTable(
            table_id=_random_token("tbl", 13),
            name=spec["name"],
            fields=self._make_fields(field_specs),
            default_view_id=_random_token("vew", 7),
        )
        app.tables[table.table_id] = table
        return self._ok(
            {
                "table_id": table.table_id,
                "default_view_id": table.default_view_id,
                "field_id_list": [f["field_id"] for f in table.fields],
            }
        )

    def _delete_table(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        app = self._app_for(app_token)
        self._table_for(app_token, table_id)
        if len(app.tables) == 1:
            raise FeishuApiError(400, 1254002, "Fail: a Base keeps at least one table")
        del app.tables[table_id]
        if app.default_table_id == table_id:
            app.default_table_id = next(iter(app.tables))
        return self._ok({})

    @staticmethod
    def _page(rec: RecordedRequest, default_size: int, max_size: int) -> tuple[int, int]:
        try:
            size = int(rec.query.get("page_size", default_size))
        except ValueError:
            raise FeishuApiError(400, 99992402, "field validation failed: page_size") from None
        if not 1 <= size <= max_size:
            raise FeishuApiError(400, 99992402, f"field validation failed: page_size must be 1..{max_size}")
        token = rec.query.get("page_token")
        if not token:
            return 0, size
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except (ValueError, UnicodeDecodeError):
            raise FeishuApiError(400, 1254002, "Fail: invalid page_token") from None
        return offset, size

    @staticmethod
    def _page_data(items: list[Any], offset: int, size: int, total: int) -> dict[str, Any]:
        data: dict[str, Any] = {"items": items, "has_more": offset + size < total, "total": total}
        if items:  # Feishu sends a page_token with the last page too (see bitable_fields_list sample)
            data["page_token"] = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
        return data

    def _list_fields(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        offset, size = self._page(rec, 20, 100)
        items = copy.deepcopy(table.fields[offset : offset + size])
        return self._ok(self._page_data(items, offset, size, len(table.fields)))

    def _list_records(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        offset, size = self._page(rec, 20, MAX_PAGE_SIZE)
        wanted: list[str] | None = None
        if rec.query.get("field_names"):
            try:
                wanted = json.loads(rec.query["field_names"])
            except json.JSONDecodeError:
                raise FeishuApiError(400, 1254000, "WrongRequestJson: field_names") from None
        items = []
        for record in table.records[offset : offset + size]:
            values = {
                name: self._render_value(table, name, value)
                for name, value in record["fields"].items()
                if value not in (None, "", []) and (wanted is None or name in wanted)
            }
            items.append({"fields": values, "id": record["record_id"], "record_id": record["record_id"]})
        return self._ok(self._page_data(items, offset, size, len(table.records)))

    def _render_value(self, table: FakeTable, name: str, value: Any) -> Any:
        spec = table.field_named(name)
        if spec is None or spec["type"] != ATTACHMENT or not isinstance(value, list):
            return copy.deepcopy(value)
        rendered = []
        for item in value:
            token = item.get("file_token", "")
            media = self.media.get(token)
            rendered.append(
                {
                    "file_token": token,
                    "name": item.get("name") or (media.name if media else token),
                    "size": item.get("size") or (len(media.data) if media else 0),
                    "type": item.get("type") or (media.content_type if media else "application/octet-stream"),
                    # A Base with advanced permissions gives each attachment a url carrying ``extra``.
                    "url": item.get("url") or f"{self.url}/open-apis/drive/v1/medias/{token}/download",
                    "tmp_url": f"{self.url}/open-apis/drive/v1/medias/batch_get_tmp_download_url"
                    f"?file_tokens={quote(token)}",
                }
            )
        return rendered

    def _check_value(self, app_token: str, table: FakeTable, name: str, value: Any) -> Any:
        spec = table.field_named(name)
        if spec is None:
            raise FeishuApiError(200, 1254045, f"FieldNameNotFound: {name}")
        if value is None:
            return None
        ftype = spec["type"]
        if ftype in (TEXT, PHONE):
            if not isinstance(value, str):
                raise FeishuApiError(200, 1254060 if ftype == TEXT else 1254072, f"TextFieldConvFail: {name}")
            limit = self.text_cell_limit_bytes
            if limit is not None and len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > limit:
                raise FeishuApiError(200, 1254130, f"TooLargeCell: {name}")
        elif ftype == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FeishuApiError(200, 1254061, f"NumberFieldConvFail: {name}")
        elif ftype == SINGLE_SELECT:
            if not isinstance(value, str):
                raise FeishuApiError(200, 1254062, f"SingleSelectFieldConvFail: {name}")
            self._ensure_options(spec, [value])
        elif ftype == MULTI_SELECT:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FeishuApiError(200, 1254063, f"MultiSelectFieldConvFail: {name}")
            self._ensure_options(spec, value)
        elif ftype == DATE:
            if isinstance(value, bool) or not isinstance(value, int):
                raise FeishuApiError(200, 1254064, f"DatetimeFieldConvFail: {name} needs a millisecond timestamp")
        elif ftype == CHECKBOX:
            if not isinstance(value, bool):
                raise FeishuApiError(200, 1254065, f"CheckboxFieldConvFail: {name}")
        elif ftype == PERSON:
            if not isinstance(value, list) or not all(
                isinstance(v, dict) and isinstance(v.get("id"), str) for v in value
            ):
                raise FeishuApiError(200, 1254066, f"UserFieldConvFail: {name}")
        elif ftype == URL:
            if not isinstance(value, dict) or not isinstance(value.get("link"), str) or not value["link"]:
                raise FeishuApiError(200, 1254068, f"URLFieldConvFail: {name} needs {{text, link}}")
            if "text" in value and not isinstance(value["text"], str):
                raise FeishuApiError(200, 1254068, f"URLFieldConvFail: {name}")
        elif ftype == ATTACHMENT:
            if not isinstance(value, list) or not all(
                isinstance(v, dict) and isinstance(v.get("file_token"), str) for v in value
            ):
                raise FeishuApiError(200, 1254069, f"AttachFieldConvFail: {name} needs [{{file_token}}]")
            stored = []
            for item in value:
                media = self.media.get(item["file_token"])
                if media is None or media.parent_node != app_token:
                    raise FeishuApiError(
                        200, 1254303, f"AttachPermNotAllow: {item['file_token']} was not uploaded to this Base"
                    )
                stored.append(
                    {
                        "file_token": media.file_token,
                        "name": media.name,
                        "size": len(media.data),
                        "type": media.content_type,
                    }
                )
            return stored
        return copy.deepcopy(value)

    @staticmethod
    def _ensure_options(spec: dict[str, Any], names: list[str]) -> None:
        # Unknown option names create new options, as the API documents.
        prop = spec.setdefault("property", None) or {}
        options = prop.setdefault("options", [])
        known = {o["name"] for o in options}
        for name in names:
            if name not in known:
                options.append({"id": _random_token("opt", 7), "name": name, "color": len(options) % 10})
                known.add(name)
        spec["property"] = prop

    def _batch_create_records(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        records = self._body(rec).get("records")
        if not isinstance(records, list) or not records:
            raise FeishuApiError(400, 1254001, "WrongRequestBody: records is required")
        if len(records) > RECORDS_PER_BATCH:
            raise FeishuApiError(200, 1254104, "RecordAddOnceExceedLimit")
        client_token = rec.query.get("client_token")
        fingerprint = hashlib.sha256(rec.body).hexdigest()
        if client_token:
            if not UUID_RE.match(client_token):
                raise FeishuApiError(
                    400, 1254037, "Invalid client token, make sure that it complies with the specification."
                )
            seen = table.client_tokens.get(client_token)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise FeishuApiError(
                        400, 1255006, "Client token conflict, please generate a new client token and try again."
                    )
                by_id = {r["record_id"]: r for r in table.records}
                return self._ok({"records": [self._record_out(by_id[rid]) for rid in seen[1] if rid in by_id]})
        # Validate everything first: the call is all-or-nothing.
        new_records: list[dict[str, Any]] = []
        for item in records:
            values = item.get("fields") if isinstance(item, dict) else None
            if not isinstance(values, dict):
                raise FeishuApiError(400, 1254001, "WrongRequestBody: every record needs fields")
            checked = {name: self._check_value(app_token, table, name, value) for name, value in values.items()}
            new_records.append({"record_id": self._record_id(), "fields": checked})
        table.records.extend(new_records)
        if client_token:
            table.client_tokens[client_token] = (fingerprint, [r["record_id"] for r in new_records])
        return self._ok({"records": [self._record_out(r) for r in new_records]})

    @staticmethod
    def _record_out(record: dict[str, Any]) -> dict[str, Any]:
        return {"fields": copy.deepcopy(record["fields"]), "id": record["record_id"], "record_id": record["record_id"]}

    # ---- Drive -----------------------------------------------------------------------------------

    def _upload_all(self, rec: RecordedRequest) -> _Reply:
        if rec.form is None:
            raise FeishuApiError(400, 1061002, "params error.")
        file_name = rec.form_value("file_name")
        parent_type = rec.form_value("parent_type")
        parent_node = rec.form_value("parent_node")
        size_text = rec.form_value("size")
        part = rec.form.get("file")
        if part is None or parent_type is None or parent_node is None or size_text is None:
            raise FeishuApiError(400, 1061002, "params error.")
        if not file_name or len(file_name) > 250:
            raise FeishuApiError(400, 1061008, "invalid file name.")
        if parent_type not in ("bitable_image", "bitable_file", "doc_image", "docx_image", "doc_file", "docx_file"):
            raise FeishuApiError(400, 1061002, "params error: parent_type")
        try:
            size = int(size_text)
        except ValueError:
            raise FeishuApiError(400, 1061002, "params error: size") from None
        if size > UPLOAD_ALL_LIMIT_BYTES or len(part.data) > UPLOAD_ALL_LIMIT_BYTES:
            raise FeishuApiError(400, 1061043, "file size beyond limit.")
        if size != len(part.data):
            raise FeishuApiError(400, 1062009, "the actual size is inconsistent with the parameter declaration size.")
        if parent_type.startswith("bitable_"):
            app = self.apps.get(parent_node)
            if app is None:
                raise FeishuApiError(400, 1061044, "parent node not exist.")
            if not app.readable:
                raise FeishuApiError(403, 1061004, "forbidden.")
        token = _random_token("", 27)
        self.media[token] = FakeMedia(
            file_token=token,
            data=part.data,
            name=file_name,
            content_type=_guess_type(file_name),
            parent_type=parent_type,
            parent_node=parent_node,
        )
        return self._ok({"file_token": token})

    def _download_media(self, rec: RecordedRequest, file_token: str) -> _Reply:
        media = self.media.get(file_token)
        if media is None:
            raise FeishuApiError(404, 1061003, "not found.")
        app = self.apps.get(media.parent_node)
        if app is not None and not app.readable:
            raise FeishuApiError(403, 1061004, "forbidden.")
        return self._file_reply(media)

    def _tmp_download_urls(self, rec: RecordedRequest) -> _Reply:
        tokens = [t for t in rec.query.get("file_tokens", "").split(",") if t]  # one token per call here
        if not tokens:
            raise FeishuApiError(400, 1061002, "params error: file_tokens")
        urls = []
        for token in tokens:
            media = self.media.get(token)
            if media is None:
                continue  # Feishu leaves unknown tokens out of the answer
            app = self.apps.get(media.parent_node)
            if app is not None and not app.readable:
                raise FeishuApiError(403, 1061004, "forbidden.")
            key = secrets.token_urlsafe(8)
            self.tmp_download_keys[key] = token
            urls.append({"file_token": token, "tmp_download_url": f"{self.url}/cdn/tmp/{quote(token)}?key={key}"})
        return self._ok({"tmp_download_urls": urls})

    def _tmp_download(self, rec: RecordedRequest, file_token: str) -> _Reply:
        media = self.media.get(file_token)
        if media is None or self.tmp_download_keys.get(rec.query.get("key", "")) != file_token:
            return _Reply(403, b"Forbidden", [("Content-Type", "text/plain")])
        return self._file_reply(media)

    def _doc_for_permission(self, rec: RecordedRequest, token: str) -> FakeApp:
        if rec.query.get("type") != "bitable":
            raise FeishuApiError(400, 1063001, "Invalid parameter: type must match the document (bitable)")
        app = self.apps.get(token)
        if app is None:
            raise FeishuApiError(400, 1063001, "Invalid parameter: document not found")
        return app

    def _check_member(self, body: Mapping[str, Any]) -> tuple[str, str]:
        member_type, member_id = body.get("member_type"), body.get("member_id")
        if member_type not in MEMBER_TYPES or not isinstance(member_id, str) or not member_id:
            raise FeishuApiError(400, 1063001, "Invalid parameter: member_type/member_id")
        if member_type == "openid" and not member_id.startswith("ou_"):
            raise FeishuApiError(400, 1063001, "Invalid parameter: member_id does not match member_type")
        return str(member_type), member_id

    def _app_is_manager(self, app: FakeApp) -> bool:
        if app.owner == {"member_type": "app", "member_id": self.app_id}:
            return True
        return any(m.get("member_id") == self.app_id and m.get("perm") == "full_access" for m in app.members)

    def _add_member(self, rec: RecordedRequest, token: str) -> _Reply:
        app = self._doc_for_permission(rec, token)
        body = self._body(rec)
        member_type, member_id = self._check_member(body)
        perm = body.get("perm")
        if perm not in PERMS:
            raise FeishuApiError(400, 1063001, "Invalid parameter: perm")
        if not self._app_is_manager(app):
            raise FeishuApiError(403, 1063002, "Permission denied")
        member = {
            "member_type": member_type,
            "member_id": member_id,
            "perm": perm,
            "perm_type": body.get("perm_type") or "container",
            "type": body.get("type") or "user",
        }
        app.members = [m for m in app.members if (m["member_type"], m["member_id"]) != (member_type, member_id)]
        app.members.append(member)
        return self._ok({"member": member}, msg="Success")

    def _transfer_owner(self, rec: RecordedRequest, token: str) -> _Reply:
        app = self._doc_for_permission(rec, token)
        member_type, member_id = self._check_member(self._body(rec))
        if app.owner != {"member_type": "app", "member_id": self.app_id}:
            raise FeishuApiError(403, 1063002, "Permission denied")
        old_owner = app.owner
        app.owner = {"member_type": member_type, "member_id": member_id}
        app.members = [m for m in app.members if (m["member_type"], m["member_id"]) != (member_type, member_id)]
        if rec.query.get("remove_old_owner", "false").lower() != "true":
            app.members.append(
                {
                    "member_type": old_owner["member_type"],
                    "member_id": old_owner["member_id"],
                    "perm": rec.query.get("old_owner_perm") or "full_access",
                    "perm_type": "container",
                    "type": "app",
                }
            )
        return self._ok({})

    def _wiki_node(self, rec: RecordedRequest) -> _Reply:
        node = self.wiki_nodes.get(rec.query.get("token", ""))
        if node is None:
            raise FeishuApiError(400, 131005, "not found")
        return self._ok({"node": dict(node)})


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


def _make_handler(fake: FakeFeishu) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeFeishu/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            split = urlsplit(self.path)
            body = self._read_body()
            headers = dict(self.headers.items())
            content_type = self.headers.get("Content-Type", "")
            auth = self.headers.get("Authorization", "")
            rec = RecordedRequest(
                method=self.command,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers=headers,
                body=body,
                token=auth[len("Bearer ") :] if auth.startswith("Bearer ") else None,
                at=time.monotonic(),
            )
            if content_type.startswith("multipart/form-data"):
                try:
                    rec.form = parse_multipart(content_type, body)
                except ValueError:
                    rec.form = None
            elif body:
                # The SDK sends the token request without a Content-Type: parse JSON regardless.
                try:
                    rec.json = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    rec.json = None
            reply = fake._handle(rec)
            if reply is None:
                rec.status = -1
                self.close_connection = True
                self.connection.close()
                return
            rec.status, rec.code = reply.status, reply.code
            self.send_response(reply.status)
            for key, value in reply.headers:
                if isinstance(value, bytes):
                    # Raw bytes (a UTF-8 file name): written as is, like Feishu does.
                    self._headers_buffer.append(key.encode("latin-1") + b": " + value + b"\r\n")  # type: ignore[attr-defined]
                else:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                view = memoryview(reply.body)
                for start in range(0, len(view), 256 * 1024):
                    self.wfile.write(view[start : start + 256 * 1024])

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

    return Handler
