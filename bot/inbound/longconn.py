"""The long connection (长连接): Feishu events and card callbacks over a WebSocket the bot opens itself.

With ``EVENT_MODE=websocket`` nothing has to reach the bot from outside: it asks Feishu for a connection
URL (``POST /callback/ws/endpoint`` with the App ID and App Secret), connects out, and Feishu pushes
``im.message.receive_v1`` events and ``card.action.trigger`` callbacks down that socket as protobuf frames.
Each frame is answered with an acknowledgement frame on the same socket; a card callback's toast and card
ride in that acknowledgement. There is no Encrypt Key or signature here: the connection itself was
authenticated when it was opened.

lark_oapi's ``ws.Client`` speaks the protocol (frames, ping/pong, the endpoint call). We use its pieces,
not its ``start()``, because ``start()``:

* blocks forever on a module-level event loop (``lark_oapi.ws.client.loop``, made by whichever thread
  imported the SDK first), so it must run on a thread of its own whose loop we put in that slot;
* reconnects on its own schedule (two minutes by default) and, when Feishu refuses the credentials during
  a reconnect, dies inside a task while ``start()`` keeps blocking: a zombie nobody can see.

So one thread here owns one loop; the supervisor connects with the SDK client, waits for the socket to
close, and connects again with an exponential backoff; ``state()`` tells ``/health`` whether it is
connected and since when, and ``/metrics`` counts connects, disconnects and events. Every event is handed
to ``route`` (``WebhookHandler.route_event``): from there on it takes exactly the path a webhook event
takes after decryption (app check, dedupe, parsing, jobs, cards).

Only one long connection may run per process (the SDK's loop slot is module-wide); the bot has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

Route = Callable[[Any], Any]  # an SDK event object -> WebhookResponse (status, body)

# A connection that lasted this long was a success: the next failure starts the backoff from the bottom.
STABLE_AFTER_S = 10.0
# Jitter added on top of each wait (never below it), so many bots cut off together do not return together.
JITTER = 0.2


@dataclass(frozen=True)
class LongConnectionState:
    """What ``/health`` shows. ``since`` is when ``connected`` last changed (Unix seconds)."""

    connected: bool
    since: float
    attempts: int
    last_error: str

    def to_json(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds"),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


class LongConnectionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connects = Counter(
            "video_insight_long_connection_connects", "Long connections opened to Feishu.", registry=registry
        )
        self.disconnects = Counter(
            "video_insight_long_connection_disconnects",
            "Long connections that closed (dropped by the network or Feishu, or at shutdown).",
            registry=registry,
        )
        self.failures = Counter(
            "video_insight_long_connection_failures",
            "Attempts to open the long connection that failed, by kind (refused: Feishu refused the app's "
            "credentials; error: anything else).",
            ["kind"],
            registry=registry,
        )
        self.events = Counter(
            "video_insight_long_connection_events",
            "Events and callbacks received over the long connection, by event type.",
            ["event_type"],
            registry=registry,
        )
        self.connected = Gauge(
            "video_insight_long_connection_connected", "1 while the long connection is open.", registry=registry
        )


class DeliveryFailed(Exception):
    """Raised to the SDK so it acknowledges with a 500 and Feishu delivers the event again."""


def backoff_s(failures: int, minimum: float, maximum: float) -> float:
    """The wait before the next attempt after ``failures`` failed attempts in a row (0 = the first)."""
    return float(min(maximum, minimum * (2 ** min(failures, 30))))


class LongConnection:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        domain: str,
        route: Route,
        registry: CollectorRegistry,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
        warm_up: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app_id = app_id
        self._app_secret = app_secret
        self._domain = domain
        self._route = route
        self._warm_up = warm_up
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self.metrics = LongConnectionMetrics(registry)
        self._lock = threading.Lock()
        self._state = LongConnectionState(connected=False, since=clock(), attempts=0, last_error="")
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None  # lark_oapi.ws.Client, made on the thread (its tasks need its loop)
        # Set (on the loop) to end a wait early: at stop. Bound to the thread's loop at first use.
        self._wake = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="feishu-long-connection", daemon=True)

    # --- outside the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the connection (a clean WebSocket close) and end the thread. Events already being
        handled finish first: they run on the connection's loop, between its steps."""
        self._stopping.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(self._wake.set)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the long connection did not stop within %.0f s", timeout_s)

    def state(self) -> LongConnectionState:
        with self._lock:
            return self._state

    # --- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._warm_up()  # imports lark_oapi once, under the webhook's lock, never beside another import
            import lark_oapi.ws.client as sdk_ws

            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            # The SDK schedules its receive and handler tasks on this module attribute.
            sdk_ws.loop = loop
            loop.set_exception_handler(_quiet_sdk_task_errors)
            self._loop = loop
            try:
                loop.run_until_complete(self._supervise())
            finally:
                _cancel_everything(loop)
                loop.close()
        except Exception as exc:
            log.error("the long connection stopped for good: %s: %s", type(exc).__name__, exc, exc_info=True)
            self._set_state(connected=False, error=f"{type(exc).__name__}: {exc}")

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            with self._lock:
                self._state = LongConnectionState(
                    self._state.connected, self._state.since, self._state.attempts + 1, self._state.last_error
                )
            opened_at: float | None = None
            try:
                opened_at = await self._one_connection()
                reason = "the connection closed"
            except Exception as exc:
                reason = self._explain_failure(exc)
            if self._stopping.is_set():
                return
            if opened_at is not None and time.monotonic() - opened_at >= STABLE_AFTER_S:
                failures = 0
            wait_s = backoff_s(failures, self._retry_min_s, self._retry_max_s) * (1 + random.random() * JITTER)  # noqa: S311 - jitter, not a secret
            failures += 1
            self._set_state(connected=False, error=reason)
            log.warning("long connection: %s; connecting again in %.1f s", reason, wait_s)
            await self._sleep(wait_s)

    async def _one_connection(self) -> float:
        """Open a connection, return when it has closed (the time it opened, monotonic). Raises when it
        cannot be opened."""
        client = self._sdk_client()
        # The endpoint call (a blocking HTTP request, fine on this thread) and the WebSocket handshake.
        await client._connect()
        connection = client._conn
        opened_at = time.monotonic()
        self.metrics.connects.inc()
        self.metrics.connected.set(1)
        self._set_state(connected=True, error="")
        log.info("long connection to Feishu open: events arrive without a public URL")
        pinger = asyncio.ensure_future(client._ping_loop())
        try:
            closed = asyncio.ensure_future(connection.wait_closed())
            woken = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({closed, woken}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (closed, woken):
                waiter.cancel()
        finally:
            pinger.cancel()
            await client._disconnect()  # a clean close on shutdown; nothing to do after a drop
            self.metrics.disconnects.inc()
            self.metrics.connected.set(0)
            self._set_state(connected=False, error="")
        return opened_at

    def _sdk_client(self) -> Any:
        """One SDK client for the thread's life, connected again after each close (each client starts a
        cache-sweeping task that never ends: one per attempt would pile up while Feishu refuses)."""
        if self._client is None:
            import lark_oapi as lark

            self._client = lark.ws.Client(
                self._app_id,
                self._app_secret,
                # The SDK sets its process-wide "Lark" logger to this level. CRITICAL, as everywhere in the
                # bot (pipeline.logs): its INFO line carries the connection URL with its access key and
                # ticket, and its ERROR lines call every ordinary close an error; the supervisor logs what
                # happened.
                log_level=lark.LogLevel.CRITICAL,
                event_handler=self._dispatcher(),
                domain=self._domain,
                auto_reconnect=False,  # ours is in _supervise, with a backoff and a visible state
            )
        return self._client

    def _explain_failure(self, exc: Exception) -> str:
        from lark_oapi.ws.exception import ClientException, ServerException

        code = getattr(exc, "code", None)
        # The SDK raises ClientException for a refusal inside a 200 answer, ServerException(status) for
        # an HTTP error: a 4xx is a refusal too.
        refused = isinstance(exc, ClientException) or (
            isinstance(exc, ServerException) and isinstance(code, int) and 400 <= code < 500
        )
        if refused:
            # The endpoint refused the app (wrong App ID or App Secret, app not enabled, too many
            # connections): nothing a retry soon would fix, but a fixed secret or console should not need
            # a restart either, so it is retried at the backoff's pace.
            self.metrics.failures.labels(kind="refused").inc()
            reason = (
                f"Feishu refused the long connection ({exc}): check FEISHU_APP_ID and FEISHU_APP_SECRET, "
                "and that the app is published"
            )
            log.error("%s", reason)
            return reason
        self.metrics.failures.labels(kind="error").inc()
        return f"could not connect to Feishu ({type(exc).__name__}: {exc})"

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _set_state(self, *, connected: bool, error: str) -> None:
        with self._lock:
            old = self._state
            since = old.since if old.connected == connected else self._clock()
            self._state = LongConnectionState(connected, since, old.attempts, error or old.last_error)

    # --- events -----------------------------------------------------------------------------------

    def _dispatcher(self) -> Any:
        import lark_oapi as lark

        # No Encrypt Key and no token: frames arrive in plain JSON over the authenticated connection, and
        # the SDK's long-connection path does not check either.
        sdk = (
            lark.EventDispatcherHandler.builder("", "")
            .register_p2_im_message_receive_v1(self._on_event)
            .register_p2_card_action_trigger(self._on_card_action)
            .build()
        )
        return _AcknowledgeUnknownTypes(sdk, self._on_unknown_type)

    def _on_unknown_type(self, payload: bytes) -> None:
        self.metrics.events.labels(event_type="unknown").inc()
        try:
            header = json.loads(payload).get("header") or {}
            event_type = str(header.get("event_type", "?"))[:80]
        except (ValueError, AttributeError):
            event_type = "?"
        log.info("long connection: ignored an event of a type this bot does not handle: %s", event_type)

    def _deliver(self, event: Any) -> Any:
        header = getattr(event, "header", None)
        event_type = getattr(header, "event_type", None) or "unknown"
        self.metrics.events.labels(event_type=event_type).inc()
        answer = self._route(event)
        if answer.status >= 500:
            raise DeliveryFailed(f"{event_type} could not be handled now ({answer.status})")
        return answer

    def _on_event(self, event: Any) -> None:
        self._deliver(event)

    def _on_card_action(self, event: Any) -> Any:
        from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTriggerResponse

        answer = self._deliver(event)
        # The toast and card go back inside the acknowledgement frame.
        return P2CardActionTriggerResponse(dict(answer.body) if answer.status == 200 else {})


class _AcknowledgeUnknownTypes:
    """The SDK's dispatcher, except that an event type nobody registered is acknowledged (200) instead of
    answered 500, as the webhook answers it "ignored": Feishu would otherwise push it again for hours."""

    def __init__(self, sdk: Any, on_unknown: Callable[[bytes], None]) -> None:
        self._sdk = sdk
        self._on_unknown = on_unknown

    def _do_without_validation(self, payload: bytes) -> Any:  # the one method ws.Client calls
        from lark_oapi.core.exception import EventException

        try:
            return self._sdk._do_without_validation(payload)
        except EventException as exc:
            if "processor not found" not in str(exc):
                raise
            self._on_unknown(payload)
            return None


def _quiet_sdk_task_errors(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # With its own reconnecting turned off, the SDK's receive task ends by re-raising the error that
    # closed the socket; the supervisor has seen the close and logs it once.
    log.debug("long connection task ended: %s", context.get("exception") or context.get("message"))


def _cancel_everything(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
