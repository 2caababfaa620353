"""Videos that live in Feishu: files sent in a chat, and the videos a Bitable lists.

    MessageResourceFetcher   "feishu_message_resource": a video or file message (``bot.commands``), fetched
                             with the message resource API (``type=file`` for both), at most 100 MB
    DriveMediaFetcher        "feishu_drive_media": a video attached to a Bitable row, streamed to disk from a
                             temporary download URL; the attachment's size is checked before any byte moves
    feishu_registry          the pipeline's fetchers (never the local-file one) plus the two above
    expand_bitable           a "feishu_bitable" source -> one source per row that holds a video, and a
                             ``SkippedRow`` (with the reason) for every row that does not

Errors are ``SourceError``s worded for the person who sent the video::

    SourceError
    ├── FeishuFileError          a chat file could not be fetched (recalled, the bot left the chat, ...)
    ├── TooLargeError
    │   └── FeishuFileTooLargeError   over 100 MB: Feishu does not hand such files to bots; send a link
    └── BitableSourceError       the linked Base could not be used
        ├── BitableAccessError     the app was not added to the Base (how to add it is in the message)
        ├── BitableNotFoundError   no such Base, table or view
        ├── BitableEmptyError      the table has no rows
        └── BitableNoVideoError    no column holds a video link or a video file
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bot.commands import FEISHU_BITABLE, FEISHU_RESOURCE, classify_link, find_links
from bot.feishu import (
    MB,
    BitableField,
    BitableTable,
    FeishuClient,
    FeishuError,
    MessageGone,
    NotFound,
    PermissionDenied,
    RateLimited,
    TooLarge,
    TransientError,
)
from bot.wiki import resolve_wiki_base
from pipeline.download import ByteProgress, DownloadPolicy, download, reserve_path, safe_filename
from pipeline.errors import DownloadError, SourceError, TooLargeError
from pipeline.models import CancelToken, FetchedFile, SourceKind, UserText, VideoSource
from pipeline.netguard import AddressGuard, guarded_session
from pipeline.sources import SourceRegistry, default_registry

if TYPE_CHECKING:
    import requests

    from pipeline.config import PipelineSettings

__all__ = [
    "FEISHU_DRIVE_MEDIA",
    "MESSAGE_RESOURCE_MAX_BYTES",
    "BitableAccessError",
    "BitableEmptyError",
    "BitableExpansion",
    "BitableNoVideoError",
    "BitableNotFoundError",
    "BitableSourceError",
    "DriveMediaFetcher",
    "FeishuFileError",
    "FeishuFileTooLargeError",
    "MessageResourceFetcher",
    "SkippedRow",
    "expand_bitable",
    "feishu_registry",
]

log = logging.getLogger(__name__)

FEISHU_DRIVE_MEDIA = "feishu_drive_media"
# Feishu hands message files to bots only up to 100 MB (code 234037 above it).
MESSAGE_RESOURCE_MAX_BYTES = 100 * MB

VIDEO_EXTENSIONS = frozenset(
    {"mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "wmv", "mpg", "mpeg", "ts", "m2ts", "mts", "3gp", "ogv", "vob"}
)

# Bitable field types (https://open.feishu.cn/document/server-docs/docs/bitable-v1/bitable-structure)
TEXT, URL, ATTACHMENT = 1, 15, 17
_CANDIDATE_TYPES = (ATTACHMENT, URL, TEXT)
_VIDEO_COLUMN_NAME = re.compile(
    r"视频|影片|录像|链接|网址|地址|附件|素材|文件|video|link|url|attach|file|clip", re.IGNORECASE
)
_TITLE_COLUMN_NAME = re.compile(r"标题|名称|名字|题目|主题|title|name|subject", re.IGNORECASE)
VIEW_NOT_FOUND = 1254042
TOO_LARGE_RESPONSE = 1254030
MAX_NAME_CHARS = 100

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
        expected = _int_or_none(source.meta.get("size"))
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


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


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


# --------------------------------------------------------------------------------------------------
# Bitable sources
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedRow:
    """A row of the source table that gave no video, and why (shown to the user and written as a
    "skipped" row of the results table). ``name``/``link`` are what the row showed, when anything."""

    record_id: str
    row_number: int  # 1-based, in the order the table (or view) lists its rows
    reason: UserText
    name: str = ""
    link: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "row_number": self.row_number,
            "reason": self.reason.to_dict(),
            "name": self.name,
            "link": self.link,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkippedRow:
        return cls(
            record_id=str(data.get("record_id", "")),
            row_number=int(data.get("row_number", 0)),
            reason=UserText.from_dict(data.get("reason") or {}),
            name=str(data.get("name", "")),
            link=str(data.get("link", "")),
        )


@dataclass(frozen=True)
class BitableExpansion:
    """What a Bitable link stands for.

    ``sources``: one per row with a video, in table order, capped at ``max_rows``; ``skipped``: rows
    without a usable video; ``over_cap``: rows with a video beyond the cap (not taken). ``column`` is
    the column the videos were read from, ``title_column`` the one names came from (may be empty);
    ``notes`` say all of that in words for the card."""

    sources: list[VideoSource]
    skipped: list[SkippedRow]
    table_name: str
    app_token: str = ""
    table_id: str = ""
    column: str = ""
    title_column: str = ""
    over_cap: list[SkippedRow] = field(default_factory=list)
    notes: list[UserText] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": [s.to_dict() for s in self.sources],
            "skipped": [s.to_dict() for s in self.skipped],
            "table_name": self.table_name,
            "app_token": self.app_token,
            "table_id": self.table_id,
            "column": self.column,
            "title_column": self.title_column,
            "over_cap": [s.to_dict() for s in self.over_cap],
            "notes": [n.to_dict() for n in self.notes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BitableExpansion:
        return cls(
            sources=[VideoSource.from_dict(s) for s in data.get("sources") or ()],
            skipped=[SkippedRow.from_dict(s) for s in data.get("skipped") or ()],
            table_name=str(data.get("table_name", "")),
            app_token=str(data.get("app_token", "")),
            table_id=str(data.get("table_id", "")),
            column=str(data.get("column", "")),
            title_column=str(data.get("title_column", "")),
            over_cap=[SkippedRow.from_dict(s) for s in data.get("over_cap") or ()],
            notes=[UserText.from_dict(n) for n in data.get("notes") or ()],
        )


@dataclass(frozen=True)
class _Row:
    number: int
    record_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class _Found:
    """What one cell of the video column held: a source, or why there is none."""

    source: VideoSource | None
    reason: UserText | None = None
    link: str = ""
    extra_videos: int = 0


def expand_bitable(client: FeishuClient, source: VideoSource, *, max_rows: int) -> BitableExpansion:
    """Read the linked table (its view, when the link names one) and find the video in every row.

    The video column is the one named like 视频/video/链接/link/url/附件/attachment that holds videos
    in the most rows; failing a name match, the column with videos in the most rows. Raises a
    ``BitableSourceError`` when the Base cannot be read or has nothing to analyse."""
    if source.kind != FEISHU_BITABLE:
        raise ValueError(f"expand_bitable takes {FEISHU_BITABLE!r} sources, got {source.kind!r}")
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    source = resolve_wiki_base(client, source)  # a /wiki/ link: the Base it wraps, or a clear refusal
    app_token = source.locator
    link = source.meta.get("url", "")
    view_id = source.meta.get("view_id") or None
    table, fields, rows = _read_table(client, app_token, source.meta.get("table_id", ""), view_id)
    if not rows:
        raise BitableEmptyError(
            f"table {table.table_id} of {app_token} has no rows",
            UserText(
                zh=f"多维表格「{table.name}」是空的，没有可分析的视频。请先在表中填入视频链接或上传视频附件。",
                en=f"The table “{table.name}” is empty: there is nothing to analyse. Add video links or video "
                "attachments to it first.",
            ),
        )
    column = _choose_video_column(fields, rows)
    if column is None:
        names = "、".join(f.field_name for f in fields if f.type in _CANDIDATE_TYPES) or "（无）"
        raise BitableNoVideoError(
            f"no column of table {table.table_id} holds a video link or video file",
            UserText(
                zh=f"多维表格「{table.name}」中没有找到视频：没有任何一列含有 http(s) 视频链接或视频附件"
                f"（检查过的列：{names}）。",
                en=f"No videos were found in the table “{table.name}”: no column holds http(s) video links or "
                f"video attachments (columns checked: {names.replace('、', ', ')}).",
            ),
        )
    title = _choose_title_column(fields, column)
    base = {"app_token": app_token, "table_id": table.table_id, "bitable_url": link}

    sources: list[VideoSource] = []
    skipped: list[SkippedRow] = []
    over_cap: list[SkippedRow] = []
    notes: list[UserText] = []
    for row in rows:
        name = _cell_text(row.fields.get(title.field_name)) if title is not None else ""
        name = " ".join(name.split())[:MAX_NAME_CHARS]
        found = _video_in_cell(row, column, name, table.table_id, base)
        if found.source is None:
            reason = found.reason or _empty_cell(column.field_name)
            skipped.append(SkippedRow(row.record_id, row.number, reason, name=name, link=found.link))
            continue
        if len(sources) >= max_rows:
            over_cap.append(
                SkippedRow(
                    row.record_id,
                    row.number,
                    UserText(
                        zh=f"超出单次最多 {max_rows} 个视频的上限，未处理。",
                        en=f"Over the limit of {max_rows} videos per task: not taken.",
                    ),
                    name=found.source.display_name,
                    link=found.link,
                )
            )
            continue
        if found.extra_videos:
            notes.append(
                UserText(
                    zh=f"第 {row.number} 行有 {found.extra_videos + 1} 个视频附件，只分析第一个。",
                    en=f"Row {row.number} has {found.extra_videos + 1} video attachments: only the first is analysed.",
                )
            )
        sources.append(found.source)

    notes.insert(0, _column_note(column, title))
    if skipped:
        notes.append(
            UserText(
                zh=f"{len(skipped)} 行没有可用的视频，已跳过（原因见结果表）。",
                en=f"{len(skipped)} row(s) had no usable video and were skipped (reasons in the results table).",
            )
        )
    if over_cap:
        notes.append(
            UserText(
                zh=f"表中还有 {len(over_cap)} 个视频超出单次 {max_rows} 个的上限，未处理；"
                "请拆分到多个表或视图后分批发送。",
                en=f"{len(over_cap)} more video(s) are over the {max_rows}-video limit per task and were not taken; "
                "split them into several tables or views and send them in batches.",
            )
        )
    return BitableExpansion(
        sources=sources,
        skipped=skipped,
        table_name=table.name,
        app_token=app_token,
        table_id=table.table_id,
        column=column.field_name,
        title_column=title.field_name if title is not None else "",
        over_cap=over_cap,
        notes=notes,
    )


def _read_table(
    client: FeishuClient, app_token: str, table_id: str, view_id: str | None
) -> tuple[BitableTable, list[BitableField], list[_Row]]:
    try:
        tables = client.list_tables(app_token)
        table = _pick_table(tables, table_id, app_token)
        fields = client.list_fields(app_token, table.table_id)
        wanted = [f.field_name for f in fields if f.type in _CANDIDATE_TYPES]
        try:
            records = list(client.iter_records(app_token, table.table_id, view_id=view_id, field_names=wanted))
        except FeishuError as err:
            if err.code != TOO_LARGE_RESPONSE:
                raise
            # Long texts or many attachments made a 500-row page too large for Feishu to send.
            records = list(
                client.iter_records(app_token, table.table_id, view_id=view_id, field_names=wanted, page_size=50)
            )
    except PermissionDenied as err:
        raise BitableAccessError(f"cannot read Base {app_token}: {err}") from err
    except NotFound as err:
        raise _not_found(err, app_token, table_id) from err
    except FeishuError as err:
        if err.code == VIEW_NOT_FOUND:
            raise BitableNotFoundError(
                f"view {view_id} not found in {app_token}: {err}",
                UserText(
                    zh="链接中的视图不存在（可能已被删除）。请在多维表格中打开要分析的视图，复制地址栏链接重新发送。",
                    en="The view in the link does not exist (it may have been deleted). Open the view to analyse "
                    "in the Base, copy the address bar link and send it again.",
                ),
            ) from err
        raise BitableSourceError(
            f"reading Base {app_token} failed: {err}",
            UserText(
                zh=f"读取多维表格失败（错误码 {err.code}）。请稍后重新发送链接。",
                en=f"Reading the Base failed (code {err.code}). Send the link again later.",
            ),
        ) from err
    rows = [
        _Row(number=n, record_id=str(r.get("record_id", "")), fields=r.get("fields") or {})
        for n, r in enumerate(records, start=1)
    ]
    return table, fields, rows


def _pick_table(tables: Sequence[BitableTable], table_id: str, app_token: str) -> BitableTable:
    if table_id:
        for table in tables:
            if table.table_id == table_id:
                return table
        raise BitableNotFoundError(
            f"table {table_id} not in Base {app_token}",
            UserText(
                zh="链接中的数据表不存在（可能已被删除）。请在多维表格中打开要分析的数据表，复制地址栏链接重新发送。",
                en="The table in the link does not exist (it may have been deleted). Open the table to analyse "
                "in the Base, copy the address bar link and send it again.",
            ),
        )
    if not tables:
        raise BitableEmptyError(
            f"Base {app_token} has no tables",
            UserText(zh="这个多维表格里没有数据表。", en="This Base has no tables."),
        )
    # No table in the link: the Base opens on its first table, so that is the one the user saw.
    return tables[0]


def _not_found(err: FeishuError, app_token: str, table_id: str) -> BitableNotFoundError:
    if table_id and err.code == 1254041:
        return BitableNotFoundError(
            f"table {table_id} not found in {app_token}: {err}",
            UserText(
                zh="链接中的数据表不存在（可能已被删除）。请在多维表格中打开要分析的数据表，复制地址栏链接重新发送。",
                en="The table in the link does not exist (it may have been deleted). Open the table to analyse "
                "in the Base, copy the address bar link and send it again.",
            ),
        )
    return BitableNotFoundError(
        f"Base {app_token} not found: {err}",
        UserText(
            zh="找不到这个多维表格：链接可能有误，或表格已被删除。请在多维表格中复制地址栏链接重新发送。",
            en="This Base was not found: the link may be wrong or the Base deleted. Copy the link from the "
            "Base's address bar and send it again.",
        ),
    )


# ---- choosing columns ------------------------------------------------------------------------------


def _choose_video_column(fields: Sequence[BitableField], rows: Sequence[_Row]) -> BitableField | None:
    counts: list[tuple[BitableField, int]] = []
    for spec in fields:
        if spec.type not in _CANDIDATE_TYPES:
            continue
        hits = sum(1 for row in rows if _holds_video(spec, row.fields.get(spec.field_name)))
        if hits:
            counts.append((spec, hits))
    if not counts:
        return None
    named = [(spec, hits) for spec, hits in counts if _VIDEO_COLUMN_NAME.search(spec.field_name)]
    pool = named or counts
    # max() keeps the first of equal counts: the leftmost column wins a tie.
    return max(pool, key=lambda pair: pair[1])[0]


def _choose_title_column(fields: Sequence[BitableField], video: BitableField) -> BitableField | None:
    texts = [f for f in fields if f.type == TEXT and f.field_id != video.field_id]
    named = [f for f in texts if _TITLE_COLUMN_NAME.search(f.field_name)]
    if named:
        return named[0]
    return next((f for f in texts if f.is_primary), None)


def _column_note(column: BitableField, title: BitableField | None) -> UserText:
    kind_zh, kind_en = {ATTACHMENT: ("附件", "attachments"), URL: ("链接", "links")}.get(
        column.type, ("文本中的链接", "links in text")
    )
    zh = f"视频取自「{column.field_name}」列（{kind_zh}）"
    en = f"Videos were read from the “{column.field_name}” column ({kind_en})"
    if title is not None:
        zh += f"，名称取自「{title.field_name}」列"
        en += f", names from the “{title.field_name}” column"
    return UserText(zh=zh + "。", en=en + ".")


def _holds_video(spec: BitableField, value: Any) -> bool:
    if spec.type == ATTACHMENT:
        return any(_is_video_file(item) for item in _attachments(value))
    link = _first_link(value)
    return link is not None and _is_plain_url(link)


def _is_plain_url(link: str) -> bool:
    source = classify_link(link)
    return isinstance(source, VideoSource) and source.kind == SourceKind.URL.value


# ---- reading cells -----------------------------------------------------------------------------------


def _video_in_cell(row: _Row, column: BitableField, name: str, table_id: str, base: Mapping[str, str]) -> _Found:
    value = row.fields.get(column.field_name)
    common = {
        key: value
        for key, value in {
            **base,
            "record_id": row.record_id,
            "row_number": str(row.number),
            "field_name": column.field_name,
        }.items()
        if value
    }
    if column.type == ATTACHMENT:
        items = _attachments(value)
        if not items:
            return _Found(None)
        videos = [item for item in items if _is_video_file(item)]
        if not videos:
            shown = "、".join(str(item.get("name") or "?") for item in items)
            return _Found(
                None,
                UserText(
                    zh=f"「{column.field_name}」列的附件不是视频（{shown}）。",
                    en=f"The attachment in the “{column.field_name}” column is not a video "
                    f"({shown.replace('、', ', ')}).",
                ),
            )
        first = videos[0]
        token = str(first.get("file_token") or "")
        file_name = str(first.get("name") or f"{token}.mp4")
        meta = {
            **common,
            "field_id": column.field_id,
            "file_name": file_name,
            "size": str(first.get("size") or ""),
            "mime": str(first.get("type") or ""),
            "extra": _download_extra(first, table_id, column.field_id, row.record_id, token),
        }
        meta = {k: v for k, v in meta.items() if v}
        source = VideoSource(kind=FEISHU_DRIVE_MEDIA, locator=token, name=name or file_name, meta=meta)
        return _Found(source, extra_videos=len(videos) - 1)
    link = _first_link(value)
    if link is None:
        text = _cell_text(value).strip()
        if not text:
            return _Found(None)
        return _Found(
            None,
            UserText(
                zh=f"「{column.field_name}」列没有 http(s) 链接（内容：{text[:60]}）。",
                en=f"The “{column.field_name}” column holds no http(s) link (it says: {text[:60]}).",
            ),
        )
    verdict = classify_link(link)
    if isinstance(verdict, UserText):
        return _Found(None, verdict, link=link)
    if verdict.kind != SourceKind.URL.value:
        return _Found(
            None,
            UserText(
                zh=f"这一行链接的是另一个多维表格，不会再展开：{link}",
                en=f"This row links to another Base, which is not expanded: {link}",
            ),
            link=link,
        )
    return _Found(VideoSource(kind=SourceKind.URL.value, locator=link, name=name, meta=common), link=link)


def _empty_cell(column: str) -> UserText:
    return UserText(zh=f"「{column}」列为空。", en=f"The “{column}” column is empty.")


def _attachments(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping) and item.get("file_token")]


def _is_video_file(item: Mapping[str, Any]) -> bool:
    mime = str(item.get("type") or "").lower()
    if mime.startswith("video/"):
        return True
    extension = PurePosixPath(str(item.get("name") or "")).suffix.lower().lstrip(".")
    return extension in VIDEO_EXTENSIONS


def _download_extra(item: Mapping[str, Any], table_id: str, field_id: str, record_id: str, token: str) -> str:
    """The ``extra`` parameter of the media download: Feishu puts it in the attachment's own ``url``
    when the Base needs one; otherwise it is built as the docs describe (``bitablePerm`` naming the
    table and where the attachment sits), which Bases without advanced permissions ignore."""
    url = str(item.get("url") or "")
    given = parse_qs(urlsplit(url).query).get("extra") if url else None
    if given:
        return given[0]
    perm = {"bitablePerm": {"tableId": table_id, "attachments": {field_id: {record_id: [token]}}}}
    return json.dumps(perm, separators=(",", ":"))


def _segments(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield item
    elif isinstance(value, Mapping):
        inner = value.get("value")  # formula / lookup cells wrap their segments
        if isinstance(inner, list):
            yield from _segments(inner)
        else:
            yield value


def _cell_text(value: Any) -> str:
    """A cell as plain text: text cells come as a string or as segments ``[{"type", "text"}]``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return f"{value:g}"
    parts = []
    for segment in _segments(value):
        text = segment.get("text")
        if isinstance(text, str):
            parts.append(text)
        elif isinstance(segment.get("name"), str):
            parts.append(str(segment["name"]))
    return "".join(parts)


def _first_link(value: Any) -> str | None:
    """The first http(s) link in a URL cell (``{"link", "text"}``) or a text cell (segments of type
    ``url`` carry ``link``; plain text is searched)."""
    if isinstance(value, str):
        return _first_http(find_links(value))
    for segment in _segments(value):
        link = segment.get("link")
        if isinstance(link, str) and link.strip():
            found = _first_http([link.strip()])
            if found:
                return found
        text = segment.get("text")
        if isinstance(text, str):
            found = _first_http(find_links(text))
            if found:
                return found
    return None


def _first_http(links: Iterable[str]) -> str | None:
    return next((link for link in links if link.lower().startswith(("http://", "https://"))), None)
