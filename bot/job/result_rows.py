"""The results table's columns, and how a video (or a skipped source row) becomes a row of it: cells
cut to what Feishu takes, and rows grouped into requests of a size it accepts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.feishu import (
    MB,
)
from bot.job.feishu_sources import FEISHU_DRIVE_MEDIA
from bot.job.record import SkippedRow
from pipeline.models import SourceKind, Transcript, UserText, VideoResult, VideoSource, VideoStatus
from pipeline.names import clean_name
from pipeline.subtitles import format_clock

# Field types (https://open.feishu.cn/document/server-docs/docs/bitable-v1/bitable-structure)
TEXT, NUMBER, SINGLE_SELECT, DATE, URL, ATTACHMENT = 1, 2, 3, 5, 15, 17

# Rows per batch_create: well within the API's 1000, and the request stays a size Feishu takes.
BATCH_MAX_RECORDS = 500
# The JSON of one batch_create request, estimated before sending (long transcripts make rows large).
BATCH_MAX_BYTES = 4 * MB
# A text cell's JSON, in UTF-8 bytes. Feishu documents the error (1254130 TooLargeCell) but not the
# size; integrators who hit it put the limit at 196,608 bytes of the cell's JSON. Cut at about half
# of that: room for escaping and for a limit lower than reported.
TEXT_CELL_MAX_BYTES = 100_000
# Whole-table name lengths Feishu accepts are not documented; task names are capped at 100 anyway.
MAX_BASE_NAME_CHARS = 100
UPLOAD_QPS_CEILING = 5.0
ATTACHMENT_JSON_BYTES = 64  # {"file_token": "<27 chars>"} and a separator, for the size estimate

TABLE_NAME = "视频分析结果 Video results"
DEFAULT_VIEW_NAME = "全部 All"


class Col:
    """Field names of the results table (Chinese first, English second)."""

    VIDEO = "视频 Video"
    SOURCE = "来源链接 Source"
    STATUS = "状态 Status"
    ERROR = "错误原因 Error"
    DURATION = "时长(秒) Duration (s)"
    RESOLUTION = "分辨率 Resolution"
    LANGUAGE = "语言 Language"
    TRANSCRIPT = "转写文本 Transcript"
    TIMED_TRANSCRIPT = "带时间戳转写 Timestamped transcript"
    KEYWORDS = "关键词 Keywords"
    SCREENSHOTS = "截图 Screenshots"
    CONTACT_SHEET = "截图总览 Contact sheet"
    SUBTITLES = "字幕 Subtitles (SRT)"
    FULL_TRANSCRIPT = "完整转写 Full transcript"
    ASR = "识别引擎 ASR engine"
    PROCESSING = "处理耗时(秒) Processing time (s)"
    ANALYSED_AT = "分析时间 Analysed at"
    NOTES = "备注 Notes"
    # Insight columns (only in tables of jobs run with insight on).
    SUMMARY = "摘要 Summary"
    CHAPTERS = "章节 Chapters"
    KEY_POINTS = "要点 Key points"
    VISUAL = "画面解读 Visual read"
    ANALYSIS = "模板分析 Preset analysis"
    REQUEST_ANSWER = "分析要求的回答 Analysis answer"
    INSIGHT_REASON = "AI 解读说明 Insight reason"
    MODELS = "模型 Models"
    TOKENS = "用量(tokens) Tokens"
    NOTES_MD = "笔记 Notes (notes.md)"


STATUS_OK = "成功 OK"
STATUS_FAILED = "失败 Failed"
STATUS_CANCELLED = "已取消 Cancelled"
STATUS_SKIPPED = "已跳过 Skipped"
STATUS_OPTIONS = (STATUS_OK, STATUS_FAILED, STATUS_CANCELLED, STATUS_SKIPPED)
_STATUS_BY_RESULT = {
    VideoStatus.OK: STATUS_OK,
    VideoStatus.FAILED: STATUS_FAILED,
    VideoStatus.CANCELLED: STATUS_CANCELLED,
}

# Status options: Feishu palette colours green, red, grey, yellow.
_STATUS_PROPERTY = {
    "options": [{"name": name, "color": color} for name, color in zip(STATUS_OPTIONS, (4, 0, 9, 2), strict=True)]
}
_SECONDS = {"formatter": "0.0"}
_DATE_TIME = {"date_formatter": "yyyy/MM/dd HH:mm", "auto_fill": False}

# The table's schema, in column order; the first field is the primary one.
RESULT_FIELDS: tuple[dict[str, Any], ...] = (
    {"field_name": Col.VIDEO, "type": TEXT},
    {"field_name": Col.STATUS, "type": SINGLE_SELECT, "property": _STATUS_PROPERTY},
    {"field_name": Col.SOURCE, "type": URL},
    {"field_name": Col.ERROR, "type": TEXT},
    {"field_name": Col.DURATION, "type": NUMBER, "property": _SECONDS},
    {"field_name": Col.RESOLUTION, "type": TEXT},
    {"field_name": Col.LANGUAGE, "type": TEXT},
    {"field_name": Col.KEYWORDS, "type": TEXT},
    {"field_name": Col.TRANSCRIPT, "type": TEXT},
    {"field_name": Col.TIMED_TRANSCRIPT, "type": TEXT},
    {"field_name": Col.SCREENSHOTS, "type": ATTACHMENT},
    {"field_name": Col.CONTACT_SHEET, "type": ATTACHMENT},
    {"field_name": Col.SUBTITLES, "type": ATTACHMENT},
    {"field_name": Col.FULL_TRANSCRIPT, "type": ATTACHMENT},
    {"field_name": Col.ASR, "type": TEXT},
    {"field_name": Col.PROCESSING, "type": NUMBER, "property": _SECONDS},
    {"field_name": Col.ANALYSED_AT, "type": DATE, "property": _DATE_TIME},
    {"field_name": Col.NOTES, "type": TEXT},
)

INSIGHT_FIELDS: tuple[dict[str, Any], ...] = (
    {"field_name": Col.SUMMARY, "type": TEXT},
    {"field_name": Col.CHAPTERS, "type": TEXT},
    {"field_name": Col.KEY_POINTS, "type": TEXT},
    {"field_name": Col.VISUAL, "type": TEXT},
    {"field_name": Col.ANALYSIS, "type": TEXT},
    {"field_name": Col.REQUEST_ANSWER, "type": TEXT},
    {"field_name": Col.INSIGHT_REASON, "type": TEXT},
    {"field_name": Col.MODELS, "type": TEXT},
    {"field_name": Col.TOKENS, "type": NUMBER},
    {"field_name": Col.NOTES_MD, "type": ATTACHMENT},
)
OVERVIEW_ROW_NAME = "总览 Overview"


def result_fields(*, insight: bool) -> tuple[dict[str, Any], ...]:
    """The table's schema; the insight columns only when the job ran with insight on, so a table
    made without it looks exactly as before."""
    return RESULT_FIELDS + INSIGHT_FIELDS if insight else RESULT_FIELDS


CUT_MARK = "\n……\n（内容过长已截断，全文见「完整转写」附件 / Cut: the full text is attached as “Full transcript”）"


@dataclass
class ResultRow:
    """One row to write: a video's result, or a source row that gave no video."""

    video: VideoResult | None = None
    skipped: SkippedRow | None = None
    overview: str | None = None  # a batch's insight overview (``overview_text``), as its own row


