"""``python server.py`` closes connections that do not send their request in time, over raw sockets:
one that sends nothing, one that trickles its headers, one whose Content-Length promises more than it
sends. Each gets a 408 and a closed connection within the configured deadline (defaults: 5 s for the
head, 10 s for the body), while a client that is slow but in time is still answered."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.slow

HEADER_S = Settings.model_fields["http_header_timeout_s"].default
BODY_S = Settings.model_fields["http_body_timeout_s"].default
# A bound on noticing the close, not a performance claim: a loaded machine may be slow to schedule.
SLACK_S = 4.0


@pytest.fixture
def server(tmp_path: Path, fake_feishu: FakeFeishu) -> Iterator[ServerProcess]:
    with running_server(tmp_path, fake_feishu, EventFactory(app_id=fake_feishu.app_id)) as running:
        yield running


class RawClient:
    """One TCP connection; ``answer`` collects what the server sends until it closes (or ``give_up_s``)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.opened = time.monotonic()
        self.received = b""
        self.closed_after: float | None = None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, give_up_s: float) -> bytes:
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_after = time.monotonic() - self.opened
                break
            self.received += data
        self.sock.close()
        return self.received


def test_idle_trickling_and_lying_clients_are_answered_408_and_closed(server: ServerProcess) -> None:
    silent = RawClient(server.url)

    trickling = RawClient(server.url)
    head = b"POST /webhook/event HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
    stop = threading.Event()

    def trickle() -> None:
        for byte in head:  # one byte every half second: the head never completes in time
            if stop.wait(0.5):
                return
            try:
                trickling.send(bytes([byte]))
            except OSError:
                return

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()

    lying = RawClient(server.url)
    lying.send(
        b"POST /webhook/event HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"schema": "2.0"'
    )

    try:
        for client, bound in ((silent, HEADER_S), (trickling, HEADER_S), (lying, BODY_S)):
            answer = client.answer(give_up_s=bound + SLACK_S + 20)
            assert client.closed_after is not None, f"still open after {bound + SLACK_S + 20:.0f} s: {answer!r}"
            assert client.closed_after <= bound + SLACK_S, f"closed only after {client.closed_after:.1f} s"
            assert answer.startswith(b"HTTP/1.1 408"), answer
            print(f"closed after {client.closed_after:.2f} s (deadline {bound:g} s)")
    finally:
        stop.set()

    # The server is fine afterwards, and nothing was logged as an error.
    assert server.wait_for_health().status_code == 200
    log = "\n".join(server.log_lines())
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_slow_client_within_the_deadlines_is_answered(server: ServerProcess) -> None:
    headers, body = server.events.url_verification("slow-but-fine", sign=False)
    client = RawClient(server.url)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    client.send(f"POST /webhook/event HTTP/1.1\r\nHost: bot\r\n{head}Content-Length: {len(body)}\r\n".encode())
    time.sleep(1.0)
    client.send(b"Connection: close\r\n\r\n" + body[:10])
    time.sleep(1.0)
    client.send(body[10:])
    answer = client.answer(give_up_s=30)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"challenge":"slow-but-fine"' in answer
