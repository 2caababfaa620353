"""What happens to an accepted message or card click, after the webhook has vouched for it.

``Intake.on_message``: parse the message (``bot.inbound.commands``), then either queue a job (a row in the job
store, keyed by the message id so a redelivery can never queue it twice) or answer with help / "nothing
to do" / "invalid options". Every answer is built and sent by the outbox, never on the request path.

The queued card is sent first and the job submitted to the runner after it (whether the send worked or
not): the job then finds its card's message id in the store from its first progress update on.

A message that replies to a job's card without videos in it is a follow-up question about that job
(``bot.inbound.questions``), answered on its own worker threads.

``CardActionRouter``: card callbacks by their ``action`` value. Handlers are registered by name;
anything unknown or stale gets a friendly toast, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from bot import cards
from bot.inbound.commands import BadOptions, CommandRules, Help, NewJob, Nothing, parse_message
from bot.inbound.events import CardAction, CardActionReply, IncomingMessage
from bot.inbound.insight_options import insight_off_notes
from bot.inbound.replied import RepliedMessages
from bot.keys import first_card_uuid, job_key_for_message, reply_uuid
from bot.metrics import BotMetrics
from bot.outbox import Outbox
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.jobs.runner import Runner
from pipeline.logs import log_context
from pipeline.models import JobSpec, UserText

if TYPE_CHECKING:
    from bot.inbound.questions import FollowUps

log = logging.getLogger(__name__)


class CardReplier(Protocol):
    """The one thing intake needs from ``bot.feishu.FeishuClient``."""

    def reply_card(self, message_id: str, card: Mapping[str, Any], *, uuid: str | None = None) -> str: ...


def send_first_card_then_submit(
    job: Job,
    card: Callable[[], Mapping[str, Any]],
    *,
    outbox: Outbox,
    replier: CardReplier,
    store: JobStore,
    runner: Runner,
    name: str,
) -> None:
    """On the outbox: reply to the job's message with its first card (``keys.first_card_uuid``, so a
    resend lands once), record the card's message id, then submit the job. The job is submitted even
    when the card could not be sent: its first progress update replies with one."""

    def send() -> None:
        try:
            target = job.spec.source_message_id
            store.set_card_message(job.id, replier.reply_card(target, card(), uuid=first_card_uuid(job)))
        finally:
            runner.submit(job.id)

    outbox.submit(send, name=name)


class Intake:
    def __init__(
        self,
        *,
        store: JobStore,
        runner: Runner,
        outbox: Outbox,
        replier: CardReplier,
        rules: CommandRules,
        metrics: BotMetrics,
        replied: RepliedMessages | None = None,
        queued_notes: Callable[[], tuple[UserText, ...]] | None = None,
        questions: FollowUps | None = None,
    ) -> None:
        self._questions = questions
        self._replied = replied  # reads the message a reply points at (group chats)
        # Said on each queued card, asked on the outbox (the configured results folder's state).
        self._queued_notes = queued_notes
        self._store = store
        self._runner = runner
        self._outbox = outbox
        self._replier = replier
        self._rules = rules
        self._metrics = metrics

    def on_message(self, message: IncomingMessage) -> None:
        command = parse_message(message, self._rules)
        if isinstance(command, Nothing | Help) and self._questions is not None:
            # A reply to a job's card without videos in it is a question about that job's videos.
            job = self._questions.job_for(message)
            if job is not None:
                self._metrics.commands.labels(command="question").inc()
                self._questions.ask(message, job)
                return
        replied = self._replied
        if replied is not None and replied.wanted(message, command):
            # The reply itself holds nothing: what it points at is read off the request path.
            self._metrics.commands.labels(command="replied").inc()
            self._outbox.submit(lambda: replied.resolve(message, self._queue, self._reply), name="reply:replied")
            return
        if isinstance(command, NewJob):
            self._metrics.commands.labels(command="job").inc()
            self._queue(message, command.spec)
        elif isinstance(command, Help):
            self._metrics.commands.labels(command="help").inc()
            self._reply(message, lambda: cards.help_card(max_links=self._rules.max_links), "reply:help")
        elif isinstance(command, Nothing):
            self._metrics.commands.labels(command="nothing").inc()
            nothing = command
            self._reply(
                message,
                lambda: cards.nothing_card(nothing.reason, nothing.rejected, max_links=self._rules.max_links),
                "reply:nothing",
            )
        elif isinstance(command, BadOptions):
            self._metrics.commands.labels(command="bad_options").inc()
            bad = command
            self._reply(message, lambda: cards.error_card(bad.problem, bad.example), "reply:bad_options")

    def _queue(self, message: IncomingMessage, spec: JobSpec) -> None:
        job, created = self._store.create(spec, idempotency_key=job_key_for_message(message.message_id))
        if not created and (job.status is not JobStatus.QUEUED or job.card_message_id):
            log.info("message %s already has job %s; not queued again", message.message_id, job.id)
            return
        # A job created by an earlier delivery whose handling failed half-way (no card yet) is carried
        # on from here: the reply's uuid keeps Feishu from showing the card twice.
        with log_context(job_id=job.id):
            log.info("job queued: %d source(s), %d input(s) not used", len(spec.sources), len(spec.rejected))

        def card() -> Mapping[str, Any]:  # built off the request path too
            notes = self._queued_notes() if self._queued_notes else ()
            notes += insight_off_notes(spec.options, insight_enabled=self._rules.insight_enabled)
            return cards.queued_card(job.id, spec, key=job.idempotency_key or "", notes=notes)

        send_first_card_then_submit(
            job,
            card,
            outbox=self._outbox,
            replier=self._replier,
            store=self._store,
            runner=self._runner,
            name="reply:queued",
        )

    def _reply(self, message: IncomingMessage, card: Callable[[], Mapping[str, Any]], name: str) -> None:
        def send() -> None:
            self._replier.reply_card(message.message_id, card(), uuid=reply_uuid(message.message_id))

        self._outbox.submit(send, name=name)


CardActionFunction = Callable[[CardAction], CardActionReply]

STALE_ACTION = CardActionReply(
    toast=UserText(
        zh="这个按钮已失效或暂不支持。发送「帮助」查看用法。",
        en="This button has expired or is not supported. Send “help” for usage.",
    ),
    toast_type="warning",
)

TASK_FORM_NOT_READY = CardActionReply(
    toast=UserText(
        zh="任务表单即将上线。现在可以直接发送视频链接、视频文件或多维表格链接。",
        en="The task form is coming soon. For now, send video links, a video file or a Bitable link.",
    ),
    toast_type="info",
)


class CardActionRouter:
    """Dispatches card callbacks on ``value["action"]``."""

    def __init__(self) -> None:
        self._handlers: dict[str, CardActionFunction] = {}

    def register(self, action: str, handler: CardActionFunction) -> None:
        self._handlers[action] = handler

    def __contains__(self, action: str) -> bool:
        return action in self._handlers

    def __call__(self, action: CardAction) -> CardActionReply:
        name = action.action or _form_submit(action)
        handler = self._handlers.get(name)
        if handler is None:
            log.info("card action %r has no handler; answered with a toast", name[:40])
            return STALE_ACTION
        return handler(action)


def _form_submit(action: CardAction) -> str:
    """A form sent without the button's callback value (some clients drop it): the button's name and the
    form's fields still say what it is."""
    if action.name == cards.FORM_SUBMIT_BUTTON and action.form_value:
        return cards.SUBMIT_TASK_FORM
    return ""


def default_card_actions() -> CardActionRouter:
    router = CardActionRouter()
    router.register(cards.OPEN_TASK_FORM, lambda _action: TASK_FORM_NOT_READY)
    return router
