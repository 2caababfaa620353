"""Insight end to end: real ffmpeg and Whisper tiny.en on videos the tests make, the fake model on
loopback; through ``Analyzer.analyze_batch`` and through the CLI."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from PIL import Image

from pipeline import cli
from pipeline.analyze import Analyzer, cpu_slots
from pipeline.models import AnalysisOptions, BatchResult, VideoSource, VideoStatus
from pipeline.sources import default_registry
from pipeline.subtitles import format_clock
from tests.support.fake_openai import FakeOpenAI, Fault
from tests.support.insight_support import insight_settings

pytestmark = pytest.mark.slow


@dataclass
class InsightBatch:
    batch: BatchResult
    fake: FakeOpenAI
    slot_free_during_calls: list[bool]


def run_batch(tmp_path: Path, fake: FakeOpenAI, videos: list[Path], **overrides: Any) -> BatchResult:
    settings = insight_settings(tmp_path, fake.base_url, **overrides)
    analyzer = Analyzer(settings, default_registry(settings, include_local=True))
    return analyzer.analyze_batch(
        [VideoSource.local(v) for v in videos],
        AnalysisOptions(),
        out_dir=tmp_path / "out",
        scratch_dir=tmp_path / "scratch",
    )


@pytest.fixture(scope="module")
def insight_batch(
    tmp_path_factory: pytest.TempPathFactory, speech_video: Path, silent_video: Path
) -> Iterator[InsightBatch]:
    tmp_path = tmp_path_factory.mktemp("insight-batch")
    free: list[bool] = []
    slots = cpu_slots(1)

    def while_thinking(_body: dict[str, Any]) -> None:
        # A model call in flight must not hold the process's CPU slot (the next video's ASR needs it).
        if slots.acquire(blocking=False):
            slots.release()
            free.append(True)
        else:
            free.append(False)

    with FakeOpenAI(on_request=while_thinking) as fake:
        batch = run_batch(
            tmp_path, fake, [speech_video, silent_video], vlm_model="vision-model", vlm_max_screenshots=3,
            vlm_image_max_px=160, max_parallel_downloads=1,
        )  # fmt: skip
        yield InsightBatch(batch, fake, free)


def test_each_video_gets_summary_chapters_points_and_a_visual_read(insight_batch: InsightBatch) -> None:
    speech, _silent = insight_batch.batch.videos
    assert speech.status is VideoStatus.OK and speech.insight is not None
    assert speech.insight.summary.startswith("FAKE-SUMMARY")
    segment_starts = {s.start for s in speech.transcript.segments} if speech.transcript else set()
    assert speech.insight.chapters and all(c.start_s in segment_starts for c in speech.insight.chapters)
    assert speech.insight.key_points
    assert speech.insight.visual is not None and speech.insight.visual.overall.startswith("FAKE-VISUAL")
    frame = speech.insight.visual.frames[0]
    assert frame.description.startswith("FAKE-FRAME 1") and frame.screenshot.endswith(".jpg")
    assert speech.insight.models == ["text-model", "vision-model"]
    assert speech.insight.usage.calls == 2


def test_a_silent_video_still_gets_its_visual_read(insight_batch: InsightBatch) -> None:
    silent = insight_batch.batch.videos[1]
    assert silent.status is VideoStatus.OK and silent.transcript is None
    assert silent.insight is not None and silent.insight.visual is not None
    assert silent.insight.summary.startswith("FAKE-VISUAL")  # what it shows is all there is to say
    assert any("no transcript" in n.en for n in silent.insight.notes)


def test_screenshots_sent_are_few_and_downscaled(insight_batch: InsightBatch) -> None:
    visual = insight_batch.fake.of_kind("visual")
    assert len(visual) == 2
    for request in visual:
        assert request.model == "vision-model"
        assert 1 <= len(request.images) <= 3
        for url in request.images:
            header, data = url.split(",", 1)
            assert header == "data:image/jpeg;base64"
            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                assert max(image.size) <= 160


def test_model_calls_never_hold_the_cpu_slot(insight_batch: InsightBatch) -> None:
    assert insight_batch.slot_free_during_calls and all(insight_batch.slot_free_during_calls)


def test_results_json_xlsx_and_notes(insight_batch: InsightBatch) -> None:
    batch = insight_batch.batch
    assert batch.results_json is not None and batch.results_xlsx is not None
    data = json.loads(batch.results_json.read_text(encoding="utf-8"))
    assert data["insight"]["enabled"] is True
    assert data["insight"]["overview"]["shared"] == "FAKE-OVERVIEW shared"
    first = data["videos"][0]
    assert first["insight"]["summary"].startswith("FAKE-SUMMARY")
    chapter = first["insight"]["chapters"][0]
    assert chapter["time"] == format_clock(chapter["start_s"]) and chapter["title"].startswith("FAKE-CHAPTER")
    notes = batch.out_dir / first["files"]["notes_md"]
    text = notes.read_text(encoding="utf-8")
    assert text.index("## 摘要 Summary") < text.index("## 章节 Chapters")
    assert "FAKE-CHAPTER" in text and "](screenshots/" in text and "> [00:0" in text
    sheet = load_workbook(batch.results_xlsx)["洞察 Insight"]
    assert str(sheet.cell(2, 4).value).startswith("FAKE-SUMMARY")
    assert "FAKE-CHAPTER" in str(sheet.cell(2, 5).value)
    overview = load_workbook(batch.results_xlsx)["概览 Overview"]
    assert "FAKE-OVERVIEW" in str(overview.cell(1, 1).value)


def test_a_failing_model_keeps_transcript_and_screenshots_with_a_reason(tmp_path: Path, speech_video: Path) -> None:
    with FakeOpenAI(always=Fault.status_code(500)) as fake:
        batch = run_batch(tmp_path, fake, [speech_video])
    (video,) = batch.videos
    assert video.status is VideoStatus.OK and video.transcript is not None and video.screenshots
    assert video.insight is not None and video.insight.missing_reason is not None
    assert batch.results_json is not None
    data = json.loads(batch.results_json.read_text(encoding="utf-8"))["videos"][0]
    assert data["insight"]["problems"][0]["code"] == "server_error"
    assert "模型服务出错" in data["insight"]["problems"][0]["message"]["zh"]
    assert data["transcript"]["segments"]


def test_insight_off_is_as_before_with_a_line_saying_how_to_turn_it_on(tmp_path: Path, speech_video: Path) -> None:
    with FakeOpenAI() as fake:
        batch = run_batch(tmp_path, fake, [speech_video], llm_base_url="")
    assert fake.requests == []
    assert batch.results_json is not None and batch.results_xlsx is not None
    data = json.loads(batch.results_json.read_text(encoding="utf-8"))
    assert data["insight"]["enabled"] is False and "LLM_BASE_URL" in data["insight"]["note"]["en"]
    assert "insight" not in data["videos"][0] and "notes_md" not in data["videos"][0]["files"]
    assert load_workbook(batch.results_xlsx).sheetnames == ["视频 Videos", "分段 Segments"]


def test_the_cli_takes_a_preset_and_a_prompt(
    tmp_path: Path, speech_video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI() as fake:
        for name, value in {
            "WORK_DIR": str(tmp_path / "work"),
            "LLM_BASE_URL": fake.base_url,
            "LLM_API_KEY": "test-key",
            "LLM_MODEL": "text-model",
        }.items():
            monkeypatch.setenv(name, value)
        status = cli.main(
            ["analyze", str(speech_video), "--out", str(tmp_path / "out"), "--asr", "whisper", "-q",
             "--preset", "ad", "--prompt", "Who is it for?"]
        )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "summary: FAKE-SUMMARY" in out and "FAKE-CHAPTER" in out
    assert "analysis: FAKE-REQUEST-ANSWER (14 chars)" in out
    assert '"hook"' in fake.of_kind("text")[0].system


def test_the_cli_refuses_an_unknown_preset(
    tmp_path: Path, speech_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["analyze", str(speech_video), "--out", str(tmp_path / "out"), "--preset", "poetry"])
    assert status == 2
    assert "poetry" in capsys.readouterr().err


def test_the_cli_says_how_to_turn_insight_on(
    tmp_path: Path, speech_video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORK_DIR", str(tmp_path / "work"))
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    status = cli.main(["analyze", str(speech_video), "--out", str(tmp_path / "out"), "--asr", "whisper", "-q"])
    assert status == 0
    assert "Insight is off: set LLM_BASE_URL and LLM_MODEL" in capsys.readouterr().out
