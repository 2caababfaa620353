"""Deadlines on reading an HTTP request, which uvicorn does not have (it only closes idle keep-alives).

A client that connects and sends nothing, trickles its headers, or promises a Content-Length it never sends
would otherwise hold a connection (and the request's ASGI task) as long as it likes. ``read_deadline_protocol``
makes the uvicorn HTTP protocol class the server runs with (``uvicorn.run(http=...)``), its deadlines taken
from the settings (HTTP_HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_BODY = b'{"error":"request_timeout","message":"the request was not received in time"}'


class ReadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with deadlines on reading a request, which uvicorn does not have.

    uvicorn closes idle keep-alive connections, but a connection that sends nothing after connecting,
    trickles its headers, or promises a Content-Length it never sends is held (and the request's ASGI
    task with it) for as long as the client likes. Here the request head must be complete within
    ``header_timeout_s`` of the connection or of its first byte, and the body within ``body_timeout_s``
    of the head; otherwise the client gets a 408 (when no answer was started) and the connection is
    closed. ``with_deadlines`` makes the subclass uvicorn is given (``http=``)."""

    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    _read_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_deadlines(cls, header_timeout_s: float, body_timeout_s: float) -> type[ReadDeadlineProtocol]:
        return type(
            "ReadDeadlineProtocol", (cls,), {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s}
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # whatever the app sends later goes nowhere
                cycle.message_event.set()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + b"content-length: %d\r\n\r\n" % len(REQUEST_TIMEOUT_BODY)
                + REQUEST_TIMEOUT_BODY
            )
        log.info("closed a connection that did not send its request in time")
        self.transport.close()


def read_deadline_protocol(settings: Settings) -> type[ReadDeadlineProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with the deadlines of ``settings``."""
    return ReadDeadlineProtocol.with_deadlines(settings.http_header_timeout_s, settings.http_body_timeout_s)
