"""The Bitable reader: a "feishu_bitable" source -> one source per row that holds a video, and a
``SkippedRow`` (with the reason) for every row that does not.

Errors are ``SourceError``s worded for the person who sent the link::

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
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bot.feishu import (
    BitableField,
    BitableTable,
    FeishuClient,
    FeishuError,
    NotFound,
    PermissionDenied,
    ScopeMissing,
)
from bot.inbound.commands import FEISHU_BITABLE, classify_link, find_links
from bot.job.feishu_sources import (
    FEISHU_DRIVE_MEDIA,
    BitableAccessError,
    BitableEmptyError,
    BitableNotFoundError,
    BitableNoVideoError,
    BitableSourceError,
    MissingScopeError,
)
from bot.job.record import SkippedRow
from bot.job.wiki_bases import resolve_wiki_base
from pipeline.models import SourceKind, UserText, VideoSource

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------------
# Bitable sources
# --------------------------------------------------------------------------------------------------


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
    except ScopeMissing as err:
        raise MissingScopeError(err) from err
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
