"""The results of a job as a Bitable the requester owns: one Base per job, one row per video.

``BitableSink.write`` goes step by step, saving a checkpoint after each so a job resumed after a crash
carries on in the same Base instead of making a second one:

1. create the Base, named after the task plus a tag unique to the job (in the configured folder, or the
   app's own space). Creating a Base has no idempotency key, so the name is checkpointed before the call;
   a retry after an answer that never came (a crash, a client timeout) first looks for Bases of that
   name in the folder, keeps one and deletes any other, so a job owns exactly one Base;
2. make the requester a full-access collaborator, then its owner (so the data is theirs even if a
   later step fails; a refused transfer is noted and the job goes on);
3. create the results table with typed fields, then delete the Base's empty default table;
4. per chunk of rows: upload the row's files (screenshots, contact sheet, subtitles, the whole
   transcript when its cell had to be cut), throttled below Feishu's 5 QPS for ``upload_all``; then
   ``batch_create`` the chunk with ``client_token = bot.keys.rows_client_token(job_id, chunk)``, so a resend
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
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.feishu import (
    MB,
    UPLOAD_ALL_MAX_BYTES,
    CredentialsRejected,
    DriveFile,
    FeishuClient,
    FeishuError,
    NotFound,
    PermissionDenied,
)
from bot.job.record import SkippedRow
from bot.job.result_rows import (
    DEFAULT_VIEW_NAME,
    MAX_BASE_NAME_CHARS,
    TABLE_NAME,
    UPLOAD_QPS_CEILING,
    Col,
    PreparedUploads,
    ResultRow,
    estimated_bytes,
    plan_chunks,
    result_fields,
    row_record,
    table_url_for,
    transcript_cells,
)
from bot.job.upload_quota import UploadQuota
from bot.keys import base_name_tag, rows_client_token
from pipeline.download import safe_filename
from pipeline.models import CancelToken, UserText, VideoResult
from pipeline.outputs import transcript_text
from pipeline.subtitles import format_clock

__all__ = ["BitableSink", "ResultsTable"]

log = logging.getLogger(__name__)

# How far a retry looks for the Base its lost create may have made: folder pages (newest first), and
# how much older than the recorded intent a Base may look (the clocks of Feishu and this host differ).
BASE_SEARCH_MAX_PAGES = 20
BASE_SEARCH_SLACK_S = 600

# Feishu: this client_token was used before with a different request body.
CLIENT_TOKEN_CONFLICT = 1255006
# Feishu: "the same request was submitted repeatedly" (an earlier identical call may still be in flight, or
# may have been applied): possibly applied, so the table is read before the chunk is sent again.
POSSIBLY_APPLIED = 1254608
POSSIBLY_APPLIED_TRIES = 3
POSSIBLY_APPLIED_WAIT_S = 1.0


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


def base_name(title: str, job_id: str) -> str:
    """The task's title with the job's tag: unique per job, so a retry can find the Base by name."""
    tag = base_name_tag(job_id)
    head = " ".join(title.split())[: MAX_BASE_NAME_CHARS - len(tag) - 3] or "视频分析 Video analysis"
    return f"{head} · {tag}"


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


def upload_keys(row: ResultRow) -> list[tuple[str, tuple[int, int]]]:
    """The uploads a row wants, each with its priority when the day's allowance runs short (lower first):
    contact sheet, subtitles, notes.md, full transcript, then screenshots by rank. Keys match ``_Run._prepare``."""
    result = row.video
    if result is None:
        return []
    keys: list[tuple[str, tuple[int, int]]] = []
    outputs = result.outputs
    if outputs is not None and outputs.contact_sheet is not None:
        keys.append(("sheet", (0, 0)))
    if outputs is not None and outputs.subtitles_srt is not None:
        keys.append(("srt", (1, 0)))
    if outputs is not None and outputs.notes_md is not None and outputs.notes_md.is_file():
        keys.append(("notes", (1, 1)))  # notes.md (insight on): after the subtitles, before full transcripts
    if outputs is not None and result.transcript is not None and transcript_cells(result.transcript).cut:
        keys.append(("txt", (2, 0)))
    keys.extend((f"shot:{n}", (3, n)) for n in range(1, len(result.screenshots) + 1))
    return keys


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
        quota: UploadQuota | None = None,
    ) -> None:
        if not 0 < upload_qps < UPLOAD_QPS_CEILING:
            raise ValueError(f"upload_qps must be above 0 and below Feishu's {UPLOAD_QPS_CEILING:g} QPS")
        self._client = client
        self._default_folder_token = default_folder_token
        self._throttle = _Throttle(upload_qps, clock, sleep)
        self._sleep = sleep
        self._quota = quota  # the app's daily upload allowance; None = not counted
        # Feishu refuses overlapping uploads from one app (1061045): one at a time across all jobs here.
        self._upload_lock = threading.Lock()

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
        insight: bool = False,
        overview: str | None = None,
    ) -> ResultsTable:
        """Write one row per video (in order), then one per skipped source row; return where.

        ``checkpoint`` is the last dict given to ``save_checkpoint`` by an earlier, interrupted call
        for the same job (the caller persists it, e.g. ``JobStore.save_result``). ``on_progress`` gets
        ``(rows done, rows in all)``. ``cancel`` is checked between files and rows: a cancelled write
        raises ``JobCancelled`` and keeps what was written. ``insight``: the job ran with insight on (the
        table gets its columns and each video its notes.md); ``overview``: a batch's overview, written
        as a last row."""
        run = _Run(
            sink=self,
            job_id=job_id,
            state=copy.deepcopy(dict(checkpoint or {})),
            save=save_checkpoint,
            on_progress=on_progress,
            cancel=cancel,
            throttle=self._throttle,
        )
        rows = [ResultRow(video=v) for v in videos] + [ResultRow(skipped=s) for s in skipped]
        if overview:
            rows.append(ResultRow(overview=overview))
        run.check_cancel()
        run.ensure_base(title, folder_token if folder_token is not None else self._default_folder_token)
        run.ensure_owner(owner_open_id)
        run.ensure_table(insight=insight)
        written = run.write_rows(rows)
        state = run.state
        return ResultsTable(
            app_token=state["app_token"],
            table_id=state["table_id"],
            url=table_url_for(state["url"], state["app_token"], state["table_id"], self._client.domain),
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
        intent = self.state.get("base_intent")
        if intent is None:
            # Recorded before the call: if its answer is lost, the retry knows which name to look for.
            intent = {"name": base_name(title, self.job_id), "folder_token": folder_token, "at": int(time.time())}
            self.state["base_intent"] = intent
            self.checkpoint()
        else:
            made = self._bases_named(intent)
            if made:
                self._adopt(made[0], intent["name"])
                for orphan in made[1:]:
                    self._delete_orphan(orphan)
                self.checkpoint()
                return
        try:
            app = self.client.create_bitable_app(intent["name"], intent["folder_token"])
        except (PermissionDenied, NotFound) as err:
            if not intent["folder_token"]:
                raise
            # The folder turned unusable after the job was accepted: the analysis is done, so the Base goes
            # to the app's own space (and is handed over like any other) rather than the work being lost.
            log.warning("job %s: no Base in folder %s (%s); created in the app's space", self.job_id, folder_token, err)
            # Recorded before the call, like the first: a retry looks for a lost answer's Base there.
            intent["folder_token"] = ""
            self.checkpoint()
            app = self.client.create_bitable_app(intent["name"], "")
            self.note(
                UserText(
                    zh="无法在指定的文件夹中创建结果表格（机器人没有该文件夹的编辑权限，或文件夹已不存在），"
                    "表格已创建在机器人的空间并转给你。要存到文件夹，请把机器人所在的群加为文件夹协作者（可编辑）。",
                    en="The results Base could not be created in the folder you chose (the bot may not edit it, or it "
                    "no longer exists), so it was created in the bot's space and handed over to you. To save into "
                    "the folder, give a group that contains the bot edit access to it.",
                )
            )
        self.state.update(app_token=app.app_token, url=app.url, default_table_id=app.default_table_id)
        log.info("job %s: results Base %s created", self.job_id, app.app_token)
        self.checkpoint()

    def _bases_named(self, intent: Mapping[str, Any]) -> list[DriveFile]:
        """Bases in the intent's folder with its name, oldest first (newest-first pages are read until
        they reach files made well before the intent)."""
        found: list[DriveFile] = []
        oldest_wanted = int(intent.get("at", 0)) - BASE_SEARCH_SLACK_S
        page_token = ""
        for _ in range(BASE_SEARCH_MAX_PAGES):
            page = self.client.list_folder(intent["folder_token"], page_token=page_token, newest_first=True)
            found += [f for f in page.files if f.type == "bitable" and f.name == intent["name"]]
            older = any(0 < f.created_time < oldest_wanted for f in page.files)
            if older or not page.next_page_token:
                break
            page_token = page.next_page_token
        return sorted(found, key=lambda f: f.created_time)

    def _adopt(self, base: DriveFile, name: str) -> None:
        # The Base was made but its answer lost: its default table is whichever is not ours.
        tables = self.client.list_tables(base.token)
        default = next((t.table_id for t in tables if t.name != TABLE_NAME), "")
        self.state.update(app_token=base.token, url=base.url, default_table_id=default)
        log.info("job %s: results Base %s (%s) found after a lost answer; kept", self.job_id, base.token, name)

    def _delete_orphan(self, base: DriveFile) -> None:
        try:
            self.client.delete_file(base.token, doc_type="bitable")
            log.info("job %s: a second results Base %s made by a retry was deleted", self.job_id, base.token)
        except NotFound:
            pass
        except CredentialsRejected:
            raise
        except FeishuError as err:
            log.warning("job %s: a second results Base %s could not be deleted: %s", self.job_id, base.token, err)

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

    def ensure_table(self, *, insight: bool = False) -> None:
        app_token = self.state["app_token"]
        if not self.state.get("table_id"):
            # A crash between creating the table and saving its id leaves the table in the Base: find it.
            table_id = next((t.table_id for t in self.client.list_tables(app_token) if t.name == TABLE_NAME), None)
            if table_id is None:
                table_id = self.client.create_table(
                    app_token, TABLE_NAME, result_fields(insight=insight), default_view_name=DEFAULT_VIEW_NAME
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

    def write_rows(self, rows: Sequence[ResultRow]) -> int:
        total = len(rows)
        chunks = self._chunks(rows)
        written = int(self.state.get("chunks_written", 0))
        prepared: dict[str, Any] = self.state.setdefault("prepared", {})
        done = chunks[written - 1][1] if written else 0
        self._progress(done, total)
        self._plan_uploads(rows, done, prepared)
        for index in range(written, len(chunks)):
            start, end = chunks[index]
            for position in range(start, end):
                self.check_cancel()
                if str(position) not in prepared:
                    outcome = self._prepare(rows[position], position)
                    prepared[str(position)] = outcome.to_dict()
                    if outcome.files or outcome.notes:
                        self.checkpoint()
            records = [row_record(rows[p], PreparedUploads.from_dict(prepared[str(p)])) for p in range(start, end)]
            self.check_cancel()
            self._create_chunk(index, records, rows_before=start)
            for position in range(start, end):
                prepared.pop(str(position), None)
            self.state["chunks_written"] = index + 1
            self.state["rows_written"] = end
            self.checkpoint()
            # Rows in the table, not rows prepared: a failed write must not read "2 / 2 rows".
            self._progress(end, total)
        return int(self.state.get("rows_written", 0))

    def _create_chunk(self, index: int, records: list[dict[str, Any]], *, rows_before: int) -> None:
        app_token, table_id = self.state["app_token"], self.state["table_id"]
        for attempt in range(1, POSSIBLY_APPLIED_TRIES + 1):
            try:
                self.client.batch_create_records(
                    app_token, table_id, records, client_token=rows_client_token(self.job_id, index)
                )
                return
            except FeishuError as err:
                if err.code == CLIENT_TOKEN_CONFLICT:
                    # Feishu has seen this chunk's token with another body: an attempt before a crash was
                    # applied, and the resumed job analysed the videos again (timings differ). Those rows
                    # are in the table once; sending them again under a new token would duplicate them.
                    log.warning("job %s: rows chunk %d was already written before a restart", self.job_id, index)
                    return
                if err.code != POSSIBLY_APPLIED or attempt == POSSIBLY_APPLIED_TRIES:
                    raise
            # 1254608: look before writing again. The table is this job's own, so its row count says
            # whether the chunk landed.
            self.sink._sleep(POSSIBLY_APPLIED_WAIT_S * attempt)
            present = sum(1 for _ in self.client.iter_records(app_token, table_id))
            if present >= rows_before + len(records):
                log.warning("job %s: rows chunk %d answered 1254608 but was applied", self.job_id, index)
                return
            log.warning("job %s: rows chunk %d answered 1254608 and is not in the table; again", self.job_id, index)

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    def _chunks(self, rows: Sequence[ResultRow]) -> list[tuple[int, int]]:
        """Chunk boundaries, fixed by the first call for this job: a chunk's client_token must keep
        standing for the same rows when the job resumes."""
        saved = self.state.get("chunks")
        if saved and self.state.get("rows_total") == len(rows):
            return [(int(a), int(b)) for a, b in saved]
        if saved:
            log.warning("job %s: %d rows now, %s at the checkpoint; re-chunking", self.job_id, len(rows), saved)
        chunks = plan_chunks([estimated_bytes(row) for row in rows])
        self.state["chunks"] = [list(c) for c in chunks]
        self.state["rows_total"] = len(rows)
        self.checkpoint()
        return chunks

    def _plan_uploads(self, rows: Sequence[ResultRow], done: int, prepared: Mapping[str, Any]) -> None:
        """Reserve today's uploads for the rows still to write, once per job (kept in the checkpoint). When
        fewer are left than wanted, the most useful go first: every contact sheet, then subtitles, then
        full transcripts, then screenshots by rank (each video's first ones before anyone's later ones)."""
        quota = self.sink._quota
        if quota is None or "uploads_left_out" in self.state:
            return
        wanted = [
            (priority, position, key)
            for position in range(done, len(rows))
            if str(position) not in prepared
            for key, priority in upload_keys(rows[position])
        ]
        granted = quota.take(len(wanted))
        left_out: dict[str, list[str]] = {}
        for _, position, key in sorted(wanted)[granted:]:
            left_out.setdefault(str(position), []).append(key)
        self.state["uploads_left_out"] = left_out
        if left_out:
            missing = len(wanted) - granted
            log.warning("job %s: %d of %d uploads left out (daily quota)", self.job_id, missing, len(wanted))
            self.note(
                UserText(
                    zh=f"今天飞书的上传额度（每个应用每天 {quota.daily_limit} 次）不够：{missing} 个附件未上传，"
                    "已优先上传截图总览和字幕。未上传的附件已写在对应行的备注里。",
                    en=f"Feishu's upload allowance for today ({quota.daily_limit} a day per app) ran short: "
                    f"{missing} attachment(s) were not uploaded; contact sheets and subtitles went first. Each "
                    "row's notes say what it is missing.",
                )
            )
        self.checkpoint()

    def _allowed(self, position: int, key: str, label: UserText, outcome: PreparedUploads) -> bool:
        if key not in self.state.get("uploads_left_out", {}).get(str(position), ()):
            return True
        outcome.notes.append(
            UserText(
                zh=f"{label.zh}未上传：今天的飞书上传额度已用完。",
                en=f"The {label.en} was not uploaded: today's Feishu upload allowance ran out.",
            )
        )
        return False

    def _prepare(self, row: ResultRow, position: int) -> PreparedUploads:
        """Upload a video row's files; notes say what could not be attached."""
        outcome = PreparedUploads()
        result = row.video
        if result is None:
            return outcome
        stem = safe_filename(result.title, default=f"video-{result.index + 1}", max_bytes=120)
        for n, shot in enumerate(sorted(result.screenshots, key=lambda s: s.time_s), start=1):
            label = UserText(
                zh=f"截图 {n}（{format_clock(shot.time_s)}）", en=f"screenshot {n} ({format_clock(shot.time_s)})"
            )
            name = f"{n:02d}-{format_clock(shot.time_s).replace(':', '-')}{shot.path.suffix or '.jpg'}"
            if self._allowed(position, f"shot:{n}", label, outcome):
                self._upload(outcome, Col.SCREENSHOTS, shot.path, "bitable_image", name, label)
        outputs = result.outputs
        if outputs is not None and outputs.contact_sheet is not None:
            label = UserText(zh="截图总览", en="contact sheet")
            if self._allowed(position, "sheet", label, outcome):
                sheet = outputs.contact_sheet
                self._upload(outcome, Col.CONTACT_SHEET, sheet, "bitable_image", f"{stem}-总览.jpg", label)
        if outputs is not None and outputs.subtitles_srt is not None:
            label = UserText(zh="字幕文件", en="subtitles file")
            if self._allowed(position, "srt", label, outcome):
                self._upload(outcome, Col.SUBTITLES, outputs.subtitles_srt, "bitable_file", f"{stem}.srt", label)
        if outputs is not None and outputs.notes_md is not None and outputs.notes_md.is_file():
            label = UserText(zh="笔记 notes.md", en="notes.md")
            if self._allowed(position, "notes", label, outcome):
                self._upload(outcome, Col.NOTES_MD, outputs.notes_md, "bitable_file", f"{stem}-notes.md", label)
        transcript = result.transcript
        if transcript is not None and transcript_cells(transcript).cut:
            label = UserText(zh="完整转写文件", en="full transcript file")
            txt = outputs.transcript_txt if outputs is not None else None
            if outputs is not None and not self._allowed(position, "txt", label, outcome):
                pass
            elif txt is not None and txt.is_file():
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
        self, outcome: PreparedUploads, column: str, path: Path, parent_type: str, name: str, label: UserText
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
        try:
            with self.sink._upload_lock:
                self.throttle.wait()
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
