"""A fake OpenAI-compatible endpoint on loopback: ``POST /v1/chat/completions`` as the OpenAI API
documents it (``messages`` with text and ``image_url`` content parts, ``response_format`` JSON mode,
``usage`` counts, errors as ``{"error": {...}}`` with the documented status codes).

It records every request, answers from what it was sent (so tests can tell that an answer came from
this fake and which transcript line it cites), and injects faults on demand: 429 with Retry-After,
500, slow answers, invalid JSON, refusals; 401 for a wrong key; 404 for an unknown model.

    with FakeOpenAI(api_key="k", models={"text-model", "vision-model"}) as fake:
        fake.faults += [Fault.status_code(429, retry_after=1)]
        ... LLM_BASE_URL=fake.base_url ...
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_LINE = re.compile(r"^\[(\d+:\d{2}(?::\d{2})?)\] (.+)$", re.MULTILINE)
_SHOT = re.compile(r"^Screenshot (\d+) at \[([\d:]+)\]", re.MULTILINE)
_CHAPTER_LINE = re.compile(r"^Chapter \[([\d:]+)\] ([^:]+):", re.MULTILINE)


@dataclass
class Fault:
    """What the next request gets instead of a normal answer (consumed in order)."""

    kind: str  # "status" | "slow" | "invalid_json" | "refusal"
    status: int = 0
    retry_after: float | None = None
    delay_s: float = 0.0

    @classmethod
    def status_code(cls, status: int, retry_after: float | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        return cls("slow", delay_s=delay_s)


@dataclass
class Recorded:
    at: float
    finished_at: float
    headers: dict[str, str]
    body: dict[str, Any]
    status: int

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def system(self) -> str:
        return _text(self.body["messages"][0]["content"])

    @property
    def user(self) -> str:
        return _text(self.body["messages"][1]["content"])

    @property
    def images(self) -> list[str]:
        content = self.body["messages"][1]["content"]
        if isinstance(content, str):
            return []
        return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


@dataclass
class FakeOpenAI:
    api_key: str = "test-key"
    models: set[str] = field(default_factory=lambda: {"text-model", "vision-model"})
    delay_s: float = 0.0  # every answer waits this long (the benchmark's model latency)
    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None  # a fault for every request
    # Extra chapters the text answers carry (e.g. one past the end of the video).
    extra_chapters: list[dict[str, Any]] = field(default_factory=list)
    on_request: Callable[[dict[str, Any]], None] | None = None  # runs while the request is "thinking"
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of_kind(self, kind: str) -> list[Recorded]:
        """Answered requests by what they asked (text | visual | overview | qa), in the order they came."""
        with self._lock:
            chosen = [r for r in self.requests if _kind(r.system) == kind and r.status == 200]
        return sorted(chosen, key=lambda r: r.at)

    # ------------------------------------------------------------------------------------ handling

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.time()
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            fault = self.faults.pop(0) if self.faults else self.always
        status, payload, extra_headers = self._answer(handler.path, headers, body, fault)
        if self.on_request is not None and status == 200:
            self.on_request(body)
        if self.delay_s:
            time.sleep(self.delay_s)
        data = json.dumps(payload).encode()
        # Recorded before the answer goes out, so a test that has its answer also sees its request.
        record = Recorded(started, time.time(), headers, body, status)
        with self._lock:
            self.requests.append(record)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in extra_headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass
        record.finished_at = time.time()

    def _answer(
        self, path: str, headers: dict[str, str], body: dict[str, Any], fault: Fault | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, _error("Not found", "invalid_request_error", None), {}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), {}
        model = str(body.get("model", ""))
        if model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return 404, _error(message, "invalid_request_error", "model_not_found"), {}
        if fault is not None and fault.kind == "status":
            retry = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            return fault.status, _error(f"fault {fault.status}", kind, None), retry
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        system = _text(body["messages"][0]["content"])
        if fault is not None and fault.kind == "invalid_json":
            content, refusal, finish = "Sure! Here is the summary: it is about a meeting.", None, "stop"
        elif fault is not None and fault.kind == "refusal":
            content, refusal, finish = None, "I can't help with that.", "stop"
        else:
            all_user = "\n".join(_text(m["content"]) for m in body["messages"][1:] if m["role"] == "user")
            content = json.dumps(self._content(system, all_user), ensure_ascii=False)
            refusal, finish = None, "stop"
        prompt_tokens = len(json.dumps(body)) // 4
        completion_tokens = len(content or refusal or "") // 4
        return (
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            {},
        )

    def _content(self, system: str, user: str) -> dict[str, Any]:
        kind = _kind(system)
        if kind == "visual":
            shots = _SHOT.findall(user)
            return {
                "overall": f"FAKE-VISUAL: {len(shots)} screenshots seen",
                "frames": [
                    {"index": int(n), "description": f"FAKE-FRAME {n} at {t}", "on_screen_text": f"TEXT-{n}"}
                    for n, t in shots
                ],
            }
        if kind == "overview":
            return {"shared": "FAKE-OVERVIEW shared", "differences": "FAKE-OVERVIEW differences"}
        if kind == "qa":
            return _qa(user)
        lines = _LINE.findall(user)
        reduced = _CHAPTER_LINE.findall(user)
        if reduced:  # a reduce call: keep the parts' chapters
            chapters = [{"start": t, "title": f"MERGED {title.strip()}", "summary": "merged"} for t, title in reduced]
            first = reduced[0][0]
        elif lines:
            picks = [lines[0], lines[len(lines) // 2]] if len(lines) > 1 else [lines[0]]
            chapters = [{"start": t, "title": f"FAKE-CHAPTER {w[:30]}", "summary": "one line"} for t, w in picks]
            first = lines[0][0]
        else:
            chapters, first = [], "00:00"
        answer: dict[str, Any] = {
            "summary": f"FAKE-SUMMARY of {len(lines)} lines starting {first}",
            "chapters": chapters + list(self.extra_chapters),
            "key_points": [{"time": first, "text": "FAKE-POINT first thing said"}],
            "extra": {},
            "request_answer": "",
        }
        if '"hook"' in system:
            answer["extra"] = {
                "hook": "FAKE-HOOK",
                "selling_points": ["FAKE-SP1", "FAKE-SP2"],
                "call_to_action": "FAKE-CTA",
                "audience": "FAKE-AUDIENCE",
                "structure": ["hook", "demo", "cta"],
            }
        elif '"decisions"' in system:
            answer["extra"] = {
                "decisions": ["FAKE-DECISION"],
                "action_items": [{"task": "FAKE-TASK", "owner": "Alice", "time": first}],
            }
        if "Analysis request from the user:" in user:
            request = user.split("Analysis request from the user:", 1)[1].strip()
            answer["request_answer"] = f"FAKE-REQUEST-ANSWER ({len(request)} chars)"
        return answer


def _kind(system: str) -> str:
    if "describe screenshots" in system:
        return "visual"
    if "compare several videos" in system:
        return "overview"
    if "answer a question" in system:
        return "qa"
    return "text"


def _qa(user: str) -> dict[str, Any]:
    """Cites the first line sharing a word (4+ letters) with the question; else "not in the videos"."""
    context, _, question = user.rpartition("Question:")
    words = {w.lower() for w in re.findall(r"\w{4,}", question)}
    video = 1
    for line in context.splitlines():
        header = re.match(r"^Video (\d+):", line)
        if header:
            video = int(header.group(1))
            continue
        match = _LINE.match(line)
        if match and words & {w.lower() for w in re.findall(r"\w{4,}", match.group(2))}:
            time_text = match.group(1)
            return {
                "answer": f"FAKE-ANSWER: they said “{match.group(2)}” [{time_text}]",
                "found": True,
                "citations": [{"video": video, "time": time_text}],
            }
    return {"answer": "FAKE-ANSWER: not in the videos", "found": False, "citations": []}


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
