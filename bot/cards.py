"""Card JSON 2.0 builders. Pure functions of plain data; Chinese first, English second everywhere.

Anything a user wrote (links, file names, task names) goes into ``plain_text`` elements, never into
``markdown``, so it cannot inject mentions or links. Every card stays under Feishu's 30 KB limit: long
lists are cut with an "and N more" line, and ``fit`` shrinks them further if a card is still too big.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.commands import FEISHU_BITABLE, FEISHU_RESOURCE, OPTIONS_EXAMPLE
from pipeline.jobs import Job, JobStatus
from pipeline.models import JobSpec, ScreenshotMode, ScreenshotPlan, Stage, UserText, VideoFailure, VideoSource
from pipeline.names import clean_name
from pipeline.progress import BatchProgress, VideoProgress, VideoState

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
RETRY_FAILED = "retry_failed"
SUBMIT_TASK_FORM = "submit_task_form"

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
    return clean_name(text, limit)


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


def queued_card(job_id: str, spec: JobSpec, *, retry_of: str | None = None, key: str = "") -> Card:
    """The card replied to the user's message when a job is queued; PATCHed later with progress.
    ``retry_of``: the job whose failed videos this one retries; ``key``: the job's idempotency key."""
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
        if retry_of:
            elements.append(
                _markdown(f"重试任务 `{retry_of}` 中失败的视频。\nRetrying the failed videos of job `{retry_of}`.")
            )
        elements += [
            _markdown(f"**排队中：{len(labels)} 个视频 / Queued: {len(labels)} video(s)**"),
            _plain(videos_zh),
            *([_plain(videos_en)] if videos_en != videos_zh else []),
            _markdown(f"{settings_zh}\n{settings_en}"),
            *_rejected_block(spec.rejected, shown),
            _hr(),
            _markdown(f"任务编号 / Job: `{job_id}`\n处理进度会更新在这张卡片上。Progress is shown on this card."),
            _cancel_button(job_id, spec.creator_id, key),
        ]
        return _card(UserText(zh="视频分析已排队", en="Video analysis queued"), "blue", elements)

    return fit(build, SHOWN_REJECTED)


# ------------------------------------------------------------------------------------------------
# Buttons that act on a job
# ------------------------------------------------------------------------------------------------


def action_value(action: str, job_id: str, creator_id: str, key: str = "") -> dict[str, str]:
    """A button's callback value. The creator rides along so a deployment without the job row (a
    stateless instance) can still tell who may act; the job store is checked too when it has the job.
    ``key`` (the job's idempotency key) lets such an instance find the job's async invocation to stop
    it. Feishu signs the callbacks of the cards we sent, so these values are ours, not the user's."""
    value = {"action": action, "job_id": job_id}
    if creator_id:
        value["creator"] = creator_id
    if key:
        value["key"] = key
    return value


def _cancel_button(job_id: str, creator_id: str, key: str = "") -> Any:
    return _button(
        UserText(zh="取消", en="Cancel"),
        action_value(CANCEL, job_id, creator_id, key),
        kind="danger",
        confirm=UserText(zh="确定取消这个任务吗？", en="Cancel this job?"),
    )


def cancelled_elsewhere_card(job_id: str) -> Card:
    """What a cancelled job's card becomes when the instance that stopped it does not hold the job's
    record (Function Compute: the click landed on another instance than the one running the job)."""
    return _card(
        UserText(zh="任务已取消", en="Job cancelled"),
        "grey",
        [
            _markdown("这个任务已按你的要求取消。\nThe job was cancelled as you asked."),
            _hr(),
            _markdown(f"任务编号 / Job: `{job_id}`"),
        ],
    )


def _retry_button(job_id: str, creator_id: str, count: int) -> Any:
    return _button(
        UserText(zh=f"重试失败项（{count} 个）", en=f"Retry failed ({count})"),
        action_value(RETRY_FAILED, job_id, creator_id),
    )


def _open_url_button(label: UserText, url: str) -> Any:
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "type": "primary",
        "behaviors": [{"type": "open_url", "default_url": url}],
    }


# ------------------------------------------------------------------------------------------------
# Progress of a job
# ------------------------------------------------------------------------------------------------

