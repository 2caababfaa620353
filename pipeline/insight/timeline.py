"""Times between the transcript and the model: the transcript as ``[mm:ss] sentence`` lines, cut into
chunks that fit one call, and the model's times checked against reality (snapped to the start of a real
sentence; dropped when outside the video).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from pipeline.insight.models import Chapter, KeyPoint, clock
from pipeline.models import Segment

_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d{1,3}):(\d{1,2}(?:\.\d+)?)\s*$")


def parse_time(value: float | int | str | None) -> float | None:
    """Seconds from what a model writes: ``75``, ``"75.5"``, ``"01:15"``, ``"1:01:15"``; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().strip("[]")
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    try:
        return float(text)
    except ValueError:
        return None


def spoken_segments(segments: Sequence[Segment]) -> list[Segment]:
    return [s for s in segments if s.text.strip()]


def timed_lines(segments: Sequence[Segment]) -> list[str]:
    return [f"[{clock(s.start)}] {' '.join(s.text.split())}" for s in segments]


def chunk_segments(segments: Sequence[Segment], max_chars: int) -> list[list[Segment]]:
    """Consecutive runs of sentences whose ``[mm:ss]`` lines stay under ``max_chars`` each (a single
    sentence longer than that is a chunk of its own)."""
    chunks: list[list[Segment]] = []
    current: list[Segment] = []
    size = 0
    for segment, line in zip(segments, timed_lines(segments), strict=True):
        if current and size + len(line) + 1 > max_chars:
            chunks.append(current)
            current, size = [], 0
        current.append(segment)
        size += len(line) + 1
    if current:
        chunks.append(current)
    return chunks


def thin(segments: Sequence[Segment], max_chars: int) -> list[Segment]:
    """Every k-th sentence, evenly over the video, so the lines fit ``max_chars``; times stay true."""
    total = sum(len(line) + 1 for line in timed_lines(segments))
    if total <= max_chars or not segments:
        return list(segments)
    step = total / max_chars
    kept = [segments[int(i * step)] for i in range(int(len(segments) / step))]
    return kept or [segments[0]]


class Snapper:
    """Checks the model's times: snaps each to the nearest sentence start, drops what lies outside."""

    def __init__(self, segments: Sequence[Segment], duration_s: float) -> None:
        self._starts = sorted(s.start for s in segments)
        self.duration_s = duration_s
        self.dropped = 0

    def snap(self, value: float | int | str | None) -> float | None:
        seconds = parse_time(value)
        limit = self.duration_s if self.duration_s > 0 else (self._starts[-1] + 1 if self._starts else 0.0)
        if seconds is None or seconds != seconds or seconds > limit + 0.5 or seconds < -0.5:
            self.dropped += 1
            return None
        seconds = min(max(0.0, seconds), limit)
        if not self._starts:
            return seconds
        i = bisect.bisect_left(self._starts, seconds)
        near = [self._starts[j] for j in (i - 1, i) if 0 <= j < len(self._starts)]
        return min(near, key=lambda start: (abs(start - seconds), start))

    def chapters(self, raw: Sequence[tuple[float | int | str | None, str, str]]) -> list[Chapter]:
        """Chapters in time order, one per snapped start (a duplicate start keeps the first title)."""
        by_start: dict[float, Chapter] = {}
        for when, title, line in raw:
            start = self.snap(when)
            if start is not None and title.strip() and start not in by_start:
                by_start[start] = Chapter(start, title.strip(), line.strip())
        return [by_start[k] for k in sorted(by_start)]

    def key_points(self, raw: Sequence[tuple[float | int | str | None, str]]) -> list[KeyPoint]:
        points = []
        for when, text in raw:
            time_s = self.snap(when)
            if time_s is not None and text.strip():
                points.append(KeyPoint(time_s, text.strip()))
        return sorted(points, key=lambda p: p.time_s)


def excerpt(segments: Sequence[Segment], start_s: float, end_s: float | None) -> list[Segment]:
    """The sentences that begin in ``[start_s, end_s)``."""
    return [s for s in segments if s.start >= start_s - 1e-6 and (end_s is None or s.start < end_s - 1e-6)]


def speech_at(segments: Sequence[Segment], time_s: float) -> str:
    """The sentence being said at ``time_s`` (else the last one begun before it)."""
    current = ""
    for segment in segments:
        if segment.start <= time_s + 1e-6:
            current = segment.text.strip()
            if time_s <= segment.end:
                return current
        else:
            break
    return current
