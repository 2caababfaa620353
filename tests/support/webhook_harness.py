"""The webhook under test: the real FastAPI app, served by uvicorn on a loopback port, with Feishu faked.

    def test_x(webhook: WebhookClient) -> None:
        response = webhook.send(webhook.events.text("https://v.example.com/a.mp4"))
        card = webhook.reply_to(message_id).card

``webhook_env`` holds what survives an app restart (settings, DATA_DIR, the fake Feishu, the jobs the
test job function ran); ``webhook_env.serve()`` starts one app instance on it. The job function is the
test's own: it records the jobs it was given (the real one is ``bot.job.delivery.run_job``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bot.app import Bot, build_bot
from bot.config import Settings
from bot.feishu import FeishuClient
from bot.outbox import ThreadOutbox
from pipeline.jobs import Job, JobStatus
from pipeline.jobs.runner import JobContext, JobOutcome
from server import create_app
from tests.support.events import EventFactory, Headers
from tests.support.feishu import FakeFeishu, FakeMessage
from tests.support.fixtures import FAST_FEISHU_RETRY

REPLY_PATH = "/open-apis/im/v1/messages/*/reply"


class RecordingJobs:
    """A job function for tests: records each job it runs and finishes it as DONE."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def __call__(self, context: JobContext) -> JobOutcome:
        with self._changed:
            self.ran.append(context.job.id)
            self._changed.notify_all()
        return JobOutcome.done({"videos": len(context.job.spec.sources)})

    def wait_for(self, job_id: str, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: job_id in self.ran, timeout):
                raise AssertionError(f"job {job_id} was not run within {timeout}s (ran: {self.ran})")


class ServedApp:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a thread (lifespan included)."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


@dataclass
class WebhookClient:
    """One running app instance and an HTTP client for it."""

    url: str
    bot: Bot
    fake: FakeFeishu
    events: EventFactory
    jobs: RecordingJobs
    http: httpx.Client

    def send(self, request: tuple[Headers, bytes], path: str = "/webhook/event") -> httpx.Response:
        headers, body = request
        return self.http.post(self.url + path, headers=headers, content=body)

    def post(self, body: bytes, headers: Headers | None = None) -> httpx.Response:
        return self.http.post(self.url + "/webhook/event", headers=headers or {}, content=body)

    def message_id_of(self, request: tuple[Headers, bytes]) -> str:
        message_id: str = self.events.payload_of(request[1])["event"]["message"]["message_id"]
        return message_id

    def replies_to(self, message_id: str) -> list[FakeMessage]:
        return [m for m in self.fake.sent_messages if m.parent_id == message_id]

    def reply_to(self, message_id: str, timeout: float = 10.0) -> FakeMessage:
        """Wait for the bot's reply to ``message_id`` and return it (exactly one is expected)."""
        deadline = time.monotonic() + timeout
        while True:
            replies = self.replies_to(message_id)
            if replies:
                assert len(replies) == 1, f"{len(replies)} replies to {message_id}"
                return replies[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to {message_id} within {timeout}s")
            time.sleep(0.02)

    def job_for(self, message_id: str) -> Job | None:
        for job in self.bot.store.list(limit=None):
            if job.idempotency_key == message_id:
                return job
        return None

    def wait_for_card_message(self, job_id: str, timeout: float = 10.0) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.bot.store.get(job_id)
            assert job is not None
            if job.card_message_id:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} has no card message id after {timeout}s")
            time.sleep(0.02)

    def wait_for_status(self, job_id: str, status: JobStatus, timeout: float = 10.0) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.bot.store.get(job_id)
            if job is not None and job.status is status:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is not {status.value} after {timeout}s: {job}")
            time.sleep(0.02)

    def all_jobs(self) -> list[Job]:
        return self.bot.store.list(limit=None)

    def metrics(self) -> str:
        response = self.http.get(self.url + "/metrics")
        assert response.status_code == 200
        return response.text

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every send queued so far has been made (or has failed)."""
        outbox = self.bot.outbox
        assert isinstance(outbox, ThreadOutbox)
        assert outbox.wait_until_idle(timeout), f"{outbox.pending} outbox task(s) still pending"


@dataclass
class WebhookEnv:
    """What outlives one app instance: settings (DATA_DIR), the fake Feishu, the recorded jobs."""

    settings: Settings
    fake: FakeFeishu
    events: EventFactory
    jobs: RecordingJobs = field(default_factory=RecordingJobs)

    def build(self, **overrides: Any) -> Bot:
        return build_bot(
            self.settings,
            job_function=overrides.pop("job_function", self.jobs),
            feishu=overrides.pop("feishu", None) or feishu_client_for(self.fake),
            **overrides,
        )

    @contextmanager
    def serve(self, **overrides: Any) -> Iterator[WebhookClient]:
        bot = self.build(**overrides)
        served = ServedApp(create_app(self.settings, bot=bot)).start()
        try:
            with httpx.Client(timeout=30) as http:
                yield WebhookClient(served.url, bot, self.fake, self.events, self.jobs, http)
        finally:
            served.stop()


def feishu_client_for(fake: FakeFeishu) -> FeishuClient:
    """The real client pointed at the fake, retrying in milliseconds."""
    return FeishuClient(fake.app_id, fake.app_secret, domain=fake.url, timeout=10.0, retry=FAST_FEISHU_RETRY)


def webhook_settings(tmp_path: Path, fake: FakeFeishu, events: EventFactory, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "feishu_app_id": fake.app_id,
        "feishu_app_secret": fake.app_secret,
        "feishu_verification_token": events.verification_token,
        "feishu_encrypt_key": events.encrypt_key,
        "feishu_domain": fake.url,
        "event_mode": "webhook",
        "data_dir": tmp_path / "data",
        "work_dir": tmp_path / "work",
        "max_concurrent_jobs": 1,
        "log_level": "INFO",
    }
    values.update(overrides)
    return Settings.load(**values)


@pytest.fixture
def webhook_env(tmp_path: Path, fake_feishu: FakeFeishu) -> WebhookEnv:
    events = EventFactory(app_id=fake_feishu.app_id)
    return WebhookEnv(webhook_settings(tmp_path, fake_feishu, events), fake_feishu, events)


@pytest.fixture
def webhook(webhook_env: WebhookEnv) -> Iterator[WebhookClient]:
    with webhook_env.serve() as client:
        yield client


def card_text(card: dict[str, Any]) -> str:
    """Every string in a card, joined: for "the card mentions X" assertions."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return "\n".join(parts)


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in card["body"]["elements"] if e.get("tag") == "button"]


def callback_values(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["value"] for button in buttons(card) for b in button["behaviors"] if b["type"] == "callback"]


def decoded(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.content)
    return body
