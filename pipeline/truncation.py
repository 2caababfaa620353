"""A file cut short (an interrupted upload or download) can keep a complete header: ffprobe then reports
the full duration and ffmpeg decodes what is there without failing, so the video would pass as "OK"
with half a transcript. The decoded audio says how much was really there; when it falls clearly short
of what the header promised, the row's notes say so."""

from __future__ import annotations

import contextlib
import wave
from pathlib import Path

from pipeline.models import MediaInfo, UserText
from pipeline.subtitles import format_clock

# Encoders pad and prime audio by a few frames, and an audio track may end a little before the picture:
# a shortfall under this many seconds, or this share of the length, is not called truncation.
TOLERANCE_S = 1.0
TOLERANCE_FRACTION = 0.03


def decoded_seconds(wav: Path) -> float | None:
    """The length of a PCM WAV ffmpeg wrote; None when it cannot be read."""
    with contextlib.suppress(OSError, EOFError, wave.Error), wave.open(str(wav), "rb") as audio:
        rate = audio.getframerate()
        return audio.getnframes() / rate if rate > 0 else None
    return None


def truncation_note(media: MediaInfo, decoded_s: float | None) -> UserText | None:
    """A note for the row when the decoded audio is clearly shorter than the header's duration (the
    audio track's own, where the header gives one: a track may end before the picture on purpose)."""
    expected = (media.audio.duration_s if media.audio is not None else 0.0) or media.duration_s
    if decoded_s is None or expected <= 0:
        return None
    if expected - decoded_s <= max(TOLERANCE_S, expected * TOLERANCE_FRACTION):
        return None
    readable, promised = format_clock(decoded_s), format_clock(expected)
    return UserText(
        zh=f"文件不完整（可能上传或下载中断）：标称时长 {promised}，实际只能读取 {readable}；"
        "文字稿和截图只覆盖可读部分。请重新上传完整的文件。",
        en=f"The file is incomplete (an interrupted upload or download?): it claims {promised} but only "
        f"{readable} could be read; the transcript and screenshots cover that part only. Send the whole file again.",
    )
