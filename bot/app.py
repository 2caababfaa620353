"""The composition root: every part of the bot built from ``Settings`` and wired together, once.

    bot = build_bot(settings)          # stores, runner, outbox, sweeper, webhook (nothing started)
    bot.start()                        # runner (resumes queued jobs), outbox, sweeper
    bot.warm_up()                      # imports lark_oapi and builds the SDK dispatcher (~2 s)
    bot.handle_webhook(headers, body)  # -> WebhookResponse
    bot.stop()

Every part can be passed in instead (tests point the Feishu client at the fake server and pass their own
job function). The production job function is made by ``bot.delivery.make_job_function``, imported only
when no other is given, so this module (and the server's start path) never imports the media pipeline.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actions import CardActions
from bot.commands import CommandRules
from bot.config import Settings
from bot.dedupe import SeenStore
from bot.intake import CardActionRouter, CardReplier, Intake, default_card_actions
from bot.lifecycle import Lifecycle
from bot.metrics import BotMetrics
from bot.outbox import InlineOutbox, Outbox, ThreadOutbox
from bot.progress import CardUpdater as ProgressCards
from bot.progress import final_card_hook
from bot.runners import import_job_function, make_runner
from bot.webhook import WebhookHandler, WebhookResponse
from pipeline.config import ConfigError
from pipeline.jobs import Job, JobStore
from pipeline.runner import JobFunction, OnFinished, Runner
from pipeline.workspace import Sweeper

if TYPE_CHECKING:
    from bot.feishu import FeishuClient

log = logging.getLogger(__name__)

STATE_FILE = "state.sqlite3"
# fc-async: how long a request waits for a finished job's card to go out before it answers (and FC
# freezes the instance).
CARD_SETTLE_TIMEOUT_S = 10.0


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def load_job_function(settings: Settings, feishu: FeishuClient, card_updater: ProgressCards) -> JobFunction:
    """The production job function, made by ``bot.delivery.make_job_function`` (imported here, not at
    the top: the server's start path never imports the delivery code)."""
    try:
        delivery = importlib.import_module("bot.delivery")
    except ModuleNotFoundError as exc:
        if exc.name == "bot.delivery":
            raise ConfigError("bot.delivery is not installed: there is no job function to run jobs with") from None
        raise
    function: JobFunction = delivery.make_job_function(settings, feishu, card_updater)
    return function


def make_feishu_client(settings: Settings) -> FeishuClient:
    from bot.feishu import FeishuClient

    return FeishuClient.from_settings(settings)


@dataclass
class Bot:
    settings: Settings
    webhook: WebhookHandler
    metrics: BotMetrics
    store: JobStore
    seen: SeenStore
    runner: Runner
    outbox: Outbox
    sweeper: Sweeper | None
    feishu: CardReplier
    card_actions: CardActionRouter
    lifecycle: Lifecycle  # FC hooks (/initialize, /pre-stop), /jobs/run, shutdown notices
    # Keeps jobs' cards current; started before the runner, so jobs resumed at start find it running.
    card_updater: ProgressCards | None = None
    # Threads the server runs ``handle_webhook`` on; 0 = on the event loop itself. The handler is short
    # CPU work under the GIL (plus short SQLite writes), done fastest where the request already is; an
    # inline outbox makes it wait on Feishu, and then requests need threads of their own.
    handler_threads: int = 0

    def start(self) -> None:
        self.outbox.start()
        if self.card_updater is not None:
            self.card_updater.start()
        self.runner.start()
        if self.sweeper is not None:
            self.sweeper.start()

    def warm_up(self) -> None:
        self.webhook.warm_up()

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        refused = self.lifecycle.admit(headers)
        if refused is not None:
            return refused
        return self.webhook.handle(headers, body)

    def reject_oversized(self) -> WebhookResponse:
        return self.webhook.reject_oversized()

    def render_metrics(self) -> bytes:
        return self.metrics.render()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let queued replies go out, close the stores. Jobs still running are left
        RUNNING and resumed by the next start (see ``pipeline.runner``)."""
        self.runner.stop(timeout_s)
        self.lifecycle.tell_left_running()
        if self.card_updater is not None:
            self.card_updater.stop(5.0)
        self.outbox.stop(drain_timeout_s=5.0)
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
    if outbox is None and settings.job_runner == "fc-async":
        # FC freezes the instance once the response is sent: replies go out before it (bot.runners).
        outbox = InlineOutbox(on_failure=metrics.outbox_failed)
    if outbox is None:
        outbox = ThreadOutbox(on_failure=metrics.outbox_failed, workers=4)

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
    runner_parts = make_runner(
        settings,
        store,
        seen,
        job_function,
        on_finished=on_finished,
        settle_cards=lambda job_id: card_updater.flush(job_id, CARD_SETTLE_TIMEOUT_S),
        clock=clock,
    )
    runner = runner_parts.runner
    sweeper = (
        Sweeper(settings.work_dir, settings.temp_max_age_s, keep=lambda: runner.active_job_ids)
        if settings.temp_cleanup_enabled
        else None
    )
    metrics.watch_jobs(store.counts_by_status)
    rules = CommandRules(
        max_links=settings.max_links_per_message,
        max_screenshots=settings.max_screenshots,
        default_screenshots=settings.screenshot_mode,
    )
    if card_actions is None:
        card_actions = default_card_actions()
        CardActions(
            store=store,
            runner=runner,
            outbox=outbox,
            replier=feishu,
            cards_out=card_updater,
            rules=rules,
            clock=clock,
            cancel_elsewhere=settings.job_runner == "fc-async",
        ).register(card_actions)
    intake = Intake(store=store, runner=runner, outbox=outbox, replier=feishu, rules=rules, metrics=metrics)

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
    return Bot(
        settings=settings,
        webhook=webhook,
        metrics=metrics,
        store=store,
        seen=seen,
        runner=runner,
        outbox=outbox,
        sweeper=sweeper,
        feishu=feishu,
        card_actions=card_actions,
        lifecycle=Lifecycle(
            settings=settings,
            store=store,
            runner=runner,
            cards=card_updater,
            job_run=runner_parts.job_run,
            fc=runner_parts.fc,
        ),
        card_updater=card_updater,
        handler_threads=8 if isinstance(outbox, InlineOutbox) else 0,
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
