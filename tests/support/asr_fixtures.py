"""Fixtures for the speech recognition tests: 16 kHz mono WAVs made with ffmpeg from the shared test
media (what ``pipeline.ffmpeg`` hands the engines), a minute-long WAV for windowing, and the tiny FunASR
model directories (built once per session, in seconds)."""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.support.asr_models import TinyFunasrModels, build_tiny_funasr_models

RATE = 16000


def to_wav_16k(source: Path, target: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-i",
            str(source),
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(RATE),
            "-f",
            "wav",
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    return target


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


@dataclass(frozen=True)
class LongSpeech:
    """A WAV of the speech repeated with silent gaps; ``blocks`` are the (start, end) seconds of each
    repetition, so tests know where speech is."""

    path: Path
    blocks: tuple[tuple[float, float], ...]
    duration_s: float


@pytest.fixture(scope="session")
def speech_video_wav(speech_video: Path, media_dir: Path) -> Path:
    """The speech video's audio track as 16 kHz mono WAV (12 s)."""
    return to_wav_16k(speech_video, media_dir / "speech-video-16k.wav")


@pytest.fixture(scope="session")
def speech_wav_16k(speech_wav: Path, media_dir: Path) -> Path:
    """The espeak-ng speech as 16 kHz mono WAV (about 10 s)."""
    return to_wav_16k(speech_wav, media_dir / "speech-16k.wav")


@pytest.fixture(scope="session")
def long_speech_wav(speech_wav_16k: Path, media_dir: Path) -> LongSpeech:
    """About a minute: five repetitions of the speech, each followed by 2 s of silence."""
    speech = read_wav(speech_wav_16k)
    gap = np.zeros(2 * RATE, dtype=np.int16)
    parts: list[np.ndarray] = []
    blocks: list[tuple[float, float]] = []
    at = 0
    for _ in range(5):
        blocks.append((at / RATE, (at + len(speech)) / RATE))
        parts += [speech, gap]
        at += len(speech) + len(gap)
    path = write_wav(media_dir / "long-speech-16k.wav", np.concatenate(parts))
    return LongSpeech(path=path, blocks=tuple(blocks), duration_s=at / RATE)


@pytest.fixture(scope="session")
def tiny_funasr_models(tmp_path_factory: pytest.TempPathFactory) -> TinyFunasrModels:
    return build_tiny_funasr_models(tmp_path_factory.mktemp("funasr-models"))
