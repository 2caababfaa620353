"""What insight adds to a video and to a batch: plain dataclasses, stored in results.json and in the
Q&A store, read by the bot for its rows and cards.

Times are seconds from the start of the video, already checked against the transcript and the video's
length (``pipeline.insight.timeline``): a chapter's start is always the start of a real sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.models import UserText
from pipeline.subtitles import format_clock


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour): how times are cited to people and by the model."""
    return format_clock(seconds)


@dataclass(frozen=True)
class Chapter:
    start_s: float
    title: str
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "time": clock(self.start_s), "title": self.title,
                "summary": self.summary}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chapter:
        return cls(float(data.get("start_s", 0.0)), str(data.get("title", "")), str(data.get("summary", "")))


@dataclass(frozen=True)
class KeyPoint:
    time_s: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"time_s": round(self.time_s, 3), "time": clock(self.time_s), "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyPoint:
        return cls(float(data.get("time_s", 0.0)), str(data.get("text", "")))


@dataclass(frozen=True)
class FrameNote:
    """What the vision model saw in one screenshot, next to what was being said at that moment."""

    time_s: float
    screenshot: str  # the file name under the video's screenshots/
    description: str
    on_screen_text: str = ""
    speech: str = ""  # the transcript sentence at that time (ours, not the model's)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_s": round(self.time_s, 3),
            "time": clock(self.time_s),
            "screenshot": self.screenshot,
            "description": self.description,
            "on_screen_text": self.on_screen_text,
            "speech": self.speech,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameNote:
        return cls(
            time_s=float(data.get("time_s", 0.0)),
            screenshot=str(data.get("screenshot", "")),
            description=str(data.get("description", "")),
            on_screen_text=str(data.get("on_screen_text", "")),
            speech=str(data.get("speech", "")),
        )


@dataclass(frozen=True)
class VisualRead:
    overall: str
    frames: tuple[FrameNote, ...] = ()
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "model": self.model, "frames": [f.to_dict() for f in self.frames]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VisualRead:
        return cls(
            overall=str(data.get("overall", "")),
            frames=tuple(FrameNote.from_dict(f) for f in data.get("frames") or ()),
            model=str(data.get("model", "")),
        )


@dataclass(frozen=True)
class PresetAnalysis:
    """The preset's own fields (decisions and action items; hook, selling points...), as validated
    JSON, and the same rendered as lines for people (cells, cards, notes.md)."""

    preset: str
    fields: Mapping[str, Any]
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "fields": dict(self.fields), "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PresetAnalysis:
        return cls(
            preset=str(data.get("preset", "general")),
            fields=dict(data.get("fields") or {}),
            lines=tuple(str(x) for x in data.get("lines") or ()),
        )


@dataclass
class Usage:
    """Tokens spent, as the endpoint counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0)), int(data.get("calls", 0)))


@dataclass(frozen=True)
class InsightProblem:
    """Why (part of) the insight is missing: a stable code, the words for the user, a technical detail."""

    code: str
    message: UserText
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message.to_dict(), "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InsightProblem:
        message = UserText.from_dict(data.get("message") or {})
        return cls(str(data.get("code", "")), message, str(data.get("detail", "")))


@dataclass
class VideoInsight:
    """Everything the models said about one video. Any part may be missing; ``problems`` says why."""

    preset: str = "general"
    summary: str = ""
    chapters: list[Chapter] = field(default_factory=list)
    key_points: list[KeyPoint] = field(default_factory=list)
    visual: VisualRead | None = None
    analysis: PresetAnalysis | None = None
    request: str = ""  # the free-form analysis request, as sent (capped)
    request_answer: str = ""
    raw_text: str = ""  # a text answer that never became valid JSON, kept rather than lost
    problems: list[InsightProblem] = field(default_factory=list)
    notes: list[UserText] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    models: list[str] = field(default_factory=list)

    @property
    def has_content(self) -> bool:
        return bool(self.summary or self.chapters or self.key_points or self.visual or self.raw_text)

    @property
    def missing_reason(self) -> UserText | None:
        """The first problem's words when nothing at all came back (what a row shows instead)."""
        if self.has_content or not self.problems:
            return None
        return self.problems[0].message

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "summary": self.summary,
            "chapters": [c.to_dict() for c in self.chapters],
            "key_points": [k.to_dict() for k in self.key_points],
            "visual": self.visual.to_dict() if self.visual else None,
            "analysis": self.analysis.to_dict() if self.analysis else None,
            "request": self.request,
            "request_answer": self.request_answer,
            "raw_text": self.raw_text,
            "problems": [p.to_dict() for p in self.problems],
            "notes": [n.to_dict() for n in self.notes],
            "usage": self.usage.to_dict(),
            "models": list(self.models),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoInsight:
        visual = data.get("visual")
        analysis = data.get("analysis")
        return cls(
            preset=str(data.get("preset", "general")),
            summary=str(data.get("summary", "")),
            chapters=[Chapter.from_dict(c) for c in data.get("chapters") or ()],
            key_points=[KeyPoint.from_dict(k) for k in data.get("key_points") or ()],
            visual=VisualRead.from_dict(visual) if visual else None,
            analysis=PresetAnalysis.from_dict(analysis) if analysis else None,
            request=str(data.get("request", "")),
            request_answer=str(data.get("request_answer", "")),
            raw_text=str(data.get("raw_text", "")),
            problems=[InsightProblem.from_dict(p) for p in data.get("problems") or ()],
            notes=[UserText.from_dict(n) for n in data.get("notes") or ()],
            usage=Usage.from_dict(data.get("usage") or {}),
            models=[str(m) for m in data.get("models") or ()],
        )


@dataclass(frozen=True)
class OverviewRow:
    """One video in the side-by-side table of a batch (ad material: its hook and selling points)."""

    video: int  # 1-based, as people count
    name: str
    hook: str = ""
    selling_points: tuple[str, ...] = ()
    gist: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video, "name": self.name, "hook": self.hook,
                "selling_points": list(self.selling_points), "gist": self.gist}  # fmt: skip


@dataclass
class BatchOverview:
    """What the videos of one job share and how they differ."""

    shared: str = ""
    differences: str = ""
    rows: list[OverviewRow] = field(default_factory=list)
    problem: InsightProblem | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "shared": self.shared,
            "differences": self.differences,
            "rows": [r.to_dict() for r in self.rows],
            "problem": self.problem.to_dict() if self.problem else None,
            "usage": self.usage.to_dict(),
            "model": self.model,
        }


INSIGHT_OFF_NOTE = UserText(
    zh="AI 摘要未开启：设置 LLM_BASE_URL 和 LLM_MODEL（以及 LLM_API_KEY）即可得到摘要、章节和要点。",
    en="Insight is off: set LLM_BASE_URL and LLM_MODEL (and LLM_API_KEY) to get summaries, chapters and key points.",
)
