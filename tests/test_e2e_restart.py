"""A job interrupted by a restart is resumed by the next instance on the same DATA_DIR: its card carries
on (the same message, with a "resumed" note), one Base, no row twice, nothing left on disk.

The first instance is ``python server.py`` in a process of its own, killed (SIGKILL) mid-job, the way a
crash or an OOM kill ends it; the second is the app in this process on the same DATA_DIR and WORK_DIR.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.jobs import Job, JobStatus, JobStore
from tests.support.e2e_support import (
    SHORT_KEYWORDS,
    E2EEnv,
    card_header,
    cell_text,
    e2e_settings_overrides,
    results_table,
)
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import card_text

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

ROOT = Path(__file__).resolve().parents[1]
# A bound on waiting for the other process, not a performance claim.
BOUND_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(env: E2EEnv, port: int) -> dict[str, str]:
    settings = env.webhook_env.settings
    values = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "FC_", "JOB_"))}
    values.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "FEISHU_APP_ID": settings.feishu_app_id,
            "FEISHU_APP_SECRET": settings.feishu_app_secret.get_secret_value(),
            "FEISHU_VERIFICATION_TOKEN": settings.feishu_verification_token.get_secret_value(),
            "FEISHU_ENCRYPT_KEY": settings.feishu_encrypt_key.get_secret_value(),
            "FEISHU_DOMAIN": settings.feishu_domain,
            "EVENT_MODE": settings.event_mode,
            "DATA_DIR": str(settings.data_dir),
            "WORK_DIR": str(settings.work_dir),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    values.update(
        {
            name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in e2e_settings_overrides().items()
        }
    )
    return values


@contextmanager
def server_process(env: E2EEnv, log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "server.py"],
            cwd=ROOT,
            env=server_env(env, port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + BOUND_S
        while True:  # ready once the bot (SDK included) answers a url_verification
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                headers, body = env.webhook_env.events.url_verification("ready?", sign=False)
                if httpx.post(url + "/webhook/event", headers=headers, content=body, timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the first instance did not start"
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def wait_for_job(store: JobStore, message_id: str, until: Callable[[Job], bool]) -> Job:
    deadline = time.monotonic() + BOUND_S
    while True:
        job = next((j for j in store.list(limit=None) if j.idempotency_key == message_id), None)
        if job is not None and until(job):
            return job
        assert job is None or not job.status.terminal, f"the job ended before the restart: {job}"
        assert time.monotonic() < deadline, f"the job never got there: {job}"
        time.sleep(0.05)


def kill_mid_job(
    env: E2EEnv, tmp_path: Path, text: str, until: Callable[[Job], bool], before_kill: Callable[[], None] = lambda: None
) -> Job:
    """Run the first instance, send ``text``, SIGKILL it once ``until(job)``; the job as it was left."""
    events = env.webhook_env.events
    with server_process(env, tmp_path / "first.log") as (process, url):
        headers, body = events.text(text)
        message_id = events.payload_of(body)["event"]["message"]["message_id"]
        response = httpx.post(url + "/webhook/event", headers=headers, content=body, timeout=30)
        assert response.status_code == 200, response.text
        with JobStore(env.webhook_env.settings.data_dir / "state.sqlite3") as store:
            wait_for_job(store, message_id, until)
            before_kill()
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            left = next(j for j in store.list(limit=None) if j.idempotency_key == message_id)
    assert left.status is JobStatus.RUNNING  # what a crash leaves behind
    return left


def card_history(env: E2EEnv, message_id: str) -> list[dict[str, Any]]:
    return [json.loads(content) for content in env.webhook_env.fake.message(message_id).history]


def downloading(job: Job) -> bool:
    videos = job.progress.get("videos") or ()
    return bool(job.card_message_id) and any(v.get("stage") == "downloading" for v in videos)


def test_a_job_killed_mid_analysis_is_resumed_with_its_card(
    e2e_env: E2EEnv, tmp_path: Path, media_server: MediaServer, short_clip: Path
) -> None:
    media_server.add_file("slow.mp4", short_clip.read_bytes())
    slow = media_server.url("/trickle/slow.mp4?chunk=16384&pause=0.2")  # a few seconds of download
    left = kill_mid_job(e2e_env, tmp_path, f"{slow} 任务：重启测试", downloading)
    assert left.card_message_id
    shown_before = card_history(e2e_env, left.card_message_id)
    assert card_header(shown_before[-1]) == "视频分析中"

    with e2e_env.serve() as app:  # the next start, same DATA_DIR
        done = app.wait_finished(left.id)
        app.settle_cards()
        work_left = app.work_dir_entries()

    assert done.status is JobStatus.DONE, done.error
    assert done.attempts == 2
    assert done.card_message_id == left.card_message_id  # the same card carries on
    history = card_history(e2e_env, left.card_message_id)
    resumed = [card for card in history[len(shown_before) :] if "服务重启后已继续" in card_text(card)]
    assert resumed, "no card said the job was resumed"
    assert "Resumed after a restart (attempt 2)" in card_text(resumed[0])
    # The first card after the restart shows where the job was: downloading.
    assert "下载中 / downloading" in card_text(history[len(shown_before)])
    assert card_header(history[-1]) == "视频分析完成"
    fake = e2e_env.webhook_env.fake
    assert len([m for m in fake.sent_messages if m.parent_id == left.spec.source_message_id]) == 1
    (base,) = [a for a in fake.apps.values() if a.owner.get("member_id") == SAMPLE_OPEN_ID]
    (row,) = results_table(fake, base)
    assert all(word in cell_text(row["转写文本 Transcript"]).lower() for word in SHORT_KEYWORDS)
    assert work_left == []


def test_a_job_killed_while_writing_its_table_keeps_one_base(
    e2e_env: E2EEnv, tmp_path: Path, short_clip_url: str
) -> None:
    fake = e2e_env.webhook_env.fake
    # The first upload hangs: the instance dies with its Base made and nothing written yet.
    fake.delay("POST", "/open-apis/drive/v1/medias/upload_all", 3.0, times=1)

    def uploading(job: Job) -> bool:
        return bool(fake.find("POST", "/open-apis/drive/v1/medias/upload_all"))

    left = kill_mid_job(e2e_env, tmp_path, short_clip_url, uploading)
    checkpoint = left.result.get("sink") or {}
    assert checkpoint.get("app_token") and checkpoint.get("table_id")
    apps_before = set(fake.apps)

    with e2e_env.serve() as app:
        done = app.wait_finished(left.id)
        app.settle_cards()
        work_left = app.work_dir_entries()

    assert done.status is JobStatus.DONE, done.error
    assert set(fake.apps) == apps_before  # no second Base
    base = fake.app(checkpoint["app_token"])
    assert base.owner["member_id"] == SAMPLE_OPEN_ID
    assert done.result["table_url"].startswith(base.url)
    (row,) = results_table(fake, base)
    assert cell_text(row["状态 Status"]) == "成功 OK"
    assert row["截图 Screenshots"]
    assert work_left == []


def test_a_job_whose_last_attempt_was_cut_by_a_restart_ends_on_a_final_card(
    e2e_env: E2EEnv, tmp_path: Path, media_server: MediaServer, short_clip: Path
) -> None:
    # Killed mid-download on its last attempt: the next start fails it, and the card must say so in
    # place of the progress it showed ("downloading", a Cancel button), not keep showing that progress.
    media_server.add_file("slow.mp4", short_clip.read_bytes())
    slow = media_server.url("/trickle/slow.mp4?chunk=16384&pause=0.2")
    left = kill_mid_job(e2e_env, tmp_path, f"{slow} 任务：最后一次", downloading)
    assert left.card_message_id and left.attempts == 1
    shown_before = card_history(e2e_env, left.card_message_id)
    assert "下载中 / downloading" in card_text(shown_before[-1])

    first = e2e_env.webhook_env
    last_try = E2EEnv(replace(first, settings=first.settings.model_copy(update={"job_max_attempts": 1})))
    with last_try.serve() as app:  # the next start, same DATA_DIR: no attempt left
        ended = app.wait_finished(left.id)
        app.settle_cards()

    assert ended.status is JobStatus.FAILED
    history = card_history(e2e_env, left.card_message_id)
    assert len(history) > len(shown_before), "the card was never updated after the restart"
    final = history[-1]
    text = card_text(final)
    assert card_header(final) != "视频分析中", text
    assert "服务重启打断" in text and "下载中 / downloading" not in text, text
    assert '"cancel"' not in json.dumps(final), "a finished job's card offers Cancel"
