"""The HTTP server: a thin FastAPI adapter around ``bot.Bot`` (it imports only what ``bot`` exports).

    GET  /health          200 {"status": "ok"} as soon as the process listens (503 if the bot failed to start;
                          EVENT_MODE=websocket: 503 "not_ready" while its long connection is down)
    GET  /metrics         Prometheus text (this app's own registry)
    POST /webhook/event   Feishu events and card callbacks: raw body + headers in, one call into the bot
    POST /jobs/run        one job, run to its end (JOB_RUNNER=fc-async: FC's async invocation, signed)
    POST /initialize      FC lifecycle hook: load the speech model (503 with the reason when it is missing)
    GET  /pre-stop        FC lifecycle hook: stop taking work, tell the users of jobs running here

Nothing heavy is imported on the start path: the bot (stores, runner, and the lark_oapi SDK, which takes
about 2 s to import) is built on a background thread started by the lifespan, and the routes that need
it await it. ``python server.py`` serves on HOST:PORT (0.0.0.0:9000 by default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from bot import Answer, Settings
from pipeline.config import ConfigError
from pipeline.logs import configure_logging

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger("server")

# How long a request waits for the bot to finish starting before it is answered 503 (Feishu retries).
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# Job invocations (fc-async) running at once in this process, each on a thread for its whole length.
JOB_THREADS = 16


class BotStarter:
    """Builds, starts and warms the bot on a background thread; requests ``await get()`` it."""

    def __init__(self, make: Callable[[], Bot]) -> None:
        self._make = make
        self._future: concurrent.futures.Future[Bot] = concurrent.futures.Future()
        # RUNNING from the start: a request whose wait times out cancels its own asyncio wrapper, and
        # that must not cancel the start itself.
        self._future.set_running_or_notify_cancel()
        self._thread = threading.Thread(target=self._run, name="bot-start", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            bot = self._make()
            bot.start()
            bot.warm_up()
            # lark_oapi brings ~300k objects that live as long as the process; a full collection walking
            # them stalls every request for ~0.25 s. Frozen, they are left out of collections for good.
            gc.freeze()
        except BaseException as exc:
            log.error("the bot could not start: %s: %s", type(exc).__name__, exc)
            self._future.set_exception(exc)
            return
        log.info("the bot is ready")
        self._future.set_result(bot)

    def ready_now(self) -> Bot | None:
        """The bot if it has started, without waiting."""
        if self._future.done() and self._future.exception() is None:
            return self._future.result()
        return None

    @property
    def failed(self) -> bool:
        return self._future.done() and self._future.exception() is not None

    async def get(self, timeout_s: float = READY_TIMEOUT_S) -> Bot | None:
        """The started bot, or None when it failed to start or is not ready within ``timeout_s``."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._future), timeout_s)
        except Exception:
            return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._thread.join(timeout_s)
        if self._future.done() and self._future.exception() is None:
            self._future.result().stop(timeout_s)
            log.info("the bot stopped")


def _respond(answer: Answer) -> Response:
    if answer.raw is not None:
        return Response(answer.raw, status_code=answer.status, media_type=answer.media_type)
    return JSONResponse(dict(answer.body), status_code=answer.status)


def _unavailable() -> Response:
    return _respond(Answer.problem(503, "unavailable", "the bot is starting or failed to start; retry later"))