# Saved with the progress record (``progress["delivery"]``), bounded: a Base with 500 skipped rows
# keeps the first ones and a count.
MAX_SAVED_SKIPPED = 40
SHOWN_FAILURES = 10
SHOWN_SKIPPED = 10
_OPEN_ID = re.compile(r"^ou_[A-Za-z0-9]{1,64}$")
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'()\[\]]+$")


@dataclass
class SkippedNote:
    """A source-table row that gave no video, as the card shows it."""

    row_number: int
    reason: UserText
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"row_number": self.row_number, "reason": self.reason.to_dict(), "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkippedNote:
        return cls(
            row_number=int(data.get("row_number") or 0),
            reason=UserText.from_dict(data.get("reason") or {}),
            name=str(data.get("name") or ""),
        )


@dataclass
class DeliveryNotes:
    """What the bot adds to a job's progress record besides the videos: rows of a source table that
    were skipped, notes about the sources, how far the results table is written, and why delivery
    failed. Saved as ``progress["delivery"]`` so the card can be rendered again after a restart."""

    skipped: list[SkippedNote] = field(default_factory=list)
    skipped_total: int = 0
    notes: list[UserText] = field(default_factory=list)
    rows_written: int | None = None
    rows_total: int | None = None
    table_url: str = ""
    error: UserText | None = None

    def add_skipped(self, notes: Sequence[SkippedNote]) -> None:
        room = max(0, MAX_SAVED_SKIPPED - len(self.skipped))
        self.skipped.extend(notes[:room])
        self.skipped_total += len(notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": [s.to_dict() for s in self.skipped],
            "skipped_total": self.skipped_total,
            "notes": [n.to_dict() for n in self.notes],
            "rows_written": self.rows_written,
            "rows_total": self.rows_total,
            "table_url": self.table_url,
            "error": self.error.to_dict() if self.error else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DeliveryNotes:
        data = data or {}
        error = data.get("error")
        return cls(
            skipped=[SkippedNote.from_dict(s) for s in data.get("skipped") or ()],
            skipped_total=int(data.get("skipped_total") or 0),
            notes=[UserText.from_dict(n) for n in data.get("notes") or ()],
            rows_written=_int_or_none(data.get("rows_written")),
            rows_total=_int_or_none(data.get("rows_total")),
            table_url=str(data.get("table_url") or ""),
            error=UserText.from_dict(error) if error else None,
        )


def progress_record(batch: BatchProgress, notes: DeliveryNotes) -> dict[str, Any]:
    """The progress record saved with a job: the pipeline's batch progress plus the bot's notes."""
    return {**batch.to_dict(), "delivery": notes.to_dict()}


class CardState:
    """What the card says a job is doing, from its status and its saved progress record."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def card_state(job: Job, batch: BatchProgress) -> str:
    if job.status is JobStatus.DONE:
        return CardState.DONE
    if job.status is JobStatus.FAILED:
        return CardState.FAILED
    if job.status is JobStatus.CANCELLED:
        return CardState.CANCELLED
    if batch.stage is Stage.DONE:
        return CardState.DONE
    if batch.stage is Stage.FAILED:
        return CardState.FAILED
    if batch.stage is Stage.CANCELLED:
        return CardState.CANCELLED
    if job.cancel_requested:
        return CardState.CANCELLING
    if batch.stage is Stage.DELIVERING:
        return CardState.DELIVERING
    if job.status is JobStatus.RUNNING or batch.stage is not Stage.QUEUED:
        return CardState.RUNNING
    return CardState.QUEUED


_HEADERS: dict[str, tuple[UserText, str]] = {
    CardState.QUEUED: (UserText(zh="视频分析已排队", en="Video analysis queued"), "blue"),
    CardState.RUNNING: (UserText(zh="视频分析中", en="Analysing videos"), "wathet"),
    CardState.CANCELLING: (UserText(zh="正在取消", en="Cancelling"), "grey"),
    CardState.DELIVERING: (UserText(zh="正在写入结果", en="Writing the results"), "indigo"),
    CardState.DONE: (UserText(zh="视频分析完成", en="Video analysis done"), "green"),
    CardState.FAILED: (UserText(zh="视频分析失败", en="Video analysis failed"), "red"),
    CardState.CANCELLED: (UserText(zh="视频分析已取消", en="Video analysis cancelled"), "grey"),
}

_STAGE_WORDS: dict[Stage, tuple[str, str]] = {
    Stage.QUEUED: ("等待中", "waiting"),
    Stage.DOWNLOADING: ("下载中", "downloading"),
    Stage.PROBING: ("读取视频信息", "probing"),
    Stage.AUDIO: ("提取音频", "extracting audio"),
    Stage.TRANSCRIBING: ("语音转写中", "transcribing"),
    Stage.SCREENSHOTS: ("截图中", "taking screenshots"),
    Stage.OUTPUTS: ("生成文件", "writing files"),
}


def format_duration(seconds: float) -> tuple[str, str]:
    """``(zh, en)``: "1 分 05 秒" / "1 min 05 s"."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} 小时 {minutes:02d} 分", f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} 分 {secs:02d} 秒", f"{minutes} min {secs:02d} s"
    return f"{secs} 秒", f"{secs} s"


