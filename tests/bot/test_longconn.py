"""EVENT_MODE=websocket: events and card clicks arrive over the long connection the bot opens to the fake
Feishu (``tests/support/feishu/ws.py``: the endpoint call, then SDK protobuf frames on a loopback WebSocket).

The app is the real one (uvicorn on loopback, for /health and /metrics only): no test here posts an event
to it. Jobs are run by a scripted job function, so each test decides when a job ends; the end-to-end file
runs the real one (``test_e2e_long_connection.py``).
"""

from __future__ import annotations

import itertools
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.inbound.longconn import backoff_s
from pipeline.jobs import JobContext, JobOutcome, JobStatus
from tests.support import events
from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.feishu.ws import FakeLongConnection, make_frame
from tests.support.server_process import ROOT, STARTUP_BOUND_S, free_port, server_env
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, decoded, webhook_settings

RETRY_MIN_S = 0.2
RETRY_MAX_S = 0.8


class HeldJobs:
    """Holds every job until released; records each run (a job run twice shows up twice)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs: list[str] = []
        self._lock = threading.Condition()

    def __call__(self, context: JobContext) -> JobOutcome:
        with self._lock:
            self.runs.append(context.job.id)
            self._lock.notify_all()
        while not self.release.wait(0.02):
            context.cancel.raise_if_cancelled()
        return JobOutcome.done({"videos": len(context.job.spec.sources)})

    def wait_started(self, job_id: str, timeout: float = 10.0) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: job_id in self.runs, timeout), f"{job_id} never started"


def websocket_env(tmp_path: Path, fake: FakeFeishu, **overrides: Any) -> WebhookEnv:
    factory = EventFactory(app_id=fake.app_id)
    values: dict[str, Any] = {
        "event_mode": "websocket",
        # Websocket mode needs neither: the webhook refuses everything without them.
        "feishu_encrypt_key": "",
        "feishu_verification_token": "",
        "long_connection_retry_min_s": RETRY_MIN_S,
        "long_connection_retry_max_s": RETRY_MAX_S,
    }
    values.update(overrides)
    return WebhookEnv(webhook_settings(tmp_path, fake, factory, **values), fake, factory)


@pytest.fixture
def feishu_ws(fake_feishu: FakeFeishu) -> Iterator[FakeLongConnection]:
    with FakeLongConnection(fake_feishu) as server:
        yield server


@pytest.fixture
def jobs() -> HeldJobs:
    return HeldJobs()


@pytest.fixture
def app(
    tmp_path: Path, fake_feishu: FakeFeishu, feishu_ws: FakeLongConnection, jobs: HeldJobs
) -> Iterator[WebhookClient]:
    with websocket_env(tmp_path, fake_feishu).serve(job_function=jobs) as client:
        feishu_ws.wait_connected()
        try:
            yield client
        finally:
            jobs.release.set()


def text_event(app: WebhookClient, text: str, **overrides: Any) -> dict[str, Any]:
    return events.text_message(text, app_id=app.fake.app_id, **overrides)


def message_id_of(payload: dict[str, Any]) -> str:
    message_id: str = payload["event"]["message"]["message_id"]
    return message_id


def connected_health(get: Any, timeout_s: float = 10.0) -> httpx.Response:
    """``/health`` once it reports the connection up. The fake sees a connection as soon as it accepts
    the socket, a moment before the bot's side has finished its handshake and says so."""
    deadline = time.monotonic() + timeout_s
    while True:
        health: httpx.Response = get()
        if health.json().get("long_connection", {}).get("connected") is True or time.monotonic() > deadline:
            return health
        time.sleep(0.02)


# --- events and card clicks over the connection ---------------------------------------------------------


