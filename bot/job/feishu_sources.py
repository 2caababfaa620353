"""Videos that live in Feishu: files sent in a chat and videos attached to Bitable rows (the rows
themselves are read by ``bot.job.bitable_reader``).

    MessageResourceFetcher   "feishu_message_resource": a video or file message (``bot.inbound.commands``), fetched
                             with the message resource API (``type=file`` for both), at most 100 MB
    DriveMediaFetcher        "feishu_drive_media": a video attached to a Bitable row, streamed to disk from a
                             temporary download URL; the attachment's size is checked before any byte moves
    feishu_registry          the pipeline's fetchers (never the local-file one) plus the two above

Errors are ``SourceError``s worded for the person who sent the video::

    SourceError
    ├── FeishuFileError          a chat file could not be fetched (recalled, the bot left the chat, ...)
    └── TooLargeError
        └── FeishuFileTooLargeError   over 100 MB: Feishu does not hand such files to bots; send a link
    BitableSourceError (a SourceError)   the linked Base could not be used
    ├── BitableAccessError     the app was not added to the Base (how to add it is in the message)
    ├── BitableNotFoundError   no such Base, table or view
    ├── BitableEmptyError      the table has no rows
    └── BitableNoVideoError    no column holds a video link or a video file
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot.feishu import (
    MB,
    FeishuClient,
    FeishuError,
    MessageGone,
    NotFound,
    PermissionDenied,
    RateLimited,
    ScopeMissing,
    TooLarge,
    TransientError,
)
from bot.inbound.commands import FEISHU_RESOURCE
from bot.job.record import int_or_none
from bot.scopes import missing_scope_text
from pipeline.download import ByteProgress, DownloadPolicy, download, reserve_path, safe_filename
from pipeline.errors import DownloadError, SourceError, TooLargeError
from pipeline.models import CancelToken, FetchedFile, UserText, VideoSource
from pipeline.netguard import AddressGuard, guarded_session
from pipeline.sources import SourceRegistry, default_registry

if TYPE_CHECKING:
    import requests

    from pipeline.config import PipelineSettings


log = logging.getLogger(__name__)

FEISHU_DRIVE_MEDIA = "feishu_drive_media"
# Feishu hands message files to bots only up to 100 MB (code 234037 above it).
MESSAGE_RESOURCE_MAX_BYTES = 100 * MB

ADD_APP_HOW_TO = UserText(
    zh="请打开该多维表格，点右上角「…」→「更多」→「添加文档应用」，搜索并添加本机器人的应用（可阅读即可）；"
    "或在右上角「分享」中把它共享给机器人所在的群。完成后重新发送链接。",
    en="Open the Base, click “…” (top right) → More → Add document app, search for this bot's app and add it "
    "(read access is enough); or use Share to share the Base with a group chat the bot is in. Then send the "
    "link again.",
)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class MissingScopeError(SourceError):
    """Feishu refused a read because the app lacks a scope: the message names the scope to add."""

    code = "feishu_scope_missing"

    def __init__(self, err: ScopeMissing) -> None:
        super().__init__(f"scope missing: {err}", missing_scope_text(err))


class FeishuFileError(SourceError):
    code = "feishu_file_unavailable"


class FeishuFileTooLargeError(TooLargeError):
    """Over the cap for files sent in a chat (Feishu's 100 MB, or ours when lower)."""

    def __init__(self, size_bytes: int | None, limit_bytes: int) -> None:
        super().__init__(size_bytes, limit_bytes)
        limit_mb = limit_bytes // MB
        self.user_message = UserText(
            zh=f"文件超过 {limit_mb} MB，机器人无法从聊天中下载。请把视频上传到网盘或视频网站，再发送链接。",
            en=f"The file is over {limit_mb} MB, too large for the bot to fetch from the chat. Upload the video "
            "to a cloud drive or video site and send the link instead.",
        )


class BitableSourceError(SourceError):
    code = "bitable_error"


class BitableAccessError(BitableSourceError):
    code = "bitable_no_access"

    def __init__(self, detail: str) -> None:
        super().__init__(
            detail,
            UserText(
                zh="机器人没有这个多维表格的访问权限。" + ADD_APP_HOW_TO.zh,
                en="The bot has no access to this Base. " + ADD_APP_HOW_TO.en,
            ),
        )


class BitableNotFoundError(BitableSourceError):
    code = "bitable_not_found"


class BitableEmptyError(BitableSourceError):
    code = "bitable_empty"


class BitableNoVideoError(BitableSourceError):
    code = "bitable_no_video"


# --------------------------------------------------------------------------------------------------
# Files sent in a chat
# --------------------------------------------------------------------------------------------------


class MessageResourceFetcher:
    """A video or file message's attachment. The SDK reads the whole body before returning, so the
    file is held in memory once; Feishu's 100 MB cap bounds that."""

    def __init__(self, client: FeishuClient, *, max_bytes: int) -> None:
        self._client = client
        self._max_bytes = min(max_bytes, MESSAGE_RESOURCE_MAX_BYTES)

    def fetch(
        self, source: VideoSource, dest_dir: Path, *, on_bytes: ByteProgress | None, cancel: CancelToken
    ) -> FetchedFile:
        message_id = source.meta.get("message_id", "")
        file_key = source.locator
        if not message_id or not file_key:
            raise FeishuFileError(
                f"message resource without message_id/file_key: {source.to_dict()}",
                _resend("这条消息里的文件信息不完整。", "The message did not carry the file's details."),
            )
        cancel.raise_if_cancelled()
        name = safe_filename(source.meta.get("file_name") or source.name or f"{file_key}.mp4", default="video.mp4")
        dest = reserve_path(dest_dir, name)
        try:
            self._client.download_message_resource(message_id, file_key, dest, max_bytes=self._max_bytes)
        except TooLarge as err:
            dest.unlink(missing_ok=True)
            raise FeishuFileTooLargeError(err.size_bytes, self._max_bytes) from err
        except FeishuError as err:
            dest.unlink(missing_ok=True)
            raise _message_resource_error(err) from err
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        size = dest.stat().st_size
        if on_bytes is not None:
            on_bytes(size, size)
        return FetchedFile(path=dest, name=source.name or dest.name, size_bytes=size)


def _resend(zh: str, en: str) -> UserText:
    return UserText(zh=zh + "请重新发送视频。", en=en + " Please send the video again.")


def _message_resource_error(err: FeishuError) -> SourceError:
    detail = f"message resource download failed: {err}"
    if isinstance(err, ScopeMissing):
        return MissingScopeError(err)
    if isinstance(err, MessageGone | NotFound):
        return FeishuFileError(
            detail, _resend("这条消息里的文件已撤回、删除或已过期。", "The file was recalled, deleted or expired.")
        )
    if isinstance(err, PermissionDenied):
        return FeishuFileError(
            detail,
            UserText(
                zh="机器人无法读取这条消息里的文件（可能已被移出群聊）。请把机器人加入群聊，或私聊发送视频。",
                en="The bot cannot read the file in this message (it may have been removed from the chat). Add "
                "the bot to the chat or send the video to it directly.",
            ),
        )
    if isinstance(err, TransientError | RateLimited):
        return DownloadError(
            detail,
            retryable=True,
            user_message=UserText(
                zh="从飞书下载视频失败（网络或服务繁忙）。请稍后点“重试失败项”，或重新发送视频。",
                en="Downloading the video from Feishu failed (network or service busy). Try again later with "
                "“Retry failed”, or send the video again.",
            ),
        )
    return FeishuFileError(
        detail, _resend(f"从飞书下载文件失败（错误码 {err.code}）。", f"Feishu refused the download (code {err.code}).")
    )


# --------------------------------------------------------------------------------------------------
# Files attached to Bitable rows
# --------------------------------------------------------------------------------------------------


class DriveMediaFetcher:
    """A Bitable attachment. ``meta["size"]`` (the attachment's size, from the record) lets oversized
    files be refused before the download; ``meta["extra"]`` is the permission parameter Bases with
    advanced permissions require.

    The SDK's own download holds the whole file in memory (a 2 GB video would need 2 GB of RAM), so
    Feishu is asked for a temporary URL instead, and the file is streamed to disk by the pipeline's
    download: size cap while streaming, progress, retries, cancellation, and the address guard."""

    def __init__(self, client: FeishuClient, *, session: requests.Session, policy: DownloadPolicy) -> None:
        self._client = client
        self._session = session
        self._policy = policy

    def fetch(
        self, source: VideoSource, dest_dir: Path, *, on_bytes: ByteProgress | None, cancel: CancelToken
    ) -> FetchedFile:
        cancel.raise_if_cancelled()
        file_token = source.locator
        expected = int_or_none(source.meta.get("size"))
        if expected is not None and expected > self._policy.max_bytes:
            raise TooLargeError(expected, self._policy.max_bytes)
        name = safe_filename(source.meta.get("file_name") or source.name or f"{file_token}.mp4", default="video.mp4")
        try:
            url = self._client.tmp_download_url(file_token, extra=source.meta.get("extra") or None)
        except FeishuError as err:
            raise _drive_media_error(err, source) from err
        fetched = download(
            url,
            dest_dir,
            session=self._session,
            policy=self._policy,
            cancel=cancel,
            on_bytes=on_bytes,
            file_name=name,
        )
        return FetchedFile(
            path=fetched.path,
            name=source.name or fetched.name,
            size_bytes=fetched.size_bytes,
            content_type=source.meta.get("mime") or fetched.content_type,
        )


def _drive_media_error(err: FeishuError, source: VideoSource) -> SourceError:
    detail = f"drive media download failed: {err}"
    row = source.meta.get("row_number", "?")
    if isinstance(err, ScopeMissing):
        return MissingScopeError(err)
    if isinstance(err, PermissionDenied):
        return BitableAccessError(detail)
    if isinstance(err, NotFound):
        return FeishuFileError(
            detail,
            UserText(
                zh=f"多维表格第 {row} 行的视频附件已被删除或替换。请检查该行后重新发送链接。",
                en=f"The video attached to row {row} of the Base was deleted or replaced. Check the row and "
                "send the link again.",
            ),
        )
    if isinstance(err, TransientError | RateLimited):
        return DownloadError(
            detail,
            retryable=True,
            user_message=UserText(
                zh="从飞书下载附件失败（网络或服务繁忙）。请稍后点“重试失败项”。",
                en="Downloading the attachment from Feishu failed (network or service busy). Try again later "
                "with “Retry failed”.",
            ),
        )
    return FeishuFileError(
        detail,
        UserText(
            zh=f"无法下载多维表格第 {row} 行的视频附件（错误码 {err.code}）。",
            en=f"The video attached to row {row} of the Base could not be downloaded (code {err.code}).",
        ),
    )


def feishu_registry(settings: PipelineSettings, client: FeishuClient) -> SourceRegistry:
    """Every fetcher the bot uses: links (guarded), chat files and Bitable attachments. Never the
    local-file fetcher: no message may make the server read its own files."""
    session = guarded_session(AddressGuard.from_settings(settings))
    registry = default_registry(settings, include_local=False, session=session)
    registry.register(FEISHU_RESOURCE, MessageResourceFetcher(client, max_bytes=settings.max_video_bytes))
    registry.register(
        FEISHU_DRIVE_MEDIA,
        DriveMediaFetcher(client, session=session, policy=DownloadPolicy.from_settings(settings)),
    )
    return registry
