"""Streaming HTTP(S) download of one video file through a guarded session (``pipeline.netguard``).

One call, ``download()``, brings a URL to a file in ``dest_dir`` or raises a ``SourceError`` a user can act on:

- http(s) only; redirects are followed hop by hop, each hop through the address guard;
- transient failures (connection errors, timeouts, 408/429/5xx) are retried with exponential backoff and
  jitter, honouring a reasonable ``Retry-After``; other 4xx are final. Backoff sleeps wake on cancel;
- the size cap holds from ``Content-Length`` up front and again while streaming (a server may send none,
  or lie); a web page or an empty body is not a video;
- the file name comes from ``Content-Disposition`` (``filename*`` too) or the URL, made safe;
- an overall deadline and a minimum average rate bound the whole download, and a cancel takes effect
  within a fraction of a second even while a read is blocked (``pipeline.transfer_watch``);
- nothing is left behind on failure or cancellation.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.cookies import RequestsCookieJar
from urllib3.exceptions import NameResolutionError, ReadTimeoutError

from pipeline.errors import DownloadError, JobCancelled, NotAVideoError, TooLargeError
from pipeline.file_names import name_from_response as name_from_response
from pipeline.file_names import reserve_path as reserve_path
from pipeline.file_names import safe_filename as safe_filename
from pipeline.models import CancelToken, FetchedFile, UserText
from pipeline.netguard import MAX_REDIRECTS, open_following_redirects, require_http_url
from pipeline.transfer_watch import TransferLimits, TransferWatch

if TYPE_CHECKING:
    from pipeline.config import PipelineSettings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)

# (bytes written so far, total bytes when the server said, else None)
ByteProgress = Callable[[int, int | None], None]
# Given the URL of a web page the download turned out to be, produce the video some other way.
WebPageHandler = Callable[[str], FetchedFile]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_START = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|script|iframe|title|style|div|table|h1|p|a|b|br|font)[\s>/]|<!--",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DownloadPolicy:
    """How downloads behave; ``from_settings`` reads the configured parts."""

    max_bytes: int
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    # A longer Retry-After is not waited for: the failure is reported at once (still marked retryable).
    retry_after_max_s: float = 60.0
    max_redirects: int = MAX_REDIRECTS
    chunk_bytes: int = 256 * 1024
    progress_step_bytes: int = 1024 * 1024
    max_name_bytes: int = 180
    # The whole download (retries and their waits included), and the lowest average rate judged from
    # ``min_rate_grace_s`` on; 0 turns the rate floor off.
    deadline_s: float = 3600.0
    min_bytes_per_s: float = 16 * 1024
    min_rate_grace_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.chunk_bytes <= 0 or self.progress_step_bytes <= 0:
            raise ValueError("max_bytes, chunk_bytes and progress_step_bytes must be positive")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must not be negative")

    @classmethod
    def from_settings(cls, settings: PipelineSettings, **overrides: Any) -> DownloadPolicy:
        values: dict[str, Any] = {
            "max_bytes": settings.max_video_bytes,
            "connect_timeout_s": settings.download_connect_timeout_s,
            "read_timeout_s": settings.download_read_timeout_s,
            "retries": settings.download_retries,
            "deadline_s": settings.download_deadline_s,
            "min_bytes_per_s": settings.download_min_bytes_per_s,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)

    @property
    def limits(self) -> TransferLimits:
        # One read may hold up to a chunk unseen: it counts in the download's favour.
        return TransferLimits(self.deadline_s, self.min_bytes_per_s, self.min_rate_grace_s, self.chunk_bytes)

    def backoff_s(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; None when the server asks for too long."""
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.retry_after_max_s else None
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def download(
    url: str,
    dest_dir: Path,
    *,
    session: requests.Session,
    policy: DownloadPolicy,
    cancel: CancelToken,
    on_bytes: ByteProgress | None = None,
    headers: Mapping[str, str] | None = None,
    file_name: str | None = None,
    on_web_page: WebPageHandler | None = None,
) -> FetchedFile:
    """Download ``url`` into ``dest_dir``. ``session`` must come from ``netguard.guarded_session``.

    ``file_name`` overrides the name the server suggests (still made safe). When the body is a web page,
    ``on_web_page`` (if given) is called with the page's final URL and its result returned; otherwise
    ``NotAVideoError`` is raised."""
    url = require_http_url(url)
    cancel.raise_if_cancelled()
    with TransferWatch(url, policy.limits, cancel) as watch:
        outcome = _with_retries(
            url,
            dest_dir,
            session=session,
            policy=policy,
            watch=watch,
            cancel=cancel,
            on_bytes=on_bytes,
            headers=headers,
            file_name=file_name,
        )
    if isinstance(outcome, FetchedFile):
        return outcome
    if on_web_page is not None:
        return on_web_page(outcome.url)
    raise NotAVideoError(
        "the link is a web page, not a video file",
        UserText(
            zh="这个链接是网页，不是视频文件。请发送视频文件，或视频的直接下载链接。",
            en="This link is a web page, not a video file. Send the video file or a direct link to it.",
        ),
    )