def _elapsed(job: Job, batch: BatchProgress, now: float) -> float | None:
    start = batch.started_at or job.started_at
    if start is None:
        return None
    if batch.finished_at is not None:
        return batch.finished_at - start
    if job.status.terminal and job.finished_at is not None:
        return job.finished_at - start
    return now - start


def _video_status(video: VideoProgress) -> tuple[str, str]:
    if video.state is VideoState.OK:
        return "✅", "完成 / done"
    if video.state is VideoState.FAILED:
        return "❌", "失败 / failed"
    if video.state is VideoState.CANCELLED:
        return "⏹", "已取消 / cancelled"
    if video.state is VideoState.PENDING:
        return "🕒", "等待中 / waiting"
    zh, en = _STAGE_WORDS.get(video.stage, (video.stage.value, video.stage.value))
    percent = f" {int(video.fraction * 100)}%" if video.fraction else ""
    return "⏳", f"{zh}{percent} / {en}{percent}"


def _failure_of(video: VideoProgress) -> VideoFailure:
    return video.failure or VideoFailure(
        "unknown", video.stage.value, UserText(zh="原因未知。", en="The reason is unknown.")
    )


def _stage_lines(state: str, batch: BatchProgress, notes: DeliveryNotes) -> list[str]:
    """One line per stage the job has reached, in order (fixed words and numbers only: markdown)."""
    total = batch.total
    lines = ["✅ 已排队 / Queued"]
    if batch.started_at is None and state in (CardState.QUEUED, CardState.CANCELLED, CardState.FAILED):
        return lines
    lines.append("✅ 已开始 / Started")
    if total == 0:
        return lines
    ok, failed = batch.downloads_ok, batch.downloads_failed
    downloading = sum(1 for v in batch.videos if v.state is VideoState.RUNNING and v.stage is Stage.DOWNLOADING)
    if ok or failed or downloading:
        mark = "⏳" if downloading or (ok + failed < total and state == CardState.RUNNING) else "✅"
        lines.append(f"{mark} 下载：{ok} 个成功，{failed} 个失败 / Downloads: {ok} ok, {failed} failed")
    if batch.audio_done:
        lines.append(f"✅ 音频已提取：{batch.audio_done}/{total} 个 / Audio extracted: {batch.audio_done} of {total}")
    transcribing = [
        i + 1 for i, v in enumerate(batch.videos) if v.state is VideoState.RUNNING and v.stage is Stage.TRANSCRIBING
    ]
    if transcribing:
        which = "、".join(str(i) for i in transcribing[:3])
        which_en = ", ".join(str(i) for i in transcribing[:3])
        lines.append(f"⏳ 正在转写第 {which} 个视频（共 {total} 个） / Transcribing video {which_en} of {total}")
    if batch.transcripts_done:
        lines.append(f"✅ 文字稿：{batch.transcripts_done} 个完成 / Transcripts: {batch.transcripts_done} done")
    if batch.screenshots_done:
        lines.append(
            f"✅ 截图：{batch.screenshots_done} 个视频完成 / Screenshots taken: {batch.screenshots_done} video(s)"
        )
    if state == CardState.DELIVERING or notes.rows_written is not None:
        written, rows = notes.rows_written or 0, notes.rows_total
        mark = "⏳" if state == CardState.DELIVERING else ("✅" if state == CardState.DONE else "⚠️")
        of = f" / {rows}" if rows is not None else ""
        lines.append(f"{mark} 写入多维表格：{written}{of} 行 / Writing results: {written}{of} rows")
    elif state == CardState.DONE:
        lines.append("✅ 已写入多维表格 / Results written")
    return lines


