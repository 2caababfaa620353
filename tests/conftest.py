"""Shared fixtures: real media made once per test session with espeak-ng and ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import media

# Fixtures of the fakes (Feishu Open Platform, media server, FC async front) live beside them.
pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.asr_fixtures",
    "tests.support.webhook_harness",
    "tests.support.e2e_support",
]


def pytest_configure(config: pytest.Config) -> None:
    missing = [tool for tool in ("ffmpeg", "ffprobe", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(
            f"missing system tools: {', '.join(missing)}; run `make test` (it installs them) "
            "or `bash scripts/system-deps.sh`"
        )


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir: Path) -> Path:
    """About 10 s of English speech (see ``media.SPEECH_SENTENCES``)."""
    return media.speech_wav(media_dir / "speech.wav")


@pytest.fixture(scope="session")
def speech_video(media_dir: Path, speech_wav: Path) -> Path:
    """12 s, 320x240, three hard scene cuts, with the speech as AAC audio."""
    return media.video(
        media_dir / "speech.mp4",
        duration_s=12.0,
        scenes=("testsrc2", "navy", "darkgreen"),
        audio=speech_wav,
    )


@pytest.fixture(scope="session")
def silent_video(media_dir: Path) -> Path:
    """4 s of video with no audio stream."""
    return media.video(media_dir / "silent.mp4", duration_s=4.0, scenes=("red", "blue"))


@pytest.fixture(scope="session")
def audio_only_file(media_dir: Path, speech_wav: Path) -> Path:
    return media.audio_only(media_dir / "speech.m4a", speech_wav)


@pytest.fixture(scope="session")
def truncated_video(media_dir: Path, speech_wav: Path) -> Path:
    """A video whose index (moov) is at the end, cut at 40%: what an interrupted download leaves."""
    full = media_dir / "for-truncation.mp4"
    media.video(full, duration_s=6.0, audio=speech_wav)
    # Re-mux without faststart so the moov atom sits at the end of the file.
    tail_moov = media_dir / "tail-moov.mp4"
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(full), "-c", "copy", str(tail_moov)])
    return media.truncated(tail_moov, media_dir / "truncated.mp4")


@pytest.fixture(scope="session")
def random_mp4(media_dir: Path) -> Path:
    return media.random_bytes(media_dir / "random.mp4")
