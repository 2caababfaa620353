"""Presets: what to look for in a video besides the summary, and the free-form analysis request.

A preset is a name the user picks (message option, form field, ``--preset``), extra instructions for
the model, and a pydantic schema its extra answer must fit. ``general`` asks for nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from pipeline.errors import InvalidOptionsError
from pipeline.models import UserText

MAX_REQUEST_CHARS = 2000


class ActionItem(BaseModel):
    task: str
    owner: str = ""
    time: str = ""


class MeetingFields(BaseModel):
    decisions: list[str] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)


class AdFields(BaseModel):
    hook: str = ""
    selling_points: list[str] = Field(default_factory=list)
    call_to_action: str = ""
    audience: str = ""
    structure: list[str] = Field(default_factory=list)


def _meeting_lines(fields: Mapping[str, Any]) -> list[str]:
    data = MeetingFields.model_validate(fields)
    lines = [f"决定 Decision: {d}" for d in data.decisions]
    for item in data.action_items:
        owner = item.owner or "未指定 unassigned"
        when = f" [{item.time}]" if item.time else ""
        lines.append(f"待办 Action: {item.task} — {owner}{when}")
    return lines


def _ad_lines(fields: Mapping[str, Any]) -> list[str]:
    data = AdFields.model_validate(fields)
    lines = [f"开头钩子 Hook: {data.hook}"] if data.hook else []
    lines += [f"卖点 Selling point: {p}" for p in data.selling_points]
    if data.call_to_action:
        lines.append(f"行动号召 CTA: {data.call_to_action}")
    if data.audience:
        lines.append(f"目标人群 Audience: {data.audience}")
    if data.structure:
        lines.append("结构 Structure: " + " → ".join(data.structure))
    return lines


@dataclass(frozen=True)
class Preset:
    name: str
    label: UserText
    instructions: str  # added to the prompt; empty for general
    schema: type[BaseModel] | None = None
    render: Callable[[Mapping[str, Any]], list[str]] | None = None


PRESETS: dict[str, Preset] = {
    "general": Preset("general", UserText("通用", "general"), ""),
    "meeting": Preset(
        "meeting",
        UserText("会议/课程", "meeting / lecture"),
        'Also fill "extra" with {"decisions": [strings], "action_items": [{"task", "owner", "time"}]}: '
        "the decisions taken and the action items with their owners where a name is said (empty owner "
        "otherwise) and the mm:ss time they are mentioned.",
        MeetingFields,
        _meeting_lines,
    ),
    "ad": Preset(
        "ad",
        UserText("广告素材", "ad material"),
        'Also fill "extra" with {"hook", "selling_points": [strings], "call_to_action", "audience", '
        '"structure": [strings]}: the hook of the first seconds, the selling points, the call to action, '
        "the audience it targets and the structure of the ad, from what is said and shown.",
        AdFields,
        _ad_lines,
    ),
}
# Names people type for the same thing.
_ALIASES = {
    "lecture": "meeting",
    "class": "meeting",
    "会议": "meeting",
    "课程": "meeting",
    "讲座": "meeting",
    "ads": "ad",
    "advert": "ad",
    "ad-material": "ad",
    "ad_material": "ad",
    "广告": "ad",
    "广告素材": "ad",
    "通用": "general",
    "default": "general",
}
DEFAULT_PRESET = "general"


def resolve_preset(name: str | None) -> Preset:
    """The preset called ``name`` (or one of its aliases); ``InvalidOptionsError`` listing the choices
    for any other name."""
    key = (name or DEFAULT_PRESET).strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESETS:
        return PRESETS[key]
    shown = (name or "").strip()[:40]
    raise InvalidOptionsError(
        f"unknown preset {shown!r}",
        UserText(
            zh=f"没有叫“{shown}”的分析模板。可用：general（通用）、meeting（会议/课程）、ad（广告素材）。",
            en=f"There is no analysis preset called “{shown}”. Use general, meeting (or lecture) or ad.",
        ),
    )


def cap_request(text: str | None) -> tuple[str, UserText | None]:
    """The free-form analysis request cut to ``MAX_REQUEST_CHARS``, and a note when it was cut."""
    request = (text or "").strip()
    if len(request) <= MAX_REQUEST_CHARS:
        return request, None
    note = UserText(
        zh=f"分析要求有 {len(request)} 个字符，只用了前 {MAX_REQUEST_CHARS} 个。",
        en=f"The analysis request had {len(request)} characters; only the first {MAX_REQUEST_CHARS} were used.",
    )
    return request[:MAX_REQUEST_CHARS], note
