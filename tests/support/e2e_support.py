"""End-to-end scenarios: the real app (uvicorn on loopback) with the PRODUCTION job function, the fake
Feishu, the media server, real ffmpeg and Whisper tiny.en.

    def test_x(e2e: E2EApp, short_clip_url: str) -> None:
        message_id, job = e2e.send_text(f"{short_clip_url}")
        job = e2e.wait_done(job.id)

The fixtures are registered for every test by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.jobs import Job, JobStatus
from tests.support import media
from tests.support.events import EventFactory
from tests.support.feishu import FakeApp, FakeFeishu, FakeMessage
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, webhook_settings

# Five seconds of speech: short enough to keep the suite fast, words Whisper tiny.en gets right.
SHORT_SENTENCES = ("Welcome to the planning meeting.", "We review the budget today.")
SHORT_KEYWORDS = ("meeting", "budget")
JOB_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    """A 5 s, 320x240 video with two scenes and the short speech as AAC audio."""
    wav = media.speech_wav(media_dir / "short-speech.wav", SHORT_SENTENCES)
    return media.video(media_dir / "short.mp4", duration_s=5.0, scenes=("testsrc2", "navy"), audio=wav)


@pytest.fixture
def short_clip_url(media_server: MediaServer, short_clip: Path) -> str:
    media_server.add_file("short.mp4", short_clip.read_bytes())
    return media_server.url("/media/short.mp4")


def e2e_settings_overrides() -> dict[str, Any]:
    return {
        "allow_private_urls": True,  # the media server is on loopback
        "asr_backend": "whisper",
        "download_retries": 0,
        "download_read_timeout_s": 10,
        "max_concurrent_jobs": 1,
        "screenshot_mode": "interval:2",
    }


@dataclass
class E2EEnv:
    """What outlives one app instance (DATA_DIR, the fake Feishu), for restart scenarios."""

    webhook_env: WebhookEnv

    @contextmanager
    def serve(self, **overrides: Any) -> Iterator[E2EApp]:
        # job_function=None: build_bot makes the production one (bot.job.delivery).
        with self.webhook_env.serve(job_function=None, **overrides) as client:
            yield E2EApp(client)


@pytest.fixture
def e2e_env(tmp_path: Path, fake_feishu: FakeFeishu) -> E2EEnv:
    events = EventFactory(app_id=fake_feishu.app_id)
    settings = webhook_settings(tmp_path, fake_feishu, events, **e2e_settings_overrides())
    return E2EEnv(WebhookEnv(settings, fake_feishu, events))


@pytest.fixture
def e2e(e2e_env: E2EEnv) -> Iterator[E2EApp]:
    with e2e_env.serve() as app:
        yield app


@dataclass
class E2EApp:
    client: WebhookClient

    @property
    def fake(self) -> FakeFeishu:
        return self.client.fake

    @property
    def events(self) -> EventFactory:
        return self.client.events

    @property
    def work_dir(self) -> Path:
        return self.client.bot.settings.work_dir

    def send(self, request: tuple[dict[str, str], bytes]) -> tuple[str, Job]:
        """Send a message event; return its message id and the job it queued."""
        response = self.client.send(request)
        assert response.status_code == 200, response.text
        message_id = self.client.message_id_of(request)
        job = self.client.job_for(message_id)
        assert job is not None, f"no job for {message_id}: {response.text}"
        return message_id, job

    def send_text(self, text: str, **overrides: Any) -> tuple[str, Job]:
        return self.send(self.events.text(text, **overrides))

    def wait_status(self, job_id: str, status: JobStatus, timeout: float = JOB_TIMEOUT_S) -> Job:
        return self.client.wait_for_status(job_id, status, timeout)

    def wait_finished(self, job_id: str, timeout: float = JOB_TIMEOUT_S) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.bot.store.get(job_id)
            if job is not None and job.status.terminal:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not finish within {timeout}s: {job}")
            time.sleep(0.05)

    def wait_progress(self, job_id: str, predicate: Any, timeout: float = JOB_TIMEOUT_S) -> Job:
        """Until the job's saved progress record satisfies ``predicate(progress_dict)``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.bot.store.get(job_id)
            if job is not None and predicate(job.progress):
                return job
            if job is not None and job.status.terminal:
                raise AssertionError(f"job {job_id} ended ({job.status.value}) before the expected progress")
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id}: expected progress not reached within {timeout}s")
            time.sleep(0.02)

    def card_message(self, job: Job) -> FakeMessage:
        fresh = self.client.bot.store.get(job.id)
        assert fresh is not None and fresh.card_message_id, f"job {job.id} has no card"
        return self.fake.message(fresh.card_message_id)

    def wait_card(self, job: Job, text: str, timeout: float = 30.0) -> dict[str, Any]:
        """Until the job's card on screen mentions ``text``; the card."""
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.client.bot.store.get(job.id)
            if fresh is not None and fresh.card_message_id:
                card = self.fake.message(fresh.card_message_id).card
                if text in card_text(card):
                    return card
            if time.monotonic() > deadline:
                raise AssertionError(f"the card of job {job.id} never said {text!r}")
            time.sleep(0.02)

    def settle_cards(self, timeout: float = 10.0) -> None:
        updater = self.client.bot.card_updater
        assert updater is not None
        deadline = time.monotonic() + timeout
        while updater.pending():
            assert time.monotonic() < deadline, "card updates still pending"
            time.sleep(0.02)
        self.client.settle(timeout)

    def bases_owned_by(self, open_id: str) -> list[FakeApp]:
        return [app for app in self.fake.apps.values() if app.owner.get("member_id") == open_id]

    def work_dir_entries(self) -> list[Path]:
        return sorted(self.work_dir.iterdir()) if self.work_dir.exists() else []


def results_table(fake: FakeFeishu, app: FakeApp) -> list[dict[str, Any]]:
    """The rows of the results table of a Base the bot made (its only table)."""
    (table,) = app.tables.values()
    return table.rows()


def cell_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("text") or value.get("link") or "")
    if isinstance(value, list):
        return "".join(cell_text(v) for v in value)
    return "" if value is None else str(value)


def card_header(card: dict[str, Any]) -> str:
    return str(card["header"]["title"]["content"])


def stage_lines(card: dict[str, Any]) -> list[str]:
    """The lines of the card's stage list (the markdown element that starts with the queued line)."""
    for element in card["body"]["elements"]:
        if element.get("tag") == "markdown" and "已排队 / Queued" in element["content"]:
            return [line for line in element["content"].split("\n") if line.strip()]
    return []


def open_url(card: dict[str, Any]) -> str | None:
    for element in card["body"]["elements"]:
        for behavior in element.get("behaviors", []) if element.get("tag") == "button" else []:
            if behavior.get("type") == "open_url":
                return str(behavior["default_url"])
    return None


def card_size(card: dict[str, Any]) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


def first_index(history: list[dict[str, Any]], pattern: str) -> int:
    """Index of the first card in ``history`` whose text matches ``pattern`` (regex); -1 if none."""
    compiled = re.compile(pattern)
    for index, card in enumerate(history):
        if compiled.search(card_text(card)):
            return index
    return -1
