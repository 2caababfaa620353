"""Graceful shutdown of a real ``python server.py``: SIGTERM while a job's first stage (its download) is
held by the test; the process exits within its bound, the job stays RUNNING with its progress saved,
the user's card says it resumes after the restart, and a second start on the same DATA_DIR resumes it
and completes it.

The job function is the real analysis (``tests.support.restart_jobs:analyze``, named by ``JOB_FUNCTION``); the
video comes from a gate server the test opens when it wants the download to go through.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.jobs import Job, JobStatus, JobStore
from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.server_process import ROOT, ServerProcess, free_port, server_env
from tests.support.webhook_harness import card_text

pytestmark = pytest.mark.slow  # real processes: python server.py started and stopped

GRACE_S = 3
# Bounds on waiting, not performance claims: the grace, the outbox drain and a slow machine.
EXIT_BOUND_S = 60.0
JOB_BOUND_S = 180.0


class GateServer:
    """Serves one video at ``/video.mp4``, but holds every request until ``release()``."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requested = threading.Event()
        self.released = threading.Event()
        self.hits = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                gate.hits += 1
                gate.requested.set()
                gate.released.wait(JOB_BOUND_S)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(gate.body)))
                    self.end_headers()
                    self.wfile.write(gate.body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/video.mp4"

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> GateServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def gate(speech_video: Path) -> Iterator[GateServer]:
    with GateServer(speech_video.read_bytes()) as server:
        yield server


def start_server(tmp_path: Path, fake: FakeFeishu, events: EventFactory, log_name: str) -> ServerProcess:
    port = free_port()
    env = server_env(tmp_path, fake, events, port)
    env.update(
        {
            "JOB_RUNNER": "local",
            "JOB_FUNCTION": "tests.support.restart_jobs:analyze",
            "SHUTDOWN_GRACE_S": str(GRACE_S),
            "ALLOW_PRIVATE_URLS": "true",  # the gate server is on loopback
            "ASR_BACKEND": "whisper",
            "SCREENSHOT_MODE": "interval:4",
            "DOWNLOAD_RETRIES": "0",
            "DOWNLOAD_READ_TIMEOUT_S": str(int(JOB_BOUND_S)),
            "MAX_CONCURRENT_JOBS": "1",
        }
    )
    log_path = tmp_path / log_name
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path, fake, events)


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=EXIT_BOUND_S)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def stored_job(data_dir: Path, job_id: str) -> Job:
    with JobStore(data_dir / "state.sqlite3") as store:
        job = store.get(job_id)
    assert job is not None
    return job


def wait_for_job(data_dir: Path, job_id: str, done: Any, timeout_s: float) -> Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = stored_job(data_dir, job_id)
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not get there within {timeout_s}s: {job}")
        time.sleep(0.1)


def test_sigterm_mid_job_exits_in_time_and_the_next_start_resumes_the_job(
    tmp_path: Path, fake_feishu: FakeFeishu, gate: GateServer
) -> None:
    events = EventFactory(app_id=fake_feishu.app_id)
    data_dir = tmp_path / "data"

    with running(start_server(tmp_path, fake_feishu, events, "first.log")) as first:
        first.wait_until_ready()
        headers, body = events.text(f"请分析 {gate.url}")
        message_id = events.payload_of(body)["event"]["message"]["message_id"]
        response = httpx.post(first.url + "/webhook/event", headers=headers, content=body, timeout=30)
        assert (response.status_code, response.json()) == (200, {"msg": "ok"})
        fake_feishu.wait_for("POST", f"/open-apis/im/v1/messages/{message_id}/reply")

        # The job's first stage is now waiting on the gate: stop the server under it.
        assert gate.requested.wait(JOB_BOUND_S), "the job never started its download"
        with JobStore(data_dir / "state.sqlite3") as store:
            (job,) = store.list(limit=None)
        running_job = wait_for_job(data_dir, job.id, lambda j: bool(j.progress.get("videos")), 30)
        assert running_job.status is JobStatus.RUNNING

        first.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM it caught once the graceful shutdown is done.
        assert first.process.wait(timeout=EXIT_BOUND_S) in (0, -signal.SIGTERM)

    lines = first.log_lines()
    assert any("resumes at the next start" in line for line in lines), "\n".join(lines[-40:])
    assert any("the bot stopped" in line for line in lines)

    # Left RUNNING with the progress it had saved: the next start takes it from there.
    interrupted = stored_job(data_dir, job.id)
    assert interrupted.status is JobStatus.RUNNING
    assert interrupted.attempts == 1
    assert interrupted.progress["videos"][0]["stage"] == "downloading"

    # The user was told, on the job's card, that it resumes after the restart.
    (card_message,) = [m for m in fake_feishu.sent_messages if m.parent_id == message_id]
    assert interrupted.card_message_id == card_message.message_id
    notices = [card for card in card_message.patches if "服务重启中" in card_text(card)]
    assert notices, [card_text(card)[:200] for card in card_message.patches]
    assert "resumes by itself after the restart" in card_text(notices[-1])

    gate.release()
    with running(start_server(tmp_path, fake_feishu, events, "second.log")) as second:
        second.wait_for_health()
        done = wait_for_job(data_dir, job.id, lambda j: j.status.terminal, JOB_BOUND_S)

    assert done.status is JobStatus.DONE, (done.error, "\n".join(second.log_lines()[-40:]))
    assert done.attempts == 2
    assert done.result["attempt"] == 2
    # The resumed run found the progress the interrupted one had saved.
    assert done.result["found_progress"]["videos"][0]["stage"] == "downloading"
    assert done.result["ok"] == 1
    assert "budget" in done.result["transcripts"][0].lower()
    assert gate.hits == 2
    assert any("1 queued job(s) submitted" in line for line in second.log_lines())