def test_a_message_and_a_card_click_arrive_over_the_long_connection(
    app: WebhookClient, feishu_ws: FakeLongConnection, jobs: HeldJobs
) -> None:
    health = connected_health(lambda: app.http.get(app.url + "/health"))
    assert health.status_code == 200
    assert health.json()["long_connection"]["connected"] is True

    payload = text_event(app, "https://v.example.com/a.mp4 任务：周会")
    frame_id = feishu_ws.send_event(payload)
    ack = feishu_ws.wait_for_ack(frame_id)
    assert ack.code == 200 and ack.answer is None
    assert "biz_rt" in ack.headers  # the SDK's handling time, as Feishu expects in an acknowledgement

    job = app.job_for(message_id_of(payload))
    assert job is not None and job.spec.options.task_name == "周会"
    jobs.wait_started(job.id)
    reply = app.reply_to(message_id_of(payload))
    assert "https://v.example.com/a.mp4" in card_text(reply.card)

    # A click: the answer (toast and card) rides back in the acknowledgement frame.
    click = events.card_action(
        value={"action": "cancel", "job_id": job.id, "creator": job.spec.creator_id}, app_id=app.fake.app_id
    )
    ack = feishu_ws.wait_for_ack(feishu_ws.send_event(click))
    assert ack.code == 200
    assert ack.answer["toast"]["type"] == "success", ack.answer
    assert app.wait_for_status(job.id, JobStatus.CANCELLED).cancel_requested

    form = feishu_ws.wait_for_ack(
        feishu_ws.send_event(events.card_action(value={"action": "open_task_form"}, app_id=app.fake.app_id))
    )
    assert "视频链接" in form.answer["toast"]["content"]

    metrics = app.metrics()
    assert "video_insight_long_connection_connects_total 1.0" in metrics
    assert 'video_insight_long_connection_events_total{event_type="im.message.receive_v1"} 1.0' in metrics
    assert 'video_insight_long_connection_events_total{event_type="card.action.trigger"} 2.0' in metrics
    assert "video_insight_long_connection_connected 1.0" in metrics
    # Nothing reached the bot over HTTP: no webhook request was refused or received.
    assert "video_insight_webhook_rejected_total{" not in metrics
    assert feishu_ws.unexpected == []


def test_someone_elses_click_is_refused_over_the_connection_too(
    app: WebhookClient, feishu_ws: FakeLongConnection, jobs: HeldJobs
) -> None:
    payload = text_event(app, "https://v.example.com/a.mp4")
    feishu_ws.wait_for_ack(feishu_ws.send_event(payload))
    job = app.job_for(message_id_of(payload))
    assert job is not None
    jobs.wait_started(job.id)
    click = events.card_action(
        value={"action": "cancel", "job_id": job.id, "creator": job.spec.creator_id},
        operator_open_id="ou_0000000000000000000000000someone",
        app_id=app.fake.app_id,
    )
    ack = feishu_ws.wait_for_ack(feishu_ws.send_event(click))
    assert "只有发起这个任务的人" in ack.answer["toast"]["content"]
    fresh = app.bot.store.get(job.id)
    assert fresh is not None and not fresh.cancel_requested


def test_the_bots_own_messages_and_other_apps_events_are_not_jobs(
    app: WebhookClient, feishu_ws: FakeLongConnection
) -> None:
    own = text_event(app, "https://v.example.com/a.mp4", sender_type="app")
    other = events.text_message("https://v.example.com/b.mp4", app_id="cli_someone_else")
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(own)).code == 200
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(other)).code == 200
    assert app.all_jobs() == []


# --- drops and redeliveries -------------------------------------------------------------------------


