"""The results of a job as a Bitable the requester owns: one Base per job, one row per video.

``BitableSink.write`` goes step by step, saving a checkpoint after each so a job resumed after a crash
carries on in the same Base instead of making a second one:

1. create the Base, named after the task (in the configured folder, or the app's own space);
2. make the requester a full-access collaborator, then its owner (so the data is theirs even if a
   later step fails; a refused transfer is noted and the job goes on);
3. create the results table with typed fields, then delete the Base's empty default table;
4. per chunk of rows: upload the row's files (screenshots, contact sheet, subtitles, the whole
   transcript when its cell had to be cut), throttled below Feishu's 5 QPS for ``upload_all``; then
   ``batch_create`` the chunk with ``client_token = stable_uuid(job_id, "rows", chunk)``, so a resend
   (a retry, or a resumed job) lands once. Upload outcomes are checkpointed before the rows are
   sent, so a resent chunk is byte-for-byte the first one.

One bad upload never sinks the job: the row goes without that file and says so in its notes.

Field choices: keywords are a text field, not a multi-select. Every new value written to a select
field becomes a new option of the field, and keywords are free words that differ from video to video:
a batch would leave thousands of options that clutter every filter and sort menu. Text stays
searchable (search, and filters with "contains").
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.feishu import (
    MB,
    UPLOAD_ALL_MAX_BYTES,
    CredentialsRejected,
    FeishuClient,
    FeishuError,
    NotFound,
    stable_uuid,
)
from bot.sources import FEISHU_DRIVE_MEDIA, SkippedRow
from pipeline.download import safe_filename
from pipeline.models import CancelToken, SourceKind, Transcript, UserText, VideoResult, VideoSource, VideoStatus
from pipeline.names import clean_name
from pipeline.outputs import transcript_text
from pipeline.subtitles import format_clock

__all__ = [
    "BATCH_MAX_BYTES",
    "BATCH_MAX_RECORDS",
    "RESULT_FIELDS",
    "STATUS_OPTIONS",
    "TEXT_CELL_MAX_BYTES",
    "BitableSink",
    "Col",
    "ResultsTable",
]

log = logging.getLogger(__name__)

# Feishu: this client_token was used before with a different request body.
CLIENT_TOKEN_CONFLICT = 1255006

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

CUT_MARK = "\n……\n（内容过长已截断，全文见「完整转写」附件 / Cut: the full text is attached as “Full transcript”）"


@dataclass(frozen=True)
class ResultsTable:
    """Where the results are. ``url`` opens the Base on the results table. ``owner_transferred`` is
    False when Feishu refused to make the requester the owner (``notes`` says what that means)."""

    app_token: str
    table_id: str
    url: str
    rows_written: int
    owner_transferred: bool = True
    notes: tuple[UserText, ...] = ()


@dataclass
class _Row:
    """One row to write: a video's result, or a source row that gave no video."""

    video: VideoResult | None = None
    skipped: SkippedRow | None = None


@dataclass
class _TranscriptCells:
    text: str = ""
    timed: str = ""
    cut: bool = False


