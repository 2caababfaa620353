"""The progress card: rendered only from the job row and its saved progress record, so a restarted
server shows the same card."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.cards.buttons import (
    cancel_button,
    open_url_button,
    retry_button,
)
from bot.cards.insight import insight_block
from bot.cards.primitives import (
    MAX_MESSAGE_CHARS,
    SHOWN_REJECTED,
    SHOWN_VIDEOS,
    Card,
    clip,
    fit,
    hr,
    make_card,
    markdown,
    plain,
    rejected_block,
)
from bot.cards.reply import video_label
from bot.job.record import DeliveryNotes, JobResult
from pipeline.jobs import Job, JobStatus
from pipeline.jobs.progress import BatchProgress, VideoProgress, VideoState
from pipeline.models import Stage, UserText, VideoFailure, stage_label

SHOWN_FAILURES = 10
SHOWN_SKIPPED = 10
_OPEN_ID = re.compile(r"^ou_[A-Za-z0-9]{1,64}$")
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'()\[\]]+$")


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


_ENDED = (CardState.DONE, CardState.FAILED, CardState.CANCELLED)


def _video_status(video: VideoProgress, *, ended: bool) -> tuple[str, str]:
    if video.state is VideoState.OK:
        return "✅", "完成 / done"
    if video.state is VideoState.FAILED:
        return "❌", "失败 / failed"
    if video.state is VideoState.CANCELLED:
        return "⏹", "已取消 / cancelled"
    if ended:
        # The job is over (e.g. failed after a restart cut its last attempt): what was under way stopped.
        return "⛔", "未完成 / not finished"
    if video.state is VideoState.PENDING:
        return "🕒", "等待中 / waiting"
    zh, en = stage_label(video.stage).zh, stage_label(video.stage).en
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
    # A card of an ended job shows nothing as under way, whatever the last saved progress said.
    ended = state in _ENDED
    ok, failed = batch.downloads_ok, batch.downloads_failed
    downloading = sum(1 for v in batch.videos if v.state is VideoState.RUNNING and v.stage is Stage.DOWNLOADING)
    if ok or failed or downloading:
        if ended:
            mark = "✅" if ok + failed >= total else "⚠️"
        else:
            mark = "⏳" if downloading or (ok + failed < total and state == CardState.RUNNING) else "✅"
        lines.append(f"{mark} 下载：{ok} 个成功，{failed} 个失败 / Downloads: {ok} ok, {failed} failed")
    if batch.audio_done:
        lines.append(f"✅ 音频已提取：{batch.audio_done}/{total} 个 / Audio extracted: {batch.audio_done} of {total}")
    transcribing = [
        i + 1
        for i, v in enumerate(batch.videos)
        if v.state is VideoState.RUNNING and v.stage is Stage.TRANSCRIBING and not ended
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
    notes = DeliveryNotes.of(job)
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
    result = JobResult.of(job)
    # The finished table; or, when the job failed or was cancelled half-way, what was written of it.
    if state == CardState.DONE:
        table_url = result.table_url
    elif state in (CardState.FAILED, CardState.CANCELLED):
        table_url = notes.table_url
    else:
        table_url = ""
    failed_sources = result.retryable
    error = _job_error(job, notes) if state == CardState.FAILED else None
    creator = job.spec.creator_id
    name = job.spec.options.task_name

    failures = [v for v in batch.videos if v.state is VideoState.FAILED]
    others = [v for v in batch.videos if v.state is not VideoState.FAILED]

    def build(shown: int) -> Card:
        elements: list[dict[str, Any]] = []
        if name:
            elements.append(plain(f"任务 / Task: {clip(name)}"))
        head = []
        if _OPEN_ID.fullmatch(creator):
            head.append(f"发起人 / Requested by: <at id={creator}></at>")
        if took is not None:
            head.append(f"用时 / Elapsed: {took[0]} / {took[1]}")
        if head:
            elements.append(markdown("\n".join(head)))
        if job.attempts > 1:
            elements.append(
                markdown(
                    f"🔁 服务重启后已继续这个任务（第 {job.attempts} 次尝试），视频会从头重新处理。\n"
                    f"Resumed after a restart (attempt {job.attempts}): the videos are processed again from the start."
                )
            )
        elements.append(markdown("\n".join(_stage_lines(state, batch, notes))))
        final = _final_line(state, batch, notes, took)
        if final:
            elements.append(markdown(final))
        if error is not None:
            elements += [
                markdown("**出了什么问题 / What went wrong**"),
                plain(clip(error.zh, MAX_MESSAGE_CHARS)),
                plain(clip(error.en, MAX_MESSAGE_CHARS)),
            ]
            if batch.ok and not table_url:
                elements.append(
                    markdown(
                        f"分析已完成 {batch.ok} 个视频，但结果没能写入多维表格，服务器上不保留结果文件。"
                        "请点「重试」重新处理，或稍后重新发送。\n"
                        f"{batch.ok} video(s) were analysed, but the results could not be written to a Base and "
                        "the server keeps no result files. Click “Retry” to process them again, or send them later."
                    )
                )
        if state == CardState.CANCELLED:
            elements.append(
                markdown(
                    "任务已停止，未完成的视频没有处理。需要时请重新发送。\n"
                    "The job stopped; unfinished videos were not processed. Send them again when needed."
                )
            )
        if state == CardState.DONE:
            elements += insight_block(result.insight, shown)
        for note in notes.notes[:5]:
            elements.append(plain(clip(f"ℹ️ {note.zh} / {note.en}", MAX_MESSAGE_CHARS)))
        elements += rejected_block(job.spec.rejected, min(shown, SHOWN_REJECTED))
        if failures:
            lines = []
            for video in failures[: min(shown, SHOWN_FAILURES)]:
                failure = _failure_of(video)
                lines.append(
                    f"❌ {clip(video.name, 120)}\n    {clip(failure.message.zh)}\n    {clip(failure.message.en)}"
                )
            if len(failures) > min(shown, SHOWN_FAILURES):
                more = len(failures) - min(shown, SHOWN_FAILURES)
                lines.append(f"……另有 {more} 个失败 / … and {more} more failed")
            elements += [markdown(f"**失败的视频 / Failed videos ({len(failures)})**"), plain("\n".join(lines))]
        if others:
            lines = []
            for video in others[: min(shown, SHOWN_VIDEOS)]:
                icon, status = _video_status(video, ended=state in _ENDED)
                lines.append(f"{icon} {clip(video.name, 120)} — {status}")
            if len(others) > min(shown, SHOWN_VIDEOS):
                more = len(others) - min(shown, SHOWN_VIDEOS)
                lines.append(f"……另有 {more} 个 / … and {more} more")
            label = "视频 / Videos" if not failures else "其他视频 / Other videos"
            elements += [markdown(f"**{label} ({len(others)})**"), plain("\n".join(lines))]
        if notes.skipped_total:
            lines = [
                f"第 {s.row_number} 行 / Row {s.row_number}"
                + (f"（{clip(s.name, 60)}）" if s.name else "")
                + f"：{clip(s.reason.zh)} / {clip(s.reason.en)}"
                for s in notes.skipped[: min(shown, SHOWN_SKIPPED)]
            ]
            if notes.skipped_total > len(lines):
                more = notes.skipped_total - len(lines)
                lines.append(f"……另有 {more} 行 / … and {more} more rows")
            elements += [
                markdown(f"**跳过的行 / Skipped rows ({notes.skipped_total})**"),
                plain("\n".join(lines)),
            ]
        elements += [hr(), markdown(f"任务编号 / Job: `{job.id}`")]
        if table_url and _SAFE_URL.fullmatch(table_url):
            open_label = (
                UserText(zh="打开结果表格", en="Open the results table")
                if state == CardState.DONE
                else UserText(zh="打开已写入的部分", en="Open what was written")
            )
            elements.append(open_url_button(open_label, table_url))
        if state in (CardState.QUEUED, CardState.RUNNING, CardState.DELIVERING):
            elements.append(cancel_button(job.id, creator, job.idempotency_key or ""))
        if state in (CardState.DONE, CardState.FAILED) and failed_sources:
            elements.append(retry_button(job.id, creator, len(failed_sources)))
        return make_card(title, template, elements)

    return fit(build, max(SHOWN_VIDEOS, SHOWN_FAILURES, SHOWN_SKIPPED))
