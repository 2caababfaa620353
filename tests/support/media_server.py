"""A real HTTP server on 127.0.0.1 that serves test media and misbehaves on demand.

Routes (GET):

    /media/<name>                   a registered file, with its Content-Type and Content-Length
    /nolength/<name>                the same file with no Content-Length (the closed connection ends it)
    /trickle/<name>?chunk=B&pause=S the file in chunks of B bytes with S seconds between them
    /named/<name>?cd=VALUE          the file with ``Content-Disposition: VALUE`` (VALUE may hold any text;
                                    it is sent as UTF-8 bytes, the way careless servers do)
    /typed/<name>?type=T            the file with ``Content-Type: T``
    /html/<name>                    a registered HTML page (text/html)
    /empty                          200 with an empty body
    /status/<code>                  that status with a short text body
    /flaky/<key>?fail=N&code=C&retry_after=S
                                    the first N requests per key answer C (500), then the clip.mp4 file
    /slow?delay=S                   answers only after S seconds (for read timeouts)
    /redirect?to=URL&code=C         a redirect (302 by default) to URL
    /chain/<n>                      redirects to /chain/<n-1>, and /chain/0 serves clip.mp4

Every request is recorded (path and headers) so tests assert on what really arrived.
``ConnectLog`` records the addresses this process tries to connect to (through the ``socket.connect``
audit event), which proves that a refused address was never contacted.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Resource:
    body: bytes
    content_type: str


@dataclass
class MediaServer:
    """Start with ``MediaServer.start()``; ``close()`` stops it (slow handlers are released at once)."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    files: dict[str, _Resource] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    scheme: str = "http"

    @classmethod
    def start(cls, tls: ssl.SSLContext | None = None) -> MediaServer:
        """``tls``: a server-side context to serve https instead of http."""
        httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="media-server", daemon=True)
        server = cls(httpd=httpd, thread=thread, scheme="https" if tls else "http")
        httpd.media = server  # type: ignore[attr-defined]
        thread.start()
        return server

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_file(self, name: str, body: bytes, content_type: str = "video/mp4") -> None:
        self.files[name] = _Resource(body, content_type)

    def add_page(self, name: str, html: str) -> None:
        self.pages[name] = html

    def hits(self, path: str) -> int:
        """How many requests arrived for ``path`` (query ignored)."""
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def _record(self, request: RecordedRequest) -> int:
        with self.lock:
            self.requests.append(request)
            return sum(1 for r in self.requests if r.path == request.path)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that close a connection with unread data (a refused redirect, a web page that is
        # not read to the end) reset it; that is expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeMedia/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    @property
    def media(self) -> MediaServer:
        return self.server.media  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        count = self.media._record(RecordedRequest(path, query, {k: v for k, v in self.headers.items()}))
        head, _, rest = path.lstrip("/").partition("/")
        # The client may give up (timeouts, size caps, cancellation): that is what those tests want.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(head, rest, query, count)

    def _route(self, head: str, rest: str, query: dict[str, str], count: int) -> None:
        files = self.media.files
        if head == "media" and rest in files:
            self._send_file(files[rest])
        elif head == "nolength" and rest in files:
            self._send_file(files[rest], with_length=False)
        elif head == "trickle" and rest in files:
            self._trickle(files[rest], int(query.get("chunk", "65536")), float(query.get("pause", "0.05")))
        elif head == "named" and rest in files:
            # Raw UTF-8 in a header, as many servers send it (http.server writes headers as latin-1).
            disposition = query.get("cd", "").encode("utf-8").decode("latin-1")
            self._send_file(files[rest], extra={"Content-Disposition": disposition})
        elif head == "typed" and rest in files:
            resource = files[rest]
            self._send_file(_Resource(resource.body, query.get("type", "")))
        elif head == "html" and rest in self.media.pages:
            self._send_file(_Resource(self.media.pages[rest].encode("utf-8"), "text/html; charset=utf-8"))
        elif head == "empty":
            self._send_file(_Resource(b"", "video/mp4"))
        elif head == "status" and rest.isdigit():
            self._send_status(int(rest))
        elif head == "flaky":
            if count <= int(query.get("fail", "2")):
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                self._send_status(int(query.get("code", "500")), extra)
            else:
                self._send_file(files["clip.mp4"])
        elif head == "slow":
            if self.media.stopping.wait(float(query.get("delay", "5"))):
                return
            self._send_file(files["clip.mp4"])
        elif head == "redirect":
            self._redirect(query["to"], int(query.get("code", "302")))
        elif head == "chain" and rest.isdigit():
            n = int(rest)
            if n == 0:
                self._send_file(files["clip.mp4"])
            else:
                self._redirect(f"/chain/{n - 1}", 302)
        else:
            self._send_status(404)

    def _send_file(self, resource: _Resource, *, with_length: bool = True, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        if resource.content_type:
            self.send_header("Content-Type", resource.content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if with_length:
            self.send_header("Content-Length", str(len(resource.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(resource.body)

    def _trickle(self, resource: _Resource, chunk: int, pause: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", resource.content_type)
        self.send_header("Content-Length", str(len(resource.body)))
        self.end_headers()
        for start in range(0, len(resource.body), chunk):
            self.wfile.write(resource.body[start : start + chunk])
            self.wfile.flush()
            if self.media.stopping.wait(pause):
                return

    def _send_status(self, code: int, extra: dict[str, str] | None = None) -> None:
        body = f"{code} {HTTPStatus(code).phrase}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, code: int) -> None:
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


# --------------------------------------------------------------------------------------------------
# Connection attempts
# --------------------------------------------------------------------------------------------------


class ConnectLog:
    """Addresses this process tried to connect to while a ``recording()`` block was open."""

    _installed = False
    _active: list[list[str]] = []  # noqa: RUF012 - shared by the one audit hook
    _lock = threading.Lock()

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect" or not cls._active:
            return
        address = args[1]
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        with cls._lock:
            for log in cls._active:
                log.append(host)

    @classmethod
    @contextmanager
    def recording(cls) -> Iterator[list[str]]:
        with cls._lock:
            if not cls._installed:
                sys.addaudithook(cls._hook)  # audit hooks cannot be removed; this one is idle when unused
                cls._installed = True
            log: list[str] = []
            cls._active.append(log)
        try:
            yield log
        finally:
            with cls._lock:
                cls._active[:] = [other for other in cls._active if other is not log]


# --------------------------------------------------------------------------------------------------
# Fixtures (re-exported by tests/support/fixtures.py)
# --------------------------------------------------------------------------------------------------

PAGE_WITHOUT_VIDEO = """<!DOCTYPE html>
<html><head><title>Quarterly notes</title></head>
<body><h1>Quarterly notes</h1><p>Nothing to watch here, only text.</p></body></html>
"""

PAGE_WITH_VIDEO = """<!DOCTYPE html>
<html><head><title>Planning meeting</title></head>
<body><h1>Planning meeting</h1>
<video controls width="320" src="/media/clip.mp4"></video>
</body></html>
"""


@pytest.fixture
def media_server(speech_video: Path, random_mp4: Path) -> Iterator[MediaServer]:
    """A fresh server per test, serving ``clip.mp4`` (the ``speech_video``), ``random.mp4`` (random
    bytes), ``page.html`` (no video) and ``video-page.html`` (``<video src="/media/clip.mp4">``)."""
    server = MediaServer.start()
    server.add_file("clip.mp4", speech_video.read_bytes())
    server.add_file("random.mp4", random_mp4.read_bytes())
    server.add_page("page.html", PAGE_WITHOUT_VIDEO)
    server.add_page("video-page.html", PAGE_WITH_VIDEO)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def connect_log() -> Iterator[list[str]]:
    """Hosts this process tried to connect to during the test."""
    with ConnectLog.recording() as log:
        yield log
