"""Function Compute hosting (``JOB_RUNNER=fc-async``): jobs in asynchronous invocations of this same
function, FC's lifecycle hooks, and the job invocations.

    admit(headers)            every webhook / job request: keeps FC's per-request context (credentials
                              for StopAsyncTask); 503 once the instance is stopping
    run_invocation(h, body)   POST /jobs/run: a signed job envelope, run here (``bot.fc.jobrun``)
    initialize()              POST /initialize: load the speech model now
    pre_stop()                GET /pre-stop: stop taking work; jobs running here are interrupted and their
                              users told (FC cannot resume them elsewhere)

``SERVER_ROLE`` picks the class: ``all`` (``FcHosting``) answers Feishu and runs the jobs; ``webhook``
(``FcWebhookHosting``), the light function of a two-function deployment, answers Feishu and hands every
job to the worker function at ``JOB_INVOKE_URL``: its initializer loads nothing and it runs no job.

Shutdown (SIGTERM): uvicorn stops listening, lets requests in flight finish, then the bot stops its
runner with ``SHUTDOWN_GRACE_S``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bot.answer import Answer
from bot.config import Settings
from bot.fc.api import CloudCredentials, FcContext, FcTaskStopper
from bot.fc.jobrun import JobRunEndpoint
from bot.fc.runner import FcAsyncRunner
from bot.hosting import Hosting, HostingNeeds
from bot.job.card_updater import CardSink
from bot.outbox import InlineOutbox, Outbox
from pipeline.jobs import JobStore

log = logging.getLogger(__name__)

# How long a request waits for a finished job's card to go out before it answers (and FC freezes
# the instance).
CARD_SETTLE_TIMEOUT_S = 10.0


class FcHosting(Hosting):
    """Each job in an asynchronous invocation of this same function, signed with ``JOB_SECRET``; a
    cancel stops the invocation through FC's API.

    Replies go out through ``InlineOutbox``: FC freezes the instance once the webhook's response is
    sent, so the queued card is sent before the acknowledgement (a reply takes ~100 ms, well inside
    Feishu's 3 s), by the instance that got the message, as a reply to it with the stable reply uuid.
    The card then exists whatever happens to the invocation, and its message id travels in the job
    envelope so the instance that runs the job updates the same card. The handler then waits on
    Feishu, so webhooks get threads of their own."""

    handler_threads = 8
    jobs_elsewhere = True

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        runner: FcAsyncRunner,
        outbox: Outbox,
        cards: CardSink,
        job_run: JobRunEndpoint,
        fc: FcContext,
    ) -> None:
        super().__init__(settings=settings, store=store, runner=runner, outbox=outbox, cards=cards)
        self._fc_runner = runner
        self._job_run = job_run
        self._fc = fc

    @classmethod
    def build(cls, needs: HostingNeeds) -> FcHosting:
        """The hosting ``SERVER_ROLE`` asks for, built from ``needs``."""
        settings, store, cards, clock = needs.settings, needs.store, needs.cards, needs.clock
        hosting_class = FcWebhookHosting if settings.server_role == "webhook" else cls
        fc = FcContext(
            region=settings.fc_region,
            function_name=settings.fc_function_name,
            job_function_name=settings.job_function_name,
            fallback=CloudCredentials(
                access_key_id=settings.alibaba_cloud_access_key_id.get_secret_value(),
                access_key_secret=settings.alibaba_cloud_access_key_secret.get_secret_value(),
                security_token=settings.alibaba_cloud_security_token.get_secret_value(),
            ),
        )
        secret = settings.job_secret.get_secret_value()
        runner = FcAsyncRunner(
            store,
            needs.job_function,
            work_dir=settings.work_dir,
            invoke_url=settings.fc_invoke_url,
            secret=secret,
            stopper=FcTaskStopper(fc, endpoint=settings.fc_api_endpoint),
            on_finished=needs.on_finished,
            # A finished job's card must be out before the request answers (and FC freezes the instance).
            settle=lambda job_id: cards.flush(job_id, CARD_SETTLE_TIMEOUT_S),
            clock=clock,
        )
        job_run = JobRunEndpoint(
            secret=secret, max_age_s=settings.job_signature_max_age_s, seen=needs.seen, runner=runner, clock=clock
        )
        return hosting_class(
            settings=settings,
            store=store,
            runner=runner,
            outbox=needs.outbox or InlineOutbox(on_failure=needs.metrics.outbox_failed),
            cards=cards,
            job_run=job_run,
            fc=fc,
        )

    def admit(self, headers: Mapping[str, str]) -> Answer | None:
        """Keeps FC's per-request context (the credentials StopAsyncTask uses), then as any hosting."""
        self._fc.observe(headers)
        return super().admit(headers)

    def run_invocation(self, headers: Mapping[str, str], body: bytes | None) -> Answer:
        refused = self.admit(headers)
        if refused is not None:
            return refused
        return self._job_run.handle(headers, body)

    def pre_stop(self) -> Answer:
        """Stop taking work. Jobs running here in FC invocations are failed with a message that says the
        platform interrupted them (no other instance can resume them) and their users told."""
        self._stopping = True
        self._fc_runner.pause()
        interrupted = self._fc_runner.interrupt_running()
        log.warning("pre-stop: taking no more work; %d running job(s) interrupted", len(interrupted))
        return Answer.ok(status="stopping", interrupted=[job.id for job in interrupted])

    @property
    def active_job_ids(self) -> frozenset[str]:
        return self._fc_runner.active_job_ids


class FcWebhookHosting(FcHosting):
    """``SERVER_ROLE=webhook``: the light function of a two-function deployment. It answers Feishu and
    submits each job to the worker function (``JOB_INVOKE_URL``); its cancels stop the worker's tasks
    (``JOB_FUNCTION_NAME``). Its instances are small and must answer Feishu within 3 s of a cold start,
    so its initializer loads no model and it runs no job."""

    def run_invocation(self, headers: Mapping[str, str], body: bytes | None) -> Answer:  # noqa: ARG002
        # A JOB_INVOKE_URL pointing back at the webhook function would run jobs on its small instances.
        message = "this is the webhook function (SERVER_ROLE=webhook): jobs run on the worker function"
        return Answer.problem(404, "not_found", message)

    def initialize(self) -> Answer:
        log.info("initialize: SERVER_ROLE=webhook, no speech model to load")
        return Answer.ok(status="ready", role="webhook")
