"""The Function Compute runner: every job runs in an asynchronous invocation of the same function.

FC freezes an instance as soon as it has sent its HTTP response, so a job cannot run in a background
thread of the webhook's instance. Instead::

    webhook instance                         FC async front                 some instance
    submit(job_id) ── POST <url>/jobs/run ──> 202, queued ── POST /jobs/run ──> execute(envelope)
      X-Fc-Invocation-Type: Async                                               adopt + run_job to the end
      X-Fc-Async-Task-Id: <from the message id>                                 answer 200 when done
      X-Job-Timestamp / X-Job-Signature (JOB_SECRET)

* ``submit`` sends the job itself in the body (``bot.fc.envelope``): instances share no disk. The
  task id comes from the job's idempotency key (the Feishu message id), so FC refuses (409) a second
  submission of the same message, even one made by another instance after a redelivery. Connection
  errors, 408/429 and 5xx are retried a few times within ``submit_budget_s`` (the webhook waits for
  this: Feishu wants its answer in 3 s); when FC does not take the job it is FAILED and ``on_finished``
  tells the user, the same path the local runner uses. Never lost, never silent.
* ``execute`` runs an invocation's job here, inside the request, and returns when it is finished.
* ``cancel``: a job running in this process is cancelled through its token. Otherwise the job runs (or
  waits) in FC, maybe on another instance: FC is asked to stop the task (``bot.fc.api``), and this
  instance records CANCELLED and tells the user, because the stopped invocation cannot.
* ``stop`` / pre-stop: no more jobs here; jobs still running when the time is up are FAILED with an
  "interrupted by the platform" message (another instance cannot resume them: it has none of their
  state) and their tokens tripped, so they stop at their next check.

``start`` recovers nothing: on FC a store may be shared (NAS) with live instances whose RUNNING jobs
are not orphans, and an instance's own RUNNING jobs die with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bot.fc.api import AsyncTaskStopper, TaskStopError
from bot.fc.envelope import EnvelopeTooLarge, JobEnvelope, signed_headers, task_id_for
from pipeline.errors import PipelineError
from pipeline.jobs import Job, JobStatus, JobStore, job_error
from pipeline.jobs.runner import DEFAULT_CANCEL_POLL_S, JobFunction, OnFinished, RunnerCore
from pipeline.logs import log_context
from pipeline.models import UserText

log = logging.getLogger(__name__)

JOBS_PATH = "/jobs/run"
INVOCATION_TYPE_HEADER = "X-Fc-Invocation-Type"
TASK_ID_HEADER = "X-Fc-Async-Task-Id"

SUBMIT_ATTEMPTS = 3
SUBMIT_BUDGET_S = 2.0
SUBMIT_BACKOFF_S = 0.2
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.0
_RETRYABLE_STATUS = frozenset({408, 429})


def submit_failed_error(detail: str) -> dict[str, Any]:
    return job_error(
        "submit_failed",
        UserText(
            zh="任务没能启动：函数计算暂时没有接收这个任务。请过一会儿重新发送视频。",
            en="The job could not be started: Function Compute did not take it. Send the videos again in a while.",
        ),
        detail,
    )


def too_large_error(size_bytes: int) -> dict[str, Any]:
    return job_error(
        "request_too_large",
        UserText(
            zh="这个请求太大，无法作为一个任务启动。请分成几条消息发送，每条少放一些链接。",
            en="This request is too large to start as one job. Send the links in several smaller messages.",
        ),
        f"job envelope of {size_bytes} bytes is over FC's async body limit",
    )


def platform_interrupted_error() -> dict[str, Any]:
    return job_error(
        "interrupted_by_platform",
        UserText(
            zh="函数计算回收了运行这个任务的实例，任务被中断。请点「重试」或重新发送视频。",
            en="Function Compute recycled the instance running this job, so it was interrupted. "
            "Retry, or send the videos again.",
        ),
        "the instance was stopped (pre-stop or shutdown) while the job ran",
    )


def _settled(on_finished: OnFinished | None, settle: Callable[[str], object] | None) -> OnFinished | None:
    if on_finished is None or settle is None:
        return on_finished
    notify, wait = on_finished, settle

    def on_finished_and_settled(job: Job) -> None:
        try:
            notify(job)
        finally:
            wait(job.id)

    return on_finished_and_settled


class RunnerPaused(RuntimeError):
    """``execute`` was called after ``pause``/``stop``: the instance is going away."""


class CancelFailed(PipelineError):
    """A cancel that could not be carried out; ``user_message`` is the toast to show."""

    code = "cancel_failed"


CANCEL_ELSEWHERE = UserText(
    zh="这个任务由另一个实例处理，这里查不到它，暂时无法从这里取消。请稍后再点一次。",
    en="Another instance handles this job and it is not known here, so it cannot be cancelled from here. "
    "Try again in a moment.",
)
CANCEL_NOT_STOPPED = UserText(
    zh="没能停止这个任务（它可能已经结束了）。请稍后再试。",
    en="The job could not be stopped (it may have finished already). Try again in a moment.",
)
CANCEL_NOT_SET_UP = UserText(
    zh="这个部署没有配置取消运行中任务所需的权限，任务会继续运行。请联系管理员。",
    en="This deployment is not set up to stop running jobs, so the job goes on. Contact the administrator.",
)


class FcAsyncRunner(RunnerCore):
    def __init__(
        self,
        store: JobStore,
        job_function: JobFunction,
        *,
        work_dir: Path,
        invoke_url: str,
        secret: str,
        http: requests.Session | None = None,
        stopper: AsyncTaskStopper | None = None,
        on_finished: OnFinished | None = None,
        settle: Callable[[str], object] | None = None,
        submit_attempts: int = SUBMIT_ATTEMPTS,
        submit_budget_s: float = SUBMIT_BUDGET_S,
        backoff_s: float = SUBMIT_BACKOFF_S,
        cancel_poll_interval_s: float = DEFAULT_CANCEL_POLL_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not invoke_url or not secret:
            raise ValueError("invoke_url and secret are required")
        if submit_attempts < 1:
            raise ValueError("submit_attempts must be at least 1")
        # FC freezes the instance once the response is sent, so what ``on_finished`` started (a card
        # update on another thread) must have gone out before: ``settle(job_id)`` waits for it.
        super().__init__(
            store,
            job_function,
            work_dir=work_dir,
            on_finished=_settled(on_finished, settle),
            cancel_poll_interval_s=cancel_poll_interval_s,
        )
        self.jobs_url = invoke_url.rstrip("/") + JOBS_PATH
        self._secret = secret
        self._http = http if http is not None else requests.Session()
        self._stopper = stopper
        self._submit_attempts = submit_attempts
        self._submit_budget_s = submit_budget_s
        self._backoff_s = backoff_s
        self._clock = clock
        self._sleep = sleep
        self._idle = threading.Condition(self._lock)

    def start(self) -> None:
        with self._lock:
            self._accepting = True
        log.info("FC async runner started: jobs are invoked at %s", self.jobs_url)

    # --- the webhook's side ------------------------------------------------------------------------

    def submit(self, job_id: str) -> None:
        """Hand a QUEUED job to FC as an asynchronous invocation; FAIL it (and tell ``on_finished``) when
        FC does not take it. Returns once FC has answered: the job runs elsewhere."""
        if not self._accepting:
            log.info("runner not accepting; job %s not submitted", job_id)
            return
        job = self.store.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            log.debug("job %s is not queued; not submitted", job_id)
            return
        with log_context(job_id=job.id):
            envelope = JobEnvelope(
                job_id=job.id,
                spec=job.spec,
                idempotency_key=job.idempotency_key,
                attempt=job.attempts + 1,
                card_message_id=job.card_message_id,
                parent_job_id=job.parent_job_id,
            )
            try:
                body = envelope.fitted_json()
            except EnvelopeTooLarge as exc:
                log.warning("job not submitted: %s", exc)
                self._fail(job.id, too_large_error(exc.size_bytes))
                return
            task_id = task_id_for(job.idempotency_key, job.id)
            problem = self._invoke(body, task_id)
            if problem is None:
                log.info("job handed to FC as async task %s (%d bytes)", task_id, len(body))
                return
            log.error("FC did not take the job (task %s): %s", task_id, problem)
            self._fail(job.id, submit_failed_error(problem))

    def _invoke(self, body: bytes, task_id: str) -> str | None:
        """POST the invocation; None when FC took it (or already had it), else what went wrong."""
        deadline = time.monotonic() + self._submit_budget_s
        problem = ""
        for attempt in range(1, self._submit_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                INVOCATION_TYPE_HEADER: "Async",
                TASK_ID_HEADER: task_id,
                # Signed per attempt: a retry made after a pause still carries a fresh timestamp.
                **signed_headers(self._secret, body, self._clock()),
            }
            read_timeout = max(0.1, min(READ_TIMEOUT_S, deadline - time.monotonic()))
            try:
                response = self._http.post(
                    self.jobs_url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT_S, read_timeout)
                )
            except requests.RequestException as exc:
                problem = f"no answer from {self.jobs_url}: {type(exc).__name__}"
                retryable = True
            else:
                status = response.status_code
                if status in (200, 202):
                    return None
                if status == 409:
                    # Task mode: FC already has this task id (a redelivered message, or a retry whose
                    # first try was taken after all). The job runs once; nothing more to do.
                    log.info("FC already has async task %s; not submitted again", task_id)
                    return None
                problem = f"HTTP {status} from {self.jobs_url}: {response.text[:200]!r}"
                retryable = status in _RETRYABLE_STATUS or status >= 500
            if not retryable or attempt == self._submit_attempts:
                break
            delay = self._backoff_s * 2 ** (attempt - 1)
            if time.monotonic() + delay >= deadline:
                break
            log.warning("FC invocation attempt %d failed (%s); retrying in %.1f s", attempt, problem, delay)
            self._sleep(delay)
        return problem

    def _fail(self, job_id: str, error: dict[str, Any]) -> None:
        finished, changed = self.store.try_finish(job_id, JobStatus.FAILED, error=error)
        if changed:
            self._notify(finished)

    def _notify(self, job: Job) -> None:
        if self.on_finished is None:
            return
        try:
            self.on_finished(job)
        except Exception:
            log.exception("on_finished failed for job %s (%s)", job.id, job.status.value)

    # --- the invocation's side -----------------------------------------------------------------------

    def execute(self, envelope: JobEnvelope) -> Job:
        """Run the envelope's job here, to the end. A job this store already has and that is not QUEUED
        (done, cancelled, running) is returned as it is, without running it again."""
        job, adopted = self.store.adopt(
            envelope.job_id,
            envelope.spec,
            idempotency_key=envelope.idempotency_key,
            card_message_id=envelope.card_message_id,
            parent_job_id=envelope.parent_job_id,
        )
        if job.status is not JobStatus.QUEUED:
            log.info("job %s is %s here; the invocation does not run it again", job.id, job.status.value)
            return job
        with self._lock:
            if not self._accepting:
                raise RunnerPaused(f"the runner is stopping; job {job.id} stays queued")
            token = self._hold(job.id)
        try:
            with log_context(job_id=job.id):
                log.info("invocation runs the job (%s)", "adopted" if adopted else "created on this instance")
            finished = self._run_held(job.id, token)
        finally:
            with self._idle:
                self._active.pop(job.id, None)
                self._idle.notify_all()
        current = finished or self.store.get(job.id)
        if current is None:  # pragma: no cover - the row was just written
            raise RuntimeError(f"job {job.id} vanished from the store")
        return current

    # --- cancel and stop ---------------------------------------------------------------------------

    def cancel(self, job_id: str, *, key: str | None = None) -> None:
        """Cancel a job wherever it runs; ``CancelFailed`` (with a toast for the user) when it cannot.
        A job this instance has no record of is stopped by its task id, derived from ``key`` (its
        idempotency key, carried by the card's button); the caller then updates the card."""
        token = self._token_of(job_id)
        if token is not None:
            # Running here: the job stops at its next check and run_job records CANCELLED.
            self.store.request_cancel(job_id)
            token.cancel()
            return
        job = self.store.get(job_id)
        if job is None:
            if not key:
                raise CancelFailed(f"job {job_id} is not in this instance's store", CANCEL_ELSEWHERE)
            self._stop_task(task_id_for(key, job_id), job_id)
            return
        if job.status.terminal:
            return
        self._stop_task(task_id_for(job.idempotency_key, job.id), job_id)
        # FC stopped the invocation, which therefore cannot report its own end: this instance does.
        after = self.store.request_cancel(job_id)
        if after is not None and after.status is JobStatus.CANCELLED and job.status is JobStatus.QUEUED:
            self._notify(after)
            return
        finished, changed = self.store.try_finish(job_id, JobStatus.CANCELLED)
        if changed:
            self._notify(finished)

    def _stop_task(self, task_id: str, job_id: str) -> None:
        if self._stopper is None:
            raise CancelFailed("no FC task stopper configured", CANCEL_NOT_SET_UP)
        try:
            self._stopper.stop(task_id)
        except TaskStopError as exc:
            log.warning("could not stop FC task %s of job %s: %s", task_id, job_id, exc.reason)
            message = CANCEL_NOT_STOPPED if exc.status is not None else CANCEL_NOT_SET_UP
            raise CancelFailed(exc.reason, message) from None

    def interrupt_running(self) -> list[Job]:
        """FAIL the jobs running here with the "interrupted by the platform" message, tell their users,
        and trip their tokens so they stop at their next check (their own end is then not reported:
        the first terminal status wins)."""
        with self._lock:
            active = dict(self._active)
        ended: list[Job] = []
        for job_id, token in active.items():
            job, changed = self.store.try_finish(job_id, JobStatus.FAILED, error=platform_interrupted_error())
            if changed:
                log.warning("job %s interrupted: the instance is stopping", job_id)
                ended.append(job)
                # Told (and the card settled) before the token is tripped: the job's own last card, made
                # as it stops, would otherwise replace this one before it goes out.
                self._notify(job)
            token.cancel()
        return ended

    def pause(self) -> None:
        """Take no more jobs (``submit`` and ``execute`` refuse); the running ones go on."""
        with self._lock:
            self._accepting = False

    def stop(self, timeout_s: float = 30.0) -> None:
        """Take no more jobs; give the running ones up to ``timeout_s`` to finish, then interrupt them."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._accepting = False
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(remaining)
        self.interrupt_running()
