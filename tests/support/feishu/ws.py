"""Feishu's long-connection side, faked on loopback: the endpoint call and a WebSocket speaking SDK frames.

    with FakeLongConnection(fake) as feishu_ws:       # adds POST /callback/ws/endpoint to ``fake``
        feishu_ws.wait_connected()
        message_id = feishu_ws.send_event(payload)     # an event frame, as Feishu pushes it
        ack = feishu_ws.wait_for_ack(message_id)       # the bot's acknowledgement frame
        feishu_ws.drop()                               # the network cuts the socket (no close frame)

What it follows (lark_oapi 1.7.5 ``ws/client.py`` and the protobuf ``ws/pb/pbbp2.proto`` types):

* ``POST /callback/ws/endpoint`` with ``{"AppID", "AppSecret"}`` answers ``{"code": 0, "data": {"URL",
  "ClientConfig"}}``; the URL carries ``device_id`` and ``service_id`` (the SDK reads both) and a ticket
  this server checks at the handshake. Wrong credentials get a non-zero code (the SDK raises its
  ``ClientException``) or, with ``refusal_status=400``, an HTTP 400.
* Frames are ``pbbp2.Frame``: ``method`` 0 = control (``type`` header ``ping``/``pong``), 1 = data
  (``type`` ``event``; headers ``message_id``, ``trace_id``, ``sum``, ``seq``). A ping is answered with a
  pong carrying the client config. The client acknowledges a data frame by sending it back with its
  payload replaced by ``{"code": 200|500, "data": base64(JSON answer)}`` and a ``biz_rt`` header.
* An event not acknowledged when the socket closes is Feishu's to push again: ``unacked()`` lists them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.support.feishu import FakeFeishu, RecordedRequest, _Reply

ENDPOINT_PATH = "/callback/ws/endpoint"
CONTROL, DATA = 0, 1


@dataclass
class Ack:
    """The bot's acknowledgement of one data frame."""

    message_id: str
    code: int  # 200, or 500 when the bot failed to handle it (Feishu pushes it again)
    answer: Any  # the JSON the bot returned (a card callback's toast and card), None for plain events
    headers: dict[str, str]
    received_at: float  # time.perf_counter()


@dataclass
class Sent:
    message_id: str
    payload: dict[str, Any]
    sent_at: float  # time.perf_counter() just before the frame went out
    connection: int  # which connection (1-based) carried it


@dataclass
class _Conn:
    number: int
    socket: ServerConnection
    service_id: int
    closed: threading.Event = field(default_factory=threading.Event)


