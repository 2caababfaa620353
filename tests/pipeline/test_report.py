"""The batch report: results.json and results.xlsx, opened back as a program and a person would."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pipeline.models import (
    AudioStream,
    BatchResult,
    MediaInfo,
    Segment,
    Transcript,
    UserText,
    VideoFailure,
    VideoResult,
    VideoSource,
    VideoStatus,
    VideoStream,
)
from pipeline.outputs import write_video_outputs
from pipeline.report import EXCEL_CELL_LIMIT, RESULTS_JSON, RESULTS_XLSX, write_batch_report
from tests.support.shots import frames_from

ANALYSED_AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

DOWNLOAD_FAILURE = VideoFailure(
    code="download_failed",
    stage="downloading",
    message=UserText(
        zh="链接不存在（HTTP 404）。请确认链接正确且可以公开访问。",
        en="The link was not found (HTTP 404). Check that it is correct and publicly reachable.",
    ),
    detail="GET https://videos.example.com/missing.mp4 -> 404",
)


def _seconds(value: object) -> float:
    """A time cell read back: openpyxl gives a timedelta for time formats, a float (days) otherwise."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    assert isinstance(value, float | int)
    return float(value) * 86_400


def _media() -> MediaInfo:
    return MediaInfo(
        duration_s=3723.0,
        size_bytes=10_000_000,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video=VideoStream(codec="h264", width=1920, height=1080, fps=25.0, rotation=90),
        audio=AudioStream(codec="aac", sample_rate=44100, channels=2),
    )


@pytest.fixture
def batch(tmp_path: Path, speech_video: Path) -> BatchResult:
    """Three videos as the pipeline leaves them: one complete, one failed, one with a huge transcript."""
    out = tmp_path / "batch"
    complete_dir = out / "001-speech"
    complete = VideoResult(
        index=0,
        source=VideoSource.url("https://videos.example.com/speech.mp4", name="speech.mp4"),
        status=VideoStatus.OK,
        media=_media(),
        transcript=Transcript(
            segments=(
                Segment(0.0, 2.6, "Welcome to the quarterly planning meeting."),
                Segment(2.9, 6.25, "Today we will review the budget and the product roadmap."),
            ),
            language="en",
            backend="whisper",
            model="tiny.en",
        ),
        screenshots=frames_from(speech_video, [1.0, 6.0], complete_dir / "screenshots"),
        keywords=["budget", "roadmap", "meeting"],
        notes=[UserText(zh="截图时间 99 秒超出视频长度，已忽略", en="Screenshot time 99 s is past the end: skipped")],
        stage_seconds={"transcribing": 1.5},
        processing_s=3.25,
        analysed_at=ANALYSED_AT,
    )
    complete.outputs = write_video_outputs(complete, complete_dir)

    failed = VideoResult(
        index=1,
        source=VideoSource.url("https://videos.example.com/missing.mp4"),
        status=VideoStatus.FAILED,
        failure=DOWNLOAD_FAILURE,
        processing_s=0.4,
        analysed_at=ANALYSED_AT,
    )
    failed.outputs = write_video_outputs(failed, out / "002-missing")

    long_text = "这是一段很长的会议记录，讨论了预算和产品路线图。" * 3000  # 72,000 characters
    long_dir = out / "003-long"
    huge = VideoResult(
        index=2,
        source=VideoSource.local("/uploads/long.mp4", name='=HYPERLINK("http://evil.example","x")'),
        status=VideoStatus.OK,
        media=_media(),
        transcript=Transcript(
            segments=tuple(Segment(i * 10.0, i * 10.0 + 9.0, long_text[i * 1000 : (i + 1) * 1000]) for i in range(72)),
            language="zh",
            backend="funasr",
            model="paraformer-zh",
        ),
        keywords=["预算", "路线图"],
        analysed_at=ANALYSED_AT,
    )
    huge.outputs = write_video_outputs(huge, long_dir)
    # Results arrive in completion order; the report sorts them.
    return BatchResult(
        videos=[huge, complete, failed], out_dir=out, started_at=ANALYSED_AT - 60, finished_at=ANALYSED_AT
    )


def test_results_json_has_everything_with_relative_paths(batch: BatchResult) -> None:
    json_path, xlsx_path = write_batch_report(batch)
    assert json_path == batch.out_dir / RESULTS_JSON and xlsx_path == batch.out_dir / RESULTS_XLSX

    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["counts"] == {"total": 3, "ok": 2, "failed": 1, "cancelled": 0}
    assert data["elapsed_s"] == 60.0
    videos = data["videos"]
    assert [v["index"] for v in videos] == [0, 1, 2]

    complete, failed, huge = videos
    assert complete["transcript"]["segments"][1] == {
        "start": 2.9,
        "end": 6.25,
        "text": "Today we will review the budget and the product roadmap.",
    }
    assert complete["transcript"]["text"].startswith("Welcome to the quarterly planning meeting.")
    assert complete["files"]["subtitles_srt"] == "001-speech/subtitles.srt"
    assert complete["screenshots"][0]["file"] == "001-speech/screenshots/shot-001.jpg"
    assert complete["media"]["resolution"] == "1080x1920"  # rotated: as shown
    for video in videos:
        for relative in [*(f for f in video["files"].values() if f), *(s["file"] for s in video["screenshots"])]:
            assert not relative.startswith("/") and (batch.out_dir / relative).exists()

    assert failed["status"] == "failed"
    assert failed["failure"]["code"] == "download_failed"
    assert failed["failure"]["message"] == DOWNLOAD_FAILURE.message.to_dict()
    assert failed["files"]["metadata_json"] == "002-missing/metadata.json"
    assert len(huge["transcript"]["segments"]) == 72


