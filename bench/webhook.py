"""How fast the webhook acknowledges, next to a bare FastAPI endpoint served the same way.

    .venv/bin/python bench/webhook.py                     # defaults: 2000 events, 8 clients, 200 req/s paced
    .venv/bin/python bench/webhook.py --events 5000 --clients 16 --rate 300

Three processes besides this one: the fake Feishu (``tests/support/feishu/``; the queued-card replies
land there, over loopback), ``python server.py`` (the real entry point: real lark-oapi dispatcher,
SQLite job store and dedupe, the default runner and job function) and, for the baseline, the same
uvicorn settings serving ``POST /bare`` (reads the body, answers ``{"msg": "ok"}``).

Every event is a real ``im.message.receive_v1`` (unique event and message ids, a text with a link),
encrypted and signed like Feishu's, built before the clock starts. Runs, in this order:

* bare FastAPI, paced (requests sent at a fixed rate, open loop, over ``--clients`` connections: the
  latency a Feishu-like load sees) and saturated (each client sends its next request as soon as the
  last is answered: throughput);
* the webhook, paced and saturated, with everything behind it working: each event's queued card is
  sent to the fake over loopback and its job starts (links to an unreachable host: each job fails its
  download and writes its table), all on the same two cores as the server, the fake and this client;
* the webhook again with the fake holding its answers, so no card goes out and no job starts: what the
  acknowledgement path alone costs.

The client is a minimal HTTP/1.1 keep-alive client on asyncio, so it costs little next to the server.
After the runs the bench counts the answers (every one must be 200 ``{"msg":"ok"}``) and the job rows
queued (one per event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402 - after the path set-up above
from fastapi.responses import JSONResponse  # noqa: E402

from tests.support.events import EventFactory  # noqa: E402

# The uvicorn settings server.main() uses, applied to the baseline too.
UVICORN_KWARGS: dict[str, Any] = {"log_config": None, "access_log": False, "server_header": False}

FAKE_FEISHU = """
import json, sys
from tests.support.feishu import FakeFeishu
fake = FakeFeishu(patch_qps_limit=None).start()
print(json.dumps({"url": fake.url, "app_id": fake.app_id, "app_secret": fake.app_secret}), flush=True)
for line in sys.stdin:
    if line.strip() == "count":
        replies = [m for m in fake.sent_messages if m.parent_id]
        print(json.dumps({"replies": len(replies)}), flush=True)
    elif line.strip() == "hold":
        # Replies answered an hour late: the bot's outbox waits, and no job starts (a job is submitted
        # once its queued card is sent), so nothing runs beside the acknowledgement path.
        fake.delay("POST", "/open-apis/im/v1/messages/*/reply", 3600.0)
        print(json.dumps({"held": True}), flush=True)
fake.stop()
"""


def bare_app() -> Any:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/bare")
    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"msg": "ok"})

    return app


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, **UVICORN_KWARGS)


# --------------------------------------------------------------------------------------------------
# A small keep-alive HTTP/1.1 client
# --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    latencies_s: list[float]
    elapsed_s: float
    statuses: dict[int, int]
    bodies: dict[bytes, int]


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_load(
    port: int, path: str, requests: Sequence[tuple[dict[str, str], bytes]], clients: int, rate: float | None
) -> Result:
    """Send ``requests`` over ``clients`` connections; paced at ``rate`` per second, or as fast as answered."""
    connections = [await Connection.open(port) for _ in range(clients)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: dict[bytes, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(requests)):
        queue.put_nowait(index)
    start = time.perf_counter()

    async def client(connection: Connection) -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if rate is not None:
                # Open loop: request i is due at start + i/rate, whatever happened to the others.
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            headers, body = requests[index]
            sent = time.perf_counter()
            status, answer = await connection.post(path, headers, body)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            bodies[answer] = bodies.get(answer, 0) + 1

    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - start
    for c in connections:
        c.close()
    return Result(latencies, elapsed, statuses, bodies)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(port: int, path: str, body: bytes = b"{}", timeout_s: float = 60.0) -> None:
    """Until ``path`` answers something other than 503 (the webhook answers 503 while the bot starts)."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            if conn.getresponse().status != 503:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing serving {path} on port {port}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_events(factory: EventFactory, count: int, tag: str) -> list[tuple[dict[str, str], bytes]]:
    return [factory.text(f"请分析 https://videos.example.com/{tag}/{i:06d}.mp4 谢谢") for i in range(count)]


