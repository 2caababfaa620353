"""How fast the long connection acknowledges an event, next to the webhook, in one run of one bot.

    .venv/bin/python bench/longconn.py                    # defaults: 400 events per path, 50 events/s
    .venv/bin/python bench/longconn.py --events 1000 --rate 100

One ``python server.py`` (the real entry point) runs with ``EVENT_MODE=websocket`` AND the webhook's
Encrypt Key and Verification Token set, so both doors of the same bot are open at once: the long
connection it opens to the fake Feishu (``tests/support/feishu/ws.py``, in this process: the endpoint call
and a loopback WebSocket speaking the SDK's protobuf frames), and ``POST /webhook/event``.

Events alternate between the two paths, one at a time at a fixed pace (open loop), so both see the same
machine at the same moments:

* long connection: from just before the event frame is written to the socket, to the moment this
  process has read and parsed the acknowledgement frame (loopback both ways, the SDK's frame handling,
  the bot's dedupe + job insert + reply queueing; the SDK's own ``biz_rt`` header, in whole
  milliseconds, is the handler's share);
* webhook: from just before the request is written (keep-alive HTTP/1.1, a minimal client) to the
  moment the whole response is read (the same work, behind uvicorn, AES and the signature check).

Each event is a real ``im.message.receive_v1`` with its own ids and a text with a link, built before the
clock starts (the webhook's encrypted and signed, as Feishu sends them). Two rounds:

* ``live``: replies are answered, so each event's card goes out and its job starts (links to a host
  that does not resolve: the job fails its download), all on the same cores;
* ``held``: the fake holds its answers to the bot's replies, so no card goes out and no job starts: the
  acknowledgement path alone.

After each round the bench checks that every event was acknowledged with 200 and queued one job.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhook import free_port, percentile  # noqa: E402 - after the path set-up above
from tests.support import events  # noqa: E402
from tests.support.events import EventFactory  # noqa: E402
from tests.support.feishu import FakeFeishu  # noqa: E402
from tests.support.feishu.ws import FakeLongConnection  # noqa: E402

REPLY_PATH = "/open-apis/im/v1/messages/*/reply"


class KeepAliveClient:
    """HTTP/1.1 POSTs over one kept-alive socket: as little client cost as a Python client can have."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"127.0.0.1:{port}"
        self.buffer = b""

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1]), rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def wait_connected(port: int, feishu_ws: FakeLongConnection, timeout_s: float = 90.0) -> None:
    """Until the bot has connected and its webhook answers (not 503: still starting)."""
    import http.client

    feishu_ws.wait_connected(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the bot did not become ready")


def run_round(
    client: KeepAliveClient,
    feishu_ws: FakeLongConnection,
    factory: EventFactory,
    app_id: str,
    count: int,
    rate: float,
    tag: str,
) -> dict[str, Any]:
    webhook_requests = [factory.text(f"请分析 https://videos.invalid/{tag}/w{i:06d}.mp4") for i in range(count)]
    ws_payloads = [
        events.text_message(f"请分析 https://videos.invalid/{tag}/l{i:06d}.mp4", app_id=app_id) for i in range(count)
    ]
    webhook_s: list[float] = []
    ws_s: list[float] = []
    biz_rt_ms: list[float] = []
    statuses: dict[str, dict[int, int]] = {"webhook": {}, "long connection": {}}
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(count):
        for path in ("webhook", "long connection") if i % 2 == 0 else ("long connection", "webhook"):
            next_at += interval / 2
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            if path == "webhook":
                headers, body = webhook_requests[i]
                started = time.perf_counter()
                status, _ = client.post("/webhook/event", headers, body)
                webhook_s.append(time.perf_counter() - started)
            else:
                frame_id = feishu_ws.send_event(ws_payloads[i])
                ack = feishu_ws.wait_for_ack(frame_id, timeout=30)
                ws_s.append(ack.received_at - feishu_ws.sent[frame_id].sent_at)
                biz_rt_ms.append(float(ack.headers.get("biz_rt", "nan")))
                status = ack.code
            statuses[path][status] = statuses[path].get(status, 0) + 1
    return {"webhook": webhook_s, "long connection": ws_s, "biz_rt_ms": biz_rt_ms, "statuses": statuses}


def figures(latencies_s: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies_s, 0.50) * 1000,
        "p99_ms": percentile(latencies_s, 0.99) * 1000,
        "max_ms": max(latencies_s) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000,
    }


def print_round(name: str, result: dict[str, Any]) -> dict[str, Any]:
    print(f"\n{name}:")
    print(f"  {'path':<16} {'p50':>9} {'p99':>9} {'max':>9} {'mean':>9}   answers")
    out: dict[str, Any] = {}
    for path in ("long connection", "webhook"):
        f = figures(result[path])
        out[path] = f
        print(
            f"  {path:<16} {f['p50_ms']:6.2f} ms {f['p99_ms']:6.2f} ms {f['max_ms']:6.2f} ms "
            f"{f['mean_ms']:6.2f} ms   {result['statuses'][path]}"
        )
    biz = result["biz_rt_ms"]
    biz_p50, biz_p99 = percentile(biz, 0.5), percentile(biz, 0.99)
    print(f"  (the SDK's biz_rt, the handler's share in whole ms: p50 {biz_p50:.0f}, p99 {biz_p99:.0f})")
    ratio = out["long connection"]["p50_ms"] / out["webhook"]["p50_ms"]
    print(f"  long connection / webhook at p50: {ratio:.2f}x")
    return out


def count_jobs(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "state.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400, help="events per path per round")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, both paths together")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}  ({os.cpu_count()} CPUs)")
    fake = FakeFeishu(patch_qps_limit=None).start()
    feishu_ws = FakeLongConnection(fake).start()
    factory = EventFactory(app_id=fake.app_id)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-longconn-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "FC_"))}
        env.update(
            {
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "EVENT_MODE": "websocket",
                "FEISHU_APP_ID": fake.app_id,
                "FEISHU_APP_SECRET": fake.app_secret,
                # Both set: the webhook stays open beside the long connection, in the same process.
                "FEISHU_VERIFICATION_TOKEN": factory.verification_token,
                "FEISHU_ENCRYPT_KEY": factory.encrypt_key,
                "FEISHU_DOMAIN": fake.url,
                "DATA_DIR": str(work / "data"),
                "WORK_DIR": str(work / "work"),
            }
        )
        log = (work / "server.log").open("wb")
        server = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_connected(port, feishu_ws)
            client = KeepAliveClient(port)
            # A few of each first: connections warm, the SDK's lazy paths taken.
            run_round(client, feishu_ws, factory, fake.app_id, 20, args.rate, "warm")
            results = {}
            jobs_before = count_jobs(work / "data")
            live = run_round(client, feishu_ws, factory, fake.app_id, args.events, args.rate, "live")
            results["live"] = print_round(
                f"live (each event's card sent to the fake and its job started; {args.events} events per path, "
                f"{args.rate:.0f}/s)",
                live,
            )
            # Last: the held replies keep the bot's outbox busy until it stops.
            fake.delay("POST", REPLY_PATH, 3600.0)
            held = run_round(client, feishu_ws, factory, fake.app_id, args.events, args.rate, "held")
            results["held"] = print_round(
                f"held (no card sent, no job started: the acknowledgement path alone; {args.events} events per path)",
                held,
            )
            queued = count_jobs(work / "data") - jobs_before
            print(f"\njobs queued in the two rounds: {queued} (expected {4 * args.events})")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            print(json.dumps(results))
            client.close()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            feishu_ws.stop()
            fake.stop()


if __name__ == "__main__":
    main()