def _with_retries(
    url: str,
    dest_dir: Path,
    *,
    session: requests.Session,
    policy: DownloadPolicy,
    watch: TransferWatch,
    cancel: CancelToken,
    on_bytes: ByteProgress | None,
    headers: Mapping[str, str] | None,
    file_name: str | None,
) -> FetchedFile | _WebPage:
    cookies = RequestsCookieJar()  # lives for this download only: redirects and retries share it
    attempt = 0
    while True:
        watch.raise_if_stopped()
        try:
            return _attempt(
                url,
                dest_dir,
                session=session,
                policy=policy,
                watch=watch,
                on_bytes=on_bytes,
                headers=headers,
                file_name=file_name,
                cookies=cookies,
            )
        except _Transient as transient:
            delay = policy.backoff_s(attempt, transient.retry_after_s) if attempt < policy.retries else None
            if delay is None or delay >= watch.remaining_s():
                raise transient.error from transient.__cause__
            attempt += 1
            log.info("download: %s; retry %d/%d in %.1f s", transient.error.detail, attempt, policy.retries, delay)
            if cancel.wait(delay):
                raise JobCancelled() from None


# --------------------------------------------------------------------------------------------------
# One attempt
# --------------------------------------------------------------------------------------------------


class _Transient(Exception):
    """Internal: a failure worth retrying. Never leaves this module (``download`` raises ``error``)."""

    def __init__(self, error: DownloadError, retry_after_s: float | None = None) -> None:
        super().__init__(error.detail)
        self.error = error
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class _WebPage:
    url: str


def _attempt(
    url: str,
    dest_dir: Path,
    *,
    session: requests.Session,
    policy: DownloadPolicy,
    watch: TransferWatch,
    on_bytes: ByteProgress | None,
    headers: Mapping[str, str] | None,
    file_name: str | None,
    cookies: RequestsCookieJar,
) -> FetchedFile | _WebPage:
    try:
        response = open_following_redirects(
            session,
            url,
            timeout=policy.timeout,
            headers=headers,
            cookies=cookies,
            max_redirects=policy.max_redirects,
        )
        with response:
            _check_status(response)
            watch.attach(_socket_of(response))
            try:
                return _save_body(
                    response, dest_dir, policy=policy, watch=watch, on_bytes=on_bytes, file_name=file_name
                )
            finally:
                watch.attach(None)
    except requests.RequestException as exc:
        watch.raise_if_stopped()  # a connection the watch shut down: say why, do not retry
        raise _transport_failure(exc, url, policy) from exc


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    host = urlsplit(response.url).hostname or "?"
    if status in (408, 429) or status >= 500:
        user_message = None
        if status == 429:
            user_message = UserText(
                zh="对方服务器限制了访问频率（HTTP 429）。请稍后点“重试失败项”。",
                en="The server is rate-limiting requests (HTTP 429). Try again later with “Retry failed”.",
            )
        error = DownloadError(f"HTTP {status} from {host}", status=status, retryable=True, user_message=user_message)
        raise _Transient(error, _retry_after_s(response.headers.get("Retry-After")))
    if status >= 300:  # 4xx, or a redirect without a Location
        raise DownloadError(f"HTTP {status} from {host}", status=status)


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time())


