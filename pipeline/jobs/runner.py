"""Runners: what turns a QUEUED job into a finished one, by calling the job function the bot registers.

``run_job`` is the one way a job is run, whichever runner calls it: claim it (so no job ever runs twice
at once), make its workspace, call the job function with a cancel token, remove the workspace, record
the outcome, tell ``on_finished``. The runners only decide where and when that happens:

* ``LocalRunner``: worker threads in this process, at most ``max_concurrent_jobs`` jobs at once.
* ``SyncRunner``: inline, inside ``submit`` (the CLI and tests), like rq's ``is_async=False``.

A third, re-invoking the function asynchronously on FC, can be built on ``run_job`` from the outside.

Restarts: ``LocalRunner.stop`` does not cancel the jobs that are still running when its timeout ends.
They stay RUNNING in the store, and the next ``LocalRunner.start`` (in this or another process) finds
them with ``JobStore.recover_interrupted``: queued again while attempts are left (the job starts over
from scratch), failed with a message for the user after ``max_attempts``. The same path picks up the
jobs of a process that was killed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import JobCancelled, PipelineError
from pipeline.jobs.store import Job, JobStatus, JobStore, job_error
from pipeline.logs import log_context
from pipeline.models import CancelToken, UserText
from pipeline.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_CANCEL_POLL_S = 1.0


def internal_error(exc: BaseException | None = None) -> dict[str, Any]:
    """The error users see when a job broke in a way nobody worded for them. The traceback goes to the
    log only; the detail names just the exception's type."""
    return job_error(
        "internal_error",
        UserText(
            zh="处理时出现内部错误，任务已停止。请稍后重试；如果一再出现，请联系管理员。",
            en="An internal error stopped the job. Try again later; if it keeps happening, contact the administrator.",
        ),
        type(exc).__name__ if exc is not None else "the job function reported no error",
    )


@dataclass
class JobContext:
    """What a job function gets: its job (as claimed), the store, a cancel token to check between and
    inside stages, and its empty workspace (removed by the runner when the function returns)."""

    job: Job
    store: JobStore
    cancel: CancelToken
    workspace: Workspace

    def save_progress(self, progress: dict[str, Any]) -> None:
        self.store.save_progress(self.job.id, progress)


@dataclass(frozen=True)
class JobOutcome:
    status: JobStatus
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @classmethod
    def done(cls, result: dict[str, Any] | None = None) -> JobOutcome:
        return cls(JobStatus.DONE, result or {})

    @classmethod
    def failed(cls, error: dict[str, Any], result: dict[str, Any] | None = None) -> JobOutcome:
        return cls(JobStatus.FAILED, result or {}, error)

    @classmethod
    def cancelled(cls, result: dict[str, Any] | None = None) -> JobOutcome:
        return cls(JobStatus.CANCELLED, result or {})


JobFunction = Callable[[JobContext], JobOutcome]
OnFinished = Callable[[Job], None]


class Runner(Protocol):
    def start(self) -> None: ...

    def submit(self, job_id: str) -> None: ...

    def cancel(self, job_id: str, *, key: str | None = None) -> None:
        """Cancel a job. ``key`` (its idempotency key) lets a runner stop a job it has no record of
        (Function Compute: the job runs in another instance); others ignore it. A cancel that cannot
        be carried out raises a ``PipelineError`` whose ``user_message`` says why."""
        ...

    def stop(self, timeout_s: float = 30.0) -> None: ...

    @property
    def accepting(self) -> bool: ...


def store_cancel_token(store: JobStore, job_id: str, poll_interval_s: float = DEFAULT_CANCEL_POLL_S) -> CancelToken:
    """A token that also sees a cancel requested through the store (another thread or process)."""
    return CancelToken(poll=lambda: store.is_cancel_requested(job_id), poll_interval_s=poll_interval_s)


