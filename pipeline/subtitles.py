"""Subtitles made for reading, and the time formats shared by every output.

Engine segments are not subtitles as they come: they overlap, some have no length, some run for
a paragraph. Cues made here never overlap and never have zero length; lines are at most
``MAX_LINE_WIDTH`` columns (a Chinese character takes two, as on screen), broken between words or
characters but never before a closing mark, preferably after a clause; sentences are packed into cues
of at most two balanced lines, and a segment split into several cues shares its time among them in
proportion to their text.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from pipeline.models import Segment

MAX_LINE_WIDTH = 42  # columns: the usual broadcast limit for Latin text, 21 Chinese characters
MAX_LINES_PER_CUE = 2
MIN_CUE_MS = 200  # the shortest cue made when timestamps have to be moved
_READING_MS_PER_COLUMN = 60  # about 17 Latin or 8 Chinese characters a second
_MIN_READING_MS = 1000
_MAX_READING_MS = 6000

# Marks that must not start a line, marks that must not end one, and where a line ends best.
_NO_BREAK_BEFORE = frozenset("，。、；：？！…）》」』】〕〉’”,.;:?!)]}%")
_NO_BREAK_AFTER = frozenset("（《「『【〔〈‘“([{")
_CLAUSE_END = frozenset("，。、；：？！…,.;:?!")
_SENTENCE_END = frozenset("。！？；…!?;.")

# A piece of text between two places a line may break, and whether a space separates it from the
# piece before.
Piece = tuple[str, bool]


# --------------------------------------------------------------------------------------------------
# Time formats
# --------------------------------------------------------------------------------------------------


def format_timestamp(seconds: float, *, decimal_mark: str = ",") -> str:
    """``HH:MM:SS,mmm`` as SRT wants it (``decimal_mark="."`` gives the WebVTT/ISO form)."""
    return _format_ms(_to_ms(seconds), decimal_mark)


def format_clock(seconds: float, *, with_hours: bool | None = None) -> str:
    """``mm:ss`` for people, ``h:mm:ss`` from an hour on (or always, with ``with_hours=True``, to keep
    a column of times aligned)."""
    total = int(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if with_hours or (with_hours is None and hours):
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def isoformat(timestamp: float) -> str:
    """A Unix time as ISO 8601 in UTC with its offset, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _to_ms(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return round(seconds * 1000)


def _format_ms(ms: int, decimal_mark: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


# --------------------------------------------------------------------------------------------------
# Line breaking
# --------------------------------------------------------------------------------------------------


def text_width(text: str) -> int:
    """Columns the text takes on screen: East Asian wide and full-width characters count two,
    combining marks none."""
    return sum(_char_width(ch) for ch in text)


@lru_cache(maxsize=4096)
def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def wrap_subtitle_text(text: str, width: int = MAX_LINE_WIDTH) -> list[str]:
    """Break ``text`` into lines of at most ``width`` columns: between words, between Chinese
    characters (never before a closing mark or after an opening one), after a clause where one ends
    near the end of a line, and inside a word only when the word alone is too long (a URL)."""
    return _wrap(_pieces(text, width), width)


def _pieces(text: str, width: int) -> list[Piece]:
    return [
        (part, space_before and i == 0)  # the parts of one over-long word follow each other directly
        for unit, space_before in _break_units(text)
        for i, part in enumerate(_hard_split(unit, width))
    ]


def _break_units(text: str) -> list[Piece]:
    """A Latin word with its punctuation, or one Chinese character with the marks that cling to it."""
    units: list[tuple[list[str], bool]] = []
    pending_space = False
    for ch in text:
        if ch.isspace():
            pending_space = bool(units)
            continue
        if units and not pending_space:
            last = units[-1][0]
            clings = ch in _NO_BREAK_BEFORE or last[-1] in _NO_BREAK_AFTER
            continues_word = _char_width(ch) != 2 and _char_width(last[-1]) != 2
            if clings or continues_word:
                last.append(ch)
                continue
        units.append(([ch], pending_space))
        pending_space = False
    return [("".join(chars), space) for chars, space in units]


def _hard_split(unit: str, width: int) -> list[str]:
    if text_width(unit) <= width:
        return [unit]
    parts: list[str] = []
    part = ""
    for ch in unit:
        if part and text_width(part) + _char_width(ch) > width:
            parts.append(part)
            part = ""
        part += ch
    if part:
        parts.append(part)
    return parts


def _wrap(pieces: Sequence[Piece], width: int) -> list[str]:
    lines: list[str] = []
    line: list[Piece] = []
    line_width = 0
    for text, space in pieces:
        piece = (text, space and bool(line))
        if line and line_width + _piece_width(piece) > width:
            head, line = _end_line(line, (text, True), width)
            lines.append(_join(head))
            line_width = _width(line)
            piece = (text, space and bool(line))
        line.append(piece)
        line_width += _piece_width(piece)
    if line:
        lines.append(_join(line))
    return lines


def _end_line(line: list[Piece], incoming: Piece, width: int) -> tuple[list[Piece], list[Piece]]:
    """Where a full line ends: after its last clause mark when that lies in the final 40% of the line
    and the rest still fits with the incoming piece; otherwise at its end."""
    head_width = _width(line)
    for i in range(len(line) - 1, 0, -1):
        head_width -= _piece_width(line[i])
        if head_width < width * 0.6:
            break
        if line[i - 1][0][-1] in _CLAUSE_END:
            rest = [(text, space and n > 0) for n, (text, space) in enumerate(line[i:])]
            if _width(rest) + _piece_width(incoming) <= width:
                return line[:i], rest
            break
    return line, []


def _balanced_wrap(pieces: Sequence[Piece], width: int) -> list[str]:
    """As few lines as plain wrapping gives, but of even length: no lone word on a last line."""
    lines = _wrap(pieces, width)
    if len(lines) < 2:
        return lines
    narrowest = max(text_width(text) for text, _ in pieces)
    for trial in range(max(narrowest, math.ceil(_width(pieces) / len(lines))), width):
        candidate = _wrap(pieces, trial)
        if len(candidate) == len(lines):
            return candidate
    return lines


def _width(pieces: Sequence[Piece]) -> int:
    return sum(_piece_width(piece) for piece in pieces) - (1 if pieces and pieces[0][1] else 0)


def _piece_width(piece: Piece) -> int:
    return _cached_width(piece[0]) + (1 if piece[1] else 0)


@lru_cache(maxsize=16384)
def _cached_width(text: str) -> int:
    """Pieces (words, characters) repeat endlessly while wrapping is tried at several widths."""
    return text_width(text)


def _join(pieces: Sequence[Piece]) -> str:
    return "".join((" " + text) if space and n else text for n, (text, space) in enumerate(pieces))


def _sentences(pieces: Sequence[Piece]) -> list[list[Piece]]:
    sentences: list[list[Piece]] = [[]]
    for piece in pieces:
        sentences[-1].append(piece)
        if piece[0][-1] in _SENTENCE_END:
            sentences.append([])
    return [s for s in sentences if s]


def cue_texts(text: str, width: int = MAX_LINE_WIDTH, max_lines: int = MAX_LINES_PER_CUE) -> list[tuple[str, ...]]:
    """The text of one segment as the lines of one or more cues: whole sentences packed together
    while they fit in ``max_lines`` lines, a longer sentence in balanced lines taken ``max_lines``
    at a time."""
    cues: list[tuple[str, ...]] = []
    current: list[Piece] = []
    for sentence in _sentences(_pieces(text, width)):
        if len(_wrap(current + sentence, width)) <= max_lines:
            current += sentence
            continue
        if current:
            cues.append(tuple(_balanced_wrap(current, width)))
            current = []
        lines = _balanced_wrap(sentence, width)
        if len(lines) <= max_lines:
            current = sentence
        else:
            cues.extend(tuple(lines[i : i + max_lines]) for i in range(0, len(lines), max_lines))
    if current:
        cues.append(tuple(_balanced_wrap(current, width)))
    return cues


# --------------------------------------------------------------------------------------------------
# Cues and SRT
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen: milliseconds from the start, and its lines."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def subtitle_cues(
    segments: Iterable[Segment],
    *,
    line_width: int = MAX_LINE_WIDTH,
    max_lines: int = MAX_LINES_PER_CUE,
) -> list[Cue]:
    """Segments -> cues ready for SRT: empty text dropped, sorted, overlaps trimmed, zero or negative
    lengths given a reading time, long text wrapped and split into proportionally timed cues."""
    cues: list[Cue] = []
    for start_ms, end_ms, text in _untangle(segments):
        cues.extend(_share_time(cue_texts(text, line_width, max_lines), start_ms, end_ms))
    return cues


def _untangle(segments: Iterable[Segment]) -> list[tuple[int, int, str]]:
    """Segments as (start ms, end ms, text), in order, each after the one before and never empty."""
    items: list[tuple[int, int, str]] = []
    for seg in segments:
        text = " ".join(seg.text.split())
        if text and math.isfinite(seg.start) and math.isfinite(seg.end):
            items.append((_to_ms(seg.start), round(seg.end * 1000), text))
    items.sort(key=lambda item: (item[0], item[1]))

    untangled: list[tuple[int, int, str]] = []
    for start, end, text in items:
        if untangled and start < untangled[-1][1]:
            prev_start, prev_end, prev_text = untangled[-1]
            # Trim the earlier cue to make room, but leave it long enough to read: when both start
            # (almost) together the later one waits.
            if start - prev_start < MIN_CUE_MS:
                start = min(prev_end, prev_start + MIN_CUE_MS)
            untangled[-1] = (prev_start, start, prev_text)
        if end <= start:
            end = start + _reading_ms(text)
        untangled.append((start, end, text))
    return untangled


def _reading_ms(text: str) -> int:
    return max(_MIN_READING_MS, min(_MAX_READING_MS, text_width(text) * _READING_MS_PER_COLUMN))


def _share_time(groups: Sequence[tuple[str, ...]], start_ms: int, end_ms: int) -> list[Cue]:
    if not groups:
        return []
    duration = end_ms - start_ms
    if len(groups) == 1 or duration < len(groups):
        # Too short to share out (not even a millisecond each): one cue with all the lines.
        return [Cue(start_ms, end_ms, tuple(line for group in groups for line in group))]
    weights = [max(1, sum(text_width(line) for line in group)) for group in groups]
    total = sum(weights)
    cues: list[Cue] = []
    cursor = start_ms
    done = 0
    for index, (group, weight) in enumerate(zip(groups, weights, strict=True)):
        done += weight
        left = len(groups) - index - 1
        stop = end_ms if not left else min(max(start_ms + round(duration * done / total), cursor + 1), end_ms - left)
        cues.append(Cue(cursor, stop, group))
        cursor = stop
    return cues


def srt_text(segments: Iterable[Segment]) -> str:
    """A complete SRT document for the segments; an empty string when there is nothing to show."""
    blocks = [
        f"{number}\n{_format_ms(cue.start_ms, ',')} --> {_format_ms(cue.end_ms, ',')}\n{cue.text}\n"
        for number, cue in enumerate(subtitle_cues(segments), start=1)
    ]
    return "\n".join(blocks)