def _save_body(
    response: requests.Response,
    dest_dir: Path,
    policy: DownloadPolicy,
    *,
    watch: TransferWatch,
    on_bytes: ByteProgress | None,
    file_name: str | None,
) -> FetchedFile | _WebPage:
    total = _content_length(response)
    if total is not None and total > policy.max_bytes:
        raise TooLargeError(total, policy.max_bytes)
    content_type = _media_type(response.headers.get("Content-Type"))
    if content_type in HTML_TYPES:
        return _WebPage(response.url)

    chunks = response.iter_content(chunk_size=policy.chunk_bytes)
    first = next((chunk for chunk in chunks if chunk), b"")
    watch.raise_if_stopped()  # an empty "first" may be a connection the watch shut down
    if not first:
        raise NotAVideoError(
            "the server sent an empty file",
            UserText(
                zh="链接返回的是空文件（0 字节）。请确认链接指向完整的视频文件。",
                en="The link returned an empty file (0 bytes). Check that it points to a complete video.",
            ),
        )
    if looks_like_web_page(first):
        return _WebPage(response.url)
    if first.lstrip().startswith(b"#EXTM3U"):
        raise NotAVideoError(
            "the link is an HLS playlist, not a video file",
            UserText(
                zh="这个链接是直播/分段流的播放列表（m3u8），不是视频文件。请发送视频文件或视频网页链接。",
                en="This link is a streaming playlist (m3u8), not a video file. Send the video file "
                "or the video's web page.",
            ),
        )

    if file_name:
        name = safe_filename(file_name, max_bytes=policy.max_name_bytes)
    else:
        disposition = response.headers.get("Content-Disposition")
        name = name_from_response(disposition, response.url, content_type, max_bytes=policy.max_name_bytes)
    path = reserve_path(dest_dir, name)
    # A compressed body decodes to more bytes than Content-Length says: then the total is unknown.
    progress = _Progress(on_bytes, None if response.headers.get("Content-Encoding") else total, policy)
    try:
        size = _write(path, itertools.chain([first], chunks), policy=policy, watch=watch, progress=progress)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FetchedFile(
        path=path,
        name=path.name,
        size_bytes=size,
        content_type=content_type or None,
        final_url=response.url,
    )


def _write(
    path: Path, chunks: Iterator[bytes], *, policy: DownloadPolicy, watch: TransferWatch, progress: _Progress
) -> int:
    done = 0
    with path.open("wb") as out:
        for chunk in chunks:
            watch.raise_if_stopped()
            watch.count(len(chunk))
            done += len(chunk)
            if done > policy.max_bytes:
                raise TooLargeError(None, policy.max_bytes)
            out.write(chunk)
            progress.update(done)
    # A body without a Content-Length ends when the connection does: also when the watch shut it.
    watch.raise_if_stopped()
    progress.finish(done)
    return done


