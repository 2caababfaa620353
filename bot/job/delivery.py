"""The production job function: a job's videos analysed, written to a Bitable, and its card kept current.

    job_function = make_job_function(settings, feishu, card_updater)
    runner = LocalRunner(store, job_function, ...)      # or inside an HTTP request (FC); either works

One job, step by step (each step saves the progress record and pushes the card):

1. the card shows the saved progress record first: a job resumed after a restart shows where it was,
   with a "resumed" note (``progress_card`` reads ``job.attempts``);
2. Bitable links are expanded into their videos (``bot.job.feishu_sources.expand_bitable``); rows without a video
   are listed on the card and written to the results as "skipped" rows;
3. ``Analyzer.analyze_batch`` with everything under the job's workspace (``out``, ``scratch``): its
   events fold into a ``BatchProgress`` that is saved (``context.save_progress``) and rendered;
4. DELIVERING: ``BitableSink.write`` with the checkpoint of an earlier attempt (``job.result["sink"]``),
   saving each new checkpoint with ``JobStore.save_result``, so a resumed job makes no second Base and
   no duplicate rows;
5. DONE (counts, time, a button that opens the table), FAILED (what went wrong, what to do) or
   CANCELLED; the final card is flushed before the function returns, so it is on screen even where
   the process is frozen right after (Function Compute).

All videos failing is still a delivered job: the table lists each reason. When the Bitable cannot be
written at all, the job fails and its card says so, how many videos were analysed, and offers "Retry";
results.xlsx is NOT kept: the workspace is removed with the job (Function Compute instances are
short-lived and the server's disk is out of the user's reach anyway), so a partial table (when one
exists) and the retry button are the honest way back. Nothing is written outside the workspace.

The media pipeline (cv2, the ASR engines) and the sink are imported at the first job, not at import:
building the bot stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot import cards
from bot.feishu import (
    CredentialsRejected,
    FeishuError,
    PermissionDenied,
    RateLimited,
    ScopeMissing,
    TransientError,
)
from bot.inbound.commands import FEISHU_BITABLE
from bot.job.card_updater import CardSink
from bot.job.record import DeliveryNotes, JobResult, progress_record
from bot.scopes import missing_scope_text
from pipeline.errors import JobCancelled, PipelineError
from pipeline.jobs import Job, JobStatus, job_error
from pipeline.jobs.progress import BatchProgress
from pipeline.jobs.runner import JobContext, JobFunction, JobOutcome, internal_error
from pipeline.logs import log_context
from pipeline.models import BatchResult, ProgressEvent, Stage, UserText, VideoResult, VideoSource, VideoStatus

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.feishu import FeishuClient
    from bot.job.bitable_reader import BitableExpansion
    from bot.job.record import SkippedRow
    from bot.job.results_sink import BitableSink, ResultsTable
    from pipeline.analyze import Analyzer

log = logging.getLogger(__name__)

# A running job saves a video's steps at most this often (batch stages at once).
SAVE_INTERVAL_S = 1.0
# How long the end of a job waits for its final card to reach Feishu.
FLUSH_TIMEOUT_S = 30.0
# Videos one job takes from Bitable rows (a message takes MAX_LINKS_PER_MESSAGE links).
MAX_BITABLE_ROWS = 500
# Waits before writing the results table again when Feishu stays busy beyond the client's own retries.
DELIVERY_RETRY_DELAYS_S = (1.0, 3.0)


Expander = Callable[[VideoSource, int], "BitableExpansion"]


def make_job_function(
    settings: Settings,
    feishu: FeishuClient,
    card_updater: CardSink,
    *,
    analyzer: Analyzer | None = None,
    sink: BitableSink | None = None,
    expand: Expander | None = None,
    clock: Callable[[], float] = time.time,
    max_bitable_rows: int = MAX_BITABLE_ROWS,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
    delivery_retry_delays_s: Sequence[float] = DELIVERY_RETRY_DELAYS_S,
) -> JobFunction:
    """The job function the runner calls. Collaborators default to the real ones, built at first use."""
    delivery = Delivery(
        settings,
        feishu,
        card_updater,
        analyzer=analyzer,
        sink=sink,
        expand=expand,
        clock=clock,
        max_bitable_rows=max_bitable_rows,
        flush_timeout_s=flush_timeout_s,
        delivery_retry_delays_s=delivery_retry_delays_s,
    )
    return delivery.run


class Delivery:
    def __init__(
        self,
        settings: Settings,
        feishu: FeishuClient,
        card_updater: CardSink,
        *,
        analyzer: Analyzer | None,
        sink: BitableSink | None,
        expand: Expander | None,
        clock: Callable[[], float],
        max_bitable_rows: int,
        flush_timeout_s: float,
        delivery_retry_delays_s: Sequence[float] = DELIVERY_RETRY_DELAYS_S,
    ) -> None:
        self.settings = settings
        self.feishu = feishu
        self.cards = card_updater
        self.clock = clock
        self.max_bitable_rows = max_bitable_rows
        self.flush_timeout_s = flush_timeout_s
        self.delivery_retry_delays_s = tuple(delivery_retry_delays_s)
        self._analyzer = analyzer
        self._sink = sink
        self._expand = expand
        self._lock = threading.Lock()

    # Built at the first job: importing the pipeline brings OpenCV and the ASR engine's libraries.
    def analyzer(self) -> Analyzer:
        with self._lock:
            if self._analyzer is None:
                from bot.job.feishu_sources import feishu_registry
                from pipeline.analyze import Analyzer

                self._analyzer = Analyzer(self.settings, feishu_registry(self.settings, self.feishu))
            return self._analyzer

    def sink(self) -> BitableSink:
        with self._lock:
            if self._sink is None:
                from bot.app import state_path
                from bot.job.results_sink import BitableSink
                from bot.job.upload_quota import UploadQuota

                quota = UploadQuota(state_path(self.settings), daily_limit=self.settings.feishu_upload_daily_limit)
                self._sink = BitableSink(
                    self.feishu, default_folder_token=self.settings.feishu_folder_token, quota=quota
                )
            return self._sink

    def expand(self, source: VideoSource, max_rows: int) -> BitableExpansion:
        if self._expand is not None:
            return self._expand(source, max_rows)
        from bot.job.bitable_reader import expand_bitable

        return expand_bitable(self.feishu, source, max_rows=max_rows)

    def run(self, context: JobContext) -> JobOutcome:
        with log_context(job_id=context.job.id):
            return _JobRun(self, context).run()


class _JobRun:
    """One attempt at one job: its progress record, its card, its outcome."""

    def __init__(self, delivery: Delivery, context: JobContext) -> None:
        self.d = delivery
        self.context = context
        self.job = context.job
        saved = context.job.progress
        self.resumed_from = BatchProgress.from_dict(saved) if saved.get("videos") is not None else None
        self.notes = DeliveryNotes()
        self.batch = BatchProgress.new([cards.video_label(s)[1] for s in self.job.spec.sources], at=delivery.clock())
        self.sources: list[VideoSource] = list(self.job.spec.sources)
        self.skipped: list[SkippedRow] = []
        self._lock = threading.Lock()  # progress comes from the analysis' threads and the sink
        self._save_lock = threading.Lock()  # taken before ``_lock``, never after
        self._last_save = 0.0
        self._unsaved = False
        self._save_timer: threading.Timer | None = None

    # --- the steps ---------------------------------------------------------------------------------

    def run(self) -> JobOutcome:
        if self.resumed_from is not None and self.job.attempts > 1:
            log.info("resuming after a restart (attempt %d)", self.job.attempts)
            self._push(self.job)  # where it was, with the "resumed" note
            # The updater keeps only the latest card per job: without waiting here, the card ``_start``
            # pushes a moment later replaces this one before a worker sends it (often, on a busy
            # machine), and the user never sees where the job was.
            if not self.d.cards.flush(self.job.id, self.d.flush_timeout_s):
                log.warning("the resumed card was not delivered within %.0f s", self.d.flush_timeout_s)
        try:
            outcome = self._work()
        except JobCancelled:
            outcome = self._cancelled()
        except PipelineError as exc:
            log.warning("job failed: %s: %s", exc.code, exc.detail)
            outcome = self._failed(job_error(exc.code, exc.user_message, exc.detail))
        except FeishuError as exc:
            log.warning("job failed on Feishu: %s", exc)
            outcome = self._failed(feishu_job_error(exc))
        except Exception as exc:
            log.exception("job failed with an unexpected error")
            outcome = self._failed(internal_error(exc))
        self._finish(outcome)
        return outcome

    def _work(self) -> JobOutcome:
        self._start()
        self._expand_sources()
        batch_result = self._analyse()
        if self.context.cancel.cancelled:
            raise JobCancelled()
        return self._deliver(batch_result)

    def _start(self) -> None:
        started = (self.resumed_from.started_at if self.resumed_from else None) or self.d.clock()
        self.batch.apply(ProgressEvent(Stage.STARTED, video_count=len(self.sources), at=started))
        self._publish(important=True)

    def _expand_sources(self) -> None:
        if not any(s.kind == FEISHU_BITABLE for s in self.job.spec.sources):
            return
        sources: list[VideoSource] = []
        problems: list[PipelineError] = []
        for source in self.job.spec.sources:
            if source.kind != FEISHU_BITABLE:
                sources.append(source)
                continue
            self.context.cancel.raise_if_cancelled()
            room = self.d.max_bitable_rows - sum(1 for s in sources)
            if room < 1:
                self.notes.notes.append(
                    UserText(
                        zh=f"已达到单个任务 {self.d.max_bitable_rows} 个视频的上限，这个多维表格没有读取。",
                        en=f"The limit of {self.d.max_bitable_rows} videos per task was reached: "
                        "this Base was not read.",
                    )
                )
                continue
            try:
                expansion = self.d.expand(source, room)
            except PipelineError as exc:
                log.info("Bitable source not usable: %s", exc.detail)
                problems.append(exc)
                continue
            sources.extend(expansion.sources)
            extra = list(expansion.skipped) + list(expansion.over_cap)
            self.skipped.extend(extra)
            self.notes.add_skipped(extra)
            self.notes.notes.extend(expansion.notes)
            log.info(
                "Bitable %s expanded: %d video(s), %d row(s) skipped",
                expansion.table_id,
                len(expansion.sources),
                len(extra),
            )
        if not sources and not self.skipped and problems:
            raise problems[0]  # nothing to do at all: the first problem is the job's
        for problem in problems:
            self.notes.notes.append(problem.user_message)
        self.sources = sources
        self.batch = BatchProgress(
            stage=self.batch.stage,
            videos=BatchProgress.new([s.display_name for s in sources]).videos,
            started_at=self.batch.started_at,
            updated_at=self.d.clock(),
        )
        self._publish(important=True)

    def _analyse(self) -> BatchResult:
        workspace = self.context.workspace
        return self.d.analyzer().analyze_batch(
            self.sources,
            self.job.spec.options,
            out_dir=workspace.directory("out"),
            scratch_dir=workspace.directory("scratch"),
            on_progress=self._on_progress,
            cancel=self.context.cancel,
        )

    def _on_progress(self, event: ProgressEvent) -> None:
        with self._lock:
            if not self.batch.apply(event):
                return
        # Batch stages are saved at once; a video's steps at most every SAVE_INTERVAL_S (a 500-video job
        # reports thousands of them, and the card shows them anyway).
        self._publish(important=event.video_index is None)

    def _deliver(self, batch_result: BatchResult) -> JobOutcome:
        videos = batch_result.videos
        with self._lock:
            self.batch.apply(ProgressEvent(Stage.DELIVERING, video_count=len(videos), at=self.d.clock()))
            self.notes.rows_written = 0
            self.notes.rows_total = len(videos) + len(self.skipped)
        self._publish(important=True)
        try:
            table = self._write(videos)
        except (JobCancelled, CredentialsRejected):
            raise
        except (FeishuError, PipelineError, OSError) as exc:
            return self._delivery_failed(exc, videos)
        with self._lock:
            self.notes.rows_written = table.rows_written
            self.notes.table_url = table.url
            self.notes.notes.extend(table.notes)
            self.batch.apply(ProgressEvent(Stage.DONE, video_count=len(videos), at=self.d.clock()))
        log.info("results written: %d row(s) in %s", table.rows_written, table.app_token)
        return JobOutcome.done(
            JobResult(
                table_url=table.url,
                app_token=table.app_token,
                table_id=table.table_id,
                rows_written=table.rows_written,
                counts=self._counts(videos),
                failed_sources=tuple(v.source for v in videos if v.status is VideoStatus.FAILED),
                elapsed_s=self._elapsed(),
            ).to_dict()
        )

    def _write(self, videos: Sequence[VideoResult]) -> ResultsTable:
        """``BitableSink.write``, tried again when Feishu stays busy past the client's own retries: each
        try carries on from the last checkpoint, so rows already written are not written again."""
        checkpoint = JobResult.of(self.job).sink
        for attempt, delay in enumerate((*self.d.delivery_retry_delays_s, None), start=1):
            try:
                return self.d.sink().write(
                    job_id=self.job.id,
                    title=self._title(),
                    owner_open_id=self.job.spec.creator_id,
                    videos=videos,
                    skipped=self.skipped,
                    folder_token=self.job.spec.options.target_folder,
                    checkpoint=checkpoint,
                    save_checkpoint=self._save_checkpoint,
                    on_progress=self._on_rows,
                    cancel=self.context.cancel,
                )
            except (RateLimited, TransientError) as exc:
                if delay is None:
                    raise
                log.warning("writing the results failed (try %d): %s; again in %.0f s", attempt, exc, delay)
                if self.context.cancel.wait(delay):
                    raise JobCancelled() from None
                checkpoint = self._latest_checkpoint() or None
        raise AssertionError("unreachable")  # pragma: no cover - the last try returns or raises

    def _delivery_failed(self, exc: Exception, videos: Sequence[VideoResult]) -> JobOutcome:
        log.warning("the results could not be written: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, FeishuError):
            error = delivery_error(exc)
        elif isinstance(exc, PipelineError):
            error = job_error(exc.code, exc.user_message, exc.detail)
        else:
            error = internal_error(exc)
        checkpoint = self._latest_checkpoint()
        with self._lock:
            self.notes.error = UserText.from_dict(error["message"])
            self.notes.table_url = str(checkpoint.get("url") or "") if checkpoint.get("rows_written") else ""
        result = JobResult(
            counts=self._counts(videos),
            # The analysis is lost with the workspace: retrying means all of it.
            failed_sources=tuple(v.source for v in videos if v.status is not VideoStatus.CANCELLED),
            elapsed_s=self._elapsed(),
            table_url_partial=self.notes.table_url,
        )
        return JobOutcome.failed(error, result.to_dict())

    # --- endings -----------------------------------------------------------------------------------

    def _cancelled(self) -> JobOutcome:
        log.info("job cancelled")
        checkpoint = self._latest_checkpoint()
        with self._lock:
            if checkpoint.get("rows_written"):
                self.notes.table_url = str(checkpoint.get("url") or "")
        return JobOutcome.cancelled(JobResult(counts=self._counts_from_batch()).to_dict())

    def _failed(self, error: dict[str, Any]) -> JobOutcome:
        with self._lock:
            self.notes.error = UserText.from_dict(error.get("message") or {})
        return JobOutcome.failed(error, JobResult(counts=self._counts_from_batch()).to_dict())

    def _finish(self, outcome: JobOutcome) -> None:
        """Record the end in the progress record and put the final card on screen before returning."""
        stage = {JobStatus.DONE: Stage.DONE, JobStatus.FAILED: Stage.FAILED}.get(outcome.status, Stage.CANCELLED)
        with self._lock:
            self.batch.apply(ProgressEvent(stage, video_count=self.batch.total, at=self.d.clock()))
        record = self._record()
        with self._save_lock:
            if self._save_timer is not None:
                self._save_timer.cancel()
                self._save_timer = None
            self._save(record)
        final = dataclasses.replace(
            self.job,
            progress=record,
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            finished_at=self.d.clock(),
        )
        stored = self._stored_job()
        if stored is not None and stored.status.terminal:
            # Ended from outside while this function ran (interrupted by the platform's pre-stop, or
            # cancelled): the first end recorded is the job's end, so the card shows that one.
            final = dataclasses.replace(stored, progress=record)
        self._push(final, final=True)
        if not self.d.cards.flush(self.job.id, self.d.flush_timeout_s):
            log.warning("the final card was not delivered within %.0f s", self.d.flush_timeout_s)

    def _stored_job(self) -> Job | None:
        try:
            return self.context.store.get(self.job.id)
        except sqlite3.Error:  # the store is closed (a shutdown): the outcome is all there is
            return None

    # --- saving and showing ------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        with self._lock:
            return progress_record(self.batch, self.notes)

    def _publish(self, *, important: bool) -> None:
        """Save the record (at once when ``important``, else at most SAVE_INTERVAL_S later) and push the
        card rendered from it (the updater coalesces and paces the PATCHes)."""
        record = self._record()
        with self._save_lock:
            wait = self._last_save + SAVE_INTERVAL_S - time.monotonic()
            if important or wait <= 0:
                self._save(record)
            else:
                self._unsaved = True
                if self._save_timer is None:
                    self._save_timer = threading.Timer(wait, self._save_unsaved)
                    self._save_timer.daemon = True
                    self._save_timer.start()
        self._push(dataclasses.replace(self.job, progress=record))

    def _save_unsaved(self) -> None:
        with self._save_lock:
            self._save_timer = None
            if self._unsaved:
                self._save(self._record())

    def _save(self, record: dict[str, Any]) -> None:
        """Under ``_save_lock``."""
        self._unsaved = False
        self._last_save = time.monotonic()
        try:
            self.context.save_progress(record)
        except Exception as exc:
            # The store is gone (a shutdown): the card still moves; the next start resumes the job.
            log.warning("progress not saved: %s", exc)

    def _push(self, job: Job, *, final: bool = False) -> None:
        clock = self.d.clock
        # Rendered by the updater's worker when it is about to send: many pushes, few renders.
        render = lambda: cards.progress_card(job, now=clock())  # noqa: E731
        if final:
            self.d.cards.show_final(job, render)
        else:
            self.d.cards.push(job.id, render)

    def _on_rows(self, done: int, total: int) -> None:
        with self._lock:
            if self.notes.rows_written == done and self.notes.rows_total == total:
                return
            self.notes.rows_written, self.notes.rows_total = done, total
        self._publish(important=done in (0, total))

    def _save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.context.store.save_result(self.job.id, JobResult(sink=checkpoint).to_dict())

    def _latest_checkpoint(self) -> dict[str, Any]:
        try:
            job = self.context.store.get(self.job.id)
        except Exception:
            return {}
        return dict(JobResult.of(job if job is not None else self.job).sink or {})

    # --- small things ------------------------------------------------------------------------------

    def _title(self) -> str:
        name = self.job.spec.options.task_name
        if name:
            return name
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.job.created_at))
        return f"视频分析 Video analysis {when}"

    def _elapsed(self) -> float | None:
        started = self.batch.started_at
        return round(self.d.clock() - started, 3) if started is not None else None

    def _counts(self, videos: Sequence[VideoResult]) -> dict[str, int]:
        return {
            "total": len(videos),
            "ok": sum(1 for v in videos if v.status is VideoStatus.OK),
            "failed": sum(1 for v in videos if v.status is VideoStatus.FAILED),
            "cancelled": sum(1 for v in videos if v.status is VideoStatus.CANCELLED),
            "skipped": len(self.skipped),
        }

    def _counts_from_batch(self) -> dict[str, int]:
        with self._lock:
            batch = self.batch
            return {
                "total": batch.total,
                "ok": batch.ok,
                "failed": batch.failed,
                "cancelled": batch.cancelled,
                "skipped": len(self.skipped),
            }


# ------------------------------------------------------------------------------------------------
# Feishu failures, worded for the user
# ------------------------------------------------------------------------------------------------


def feishu_job_error(exc: FeishuError) -> dict[str, Any]:
    """A Feishu failure outside the results table (reading sources, say)."""
    if isinstance(exc, ScopeMissing):
        message = missing_scope_text(exc)
    elif isinstance(exc, RateLimited | TransientError):
        message = UserText(
            zh="飞书暂时不可用或繁忙，任务没有完成。请稍后重新发送。",
            en="Feishu was unavailable or busy, so the job did not finish. Send it again later.",
        )
    elif isinstance(exc, CredentialsRejected):
        message = UserText(
            zh="机器人的飞书应用凭证无效，请联系管理员检查配置。",
            en="The bot's Feishu app credentials were refused; ask the administrator to check the configuration.",
        )
    else:
        message = UserText(
            zh=f"飞书拒绝了请求（错误码 {exc.code}）。请稍后重试；如果一再出现，请联系管理员。",
            en=f"Feishu refused a request (code {exc.code}). Try again later; if it keeps happening, contact the "
            "administrator.",
        )
    return job_error("feishu_error", message, f"{type(exc).__name__}: {exc}")


def delivery_error(exc: FeishuError) -> dict[str, Any]:
    """The results table could not be written: why, and what to do."""
    if isinstance(exc, ScopeMissing):
        text = missing_scope_text(exc)
        message = UserText(
            zh="视频已分析完，但结果没能写入多维表格。" + text.zh,
            en="The videos were analysed, but the results could not be written to a Base. " + text.en,
        )
    elif isinstance(exc, PermissionDenied):
        message = UserText(
            zh="视频已分析完，但机器人没有权限创建或共享结果多维表格。请管理员确认应用已开通云文档权限"
            "（drive:drive、bitable:app），然后点「重试」。",
            en="The videos were analysed, but the bot may not create or share the results Base. Ask the "
            "administrator to check that the app has the Drive scopes (drive:drive, bitable:app), then click "
            "“Retry”.",
        )
    elif isinstance(exc, RateLimited | TransientError):
        message = UserText(
            zh="视频已分析完，但飞书一直繁忙或不可用，结果没能写入多维表格。请稍后点「重试」。",
            en="The videos were analysed, but Feishu stayed busy or unavailable and the results could not be "
            "written to a Base. Click “Retry” later.",
        )
    else:
        message = UserText(
            zh=f"视频已分析完，但写入多维表格失败（错误码 {exc.code}）。请稍后点「重试」；如果一再出现，请联系管理员。",
            en=f"The videos were analysed, but writing the Base failed (code {exc.code}). Click “Retry” later; if it "
            "keeps happening, contact the administrator.",
        )
    return job_error("delivery_failed", message, f"{type(exc).__name__}: {exc}")