@dataclass
class _Prepared:
    """A row's uploads: file tokens per attachment field, and notes about files left out."""

    files: dict[str, list[str]] = field(default_factory=dict)
    notes: list[UserText] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "notes": [n.to_dict() for n in self.notes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Prepared:
        files = {str(k): [str(t) for t in v] for k, v in dict(data.get("files") or {}).items()}
        return cls(files=files, notes=[UserText.from_dict(n) for n in data.get("notes") or ()])


class _Throttle:
    """Spaces calls at least ``1 / qps`` seconds apart (by the injected clock), across threads: each
    caller reserves the next free slot, then sleeps until it outside the lock."""

    def __init__(self, qps: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / qps
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class BitableSink:
    """Writes a job's results into a new Base. Share one instance per process: its upload throttle
    spans every job it writes, and Feishu's 5 QPS for ``upload_all`` is per app. Each job writes its
    own Base from one thread (a Base takes one writer: concurrent writes fail with 1254291)."""

    def __init__(
        self,
        client: FeishuClient,
        *,
        default_folder_token: str = "",
        upload_qps: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < upload_qps < UPLOAD_QPS_CEILING:
            raise ValueError(f"upload_qps must be above 0 and below Feishu's {UPLOAD_QPS_CEILING:g} QPS")
        self._client = client
        self._default_folder_token = default_folder_token
        self._throttle = _Throttle(upload_qps, clock, sleep)

    def write(
        self,
        *,
        job_id: str,
        title: str,
        owner_open_id: str,
        videos: Sequence[VideoResult],
        skipped: Sequence[SkippedRow] = (),
        folder_token: str | None = None,
        checkpoint: Mapping[str, Any] | None = None,
        save_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> ResultsTable:
        """Write one row per video (in order), then one per skipped source row; return where.

        ``checkpoint`` is the last dict given to ``save_checkpoint`` by an earlier, interrupted call
        for the same job (the caller persists it, e.g. ``JobStore.save_result``). ``on_progress`` gets
        ``(rows done, rows in all)``. ``cancel`` is checked between files and rows: a cancelled write
        raises ``JobCancelled`` and keeps what was written."""
        run = _Run(
            sink=self,
            job_id=job_id,
            state=copy.deepcopy(dict(checkpoint or {})),
            save=save_checkpoint,
            on_progress=on_progress,
            cancel=cancel,
            throttle=self._throttle,
        )
        rows = [_Row(video=v) for v in videos] + [_Row(skipped=s) for s in skipped]
        run.check_cancel()
        run.ensure_base(title, folder_token if folder_token is not None else self._default_folder_token)
        run.ensure_owner(owner_open_id)
        run.ensure_table()
        written = run.write_rows(rows)
        state = run.state
        return ResultsTable(
            app_token=state["app_token"],
            table_id=state["table_id"],
            url=_table_url(state["url"], state["app_token"], state["table_id"], self._client.domain),
            rows_written=written,
            owner_transferred=bool(state.get("owner_transferred", False)),
            notes=tuple(UserText.from_dict(n) for n in state.get("notes") or ()),
        )


@dataclass
class _Run:
    """One ``write`` call: its checkpoint state and the steps that advance it."""

    sink: BitableSink
    job_id: str
    state: dict[str, Any]
    save: Callable[[dict[str, Any]], None] | None
    on_progress: Callable[[int, int], None] | None
    cancel: CancelToken | None
    throttle: _Throttle

    @property
    def client(self) -> FeishuClient:
        return self.sink._client

    def checkpoint(self) -> None:
        if self.save is not None:
            self.save(copy.deepcopy(self.state))

    def note(self, text: UserText) -> None:
        self.state.setdefault("notes", []).append(text.to_dict())

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    # ---- steps 1 to 3 ------------------------------------------------------------------------------

    def ensure_base(self, title: str, folder_token: str) -> None:
        if self.state.get("app_token"):
            return
        name = " ".join(title.split())[:MAX_BASE_NAME_CHARS] or f"视频分析 Video analysis {self.job_id}"
        app = self.client.create_bitable_app(name, folder_token)
        self.state.update(app_token=app.app_token, url=app.url, default_table_id=app.default_table_id)
        log.info("job %s: results Base %s created", self.job_id, app.app_token)
        self.checkpoint()

    def ensure_owner(self, owner_open_id: str) -> None:
        if self.state.get("owner_done") or not owner_open_id:
            return
        app_token = self.state["app_token"]
        member_added = True
        try:
            self.client.add_member(app_token, member_id=owner_open_id, perm="full_access")
        except CredentialsRejected:
            raise
        except FeishuError as err:
            member_added = False
            log.warning("job %s: adding the requester to %s failed: %s", self.job_id, app_token, err)
        try:
            self.client.transfer_owner(app_token, member_id=owner_open_id)
            self.state["owner_transferred"] = True
        except CredentialsRejected:
            raise
        except FeishuError as err:
            self.state["owner_transferred"] = False
            log.warning("job %s: ownership transfer of %s refused: %s", self.job_id, app_token, err)
            if member_added:
                self.note(
                    UserText(
                        zh="无法把结果表格的所有权转给你（飞书拒绝了转移），表格仍归机器人所有；你已有可管理权限，可以查看、编辑和分享。",
                        en="The results Base could not be handed over to you (Feishu refused the transfer), so the "
                        "bot still owns it; you have full access and can view, edit and share it.",
                    )
                )
            else:
                self.note(
                    UserText(
                        zh="无法把结果表格共享或转交给你，请联系管理员为机器人开通云文档权限后点“重试”。",
                        en="The results Base could not be shared with or handed over to you. Ask the administrator "
                        "to grant the bot's app document permissions, then retry.",
                    )
                )
        self.state["owner_done"] = True
        self.checkpoint()

    def ensure_table(self) -> None:
        app_token = self.state["app_token"]
        if not self.state.get("table_id"):
            # A crash between creating the table and saving its id leaves the table in the Base: find it.
            table_id = next((t.table_id for t in self.client.list_tables(app_token) if t.name == TABLE_NAME), None)
            if table_id is None:
                table_id = self.client.create_table(
                    app_token, TABLE_NAME, RESULT_FIELDS, default_view_name=DEFAULT_VIEW_NAME
                )
            self.state["table_id"] = table_id
            self.checkpoint()
        default = self.state.get("default_table_id")
        if default and default != self.state["table_id"] and not self.state.get("default_table_removed"):
            # The new Base opens on its default table, which holds placeholder fields and no data.
            try:
                self.client.delete_table(app_token, default)
            except NotFound:
                pass
            except CredentialsRejected:
                raise
            except FeishuError as err:
                log.warning("job %s: the default table of %s was not removed: %s", self.job_id, app_token, err)
            self.state["default_table_removed"] = True
            self.checkpoint()

    # ---- step 4 --------------------------------------------------------------------------------------

    def write_rows(self, rows: Sequence[_Row]) -> int:
        total = len(rows)
        chunks = self._chunks(rows)
        written = int(self.state.get("chunks_written", 0))
        prepared: dict[str, Any] = self.state.setdefault("prepared", {})
        done = chunks[written - 1][1] if written else 0
        self._progress(done, total)
        app_token, table_id = self.state["app_token"], self.state["table_id"]
        for index in range(written, len(chunks)):
            start, end = chunks[index]
            for position in range(start, end):
                self.check_cancel()
                if str(position) not in prepared:
                    outcome = self._prepare(rows[position])
                    prepared[str(position)] = outcome.to_dict()
                    if outcome.files or outcome.notes:
                        self.checkpoint()
            records = [_record(rows[p], _Prepared.from_dict(prepared[str(p)])) for p in range(start, end)]
            self.check_cancel()
            try:
                self.client.batch_create_records(
                    app_token, table_id, records, client_token=stable_uuid(self.job_id, "rows", str(index))
                )
            except FeishuError as err:
                if err.code != CLIENT_TOKEN_CONFLICT:
                    raise
                # Feishu has seen this chunk's token with another body: an attempt before a crash was
                # applied, and the resumed job analysed the videos again (timings differ). Those rows
                # are in the table once; sending them again under a new token would duplicate them.
                log.warning("job %s: rows chunk %d was already written before a restart", self.job_id, index)
            for position in range(start, end):
                prepared.pop(str(position), None)
            self.state["chunks_written"] = index + 1
            self.state["rows_written"] = end
            self.checkpoint()
            # Rows in the table, not rows prepared: a failed write must not read "2 / 2 rows".
            self._progress(end, total)
        return int(self.state.get("rows_written", 0))

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    def _chunks(self, rows: Sequence[_Row]) -> list[tuple[int, int]]:
        """Chunk boundaries, fixed by the first call for this job: a chunk's client_token must keep
        standing for the same rows when the job resumes."""
        saved = self.state.get("chunks")
        if saved and self.state.get("rows_total") == len(rows):
            return [(int(a), int(b)) for a, b in saved]
        if saved:
            log.warning("job %s: %d rows now, %s at the checkpoint; re-chunking", self.job_id, len(rows), saved)
        chunks = _plan_chunks([_estimated_bytes(row) for row in rows])
        self.state["chunks"] = [list(c) for c in chunks]
        self.state["rows_total"] = len(rows)
        self.checkpoint()
        return chunks

    def _prepare(self, row: _Row) -> _Prepared:
        """Upload a video row's files; notes say what could not be attached."""
        outcome = _Prepared()
        result = row.video
        if result is None:
            return outcome
        stem = safe_filename(result.title, default=f"video-{result.index + 1}", max_bytes=120)
        for n, shot in enumerate(sorted(result.screenshots, key=lambda s: s.time_s), start=1):
            label = UserText(
                zh=f"截图 {n}（{format_clock(shot.time_s)}）", en=f"screenshot {n} ({format_clock(shot.time_s)})"
            )
            name = f"{n:02d}-{format_clock(shot.time_s).replace(':', '-')}{shot.path.suffix or '.jpg'}"
            self._upload(outcome, Col.SCREENSHOTS, shot.path, "bitable_image", name, label)
        outputs = result.outputs
        if outputs is not None and outputs.contact_sheet is not None:
            label = UserText(zh="截图总览", en="contact sheet")
            self._upload(outcome, Col.CONTACT_SHEET, outputs.contact_sheet, "bitable_image", f"{stem}-总览.jpg", label)
        if outputs is not None and outputs.subtitles_srt is not None:
            label = UserText(zh="字幕文件", en="subtitles file")
            self._upload(outcome, Col.SUBTITLES, outputs.subtitles_srt, "bitable_file", f"{stem}.srt", label)
        transcript = result.transcript
        if transcript is not None and _transcript_cells(transcript).cut:
            label = UserText(zh="完整转写文件", en="full transcript file")
            txt = outputs.transcript_txt if outputs is not None else None
            if txt is not None and txt.is_file():
                self._upload(outcome, Col.FULL_TRANSCRIPT, txt, "bitable_file", f"{stem}.txt", label)
            elif outputs is not None:
                # Written beside the video's other outputs: inside the job's workspace, removed with it.
                path = outputs.directory / "transcript-full.txt"
                path.write_text(transcript_text(transcript, result.title), encoding="utf-8")
                self._upload(outcome, Col.FULL_TRANSCRIPT, path, "bitable_file", f"{stem}.txt", label)
            else:
                outcome.notes.append(
                    UserText(zh=f"{label.zh}无法生成，未附上。", en=f"The {label.en} could not be made: not attached.")
                )
        return outcome

    def _upload(
        self, outcome: _Prepared, column: str, path: Path, parent_type: str, name: str, label: UserText
    ) -> None:
        self.check_cancel()
        try:
            size = path.stat().st_size
        except OSError:
            outcome.notes.append(
                UserText(zh=f"{label.zh}文件缺失，未附上。", en=f"The {label.en} is missing: not attached.")
            )
            return
        if size == 0:
            outcome.notes.append(
                UserText(zh=f"{label.zh}是空文件，未附上。", en=f"The {label.en} is empty: not attached.")
            )
            return
        if size > UPLOAD_ALL_MAX_BYTES:
            limit = UPLOAD_ALL_MAX_BYTES // MB
            outcome.notes.append(
                UserText(
                    zh=f"{label.zh}超过 {limit} MB，未附上。",
                    en=f"The {label.en} is over {limit} MB: not attached.",
                )
            )
            return
        self.throttle.wait()
        try:
            token = self.client.upload_media(
                path, parent_type=parent_type, parent_node=self.state["app_token"], file_name=name
            )
        except CredentialsRejected:
            raise
        except (FeishuError, OSError) as err:
            log.warning("job %s: upload of %s failed: %s", self.job_id, path.name, err)
            outcome.notes.append(
                UserText(zh=f"{label.zh}上传失败，未附上。", en=f"The {label.en} failed to upload: not attached.")
            )
            return
        outcome.files.setdefault(column, []).append(token)


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


def _record(row: _Row, prepared: _Prepared) -> dict[str, Any]:
    if row.video is not None:
        return _video_record(row.video, prepared)
    if row.skipped is None:
        raise ValueError("a row is a video or a skipped source row")
    return _skipped_record(row.skipped)


def _video_record(result: VideoResult, prepared: _Prepared) -> dict[str, Any]:
    values: dict[str, Any] = {
        Col.VIDEO: result.title,
        Col.STATUS: _STATUS_BY_RESULT.get(result.status, STATUS_FAILED),
        Col.ANALYSED_AT: int(result.analysed_at * 1000),
    }
    link = _source_link(result.source)
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
        cells = _transcript_cells(transcript)
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
    for column, tokens in prepared.files.items():
        values[column] = [{"file_token": token} for token in tokens]
    notes.extend(prepared.notes)
    if notes:
        values[Col.NOTES] = "\n".join(f"{n.zh} / {n.en}" for n in notes)
    if result.processing_s > 0:
        values[Col.PROCESSING] = round(result.processing_s, 1)
    return {k: v for k, v in values.items() if v not in ("", None, [])}


def _skipped_record(row: SkippedRow) -> dict[str, Any]:
    values: dict[str, Any] = {
        Col.VIDEO: clean_name(row.name) or f"第 {row.row_number} 行 Row {row.row_number}",
        Col.STATUS: STATUS_SKIPPED,
        Col.ERROR: f"{row.reason.zh}\n{row.reason.en}",
        Col.NOTES: f"源表第 {row.row_number} 行 / Source table row {row.row_number}",
    }
    if row.link.lower().startswith(("http://", "https://")):
        values[Col.SOURCE] = {"text": row.link, "link": row.link}
    return values


def _source_link(source: VideoSource) -> dict[str, str] | None:
    if source.kind == SourceKind.URL.value:
        link = source.locator
        return {"text": link, "link": link} if link.lower().startswith(("http://", "https://")) else None
    if source.kind == FEISHU_DRIVE_MEDIA:
        link = source.meta.get("bitable_url", "")
        row = source.meta.get("row_number", "?")
        if link.lower().startswith(("http://", "https://")):
            return {"text": f"源表第 {row} 行 Source row {row}", "link": link}
    return None  # a file sent in the chat has no link


def _transcript_cells(transcript: Transcript) -> _TranscriptCells:
    segments = [s for s in transcript.segments if s.text.strip()]
    long_video = any(s.start >= 3600 for s in segments)
    timed = "\n".join(f"[{format_clock(s.start, with_hours=long_video)}] {' '.join(s.text.split())}" for s in segments)
    text, cut_text = _fit(transcript.text)
    timed, cut_timed = _fit(timed)
    return _TranscriptCells(text=text, timed=timed, cut=cut_text or cut_timed)


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def _fit(text: str, limit: int = TEXT_CELL_MAX_BYTES) -> tuple[str, bool]:
    """``text`` whole when its JSON fits ``limit`` bytes, else the longest prefix that fits with the
    cut mark after it (cut at a line break when one is near)."""
    if _json_bytes(text) <= limit:
        return text, False
    budget = limit - _json_bytes(CUT_MARK)
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose JSON fits the budget
        middle = (low + high + 1) // 2
        if _json_bytes(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    head = text[:low]
    newline = head.rfind("\n")
    if newline > low * 0.9:
        head = head[:newline]
    return head.rstrip() + CUT_MARK, True


def _estimated_bytes(row: _Row) -> int:
    """A row's share of a batch_create body, before its files are uploaded (tokens have a fixed size)."""
    record = _record(row, _Prepared())
    attachments = 0
    if row.video is not None:
        outputs = row.video.outputs
        attachments = len(row.video.screenshots) + 3 * (outputs is not None)
    return len(json.dumps(record, ensure_ascii=False).encode("utf-8")) + attachments * ATTACHMENT_JSON_BYTES


def _plan_chunks(sizes: Sequence[int]) -> list[tuple[int, int]]:
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


def _table_url(app_url: str, app_token: str, table_id: str, api_domain: str) -> str:
    if not app_url:
        # Feishu answers with the Base's URL; should it not, the web host is the API host without "open.".
        host = api_domain.replace("://open.", "://", 1)
        app_url = f"{host}/base/{app_token}"
    return f"{app_url}{'&' if '?' in app_url else '?'}table={table_id}"
