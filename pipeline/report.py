"""The files for a whole batch: ``results.json`` (everything, for programs) and ``results.xlsx`` (one
row per video with a thumbnail, for people opening it in Excel or WPS).

Paths in ``results.json`` are relative to the batch directory, so the folder can be zipped and moved.
Cells hold user-supplied text (names, links, transcripts), so every string is written as plain text:
a name starting with ``=`` stays a name, never a formula.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.drawing.image import Image as SheetImage
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from PIL import Image

from pipeline.insight.fields import insight_fields, overview_text
from pipeline.insight.models import INSIGHT_OFF_NOTE
from pipeline.models import BatchResult, VideoResult, VideoStatus
from pipeline.outputs import TRANSCRIPT_TXT, relative_path, video_record, write_json
from pipeline.subtitles import isoformat

log = logging.getLogger(__name__)

RESULTS_JSON = "results.json"
RESULTS_XLSX = "results.xlsx"

EXCEL_CELL_LIMIT = 32_767  # characters a cell holds; Excel refuses longer values
THUMBNAIL_WIDTH_PX = 160
_THUMBNAIL_MAX_HEIGHT_PX = 240
_ROW_HEIGHT_PT = 60.0  # rows without a thumbnail: enough for four lines of transcript
_POINTS_PER_PIXEL = 0.75
_MAX_LINK_LENGTH = 2000

_STATUS_TEXT = {
    VideoStatus.OK: "成功 OK",
    VideoStatus.FAILED: "失败 Failed",
    VideoStatus.CANCELLED: "已取消 Cancelled",
}
_STATUS_FILL = {
    VideoStatus.FAILED: PatternFill("solid", fgColor="FFD9D9"),
    VideoStatus.CANCELLED: PatternFill("solid", fgColor="E7E6E6"),
}
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_FONT = Font(bold=True)
_TOP_WRAPPED = Alignment(vertical="top", wrap_text=True)


@dataclass(frozen=True)
class _Column:
    title: str
    width: float  # in Excel's character units


_VIDEO_COLUMNS = (
    _Column("序号 No.", 7),
    _Column("缩略图 Thumbnail", 23),
    _Column("名称 Name", 28),
    _Column("来源 Source", 36),
    _Column("状态 Status", 13),
    _Column("失败原因 Reason (中文)", 34),
    _Column("失败原因 Reason (English)", 34),
    _Column("时长 Duration", 11),
    _Column("分辨率 Resolution", 12),
    _Column("语言 Language", 10),
    _Column("识别引擎 ASR", 20),
    _Column("关键词 Keywords", 30),
    _Column("文字稿 Transcript", 80),
    _Column("截图数 Screenshots", 11),
    _Column("备注 Notes", 34),
    _Column("处理耗时(秒) Processing (s)", 14),
    _Column("分析时间 Analysed at", 20),
)
_THUMBNAIL_COLUMN = 2

_SEGMENT_COLUMNS = (
    _Column("序号 No.", 7),
    _Column("名称 Name", 28),
    _Column("开始 Start", 13),
    _Column("结束 End", 13),
    _Column("文字 Text", 100),
)

_DURATION_FORMAT = "[h]:mm:ss"
_SEGMENT_TIME_FORMAT = "[h]:mm:ss.000"
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_SECONDS_PER_DAY = 86_400


def write_batch_report(batch: BatchResult, *, tz: tzinfo = UTC) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.xlsx`` into the batch directory; returns their paths.

    ``tz`` is the time zone the spreadsheet shows times in (JSON always carries UTC with its offset)."""
    batch.out_dir.mkdir(parents=True, exist_ok=True)
    return write_results_json(batch), write_results_xlsx(batch, tz=tz)


def write_results_json(batch: BatchResult) -> Path:
    videos = sorted(batch.videos, key=lambda v: v.index)
    data: dict[str, Any] = {
        "started_at": isoformat(batch.started_at),
        "finished_at": isoformat(batch.finished_at),
        "elapsed_s": round(batch.finished_at - batch.started_at, 3),
        "generated_at": isoformat(time.time()),
        "counts": {
            "total": len(videos),
            "ok": batch.ok_count,
            "failed": batch.failed_count,
            "cancelled": sum(1 for v in videos if v.status is VideoStatus.CANCELLED),
        },
        "videos": [video_record(v, batch.out_dir, with_segments=True) for v in videos],
        "insight": {
            "enabled": batch.insight_enabled,
            "note": None if batch.insight_enabled else INSIGHT_OFF_NOTE.to_dict(),
            "overview": batch.overview.to_dict() if batch.overview else None,
        },
    }
    path = batch.out_dir / RESULTS_JSON
    write_json(path, data)
    return path