@dataclass
class TranscriptCells:
    text: str = ""
    timed: str = ""
    cut: bool = False


@dataclass
class PreparedUploads:
    """A row's uploads: file tokens per attachment field, and notes about files left out."""

    files: dict[str, list[str]] = field(default_factory=dict)
    notes: list[UserText] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "notes": [n.to_dict() for n in self.notes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreparedUploads:
        files = {str(k): [str(t) for t in v] for k, v in dict(data.get("files") or {}).items()}
        return cls(files=files, notes=[UserText.from_dict(n) for n in data.get("notes") or ()])


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


def row_record(row: ResultRow, prepared: PreparedUploads) -> dict[str, Any]:
    if row.video is not None:
        return video_record(row.video, prepared)
    if row.overview is not None:
        return {Col.VIDEO: OVERVIEW_ROW_NAME, Col.SUMMARY: fit_text(row.overview)[0]}
    if row.skipped is None:
        raise ValueError("a row is a video or a skipped source row")
    return skipped_record(row.skipped)


def video_record(result: VideoResult, prepared: PreparedUploads) -> dict[str, Any]:
    values: dict[str, Any] = {
        Col.VIDEO: result.title,
        Col.STATUS: _STATUS_BY_RESULT.get(result.status, STATUS_FAILED),
        Col.ANALYSED_AT: int(result.analysed_at * 1000),
    }
    link = source_link(result.source)
    if link is not None:
        values[Col.SOURCE] = link
    if result.failure is not None:
        values[Col.ERROR] = f"{result.failure.message.zh}\n{result.failure.message.en}"
    media = result.media
    if media is not None:
        values[Col.DURATION] = round(media.duration_s, 1)
        if media.video is not None:
            values[Col.RESOLUTION] = media.video.resolution
    notes = list(result.notes)
    transcript = result.transcript
    if transcript is not None:
        cells = transcript_cells(transcript)
        values[Col.LANGUAGE] = transcript.language
        values[Col.ASR] = f"{transcript.backend} / {transcript.model}"
        if cells.text:
            values[Col.TRANSCRIPT] = cells.text
        if cells.timed:
            values[Col.TIMED_TRANSCRIPT] = cells.timed
        if cells.cut:
            notes.append(
                UserText(
                    zh="转写内容过长，表格中已截断，全文见附件。",
                    en="The transcript is too long for a cell: cut, full text attached.",
                )
            )
    if result.keywords:
        values[Col.KEYWORDS] = ", ".join(result.keywords)
    if result.insight is not None:
        values.update(insight_cells(result))
    for column, tokens in prepared.files.items():
        values[column] = [{"file_token": token} for token in tokens]
    notes.extend(prepared.notes)
    if notes:
        values[Col.NOTES] = "\n".join(f"{n.zh} / {n.en}" for n in notes)
    if result.processing_s > 0:
        values[Col.PROCESSING] = round(result.processing_s, 1)
    return {k: v for k, v in values.items() if v not in ("", None, [])}


def insight_cells(result: VideoResult) -> dict[str, Any]:
    """A video's insight as cells (``pipeline.insight.fields``: the words results.xlsx uses too)."""
    from pipeline.insight.fields import insight_fields

    if result.insight is None:
        return {}
    fields = insight_fields(result.insight)
    cells: dict[str, Any] = {
        Col.SUMMARY: fields.summary,
        Col.CHAPTERS: fields.chapters,
        Col.KEY_POINTS: fields.key_points,
        Col.VISUAL: fields.visual,
        Col.ANALYSIS: fields.analysis,
        Col.REQUEST_ANSWER: fields.request_answer,
        Col.INSIGHT_REASON: "\n".join(line for line in (fields.reason, fields.notes) if line),
        Col.MODELS: fields.models,
    }
    cells = {column: fit_text(text)[0] for column, text in cells.items()}
    if fields.tokens:
        cells[Col.TOKENS] = fields.tokens
    return cells


def skipped_record(row: SkippedRow) -> dict[str, Any]:
    values: dict[str, Any] = {
        Col.VIDEO: clean_name(row.name) or f"第 {row.row_number} 行 Row {row.row_number}",
        Col.STATUS: STATUS_SKIPPED,
        Col.ERROR: f"{row.reason.zh}\n{row.reason.en}",
        Col.NOTES: f"源表第 {row.row_number} 行 / Source table row {row.row_number}",
    }
    if row.link.lower().startswith(("http://", "https://")):
        values[Col.SOURCE] = {"text": row.link, "link": row.link}
    return values


def source_link(source: VideoSource) -> dict[str, str] | None:
    if source.kind == SourceKind.URL.value:
        link = source.locator
        return {"text": link, "link": link} if link.lower().startswith(("http://", "https://")) else None
    if source.kind == FEISHU_DRIVE_MEDIA:
        link = source.meta.get("bitable_url", "")
        row = source.meta.get("row_number", "?")
        if link.lower().startswith(("http://", "https://")):
            return {"text": f"源表第 {row} 行 Source row {row}", "link": link}
    return None  # a file sent in the chat has no link


def transcript_cells(transcript: Transcript) -> TranscriptCells:
    segments = [s for s in transcript.segments if s.text.strip()]
    long_video = any(s.start >= 3600 for s in segments)
    timed = "\n".join(f"[{format_clock(s.start, with_hours=long_video)}] {' '.join(s.text.split())}" for s in segments)
    text, cut_text = fit_text(transcript.text)
    timed, cut_timed = fit_text(timed)
    return TranscriptCells(text=text, timed=timed, cut=cut_text or cut_timed)


def json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def fit_text(text: str, limit: int = TEXT_CELL_MAX_BYTES) -> tuple[str, bool]:
    """``text`` whole when its JSON fits ``limit`` bytes, else the longest prefix that fits with the
    cut mark after it (cut at a line break when one is near)."""
    if json_bytes(text) <= limit:
        return text, False
    budget = limit - json_bytes(CUT_MARK)
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose JSON fits the budget
        middle = (low + high + 1) // 2
        if json_bytes(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    head = text[:low]
    newline = head.rfind("\n")
    if newline > low * 0.9:
        head = head[:newline]
    return head.rstrip() + CUT_MARK, True


def estimated_bytes(row: ResultRow) -> int:
    """A row's share of a batch_create body, before its files are uploaded (tokens have a fixed size)."""
    record = row_record(row, PreparedUploads())
    attachments = 0
    if row.video is not None:
        outputs = row.video.outputs
        attachments = len(row.video.screenshots) + 4 * (outputs is not None)
    return len(json.dumps(record, ensure_ascii=False).encode("utf-8")) + attachments * ATTACHMENT_JSON_BYTES


def plan_chunks(sizes: Sequence[int]) -> list[tuple[int, int]]:
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for position, size in enumerate(sizes):
        full = position - start >= BATCH_MAX_RECORDS or (position > start and used + size > BATCH_MAX_BYTES)
        if full:
            chunks.append((start, position))
            start, used = position, 0
        used += size
    if start < len(sizes):
        chunks.append((start, len(sizes)))
    return chunks


def table_url_for(app_url: str, app_token: str, table_id: str, api_domain: str) -> str:
    if not app_url:
        # Feishu answers with the Base's URL; should it not, the web host is the API host without "open.".
        host = api_domain.replace("://open.", "://", 1)
        app_url = f"{host}/base/{app_token}"
    return f"{app_url}{'&' if '?' in app_url else '?'}table={table_id}"
