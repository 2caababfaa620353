"""Per-video output files and the subtitle maker, read back the way a player or a program would."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from pipeline.models import (
    AudioStream,
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
from pipeline.outputs import (
    CONTACT_SHEET,
    METADATA_JSON,
    SUBTITLES_SRT,
    TRANSCRIPT_JSON,
    TRANSCRIPT_TXT,
    format_clock,
    format_timestamp,
    srt_text,
    transcript_text,
    write_video_outputs,
)
from pipeline.subtitles import MAX_LINE_WIDTH, text_width, wrap_subtitle_text
from tests.support.shots import frames_from

# --------------------------------------------------------------------------------------------------
# A strict SRT reader: what a picky player accepts
# --------------------------------------------------------------------------------------------------

_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
_SPAN = re.compile(rf"^{_TIME} --> {_TIME}$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, list[str]]]:
    """Cues as (start, end, lines). Fails on anything but well-formed SRT with 1-based numbering."""
    if not text:
        return []
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    cues = []
    for expected, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(expected), f"cue number {lines[0]!r}, expected {expected}"
        match = _SPAN.match(lines[1])
        assert match, f"bad time line {lines[1]!r}"
        g = match.groups()
        text_lines = lines[2:]
        assert text_lines and all(line.strip() for line in text_lines), f"empty text in cue {expected}"
        cues.append((_seconds(*g[:4]), _seconds(*g[4:]), text_lines))
    return cues


def assert_well_timed(cues: list[tuple[float, float, list[str]]]) -> None:
    for (start, end, _), nxt in zip(cues, [*cues[1:], None], strict=True):
        assert end > start, f"cue of zero or negative length: {start} -> {end}"
        if nxt is not None:
            assert nxt[0] >= end, f"overlap: cue ends {end}, next starts {nxt[0]}"


def words(text: str) -> str:
    """Text without any whitespace, to compare what was wrapped with what went in."""
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------------------------------
# SRT
# --------------------------------------------------------------------------------------------------


def test_srt_round_trips_times_and_text() -> None:
    segments = [
        Segment(0.0, 2.5, "Welcome to the quarterly planning meeting."),
        Segment(2.5, 6.04, "Today we will review the budget."),
        Segment(7.123, 9.999, "Please send your questions before Friday."),
    ]
    cues = parse_srt(srt_text(segments))
    assert [(s, e, " ".join(lines)) for s, e, lines in cues] == [(s.start, s.end, s.text) for s in segments]


def test_srt_of_no_segments_is_empty() -> None:
    assert srt_text([]) == ""
    assert srt_text([Segment(1.0, 2.0, "   "), Segment(2.0, 3.0, "")]) == ""


def test_zero_length_and_overlapping_segments_become_readable_cues() -> None:
    segments = [
        Segment(5.0, 5.0, "A cue without length."),
        Segment(0.0, 4.0, "First, but listed second."),
        Segment(3.0, 7.0, "Starts before the first one ends."),
        Segment(10.0, 9.0, "Ends before it starts."),
        Segment(10.0, 12.0, "Same start as the one before."),
        Segment(-1.0, 0.5, "Negative start."),
    ]
    cues = parse_srt(srt_text(segments))
    assert_well_timed(cues)
    assert len(cues) == len(segments)
    texts = [" ".join(lines) for _, _, lines in cues]
    assert texts[0] == "Negative start."
    assert cues[0][0] == 0.0
    assert sorted(texts) == sorted(s.text for s in segments)
    # The overlap was resolved by trimming the earlier cue, not by moving the later one.
    first_of_overlap = texts.index("Starts before the first one ends.")
    assert cues[first_of_overlap][0] == 3.0
    assert cues[first_of_overlap - 1][1] == 3.0
    # A zero-length segment got time to be read.
    zero = cues[texts.index("A cue without length.")]
    assert zero[1] - zero[0] >= 0.2


def test_a_500_character_segment_is_wrapped_and_split_proportionally() -> None:
    sentence = "The budget review covers hiring, travel, cloud costs and the product roadmap for next year"
    text = " ".join([sentence] * 6)[:500]
    segment = Segment(100.0, 160.0, text)
    cues = parse_srt(srt_text([segment]))

    assert len(cues) > 1
    assert_well_timed(cues)
    assert cues[0][0] == 100.0 and cues[-1][1] == 160.0
    # Contiguous: the segment's time is shared out without gaps.
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cues))
    for _, _, lines in cues:
        assert 1 <= len(lines) <= 2
        assert all(text_width(line) <= MAX_LINE_WIDTH for line in lines)
    assert " ".join(" ".join(lines) for _, _, lines in cues) == text
    # Each cue's share of the time follows its share of the text.
    total_chars = len(text)
    for start, end, lines in cues:
        share_of_text = len(" ".join(lines)) / total_chars
        assert (end - start) / 60.0 == pytest.approx(share_of_text, abs=0.02)


def test_chinese_text_wraps_by_display_width_and_keeps_punctuation_attached() -> None:
    text = (
        "大熊猫是中国特有的珍稀动物，主要生活在四川、陕西和甘肃的山区。"
        "大熊猫以竹子为主要食物，每天要吃大量竹子。保护大熊猫的栖息地对于大熊猫的生存非常重要。"
    )
    cues = parse_srt(srt_text([Segment(3.0, 15.0, text)]))
    assert_well_timed(cues)
    lines = [line for _, _, cue_lines in cues for line in cue_lines]
    assert all(text_width(line) <= MAX_LINE_WIDTH for line in lines)
    assert all(len(line) <= MAX_LINE_WIDTH // 2 + 1 for line in lines)  # 21 characters and a mark at most
    assert not any(line[0] in "，。、；：？！" for line in lines)
    assert "".join(lines) == text  # no spaces invented between Chinese characters
    # Sentences are not cut in the middle when they fit on their own.
    assert any(line.endswith("山区。") for line in lines)


def test_mixed_chinese_and_english_lines_break_at_sensible_places() -> None:
    text = "我们使用FunASR做语音识别，see https://example.com/" + "x" * 60 + " for the full report。"
    lines = wrap_subtitle_text(text)
    assert all(text_width(line) <= MAX_LINE_WIDTH for line in lines)
    assert words("".join(lines)) == words(text)
    assert any("FunASR" in line for line in lines)  # a Latin word is never split when it fits


def test_times_over_an_hour() -> None:
    segments = [Segment(3725.5, 3728.25, "Over an hour in."), Segment(36000.0, 36001.0, "Ten hours in.")]
    srt = srt_text(segments)
    assert "01:02:05,500 --> 01:02:08,250" in srt
    assert "10:00:00,000 --> 10:00:01,000" in srt
    cues = parse_srt(srt)
    assert [(s, e) for s, e, _ in cues] == [(3725.5, 3728.25), (36000.0, 36001.0)]


@pytest.mark.parametrize(
    ("seconds", "srt", "clock"),
    [
        (0.0, "00:00:00,000", "00:00"),
        (59.9996, "00:01:00,000", "00:59"),
        (61.5, "00:01:01,500", "01:01"),
        (3600.0, "01:00:00,000", "1:00:00"),
        (-3.0, "00:00:00,000", "00:00"),
        (float("nan"), "00:00:00,000", "00:00"),
    ],
)
def test_format_timestamp_and_clock(seconds: float, srt: str, clock: str) -> None:
    assert format_timestamp(seconds) == srt
    assert format_clock(seconds) == clock


# --------------------------------------------------------------------------------------------------
# Files of one video
# --------------------------------------------------------------------------------------------------


def _transcript(language: str = "en") -> Transcript:
    return Transcript(
        segments=(
            Segment(0.0, 2.6, "Welcome to the quarterly planning meeting."),
            Segment(2.9, 6.2, "Today we will review the budget and the product roadmap."),
            Segment(6.5, 9.8, "Please send your questions to the team before Friday."),
        ),
        language=language,
        backend="whisper",
        model="tiny.en",
    )


def _media(duration_s: float = 12.0) -> MediaInfo:
    return MediaInfo(
        duration_s=duration_s,
        size_bytes=123_456,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video=VideoStream(codec="h264", width=320, height=240, fps=25.0),
        audio=AudioStream(codec="aac", sample_rate=22050, channels=1),
        bit_rate=80_000,
    )


def test_a_complete_video_gets_every_file(tmp_path: Path, speech_video: Path) -> None:
    out_dir = tmp_path / "001-speech"
    shots = frames_from(speech_video, [1.0, 5.0, 9.0], out_dir / "screenshots")
    result = VideoResult(
        index=0,
        source=VideoSource.url("https://videos.example.com/speech.mp4", name="speech.mp4"),
        status=VideoStatus.OK,
        media=_media(),
        transcript=_transcript(),
        screenshots=shots,
        keywords=["budget", "roadmap"],
        notes=[UserText(zh="只有一个说话人", en="One speaker only")],
        stage_seconds={"probing": 0.05, "transcribing": 1.234567},
        processing_s=2.5,
        analysed_at=1_700_000_000.0,
    )

    outputs = write_video_outputs(result, out_dir)

    assert outputs.directory == out_dir
    assert outputs.transcript_json == out_dir / TRANSCRIPT_JSON
    assert outputs.transcript_txt == out_dir / TRANSCRIPT_TXT
    assert outputs.subtitles_srt == out_dir / SUBTITLES_SRT
    assert outputs.metadata_json == out_dir / METADATA_JSON
    assert outputs.contact_sheet == out_dir / CONTACT_SHEET
    assert not list(out_dir.glob(".*.tmp*")), "temporary files left behind"

    # transcript.json round-trips.
    data = json.loads(outputs.transcript_json.read_text(encoding="utf-8"))
    assert (data["language"], data["backend"], data["model"]) == ("en", "whisper", "tiny.en")
    assert data["text"] == _transcript().text
    back = tuple(Segment(s["start"], s["end"], s["text"]) for s in data["segments"])
    assert back == _transcript().segments

    # transcript.txt: one [mm:ss] line per segment, then the plain text.
    txt = outputs.transcript_txt.read_text(encoding="utf-8")
    assert txt.startswith("speech.mp4\n")
    assert "[00:02] Today we will review the budget and the product roadmap." in txt.splitlines()
    assert txt.rstrip().endswith(_transcript().text)

    cues = parse_srt(outputs.subtitles_srt.read_text(encoding="utf-8"))
    assert len(cues) == 3

    meta = json.loads(outputs.metadata_json.read_text(encoding="utf-8"))
    assert meta["status"] == "ok" and meta["failure"] is None
    assert meta["source"]["locator"] == "https://videos.example.com/speech.mp4"
    assert meta["media"]["resolution"] == "320x240"
    assert meta["media"]["duration_s"] == 12.0
    assert meta["keywords"] == ["budget", "roadmap"]
    assert meta["notes"] == [{"zh": "只有一个说话人", "en": "One speaker only"}]
    assert meta["transcript"]["segment_count"] == 3
    assert [(s["time_s"], s["reason"], s["file"]) for s in meta["screenshots"]] == [
        (1.0, "scene", "screenshots/shot-001.jpg"),
        (5.0, "scene", "screenshots/shot-002.jpg"),
        (9.0, "scene", "screenshots/shot-003.jpg"),
    ]
    assert meta["screenshots"][1]["timestamp"] == "00:00:05.000"
    assert meta["files"]["subtitles_srt"] == "subtitles.srt"
    assert meta["files"]["contact_sheet"] == "contact_sheet.jpg"
    assert meta["stage_seconds"] == {"probing": 0.05, "transcribing": 1.235}
    assert meta["processing_s"] == 2.5
    assert datetime.fromisoformat(meta["analysed_at"]).timestamp() == 1_700_000_000.0
    assert meta["analysed_at"].endswith("+00:00")

    with Image.open(outputs.contact_sheet) as sheet:
        assert sheet.format == "JPEG" and sheet.width > 320


def test_a_failed_video_still_gets_metadata_with_its_failure(tmp_path: Path) -> None:
    failure = VideoFailure(
        code="download_failed",
        stage="downloading",
        message=UserText(zh="链接不存在（HTTP 404）。", en="The link was not found (HTTP 404)."),
        detail="GET https://videos.example.com/missing.mp4 -> 404",
    )
    result = VideoResult(
        index=3,
        source=VideoSource.url("https://videos.example.com/missing.mp4"),
        status=VideoStatus.FAILED,
        failure=failure,
    )
    outputs = write_video_outputs(result, tmp_path / "004-missing")

    assert outputs.transcript_json is None and outputs.subtitles_srt is None and outputs.contact_sheet is None
    assert sorted(p.name for p in outputs.directory.iterdir()) == [METADATA_JSON]
    assert outputs.metadata_json is not None
    meta = json.loads(outputs.metadata_json.read_text(encoding="utf-8"))
    assert meta["status"] == "failed"
    assert VideoFailure.from_dict(meta["failure"]) == failure
    assert meta["media"] is None and meta["transcript"] is None and meta["screenshots"] == []


def test_no_transcript_means_no_subtitles_and_empty_speech_is_said(tmp_path: Path) -> None:
    silent = VideoResult(index=0, source=VideoSource.local("/data/silent.mp4"), status=VideoStatus.OK, media=_media())
    outputs = write_video_outputs(silent, tmp_path / "silent")
    assert outputs.transcript_json is None and outputs.transcript_txt is None and outputs.subtitles_srt is None

    quiet = VideoResult(
        index=1,
        source=VideoSource.local("/data/quiet.mp4"),
        status=VideoStatus.OK,
        transcript=Transcript(segments=(), language="zh", backend="funasr", model="paraformer-zh"),
    )
    outputs = write_video_outputs(quiet, tmp_path / "quiet")
    assert outputs.subtitles_srt is None
    assert not (tmp_path / "quiet" / SUBTITLES_SRT).exists()
    assert outputs.transcript_txt is not None
    assert "No speech was recognised" in outputs.transcript_txt.read_text(encoding="utf-8")


def test_unreadable_screenshots_do_not_stop_the_other_files(tmp_path: Path) -> None:
    from pipeline.models import Screenshot, ShotReason

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = VideoResult(
        index=0,
        source=VideoSource.local("/data/a.mp4"),
        status=VideoStatus.OK,
        transcript=_transcript(),
        screenshots=[Screenshot(1.0, broken, ShotReason.TIME)],
    )
    outputs = write_video_outputs(result, tmp_path / "out")
    assert outputs.contact_sheet is None
    assert outputs.subtitles_srt is not None and outputs.metadata_json is not None
    meta = json.loads(outputs.metadata_json.read_text(encoding="utf-8"))
    assert meta["screenshots"][0]["file"] == str(broken.resolve())  # outside the video's folder: absolute


def test_transcript_text_of_a_long_chinese_video_uses_hours() -> None:
    transcript = Transcript(
        segments=(Segment(5.0, 8.0, "开场白。"), Segment(3725.0, 3730.0, "一小时以后。")),
        language="zh",
        backend="funasr",
        model="paraformer-zh",
    )
    lines = transcript_text(transcript, "会议录像").splitlines()
    assert lines[0] == "会议录像"
    assert "[0:00:05] 开场白。" in lines
    assert "[1:02:05] 一小时以后。" in lines
    assert lines[-1] == "开场白。一小时以后。"
