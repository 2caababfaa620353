"""Helpers for the insight tests: settings pointing at the fake model, and results built from
transcripts written out by hand (for the parts that need no media)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.config import PipelineSettings
from pipeline.models import MediaInfo, Segment, Transcript, VideoResult, VideoSource, VideoStatus
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def insight_settings(tmp_path: Path, base_url: str, **overrides: object) -> PipelineSettings:
    values: dict[str, object] = {
        "allow_private_urls": True,
        "asr_backend": "whisper",
        "work_dir": tmp_path / "work",
        "data_dir": tmp_path / "data",
        "download_retries": 0,
        "llm_base_url": base_url,
        "llm_api_key": "test-key",
        "llm_model": "text-model",
        "llm_max_retries": 0,
        "llm_timeout_s": 20,
    }
    values.update(overrides)
    return PipelineSettings.load(_env_file=None, **values)


def spoken(lines: Sequence[tuple[float, str]], duration_s: float, name: str = "talk.mp4") -> VideoResult:
    """An analysed video with these sentences (start, text), each lasting until the next."""
    segments = tuple(
        Segment(start, lines[i + 1][0] if i + 1 < len(lines) else duration_s, text)
        for i, (start, text) in enumerate(lines)
    )
    return VideoResult(
        index=0,
        source=VideoSource.local(Path("/videos") / name),
        status=VideoStatus.OK,
        media=MediaInfo(duration_s=duration_s, size_bytes=1, container="mp4", video=None, audio=None),
        transcript=Transcript(segments, "en", "whisper", "tiny.en"),
    )
