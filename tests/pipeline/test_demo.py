"""``make demo`` (``python -m pipeline.demo``): the committed sample, offline, with Whisper tiny.en, into an
output folder that still holds an older run's results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.demo import SAMPLE, clear_previous_results

pytestmark = pytest.mark.slow  # end to end in a subprocess, with Whisper tiny.en


def test_demo_replaces_old_results_and_shows_the_analysis(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    (out / "001-old-video" / "screenshots").mkdir(parents=True)
    (out / "001-old-video" / "screenshots" / "shot_0001_00m01s.jpg").write_bytes(b"old")
    (out / "002-another-old-one").mkdir()
    (out / "results.json").write_text('{"videos": ["stale"]}', encoding="utf-8")
    (out / "my-notes.txt").write_text("not the demo's", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "ASR_BACKEND"}
    env["WORK_DIR"] = str(tmp_path / "work")

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "001-quarterly-planning",
        "my-notes.txt",
        "results.json",
        "results.xlsx",
    ]
    assert (out / "my-notes.txt").read_text(encoding="utf-8") == "not the demo's"
    video = json.loads((out / "results.json").read_text(encoding="utf-8"))["videos"][0]
    assert video["status"] == "ok" and video["source"]["locator"] == str(SAMPLE)
    assert "quarterly planning meeting" in video["transcript"]["text"].lower()
    assert "budget" in video["keywords"] and "Welcome" not in video["keywords"]
    assert len(video["screenshots"]) >= 3
    # What the demo prints: the transcript's first lines, the keywords and the files written.
    assert "Welcome to the quarterly planning meeting." in done.stdout
    assert "Keywords" in done.stdout and "contact_sheet.jpg" in done.stdout


def test_only_an_earlier_batch_is_cleared(tmp_path: Path) -> None:
    (tmp_path / "003-talk").mkdir()
    (tmp_path / "results.xlsx").write_bytes(b"old")
    (tmp_path / "notes").mkdir()
    (tmp_path / "12-not-ours").mkdir()
    (tmp_path / "results.csv").write_text("mine", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "004-link").symlink_to(outside, target_is_directory=True)

    removed = clear_previous_results(tmp_path)

    assert sorted(p.name for p in removed) == ["003-talk", "results.xlsx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["004-link", "12-not-ours", "notes", "results.csv"]
    assert outside.is_dir()
    assert clear_previous_results(tmp_path / "missing") == []
