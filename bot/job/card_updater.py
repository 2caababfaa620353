"""Keeping a job's card up to date: desired card states in, PATCHes of the job's card message out.

    updater.push(job_id, card)       non-blocking; only the latest card per job is kept (coalesced)
    updater.flush(job_id, 30.0)      wait until that latest card has been delivered (end of a job)

A few worker threads send for all jobs, so the analysis never waits on Feishu. Per job:

* one send at a time, never more often than ``min_interval_s`` (2 per second by default: Feishu allows 5
  PATCHes per second per message, and 230020 when that is passed);
* a card identical to the one last delivered is not sent again;
* a PATCH whose answer was lost (a timeout after it was sent) may still be applied by Feishu later,
  over a newer card: until ``settle_s`` after such a send, the latest delivered card is sent once more,
  so the last state applied is the newest, never the one that timed out;
* a failed send is retried with backoff (the FeishuClient has already retried rate limits and 5xx
  itself) up to ``max_attempts`` times, then that card is dropped (a newer push starts afresh);
* the card's message id is read from the job store at send time. A job without a card yet (the queued
  reply failed) gets its card as a reply to the user's message, with the same idempotency key as that
  first reply, so a reply that did land is not shown twice. A card that can no longer be changed
  (``MessageGone``: recalled, deleted, older than 14 days) is replaced by a NEW reply to the user's
  message (or, if that message is gone too, a message in the chat), and the store gets the new id; a job
  gets at most ``max_replacements`` of those, so a gone message is never retried forever.

Memory is bounded: one card per job, and entries of jobs that have been quiet for ``forget_after_s``
are dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.cards import progress_card
from bot.feishu import FeishuError, MessageGone, NotFound, PermissionDenied, RateLimited, TransientError
from bot.keys import first_card_uuid, replacement_card_uuid
from pipeline.jobs import Job, JobStore

log = logging.getLogger(__name__)

Card = Mapping[str, Any]
# A card, or a function that renders it: rendered by a worker only when it is about to be sent, so a job
# that pushes on every progress event pays for a render only a few times a second.
CardOrRender = Card | Callable[[], Card]


class CardMessenger(Protocol):
    """What the updater needs from ``bot.feishu.FeishuClient``."""

    def update_card(self, message_id: str, card: Mapping[str, Any]) -> None: ...

    def reply_card(self, message_id: str, card: Mapping[str, Any], *, uuid: str | None = None) -> str: ...

    def send_card(
        self, receive_id: str, card: Mapping[str, Any], *, receive_id_type: str = "chat_id", uuid: str | None = None
    ) -> str: ...


class CardSink(Protocol):
    """What the job, card actions and the hosting's stop need from ``CardUpdater``."""

    def push(self, job_id: str, card: CardOrRender) -> None: ...

    def show_final(self, job: Job, card: CardOrRender) -> None: ...

    def flush(self, job_id: str, timeout_s: float) -> bool: ...