def run_job(
    store: JobStore,
    job_id: str,
    job_function: JobFunction,
    *,
    work_dir: Path,
    cancel: CancelToken | None = None,
    on_finished: OnFinished | None = None,
) -> Job | None:
    """Claim the job and run it to a terminal status; None when it was not QUEUED (already claimed by
    another runner, cancelled, finished, unknown), in which case nothing is done.

    ``JobCancelled`` becomes CANCELLED; a ``PipelineError`` becomes FAILED with its own words for the
    user; any other exception FAILED with a generic message (the traceback is logged, never shown).
    ``BaseException``s that are not errors (``KeyboardInterrupt``, ``SystemExit``) pass through and leave
    the job RUNNING, for ``recover_interrupted`` at the next start."""
    job = store.claim(job_id)
    if job is None:
        log.debug("job %s is not queued; not running it", job_id)
        return None
    token = cancel if cancel is not None else store_cancel_token(store, job_id)
    workspace = Workspace.for_job(work_dir, job.id)
    with log_context(job_id=job.id):
        log.info("job started (attempt %d)", job.attempts)
        try:
            try:
                workspace.create()
                outcome = job_function(JobContext(job=job, store=store, cancel=token, workspace=workspace))
            finally:
                _remove_workspace(workspace)
        except JobCancelled:
            outcome = JobOutcome.cancelled()
        except PipelineError as exc:
            log.warning("job failed: %s: %s", exc.code, exc.detail)
            outcome = JobOutcome.failed(job_error(exc.code, exc.user_message, exc.detail))
        except Exception as exc:
            log.exception("job failed with an unexpected error")
            outcome = JobOutcome.failed(internal_error(exc))
        outcome = _checked(outcome)
        finished, changed = store.try_finish(job.id, outcome.status, result=outcome.result, error=outcome.error)
        log.info("job finished: %s", finished.status.value)
        # Not changed: something else ended it meanwhile (a recovery elsewhere) and told the user.
        if changed and on_finished is not None:
            _notify(on_finished, finished)
    return finished


def _checked(outcome: Any) -> JobOutcome:
    """Whatever a job function returned, something ``finish`` can record."""
    if not isinstance(outcome, JobOutcome) or not JobStatus(outcome.status).terminal:
        log.error("job function returned %r, not a finished JobOutcome", outcome)
        return JobOutcome.failed(internal_error())
    if outcome.status is JobStatus.FAILED and outcome.error is None:
        return JobOutcome.failed(internal_error(), outcome.result)
    return outcome


def _remove_workspace(workspace: Workspace) -> None:
    try:
        workspace.remove()
    except OSError:
        # The sweeper gets it later; the job's outcome matters more than its scratch files.
        log.exception("could not remove the workspace %s", workspace.root)


def _notify(on_finished: OnFinished, job: Job) -> None:
    try:
        on_finished(job)
    except Exception:
        log.exception("on_finished failed for job %s (%s)", job.id, job.status.value)


class RunnerCore:
    """What the runners share: the store and the job function, where job workspaces go, the
    ``on_finished`` callback, whether jobs are taken, and the jobs held right now with their cancel
    tokens (``active_job_ids``, for the sweeper's ``keep`` and the stop)."""

    def __init__(
        self,
        store: JobStore,
        job_function: JobFunction,
        *,
        work_dir: Path,
        on_finished: OnFinished | None = None,
        cancel_poll_interval_s: float = DEFAULT_CANCEL_POLL_S,
        accepting: bool = False,
    ) -> None:
        self.store = store
        self.job_function = job_function
        self.work_dir = Path(work_dir)
        self.on_finished = on_finished
        self.cancel_poll_interval_s = cancel_poll_interval_s
        self._lock = threading.Lock()
        self._active: dict[str, CancelToken] = {}
        self._accepting = accepting

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def active_job_ids(self) -> frozenset[str]:
        """Jobs this runner holds right now."""
        with self._lock:
            return frozenset(self._active)

    def _hold(self, job_id: str) -> CancelToken:
        """Under ``_lock``: hold the job, registered before its claim so that a cancel() that finds the
        job RUNNING also finds its token."""
        token = store_cancel_token(self.store, job_id, self.cancel_poll_interval_s)
        self._active[job_id] = token
        return token

    def _token_of(self, job_id: str) -> CancelToken | None:
        with self._lock:
            return self._active.get(job_id)

    def _run_held(self, job_id: str, token: CancelToken) -> Job | None:
        return run_job(
            self.store, job_id, self.job_function, work_dir=self.work_dir, cancel=token, on_finished=self.on_finished
        )


