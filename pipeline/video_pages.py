"""Video pages: yt-dlp in "tell me, do not download" mode, every request it makes guarded, turning a
page (Bilibili, YouTube, any page with a <video>) into the file or files ``pipeline.download`` then
fetches (``pipeline.sources.UrlFetcher`` uses it).

A page's video is one file with sound and picture where the site offers one. Many sites (Bilibili, most
YouTube qualities, DASH players) only offer the picture and the sound as separate files: then the best
video-only file up to 1080p (MP4 preferred) and the best audio-only file (M4A preferred) are both
downloaded, within the one size cap, and merged without re-encoding by ``pipeline.ffmpeg.merge_av``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from pipeline.download import (
    DownloadPolicy,
    find_cause,
    transport_error,
)
from pipeline.errors import (
    DownloadError,
    NotAVideoError,
    PipelineError,
    TooLargeError,
    TooLongError,
)
from pipeline.models import UserText
from pipeline.netguard import open_following_redirects

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)


# Files fetched over plain http(s), whole: never HLS/DASH segments (which our downloader does not join).
_PLAIN_HTTP = "[protocol^=http][protocol!*=dash]"
# One file with both audio and video: no merging needed.
SINGLE_FILE_FORMAT = f"best{_PLAIN_HTTP}"
# Picture enough for screenshots; higher resolutions only cost download time.
MAX_SEPARATE_HEIGHT = 1080
# Extensions whose streams an MP4 holds as they are; other pairs are merged into Matroska.
_MP4_VIDEO_EXTS = frozenset({"mp4", "m4v", "mov"})
_MP4_AUDIO_EXTS = frozenset({"m4a", "mp4", "aac"})


def page_format_spec(max_bytes: int) -> str:
    """yt-dlp's format selection: one file with sound and picture where the site offers one within the
    size cap; else the best video-only (up to ``MAX_SEPARATE_HEIGHT``, MP4 preferred) plus the best
    audio-only file (M4A preferred), each within the cap; else whatever single or separate files exist,
    so that the size check reports "too large" instead of "no video"."""
    fits = f"[filesize<?{max_bytes}][filesize_approx<?{max_bytes}]"
    video = f"bestvideo{_PLAIN_HTTP}{fits}"
    audio = f"bestaudio{_PLAIN_HTTP}{fits}"
    modest = f"[height<=?{MAX_SEPARATE_HEIGHT}]"
    return "/".join(
        (
            f"{SINGLE_FILE_FORMAT}{fits}",
            f"{video}{modest}[ext=mp4]+{audio}[ext=m4a]",
            f"{video}{modest}+{audio}",
            f"{video}+{audio}",
            SINGLE_FILE_FORMAT,
            f"bestvideo{_PLAIN_HTTP}+bestaudio{_PLAIN_HTTP}",
        )
    )


@dataclass(frozen=True)
class PageStream:
    """One file behind a page: where it is, what downloading it needs, and its size when known."""

    url: str
    headers: Mapping[str, str]
    ext: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class PageMedia:
    """The media yt-dlp found behind a page, and what downloading it needs. ``url``, ``headers`` and
    ``ext`` describe the file to download: the one file with sound and picture, or, when ``audio`` is
    set, the video-only file that ``audio`` is merged with."""

    url: str
    headers: Mapping[str, str]
    title: str
    ext: str
    duration_s: float | None = None
    audio: PageStream | None = None
    video_size_bytes: int | None = None

    @property
    def container_ext(self) -> str:
        """The extension of the file the video ends up in (after the merge, where there is one)."""
        if self.audio is None:
            return self.ext or "mp4"
        if self.ext in _MP4_VIDEO_EXTS and self.audio.ext in _MP4_AUDIO_EXTS:
            return "mp4"
        return "mkv"

    @property
    def size_bytes(self) -> int | None:
        """Everything to download, when the site said."""
        if self.audio is None:
            return self.video_size_bytes
        if self.video_size_bytes is None or self.audio.size_bytes is None:
            return None
        return self.video_size_bytes + self.audio.size_bytes

    @property
    def file_name(self) -> str:
        # A title is not a path: "Q3/Q4 review" must not lose its first half to the path-stripping.
        title = self.title.replace("/", "_").replace("\\", "_")
        return f"{title or 'video'}.{self.container_ext}"


class VideoPageResolver:
    """Asks yt-dlp what video a page holds (``download=False``): yt-dlp downloads nothing itself, writes
    no cache, prints nothing, and sends every request through the guarded session."""

    def __init__(self, session: requests.Session, policy: DownloadPolicy, *, max_video_seconds: float) -> None:
        self._session = session
        self._policy = policy
        self._max_video_seconds = max_video_seconds

    def claims(self, url: str) -> bool:
        """Whether a site-specific yt-dlp extractor (not the generic one) handles this link."""
        return any(extractor.suitable(url) for extractor in _site_extractors())

    def resolve(self, url: str) -> PageMedia:
        youtube_dl = _guarded_youtube_dl_class()
        with youtube_dl(self._params(), session=self._session, connect_timeout_s=self._policy.connect_timeout_s) as ydl:
            try:
                info = ydl.extract_info(url, download=False)
            except Exception as exc:  # yt-dlp raises its own DownloadError around the real cause
                raise _page_failure(exc, url, self._policy) from exc
            entry = _first_video(info)
            if entry is None:
                raise _no_video(url)
            video, audio = _chosen_files(entry)
            if video is None or not video.get("url") or (audio is not None and not audio.get("url")):
                raise _no_video(url)
            video_stream = _page_stream(ydl, video)
            audio_stream = _page_stream(ydl, audio) if audio is not None else None
        media = PageMedia(
            url=video_stream.url,
            headers=video_stream.headers,
            title=str(entry.get("title") or ""),
            ext=video_stream.ext,
            duration_s=_float_or_none(entry.get("duration")),
            audio=audio_stream,
            video_size_bytes=video_stream.size_bytes,
        )
        self._check_limits(entry, media)
        return media

    def _params(self) -> dict[str, Any]:
        return {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _YTDLP_LOG,
            "color": "no_color",
            "cachedir": False,
            "noplaylist": True,
            "playlistend": 1,
            "skip_download": True,
            "format": page_format_spec(self._policy.max_bytes),
            "check_formats": False,
            "socket_timeout": self._policy.read_timeout_s,
            "proxy": "",  # the guard must see the real destination
            "extractor_retries": 1,
        }

    def _check_limits(self, entry: Mapping[str, Any], media: PageMedia) -> None:
        if entry.get("is_live") or entry.get("live_status") == "is_live":
            raise NotAVideoError(
                "the page is a live stream",
                UserText(
                    zh="这是正在进行的直播，无法分析。请在直播结束、生成回放后发送回放链接。",
                    en="This is a live stream and cannot be analysed. Send the replay's link once it ends.",
                ),
            )
        duration = _float_or_none(entry.get("duration"))
        if duration is not None and duration > self._max_video_seconds:
            raise TooLongError(duration, self._max_video_seconds)
        size = media.size_bytes
        if size is not None and size > self._policy.max_bytes:
            raise TooLargeError(size, self._policy.max_bytes)


class _YtdlpLog:
    """yt-dlp's messages go to our log at debug level: failures surface as our own errors instead."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    info = warning = error = debug


