"""The pipeline's error tree. Every error carries a message a user can act on, in Chinese and English.

    PipelineError                 anything the pipeline reports instead of a result
    ├── InvalidOptionsError       unusable arguments: screenshot times, an interval of 0, ...
    ├── SourceError               the video could not be fetched
    │   ├── UnsupportedSourceError  a scheme or source kind we do not fetch (file://, ftp://, ...)
    │   ├── BlockedAddressError     the link points at a private or internal address (SSRF guard)
    │   ├── DownloadError           HTTP errors, timeouts, broken connections (``retryable`` says which)
    │   ├── TooLargeError           over MAX_VIDEO_BYTES
    │   └── NotAVideoError          an HTML page, an empty file
    ├── MediaError                the file is not something we can analyse
    │   ├── FFmpegError             ffmpeg/ffprobe failed (return code and the tail of stderr)
    │   ├── UnplayableMediaError    no video stream, corrupt or truncated file
    │   └── TooLongError            over MAX_VIDEO_SECONDS
    ├── TranscriptionError        speech recognition failed
    │   └── ModelUnavailableError   the model directory is missing or unreadable
    └── JobCancelled              the user cancelled; not a failure

``str(error)`` is the English technical detail for logs; ``error.user_message`` is what a user sees.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.models import UserText


class PipelineError(Exception):
    """Base class. ``code`` is stable and machine-readable (it is stored with failed videos)."""

    code = "pipeline_error"

    def __init__(self, detail: str, user_message: UserText | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.user_message = user_message or UserText(
            zh=f"处理失败：{detail}",
            en=f"Processing failed: {detail}",
        )


class InvalidOptionsError(PipelineError):
    code = "invalid_options"

    def __init__(self, detail: str, user_message: UserText | None = None) -> None:
        super().__init__(
            detail,
            user_message
            or UserText(
                zh=f"参数无效：{detail}。请检查后重新发送。",
                en=f"Invalid option: {detail}. Please check it and send again.",
            ),
        )


class SourceError(PipelineError):
    code = "source_error"


class UnsupportedSourceError(SourceError):
    code = "unsupported_source"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"unsupported source: {what}",
            UserText(
                zh=f"不支持这个来源（{what}）。请发送 http(s) 视频链接、视频文件或多维表格链接。",
                en=f"This source is not supported ({what}). Send an http(s) video link, a video file "
                "or a Bitable link.",
            ),
        )


class BlockedAddressError(SourceError):
    code = "blocked_address"

    def __init__(self, host: str, address: str) -> None:
        super().__init__(
            f"refusing to fetch {host} ({address}): not a public address",
            UserText(
                zh=f"出于安全原因，不能访问内网或本机地址（{host}）。请使用可公开访问的链接。",
                en=f"For security the bot does not fetch private or internal addresses ({host}). "
                "Use a publicly reachable link.",
            ),
        )
        self.host = host
        self.address = address


class DownloadError(SourceError):
    code = "download_failed"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        user_message: UserText | None = None,
    ) -> None:
        if user_message is None:
            if status == 404:
                user_message = UserText(
                    zh="链接不存在（HTTP 404）。请确认链接正确且可以公开访问。",
                    en="The link was not found (HTTP 404). Check that it is correct and publicly reachable.",
                )
            elif status in (401, 403):
                user_message = UserText(
                    zh=f"没有权限下载（HTTP {status}）。请使用无需登录即可访问的链接。",
                    en=f"Access was refused (HTTP {status}). Use a link that works without signing in.",
                )
            elif status is not None:
                user_message = UserText(
                    zh=f"下载失败（HTTP {status}），对方服务器出错。请稍后点“重试失败项”。",
                    en=f"The download failed (HTTP {status}): the server had an error. "
                    "Try again later with “Retry failed”.",
                )
            else:
                user_message = UserText(
                    zh=f"下载失败：{detail}。请检查链接后重试。",
                    en=f"The download failed: {detail}. Check the link and try again.",
                )
        super().__init__(detail, user_message)
        self.status = status
        self.retryable = retryable


class TooLargeError(SourceError):
    code = "too_large"

    def __init__(self, size_bytes: int | None, limit_bytes: int) -> None:
        limit_mb = limit_bytes // (1024 * 1024)
        super().__init__(
            f"file exceeds the {limit_bytes}-byte cap (size {size_bytes if size_bytes is not None else '?'})",
            UserText(
                zh=f"视频太大，超过 {limit_mb} MB 的上限。请压缩或剪短后再发送。",
                en=f"The video is larger than the {limit_mb} MB limit. Compress or trim it and send it again.",
            ),
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class NotAVideoError(SourceError):
    code = "not_a_video"

    def __init__(self, detail: str, user_message: UserText | None = None) -> None:
        super().__init__(
            detail,
            user_message
            or UserText(
                zh=f"这不是视频文件（{detail}）。请发送视频文件或视频的直接链接。",
                en=f"This is not a video ({detail}). Send a video file or a direct link to one.",
            ),
        )


class MediaError(PipelineError):
    code = "media_error"


class FFmpegError(MediaError):
    code = "ffmpeg_failed"

    def __init__(self, tool: str, returncode: int, stderr_tail: str) -> None:
        super().__init__(
            f"{tool} exited with {returncode}: {stderr_tail}",
            UserText(
                zh="视频文件无法解码，可能已损坏或格式不受支持。请换一个文件重试。",
                en="The video could not be decoded: it may be damaged or in an unsupported format. Try another file.",
            ),
        )
        self.tool = tool
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class UnplayableMediaError(MediaError):
    code = "unplayable"

    def __init__(self, detail: str, detail_zh: str | None = None) -> None:
        super().__init__(
            detail,
            UserText(
                zh=f"文件无法播放（{detail_zh or detail}）。请确认它是完整的视频文件。",
                en=f"The file cannot be played ({detail}). Make sure it is a complete video file.",
            ),
        )


class TooLongError(MediaError):
    code = "too_long"

    def __init__(self, duration_s: float, limit_s: float) -> None:
        super().__init__(
            f"duration {duration_s:.0f}s exceeds the {limit_s:.0f}s cap",
            UserText(
                zh=f"视频时长 {duration_s / 60:.0f} 分钟，超过 {limit_s / 60:.0f} 分钟的上限。请剪短后再发送。",
                en=f"The video is {duration_s / 60:.0f} min long, over the {limit_s / 60:.0f} min limit. "
                "Trim it and send it again.",
            ),
        )
        self.duration_s = duration_s
        self.limit_s = limit_s


class TranscriptionError(PipelineError):
    code = "transcription_failed"

    def __init__(self, detail: str, user_message: UserText | None = None) -> None:
        super().__init__(
            detail,
            user_message
            or UserText(
                zh="语音识别失败。截图等其他结果已保留，可以稍后点“重试失败项”。",
                en="Speech recognition failed. Screenshots and other results are kept; "
                "try again later with “Retry failed”.",
            ),
        )


class ModelUnavailableError(TranscriptionError):
    code = "model_unavailable"

    def __init__(self, detail: str, searched: Sequence[str] = ()) -> None:
        where = ", ".join(searched)
        super().__init__(
            f"{detail}{f' (looked in: {where})' if where else ''}",
            UserText(
                zh="语音识别模型不可用，请联系管理员检查模型目录配置。",
                en="The speech recognition model is unavailable: ask the administrator to check "
                "the model directory settings.",
            ),
        )


class JobCancelled(PipelineError):
    code = "cancelled"

    def __init__(self, detail: str = "cancelled by the user") -> None:
        super().__init__(detail, UserText(zh="已取消。", en="Cancelled."))