def _final_line(state: str, batch: BatchProgress, notes: DeliveryNotes, took: tuple[str, str] | None) -> str:
    took_zh = f"，用时 {took[0]}" if took else ""
    took_en = f" in {took[1]}" if took else ""
    if state == CardState.DONE:
        ok, failed, skipped = batch.ok, batch.failed, notes.skipped_total
        extra_zh = f"，跳过 {skipped} 行" if skipped else ""
        extra_en = f", {skipped} row(s) skipped" if skipped else ""
        return (
            f"🎉 **完成：{ok} 个成功，{failed} 个失败{extra_zh}{took_zh}**\n"
            f"**Done: {ok} ok, {failed} failed{extra_en}{took_en}**"
        )
    if state == CardState.FAILED:
        return f"❌ **任务失败{took_zh}**\n**The job failed{took_en}**"
    if state == CardState.CANCELLED:
        return f"⏹ **已取消{took_zh}**\n**Cancelled{took_en}**"
    if state == CardState.CANCELLING:
        return "⏳ **正在取消，当前步骤结束后停止…**\n**Cancelling: stopping after the current step…**"
    return ""


def _job_error(job: Job, notes: DeliveryNotes) -> UserText | None:
    if job.error and isinstance(job.error.get("message"), Mapping):
        return UserText.from_dict(job.error["message"])
    return notes.error