_YTDLP_LOG = _YtdlpLog()


@functools.cache
def _site_extractors() -> tuple[Any, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


@functools.cache
def _guarded_youtube_dl_class() -> type[Any]:
    """A ``YoutubeDL`` whose only request handler sends through our guarded session (built on first use
    so that importing this module does not import yt-dlp)."""
    from yt_dlp import YoutubeDL
    from yt_dlp.networking.common import RequestHandler, Response
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    class RequestsResponse(Response):  # type: ignore[misc]
        def __init__(self, response: requests.Response) -> None:
            super().__init__(
                fp=response.raw,
                url=response.url,
                headers=response.headers,
                status=response.status_code,
                reason=response.reason,
            )
            self._response = response

        def read(self, amt: int | None = None) -> bytes:
            try:
                data: bytes = self.fp.read(amt, decode_content=True)
            except Exception as exc:
                raise TransportError(cause=exc) from exc
            return data

        def close(self) -> None:
            self._response.close()
            super().close()

    class GuardedRH(RequestHandler):  # type: ignore[misc]  # yt-dlp wants the "RH" suffix
        _SUPPORTED_URL_SCHEMES = ("http", "https")
        _SUPPORTED_PROXY_SCHEMES = ()
        _SUPPORTED_FEATURES = ()

        def __init__(self, *, session: requests.Session, connect_timeout_s: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._session = session
            self._connect_timeout_s = connect_timeout_s

        def _check_extensions(self, extensions: dict[str, Any]) -> None:
            super()._check_extensions(extensions)
            for handled in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
                extensions.pop(handled, None)

        def _send(self, request: Any) -> RequestsResponse:
            try:
                response = open_following_redirects(
                    self._session,
                    request.url,
                    method=request.method,
                    headers=self._get_headers(request),
                    data=request.data,
                    cookies=self._get_cookiejar(request),
                    timeout=(self._connect_timeout_s, self._calculate_timeout(request)),
                )
            # yt-dlp treats anything but its own errors as a handler bug and tries the next handler,
            # so a refusal is wrapped; its cause is found again by _page_failure.
            except (PipelineError, requests.RequestException) as exc:
                raise TransportError(str(exc), cause=exc) from exc
            result = RequestsResponse(response)
            if not 200 <= response.status_code < 300:
                raise HTTPError(result)
            return result

    class GuardedYoutubeDL(YoutubeDL):  # type: ignore[misc]
        def __init__(self, params: dict[str, Any], *, session: requests.Session, connect_timeout_s: float) -> None:
            # Set before YoutubeDL.__init__, which may already build the request director.
            self._guarded_handler = functools.partial(GuardedRH, session=session, connect_timeout_s=connect_timeout_s)
            super().__init__(params)

        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            del handlers  # yt-dlp's own handlers (urllib, requests, curl_cffi...) would bypass the guard
            return super().build_request_director([self._guarded_handler], preferences)

    return GuardedYoutubeDL


def _first_video(info: Any) -> Mapping[str, Any] | None:
    if not isinstance(info, Mapping):
        return None
    if info.get("_type") in ("playlist", "multi_video"):
        for entry in info.get("entries") or ():
            found = _first_video(entry)
            if found is not None:
                return found
        return None
    return info


def _chosen_files(entry: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """(the file to download, the audio file to merge with it or None) from yt-dlp's selection: a
    merged selection lists its parts in ``requested_formats``, a single file is the entry itself."""
    parts = [p for p in entry.get("requested_formats") or () if isinstance(p, Mapping)]
    if len(parts) < 2:
        return entry, None
    video = next((p for p in parts if p.get("vcodec") != "none"), None)
    audio = next((p for p in parts if p is not video and p.get("acodec") != "none"), None)
    return video, audio


def _page_stream(ydl: Any, chosen: Mapping[str, Any]) -> PageStream:
    """Where one chosen file is, with the headers and cookies yt-dlp would send for it."""
    url = str(chosen["url"])
    headers = {str(k): str(v) for k, v in (chosen.get("http_headers") or {}).items()}
    cookies = ydl.cookiejar.get_cookies_for_url(url)
    if cookies:
        headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in cookies)
    size = _float_or_none(chosen.get("filesize") or chosen.get("filesize_approx"))
    return PageStream(url=url, headers=headers, ext=str(chosen.get("ext") or ""), size_bytes=_int_size(size))


def _int_size(value: float | None) -> int | None:
    return int(value) if value is not None and value >= 0 else None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _no_video(url: str) -> NotAVideoError:
    return NotAVideoError(
        f"no downloadable video found on {url}",
        UserText(
            zh="这个网页里没有机器人能读取的视频。请发送视频文件，或视频本身的链接。",
            en="This web page has no video the bot can read. Send the video file or a link to the video itself.",
        ),
    )


def _page_failure(exc: Exception, url: str, policy: DownloadPolicy) -> PipelineError:
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    ours = find_cause(exc, PipelineError)
    if ours is not None:
        return ours
    request_error = find_cause(exc, requests.RequestException)
    if request_error is not None:
        return transport_error(request_error, url, policy)
    host = urlsplit(url).hostname or url
    http_error = find_cause(exc, HTTPError)
    if http_error is not None:
        status = int(http_error.status)
        return DownloadError(
            f"HTTP {status} while reading the video page {host}",
            status=status,
            retryable=status in (408, 429) or status >= 500,
        )
    if find_cause(exc, UnsupportedError) is not None:
        return _no_video(url)
    reason = " ".join(str(exc).removeprefix("ERROR: ").split())[:300]
    if "Requested format is not available" in reason:
        return NotAVideoError(
            f"{host} offers this video only as a segmented stream",
            UserText(
                zh="这个视频只以分段流（HLS/DASH）的形式提供，机器人无法下载成单个文件。请直接发送视频文件。",
                en="This video is only offered as a segmented stream (HLS/DASH), which the bot cannot save as "
                "one file. Send the video file instead.",
            ),
        )
    if find_cause(exc, TransportError) is not None:
        return DownloadError(
            f"could not reach {host}: {reason}",
            retryable=True,
            user_message=UserText(
                zh=f"无法连接视频网站 {host}。请稍后点“重试失败项”。",
                en=f"Could not reach the video site {host}. Try again later with “Retry failed”.",
            ),
        )
    return DownloadError(
        f"yt-dlp could not read {url}: {reason}",
        user_message=UserText(
            zh=f"无法从视频网站 {host} 获取视频（{reason}）。"
            "视频可能需要登录、已删除或地区受限；可以直接发送视频文件。",
            en=f"Could not get the video from {host} ({reason}). It may need a login, be deleted or "
            "region-locked; you can send the video file instead.",
        ),
    )
