"""How this process runs jobs, chosen once at start: the one module that knows the mode.

    LocalHosting  (``JOB_RUNNER=local``)     worker threads here (Docker, Kubernetes, a laptop); replies
                                             go out on background threads; webhooks are handled on the
                                             event loop; a stop leaves unfinished jobs RUNNING with a
                                             "resumes after the restart" card, and the next start resumes them
    FcHosting     (``JOB_RUNNER=fc-async``)  ``bot.fc``: each job in an asynchronous invocation of the same
                                             Function Compute function (or, with ``SERVER_ROLE=webhook``,
                                             of the worker function)

A hosting owns the runner, the outbox, where webhook handlers run (``handler_threads``), what a job
invocation and the pre-stop hook do, and the stop. Everything else asks it, never the mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.answer import Answer
from bot.cards import restart_notice_card
from bot.config import Settings
from bot.inbound.dedupe import SeenStore
from bot.job.card_updater import CardSink
from bot.metrics import BotMetrics
from bot.outbox import Outbox, ThreadOutbox
from pipeline.jobs import JobFunction, JobStatus, JobStore, LocalRunner, OnFinished, Runner

log = logging.getLogger(__name__)


class Hosting:
    """What every way of running jobs has in common; ``LocalHosting`` and ``FcHosting`` fill it in."""

    # Threads the server runs webhook handlers on; 0 = on the event loop itself. A handler is short
    # CPU work under the GIL (plus short SQLite writes), done fastest where the request already is.
    handler_threads = 0
    # Whether a job this instance does not know may be running elsewhere (its cancel button then
    # finds it by the button's key).
    jobs_elsewhere = False

    def __init__(self, *, settings: Settings, store: JobStore, runner: Runner, outbox: Outbox, cards: CardSink):
        self.settings = settings
        self.store = store
        self.runner = runner
        self.outbox = outbox
        self.cards = cards
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self.outbox.start()
        self.runner.start()

    def admit(self, headers: Mapping[str, str]) -> Answer | None:  # noqa: ARG002 - FcHosting reads them
        """None when a webhook or job request may go on; the 503 to answer once the instance is stopping."""
        if self._stopping:
            return Answer.problem(503, "unavailable", "this instance is stopping; retry later")
        return None

    def run_invocation(self, headers: Mapping[str, str], body: bytes | None) -> Answer:  # noqa: ARG002
        """POST /jobs/run: only Function Compute hosting runs jobs sent to it."""
        return Answer.problem(404, "not_found", "job invocations need JOB_RUNNER=fc-async")

    def pre_stop(self) -> Answer:
        """The platform's pre-stop hook: take no more work."""
        self._stopping = True
        log.warning("pre-stop: taking no more work")
        return Answer.ok(status="stopping", interrupted=[])

    def initialize(self) -> Answer:
        """The platform's initialize hook: load the speech model now, so the first job does not wait."""
        from pipeline.asr import get_transcriber
        from pipeline.errors import ModelUnavailableError

        try:
            transcriber = get_transcriber(self.settings)
            transcriber.warm()
        except ModelUnavailableError as exc:
            log.error("initialize: the speech recognition model is not available: %s", exc.detail)
            return Answer.problem(503, "model_unavailable", exc.detail)
        except Exception as exc:
            log.error("initialize: the speech recognition model did not load: %s: %s", type(exc).__name__, exc)
            return Answer.problem(503, "model_load_failed", f"{type(exc).__name__}: {str(exc)[:500]}")
        log.info("initialize: %s model %s is loaded", transcriber.backend, transcriber.model_name)
        return Answer.ok(status="ready", asr_backend=transcriber.backend, model=transcriber.model_name)

    @property
    def active_job_ids(self) -> frozenset[str]:
        return frozenset()

    def stop_runner(self, timeout_s: float) -> None:
        self.runner.stop(timeout_s)

    def stop_outbox(self) -> None:
        self.outbox.stop(drain_timeout_s=5.0)


class LocalHosting(Hosting):
    """Jobs on worker threads in this process."""

    def __init__(self, *, settings: Settings, store: JobStore, runner: LocalRunner, outbox: Outbox, cards: CardSink):
        super().__init__(settings=settings, store=store, runner=runner, outbox=outbox, cards=cards)
        self._threads = runner

    def stop_runner(self, timeout_s: float) -> None:
        """Stop the runner, then tell the users of jobs still RUNNING that they resume after the restart.
        The notice is the job's final card of this process, so a progress update the job still makes
        cannot cover it (the card updater is drained next)."""
        self._threads.stop(timeout_s)
        for job_id in sorted(self._threads.active_job_ids):
            job = self.store.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                continue
            log.warning("job %s left running with its progress saved; it resumes at the next start", job_id)
            self.cards.show_final(job, restart_notice_card(job))

    @property
    def active_job_ids(self) -> frozenset[str]:
        return self._threads.active_job_ids


@dataclass(frozen=True)
class HostingNeeds:
    """What a hosting is built from; ``outbox`` replaces the hosting's own (tests)."""

    settings: Settings
    store: JobStore
    seen: SeenStore
    job_function: JobFunction
    cards: CardSink
    metrics: BotMetrics
    outbox: Outbox | None = None
    on_finished: OnFinished | None = None
    clock: Callable[[], float] = time.time


def make_hosting(needs: HostingNeeds) -> Hosting:
    """The hosting ``JOB_RUNNER`` asks for: the one place the mode is read."""
    settings = needs.settings
    if settings.job_runner == "fc-async":
        from bot.fc.hosting import FcHosting

        return FcHosting.build(needs)
    runner = LocalRunner(
        needs.store,
        needs.job_function,
        work_dir=settings.work_dir,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        max_attempts=settings.job_max_attempts,
        on_finished=needs.on_finished,
    )
    outbox = needs.outbox or ThreadOutbox(on_failure=needs.metrics.outbox_failed, workers=4)
    return LocalHosting(settings=settings, store=needs.store, runner=runner, outbox=outbox, cards=needs.cards)