def progress_card(job: Job, *, now: float) -> Card:
    """The job's card, rendered only from the job row and its saved progress record (so a restarted
    server shows the same card). Chinese first, English second; lists are capped (failures first) so a
    500-video job still fits under 30 KB."""
    batch = BatchProgress.from_dict(job.progress) if job.progress else BatchProgress.new([], at=job.created_at)
    notes = DeliveryNotes.from_dict(job.progress.get("delivery") if job.progress else None)
    if not batch.videos and job.spec.sources and batch.stage is Stage.QUEUED:
        batch = BatchProgress.new([video_label(s)[1] for s in job.spec.sources], at=job.created_at)
    state = card_state(job, batch)
    title, template = _HEADERS[state]
    if state == CardState.DONE and batch.failed and not batch.ok:
        template = "orange"
    elif state == CardState.DONE and (batch.failed or notes.skipped_total):
        template = "yellow"
    elapsed = _elapsed(job, batch, now)
    took = format_duration(elapsed) if elapsed is not None else None
    result = job.result or {}
    # The finished table; or, when the job failed or was cancelled half-way, what was written of it.
    if state == CardState.DONE:
        table_url = str(result.get("table_url") or "")
    elif state in (CardState.FAILED, CardState.CANCELLED):
        table_url = notes.table_url
    else:
        table_url = ""
    failed_sources = result.get("failed_sources") or []
    error = _job_error(job, notes) if state == CardState.FAILED else None
    creator = job.spec.creator_id
    name = job.spec.options.task_name

    failures = [v for v in batch.videos if v.state is VideoState.FAILED]
    others = [v for v in batch.videos if v.state is not VideoState.FAILED]

    def build(shown: int) -> Card:
        elements: list[dict[str, Any]] = []
        if name:
            elements.append(_plain(f"任务 / Task: {_clip(name)}"))
        head = []
        if _OPEN_ID.fullmatch(creator):
            head.append(f"发起人 / Requested by: <at id={creator}></at>")
        if took is not None:
            head.append(f"用时 / Elapsed: {took[0]} / {took[1]}")
        if head:
            elements.append(_markdown("\n".join(head)))
        if job.attempts > 1:
            elements.append(
                _markdown(
                    f"🔁 服务重启后已继续这个任务（第 {job.attempts} 次尝试），视频会从头重新处理。\n"
                    f"Resumed after a restart (attempt {job.attempts}): the videos are processed again from the start."
                )
            )
        elements.append(_markdown("\n".join(_stage_lines(state, batch, notes))))
        final = _final_line(state, batch, notes, took)
        if final:
            elements.append(_markdown(final))
        if error is not None:
            elements += [
                _markdown("**出了什么问题 / What went wrong**"),
                _plain(_clip(error.zh, MAX_MESSAGE_CHARS)),
                _plain(_clip(error.en, MAX_MESSAGE_CHARS)),
            ]
            if batch.ok and not table_url:
                elements.append(
                    _markdown(
                        f"分析已完成 {batch.ok} 个视频，但结果没能写入多维表格，服务器上不保留结果文件。"
                        "请点「重试」重新处理，或稍后重新发送。\n"
                        f"{batch.ok} video(s) were analysed, but the results could not be written to a Base and "
                        "the server keeps no result files. Click “Retry” to process them again, or send them later."
                    )
                )
        if state == CardState.CANCELLED:
            elements.append(
                _markdown(
                    "任务已停止，未完成的视频没有处理。需要时请重新发送。\n"
                    "The job stopped; unfinished videos were not processed. Send them again when needed."
                )
            )
        for note in notes.notes[:5]:
            elements.append(_plain(_clip(f"ℹ️ {note.zh} / {note.en}", MAX_MESSAGE_CHARS)))
        elements += _rejected_block(job.spec.rejected, min(shown, SHOWN_REJECTED))
        if failures:
            lines = []
            for video in failures[: min(shown, SHOWN_FAILURES)]:
                failure = _failure_of(video)
                lines.append(
                    f"❌ {_clip(video.name, 120)}\n    {_clip(failure.message.zh)}\n    {_clip(failure.message.en)}"
                )
            if len(failures) > min(shown, SHOWN_FAILURES):
                more = len(failures) - min(shown, SHOWN_FAILURES)
                lines.append(f"……另有 {more} 个失败 / … and {more} more failed")
            elements += [_markdown(f"**失败的视频 / Failed videos ({len(failures)})**"), _plain("\n".join(lines))]
        if others:
            lines = []
            for video in others[: min(shown, SHOWN_VIDEOS)]:
                icon, status = _video_status(video)
                lines.append(f"{icon} {_clip(video.name, 120)} — {status}")
            if len(others) > min(shown, SHOWN_VIDEOS):
                more = len(others) - min(shown, SHOWN_VIDEOS)
                lines.append(f"……另有 {more} 个 / … and {more} more")
            label = "视频 / Videos" if not failures else "其他视频 / Other videos"
            elements += [_markdown(f"**{label} ({len(others)})**"), _plain("\n".join(lines))]
        if notes.skipped_total:
            lines = [
                f"第 {s.row_number} 行 / Row {s.row_number}"
                + (f"（{_clip(s.name, 60)}）" if s.name else "")
                + f"：{_clip(s.reason.zh)} / {_clip(s.reason.en)}"
                for s in notes.skipped[: min(shown, SHOWN_SKIPPED)]
            ]
            if notes.skipped_total > len(lines):
                more = notes.skipped_total - len(lines)
                lines.append(f"……另有 {more} 行 / … and {more} more rows")
            elements += [
                _markdown(f"**跳过的行 / Skipped rows ({notes.skipped_total})**"),
                _plain("\n".join(lines)),
            ]
        elements += [_hr(), _markdown(f"任务编号 / Job: `{job.id}`")]
        if table_url and _SAFE_URL.fullmatch(table_url):
            open_label = (
                UserText(zh="打开结果表格", en="Open the results table")
                if state == CardState.DONE
                else UserText(zh="打开已写入的部分", en="Open what was written")
            )
            elements.append(_open_url_button(open_label, table_url))
        if state in (CardState.QUEUED, CardState.RUNNING, CardState.DELIVERING):
            elements.append(_cancel_button(job.id, creator, job.idempotency_key or ""))
        if state in (CardState.DONE, CardState.FAILED) and failed_sources:
            elements.append(_retry_button(job.id, creator, len(failed_sources)))
        return _card(title, template, elements)

    return fit(build, max(SHOWN_VIDEOS, SHOWN_FAILURES, SHOWN_SKIPPED))


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


# ------------------------------------------------------------------------------------------------
# The task form
# ------------------------------------------------------------------------------------------------

