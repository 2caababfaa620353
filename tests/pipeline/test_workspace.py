"""Per-job work directories and the sweeper, on real directories (ages set with os.utime, no sleeping)."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import pytest

from pipeline.workspace import Sweeper, Workspace, sweep

NOW = 1_800_000_000.0
HOUR = 3600.0


def age(path: Path, seconds: float, now: float = NOW) -> None:
    """Set the modification time of ``path`` and everything under it to ``seconds`` before ``now``."""
    when = now - seconds
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                os.utime(Path(dirpath) / name, (when, when), follow_symlinks=False)
    os.utime(path, (when, when), follow_symlinks=False)


def make_job_dir(work_dir: Path, name: str, seconds_old: float) -> Path:
    job_dir = work_dir / name
    (job_dir / "video-0").mkdir(parents=True)
    (job_dir / "video-0" / "audio.wav").write_bytes(b"RIFF" + b"\0" * 100)
    (job_dir / "source.mp4").write_bytes(b"\0" * 100)
    age(job_dir, seconds_old)
    return job_dir


# --- Workspace ----------------------------------------------------------------------------------


def test_workspace_lifecycle(tmp_path: Path) -> None:
    ws = Workspace.for_job(tmp_path / "work", "jAbc_12-x")
    assert ws.root == tmp_path / "work" / "jAbc_12-x"
    assert not ws.exists
    assert ws.create() is ws and ws.exists
    assert oct(ws.root.stat().st_mode & 0o777) == oct(0o700)
    shots = ws.directory("video-0", "shots")
    assert shots.is_dir() and shots == ws.root / "video-0" / "shots"
    ws.path("video-0", "audio.wav").write_bytes(b"x")
    ws.remove()
    assert not ws.root.exists()
    ws.remove()  # removing twice is fine


def test_create_starts_empty_after_an_interrupted_attempt(tmp_path: Path) -> None:
    ws = Workspace.for_job(tmp_path, "j1")
    ws.create()
    ws.path("half-downloaded.mp4").write_bytes(b"partial")
    ws.create()
    assert list(ws.root.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "..", "../etc", "a/b", "-rf", ".hidden", "x" * 200, "j1\n"])
def test_workspace_refuses_ids_that_are_not_job_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        Workspace.for_job(tmp_path, bad)


@pytest.mark.parametrize("parts", [("..",), ("..", "other-job"), ("a", "..", "..", "x"), ("/etc/passwd",)])
def test_paths_never_leave_the_workspace(tmp_path: Path, parts: tuple[str, ...]) -> None:
    ws = Workspace.for_job(tmp_path, "j1").create()
    with pytest.raises(ValueError, match="leaves the workspace"):
        ws.path(*parts)


def test_paths_with_dots_inside_stay_allowed(tmp_path: Path) -> None:
    ws = Workspace.for_job(tmp_path, "j1")
    assert ws.path("a", "..", "b.mp4") == ws.root / "b.mp4"
    assert ws.path("my..video.mp4") == ws.root / "my..video.mp4"
    assert ws.path() == ws.root


# --- sweep --------------------------------------------------------------------------------------


def test_sweep_removes_old_entries_and_keeps_recent_and_kept_ones(tmp_path: Path) -> None:
    work = tmp_path / "work"
    old = make_job_dir(work, "jOld", 30 * HOUR)
    recent = make_job_dir(work, "jRecent", 1 * HOUR)
    kept = make_job_dir(work, "jRunning", 50 * HOUR)
    stray = work / "stray.tmp"
    stray.write_bytes(b"x")
    age(stray, 48 * HOUR)

    removed = sweep(work, 24 * HOUR, now=NOW, keep={"jRunning"})

    assert sorted(removed) == sorted([old, stray])
    assert not old.exists() and not stray.exists()
    assert recent.is_dir() and kept.is_dir()
    assert (kept / "video-0" / "audio.wav").exists()


def test_a_job_still_writing_is_not_swept(tmp_path: Path) -> None:
    work = tmp_path / "work"
    job_dir = make_job_dir(work, "jLong", 40 * HOUR)
    # A long job: its directory is old but it wrote a file a minute ago, deep inside.
    fresh = job_dir / "video-0" / "transcript.json"
    fresh.write_text("{}")
    age(fresh, 60)
    assert sweep(work, 24 * HOUR, now=NOW) == []
    assert job_dir.is_dir()


def test_sweep_of_a_missing_work_dir_is_empty(tmp_path: Path) -> None:
    assert sweep(tmp_path / "absent", HOUR, now=NOW) == []


def test_sweep_never_follows_links_out_of_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep-me.txt").write_text("do not delete")
    age(outside, 100 * HOUR)

    # A link at the top of work_dir, and one inside an old job directory, both pointing out.
    top_link = work / "jLink"
    top_link.symlink_to(outside, target_is_directory=True)
    job_dir = make_job_dir(work, "jWithLink", 30 * HOUR)
    inner_link = job_dir / "escape"
    inner_link.symlink_to(outside, target_is_directory=True)
    file_link = job_dir / "file-escape"
    file_link.symlink_to(outside / "keep-me.txt")
    age(job_dir, 30 * HOUR)
    age(top_link, 30 * HOUR)

    removed = sweep(work, 24 * HOUR, now=NOW)

    assert sorted(removed) == sorted([top_link, job_dir])
    assert not top_link.is_symlink() and not job_dir.exists()
    assert (outside / "keep-me.txt").read_text() == "do not delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "work"]


def test_a_fresh_file_behind_a_link_does_not_keep_an_old_dir(tmp_path: Path) -> None:
    # Ages are read from the links themselves: what a link points to is not part of the workspace.
    work = tmp_path / "work"
    outside = tmp_path / "busy"
    outside.mkdir()
    (outside / "new.txt").write_text("written just now")
    age(outside, 0)
    job_dir = make_job_dir(work, "jOld", 30 * HOUR)
    (job_dir / "link").symlink_to(outside / "new.txt")
    age(job_dir, 30 * HOUR)
    assert sweep(work, 24 * HOUR, now=NOW) == [job_dir]
    assert (outside / "new.txt").exists()


def test_a_runner_workspace_is_kept_by_the_sweeper_while_young(tmp_path: Path) -> None:
    work = tmp_path / "work"
    ws = Workspace.for_job(work, "jNew").create()
    ws.path("a.bin").write_bytes(b"x")
    assert sweep(work, HOUR) == []  # real clock: just written
    assert sweep(work, HOUR, now=time.time() + 2 * HOUR) == [ws.root]


# --- Sweeper ------------------------------------------------------------------------------------


def test_sweeper_sweeps_at_start_and_keeps_running_jobs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    old = make_job_dir(work, "jOld", 30 * HOUR)
    running = make_job_dir(work, "jRunning", 30 * HOUR)
    sweeps: queue.Queue[list[Path]] = queue.Queue()
    sweeper = Sweeper(
        work, 24 * HOUR, interval_s=HOUR, keep=lambda: {"jRunning"}, clock=lambda: NOW, on_sweep=sweeps.put
    )
    sweeper.start()
    try:
        first = sweeps.get(timeout=30)
    finally:
        sweeper.stop()
    assert first == [old]
    assert sweeps.empty() and sweeper.sweeps == 1  # once at start; the next is an hour away
    assert not old.exists()
    assert running.is_dir()


def test_sweeper_sweeps_again_every_interval(tmp_path: Path) -> None:
    work = tmp_path / "work"
    sweeps: queue.Queue[list[Path]] = queue.Queue()
    sweeper = Sweeper(work, HOUR, interval_s=0.01, clock=lambda: NOW, on_sweep=sweeps.put)
    sweeper.start()
    try:
        assert sweeps.get(timeout=30) == []
        make_job_dir(work, "jLater", 2 * HOUR)  # left behind after the first sweep
        while True:
            removed = sweeps.get(timeout=30)
            if removed:
                break
    finally:
        sweeper.stop()
    assert removed == [work / "jLater"]


def test_sweeper_stop_ends_its_thread(tmp_path: Path) -> None:
    sweeper = Sweeper(tmp_path, HOUR, interval_s=HOUR)
    sweeper.start()
    sweeper.stop()
    assert not any(t.name == "work-dir-sweeper" and t.is_alive() for t in threading.enumerate())


def test_sweeper_rejects_nonsense_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Sweeper(tmp_path, 0)
    with pytest.raises(ValueError):
        Sweeper(tmp_path, HOUR, interval_s=0)
