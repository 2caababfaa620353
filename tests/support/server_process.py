"""``python server.py`` as a real process for the tests that need one: its environment (pointed at the
fake Feishu), a free port, the wait for /health and for the bot to answer, and a SIGTERM stop (SIGKILL
only if it hangs)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu

ROOT = Path(__file__).resolve().parents[2]
# A bound on waiting for the process, not a performance claim: a loaded CI machine may be slow.
STARTUP_BOUND_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    fake: FakeFeishu
    events: EventFactory

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def wait_for_health(self) -> httpx.Response:
        deadline = time.monotonic() + STARTUP_BOUND_S
        while True:
            assert self.process.poll() is None, "server exited:\n" + "\n".join(self.log_lines()[-30:])
            try:
                return httpx.get(self.url + "/health", timeout=5)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_until_ready(self) -> None:
        """Poll with url_verification until the bot (SDK included) answers it."""
        self.wait_for_health()
        deadline = time.monotonic() + STARTUP_BOUND_S
        while True:
            headers, body = self.events.url_verification("ready?", sign=False)
            response = httpx.post(self.url + "/webhook/event", headers=headers, content=body, timeout=30)
            if response.status_code == 200:
                assert response.json() == {"challenge": "ready?"}
                return
            assert response.status_code == 503, response.text
            failed = httpx.get(self.url + "/health", timeout=5).status_code == 503
            if failed or time.monotonic() > deadline:
                tail = "\n".join(line for line in self.log_lines() if not line.startswith("import time:"))
                raise AssertionError("the bot did not become ready:\n" + tail[-3000:])
            time.sleep(0.1)


def server_env(tmp_path: Path, fake: FakeFeishu, events: EventFactory, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "FC_"))}
    env.update(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "FEISHU_APP_ID": fake.app_id,
            "FEISHU_APP_SECRET": fake.app_secret,
            "FEISHU_VERIFICATION_TOKEN": events.verification_token,
            "FEISHU_ENCRYPT_KEY": events.encrypt_key,
            "FEISHU_DOMAIN": fake.url,
            "EVENT_MODE": "webhook",
            "DATA_DIR": str(tmp_path / "data"),
            "WORK_DIR": str(tmp_path / "work"),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def running_server(
    tmp_path: Path,
    fake: FakeFeishu,
    events: EventFactory,
    *,
    python_flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready: bool = True,
) -> Iterator[ServerProcess]:
    """``python [python_flags] server.py`` on a free port, its output in ``tmp_path/server.log`` (appended:
    a test that restarts the server keeps one log). ``ready``: wait until the bot answers before yielding;
    otherwise the test does its own waiting (to look at what happens before). Stopped on the way out
    unless the test already stopped it."""
    port = free_port()
    environment = server_env(tmp_path, fake, events, port) | dict(env or {})
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, *python_flags, "server.py"],
            cwd=ROOT,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = ServerProcess(process, f"http://127.0.0.1:{port}", log_path, fake, events)
    try:
        if ready:
            running.wait_until_ready()
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
