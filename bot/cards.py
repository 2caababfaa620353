"""Card JSON 2.0 builders. Pure functions of plain data; Chinese first, English second everywhere.

Anything a user wrote (links, file names, task names) goes into ``plain_text`` elements, never into
``markdown``, so it cannot inject mentions or links. Every card stays under Feishu's 30 KB limit: long
lists are cut with an "and N more" line, and ``fit`` shrinks them further if a card is still too big.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from bot.commands import FEISHU_BITABLE, FEISHU_RESOURCE, OPTIONS_EXAMPLE
from pipeline.models import JobSpec, ScreenshotMode, ScreenshotPlan, UserText, VideoSource

Card = dict[str, Any]

CARD_LIMIT_BYTES = 30 * 1024
# Room left for what Feishu adds around the card when it stores the message.
_CARD_BUDGET_BYTES = CARD_LIMIT_BYTES - 2 * 1024
MAX_LINE_CHARS = 200
# A single message (a reason, a problem) may quote what the user sent: long, but not unbounded.
MAX_MESSAGE_CHARS = 1000
SHOWN_VIDEOS = 10
# Rejected inputs are all named when they fit (a user should learn which of 50 links were not taken).
SHOWN_REJECTED = 40

OPEN_TASK_FORM = "open_task_form"
CANCEL = "cancel"

# ------------------------------------------------------------------------------------------------
# Elements
# ------------------------------------------------------------------------------------------------


def _card(title: UserText, template: str, elements: list[dict[str, Any]]) -> Card:
    return {
        "schema": "2.0",
        # update_multi: the card is shared by everyone in the chat and can be PATCHed in place later.
        "config": {"update_multi": True, "width_mode": "fill"},
        "header": {
            "title": {"tag": "plain_text", "content": title.zh},
            "subtitle": {"tag": "plain_text", "content": title.en},
            "template": template,
        },
        "body": {"elements": elements},
    }


def _markdown(content: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": content}


def _plain(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": content}}


def _hr() -> dict[str, Any]:
    return {"tag": "hr"}


def _button(label: UserText, value: dict[str, Any], *, kind: str = "default", confirm: UserText | None = None) -> Any:
    button: dict[str, Any] = {
        "tag": "button",
        "text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "type": kind,
        "behaviors": [{"type": "callback", "value": value}],
    }
    if confirm is not None:
        button["confirm"] = {
            "title": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
            "text": {"tag": "plain_text", "content": f"{confirm.zh}\n{confirm.en}"},
        }
    return button


def _clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _bulleted(lines: Sequence[str], shown: int, more: Callable[[int], str]) -> str:
    out = [f"• {_clip(line)}" for line in lines[:shown]]
    if len(lines) > shown:
        out.append(more(len(lines) - shown))
    return "\n".join(out)


def _rejected_block(rejected: Sequence[UserText], shown: int) -> list[dict[str, Any]]:
    if not rejected:
        return []
    return [
        _markdown("**未处理的输入 / Not used**"),
        _plain(_bulleted([r.zh for r in rejected], shown, lambda n: f"……另有 {n} 项")),
        _plain(_bulleted([r.en for r in rejected], shown, lambda n: f"… and {n} more")),
    ]


def fit(build: Callable[[int], Card], start: int) -> Card:
    """Build with ``start`` list items shown; halve until the JSON fits the card budget."""
    shown = start
    while True:
        card = build(shown)
        if shown <= 1 or len(json.dumps(card, ensure_ascii=False).encode()) <= _CARD_BUDGET_BYTES:
            return card
        shown //= 2


# ------------------------------------------------------------------------------------------------
# Help
# ------------------------------------------------------------------------------------------------


def _accepts(max_links: int) -> tuple[str, str]:
    zh = (
        "**可以发送：**\n"
        f"- 视频链接（http/https，一条消息最多 {max_links} 个）\n"
        "- 视频文件（直接发送到会话）\n"
        "- 多维表格链接（…/base/…?table=…），表中的视频会逐个分析\n"
        "**可选参数（写在同一条消息里）：**\n"
        "- `截图 0,5,12.5`：在这些秒数截图\n"
        "- `每10秒截图` 或 `间隔 10`：固定间隔截图\n"
        "- `场景`：在画面切换处截图（默认）\n"
        "- `任务：周会`：任务名称\n"
        "- `语言：中文` / `语言：英文`：语音的语言（默认自动）"
    )
    en = (
        "**Send:**\n"
        f"- video links (http/https, up to {max_links} per message)\n"
        "- a video file (send it into the chat)\n"
        "- a Bitable link (…/base/…?table=…): every video the table lists is analysed\n"
        "**Options (in the same message):**\n"
        "- `times 0,5,12.5`: screenshots at these seconds\n"
        "- `every 10s` or `interval 10`: a screenshot every N seconds\n"
        "- `scenes`: screenshots at scene changes (the default)\n"
        "- `name: weekly sync`: the task name\n"
        "- `language: zh` / `language: en`: the spoken language (auto by default)"
    )
    return zh, en


def help_card(*, max_links: int = 20) -> Card:
    zh, en = _accepts(max_links)
    return _card(
        UserText(zh="视频分析助手 · 使用说明", en="Video Insight Bot · how to use"),
        "blue",
        [
            _markdown(zh),
            _markdown(f"**示例：** {OPTIONS_EXAMPLE.zh.removeprefix('示例：')}"),
            _hr(),
            _markdown(en),
            _markdown(f"**Example:** {OPTIONS_EXAMPLE.en.removeprefix('Example: ')}"),
            _button(
                UserText(zh="填写任务表单", en="Open the task form"),
                {"action": OPEN_TASK_FORM},
                kind="primary",
            ),
        ],
    )


# ------------------------------------------------------------------------------------------------
# Replies that create no job
# ------------------------------------------------------------------------------------------------


def nothing_card(reason: UserText, rejected: Sequence[UserText] = (), *, max_links: int = 20) -> Card:
    def build(shown: int) -> Card:
        zh, en = _accepts(max_links)
        return _card(
            UserText(zh="没有可分析的视频", en="Nothing to analyse"),
            "orange",
            [
                _plain(_clip(reason.zh, MAX_MESSAGE_CHARS)),
                _plain(_clip(reason.en, MAX_MESSAGE_CHARS)),
                *_rejected_block(rejected, shown),
                _hr(),
                _markdown(zh),
                _markdown(en),
                _button(UserText(zh="填写任务表单", en="Open the task form"), {"action": OPEN_TASK_FORM}),
            ],
        )

    return fit(build, SHOWN_REJECTED)


def error_card(problem: UserText, example: UserText = OPTIONS_EXAMPLE) -> Card:
    return _card(
        UserText(zh="参数有误，未创建任务", en="Invalid options: no task created"),
        "red",
        [
            _plain(_clip(problem.zh, MAX_MESSAGE_CHARS)),
            _plain(_clip(problem.en, MAX_MESSAGE_CHARS)),
            _hr(),
            _plain(_clip(example.zh, MAX_MESSAGE_CHARS)),
            _plain(_clip(example.en, MAX_MESSAGE_CHARS)),
            _markdown("请修改后重新发送；发送 **帮助** 查看用法。\nFix it and send again; send **help** for usage."),
        ],
    )


# ------------------------------------------------------------------------------------------------
# Queued job
# ------------------------------------------------------------------------------------------------


def video_label(source: VideoSource) -> tuple[str, str]:
    """How a source is named on cards, in Chinese and English."""
    if source.kind == FEISHU_RESOURCE:
        name = source.name or source.meta.get("file_name", "")
        return (name or "附件视频", name or "attached video")
    if source.kind == FEISHU_BITABLE:
        table = source.meta.get("table_id", "")
        where = source.meta.get("url") or source.locator
        return (
            f"多维表格中的视频{f'（数据表 {table}）' if table else ''}：{where}",
            f"videos listed in a Bitable{f' (table {table})' if table else ''}: {where}",
        )
    return (source.display_name, source.display_name)


def describe_plan(plan: ScreenshotPlan) -> UserText:
    if plan.mode is ScreenshotMode.INTERVAL and plan.interval_s is not None:
        return UserText(zh=f"每 {plan.interval_s:g} 秒截图一张", en=f"a screenshot every {plan.interval_s:g} s")
    if plan.mode is ScreenshotMode.TIMES:
        times = ", ".join(f"{t:g}" for t in plan.times_s)
        return UserText(zh=f"在第 {times} 秒截图", en=f"screenshots at {times} s")
    return UserText(zh="在画面切换和讲话处截图", en="screenshots at scene changes and speech")


def queued_card(job_id: str, spec: JobSpec) -> Card:
    """The card replied to the user's message when a job is queued; PATCHed later with progress."""
    labels = [video_label(s) for s in spec.sources]
    plan = describe_plan(spec.options.screenshots)
    language = {"zh": ("中文", "Chinese"), "en": ("英文", "English")}.get(spec.options.language or "")
    name = spec.options.task_name

    def build(shown: int) -> Card:
        videos_shown = min(shown, SHOWN_VIDEOS)
        videos_zh = _bulleted([zh for zh, _ in labels], videos_shown, lambda n: f"……另有 {n} 个")
        videos_en = _bulleted([en for _, en in labels], videos_shown, lambda n: f"… and {n} more")
        settings_zh = f"截图：{plan.zh}" + (f"；语言：{language[0]}" if language else "")
        settings_en = f"Screenshots: {plan.en}" + (f"; language: {language[1]}" if language else "")
        elements: list[dict[str, Any]] = []
        if name:
            elements.append(_plain(f"任务 / Task: {_clip(name)}"))
        elements += [
            _markdown(f"**排队中：{len(labels)} 个视频 / Queued: {len(labels)} video(s)**"),
            _plain(videos_zh),
            *([_plain(videos_en)] if videos_en != videos_zh else []),
            _markdown(f"{settings_zh}\n{settings_en}"),
            *_rejected_block(spec.rejected, shown),
            _hr(),
            _markdown(f"任务编号 / Job: `{job_id}`\n处理进度会更新在这张卡片上。Progress is shown on this card."),
            _button(
                UserText(zh="取消", en="Cancel"),
                {"action": CANCEL, "job_id": job_id},
                kind="danger",
                confirm=UserText(zh="确定取消这个任务吗？", en="Cancel this job?"),
            ),
        ]
        return _card(UserText(zh="视频分析已排队", en="Video analysis queued"), "blue", elements)

    return fit(build, SHOWN_REJECTED)


def card_json(card: Card) -> str:
    """The compact JSON string Feishu's message APIs take as ``content``."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))
