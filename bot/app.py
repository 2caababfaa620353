"""The composition root: every part of the bot built from ``Settings`` and wired together, once.

    bot = build_bot(settings)          # stores, runner, outbox, sweeper, webhook (nothing started)
    bot.start()                        # runner (resumes queued jobs), outbox, sweeper
    bot.warm_up()                      # imports lark_oapi and builds the SDK dispatcher (~2 s)
    bot.handle_webhook(headers, body)  # -> Answer
    (EVENT_MODE=websocket: bot.long_connection receives events over a connection it opens to Feishu)
    bot.stop()

Every part can be passed in instead (tests point the Feishu client at the fake server and pass their own
job function). The production job function is made by ``bot.job.delivery.make_job_function``, imported only
when no other is given, so this module (and the server's start path) never imports the media pipeline.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bot.answer import Answer
from bot.config import Settings
from bot.fc.jobrun import MAX_BODY_BYTES
from bot.hosting import Hosting, HostingNeeds, make_hosting
from bot.inbound.actions import CardActions
from bot.inbound.commands import CommandRules
from bot.inbound.dedupe import SeenStore
from bot.inbound.intake import CardActionRouter, CardReplier, Intake, default_card_actions
from bot.inbound.longconn import LongConnection
from bot.inbound.questions import FollowUps
from bot.inbound.replied import RepliedMessages
from bot.inbound.webhook import WebhookHandler
from bot.job.card_updater import CardUpdater as ProgressCards
from bot.job.card_updater import final_card_hook
from bot.job.result_folder import DefaultFolder
from bot.metrics import BotMetrics
from bot.outbox import Outbox, ThreadOutbox
from pipeline.config import ConfigError
from pipeline.jobs import Job, JobStore
from pipeline.jobs.runner import JobFunction, OnFinished, Runner
from pipeline.workspace import Sweeper

if TYPE_CHECKING:
    from bot.feishu import FeishuClient

log = logging.getLogger(__name__)

STATE_FILE = "state.sqlite3"
METRICS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def load_job_function(settings: Settings, feishu: FeishuClient, card_updater: ProgressCards) -> JobFunction:
    """The production job function, made by ``bot.job.delivery.make_job_function`` (imported here, not at
    the top: the server's start path never imports the delivery code)."""
    try:
        delivery = importlib.import_module("bot.job.delivery")
    except ModuleNotFoundError as exc:
        if exc.name == "bot.job.delivery":
            raise ConfigError("bot.job.delivery is not installed: there is no job function to run jobs with") from None
        raise
    function: JobFunction = delivery.make_job_function(settings, feishu, card_updater)
    return function


def make_feishu_client(settings: Settings) -> FeishuClient:
    from bot.feishu import FeishuClient

    return FeishuClient.from_settings(settings)


@dataclass
class Bot:
    """The front door of ``bot/``: the server calls these methods and nothing else."""

    settings: Settings
    webhook: WebhookHandler
    metrics: BotMetrics
    store: JobStore
    seen: SeenStore
    hosting: Hosting  # the runner, the outbox, where handlers run, pre-stop and the stop
    sweeper: Sweeper | None
    feishu: CardReplier
    card_actions: CardActionRouter
    # Keeps jobs' cards current; started before the runner, so jobs resumed at start find it running.
    card_updater: ProgressCards | None = None
    # Where follow-up questions are answered (model calls); started and stopped with the bot.
    question_workers: Outbox | None = None
    # EVENT_MODE=websocket: events arrive over a connection the bot opens (None in webhook mode).
    long_connection: LongConnection | None = None

    # The largest job invocation body read (an envelope is at most 128 KB, FC's async limit).
    MAX_JOB_BODY_BYTES: ClassVar[int] = MAX_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Bot:
        """Build (not start) the bot. Raises ``ConfigError`` when the settings cannot work."""
        return build_bot(settings)

    @property
    def runner(self) -> Runner:
        return self.hosting.runner

    @property
    def outbox(self) -> Outbox:
        return self.hosting.outbox

    @property
    def handler_threads(self) -> int:
        """Threads the server runs ``handle_webhook`` on; 0 = on the event loop itself."""
        return self.hosting.handler_threads

    def start(self) -> None:
        if self.card_updater is not None:
            self.card_updater.start()
        self.hosting.start()
        if self.question_workers is not None:
            self.question_workers.start()
        if self.sweeper is not None:
            self.sweeper.start()
        if self.long_connection is not None:
            self.long_connection.start()  # last: events may arrive as soon as it connects

    def warm_up(self) -> None:
        self.webhook.warm_up()

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> Answer:
        refused = self.hosting.admit(headers)
        if refused is not None:
            return refused
        return self.webhook.handle(headers, body)

    def reject_oversized(self) -> Answer:
        return self.webhook.reject_oversized()

    def run_job_invocation(self, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """POST /jobs/run; ``body`` None when it was over ``MAX_JOB_BODY_BYTES``."""
        return self.hosting.run_invocation(headers, body)

    def initialize(self) -> Answer:
        return self.hosting.initialize()

    def pre_stop(self) -> Answer:
        return self.hosting.pre_stop()

    def render_metrics(self) -> Answer:
        return Answer.plain(self.metrics.render(), METRICS_MEDIA_TYPE)

    def health(self) -> Answer:
        if self.long_connection is None:
            return Answer.ok(status="ok")
        # EVENT_MODE=websocket: without the connection no event can reach the bot.
        state = self.long_connection.state()
        status, code = ("ok", 200) if state.connected else ("not_ready", 503)
        return Answer(code, {"status": status, "long_connection": state.to_json()})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let queued replies go out, close the stores. Jobs still running are left
        RUNNING and resumed by the next start (see ``pipeline.jobs.runner``)."""
        if self.long_connection is not None:
            self.long_connection.stop(timeout_s)  # first: no new events while the rest winds down
        self.hosting.stop_runner(timeout_s)
        if self.card_updater is not None:
            self.card_updater.stop(5.0)
        self.hosting.stop_outbox()
        if self.question_workers is not None:
            self.question_workers.stop(drain_timeout_s=5.0)
        if self.sweeper is not None:
            self.sweeper.stop()
        self.seen.close()
        self.store.close()


def build_bot(
    settings: Settings,
    *,
    job_function: JobFunction | None = None,
    feishu: FeishuClient | None = None,
    on_finished: OnFinished | None = None,
    outbox: Outbox | None = None,
    card_actions: CardActionRouter | None = None,
    clock: Callable[[], float] = time.time,
    metrics: BotMetrics | None = None,
) -> Bot:
    """Build (not start) the bot. Raises ``ConfigError`` when the settings cannot work."""
    metrics = metrics or BotMetrics()
    feishu = feishu if feishu is not None else make_feishu_client(settings)
    if job_function is None and settings.job_function:
        job_function = import_job_function(settings.job_function)
    store = JobStore(state_path(settings), clock=clock)
    seen = SeenStore(
        state_path(settings),
        ttl_s=settings.dedupe_ttl_hours * 3600.0,
        claim_timeout_s=settings.dedupe_claim_timeout_s,
    )
    card_updater = ProgressCards(feishu, store)
    if job_function is None:
        job_function = load_job_function(settings, feishu, card_updater)
        # Jobs that end without their function showing it (cancelled while queued, failed after too
        # many restarts) still get their final card.
        on_finished = _both(final_card_hook(card_updater, clock), on_finished)
    hosting = make_hosting(
        HostingNeeds(
            settings=settings,
            store=store,
            seen=seen,
            job_function=job_function,
            cards=card_updater,
            metrics=metrics,
            outbox=outbox,
            on_finished=on_finished,
            clock=clock,
        )
    )
    runner = hosting.runner
    sweeper = (
        Sweeper(settings.work_dir, settings.temp_max_age_s, keep=lambda: hosting.active_job_ids)
        if settings.temp_cleanup_enabled
        else None
    )
    metrics.watch_jobs(store.counts_by_status)
    rules = CommandRules(
        max_links=settings.max_links_per_message,
        max_screenshots=settings.max_screenshots,
        default_screenshots=settings.screenshot_mode,
        insight_enabled=settings.insight_enabled,
    )
    if card_actions is None:
        card_actions = default_card_actions()
        CardActions(
            store=store,
            runner=runner,
            outbox=hosting.outbox,
            replier=feishu,
            cards_out=card_updater,
            rules=rules,
            clock=clock,
            cancel_elsewhere=hosting.jobs_elsewhere,
            folders=feishu,
        ).register(card_actions)
    # Follow-up questions wait on a model for up to LLM_TIMEOUT_S: their own threads, not the outbox's.
    question_workers = ThreadOutbox(workers=2, name="questions")
    questions = FollowUps(settings=settings, store=store, replier=feishu, workers=question_workers)
    intake = Intake(
        store=store,
        runner=runner,
        outbox=hosting.outbox,
        replier=feishu,
        rules=rules,
        metrics=metrics,
        questions=questions,
        replied=RepliedMessages(feishu, rules),
        queued_notes=DefaultFolder(feishu, settings.feishu_folder_token).notes
        if settings.feishu_folder_token
        else None,
    )

    webhook = WebhookHandler(
        app_id=settings.feishu_app_id,
        encrypt_key=settings.feishu_encrypt_key.get_secret_value(),
        verification_token=settings.feishu_verification_token.get_secret_value(),
        replay_window_s=settings.replay_window_s,
        seen=seen,
        metrics=metrics,
        on_message=intake.on_message,
        on_card_action=card_actions,
        clock=clock,
    )
    long_connection = (
        LongConnection(
            app_id=settings.feishu_app_id,
            app_secret=settings.feishu_app_secret.get_secret_value(),
            domain=settings.feishu_domain,
            route=webhook.route_event,
            registry=metrics.registry,
            retry_min_s=settings.long_connection_retry_min_s,
            retry_max_s=settings.long_connection_retry_max_s,
            warm_up=webhook.warm_up,
            clock=clock,
        )
        if settings.event_mode == "websocket"
        else None
    )
    return Bot(
        settings=settings,
        webhook=webhook,
        metrics=metrics,
        store=store,
        seen=seen,
        hosting=hosting,
        sweeper=sweeper,
        feishu=feishu,
        card_actions=card_actions,
        card_updater=card_updater,
        question_workers=question_workers,
        long_connection=long_connection,
    )


def _both(first: OnFinished, second: OnFinished | None) -> OnFinished:
    """Two ``on_finished`` callbacks as one; the second runs even if the first fails."""
    if second is None:
        return first

    def on_finished(job: Job) -> None:
        try:
            first(job)
        finally:
            second(job)

    return on_finished


def import_job_function(path: str) -> JobFunction:
    """``package.module:function`` (``JOB_FUNCTION``) imported; ``ConfigError`` naming what is wrong."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"JOB_FUNCTION: cannot import {module_name}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"JOB_FUNCTION: {module_name} has no function {attribute}")
    job_function: JobFunction = function
    return job_function
