"""``python server.py`` as a real process: health without heavy imports, events end to end, clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.server_process import ROOT, ServerProcess, free_port, running_server, server_env

pytestmark = pytest.mark.slow  # real processes: python server.py started and stopped

HEAVY = ("lark_oapi", "torch", "funasr", "cv2", "faster_whisper", "ctranslate2", "modelscope", "pandas", "openai")
START_PATH_DONE = "start path done"


def imported_modules(log_lines: list[str]) -> list[str]:
    """Top-level module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = []
    for line in log_lines:
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.append(name.split(".")[0])
    return names


@pytest.fixture
def server(tmp_path: Path, fake_feishu: FakeFeishu) -> Iterator[ServerProcess]:
    # Not waited for: the first test looks at what the process imported before /health answered.
    events = EventFactory(app_id=fake_feishu.app_id)
    with running_server(tmp_path, fake_feishu, events, python_flags=("-X", "importtime"), ready=False) as running:
        yield running


def test_health_answers_before_any_heavy_import(server: ServerProcess) -> None:
    response = server.wait_for_health()
    assert (response.status_code, response.json()) == (200, {"status": "ok"})

    lines = server.log_lines()
    marker = next(i for i, line in enumerate(lines) if START_PATH_DONE in line)
    on_start_path = set(imported_modules(lines[:marker]))
    assert "fastapi" in on_start_path  # the log does record imports
    assert on_start_path.isdisjoint(HEAVY), sorted(on_start_path & set(HEAVY))

    # The SDK is imported afterwards, off the start path: the check above could have seen it.
    server.wait_until_ready()
    assert "lark_oapi" in imported_modules(server.log_lines()[marker:])


def test_a_signed_event_is_acknowledged_and_answered_by_the_real_process(server: ServerProcess) -> None:
    server.wait_until_ready()
    headers, body = server.events.text("https://videos.example.com/demo.mp4")
    message_id = server.events.payload_of(body)["event"]["message"]["message_id"]

    response = httpx.post(server.url + "/webhook/event", headers=headers, content=body, timeout=30)
    assert (response.status_code, response.json()) == (200, {"msg": "ok"})

    (reply,) = server.fake.wait_for("POST", f"/open-apis/im/v1/messages/{message_id}/reply")
    assert reply.json["msg_type"] == "interactive"
    assert "https://videos.example.com/demo.mp4" in reply.json["content"]

    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert 'video_insight_webhook_events_total{event_type="im.message.receive_v1"} 1.0' in metrics


def test_sigterm_stops_the_server_cleanly(server: ServerProcess) -> None:
    server.wait_until_ready()
    server.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: death by SIGTERM, as asked.
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    lines = server.log_lines()
    assert any("the bot stopped" in line for line in lines)
    assert any("Application shutdown complete" in line for line in lines)


def test_importing_the_server_and_creating_the_app_loads_nothing_heavy(tmp_path: Path, fake_feishu: FakeFeishu) -> None:
    events = EventFactory(app_id=fake_feishu.app_id)
    probe = (
        "import json, sys\n"
        "import server\n"
        "server.create_app()\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=server_env(tmp_path, fake_feishu, events, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_missing_configuration_is_named_and_the_server_does_not_start(tmp_path: Path, fake_feishu: FakeFeishu) -> None:
    env = server_env(tmp_path, fake_feishu, EventFactory(), free_port())
    del env["FEISHU_APP_SECRET"]
    del env["FEISHU_VERIFICATION_TOKEN"]
    done = subprocess.run(
        [sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "FEISHU_APP_SECRET" in done.stderr and "FEISHU_VERIFICATION_TOKEN" in done.stderr
    assert fake_feishu.app_secret not in done.stderr
