"""A stand-in for Function Compute's front: a real HTTP server on loopback that takes asynchronous
invocations like FC does and replays them to the bot, and serves the StopAsyncTask API.

Asynchronous invocations (any path, header ``X-Fc-Invocation-Type: Async``):

* the request is recorded (path, headers, body) and answered 202 at once, with an ``x-fc-request-id``;
* a body over 128 KB is refused (400), as FC refuses it;
* task mode: a second invocation with an ``X-Fc-Async-Task-Id`` already seen is refused with 409;
* then, in a thread (as FC would, later, on some instance), the same request is POSTed to
  ``target + path`` with FC's per-request headers added: temporary credentials
  (``x-fc-access-key-id`` / ``-secret`` / ``x-fc-security-token``), ``x-fc-account-id``, ``x-fc-region``,
  ``x-fc-function-name``, ``x-fc-request-id``. The answer is recorded on the invocation and the task ends
  ``Succeeded`` (2xx) or ``Failed``.

StopAsyncTask (``PUT /2023-03-30/functions/{name}/async-tasks/{task_id}/stop``), as the official SDK
sends it: the ACS3-HMAC-SHA256 signature is checked against the credentials this front hands out (403
when it does not match), then 404 for an unknown task, 400 for one that already ended, 200 and the task
``Stopped`` for one still running. The replayed request is not interrupted (nothing here can stop a
thread of the bot): tests hold their job function until they have checked what the stop did.

Fault injection: ``fail(status, times)`` answers the next invocations with ``status`` (no replay);
``close()`` stops the server, so connections are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

MAX_ASYNC_BODY_BYTES = 128 * 1024
STOP_PATH_PREFIX = "/2023-03-30/functions/"
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "x-fc-invocation-type"}


@dataclass
class Invocation:
    """One asynchronous invocation as the front received it, and what the replay got back."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the front answered the caller
    task_id: str | None = None
    request_id: str = ""
    replay_status: int | None = None
    replay_body: Any = None
    replayed: threading.Event = field(default_factory=threading.Event)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class StopCall:
    function_name: str
    task_id: str
    query: dict[str, str]
    access_key_id: str
    security_token: str
    signature_valid: bool
    status: int


