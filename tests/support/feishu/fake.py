"""A fake Feishu Open Platform on loopback: a real HTTP server the real lark-oapi SDK talks to.

Tests point ``FeishuClient`` (or any ``lark.Client``) at ``fake.url`` and then assert on what the fake
received (``fake.requests``, ``find``, ``wait_for``) and on the state it keeps (messages and their patch
history, Bases, tables, records, uploaded media, collaborators and owners).

Behaviour follows ``/work/shared/FEISHU.md`` and the official samples in ``tests/fixtures/feishu-samples/``:

* every non-download endpoint answers ``{"code", "msg", "data"}`` (errors add ``error.log_id``), with the
  HTTP status Feishu documents for the code; every answer carries an ``X-Tt-Logid`` header;
* the token endpoint answers at top level (``tenant_access_token``, ``expire``) and parses a body sent
  without a Content-Type header, as the SDK sends it;
* header names are written exactly (``Content-Disposition``, ``Content-Type``): the SDK reads them
  case-sensitively;
* multipart bodies are parsed from the raw bytes (the SDK sends the file part without a filename and
  ``None`` fields as empty parts).

Fault injection: ``fail`` (429 with ``x-ogw-ratelimit-reset`` by default, 5xx, any code, dropped
connections), ``delay``, ``lose_answer`` (the request is carried out, its answer never arrives) and
``invalidate_tokens``. Built on the standard library only
(``ThreadingHTTPServer`` in a daemon thread), so it starts in milliseconds.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support.feishu.bitable import BitableApi
from tests.support.feishu.drive import DriveApi
from tests.support.feishu.messages import MessagesApi
from tests.support.feishu.records import (
    APP_TOKEN_PATH,
    TOKEN_PATH,
    FakeApp,
    FakeMedia,
    FakeMessage,
    FakeTable,
    FeishuApiError,
    RecordedRequest,
    _Delay,
    _Fault,
    _LostAnswer,
    _method_matches,
    _now_ms,
    _path_matches,
    _Reply,
    parse_multipart,
)

# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeFeishu(MessagesApi, BitableApi, DriveApi):
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
        self.deleted_apps: list[FakeApp] = []  # Bases deleted through Drive (in the owner's recycle bin)
        self.media: dict[str, FakeMedia] = {}
        self.images: dict[str, bytes] = {}
        self.resources: dict[tuple[str, str], FakeMedia] = {}
        self.wiki_nodes: dict[str, dict[str, str]] = {}
        # Drive folders the app has less than edit access to ("view", "none") or that do not exist
        # ("missing"); any other folder token is one the app may edit.
        self.folder_access: dict[str, str] = {}
        self.issued_tokens: list[str] = []

        self._lock = threading.RLock()
        self._valid_tokens: set[str] = set()
        self._message_uuids: dict[str, str] = {}
        self._recalled: set[str] = set()
        self._patch_times: dict[str, deque[float]] = {}
        self._faults: list[_Fault] = []
        self._lost: list[_LostAnswer] = []
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
        applied: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests (``None`` = all) with an error instead.

        Defaults: 429 / 99991400 with ``x-ogw-ratelimit-limit`` and ``x-ogw-ratelimit-reset: 1``;
        5xx default to code 1 "internal error". ``body`` replaces the JSON body (e.g. an HTML 502 page);
        ``drop_connection`` closes the socket without answering; ``applied`` carries the request out first
        (Feishu's "possibly applied" answers, such as 1254608). Faults are checked before auth."""
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
                    applied=applied,
                )
            )

    def delay(
        self, method: str, path_pattern: str | re.Pattern[str], seconds: float, *, times: int | None = None
    ) -> None:
        """Sleep ``seconds`` before answering matching requests (``times`` = None: every one)."""
        with self._lock:
            self._delays.append(_Delay(method=method, pattern=path_pattern, remaining=times, seconds=seconds))

    def lose_answer(
        self, method: str, path_pattern: str | re.Pattern[str], *, times: int | None = 1, hold_s: float = 0.0
    ) -> None:
        """Carry out the next ``times`` matching requests, then hold the connection silent for ``hold_s``
        (a client timeout shorter than that gives up first) and drop it: the platform acted, the caller
        never heard (a crash, or a client timeout on a slow answer)."""
        with self._lock:
            self._lost.append(_LostAnswer(method=method, pattern=path_pattern, remaining=times, hold_s=hold_s))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._lost.clear()

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
            ("GET", r"^/open-apis/drive/v1/files$", self._list_files, True),
            ("DELETE", rf"^/open-apis/drive/v1/files/{seg}$", self._delete_file, True),
            ("GET", rf"^/open-apis/drive/v1/permissions/{seg}/members/auth$", self._auth_member, True),
            ("GET", r"^/open-apis/wiki/v2/spaces/get_node$", self._wiki_node, True),
        ]
        return [(m, re.compile(p), h, auth) for m, p, h, auth in routes]

    def add_route(self, method: str, pattern: str, handler: Callable[..., _Reply], *, needs_auth: bool = False) -> None:
        """Serve one more endpoint (a regex on the path; groups become arguments), e.g. the long
        connection's (``tests/support/feishu/ws.py``)."""
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
            if fault is not None and fault.applied:
                rec.fault = True
                self._route(rec)  # done, whatever it answered; the caller hears the error
                return self._error(fault.status, fault.code, fault.msg)
            if fault is not None:
                rec.fault = True
                if fault.drop_connection:
                    return None
                if fault.body is not None:
                    return _Reply(fault.status, fault.body, [("Content-Type", "text/html"), *fault.headers.items()])
                reply = self._error(fault.status, fault.code, fault.msg)
                reply.headers.extend(fault.headers.items())
                return reply
            reply = self._route(rec)
            lost = self._take_rule(self._lost, rec) if reply.status < 400 else None
        if lost is not None:
            time.sleep(lost.hold_s)
            return None
        return reply

    def _route(self, rec: RecordedRequest) -> _Reply:
        """The endpoint's answer (called with the lock held)."""
        for method, pattern, handler, needs_auth in self._routes:
            match = pattern.match(rec.path)
            if match is None or method != rec.method:
                continue
            try:
                if needs_auth:
                    self._check_token(rec)
                params = [unquote(g) for g in match.groups()]
                reply: _Reply = handler(rec, *params)
                return reply
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