class FakeLongConnection:
    def __init__(
        self,
        fake: FakeFeishu,
        *,
        ping_interval_s: int = 120,
        reconnect_interval_s: int = 120,
        refusal_status: int = 200,
    ) -> None:
        self.fake = fake
        self.ping_interval_s = ping_interval_s
        self.reconnect_interval_s = reconnect_interval_s
        self.refusal_status = refusal_status
        self.connections = 0
        self.pings = 0
        self.sent: dict[str, Sent] = {}
        self.acks: dict[str, list[Ack]] = {}
        self.unexpected: list[str] = []  # frames from the client this fake did not expect
        self._tickets: set[str] = set()
        self._current: _Conn | None = None
        self._lock = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeLongConnection:
        self._server = serve(self._serve_connection, "127.0.0.1", 0, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-feishu-ws", daemon=True)
        self._thread.start()
        self.fake.add_route("POST", rf"^{ENDPOINT_PATH}$", self._endpoint)
        return self

    def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLongConnection:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.socket.getsockname()[1]
        return port

    # ---- the endpoint call -----------------------------------------------------------------------

    def endpoint_calls(self) -> list[RecordedRequest]:
        return self.fake.find("POST", ENDPOINT_PATH)

    def _endpoint(self, rec: RecordedRequest) -> _Reply:
        body = rec.json if isinstance(rec.json, dict) else {}
        if body.get("AppID") != self.fake.app_id or body.get("AppSecret") != self.fake.app_secret:
            return self.fake._json(self.refusal_status, {"code": 10014, "msg": "app secret invalid", "data": {}})
        ticket = secrets.token_hex(8)
        with self._lock:
            self._tickets.add(ticket)
        service_id = 1000 + len(self._tickets)
        url = (
            f"ws://127.0.0.1:{self.port}/ws?device_id=dev-{ticket}&service_id={service_id}"
            f"&access_key={secrets.token_hex(8)}&ticket={ticket}"
        )
        return self.fake._ok({"URL": url, "ClientConfig": self._client_config()})

    def _client_config(self) -> dict[str, int]:
        return {
            "ReconnectCount": -1,
            "ReconnectInterval": self.reconnect_interval_s,
            "ReconnectNonce": 0,
            "PingInterval": self.ping_interval_s,
        }

    # ---- the socket ------------------------------------------------------------------------------

    def _serve_connection(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._lock:
            if ticket not in self._tickets:
                ws.close(1008, "bad ticket")
                return
            self._tickets.discard(ticket)  # one handshake per ticket
            self.connections += 1
            conn = _Conn(self.connections, ws, int((query.get("service_id") or ["0"])[0]))
            self._current = conn
            self._lock.notify_all()
        try:
            for raw in ws:
                self._on_frame(conn, raw if isinstance(raw, bytes) else raw.encode())
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                conn.closed.set()
                if self._current is conn:
                    self._current = None
                self._lock.notify_all()

    def _on_frame(self, conn: _Conn, raw: bytes) -> None:
        frame = Frame()
        frame.ParseFromString(raw)
        headers = {h.key: h.value for h in frame.headers}
        if frame.method == CONTROL and headers.get("type") == "ping":
            with self._lock:
                self.pings += 1
            pong = make_frame(CONTROL, conn.service_id, {"type": "pong"}, json.dumps(self._client_config()).encode())
            conn.socket.send(pong.SerializeToString())
            return
        if frame.method == DATA and "message_id" in headers:
            received_at = time.perf_counter()
            response = json.loads(frame.payload)
            data = response.get("data")
            answer = json.loads(base64.b64decode(data)) if data else None
            ack = Ack(headers["message_id"], int(response.get("code", 0)), answer, headers, received_at)
            with self._lock:
                self.acks.setdefault(ack.message_id, []).append(ack)
                self._lock.notify_all()
            return
        with self._lock:
            self.unexpected.append(repr(headers))

    # ---- what a test does ------------------------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` connections have been made in all and one is open."""
        with self._lock:
            ok = self._lock.wait_for(lambda: self.connections >= count and self._current is not None, timeout)
        if not ok:
            raise AssertionError(f"{self.connections} connection(s) made within {timeout}s, wanted {count} open")

    def send_event(self, payload: dict[str, Any], message_id: str | None = None) -> str:
        """Push an event (or card callback) down the open connection, as Feishu does; ``message_id``
        again to push the same delivery once more (Feishu's redelivery keeps the event's own ids)."""
        message_id = message_id or "msg-" + secrets.token_hex(8)
        with self._lock:
            conn = self._current
            if conn is None:
                raise AssertionError("no open long connection to send on")
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {
            "type": "event",
            "message_id": message_id,
            "trace_id": secrets.token_hex(8),
            "sum": "1",
            "seq": "0",
        }
        frame = make_frame(DATA, conn.service_id, headers, body)
        sent_at = time.perf_counter()
        with self._lock:
            self.sent[message_id] = Sent(message_id, payload, sent_at, conn.number)
        conn.socket.send(frame.SerializeToString())
        return message_id

    def send_raw(self, frame: Frame) -> None:
        with self._lock:
            conn = self._current
        if conn is None:
            raise AssertionError("no open long connection to send on")
        frame.service = conn.service_id
        conn.socket.send(frame.SerializeToString())

    def wait_for_ack(self, message_id: str, timeout: float = 10.0, count: int = 1) -> Ack:
        with self._lock:
            ok = self._lock.wait_for(lambda: len(self.acks.get(message_id, ())) >= count, timeout)
            if not ok:
                raise AssertionError(f"no acknowledgement of {message_id} within {timeout}s")
            return self.acks[message_id][count - 1]

    def unacked(self) -> list[Sent]:
        """Events pushed that the bot never acknowledged with a 200: Feishu pushes these again."""
        with self._lock:
            return [s for m, s in self.sent.items() if not any(a.code == 200 for a in self.acks.get(m, ()))]

    def drop(self) -> None:
        """Cut the open connection as a network failure would: no close frame, the socket just ends."""
        with self._lock:
            conn = self._current
        if conn is None:
            return
        sock = conn.socket.socket
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        conn.closed.wait(5)

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until no connection is open (the client closed it, or it was dropped)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._current is None, timeout):
                raise AssertionError(f"the long connection is still open after {timeout}s")


def make_frame(method: int, service_id: int, headers: dict[str, str], payload: bytes) -> Frame:
    frame = Frame()
    frame.SeqID = 0
    frame.LogID = 0
    frame.service = service_id
    frame.method = method
    for key, value in headers.items():
        header = frame.headers.add()
        header.key = key
        header.value = value
    frame.payload = payload
    return frame