def report(name: str, result: Result) -> dict[str, float]:
    figures = {
        "p50_ms": percentile(result.latencies_s, 0.50) * 1000,
        "p99_ms": percentile(result.latencies_s, 0.99) * 1000,
        "max_ms": max(result.latencies_s) * 1000,
        "mean_ms": statistics.fmean(result.latencies_s) * 1000,
        "rps": len(result.latencies_s) / result.elapsed_s,
    }
    print(
        f"  {name:<22} p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms   "
        f"max {figures['max_ms']:7.2f} ms   {figures['rps']:7.0f} req/s   statuses {result.statuses}"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="events per run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second in the paced runs")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    fake_log = (work / "fake-feishu.log").open("wb")
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_FEISHU],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=fake_log,
        text=True,
    )
    assert fake.stdout is not None and fake.stdin is not None
    feishu = json.loads(fake.stdout.readline())
    factory = EventFactory(app_id=feishu["app_id"])

    server_port, bare_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "FC_"))}
    env.update(
        {
            "PORT": str(server_port),
            "HOST": "127.0.0.1",
            "FEISHU_APP_ID": feishu["app_id"],
            "FEISHU_APP_SECRET": feishu["app_secret"],
            "FEISHU_VERIFICATION_TOKEN": factory.verification_token,
            "FEISHU_ENCRYPT_KEY": factory.encrypt_key,
            "FEISHU_DOMAIN": feishu["url"],
            "EVENT_MODE": "webhook",
            "DATA_DIR": str(work / "data"),
            "WORK_DIR": str(work / "work"),
        }
    )
    server_log = (work / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=server_log, stderr=server_log)
    bare = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(bare_port, "/bare")
        verification = factory.url_verification("ready", sign=False)
        wait_until_serving(server_port, "/webhook/event", verification[1])

        total = 2 * args.warmup + 4 * args.events
        print(f"building {total} signed, encrypted events ...")
        events = iter(build_events(factory, total, "run"))
        batch = lambda n: [next(events) for _ in range(n)]  # noqa: E731
        size = len(factory.text("请分析 https://videos.example.com/run/000000.mp4 谢谢")[1])
        padding = b" " * int(size - len(b'{"padding":""}'))
        bare_body = b'{"padding":"' + padding + b'"}'
        bare_requests = [({"Content-Type": "application/json"}, bare_body)] * args.events
        print(
            f"payload {size} bytes; {args.clients} clients; {os.cpu_count()} cores; Python "
            f"{sys.version.split()[0]}; {args.events} requests per run\n"
        )

        def load(port: int, path: str, requests: Sequence[tuple[dict[str, str], bytes]], rate: float | None) -> Result:
            return asyncio.run(run_load(port, path, requests, args.clients, rate))

        load(bare_port, "/bare", bare_requests[: args.warmup], None)
        load(server_port, "/webhook/event", batch(args.warmup), None)
        results: dict[str, dict[str, float]] = {}
        hook_results: list[Result] = []

        print(f"paced at {args.rate:.0f} req/s: acknowledgement latency")
        results["bare paced"] = report("bare FastAPI", load(bare_port, "/bare", bare_requests, args.rate))
        hook_results.append(load(server_port, "/webhook/event", batch(args.events), args.rate))
        results["full paced"] = report("webhook", hook_results[-1])
        print("\nsaturated (next request as soon as answered): throughput")
        results["bare saturated"] = report("bare FastAPI", load(bare_port, "/bare", bare_requests, None))
        hook_results.append(load(server_port, "/webhook/event", batch(args.events), None))
        results["full saturated"] = report("webhook", hook_results[-1])

        # The same, with Feishu holding its answers: nothing but the acknowledgement path runs.
        fake.stdin.write("hold\n")
        fake.stdin.flush()
        json.loads(fake.stdout.readline())
        load(server_port, "/webhook/event", batch(args.warmup), None)
        print("\nacknowledgement path alone (Feishu holds its answers: no replies sent, no jobs started):")
        hook_results.append(load(server_port, "/webhook/event", batch(args.events), args.rate))
        results["ack paced"] = report("webhook, paced", hook_results[-1])
        hook_results.append(load(server_port, "/webhook/event", batch(args.events), None))
        results["ack saturated"] = report("webhook, saturated", hook_results[-1])

        bare_rps = results["bare saturated"]["rps"]
        print("\n                                    throughput vs bare   p99 paced   (targets: >= 0.5, < 25 ms)")
        for label, mode in (("with replies and jobs running", "full"), ("acknowledgement path alone", "ack")):
            print(
                f"  {label:<32} {results[mode + ' saturated']['rps'] / bare_rps:10.2f}   "
                f"{results[mode + ' paced']['p99_ms']:9.2f} ms"
            )
        print(f"  {'bare FastAPI':<32} {1.0:10.2f}   {results['bare paced']['p99_ms']:9.2f} ms")

        # Everything acknowledged was queued, off the request path.
        answers: dict[bytes, int] = {}
        for result in hook_results:
            for body, count in result.bodies.items():
                answers[body] = answers.get(body, 0) + count
        print(f"\nwebhook answers: { {k.decode(): v for k, v in answers.items()} }")
        db = sqlite3.connect(work / "data" / "state.sqlite3")
        jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        db.close()
        fake.stdin.write("count\n")
        fake.stdin.flush()
        replies = json.loads(fake.stdout.readline())["replies"]
        print(f"jobs queued: {jobs} / {total}; queued cards the fake has answered so far: {replies}")
    finally:
        stop(server)
        stop(bare)
        fake.stdin.close()
        fake.wait(timeout=30)
        server_log.close()
        fake_log.close()
        print(f"logs: {work / 'server.log'}, {work / 'fake-feishu.log'}")


if __name__ == "__main__":
    main()