def test_results_xlsx_has_one_readable_row_per_video(batch: BatchResult) -> None:
    _, xlsx_path = write_batch_report(batch)
    workbook = load_workbook(xlsx_path)
    assert workbook.sheetnames == ["视频 Videos", "分段 Segments"]
    sheet = workbook["视频 Videos"]

    header = [cell.value for cell in sheet[1]]
    assert header[:5] == ["序号 No.", "缩略图 Thumbnail", "名称 Name", "来源 Source", "状态 Status"]
    assert "失败原因 Reason (中文)" in header and "失败原因 Reason (English)" in header
    assert "文字稿 Transcript" in header and "关键词 Keywords" in header
    assert header[-1] == "分析时间 Analysed at (UTC)"
    assert sheet.max_row == 4
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}4"
    assert all(sheet.column_dimensions[c].width >= 7 for c in "ABCDEFGHIJKLMNOPQ")

    rows = {sheet.cell(r, 1).value: {h: sheet.cell(r, i).value for i, h in enumerate(header, 1)} for r in (2, 3, 4)}
    complete, failed, huge = rows[1], rows[2], rows[3]

    assert complete["名称 Name"] == "speech.mp4"
    assert complete["状态 Status"] == "成功 OK"
    assert complete["失败原因 Reason (中文)"] in (None, "")
    assert complete["分辨率 Resolution"] == "1080x1920"
    assert complete["识别引擎 ASR"] == "whisper / tiny.en"
    assert complete["关键词 Keywords"] == "budget、roadmap、meeting"
    assert complete["截图数 Screenshots"] == 2
    assert complete["处理耗时(秒) Processing (s)"] == pytest.approx(3.2, abs=0.06)
    assert "Screenshot time 99 s is past the end" in complete["备注 Notes"]
    # Duration is an Excel time (sortable), shown as h:mm:ss.
    duration_cell = sheet.cell(2, header.index("时长 Duration") + 1)
    assert duration_cell.number_format == "[h]:mm:ss"
    assert _seconds(duration_cell.value) == pytest.approx(3723.0, abs=0.01)
    assert complete["分析时间 Analysed at (UTC)"] == datetime(2023, 11, 14, 22, 13, 20)
    assert sheet.cell(2, 4).hyperlink.target == "https://videos.example.com/speech.mp4"

    assert failed["状态 Status"] == "失败 Failed"
    assert failed["失败原因 Reason (中文)"] == DOWNLOAD_FAILURE.message.zh
    assert failed["失败原因 Reason (English)"] == DOWNLOAD_FAILURE.message.en
    assert failed["文字稿 Transcript"] in (None, "")

    # A transcript over Excel's cell limit is cut, with a note saying where the rest is.
    transcript = huge["文字稿 Transcript"]
    assert len(transcript) == EXCEL_CELL_LIMIT
    assert transcript.startswith("这是一段很长的会议记录")
    assert transcript.endswith("Truncated: the full text is in 003-long/transcript.txt］")
    # A name that looks like a formula stays text.
    name_cell = sheet.cell(4, 3)
    assert name_cell.value == '=HYPERLINK("http://evil.example","x")' and name_cell.data_type == "s"

    # Exactly one thumbnail, on the complete video's row, and that row is tall enough to show it.
    images = sheet._images
    assert len(images) == 1
    anchor = images[0].anchor._from
    assert (anchor.col, anchor.row) == (1, 1)  # zero-based: column B, row 2
    assert images[0].width == 160
    assert sheet.row_dimensions[2].height >= images[0].height * 0.75


def test_segments_sheet_lists_every_segment(batch: BatchResult) -> None:
    _, xlsx_path = write_batch_report(batch)
    segments = load_workbook(xlsx_path)["分段 Segments"]
    assert [c.value for c in segments[1]] == ["序号 No.", "名称 Name", "开始 Start", "结束 End", "文字 Text"]
    assert segments.max_row == 1 + 2 + 72
    assert segments.freeze_panes == "A2"
    first = [c.value for c in segments[2]]
    assert first[0] == 1 and first[1] == "speech.mp4"
    assert first[4] == "Welcome to the quarterly planning meeting."
    end = segments.cell(3, 4)
    assert end.number_format == "[h]:mm:ss.000"
    assert _seconds(end.value) == pytest.approx(6.25, abs=0.001)
    assert {segments.cell(r, 1).value for r in range(4, 76)} == {3}


def test_a_time_zone_can_be_chosen_for_people(batch: BatchResult) -> None:
    _, xlsx_path = write_batch_report(batch, tz=timezone(timedelta(hours=8)))
    sheet = load_workbook(xlsx_path)["视频 Videos"]
    header = [cell.value for cell in sheet[1]]
    assert header[-1] == "分析时间 Analysed at (UTC+08:00)"
    assert sheet.cell(2, len(header)).value == datetime(2023, 11, 15, 6, 13, 20)


def test_an_empty_batch_still_gives_both_files(tmp_path: Path) -> None:
    empty = BatchResult(videos=[], out_dir=tmp_path / "empty", started_at=ANALYSED_AT, finished_at=ANALYSED_AT)
    json_path, xlsx_path = write_batch_report(empty)
    assert json.loads(json_path.read_text(encoding="utf-8"))["videos"] == []
    workbook = load_workbook(xlsx_path)
    assert workbook["视频 Videos"].max_row == 1
    assert workbook["分段 Segments"].max_row == 1
