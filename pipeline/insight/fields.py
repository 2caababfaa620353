"""Insight as text for places with cells and size limits: a Bitable row, a spreadsheet row, a card.
The bot and ``results.xlsx`` use the same words from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.insight.models import BatchOverview, VideoInsight, clock
from pipeline.models import VideoResult


@dataclass(frozen=True)
class InsightFields:
    """One video's insight as plain strings, one per column."""

    summary: str
    chapters: str  # "[mm:ss] title — line" per line
    key_points: str  # "[mm:ss] text" per line
    visual: str  # overall, then "[mm:ss] what is on screen" per line
    analysis: str  # the preset's fields as lines
    request_answer: str
    reason: str  # why insight (or part of it) is missing, "中文 / English", one per line
    notes: str
    models: str
    tokens: int


def insight_fields(insight: VideoInsight) -> InsightFields:
    visual = ""
    if insight.visual is not None:
        frames = [f"[{clock(f.time_s)}] {f.description}" for f in insight.visual.frames]
        visual = "\n".join([insight.visual.overall, *frames]).strip()
    return InsightFields(
        summary=insight.summary or insight.raw_text,
        chapters="\n".join(
            f"[{clock(c.start_s)}] {c.title}" + (f" — {c.summary}" if c.summary else "") for c in insight.chapters
        ),
        key_points="\n".join(f"[{clock(k.time_s)}] {k.text}" for k in insight.key_points),
        visual=visual,
        analysis="\n".join(insight.analysis.lines) if insight.analysis else "",
        request_answer=insight.request_answer,
        reason="\n".join(f"{p.message.zh} / {p.message.en}" for p in insight.problems),
        notes="\n".join(f"{n.zh} / {n.en}" for n in insight.notes),
        models=", ".join(insight.models),
        tokens=insight.usage.total_tokens,
    )


def overview_text(overview: BatchOverview) -> str:
    """The overview as lines: what is shared, the differences, then one line per video."""
    lines = []
    if overview.shared:
        lines.append(f"共同点 Shared: {overview.shared}")
    if overview.differences:
        lines.append(f"不同点 Differences: {overview.differences}")
    for row in overview.rows:
        line = f"#{row.video} {row.name}: "
        if row.hook or row.selling_points:
            line += f"钩子 Hook: {row.hook or '-'}; 卖点 Selling points: {'; '.join(row.selling_points) or '-'}"
        else:
            line += row.gist
        lines.append(line)
    if overview.problem is not None:
        lines.append(f"{overview.problem.message.zh} / {overview.problem.message.en}")
    return "\n".join(lines)


def card_gist(videos: Sequence[VideoResult], *, max_chars: int = 12_000) -> list[tuple[int, str, str]]:
    """``(number, name, text)`` per video for a done card: its summary (or why there is none), plus the
    chapters when the job has one video; all texts together cut to ``max_chars`` (a card body is
    limited to 30 KB, which the rest of the card shares)."""
    out: list[tuple[int, str, str]] = []
    per_video = max(200, max_chars // max(1, len(videos)))
    for video in sorted(videos, key=lambda v: v.index):
        insight = video.insight
        if insight is None:
            continue
        fields = insight_fields(insight)
        text = fields.summary or (insight.missing_reason and str(insight.missing_reason)) or ""
        if len(videos) == 1 and fields.chapters:
            text += "\n" + fields.chapters
        if len(text) > per_video:
            text = text[: per_video - 1] + "…"
        out.append((video.index + 1, video.title, text))
    return out