class FakeFcFront:
    def __init__(
        self,
        *,
        function_name: str = "video-insight-bot",
        region: str = "cn-hangzhou",
        account_id: str = "1234567890123456",
        replay_timeout_s: float = 120.0,
    ) -> None:
        self.function_name = function_name
        self.region = region
        self.account_id = account_id
        # The temporary credentials this front "issues" with every replayed request.
        self.access_key_id = "STS." + secrets.token_hex(8)
        self.access_key_secret = secrets.token_hex(16)
        self.security_token = "CAIS" + secrets.token_hex(24)
        self.target: str | None = None
        self.invocations: list[Invocation] = []
        self.stops: list[StopCall] = []
        self.task_states: dict[str, str] = {}
        self._replay_timeout_s = replay_timeout_s
        self._faults: list[int] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._serve = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fc-front", daemon=True)
        self._closed = False

    # --- control --------------------------------------------------------------------------------------

    def start(self) -> FakeFcFront:
        self._serve.start()
        return self

    def close(self) -> None:
        """Stop listening: from now on connections are refused."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._serve.join(timeout=5)

    def join_replays(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FakeFcFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.join_replays()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def route_to(self, target_url: str) -> None:
        """Where accepted invocations are replayed (the bot's base URL)."""
        self.target = target_url.rstrip("/")

    def forwarded_headers(self, request_id: str | None = None) -> dict[str, str]:
        """The headers FC adds to every request it forwards to the container (the HTTP trigger's
        webhooks from Feishu as well as the replayed invocations)."""
        return {
            "x-fc-request-id": request_id or secrets.token_hex(16),
            "x-fc-access-key-id": self.access_key_id,
            "x-fc-access-key-secret": self.access_key_secret,
            "x-fc-security-token": self.security_token,
            "x-fc-account-id": self.account_id,
            "x-fc-region": self.region,
            "x-fc-function-name": self.function_name,
            "x-fc-qualifier": "LATEST",
        }

    def fail(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` invocations with ``status`` and do not replay them."""
        with self._lock:
            self._faults.extend([status] * times)

    def wait_for_invocations(self, count: int, timeout_s: float = 10.0) -> list[Invocation]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.invocations) >= count, timeout_s):
                raise AssertionError(f"{len(self.invocations)} invocation(s) after {timeout_s}s, expected {count}")
            return list(self.invocations)

    def wait_for_replay(self, invocation: Invocation, timeout_s: float = 60.0) -> Invocation:
        if not invocation.replayed.wait(timeout_s):
            raise AssertionError(f"the replay of task {invocation.task_id} did not end within {timeout_s}s")
        return invocation

    # --- asynchronous invocations ---------------------------------------------------------------------

    def _invoke(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        request_id = secrets.token_hex(16)
        task_id = headers.get("x-fc-async-task-id")
        with self._changed:
            if self._faults:
                status = self._faults.pop(0)
                self.invocations.append(Invocation(path, headers, body, status, task_id, request_id))
                self._changed.notify_all()
                return status, {}, _error_body("ServiceUnavailable" if status >= 500 else "Refused", "injected fault")
            if len(body) > MAX_ASYNC_BODY_BYTES:
                status = 400
                self.invocations.append(Invocation(path, headers, body, status, task_id, request_id))
                self._changed.notify_all()
                return status, {}, _error_body("InvalidArgument", "the body of an async invocation is over 128 KB")
            if task_id is not None and task_id in self.task_states:
                self.invocations.append(Invocation(path, headers, body, 409, task_id, request_id))
                self._changed.notify_all()
                return 409, {}, _error_body("AsyncTaskAlreadyExists", f"task {task_id} already exists")
            invocation = Invocation(path, headers, body, 202, task_id, request_id)
            self.invocations.append(invocation)
            if task_id is not None:
                self.task_states[task_id] = "Running"
            self._changed.notify_all()
        thread = threading.Thread(target=self._replay, args=(invocation,), name="fc-front-replay", daemon=True)
        self._threads.append(thread)
        thread.start()
        return 202, {"x-fc-request-id": request_id}, b""

    def _replay(self, invocation: Invocation) -> None:
        try:
            if self.target is None:
                raise RuntimeError("FakeFcFront.route_to() was not called")
            headers = {k: v for k, v in invocation.headers.items() if k not in _HOP_BY_HOP}
            headers.update(self.forwarded_headers(invocation.request_id))
            response = httpx.post(
                self.target + invocation.path, headers=headers, content=invocation.body, timeout=self._replay_timeout_s
            )
            invocation.replay_status = response.status_code
            try:
                invocation.replay_body = response.json()
            except ValueError:
                invocation.replay_body = response.text
        except Exception as exc:  # the replay's failure is a result to assert on, not a crash
            invocation.replay_status = -1
            invocation.replay_body = f"{type(exc).__name__}: {exc}"
        finally:
            with self._changed:
                if invocation.task_id is not None and self.task_states.get(invocation.task_id) == "Running":
                    ok = invocation.replay_status is not None and 200 <= invocation.replay_status < 300
                    self.task_states[invocation.task_id] = "Succeeded" if ok else "Failed"
                self._changed.notify_all()
            invocation.replayed.set()

    # --- StopAsyncTask ----------------------------------------------------------------------------------

    def _stop(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        split = urlsplit(raw_path)
        parts = split.path.split("/")
        # ['', '2023-03-30', 'functions', name, 'async-tasks', task_id, 'stop']
        if method != "PUT" or len(parts) != 7 or parts[4] != "async-tasks" or parts[6] != "stop":
            return 404, _error_body("NotFound", f"no API at {method} {split.path}")
        function_name, task_id = parts[3], parts[5]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        valid = self._signature_valid(method, split.path, query, headers, body)
        with self._changed:
            if not valid:
                status, answer = 403, _error_body("InvalidSignature", "the request signature does not match")
            elif function_name != self.function_name or task_id not in self.task_states:
                status, answer = 404, _error_body("AsyncTaskNotFound", f"task {task_id} does not exist")
            elif self.task_states[task_id] != "Running":
                status, answer = 400, _error_body("AsyncTaskNotRunning", f"task {task_id} already ended")
            else:
                self.task_states[task_id] = "Stopped"
                status, answer = 200, b""
            self.stops.append(
                StopCall(
                    function_name=function_name,
                    task_id=task_id,
                    query=query,
                    access_key_id=headers.get("x-acs-accesskey-id", ""),
                    security_token=headers.get("x-acs-security-token", ""),
                    signature_valid=valid,
                    status=status,
                )
            )
            self._changed.notify_all()
        return status, answer

    def _signature_valid(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> bool:
        """Alibaba Cloud's V3 request signature (ACS3-HMAC-SHA256), recomputed from what arrived."""
        authorization = headers.get("authorization", "")
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
        if algorithm != "ACS3-HMAC-SHA256" or fields.get("Credential") != self.access_key_id:
            return False
        if headers.get("x-acs-security-token") != self.security_token:
            return False
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            return False
        signed = fields.get("SignedHeaders", "").split(";")
        if not signed or any(name not in headers for name in signed):
            return False
        canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query.items()))
        canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
        canonical_request = "\n".join(
            [method, path, canonical_query, canonical_headers, ";".join(signed), payload_hash]
        )
        string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
        expected = hmac.new(self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields.get("Signature", ""))

    def stops_of(self, task_id: str) -> Iterator[StopCall]:
        return (stop for stop in list(self.stops) if stop.task_id == task_id)


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"Code": code, "Message": message, "RequestId": secrets.token_hex(8)}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is not the test's concern


def _handler_for(front: FakeFcFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            if self.path.startswith(STOP_PATH_PREFIX):
                status, answer = front._stop(self.command, self.path, headers, body)
                extra: dict[str, str] = {}
            elif headers.get("x-fc-invocation-type", "").lower() == "async":
                status, extra, answer = front._invoke(urlsplit(self.path).path, headers, body)
            else:
                status, extra, answer = 400, {}, _error_body("Unsupported", "only async invocations are faked")
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if answer:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            # One request per connection, so that after close() every call is refused at once.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(answer)

        do_POST = _serve
        do_PUT = _serve
        do_GET = _serve

    return Handler
