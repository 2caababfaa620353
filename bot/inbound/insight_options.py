"""The insight options of a task, read from a message or the task form: the preset
(``预设：会议|广告|通用`` / ``preset: meeting|ad|general``) and a free-form analysis request
(``分析要求：…`` / ``analysis: …``, to the end of its line). Pure: no I/O.

They are taken out of the message text before the other options are read, so words inside a request
("截图", "name:") are never mistaken for screenshot or task-name options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.insight.models import INSIGHT_OFF_NOTE
from pipeline.insight.presets import resolve_preset
from pipeline.models import AnalysisOptions, UserText

_REQUEST = re.compile(
    r"(?:分析要求|分析需求|\banalysis(?:\s+request)?|\bprompt)\s*[:：]\s*(?P<v>[^\n]*)", re.IGNORECASE
)
_PRESET = re.compile(r"(?:预设|\bpreset)\s*[:：=]?\s*(?P<v>[^\s,，;；。]*)", re.IGNORECASE)


@dataclass(frozen=True)
class InsightChoice:
    preset: str | None = None  # the canonical preset name; None = the default (general)
    request: str | None = None


def take_insight_options(text: str) -> tuple[str, InsightChoice]:
    """``text`` without the insight options, and what they said. An unknown preset raises
    ``InvalidOptionsError`` whose ``user_message`` lists the presets."""
    request: str | None = None
    found = _REQUEST.search(text)
    if found:
        request = found.group("v").strip() or None
        text = text[: found.start()] + " " + text[found.end() :]
    preset: str | None = None
    named = _PRESET.search(text)
    if named:
        preset = checked_preset(named.group("v"))
        text = text[: named.start()] + " " + text[named.end() :]
    return text, InsightChoice(preset=preset, request=request)


def checked_preset(name: str | None) -> str | None:
    """The canonical name of the preset the user wrote (aliases such as 会议 or lecture included), or
    None when nothing was written."""
    if name is None or not name.strip():
        return None
    return resolve_preset(name).name


def insight_off_notes(options: AnalysisOptions, *, insight_enabled: bool) -> tuple[UserText, ...]:
    """What the queued card says when a task asks for a preset or an analysis request that nothing will
    use (insight is off): the job still runs, but the user should not wait for an analysis that never
    comes, and should know how to turn it on."""
    if insight_enabled or not (options.preset or options.analysis_request):
        return ()
    return (
        UserText(
            zh=f"这个任务的预设/分析要求不会被使用。{INSIGHT_OFF_NOTE.zh}",
            en=f"The preset / analysis request of this task will not be used. {INSIGHT_OFF_NOTE.en}",
        ),
    )