@dataclass
class _Progress:
    """Calls ``on_bytes`` every ``progress_step_bytes`` (or 1% of a large total), and once at the end."""

    callback: ByteProgress | None
    total: int | None
    policy: DownloadPolicy
    _step: int = field(init=False)
    _reported: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._step = max(self.policy.progress_step_bytes, (self.total or 0) // 100)

    def update(self, done: int) -> None:
        if self.callback is not None and done - self._reported >= self._step:
            self._reported = done
            self.callback(done, self.total)

    def finish(self, done: int) -> None:
        if self.callback is not None and done != self._reported:
            self._reported = done
            self.callback(done, self.total)


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def looks_like_web_page(head: bytes) -> bool:
    """Whether the first bytes of a body are HTML, whatever the Content-Type said."""
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f")
    return _HTML_START.match(text) is not None


# --------------------------------------------------------------------------------------------------
# Errors of the transport
# --------------------------------------------------------------------------------------------------


def transport_error(exc: requests.RequestException, url: str, policy: DownloadPolicy) -> DownloadError:
    """The error to report for a request that failed below HTTP (DNS, TLS, timeouts, broken connections);
    ``retryable`` says whether trying again later may help."""
    failure = _transport_failure(exc, url, policy)
    return failure.error if isinstance(failure, _Transient) else failure


def _transport_failure(exc: requests.RequestException, url: str, policy: DownloadPolicy) -> _Transient | DownloadError:
    host = urlsplit(url).hostname or url
    if find_cause(exc, NameResolutionError) is not None:
        lookup = find_cause(exc, socket.gaierror)
        if lookup is not None and lookup.errno == socket.EAI_AGAIN:  # the resolver itself is struggling
            return _Transient(
                DownloadError(
                    f"DNS lookup of {host} failed for now",
                    retryable=True,
                    user_message=UserText(
                        zh=f"暂时无法解析网站 {host} 的地址。请稍后点“重试失败项”。",
                        en=f"The address of {host} could not be looked up just now. "
                        "Try again later with “Retry failed”.",
                    ),
                )
            )
        return DownloadError(
            f"cannot resolve host {host}",
            user_message=UserText(
                zh=f"找不到网站 {host}。请检查链接是否拼写正确。",
                en=f"The site {host} could not be found. Check the link for typos.",
            ),
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return DownloadError(
            f"TLS error with {host}: {_root_cause(exc)}",
            user_message=UserText(
                zh=f"网站 {host} 的 HTTPS 证书无效，出于安全原因不下载。请换一个链接。",
                en=f"The HTTPS certificate of {host} is not valid, so the bot will not download from it. "
                "Use another link.",
            ),
        )
    if isinstance(exc, requests.ConnectTimeout):
        return _Transient(
            DownloadError(
                f"connecting to {host} timed out after {policy.connect_timeout_s:g} s",
                retryable=True,
                user_message=UserText(
                    zh=f"连接 {host} 超时。请确认网站可以访问，稍后点“重试失败项”。",
                    en=f"Connecting to {host} timed out. Check that the site is up and try again later "
                    "with “Retry failed”.",
                ),
            )
        )
    if isinstance(exc, requests.ReadTimeout) or find_cause(exc, ReadTimeoutError) is not None:
        return _Transient(
            DownloadError(
                f"{host} sent nothing for {policy.read_timeout_s:g} s (read timeout)",
                retryable=True,
                user_message=UserText(
                    zh=f"{host} 超过 {policy.read_timeout_s:g} 秒没有响应，下载超时。请稍后点“重试失败项”。",
                    en=f"{host} stopped responding for {policy.read_timeout_s:g} s and the download timed out. "
                    "Try again later with “Retry failed”.",
                ),
            )
        )
    if isinstance(
        exc,
        requests.ConnectionError | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError,
    ):
        return _Transient(
            DownloadError(
                f"connection to {host} failed: {_root_cause(exc)}",
                retryable=True,
                user_message=UserText(
                    zh=f"与 {host} 的连接中断了。请稍后点“重试失败项”。",
                    en=f"The connection to {host} broke. Try again later with “Retry failed”.",
                ),
            )
        )
    return DownloadError(
        f"request to {host} failed: {_root_cause(exc)}",
        user_message=UserText(
            zh=f"无法从 {host} 下载，链接可能有误。请检查链接后重新发送。",
            en=f"Could not download from {host}; the link may be malformed. Check it and send it again.",
        ),
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost cause, named: the outer layers of requests/urllib3 errors repeat the full URL, which
    may carry a user's access token and does not belong in logs."""
    current: BaseException = exc
    for _ in range(10):
        inner = current.__cause__ or getattr(current, "reason", None)
        if not isinstance(inner, BaseException) and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if not isinstance(inner, BaseException):
            break
        current = inner
    return f"{type(current).__name__}: {current}"


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in ``exc``'s chain. Libraries wrap causes in different
    places (``__cause__``, ``reason`` in urllib3, ``cause`` and ``exc_info`` in yt-dlp, ``args`` in
    requests), so all of them are followed."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        if isinstance(item, kind):
            return item
        seen.add(id(item))
        exc_info = getattr(item, "exc_info", None)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), getattr(item, "cause", None)]
        todo += [exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None, *item.args]
    return None
