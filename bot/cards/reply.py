"""The cards the bot replies with: help, "nothing to do", option errors, the queued card and the
card for a job cancelled elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.cards.buttons import (
    OPEN_TASK_FORM,
    cancel_button,
)
from bot.cards.primitives import (
    MAX_MESSAGE_CHARS,
    SHOWN_REJECTED,
    SHOWN_VIDEOS,
    Card,
    bulleted,
    button,
    clip,
    fit,
    hr,
    make_card,
    markdown,
    plain,
    rejected_block,
)
from bot.inbound.commands import FEISHU_BITABLE, FEISHU_RESOURCE, OPTIONS_EXAMPLE
from pipeline.jobs import Job
from pipeline.models import JobSpec, ScreenshotMode, ScreenshotPlan, UserText, VideoSource
from pipeline.names import clean_name


def _accepts(max_links: int) -> tuple[str, str]:
    zh = (
        "**可以发送：**\n"
        f"- 视频链接（http/https，一条消息最多 {max_links} 个）\n"
        "- 视频文件（直接发送到会话）\n"
        "- 多维表格链接（…/base/…?table=…），表中的视频会逐个分析\n"
        "- 在群里：回复（引用）一条视频、文件或链接消息，并 @ 机器人\n"
        "**可选参数（写在同一条消息里）：**\n"
        "- `截图 0,5,12.5`：在这些秒数截图\n"
        "- `每10秒截图` 或 `间隔 10`：固定间隔截图\n"
        "- `场景`：在画面切换处截图（默认）\n"
        "- `任务：周会`：任务名称\n"
        "- `语言：中文` / `语言：英文`：语音的语言（默认自动）\n"
        "- `预设：会议` / `预设：广告` / `预设：通用`：AI 解读的模板（需管理员开启 AI 解读）\n"
        "- `分析要求：……`：自定义分析要求（写到行尾）\n"
        "**追问：** 在任务卡片的话题里回复问题（群聊中请 @机器人），按视频内容回答并标注时间点"
    )
    en = (
        "**Send:**\n"
        f"- video links (http/https, up to {max_links} per message)\n"
        "- a video file (send it into the chat)\n"
        "- a Bitable link (…/base/…?table=…): every video the table lists is analysed\n"
        "- in a group: reply to (quote) a video, file or link message and @-mention the bot\n"
        "**Options (in the same message):**\n"
        "- `times 0,5,12.5`: screenshots at these seconds\n"
        "- `every 10s` or `interval 10`: a screenshot every N seconds\n"
        "- `scenes`: screenshots at scene changes (the default)\n"
        "- `name: weekly sync`: the task name\n"
        "- `language: zh` / `language: en`: the spoken language (auto by default)\n"
        "- `preset: meeting` / `preset: ad` / `preset: general`: what the AI insight looks for (when enabled)\n"
        "- `analysis: …`: your own analysis request (to the end of the line)\n"
        "**Questions:** reply in the thread of a job's card (@-mention the bot in groups); answers cite times"
    )
    return zh, en


def help_card(*, max_links: int = 20) -> Card:
    zh, en = _accepts(max_links)
    return make_card(
        UserText(zh="视频分析助手 · 使用说明", en="Video Insight Bot · how to use"),
        "blue",
        [
            markdown(zh),
            markdown(f"**示例：** {OPTIONS_EXAMPLE.zh.removeprefix('示例：')}"),
            hr(),
            markdown(en),
            markdown(f"**Example:** {OPTIONS_EXAMPLE.en.removeprefix('Example: ')}"),
            button(
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
        return make_card(
            UserText(zh="没有可分析的视频", en="Nothing to analyse"),
            "orange",
            [
                plain(clip(reason.zh, MAX_MESSAGE_CHARS)),
                plain(clip(reason.en, MAX_MESSAGE_CHARS)),
                *rejected_block(rejected, shown),
                hr(),
                markdown(zh),
                markdown(en),
                button(UserText(zh="填写任务表单", en="Open the task form"), {"action": OPEN_TASK_FORM}),
            ],
        )

    return fit(build, SHOWN_REJECTED)


def error_card(problem: UserText, example: UserText = OPTIONS_EXAMPLE) -> Card:
    return make_card(
        UserText(zh="参数有误，未创建任务", en="Invalid options: no task created"),
        "red",
        [
            plain(clip(problem.zh, MAX_MESSAGE_CHARS)),
            plain(clip(problem.en, MAX_MESSAGE_CHARS)),
            hr(),
            plain(clip(example.zh, MAX_MESSAGE_CHARS)),
            plain(clip(example.en, MAX_MESSAGE_CHARS)),
            markdown("请修改后重新发送；发送 **帮助** 查看用法。\nFix it and send again; send **help** for usage."),
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
        where = clean_name(source.meta.get("url") or source.locator)
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


def queued_card(
    job_id: str,
    spec: JobSpec,
    *,
    retry_of: str | None = None,
    key: str = "",
    notes: Sequence[UserText] = (),
) -> Card:
    """The card replied to the user's message when a job is queued; PATCHed later with progress.
    ``retry_of``: the job whose failed videos this one retries; ``key``: the job's idempotency key;
    ``notes``: things the user should know before it runs (an unusable results folder, say)."""
    labels = [video_label(s) for s in spec.sources]
    plan = describe_plan(spec.options.screenshots)
    language = {"zh": ("中文", "Chinese"), "en": ("英文", "English")}.get(spec.options.language or "")
    name = spec.options.task_name

    def build(shown: int) -> Card:
        videos_shown = min(shown, SHOWN_VIDEOS)
        videos_zh = bulleted([zh for zh, _ in labels], videos_shown, lambda n: f"……另有 {n} 个")
        videos_en = bulleted([en for _, en in labels], videos_shown, lambda n: f"… and {n} more")
        settings_zh = f"截图：{plan.zh}" + (f"；语言：{language[0]}" if language else "")
        settings_en = f"Screenshots: {plan.en}" + (f"; language: {language[1]}" if language else "")
        elements: list[dict[str, Any]] = []
        if name:
            elements.append(plain(f"任务 / Task: {clip(name)}"))
        if retry_of:
            elements.append(
                markdown(f"重试任务 `{retry_of}` 中失败的视频。\nRetrying the failed videos of job `{retry_of}`.")
            )
        elements += [
            markdown(f"**排队中：{len(labels)} 个视频 / Queued: {len(labels)} video(s)**"),
            plain(videos_zh),
            *([plain(videos_en)] if videos_en != videos_zh else []),
            markdown(f"{settings_zh}\n{settings_en}"),
            *[plain(clip(f"{n.zh}\n{n.en}", MAX_MESSAGE_CHARS)) for n in notes],
            *rejected_block(spec.rejected, shown),
            hr(),
            markdown(f"任务编号 / Job: `{job_id}`\n处理进度会更新在这张卡片上。Progress is shown on this card."),
            cancel_button(job_id, spec.creator_id, key),
        ]
        return make_card(UserText(zh="视频分析已排队", en="Video analysis queued"), "blue", elements)

    return fit(build, SHOWN_REJECTED)


def cancelled_elsewhere_card(job_id: str) -> Card:
    """What a cancelled job's card becomes when the instance that stopped it does not hold the job's
    record (Function Compute: the click landed on another instance than the one running the job)."""
    return make_card(
        UserText(zh="任务已取消", en="Job cancelled"),
        "grey",
        [
            markdown("这个任务已按你的要求取消。\nThe job was cancelled as you asked."),
            hr(),
            markdown(f"任务编号 / Job: `{job_id}`"),
        ],
    )


def restart_notice_card(job: Job) -> dict[str, Any]:
    """What a job's card says while the service restarts under it (the progress card returns when the
    job resumes)."""
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "width_mode": "fill"},
        "header": {
            "title": {"tag": "plain_text", "content": "服务重启中，任务稍后继续"},
            "subtitle": {"tag": "plain_text", "content": "Restarting: the job resumes shortly"},
            "template": "orange",
        },
        "body": {
            "elements": [
                {
                    "tag": "markdown",
                    "content": "⏸ 服务正在重启，这个任务已暂停，重启后会自动继续"
                    "（视频会从头重新处理），无需重新发送。\n"
                    "⏸ The service is restarting. This job is paused and resumes by itself after the restart "
                    "(its videos are processed again from the start); no need to send them again.",
                },
                {"tag": "hr"},
                {"tag": "markdown", "content": f"任务编号 / Job: `{job.id}`"},
            ]
        },
    }
