"""The one place the bot talks to the Feishu Open Platform: a thin, retrying wrapper around lark-oapi.

Every call goes through the SDK's typed request builders; this module adds what the SDK leaves out:

* retries with bounded exponential backoff for rate limits (HTTP 429 / 99991400, honouring
  ``x-ogw-ratelimit-reset``), 5xx answers and broken connections;
* recovery from an invalid tenant token: the SDK caches the token process-wide and never refetches it
  on 99991663, so the cache entry is cleared and the call retried once;
* idempotency keys (message ``uuid``, Bitable ``client_token``) so that a retried write lands once;
* downloads written to disk with a size cap, the partial file removed on error;
* one small error tree the bot can act on.

``lark_oapi`` takes about a second to import: it is imported inside the constructor and methods, so
importing this module stays cheap for the server's start path.

Errors::

    FeishuError(code, msg, http_status, log_id)   anything the Open Platform refused
    ├── RateLimited          429 / 99991400, per-message card updates (230020), Bitable 1254290
    ├── TokenInvalid         the tenant token was rejected even after one refetch
    ├── CredentialsRejected  the app id / secret are wrong (fix the configuration)
    ├── PermissionDenied     the app lacks access (not added to the Base, not in the chat, ...)
    ├── MessageGone          recalled, deleted, or too old to update (14 days)
    ├── NotFound             unknown message resource, Base, table, media or wiki node
    ├── TooLarge             over a size limit (ours or Feishu's)
    └── TransientError       5xx, timeouts, broken connections: retried here, raised when retries run out

Logs carry the operation, codes, HTTP status and Feishu's log_id; never tokens, secrets or bodies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
UPLOAD_ALL_MAX_BYTES = 20 * MB  # drive/v1/medias/upload_all; larger files need the chunked upload
RECORDS_PER_BATCH = 1000  # bitable batch_create

# Feishu codes, grouped by what the caller can do about them.
RATE_LIMIT_CODES = frozenset({99991400, 230020, 1254290})
TOKEN_CODES = frozenset({99991661, 99991663, 99991664, 99991665, 99991668, 99991671, 99991677})
CREDENTIAL_CODES = frozenset({10003, 10014})
MESSAGE_GONE_CODES = frozenset({230011, 230031, 230110})
PERMISSION_CODES = frozenset(
    {
        91403,  # docs: no permission on the document
        1254302,  # bitable: role has no permission (advanced permissions)
        1254304,
        1254303,  # bitable: attachment not uploaded to this Base
        1254027,
        1061004,  # drive: forbidden
        1061073,  # drive: scope not granted
        1063002,  # permissions: not a collaborator / not the owner
        230002,  # bot not in the chat
        230027,  # lack of necessary permissions
        234004,  # message resource: app not in the chat
        99991672,  # app lacks the API scope
        99991679,
        131006,  # wiki: permission denied
    }
)
NOT_FOUND_CODES = frozenset({91402, 1254040, 1254041, 1254043, 1061003, 1061007, 1061044, 234003, 131005})
TOO_LARGE_CODES = frozenset({230025, 234037, 1061043})
TRANSIENT_CODES = frozenset({1254607, 1255040, 1254291, 1061045, 1061001, 1061006, 1255001, 1255002})


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class FeishuError(Exception):
    """The Open Platform refused a call. ``code`` is Feishu's (-1 when no answer was parsed)."""

    retryable = False

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        http_status: int | None = None,
        log_id: str | None = None,
        operation: str = "",
    ) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.log_id = log_id
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}code {code} (http {http_status}, log_id {log_id}): {msg}")