def test_a_drop_mid_job_reconnects_and_nothing_is_lost_or_done_twice(
    app: WebhookClient, feishu_ws: FakeLongConnection, jobs: HeldJobs
) -> None:
    payload = text_event(app, "https://v.example.com/a.mp4")
    frame_id = feishu_ws.send_event(payload)
    assert feishu_ws.wait_for_ack(frame_id).code == 200
    job = app.job_for(message_id_of(payload))
    assert job is not None
    jobs.wait_started(job.id)

    feishu_ws.drop()  # the network cuts the socket while the job runs
    feishu_ws.wait_connected(count=2)
    assert connected_health(lambda: app.http.get(app.url + "/health")).json()["long_connection"]["connected"] is True

    # Feishu may push the same delivery again on the new connection (its ack could have been lost).
    again = feishu_ws.wait_for_ack(feishu_ws.send_event(payload, message_id=frame_id), count=2)
    assert again.code == 200
    # A new message on the new connection is a new job.
    second = text_event(app, "https://v.example.com/b.mp4")
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(second)).code == 200

    jobs.release.set()
    first_done = app.wait_for_status(job.id, JobStatus.DONE)
    second_job = app.job_for(message_id_of(second))
    assert second_job is not None
    app.wait_for_status(second_job.id, JobStatus.DONE)
    app.settle()
    assert sorted(jobs.runs) == sorted([first_done.id, second_job.id])  # each ran once
    assert len(app.all_jobs()) == 2
    assert len(app.replies_to(message_id_of(payload))) == 1
    metrics = app.metrics()
    assert "video_insight_long_connection_connects_total 2.0" in metrics
    assert "video_insight_long_connection_disconnects_total 1.0" in metrics
    assert 'video_insight_webhook_duplicates_total{key="event_id"} 1.0' in metrics


def test_a_drop_mid_event_is_made_good_by_the_redelivery(
    app: WebhookClient, feishu_ws: FakeLongConnection, jobs: HeldJobs
) -> None:
    payload = text_event(app, "https://v.example.com/a.mp4")
    frame_id = feishu_ws.send_event(payload)
    feishu_ws.drop()  # straight after the frame: the bot's acknowledgement may never arrive
    feishu_ws.wait_connected(count=2)

    # Whether or not the first push was handled, Feishu pushes again what it saw no ack for; here it
    # pushes again either way (an ack lost in flight looks the same to Feishu).
    feishu_ws.send_event(payload, message_id=frame_id)
    acks = feishu_ws.wait_for_ack(frame_id)
    assert acks.code == 200
    assert feishu_ws.unacked() == []

    job = app.job_for(message_id_of(payload))
    assert job is not None
    jobs.release.set()
    app.wait_for_status(job.id, JobStatus.DONE)
    app.settle()
    assert jobs.runs == [job.id]
    assert len(app.all_jobs()) == 1
    assert len(app.replies_to(message_id_of(payload))) == 1


def test_unknown_frames_and_event_types_leave_the_connection_working(
    app: WebhookClient, feishu_ws: FakeLongConnection
) -> None:
    feishu_ws.send_raw(make_frame(7, 0, {"type": "event"}, b"?"))  # neither control (0) nor data (1)
    feishu_ws.send_raw(make_frame(1, 0, {"type": "mystery", "message_id": "m1"}, b"{}"))
    feishu_ws.send_raw(make_frame(0, 0, {}, b""))  # a control frame without a type
    feishu_ws.send_raw(make_frame(1, 0, {"type": "event", "message_id": "m2", "sum": "1", "seq": "0"}, b"{["))
    # An event type the bot never subscribed to is acknowledged, not answered 500 (that would make
    # Feishu push it again for hours), as the webhook answers it "ignored".
    chat_event = {
        "schema": "2.0",
        "header": {"event_id": "ev-chat-1", "event_type": "im.chat.updated_v1", "app_id": app.fake.app_id},
        "event": {"chat_id": "oc_1"},
    }
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(chat_event)).code == 200

    payload = text_event(app, "https://v.example.com/a.mp4")
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(payload)).code == 200
    assert app.job_for(message_id_of(payload)) is not None
    assert feishu_ws.connections == 1  # never dropped
    assert 'video_insight_long_connection_events_total{event_type="unknown"} 1.0' in app.metrics()


def test_an_event_the_bot_cannot_take_now_is_answered_500_so_feishu_pushes_it_again(
    tmp_path: Path, fake_feishu: FakeFeishu, feishu_ws: FakeLongConnection
) -> None:
    env = websocket_env(tmp_path, fake_feishu)
    with env.serve() as client:
        feishu_ws.wait_connected()
        client.bot.store.close()  # the job store is gone: the message cannot be recorded
        payload = text_event(client, "https://v.example.com/a.mp4")
        ack = feishu_ws.wait_for_ack(feishu_ws.send_event(payload))
        assert ack.code == 500
        assert [s.message_id for s in feishu_ws.unacked()] == [ack.message_id]


