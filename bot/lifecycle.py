"""The instance's life around the jobs: FC's lifecycle hooks, the job invocations, and what users are
told when an instance stops under their job.

    lifecycle.admit(headers)            every webhook / job request: keeps FC's per-request context
                                        (credentials for StopAsyncTask); 503 once the instance is stopping
    lifecycle.run_invocation(h, body)   POST /jobs/run (fc-async only, not SERVER_ROLE=webhook; 404 otherwise)
    lifecycle.initialize()              POST /initialize: load the speech model now (503 + reason if missing;
                                        nothing to load with SERVER_ROLE=webhook)
    lifecycle.pre_stop()                GET /pre-stop: stop taking work; jobs running here are interrupted
                                        and their users told (FC cannot resume them elsewhere)
    lifecycle.tell_left_running()       after a SIGTERM's grace: jobs the local runner leaves RUNNING get a
                                        card saying they resume after the restart

Shutdown (SIGTERM, any runner): uvicorn stops listening, lets requests in flight finish, then the bot
stops its runner with ``SHUTDOWN_GRACE_S``. A job that does not finish by then stays RUNNING with its
progress saved, and the next start queues it again (``LocalRunner.start``). A webhook that was still in
flight queues its job in the store without starting it; it starts at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from bot.jobrun import JobRunEndpoint
from bot.webhook import WebhookResponse
from pipeline.config import PipelineSettings
from pipeline.fc_api import FcContext
from pipeline.fc_runner import FcAsyncRunner
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.runner import LocalRunner

log = logging.getLogger(__name__)


class CardPusher(Protocol):
    """What the lifecycle needs from ``bot.progress.CardUpdater``."""

    def push(self, job_id: str, card: Mapping[str, Any], *, final: bool = False) -> None: ...


def _unavailable(message: str) -> WebhookResponse:
    return WebhookResponse(503, {"error": "unavailable", "message": message})


def restart_notice_card(job: Job) -> dict[str, Any]:
    """What a job's card says while the service restarts under it (the progress card returns when the
    job resumes)."""
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "width_mode": "fill"},
        "header": {
            "title": {"tag": "plain_text", "content": "服务重启中，任务稍后继续"},
            "subtitle": {"tag": "plain_text", "content": "Restarting: the job resumes shortly"},
            "template": "orange",
        },
        "body": {
            "elements": [
                {
                    "tag": "markdown",
                    "content": "⏸ 服务正在重启，这个任务已暂停，重启后会自动继续"
                    "（视频会从头重新处理），无需重新发送。\n"
                    "⏸ The service is restarting. This job is paused and resumes by itself after the restart "
                    "(its videos are processed again from the start); no need to send them again.",
                },
                {"tag": "hr"},
                {"tag": "markdown", "content": f"任务编号 / Job: `{job.id}`"},
            ]
        },
    }


class Lifecycle:
    def __init__(
        self,
        *,
        settings: PipelineSettings,
        store: JobStore,
        runner: LocalRunner | FcAsyncRunner,
        cards: CardPusher,
        job_run: JobRunEndpoint | None = None,
        fc: FcContext | None = None,
        webhook_only: bool = False,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runner = runner
        self._cards = cards
        self._job_run = job_run
        self._fc = fc
        # SERVER_ROLE=webhook: the light function of a two-function deployment loads no model and runs no job.
        self._webhook_only = webhook_only
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def admit(self, headers: Mapping[str, str]) -> WebhookResponse | None:
        """None when the request may go on; the 503 to answer once the instance is stopping."""
        if self._fc is not None:
            self._fc.observe(headers)
        if self._stopping:
            return _unavailable("this instance is stopping; retry later")
        return None

    def run_invocation(self, headers: Mapping[str, str], body: bytes | None) -> WebhookResponse:
        if self._job_run is None:
            return WebhookResponse(404, {"error": "not_found", "message": "job invocations need JOB_RUNNER=fc-async"})
        if self._webhook_only:
            # A JOB_INVOKE_URL pointing back at the webhook function would run jobs on its small instances.
            message = "this is the webhook function (SERVER_ROLE=webhook): jobs run on the worker function"
            return WebhookResponse(404, {"error": "not_found", "message": message})
        refused = self.admit(headers)
        if refused is not None:
            return refused
        return self._job_run.handle(headers, body)

    def initialize(self) -> WebhookResponse:
        """Load the speech model now, so the first job does not wait for it (not in the webhook role, whose
        instances must answer Feishu within 3 s of a cold start)."""
        if self._webhook_only:
            log.info("initialize: SERVER_ROLE=webhook, no speech model to load")
            return WebhookResponse.ok(status="ready", role="webhook")
        from pipeline.asr import get_transcriber
        from pipeline.errors import ModelUnavailableError

        try:
            transcriber = get_transcriber(self._settings)
            transcriber.warm()
        except ModelUnavailableError as exc:
            log.error("initialize: the speech recognition model is not available: %s", exc.detail)
            return WebhookResponse(503, {"error": "model_unavailable", "message": exc.detail})
        except Exception as exc:
            log.error("initialize: the speech recognition model did not load: %s: %s", type(exc).__name__, exc)
            return WebhookResponse(
                503, {"error": "model_load_failed", "message": f"{type(exc).__name__}: {str(exc)[:500]}"}
            )
        log.info("initialize: %s model %s is loaded", transcriber.backend, transcriber.model_name)
        return WebhookResponse.ok(status="ready", asr_backend=transcriber.backend, model=transcriber.model_name)

    def pre_stop(self) -> WebhookResponse:
        """Stop taking work. Jobs running here in FC invocations are failed with a message that says the
        platform interrupted them (no other instance can resume them) and their users told."""
        self._stopping = True
        interrupted: list[Job] = []
        if isinstance(self._runner, FcAsyncRunner):
            self._runner.pause()
            interrupted = self._runner.interrupt_running()
        log.warning("pre-stop: taking no more work; %d running job(s) interrupted", len(interrupted))
        return WebhookResponse.ok(status="stopping", interrupted=[job.id for job in interrupted])

    def tell_left_running(self) -> int:
        """After the local runner's stop: tell the users of jobs still RUNNING that they resume after the
        restart. The notice is pushed as the job's final card of this process, so a progress update the
        job still makes cannot cover it; the card updater is drained next. Returns how many were told."""
        if not isinstance(self._runner, LocalRunner):
            return 0
        told = 0
        for job_id in sorted(self._runner.active_job_ids):
            job = self._store.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                continue
            log.warning("job %s left running with its progress saved; it resumes at the next start", job_id)
            self._cards.push(job.id, restart_notice_card(job), final=True)
            told += 1
        return told
