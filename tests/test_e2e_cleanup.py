"""Temporary files: a job's work directory is gone after its results are delivered, whatever the outcome
(the runner removes it), and the sweeper started with the bot clears what a crash left behind while
never touching a running job's directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline.jobs import JobStatus
from tests.support.e2e_support import E2EApp, E2EEnv
from tests.support.media_server import MediaServer

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

TWO_DAYS_S = 2 * 24 * 3600.0


def age(path: Path, seconds: float) -> None:
    """Make ``path`` and everything in it look ``seconds`` old."""
    stamp = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(Path(root) / name, (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp))


def test_the_work_directory_goes_whatever_the_outcome(e2e: E2EApp, media_server: MediaServer) -> None:
    ok = media_server.url("/media/clip.mp4")
    not_a_video = media_server.url("/media/random.mp4")
    _, done = e2e.send_text(ok)
    _, failed_videos = e2e.send_text(not_a_video)
    assert e2e.wait_finished(done.id).status is JobStatus.DONE
    assert e2e.wait_finished(failed_videos.id).status is JobStatus.DONE  # delivered, with the reason
    assert e2e.work_dir_entries() == []

    e2e.fake.fail("POST", "/open-apis/bitable/v1/apps", status=403, code=1061004, times=None)
    _, failed_job = e2e.send_text(ok)
    failed = e2e.wait_finished(failed_job.id)
    assert failed.status is JobStatus.FAILED  # the table could not be made
    assert failed.error is not None and "没有权限" in failed.error["message"]["zh"]
    assert e2e.work_dir_entries() == []


def test_the_sweeper_clears_leftovers_at_start_and_spares_running_jobs(
    e2e_env: E2EEnv, media_server: MediaServer
) -> None:
    work_dir = e2e_env.webhook_env.settings.work_dir
    crashed = work_dir / "jCrashedLongAgo"
    (crashed / "scratch").mkdir(parents=True)
    (crashed / "scratch" / "video.mp4").write_bytes(b"x" * 1024)
    age(crashed, TWO_DAYS_S)
    recent = work_dir / "jRecentLeftover"
    recent.mkdir()

    with e2e_env.serve() as app:
        sweeper = app.client.bot.sweeper
        assert sweeper is not None
        deadline = time.monotonic() + 30
        while sweeper.sweeps < 1:  # the first sweep runs as the bot starts
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not crashed.exists()
        assert recent.exists()  # not old enough yet

        media_server.add_file("big.mp4", os.urandom(4 * 1024 * 1024))
        _, job = app.send_text(media_server.url("/trickle/big.mp4?chunk=65536&pause=0.05"))
        app.wait_progress(job.id, lambda p: any(v.get("stage") == "downloading" for v in p.get("videos") or ()))
        running = work_dir / job.id
        assert running.is_dir()
        age(running, TWO_DAYS_S)
        removed = sweeper.sweep_once()
        assert running.is_dir() and running not in removed  # a running job's files stay
        app.wait_finished(job.id)
        assert not running.exists()