class RateLimited(FeishuError):
    retryable = True

    def __init__(self, *args: Any, reset_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset_after_s = reset_after_s


class TokenInvalid(FeishuError):
    pass


class CredentialsRejected(FeishuError):
    pass


class PermissionDenied(FeishuError):
    pass


class MessageGone(FeishuError):
    pass


class NotFound(FeishuError):
    pass


class TooLarge(FeishuError):
    def __init__(self, *args: Any, size_bytes: int | None = None, limit_bytes: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class TransientError(FeishuError):
    retryable = True

    def __init__(self, *args: Any, request_sent: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # False when the request never left (connect refused / connect timeout): safe to resend anything.
        self.request_sent = request_sent


def error_for(
    code: int,
    msg: str,
    *,
    http_status: int | None = None,
    log_id: str | None = None,
    operation: str = "",
    headers: Mapping[str, str] | None = None,
) -> FeishuError:
    """The error class for a Feishu code and HTTP status."""
    kwargs: dict[str, Any] = {"http_status": http_status, "log_id": log_id, "operation": operation}
    if code in TOKEN_CODES:
        return TokenInvalid(code, msg, **kwargs)
    if code in RATE_LIMIT_CODES or http_status == 429:
        return RateLimited(code, msg, reset_after_s=_reset_after(headers or {}), **kwargs)
    if code in CREDENTIAL_CODES:
        return CredentialsRejected(code, msg, **kwargs)
    if code in MESSAGE_GONE_CODES:
        return MessageGone(code, msg, **kwargs)
    if code in PERMISSION_CODES:
        return PermissionDenied(code, msg, **kwargs)
    if code in NOT_FOUND_CODES:
        return NotFound(code, msg, **kwargs)
    if code in TOO_LARGE_CODES:
        return TooLarge(code, msg, **kwargs)
    if code in TRANSIENT_CODES or (http_status is not None and http_status >= 500):
        return TransientError(code, msg, **kwargs)
    return FeishuError(code, msg, **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _reset_after(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "x-ogw-ratelimit-reset")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Results and policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. Waits double from ``base_delay_s`` (with jitter) up to ``max_delay_s``;
    a rate limit's ``x-ogw-ratelimit-reset`` is honoured up to ``max_delay_s``. A call gives up after
    ``max_attempts`` attempts or once waiting again would pass ``max_total_s``."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    max_total_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_total_s < 0:
            raise ValueError("retry policy needs max_attempts >= 1 and non-negative delays")

    def backoff_s(self, attempt: int) -> float:
        """Wait after the ``attempt``-th failure (1-based): exponential, half-jittered."""
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


@dataclass(frozen=True)
class BitableApp:
    app_token: str
    url: str
    default_table_id: str


@dataclass(frozen=True)
class BitableTable:
    table_id: str
    name: str


@dataclass(frozen=True)
class BitableField:
    field_id: str
    field_name: str
    type: int
    ui_type: str = ""
    is_primary: bool = False
    property: dict[str, Any] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class FetchedMessage:
    """A chat message read back with the get-message API (a parent a user replied to)."""

    message_id: str
    message_type: str
    content: str  # the raw JSON string, as in a receive event
    chat_id: str = ""
    sender_type: str = ""
    deleted: bool = False  # recalled


@dataclass(frozen=True)
class WikiNode:
    node_token: str
    obj_token: str
    obj_type: str
    title: str = ""


def stable_uuid(*parts: str) -> str:
    """A UUIDv4-shaped idempotency key derived from ``parts``: the same parts give the same key, so a
    retried job re-sends with the key of its first try (message ``uuid``, Bitable ``client_token``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def card_json(card: Mapping[str, Any]) -> str:
    """A card as the ``content`` string the message APIs take."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class FeishuClient:
    """Synchronous and thread-safe (the SDK client holds no per-call state; the token cache is shared).

    ``sleep`` and ``clock`` are injectable so tests can observe waits without spending them."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        domain: str = "https://open.feishu.cn",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import lark_oapi as lark

        self._app_id = app_id
        self.domain = domain
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        # The SDK sets its process-wide "Lark" logger to this level; CRITICAL matches pipeline.logs,
        # which keeps the SDK from logging request details and event payloads.
        self._sdk: Any = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(domain)
            .timeout(timeout)
            .log_level(lark.LogLevel.CRITICAL)
            .build()
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> FeishuClient:
        return cls(
            settings.feishu_app_id,
            settings.feishu_app_secret.get_secret_value(),
            domain=settings.feishu_domain,
            **options,
        )

    # ---- the retry loop --------------------------------------------------------------------------

    def _call(self, operation: str, send: Callable[[], Any], *, idempotent: bool = True) -> Any:
        """Run ``send`` (which builds a fresh SDK request each time) until it succeeds or must stop.

        Non-idempotent calls are resent only when the platform provably did not act: rate limits,
        rejected tokens, and connections that never opened."""
        policy = self.retry
        deadline = self._clock() + policy.max_total_s
        attempt = 0
        token_refreshed = False
        while True:
            attempt += 1
            try:
                return self._checked(operation, send())
            except TokenInvalid as err:
                if token_refreshed:
                    raise
                token_refreshed = True
                attempt -= 1  # the refetch is a repair, not a retry
                log.warning(
                    "feishu %s: token rejected (code %s, log_id %s); refetching", operation, err.code, err.log_id
                )
                self._forget_token()
                continue
            except (RateLimited, TransientError) as err:
                resend_ok = idempotent or isinstance(err, RateLimited) or not getattr(err, "request_sent", True)
                wait = policy.backoff_s(attempt)
                if isinstance(err, RateLimited) and err.reset_after_s is not None:
                    wait = min(policy.max_delay_s, max(wait, err.reset_after_s))
                if not resend_ok or attempt >= policy.max_attempts or self._clock() + wait > deadline:
                    log.warning(
                        "feishu %s failed after %d attempt(s): code %s, http %s, log_id %s",
                        operation,
                        attempt,
                        err.code,
                        err.http_status,
                        err.log_id,
                    )
                    raise
                log.warning(
                    "feishu %s: code %s, http %s, log_id %s; retry %d/%d in %.2fs",
                    operation,
                    err.code,
                    err.http_status,
                    err.log_id,
                    attempt + 1,
                    policy.max_attempts,
                    wait,
                )
                self._sleep(wait)

    def _checked(self, operation: str, send_result: Any) -> Any:
        resp = send_result
        if resp.success():
            return resp
        raw = resp.raw
        status = raw.status_code if raw is not None else None
        headers: Mapping[str, str] = raw.headers if raw is not None and raw.headers else {}
        log_id = resp.get_log_id() or (resp.error.log_id if resp.error is not None else None)
        code = resp.code if resp.code is not None else -1
        msg = resp.msg or ("non-JSON error answer" if resp.code is None else "")
        raise error_for(code, msg, http_status=status, log_id=log_id, operation=operation, headers=headers)

    def _send(self, operation: str, call: Callable[[], Any]) -> Any:
        """Invoke the SDK and translate what it raises into this module's errors."""
        import requests
        from lark_oapi.core.exception import NoAuthorizationException, ObtainAccessTokenException
        from urllib3.exceptions import NewConnectionError

        try:
            return call()
        except ObtainAccessTokenException as exc:
            code = int(exc.code) if exc.code is not None else -1
            if code in CREDENTIAL_CODES:
                raise CredentialsRejected(code, str(exc.msg), operation=operation) from None
            if code in RATE_LIMIT_CODES:
                raise RateLimited(code, str(exc.msg), operation=operation) from None
            raise TransientError(code, f"tenant token request failed: {exc.msg}", operation=operation) from None
        except NoAuthorizationException as exc:
            raise CredentialsRejected(-1, exc.msg, operation=operation) from None
        except requests.exceptions.ConnectTimeout:
            raise TransientError(-1, "connect timeout", operation=operation, request_sent=False) from None
        except requests.exceptions.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            never_sent = isinstance(reason, NewConnectionError)
            raise TransientError(
                -1, f"connection failed ({type(exc).__name__})", operation=operation, request_sent=not never_sent
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(-1, f"request failed ({type(exc).__name__})", operation=operation) from None
        except ValueError as exc:
            # The SDK parses every answer as JSON: a gateway's HTML error page lands here.
            raise TransientError(-1, f"unparseable answer ({type(exc).__name__})", operation=operation) from None

    def _run(self, operation: str, call: Callable[[], Any], *, idempotent: bool = True) -> Any:
        return self._call(operation, lambda: self._send(operation, call), idempotent=idempotent)

    def _forget_token(self) -> None:
        from lark_oapi.core.token.manager import TokenManager

        # The SDK's cache key for a self-built app's tenant token; an empty value forces a refetch.
        TokenManager.cache.set(f"self_tenant_token:{self._app_id}", "", 0)

    # ---- messages --------------------------------------------------------------------------------

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

    # ---- downloads -------------------------------------------------------------------------------

    def download_message_resource(
        self, message_id: str, file_key: str, dest: Path, *, max_bytes: int, resource_type: str = "file"
    ) -> Path:
        """Save a file attached to a message (video and file messages both use ``type=file``).

        Memory bound: lark-oapi reads a body whole (``requests`` ``response.content``) before it
        returns, so a download holds the file in memory once; Feishu caps these at 100 MB (234037)."""
        from lark_oapi.api.im.v1 import GetMessageResourceRequest

        def call() -> Any:
            request = (
                GetMessageResourceRequest.builder()
                .message_id(message_id)
                .file_key(file_key)
                .type(resource_type)
                .build()
            )
            return self._sdk.im.v1.message_resource.get(request)

        resp = self._run("im.message_resource.get", call)
        return self._save(resp, dest, max_bytes, "im.message_resource.get")

    def download_drive_media(
        self,
        file_token: str,
        dest: Path,
        *,
        max_bytes: int,
        expected_size: int | None = None,
        extra: str | None = None,
    ) -> Path:
        """Save a Drive media file (a Bitable attachment). Same memory bound as above, without Feishu's
        cap: pass the attachment's ``size`` as ``expected_size`` so oversized files are refused before
        any byte is fetched."""
        from lark_oapi.api.drive.v1 import DownloadMediaRequest

        operation = "drive.media.download"
        if expected_size is not None and expected_size > max_bytes:
            raise TooLarge(
                -1,
                f"file is {expected_size} bytes, over the {max_bytes}-byte cap",
                operation=operation,
                size_bytes=expected_size,
                limit_bytes=max_bytes,
            )

        def call() -> Any:
            builder = DownloadMediaRequest.builder().file_token(file_token)
            if extra:
                builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
            return self._sdk.drive.v1.media.download(builder.build())

        resp = self._run(operation, call)
        return self._save(resp, dest, max_bytes, operation)

    def tmp_download_url(self, file_token: str, *, extra: str | None = None) -> str:
        """A temporary (24 h) URL for a Drive media file (a Bitable attachment), so the caller can
        stream it to disk instead of holding it in memory as the SDK's download does."""
        from lark_oapi.api.drive.v1 import BatchGetTmpDownloadUrlMediaRequest

        operation = "drive.media.batch_get_tmp_download_url"

        def call() -> Any:
            builder = BatchGetTmpDownloadUrlMediaRequest.builder().file_tokens([file_token])
            if extra:
                builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
            return self._sdk.drive.v1.media.batch_get_tmp_download_url(builder.build())

        resp = self._run(operation, call)
        for item in getattr(resp.data, "tmp_download_urls", None) or ():
            if item.file_token == file_token and item.tmp_download_url:
                return str(item.tmp_download_url)
        raise NotFound(1061003, f"no download URL for file {file_token}", operation=operation)

    @staticmethod
    def _save(resp: Any, dest: Path, max_bytes: int, operation: str) -> Path:
        data: bytes = resp.raw.content or b""
        if len(data) > max_bytes:
            raise TooLarge(
                -1,
                f"file is {len(data)} bytes, over the {max_bytes}-byte cap",
                operation=operation,
                size_bytes=len(data),
                limit_bytes=max_bytes,
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            with partial.open("wb") as fh:
                view = memoryview(data)
                for start in range(0, len(view), MB):
                    fh.write(view[start : start + MB])
            partial.replace(dest)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return dest

    # ---- Bitable ---------------------------------------------------------------------------------

    def create_bitable_app(self, name: str, folder_token: str = "", *, time_zone: str | None = None) -> BitableApp:
        """Create a Base (in ``folder_token``, or the app's own space when empty)."""
        from lark_oapi.api.bitable.v1 import CreateAppRequest, ReqApp

        def call() -> Any:
            builder = ReqApp.builder().name(name)
            if folder_token:
                builder = builder.folder_token(folder_token)
            if time_zone:
                builder = builder.time_zone(time_zone)
            return self._sdk.bitable.v1.app.create(CreateAppRequest.builder().request_body(builder.build()).build())

        app = self._run("bitable.app.create", call, idempotent=False).data.app
        return BitableApp(app_token=app.app_token, url=app.url or "", default_table_id=app.default_table_id or "")

    def create_table(
        self,
        app_token: str,
        name: str,
        fields: Sequence[Mapping[str, Any]],
        *,
        default_view_name: str | None = None,
    ) -> str:
        """Create a table; ``fields`` as the API takes them (``{"field_name", "type", "property"?}``,
        the first is the primary field). Returns the table_id."""
        from lark_oapi.api.bitable.v1 import (
            AppTableCreateHeader,
            CreateAppTableRequest,
            CreateAppTableRequestBody,
            ReqTable,
        )

        def call() -> Any:
            table = ReqTable.builder().name(name).fields([AppTableCreateHeader(dict(f)) for f in fields])
            if default_view_name:
                table = table.default_view_name(default_view_name)
            body = CreateAppTableRequestBody.builder().table(table.build()).build()
            request = CreateAppTableRequest.builder().app_token(app_token).request_body(body).build()
            return self._sdk.bitable.v1.app_table.create(request)

        return str(self._run("bitable.app_table.create", call, idempotent=False).data.table_id)

    def delete_table(self, app_token: str, table_id: str) -> None:
        from lark_oapi.api.bitable.v1 import DeleteAppTableRequest

        def call() -> Any:
            request = DeleteAppTableRequest.builder().app_token(app_token).table_id(table_id).build()
            return self._sdk.bitable.v1.app_table.delete(request)

        self._run("bitable.app_table.delete", call)

    def list_tables(self, app_token: str) -> list[BitableTable]:
        from lark_oapi.api.bitable.v1 import ListAppTableRequest

        tables: list[BitableTable] = []
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = ListAppTableRequest.builder().app_token(app_token).page_size(100)
                if page_token:
                    builder = builder.page_token(page_token)
                return self._sdk.bitable.v1.app_table.list(builder.build())

            data = self._run("bitable.app_table.list", call).data
            tables.extend(BitableTable(table_id=t.table_id, name=t.name or "") for t in data.items or [])
            if not data.has_more or not data.page_token:
                return tables
            page_token = data.page_token

    def list_fields(self, app_token: str, table_id: str) -> list[BitableField]:
        from lark_oapi.api.bitable.v1 import ListAppTableFieldRequest

        fields: list[BitableField] = []
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = ListAppTableFieldRequest.builder().app_token(app_token).table_id(table_id).page_size(100)
                if page_token:
                    builder = builder.page_token(page_token)
                return self._sdk.bitable.v1.app_table_field.list(builder.build())

            data = self._run("bitable.app_table_field.list", call).data
            for item in data.items or []:
                prop = json.loads(_marshal(item.property)) if item.property is not None else None
                fields.append(
                    BitableField(
                        field_id=item.field_id,
                        field_name=item.field_name,
                        type=int(item.type),
                        ui_type=item.ui_type or "",
                        is_primary=bool(item.is_primary),
                        property=prop,
                    )
                )
            if not data.has_more or not data.page_token:
                return fields
            page_token = data.page_token

    def iter_records(
        self,
        app_token: str,
        table_id: str,
        *,
        page_size: int = 500,
        view_id: str | None = None,
        field_names: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record as ``{"record_id", "fields"}``, page by page (``page_size`` <= 500)."""
        from lark_oapi.api.bitable.v1 import ListAppTableRecordRequest

        if not 1 <= page_size <= 500:
            raise ValueError("page_size must be 1..500")
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = (
                    ListAppTableRecordRequest.builder().app_token(app_token).table_id(table_id).page_size(page_size)
                )
                if page_token:
                    builder = builder.page_token(page_token)
                if view_id:
                    builder = builder.view_id(view_id)
                if field_names:
                    builder = builder.field_names(json.dumps(list(field_names), ensure_ascii=False))
                return self._sdk.bitable.v1.app_table_record.list(builder.build())

            data = self._run("bitable.app_table_record.list", call).data
            for item in data.items or []:
                yield {"record_id": item.record_id, "fields": dict(item.fields or {})}
            if not data.has_more or not data.page_token:
                return
            page_token = data.page_token

    def batch_create_records(
        self,
        app_token: str,
        table_id: str,
        records: Sequence[Mapping[str, Any]],
        *,
        client_token: str,
    ) -> list[str]:
        """Add rows (field name -> value) in one all-or-nothing call; returns their record_ids.

        ``client_token`` (UUID-shaped, see ``stable_uuid``) makes a resend return the same records."""
        from lark_oapi.api.bitable.v1 import (
            AppTableRecord,
            BatchCreateAppTableRecordRequest,
            BatchCreateAppTableRecordRequestBody,
        )

        if not records:
            return []
        if len(records) > RECORDS_PER_BATCH:
            raise ValueError(f"at most {RECORDS_PER_BATCH} records per batch_create, got {len(records)}")

        def call() -> Any:
            rows = [AppTableRecord.builder().fields(dict(r)).build() for r in records]
            body = BatchCreateAppTableRecordRequestBody.builder().records(rows).build()
            request = (
                BatchCreateAppTableRecordRequest.builder()
                .app_token(app_token)
                .table_id(table_id)
                .client_token(client_token)
                .request_body(body)
                .build()
            )
            return self._sdk.bitable.v1.app_table_record.batch_create(request)

        data = self._run("bitable.app_table_record.batch_create", call).data
        return [str(r.record_id) for r in data.records or []]

    # ---- Drive -----------------------------------------------------------------------------------

    def upload_media(
        self,
        path: Path,
        *,
        parent_type: str,
        parent_node: str,
        file_name: str | None = None,
        extra: str | None = None,
    ) -> str:
        """Upload a file for a Bitable cell (``parent_type`` bitable_image|bitable_file, ``parent_node``
        the Base's app_token); returns the file_token. Streams from disk; at most 20 MB."""
        from lark_oapi.api.drive.v1 import UploadAllMediaRequest, UploadAllMediaRequestBody

        operation = "drive.media.upload_all"
        size = path.stat().st_size
        if size > UPLOAD_ALL_MAX_BYTES:
            raise TooLarge(
                -1,
                f"{path.name} is {size} bytes; upload_all takes at most {UPLOAD_ALL_MAX_BYTES}",
                operation=operation,
                size_bytes=size,
                limit_bytes=UPLOAD_ALL_MAX_BYTES,
            )

        def call() -> Any:
            with path.open("rb") as fh:
                builder = (
                    UploadAllMediaRequestBody.builder()
                    .file_name(file_name or path.name)
                    .parent_type(parent_type)
                    .parent_node(parent_node)
                    .size(size)
                    .file(fh)
                )
                if extra:
                    builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
                request = UploadAllMediaRequest.builder().request_body(builder.build()).build()
                return self._sdk.drive.v1.media.upload_all(request)

        return str(self._run(operation, call).data.file_token)

    def add_member(
        self,
        token: str,
        *,
        member_id: str,
        doc_type: str = "bitable",
        member_type: str = "openid",
        perm: str = "full_access",
        need_notification: bool = False,
    ) -> None:
        """Make a user (or chat, ...) a collaborator of a document."""
        from lark_oapi.api.drive.v1 import BaseMember, CreatePermissionMemberRequest

        def call() -> Any:
            member = BaseMember.builder().member_type(member_type).member_id(member_id).perm(perm).build()
            request = (
                CreatePermissionMemberRequest.builder()
                .token(token)
                .type(doc_type)
                .need_notification(need_notification)
                .request_body(member)
                .build()
            )
            return self._sdk.drive.v1.permission_member.create(request)

        self._run("drive.permission_member.create", call)

    def transfer_owner(
        self,
        token: str,
        *,
        member_id: str,
        doc_type: str = "bitable",
        member_type: str = "openid",
        remove_old_owner: bool = False,
        old_owner_perm: str = "full_access",
        need_notification: bool | None = None,
    ) -> None:
        """Hand a document the app owns to a user; the app keeps ``old_owner_perm`` unless removed."""
        from lark_oapi.api.drive.v1 import Owner, TransferOwnerPermissionMemberRequest

        def call() -> Any:
            owner = Owner.builder().member_type(member_type).member_id(member_id).build()
            builder = (
                TransferOwnerPermissionMemberRequest.builder()
                .token(token)
                .type(doc_type)
                .remove_old_owner(remove_old_owner)
                .request_body(owner)
            )
            if not remove_old_owner:
                builder = builder.old_owner_perm(old_owner_perm)
            if need_notification is not None:
                builder = builder.need_notification(need_notification)
            return self._sdk.drive.v1.permission_member.transfer_owner(builder.build())

        self._run("drive.permission_member.transfer_owner", call)

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

    # ---- Wiki ------------------------------------------------------------------------------------

    def get_wiki_node(self, node_token: str) -> WikiNode:
        """What a ``/wiki/<token>`` link wraps (a Base: ``obj_type == "bitable"``, ``obj_token`` its app_token)."""
        from lark_oapi.api.wiki.v2 import GetNodeSpaceRequest

        def call() -> Any:
            request = GetNodeSpaceRequest.builder().token(node_token).obj_type("wiki").build()
            return self._sdk.wiki.v2.space.get_node(request)

        node = self._run("wiki.space.get_node", call).data.node
        return WikiNode(
            node_token=node.node_token or node_token,
            obj_token=node.obj_token,
            obj_type=node.obj_type,
            title=node.title or "",
        )


def _marshal(obj: Any) -> str:
    from lark_oapi.core.json import JSON

    text = JSON.marshal(obj)
    return text if isinstance(text, str) else "null"
