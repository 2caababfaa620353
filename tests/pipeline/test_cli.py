"""``video-insight analyze``: in-process through ``pipeline.cli.main`` and as the installed console script,
on real files and links from the loopback media server, with Whisper tiny.en."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import cli
from tests.support.media_server import MediaServer

REPO = Path(__file__).resolve().parents[3]
CONSOLE_SCRIPT = Path(sys.executable).parent / "video-insight"
STAGE_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.+): (.+)$")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The environment the CLI reads its settings from: scratch space under the test's directory, and
    loopback links allowed (the media server). Returns the work directory."""
    work = tmp_path / "work"
    monkeypatch.setenv("WORK_DIR", str(work))
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("DOWNLOAD_RETRIES", "0")
    monkeypatch.delenv("ASR_BACKEND", raising=False)
    # main() installs its log handler on the root logger; leave logging as pytest had it.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield work
    root.handlers[:] = handlers
    root.setLevel(level)


def stage_lines(stderr: str) -> list[tuple[int, str, str]]:
    """(video number, name, stage) of every progress line."""
    found = []
    for line in stderr.splitlines():
        match = STAGE_LINE.match(line.strip())
        if match:
            found.append((int(match.group(1)), match.group(3), match.group(4)))
    return found


@pytest.mark.slow
def test_a_local_file_and_a_link(
    cli_env: Path, tmp_path: Path, speech_video: Path, media_server: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = cli.main(
        [
            "analyze",
            str(speech_video),
            media_server.url("/media/clip.mp4"),
            "--out",
            str(out),
            "--asr",
            "whisper",
            "--screenshots",
            "interval:4",
        ]
    )
    captured = capsys.readouterr()
    assert status == cli.EXIT_OK, captured.err
    assert "2 ok, 0 failed, 2 in all" in captured.out
    assert str(out / "results.json") in captured.out and str(out / "results.xlsx") in captured.out
    assert "failed" not in captured.out.replace("0 failed", "")

    # Not a terminal: one line per video and stage, in order, none repeated.
    lines = stage_lines(captured.err)
    for number, name in ((1, "speech.mp4"), (2, "clip.mp4")):
        stages = [stage for n, shown, stage in lines if n == number and shown == name]
        assert stages == [
            "downloading",
            "reading metadata",
            "extracting audio",
            "transcribing",
            "taking screenshots",
            "writing files",
            "done",
        ]

    listed = json.loads((out / "results.json").read_text(encoding="utf-8"))["videos"]
    assert [v["status"] for v in listed] == ["ok", "ok"]
    assert all("budget" in v["transcript"]["text"].lower() for v in listed)
    assert all(len(v["screenshots"]) == 3 for v in listed)  # 12 s every 4 s: at 2, 6 and 10 s
    assert list(cli_env.iterdir()) == []  # the batch's scratch space is gone


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{missing}"], "no such file"),
        (["ftp://example.com/talk.mp4"], "only http(s) links and local files"),
        (["{video}", "--screenshots", "interval:0"], "interval must be a number of seconds above 0"),
        (["{video}", "--screenshots", "times:-1"], "Screenshot times must be seconds, 0 or more"),
        (["{video}", "--screenshots", "sometimes"], "Unknown screenshot mode"),
        (["{video}", "--max-screenshots", "0"], "--max-screenshots must be at least 1"),
    ],
)
def test_unusable_arguments_exit_2_with_a_clear_message(
    cli_env: Path,
    tmp_path: Path,
    speech_video: Path,
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    filled = [a.format(missing=tmp_path / "nope.mp4", video=speech_video) for a in arguments]
    out = tmp_path / "out"
    status = cli.main(["analyze", *filled, "--out", str(out), "--asr", "whisper"])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE
    assert "error:" in captured.err and message in " ".join(captured.err.split())
    assert captured.out == "" and not out.exists()


def test_a_missing_speech_model_is_a_configuration_error(
    cli_env: Path,
    tmp_path: Path,
    speech_video: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FUNASR_MODEL_DIR", "")
    status = cli.main(["analyze", str(speech_video), "--out", str(tmp_path / "out"), "--asr", "funasr"])
    err = " ".join(capsys.readouterr().err.split())
    assert status == cli.EXIT_USAGE
    assert "speech recognition model is unavailable" in err and "FUNASR_MODEL_DIR" in err
    assert "--asr whisper" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_batch_where_every_video_fails_still_exits_0_and_says_so(
    cli_env: Path, tmp_path: Path, media_server: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = cli.main(
        [
            "analyze",
            media_server.url("/status/404"),
            media_server.url("/media/random.mp4"),
            "--out",
            str(out),
            "--asr",
            "whisper",
        ]
    )
    captured = capsys.readouterr()
    assert status == cli.EXIT_OK
    assert "0 ok, 2 failed, 2 in all" in captured.out
    assert "All 2 videos failed" in captured.out
    flat = " ".join(captured.out.split())
    assert "404" in flat and "cannot be played" in flat  # the reasons, in the table
    assert [stage for _, _, stage in stage_lines(captured.err)].count("failed") == 2
    listed = json.loads((out / "results.json").read_text(encoding="utf-8"))["videos"]
    assert [v["failure"]["code"] for v in listed] == ["download_failed", "unplayable"]


def subprocess_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASR_BACKEND", "ALLOW_PRIVATE_URLS")}
    env["WORK_DIR"] = str(work)
    return env


@pytest.mark.slow
def test_the_installed_console_script(tmp_path: Path, speech_video: Path) -> None:
    out = tmp_path / "out"
    work = tmp_path / "work"
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "analyze", str(speech_video), "--out", str(out), "--asr", "whisper"],
        capture_output=True,
        text=True,
        env=subprocess_env(work),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 ok, 0 failed, 1 in all" in done.stdout
    assert [stage for _, _, stage in stage_lines(done.stderr)] == [
        "downloading",
        "reading metadata",
        "extracting audio",
        "transcribing",
        "taking screenshots",
        "writing files",
        "done",
    ]
    video_dir = out / "001-speech"
    assert {p.name for p in video_dir.iterdir()} >= {"transcript.txt", "subtitles.srt", "contact_sheet.jpg"}
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_cancels_the_rest_and_keeps_the_summary(
    tmp_path: Path, speech_video: Path, media_server: MediaServer
) -> None:
    out = tmp_path / "out"
    local = tmp_path / "talk.mp4"
    local.write_bytes(speech_video.read_bytes())
    # The two links trickle for minutes (a cancel stops them at once), so when the local video reaches
    # its transcription, the interrupt lands mid-job however slow the machine is: three short local
    # videos could all be finished by the time the signal arrived.
    trickled = [media_server.url(f"/trickle/clip.mp4?chunk=1024&pause=1&n={n}") for n in range(2)]
    env = subprocess_env(tmp_path / "work")
    env["ALLOW_PRIVATE_URLS"] = "true"  # the media server is on loopback
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "analyze", str(local), *trickled, "--out", str(out), "--asr", "whisper"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if line.strip().endswith(": transcribing"):
                process.send_signal(signal.SIGINT)
                break
        stdout, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(seen) + rest
    assert process.returncode == cli.EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert "Cancelling" in stderr
    assert "were cancelled" in stdout
    listed = json.loads((out / "results.json").read_text(encoding="utf-8"))["videos"]
    assert len(listed) == 3
    assert [v["status"] for v in listed[1:]] == ["cancelled", "cancelled"]  # both stopped mid-download
    assert list((tmp_path / "work").iterdir()) == []
