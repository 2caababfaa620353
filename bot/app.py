"""The composition root: every part of the bot built from ``Settings`` and wired together, once.

    bot = build_bot(settings)          # stores, runner, outbox, sweeper, webhook (nothing started)
    bot.start()                        # runner (resumes queued jobs), outbox, sweeper
    bot.warm_up()                      # imports lark_oapi and builds the SDK dispatcher (~2 s)
    bot.handle_webhook(headers, body)  # -> WebhookResponse
    bot.stop()

Every part can be passed in instead (tests point the Feishu client at the fake server and pass their own
job function). The production job function is ``bot.delivery.run_job``, imported only when no other is
given, so this module (and the server's start path) never imports the media pipeline.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.commands import CommandRules
from bot.config import Settings
from bot.dedupe import SeenStore
from bot.intake import CardActionRouter, CardReplier, Intake, default_card_actions
from bot.metrics import BotMetrics
from bot.outbox import InlineOutbox, Outbox, ThreadOutbox
from bot.webhook import WebhookHandler, WebhookResponse
from pipeline.config import ConfigError
from pipeline.jobs import JobStore
from pipeline.runner import JobFunction, LocalRunner, OnFinished, Runner
from pipeline.workspace import Sweeper

log = logging.getLogger(__name__)

STATE_FILE = "state.sqlite3"


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def load_job_function() -> JobFunction:
    """The production job function, ``bot.delivery.run_job``."""
    try:
        delivery = importlib.import_module("bot.delivery")
    except ModuleNotFoundError as exc:
        if exc.name == "bot.delivery":
            raise ConfigError("bot.delivery is not installed: there is no job function to run jobs with") from None
        raise
    function: JobFunction = delivery.run_job
    return function


def make_feishu_client(settings: Settings) -> CardReplier:
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
    # How many webhook requests the server lets run ``handle_webhook`` at once. The handler is CPU work
    # under the GIL (plus short SQLite writes), so one thread is fastest; an inline outbox makes it wait
    # on Feishu, and then requests need threads of their own.
    handler_threads: int = 1

    def start(self) -> None:
        self.outbox.start()
        self.runner.start()
        if self.sweeper is not None:
            self.sweeper.start()

    def warm_up(self) -> None:
        self.webhook.warm_up()

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        return self.webhook.handle(headers, body)

    def reject_oversized(self) -> WebhookResponse:
        return self.webhook.reject_oversized()

    def render_metrics(self) -> bytes:
        return self.metrics.render()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let queued replies go out, close the stores. Jobs still running are left
        RUNNING and resumed by the next start (see ``pipeline.runner``)."""
        self.runner.stop(timeout_s)
        self.outbox.stop(drain_timeout_s=min(5.0, timeout_s))
        if self.sweeper is not None:
            self.sweeper.stop()
        self.seen.close()
        self.store.close()


def build_bot(
    settings: Settings,
    *,
    job_function: JobFunction | None = None,
    feishu: CardReplier | None = None,
    on_finished: OnFinished | None = None,
    outbox: Outbox | None = None,
    card_actions: CardActionRouter | None = None,
    clock: Callable[[], float] = time.time,
    metrics: BotMetrics | None = None,
) -> Bot:
    """Build (not start) the bot. Raises ``ConfigError`` when the settings cannot work."""
    if settings.job_runner != "local":
        raise ConfigError(f"JOB_RUNNER={settings.job_runner} is not available yet; use JOB_RUNNER=local")
    metrics = metrics or BotMetrics()
    feishu = feishu if feishu is not None else make_feishu_client(settings)
    job_function = job_function if job_function is not None else load_job_function()
    if outbox is None:
        # Only the local runner exists today; an FC deployment will want InlineOutbox (the instance
        # freezes once the response is sent).
        outbox = ThreadOutbox(on_failure=metrics.outbox_failed, workers=4)

    store = JobStore(state_path(settings), clock=clock)
    seen = SeenStore(state_path(settings), ttl_s=settings.dedupe_ttl_hours * 3600.0)
    runner = LocalRunner(
        store,
        job_function,
        work_dir=settings.work_dir,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        max_attempts=settings.job_max_attempts,
        on_finished=on_finished,
    )
    sweeper = (
        Sweeper(settings.work_dir, settings.temp_max_age_s, keep=lambda: runner.active_job_ids)
        if settings.temp_cleanup_enabled
        else None
    )
    metrics.watch_jobs(store.counts_by_status)
    card_actions = card_actions if card_actions is not None else default_card_actions()
    intake = Intake(
        store=store,
        runner=runner,
        outbox=outbox,
        replier=feishu,
        rules=CommandRules(
            max_links=settings.max_links_per_message,
            max_screenshots=settings.max_screenshots,
            default_screenshots=settings.screenshot_mode,
        ),
        metrics=metrics,
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
        handler_threads=8 if isinstance(outbox, InlineOutbox) else 1,
    )