FORM_LINKS = "links"
FORM_TASK_NAME = "task_name"
FORM_SCREENSHOT_MODE = "screenshot_mode"
FORM_SCREENSHOT_VALUE = "screenshot_value"
FORM_FOLDER = "folder"
FORM_MAX_CHARS = 1000  # Feishu's cap for one input


def _input(name: str, label: UserText, placeholder: UserText, *, multiline: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {
        "tag": "input",
        "name": name,
        "label": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "placeholder": {"tag": "plain_text", "content": _clip(f"{placeholder.zh} / {placeholder.en}", 100)},
        "max_length": FORM_MAX_CHARS,
        "width": "fill",
    }
    if multiline:
        element.update({"input_type": "multiline_text", "rows": 4, "auto_resize": True, "max_rows": 10})
    return element


def task_form_card(*, creator_id: str = "", max_links: int = 20, problem: UserText | None = None) -> Card:
    """The task form (card JSON 2.0 ``form`` container): video links, a task name, the screenshot mode
    and its value, and a target Drive folder. Submitting sends every field in ``form_value``."""
    modes = [
        ("scenes", UserText(zh="按场景（默认）", en="scene changes (default)")),
        ("interval", UserText(zh="固定间隔（秒）", en="every N seconds")),
        ("times", UserText(zh="指定时间点（秒）", en="at given seconds")),
    ]
    submit_value: dict[str, str] = {"action": SUBMIT_TASK_FORM}
    if creator_id:
        submit_value["creator"] = creator_id
    form = {
        "tag": "form",
        "name": "task_form",
        "elements": [
            _input(
                FORM_LINKS,
                UserText(
                    zh=f"视频链接（每行一个，最多 {max_links} 个）", en=f"Video links (one per line, up to {max_links})"
                ),
                UserText(zh="视频链接或多维表格链接", en="video links or a Bitable link"),
                multiline=True,
            )
            | {"required": True},
            _input(
                FORM_TASK_NAME,
                UserText(zh="任务名称（可选）", en="Task name (optional)"),
                UserText(zh="例如：周会录像", en="e.g. weekly sync"),
            ),
            {
                "tag": "select_static",
                "name": FORM_SCREENSHOT_MODE,
                "placeholder": {"tag": "plain_text", "content": "截图方式 / Screenshot mode"},
                "initial_option": "scenes",
                "width": "fill",
                "options": [
                    {"text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"}, "value": value}
                    for value, label in modes
                ],
            },
            _input(
                FORM_SCREENSHOT_VALUE,
                UserText(zh="间隔秒数或时间点（可选）", en="Interval or times in seconds (optional)"),
                UserText(zh="如 10，或 0,5,12.5", en="e.g. 10, or 0,5,12.5"),
            ),
            _input(
                FORM_FOLDER,
                UserText(zh="保存到云空间文件夹（可选）", en="Save into a Drive folder (optional)"),
                UserText(zh="文件夹链接 …/drive/folder/…", en="folder link …/drive/folder/…"),
            ),
            {
                "tag": "button",
                "name": "submit",
                "text": {"tag": "plain_text", "content": "开始分析 / Start"},
                "type": "primary",
                "form_action_type": "submit",
                "behaviors": [{"type": "callback", "value": submit_value}],
            },
        ],
    }
    elements: list[dict[str, Any]] = []
    if problem is not None:
        elements += [_plain(_clip(problem.zh, MAX_MESSAGE_CHARS)), _plain(_clip(problem.en, MAX_MESSAGE_CHARS))]
    elements += [
        _markdown("填写视频链接等信息后点「开始分析」。\nFill in the video links and the options, then click Start."),
        form,
    ]
    return _card(UserText(zh="新建视频分析任务", en="New video analysis task"), "blue", elements)


def form_submitted_card(job_id: str, count: int) -> Card:
    """What the form turns into once submitted (so a second click has nothing to submit)."""
    return _card(
        UserText(zh="任务已提交", en="Task submitted"),
        "green",
        [
            _markdown(
                f"已创建任务 `{job_id}`：{count} 个视频，进度见回复的卡片。\n"
                f"Job `{job_id}` was created with {count} video(s); its progress is on the card in the reply."
            )
        ],
    )


def card_json(card: Card) -> str:
    """The compact JSON string Feishu's message APIs take as ``content``."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"))