def write_results_xlsx(batch: BatchResult, *, tz: tzinfo = UTC) -> Path:
    videos = sorted(batch.videos, key=lambda v: v.index)
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = "视频 Videos"
    analysed_title = f"分析时间 Analysed at ({_zone_label(tz)})"
    columns = [c if c.title != "分析时间 Analysed at" else _Column(analysed_title, c.width) for c in _VIDEO_COLUMNS]
    _header(sheet, columns)
    for row, video in enumerate(videos, start=2):
        _video_row(sheet, row, video, batch.out_dir, tz)
    _finish(sheet, columns, len(videos))

    segments = workbook.create_sheet("分段 Segments")
    _header(segments, _SEGMENT_COLUMNS)
    row = 1
    for video in videos:
        for segment in video.transcript.segments if video.transcript else ():
            row += 1
            _number(segments.cell(row, 1), video.index + 1)
            _text(segments.cell(row, 2), video.title)
            _number(segments.cell(row, 3), max(0.0, segment.start) / _SECONDS_PER_DAY, _SEGMENT_TIME_FORMAT)
            _number(segments.cell(row, 4), max(0.0, segment.end) / _SECONDS_PER_DAY, _SEGMENT_TIME_FORMAT)
            _text(segments.cell(row, 5), segment.text.strip())
    _finish(segments, _SEGMENT_COLUMNS, row - 1)

    if batch.insight_enabled:
        _insight_sheets(workbook, videos, batch)

    path = batch.out_dir / RESULTS_XLSX
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    workbook.save(tmp)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


def _video_row(sheet: Worksheet, row: int, video: VideoResult, batch_dir: Path, tz: tzinfo) -> None:
    media, transcript, failure = video.media, video.transcript, video.failure
    status_cell = sheet.cell(row, 5)
    values: list[tuple[int, Any]] = [
        (3, video.title),
        (4, video.source.locator),
        (5, _STATUS_TEXT.get(video.status, video.status.value)),
        (6, failure.message.zh if failure else ""),
        (7, failure.message.en if failure else ""),
        (9, media.video.resolution if media and media.video else ""),
        (10, transcript.language if transcript else ""),
        (11, f"{transcript.backend} / {transcript.model}" if transcript else ""),
        (12, "、".join(video.keywords)),
        (13, _transcript_cell(video, batch_dir)),
        (15, "\n".join(str(note) for note in video.notes)),
    ]
    for column, value in values:
        _text(sheet.cell(row, column), value)
    _number(sheet.cell(row, 1), video.index + 1)
    if media is not None:
        _number(sheet.cell(row, 8), media.duration_s / _SECONDS_PER_DAY, _DURATION_FORMAT)
    _number(sheet.cell(row, 14), len(video.screenshots))
    _number(sheet.cell(row, 16), round(video.processing_s, 1), "0.0")
    analysed = datetime.fromtimestamp(video.analysed_at, tz).replace(tzinfo=None)
    _number(sheet.cell(row, 17), analysed, _DATETIME_FORMAT)

    link = video.source.locator
    if link.startswith(("http://", "https://")) and len(link) <= _MAX_LINK_LENGTH:
        sheet.cell(row, 4).hyperlink = link
        sheet.cell(row, 4).style = "Hyperlink"
        sheet.cell(row, 4).alignment = _TOP_WRAPPED
    if video.status in _STATUS_FILL:
        status_cell.fill = _STATUS_FILL[video.status]

    height_pt = _ROW_HEIGHT_PT
    thumbnail = _thumbnail(video)
    if thumbnail is not None:
        sheet.add_image(thumbnail, f"{get_column_letter(_THUMBNAIL_COLUMN)}{row}")
        height_pt = max(height_pt, (float(thumbnail.height) + 8) * _POINTS_PER_PIXEL)
    sheet.row_dimensions[row].height = height_pt


