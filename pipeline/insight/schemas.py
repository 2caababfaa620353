"""The shapes the model must answer in (validated with pydantic). Lenient where models differ in
harmless ways (a time as ``75`` or ``"01:15"``, a missing list), strict where it matters (a JSON
object with the named fields)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

TimeValue = float | int | str | None


class ChapterAnswer(BaseModel):
    start: TimeValue = None
    title: str = ""
    summary: str = ""


class KeyPointAnswer(BaseModel):
    time: TimeValue = None
    text: str = ""


class TextAnswer(BaseModel):
    summary: str
    chapters: list[ChapterAnswer] = Field(default_factory=list)
    key_points: list[KeyPointAnswer] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)
    request_answer: str = ""


class FrameAnswer(BaseModel):
    index: int
    description: str = ""
    on_screen_text: str = ""


class VisualAnswer(BaseModel):
    overall: str
    frames: list[FrameAnswer] = Field(default_factory=list)


class OverviewAnswer(BaseModel):
    shared: str
    differences: str = ""


class CitationAnswer(BaseModel):
    video: int = 1
    time: TimeValue = None


class QAAnswer(BaseModel):
    answer: str
    found: bool = True
    citations: list[CitationAnswer] = Field(default_factory=list)