def _fingerprint(card: Card) -> str:
    text = json.dumps(card, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _Entry:
    card: CardOrRender | None = None  # the latest card not delivered yet
    fingerprint: str = ""
    version: int = 0  # of the latest push
    done_version: int = 0  # the latest push delivered or given up on
    delivered: str = ""  # fingerprint of the card on screen
    in_flight: bool = False
    next_at: float = 0.0  # not before (rate limit, backoff)
    attempts: int = 0  # failed sends of the current card
    replacements: int = 0  # new card messages made after MessageGone
    dead: bool = False  # no card can be sent for this job any more
    final: bool = False  # a final card was pushed: later non-final ones are ignored
    last_card: Card | None = None  # the card last delivered, re-sent after an unsure send
    unsettled_until: float = 0.0  # a PATCH whose answer was lost may still be applied until then
    resend_at: float = 0.0  # when to send ``last_card`` again (0: no need)
    touched: float = field(default=0.0)

    @property
    def idle(self) -> bool:
        return self.card is None and not self.in_flight


class CardUpdater:
    """Thread-safe. Workers start on the first ``push`` (or ``start``), so the updater also works where
    a job runs inside an HTTP request and nobody started it beforehand."""

    def __init__(
        self,
        messenger: CardMessenger,
        store: JobStore,
        *,
        min_interval_s: float = 0.5,
        max_attempts: int = 5,
        retry_base_s: float = 0.5,
        retry_max_s: float = 8.0,
        max_replacements: int = 2,
        settle_s: float = 30.0,
        workers: int = 2,
        forget_after_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1 or max_attempts < 1 or min_interval_s < 0:
            raise ValueError("workers and max_attempts must be at least 1, min_interval_s not negative")
        self._messenger = messenger
        self._store = store
        self._min_interval_s = min_interval_s
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._max_replacements = max_replacements
        self._settle_s = settle_s
        self._workers = workers
        self._forget_after_s = forget_after_s
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: dict[str, _Entry] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.sent = 0  # PATCHes and replies that succeeded, for metrics and tests
        self.failed = 0  # sends that failed (each retry counts)

    # --- the API -----------------------------------------------------------------------------------

    def push(self, job_id: str, card: CardOrRender) -> None:
        """Make ``card`` the job's desired card (a progress update). Returns at once. Ignored once the
        job's final card was shown: a click answered a moment late must not put "cancelling" back over
        "cancelled"."""
        self._want(job_id, card, final=False)

    def show_final(self, job: Job, card: CardOrRender) -> None:
        """The one way a job's last card goes out, whoever saw the job end: its own function, the
        runner's ``on_finished``, a cancel of a job that had not started, or a stop that leaves it to
        resume (a restart notice). Later progress pushes for the job are ignored."""
        self._want(job.id, card, final=True)

    def _want(self, job_id: str, card: CardOrRender, *, final: bool) -> None:
        fingerprint = "" if callable(card) else _fingerprint(card)
        with self._changed:
            if self._stopping:
                log.info("card updater stopped: card of job %s not sent", job_id)
                return
            entry = self._entries.get(job_id)
            if entry is None:
                self._make_room()
                entry = self._entries[job_id] = _Entry()
            entry.touched = self._clock()
            if entry.dead or (entry.final and not final):
                return
            entry.final = entry.final or final
            if fingerprint and entry.card is None and not entry.in_flight and fingerprint == entry.delivered:
                return  # already on screen
            if fingerprint and entry.card is not None and fingerprint == entry.fingerprint:
                return  # already waiting to go out
            entry.card = card
            entry.fingerprint = fingerprint
            entry.version += 1
            entry.attempts = 0
            self._start_locked()
            self._changed.notify_all()

    def flush(self, job_id: str, timeout_s: float) -> bool:
        """Wait until the job's latest card has been delivered or given up on; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            entry = self._entries.get(job_id)
            if entry is None:
                return True
            target = entry.version
            while entry.done_version < target and not entry.dead:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._stopping and not self._threads):
                    log.warning("card of job %s not delivered within %.1f s", job_id, timeout_s)
                    return False
                self._changed.wait(min(remaining, 0.5))
            return True

    @property
    def tracked(self) -> int:
        """Jobs the updater holds state for (bounded by ``max_entries``)."""
        with self._lock:
            return len(self._entries)

    def pending(self) -> int:
        """Jobs with a card waiting to go out (or going out)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if not e.idle)

    def start(self) -> None:
        with self._changed:
            self._stopping = False
            self._start_locked()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is pending for up to ``timeout_s``, then stop the workers."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while any(not e.idle and not e.dead for e in self._entries.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("card updater stopped with %d card(s) not delivered", self._count_pending())
                    break
                self._changed.wait(min(remaining, 0.5))
            self._stopping = True
            self._changed.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)

    # --- the workers -----------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._threads or self._stopping:
            return
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"card-updater-{number + 1}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _count_pending(self) -> int:
        return sum(1 for e in self._entries.values() if not e.idle)

    def _make_room(self) -> None:
        """Forget quiet jobs (their rate window and last card are long past use)."""
        now = self._clock()
        if len(self._entries) < self._max_entries and not any(
            now - e.touched > self._forget_after_s for e in self._entries.values()
        ):
            return
        for job_id, entry in list(self._entries.items()):
            if entry.idle and now - entry.touched > self._forget_after_s:
                del self._entries[job_id]
        if len(self._entries) >= self._max_entries:
            idle = sorted((e.touched, job_id) for job_id, e in self._entries.items() if e.idle)
            for _, job_id in idle[: len(self._entries) - self._max_entries + 1]:
                del self._entries[job_id]

    def _next_job(self) -> tuple[str, _Entry, CardOrRender, int, bool] | None:
        """Under the lock: the job whose card is due soonest (a pending card, or the last one to send
        again), or None (after waiting) if none is due."""
        now = self._clock()
        due: tuple[float, str, _Entry, CardOrRender, bool] | None = None
        for job_id, entry in self._entries.items():
            if entry.in_flight or entry.dead:
                continue
            if entry.card is not None:
                candidate = (entry.next_at, job_id, entry, entry.card, False)
            elif entry.resend_at and entry.last_card is not None:
                candidate = (max(entry.next_at, entry.resend_at), job_id, entry, entry.last_card, True)
            else:
                continue
            if due is None or candidate[0] < due[0]:
                due = candidate
        if due is None:
            self._changed.wait(1.0)
            return None
        at, job_id, entry, card, again = due
        if at > now:
            self._changed.wait(max(0.001, min(1.0, at - now)))
            return None
        entry.in_flight = True
        if again:
            entry.resend_at = 0.0
        return job_id, entry, card, entry.version, again

    def _work(self) -> None:
        while True:
            with self._changed:
                if self._stopping:
                    return
                picked = self._next_job()
            if picked is None:
                continue
            job_id, entry, wanted, version, again = picked
            card = self._render(job_id, wanted)
            if card is None:
                outcome = "drop"
            elif _fingerprint(card) == entry.delivered and not again:
                outcome = "unchanged"
            else:
                outcome = self._send(job_id, entry, card)
            with self._changed:
                entry.in_flight = False
                now = self._clock()
                entry.touched = now
                if outcome == "sent" and card is not None:
                    self.sent += 1
                    entry.delivered = _fingerprint(card)
                    entry.last_card = card
                    if entry.unsettled_until > now:
                        # A lost PATCH may still land over this card: send the newest once more after.
                        entry.resend_at = entry.unsettled_until
                    self._settle(entry, version)
                    entry.next_at = now + self._min_interval_s
                elif outcome == "created":
                    # A reply answered from Feishu's idempotency cache shows the earlier card, not this
                    # one: the same card goes out again as a PATCH of the new message.
                    self.sent += 1
                    entry.delivered = ""
                    entry.attempts = 0
                    entry.next_at = now + self._min_interval_s
                elif outcome == "unchanged":
                    self._settle(entry, version)
                elif outcome == "drop":
                    self._settle(entry, version)
                    entry.next_at = now + self._min_interval_s
                elif outcome == "dead":
                    entry.dead = True
                    entry.card = None
                    entry.done_version = entry.version
                else:  # retry, or unsure (sent, answer lost)
                    if outcome == "unsure":
                        entry.unsettled_until = max(entry.unsettled_until, now + self._settle_s)
                    self.failed += 1
                    entry.attempts += 1
                    if entry.attempts >= self._max_attempts:
                        log.warning("card of job %s dropped after %d failed attempts", job_id, entry.attempts)
                        self._settle(entry, version)
                    delay = min(self._retry_max_s, self._retry_base_s * 2 ** max(0, entry.attempts - 1))
                    entry.next_at = now + max(delay, self._min_interval_s)
                self._changed.notify_all()

    @staticmethod
    def _render(job_id: str, wanted: CardOrRender) -> Card | None:
        if not callable(wanted):
            return wanted
        try:
            return wanted()
        except Exception:
            log.exception("rendering the card of job %s failed", job_id)
            return None

    @staticmethod
    def _settle(entry: _Entry, version: int) -> None:
        """The card of ``version`` is done with (sent or given up); a newer push stays pending."""
        entry.done_version = max(entry.done_version, version)
        if entry.version == version:
            entry.card = None
            entry.attempts = 0

    # --- one send ----------------------------------------------------------------------------------

    def _send(self, job_id: str, entry: _Entry, card: Card) -> str:
        """ "sent", "created" (a new card message; its content still to be confirmed), "retry", "unsure"
        (a PATCH that was sent but not answered: Feishu may still apply it), "drop" (this card can never
        go out) or "dead" (no card can, for this job)."""
        try:
            job = self._store.get(job_id)
        except Exception as exc:
            log.warning("card of job %s: the job store failed: %s", job_id, exc)
            return "retry"
        if job is None:
            return "dead"
        try:
            if not job.card_message_id:
                self._new_card(job, card, first_card_uuid(job))
                return "created"
            try:
                self._messenger.update_card(job.card_message_id, card)
            except MessageGone as gone:
                return self._replace(job, entry, card, gone)
            except TransientError as exc:
                if not exc.request_sent:
                    raise
                log.warning("card of job %s: no answer to its update (%s); will send the newest again", job_id, exc)
                return "unsure"
            return "sent"
        except (RateLimited, TransientError) as exc:
            log.warning("card of job %s not sent yet: %s", job_id, exc)
            return "retry"
        except FeishuError as exc:
            # Too large, invalid, no permission: sending the same card again would fail the same way.
            log.error("card of job %s refused by Feishu: %s", job_id, exc)
            return "drop"
        except Exception as exc:
            log.warning("card of job %s not sent: %s: %s", job_id, type(exc).__name__, exc)
            return "retry"

    def _replace(self, job: Job, entry: _Entry, card: Card, gone: MessageGone) -> str:
        with self._lock:
            entry.replacements += 1
            count = entry.replacements
        if count > self._max_replacements:
            log.warning("card of job %s: message gone again (%s); no more cards for this job", job.id, gone.code)
            return "dead"
        log.info(
            "card of job %s: message %s gone (code %s); sending a new card", job.id, job.card_message_id, gone.code
        )
        self._new_card(job, card, replacement_card_uuid(job))
        return "created"

    def _new_card(self, job: Job, card: Card, uuid: str) -> None:
        """Reply to the user's message with the card (or post it in the chat when that message is gone)
        and remember its message id."""
        message_id = ""
        if job.spec.source_message_id:
            try:
                message_id = self._messenger.reply_card(job.spec.source_message_id, card, uuid=uuid)
            except (MessageGone, NotFound, PermissionDenied) as exc:
                if not job.spec.chat_id:
                    raise
                log.info("job %s: cannot reply to its message (%s); posting in the chat", job.id, exc.code)
        if not message_id:
            if not job.spec.chat_id:
                raise MessageGone(-1, "the job has neither a message to reply to nor a chat")
            message_id = self._messenger.send_card(job.spec.chat_id, card, receive_id_type="chat_id", uuid=uuid)
        self._store.set_card_message(job.id, message_id)


def final_card_hook(updater: CardUpdater, clock: Callable[[], float] = time.time) -> Callable[[Job], None]:
    """An ``on_finished`` for the runner: the final card of a job that ended without its job function
    showing it (cancelled while queued, failed after too many restarts, a crash). A job whose function
    already put this card on screen costs nothing: the same card is not sent twice."""

    def on_finished(job: Job) -> None:
        updater.show_final(job, lambda: progress_card(job, now=clock()))

    return on_finished