def _transcript_cell(video: VideoResult, batch_dir: Path) -> str:
    if video.transcript is None:
        return ""
    text = video.transcript.text
    if len(text) <= EXCEL_CELL_LIMIT:
        return text
    where = TRANSCRIPT_TXT
    if video.outputs is not None and video.outputs.transcript_txt is not None:
        where = relative_path(video.outputs.transcript_txt, batch_dir)
    note = f"…［已截断，全文见 {where} / Truncated: the full text is in {where}］"
    return text[: EXCEL_CELL_LIMIT - len(note)] + note


def _thumbnail(video: VideoResult) -> SheetImage | None:
    """The first screenshot that opens, shrunk to ``THUMBNAIL_WIDTH_PX`` wide (the workbook stays small)."""
    for shot in sorted(video.screenshots, key=lambda s: s.time_s):
        try:
            with Image.open(shot.path) as image:
                image.draft("RGB", (THUMBNAIL_WIDTH_PX, _THUMBNAIL_MAX_HEIGHT_PX))
                picture = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("screenshot %s not usable as a thumbnail: %s", shot.path.name, exc)
            continue
        scale = min(THUMBNAIL_WIDTH_PX / picture.width, _THUMBNAIL_MAX_HEIGHT_PX / picture.height)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        buffer = io.BytesIO()
        picture.resize(size, Image.Resampling.LANCZOS).save(buffer, format="JPEG", quality=85)
        buffer.seek(0)
        thumbnail = SheetImage(buffer)
        thumbnail.width, thumbnail.height = size
        return thumbnail
    return None


_INSIGHT_COLUMNS = (
    _Column("序号 No.", 7),
    _Column("名称 Name", 28),
    _Column("模板 Preset", 10),
    _Column("摘要 Summary", 60),
    _Column("章节 Chapters", 50),
    _Column("要点 Key points", 50),
    _Column("画面 Visual read", 50),
    _Column("专项分析 Preset analysis", 40),
    _Column("分析要求回答 Analysis request", 40),
    _Column("缺失原因 Why missing", 40),
    _Column("备注 Notes", 30),
    _Column("模型 Models", 20),
    _Column("Tokens", 10),
)


def _insight_sheets(workbook: Workbook, videos: Sequence[VideoResult], batch: BatchResult) -> None:
    """One row of insight per video; and the batch overview, when there is one."""
    sheet = workbook.create_sheet("洞察 Insight")
    _header(sheet, _INSIGHT_COLUMNS)
    for row, video in enumerate(videos, start=2):
        _number(sheet.cell(row, 1), video.index + 1)
        _text(sheet.cell(row, 2), video.title)
        if video.insight is None:
            continue
        f = insight_fields(video.insight)
        cells = (video.insight.preset, f.summary, f.chapters, f.key_points, f.visual, f.analysis,
                 f.request_answer, f.reason, f.notes, f.models)  # fmt: skip
        for column, value in enumerate(cells, start=3):
            _text(sheet.cell(row, column), value)
        _number(sheet.cell(row, 13), f.tokens)
    _finish(sheet, _INSIGHT_COLUMNS, len(videos))
    if batch.overview is not None:
        overview = workbook.create_sheet("概览 Overview")
        overview.column_dimensions["A"].width = 120
        for row, line in enumerate(overview_text(batch.overview).splitlines(), start=1):
            _text(overview.cell(row, 1), line)


# --------------------------------------------------------------------------------------------------
# Cells and sheets
# --------------------------------------------------------------------------------------------------


def _text(cell: Cell, value: str) -> None:
    """Plain text whatever it starts with, without the control characters XML cannot carry, cut to
    what a cell holds."""
    clean = ILLEGAL_CHARACTERS_RE.sub("", value)[:EXCEL_CELL_LIMIT]
    cell.value = clean
    cell.data_type = "s"  # "=..." from a user stays text: no formula injection
    cell.alignment = _TOP_WRAPPED


def _number(cell: Cell, value: Any, number_format: str | None = None) -> None:
    cell.value = value
    if number_format:
        cell.number_format = number_format
    cell.alignment = Alignment(vertical="top")


def _header(sheet: Worksheet, columns: Sequence[_Column]) -> None:
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(1, index, column.title)
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.row_dimensions[1].height = 32


def _finish(sheet: Worksheet, columns: Sequence[_Column], rows: int) -> None:
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{rows + 1}"


def _zone_label(tz: tzinfo) -> str:
    offset = datetime.now(tz).utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"