class _Gone(Exception):
    """The client went away (or was cut off by the read deadline) before its body was complete."""


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``cap`` bytes (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Gone from None
    return b"".join(chunks)


def _client_gone(_request: Request, _exc: Exception) -> Response:
    # Nobody is listening: the connection is closed (see ``bot.read_deadlines``). No 500, no traceback.
    return Response(status_code=408)


def create_app(settings: Settings | None = None, *, bot: Bot | None = None) -> FastAPI:
    """The app. With ``bot`` given it is started (and stopped) by the app's lifespan instead of a new one."""
    settings = settings if settings is not None else Settings.load()
    resolved: Settings = settings

    def make_bot() -> Bot:
        if bot is not None:
            return bot
        from bot import Bot

        return Bot.from_settings(resolved)

    starter = BotStarter(make_bot)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        configure_logging(resolved.log_level, resolved.log_format, secrets=_secrets(resolved))
        # The start path ends here: nothing heavy has been imported in this thread. The rest (SQLite,
        # job recovery, the lark_oapi import) happens on the starter's thread while we already serve.
        log.info("start path done; building the bot in the background")
        starter.start()
        try:
            yield
        finally:
            # Running jobs get SHUTDOWN_GRACE_S to finish; the rest resume at the next start.
            await anyio.to_thread.run_sync(starter.stop, resolved.shutdown_grace_s)

    app = FastAPI(title="Video Insight Bot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(_Gone, _client_gone)
    app.state.bot_starter = starter

    @app.get("/health")
    async def health() -> Response:
        if starter.failed:
            return JSONResponse({"status": "failed"}, status_code=503)
        ready = starter.ready_now()
        # Answered while the bot still starts too: the process is up and serving.
        return _respond(ready.health()) if ready is not None else JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        ready = await starter.get()
        if ready is None:
            return _unavailable()
        return _respond(await anyio.to_thread.run_sync(ready.render_metrics))

    handler_slots: list[anyio.CapacityLimiter] = []

    @app.post("/webhook/event")
    async def webhook(request: Request) -> Response:
        body = await _read_capped(request, resolved.max_request_bytes)
        ready = await starter.get()
        if ready is None:
            return _unavailable()
        if body is None:
            answer = ready.reject_oversized()
        elif not ready.handler_threads:
            # Short CPU work (AES, the SDK's parsing, a few SQLite writes) that never waits on the network:
            # done right here, it costs less than the hop to a thread and back.
            answer = ready.handle_webhook(request.headers, body)
        else:
            if not handler_slots:
                handler_slots.append(anyio.CapacityLimiter(ready.handler_threads))
            # The handler waits on Feishu (replies sent inline): off the event loop, on threads.
            answer = await anyio.to_thread.run_sync(
                ready.handle_webhook, request.headers, body, limiter=handler_slots[0]
            )
        return _respond(answer)

    job_slots: list[anyio.CapacityLimiter] = []

    @app.post("/jobs/run")
    async def run_job_invocation(request: Request) -> Response:
        ready = await starter.get()
        if ready is None:
            return _unavailable()
        body = await _read_capped(request, ready.MAX_JOB_BODY_BYTES)
        if not job_slots:
            job_slots.append(anyio.CapacityLimiter(JOB_THREADS))
        # The job runs to its end inside this request, on threads of its own (never the webhook's).
        answer = await anyio.to_thread.run_sync(ready.run_job_invocation, request.headers, body, limiter=job_slots[0])
        return _respond(answer)

    @app.post("/initialize")
    async def initialize() -> Response:
        ready = await starter.get()
        if ready is None:
            return _unavailable()
        return _respond(await anyio.to_thread.run_sync(ready.initialize))

    @app.get("/pre-stop")
    async def pre_stop() -> Response:
        ready = await starter.get()
        if ready is None:
            return JSONResponse({"status": "stopping", "interrupted": []})
        return _respond(await anyio.to_thread.run_sync(ready.pre_stop))

    return app


def _secrets(settings: Settings) -> list[str]:
    return [
        settings.feishu_app_secret.get_secret_value(),
        settings.feishu_verification_token.get_secret_value(),
        settings.feishu_encrypt_key.get_secret_value(),
        settings.job_secret.get_secret_value(),
        settings.alibaba_cloud_access_key_secret.get_secret_value(),
        settings.alibaba_cloud_security_token.get_secret_value(),
    ]


# Seconds a thread may hold the GIL before the event loop can take it back (CPython's default: 0.005).
ACK_SWITCH_INTERVAL_S = 0.001


def main() -> None:
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format, secrets=_secrets(settings))
    missing = settings.missing_for_events()
    if missing:
        print(
            f"missing configuration for EVENT_MODE={settings.event_mode}: {', '.join(missing)} "
            "(see README.md, Configuration)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if settings.event_mode == "websocket" and not (
        settings.feishu_encrypt_key.get_secret_value() and settings.feishu_verification_token.get_secret_value()
    ):
        log.info("events arrive over the long connection; POST /webhook/event refuses every event")
    # Webhooks are answered on the event loop while job and reply threads keep the GIL busy; with the
    # default 5 ms switch interval each hand-over makes a webhook wait that long, several times over.
    sys.setswitchinterval(ACK_SWITCH_INTERVAL_S)

    import uvicorn

    from bot import read_deadline_protocol

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our handler (configure_logging) formats uvicorn's records too
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(STOP_TIMEOUT_S),
        http=read_deadline_protocol(settings),
    )


if __name__ == "__main__":
    main()
