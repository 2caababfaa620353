"""``notes.md`` for one video: the summary, then each chapter with its screenshot and the transcript it
covers, then key points, the preset's fields, the analysis request's answer and the visual read.
Plain Markdown with relative image links: readable in any editor, in a zip, or attached to a row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.insight.models import Chapter, VideoInsight, clock
from pipeline.insight.timeline import excerpt, spoken_segments
from pipeline.models import Screenshot, Segment, VideoResult
from pipeline.outputs import relative_path, write_text

NOTES_MD = "notes.md"


def write_notes(result: VideoResult, out_dir: Path) -> Path:
    path = out_dir / NOTES_MD
    write_text(path, notes_markdown(result, out_dir))
    return path


def notes_markdown(result: VideoResult, out_dir: Path) -> str:
    insight = result.insight or VideoInsight()
    segments = spoken_segments(result.transcript.segments) if result.transcript else []
    out = [f"# {_one_line(result.title)}", ""]
    if insight.missing_reason is not None:
        out += [f"> {insight.missing_reason.zh}", f"> {insight.missing_reason.en}", ""]
    for note in insight.notes:
        out += [f"> {note.zh} / {note.en}", ""]
    if insight.summary:
        out += ["## 摘要 Summary", "", insight.summary, ""]
    if insight.raw_text:
        out += ["## 模型原文 Model's raw answer", "", "```", insight.raw_text.replace("```", "'''"), "```", ""]
    chapters = insight.chapters or ([Chapter(0.0, "全文 Transcript")] if segments else [])
    if chapters:
        out += ["## 章节 Chapters", ""]
    for i, chapter in enumerate(chapters):
        end = chapters[i + 1].start_s if i + 1 < len(chapters) else None
        out += [f"### [{clock(chapter.start_s)}] {_one_line(chapter.title)}", ""]
        if chapter.summary:
            out += [chapter.summary, ""]
        shot = _shot_for(result.screenshots, chapter.start_s, end)
        if shot is not None:
            out += [f"![{clock(shot.time_s)}]({relative_path(shot.path, out_dir)})", ""]
        out += _quote(excerpt(segments, chapter.start_s, end))
    if insight.key_points:
        out += ["## 要点 Key points", ""] + [f"- [{clock(k.time_s)}] {k.text}" for k in insight.key_points] + [""]
    if insight.analysis is not None and insight.analysis.lines:
        out += ["## 专项分析 Preset analysis", ""] + [f"- {line}" for line in insight.analysis.lines] + [""]
    if insight.request_answer:
        out += ["## 分析要求 Analysis request", "", f"> {_one_line(insight.request)[:300]}", "",
                insight.request_answer, ""]  # fmt: skip
    if insight.visual is not None:
        out += ["## 画面 Visual read", "", insight.visual.overall, ""]
        out += [f"- [{clock(f.time_s)}] {f.description}" + (f" （画面文字 text: {f.on_screen_text}）"
                if f.on_screen_text else "") for f in insight.visual.frames]  # fmt: skip
        out.append("")
    for p in insight.problems:
        out += [f"> ⚠ {p.message.zh} / {p.message.en}", ""]
    if insight.models:
        out += [f"_模型 Models: {', '.join(insight.models)} · tokens: {insight.usage.total_tokens}_", ""]
    return "\n".join(out).rstrip() + "\n"


def _shot_for(shots: Sequence[Screenshot], start: float, end: float | None) -> Screenshot | None:
    """The first screenshot inside the chapter, else the closest one to its start."""
    inside = [s for s in shots if s.time_s >= start - 0.5 and (end is None or s.time_s < end)]
    if inside:
        return min(inside, key=lambda s: s.time_s)
    return min(shots, key=lambda s: abs(s.time_s - start), default=None)


def _quote(segments: Sequence[Segment]) -> list[str]:
    if not segments:
        return []
    return [f"> [{clock(s.start)}] {_one_line(s.text)}  " for s in segments] + [""]


def _one_line(text: str) -> str:
    return " ".join(text.split())