# --- refused connections ------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal_status", [200, 400])
def test_a_refused_connection_is_reported_and_retried_at_the_backoffs_pace(
    tmp_path: Path, fake_feishu: FakeFeishu, refusal_status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.inbound.longconn")
    with FakeLongConnection(fake_feishu, refusal_status=refusal_status) as feishu_ws:
        env = websocket_env(tmp_path, fake_feishu, feishu_app_secret="not-the-secret")
        with env.serve() as client:
            fake_feishu.wait_for("POST", "/callback/ws/endpoint", count=3, timeout=30)
            health = client.http.get(client.url + "/health")
            assert health.status_code == 503
            state = health.json()["long_connection"]
            assert health.json()["status"] == "not_ready" and state["connected"] is False
            assert "FEISHU_APP_SECRET" in state["last_error"]
            assert "not-the-secret" not in health.text
            assert 'video_insight_long_connection_failures_total{kind="refused"}' in client.metrics()
        calls = [rec.at for rec in feishu_ws.endpoint_calls()]
        assert feishu_ws.connections == 0
    # Each wait is at least the backoff for the failures before it: never a tight loop.
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert len(gaps) >= 2
    for failures, gap in enumerate(gaps):
        assert gap >= backoff_s(failures, RETRY_MIN_S, RETRY_MAX_S) * 0.95, (failures, gaps)
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("Feishu refused the long connection" in m and "FEISHU_APP_SECRET" in m for m in refusals)
    assert all("not-the-secret" not in r.getMessage() for r in caplog.records)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 1.0, 60.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(10_000, 1.0, 60.0) == 60


# --- the webhook in websocket mode, and stopping ---------------------------------------------------------


def test_the_webhook_refuses_every_event_without_encrypt_key_and_token(
    app: WebhookClient, feishu_ws: FakeLongConnection
) -> None:
    plain = EventFactory(app_id=app.fake.app_id, encrypt_key="")
    for request in (plain.url_verification("x"), plain.text("https://v.example.com/a.mp4")):
        response = app.send(request)
        assert (response.status_code, decoded(response)["error"]) == (403, "webhook_not_configured")
    assert app.all_jobs() == []


def test_stopping_the_app_closes_the_connection(
    tmp_path: Path, fake_feishu: FakeFeishu, feishu_ws: FakeLongConnection
) -> None:
    with websocket_env(tmp_path, fake_feishu).serve() as client:
        feishu_ws.wait_connected()
        state = client.bot.long_connection
        assert state is not None
    feishu_ws.wait_closed(timeout=15)
    assert state.state().connected is False
    assert feishu_ws.connections == 1  # stopped, not reconnected


@pytest.mark.slow
def test_the_real_process_needs_no_webhook_secrets_and_stops_cleanly_on_sigterm(
    tmp_path: Path, fake_feishu: FakeFeishu, feishu_ws: FakeLongConnection
) -> None:
    env = server_env(tmp_path, fake_feishu, EventFactory(app_id=fake_feishu.app_id), free_port())
    for webhook_only in ("FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY", "EVENT_MODE"):
        del env[webhook_only]  # websocket is the default, and it needs neither secret
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        feishu_ws.wait_connected(timeout=STARTUP_BOUND_S)
        url = f"http://{env['HOST']}:{env['PORT']}"
        health = connected_health(lambda: httpx.get(url + "/health", timeout=5))
        assert health.status_code == 200 and health.json()["long_connection"]["connected"] is True

        payload = events.text_message("https://v.example.com/a.mp4", app_id=fake_feishu.app_id)
        assert feishu_ws.wait_for_ack(feishu_ws.send_event(payload), timeout=30).code == 200
        fake_feishu.wait_for("POST", f"/open-apis/im/v1/messages/{message_id_of(payload)}/reply", timeout=30)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        feishu_ws.wait_closed(timeout=5)
        assert feishu_ws.connections == 1
        log = log_path.read_text(errors="replace")
        assert "the bot stopped" in log
        assert fake_feishu.app_secret not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