class LocalRunner(RunnerCore):
    """Runs jobs on ``max_concurrent_jobs`` worker threads of this process.

    ``submit`` only puts the id on an in-memory queue, so it never blocks the webhook. The queue is a
    convenience: the store is the truth, and ``start`` submits every QUEUED job it holds, so nothing
    submitted before a restart (or while not accepting) is lost."""

    def __init__(
        self,
        store: JobStore,
        job_function: JobFunction,
        *,
        work_dir: Path,
        max_concurrent_jobs: int,
        max_attempts: int,
        on_finished: OnFinished | None = None,
        cancel_poll_interval_s: float = DEFAULT_CANCEL_POLL_S,
    ) -> None:
        if max_concurrent_jobs < 1:
            raise ValueError("max_concurrent_jobs must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        super().__init__(
            store,
            job_function,
            work_dir=work_dir,
            on_finished=on_finished,
            cancel_poll_interval_s=cancel_poll_interval_s,
        )
        self.max_concurrent_jobs = max_concurrent_jobs
        self.max_attempts = max_attempts
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._waiting: set[str] = set()  # submitted, not yet picked up by a worker
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        """Recover what the last process left RUNNING, start the workers, submit every QUEUED job."""
        if self._stopping.is_set():
            raise RuntimeError("a stopped runner cannot be started again; make a new one")
        if self._threads:
            return
        _, ended = self.store.recover_interrupted(self.max_attempts)
        for job in ended:
            _remove_workspace(Workspace.for_job(self.work_dir, job.id))
            if self.on_finished is not None:
                _notify(self.on_finished, job)
        with self._lock:
            self._accepting = True
        for number in range(self.max_concurrent_jobs):
            thread = threading.Thread(target=self._work, name=f"job-worker-{number + 1}", daemon=True)
            self._threads.append(thread)
            thread.start()
        queued = self.store.list([JobStatus.QUEUED], limit=None)
        for job in queued:
            self.submit(job.id)
        log.info(
            "local runner started: %d worker(s), %d queued job(s) submitted", self.max_concurrent_jobs, len(queued)
        )

    def submit(self, job_id: str) -> None:
        with self._lock:
            if not self._accepting:
                log.info("runner not accepting; job %s stays queued for the next start", job_id)
                return
            if job_id in self._waiting or job_id in self._active:
                return
            self._waiting.add(job_id)
        self._queue.put(job_id)

    def cancel(self, job_id: str, *, key: str | None = None) -> None:
        """Cancel through the store (seen by any runner) and, for a job running here, at once."""
        del key  # every job this runner runs is in its store
        _cancel(self.store, job_id, self._token_of(job_id), self.on_finished)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs and wait up to ``timeout_s`` for the running ones. Jobs still running then
        are left RUNNING, not cancelled: the next start queues them again (see the module docstring).
        Jobs not yet picked up stay QUEUED in the store."""
        with self._lock:
            self._accepting = False
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        still_running = self.active_job_ids
        if still_running:
            log.warning(
                "stopped with %d job(s) still running (%s); they are resumed at the next start",
                len(still_running),
                ", ".join(sorted(still_running)),
            )
        self._threads = [t for t in self._threads if t.is_alive()]

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                self._waiting.discard(job_id)
                if self._stopping.is_set():
                    continue  # stays QUEUED in the store
                token = self._hold(job_id)
            try:
                self._run_held(job_id, token)
            except Exception:
                # The store itself failed (disk full, file gone): the job stays RUNNING and is recovered
                # at the next start; this worker carries on with the next one.
                log.exception("could not run job %s", job_id)
            finally:
                with self._lock:
                    self._active.pop(job_id, None)


class SyncRunner(RunnerCore):
    """Runs each job inside ``submit``, in the caller's thread (the CLI, tests).

    ``start`` recovers nothing: a CLI may share the state file with a running server, whose RUNNING jobs
    are not orphans."""

    def __init__(
        self,
        store: JobStore,
        job_function: JobFunction,
        *,
        work_dir: Path,
        on_finished: OnFinished | None = None,
        cancel_poll_interval_s: float = DEFAULT_CANCEL_POLL_S,
    ) -> None:
        super().__init__(
            store,
            job_function,
            work_dir=work_dir,
            on_finished=on_finished,
            cancel_poll_interval_s=cancel_poll_interval_s,
            accepting=True,
        )

    def start(self) -> None:
        self._accepting = True

    def submit(self, job_id: str) -> None:
        self.run(job_id)

    def run(self, job_id: str) -> Job | None:
        """Run the job now; the finished job, or None when it was not QUEUED (or not accepting)."""
        if not self._accepting:
            log.info("runner not accepting; job %s stays queued", job_id)
            return None
        with self._lock:
            token = self._hold(job_id)
        try:
            return self._run_held(job_id, token)
        finally:
            with self._lock:
                self._active.pop(job_id, None)

    def cancel(self, job_id: str, *, key: str | None = None) -> None:
        """From another thread (a Ctrl-C handler): flag it in the store and trip the running job's token."""
        del key
        _cancel(self.store, job_id, self._token_of(job_id), self.on_finished)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Refuse further jobs; a job running inline ends with its ``submit`` call, so nothing to wait for."""
        del timeout_s
        self._accepting = False


def _cancel(store: JobStore, job_id: str, token: CancelToken | None, on_finished: OnFinished | None) -> None:
    before = store.get(job_id)
    after = store.request_cancel(job_id)
    if token is not None:
        token.cancel()
    # A queued job is finished by the cancel itself and no worker will report it, so this does.
    if (
        on_finished is not None
        and before is not None
        and after is not None
        and before.status is JobStatus.QUEUED
        and after.status is JobStatus.CANCELLED
    ):
        _notify(on_finished, after)
