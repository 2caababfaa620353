"""bot.cards: the progress card, rendered only from a job row and its saved progress record, and the task
form. Pure functions: no server needed."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from bot import cards
from bot.cards import progress_card
from bot.job.record import MAX_SAVED_SKIPPED, DeliveryNotes, InsightSummary, JobResult, SkippedRow, progress_record
from pipeline.insight.models import INSIGHT_OFF_NOTE
from pipeline.jobs import Job, JobStatus, interrupted_error
from pipeline.jobs.progress import BatchProgress
from pipeline.models import AnalysisOptions, JobSpec, ProgressEvent, Stage, UserText, VideoFailure, VideoSource

CREATOR = "ou_84aad35d084aa403a838cf73ee18467"
T0 = 1_700_000_000.0
NOT_FOUND = VideoFailure(
    "download_failed",
    "downloading",
    UserText(zh="链接不存在（HTTP 404）。", en="The link was not found (HTTP 404)."),
)


def make_job(sources: int = 2, **changes: Any) -> Job:
    spec = JobSpec(
        sources=tuple(VideoSource.url(f"https://v.example.com/{i}.mp4") for i in range(sources)),
        options=AnalysisOptions(task_name="周会"),
        creator_id=CREATOR,
        chat_id="oc_1",
        source_message_id="om_1",
    )
    job = Job(
        id="jJOB",
        spec=spec,
        status=JobStatus.RUNNING,
        progress={},
        result={},
        error=None,
        card_message_id="om_card",
        attempts=1,
        cancel_requested=False,
        parent_job_id=None,
        idempotency_key="om_1",
        created_at=T0,
        updated_at=T0,
        started_at=T0,
        finished_at=None,
    )
    return dataclasses.replace(job, **changes)


def folded(names: list[str], events: list[ProgressEvent]) -> BatchProgress:
    batch = BatchProgress.new(names, at=T0)
    for event in events:
        batch.apply(event)
    return batch


def half_way() -> BatchProgress:
    """Two videos: #1 transcribing, #2 failed to download."""
    return folded(
        ["https://v.example.com/0.mp4", "https://v.example.com/1.mp4"],
        [
            ProgressEvent(Stage.STARTED, video_count=2, at=T0),
            ProgressEvent(Stage.DOWNLOADING, 0, 2, 0.0, at=T0 + 1),
            ProgressEvent(Stage.DOWNLOADING, 1, 2, 0.0, at=T0 + 1),
            ProgressEvent(Stage.FAILED, 1, 2, failure=NOT_FOUND, at=T0 + 2),
            ProgressEvent(Stage.PROBING, 0, 2, 0.0, at=T0 + 3),
            ProgressEvent(Stage.AUDIO, 0, 2, 0.0, at=T0 + 4),
            ProgressEvent(Stage.TRANSCRIBING, 0, 2, 0.4, at=T0 + 5),
        ],
    )


def finished(batch: BatchProgress, stage: Stage = Stage.DONE, at: float = T0 + 65) -> BatchProgress:
    if stage is Stage.DONE:
        for event in (
            ProgressEvent(Stage.SCREENSHOTS, 0, 2, 0.0, at=at - 3),
            ProgressEvent(Stage.OUTPUTS, 0, 2, 0.0, at=at - 2),
            ProgressEvent(Stage.DONE, 0, 2, at=at - 1),
            ProgressEvent(Stage.DELIVERING, video_count=2, at=at - 1),
        ):
            batch.apply(event)
    batch.apply(ProgressEvent(stage, video_count=2, at=at))
    return batch


def text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def markdowns(card: dict[str, Any]) -> list[str]:
    return [e["content"] for e in card["body"]["elements"] if e.get("tag") == "markdown"]


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in card["body"]["elements"] if e.get("tag") == "button"]


def callbacks(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["value"] for button in buttons(card) for b in button["behaviors"] if b["type"] == "callback"]


def header(card: dict[str, Any]) -> tuple[str, str, str]:
    h = card["header"]
    return h["title"]["content"], h["subtitle"]["content"], h["template"]


def stage_lines(card: dict[str, Any]) -> list[str]:
    (lines,) = [m for m in markdowns(card) if m.startswith("✅ 已排队")]
    return lines.split("\n")


def test_a_job_not_started_yet_reads_queued_with_a_cancel_button() -> None:
    card = progress_card(make_job(status=JobStatus.QUEUED, started_at=None), now=T0 + 5)
    assert header(card) == ("视频分析已排队", "Video analysis queued", "blue")
    assert stage_lines(card) == ["✅ 已排队 / Queued"]
    assert callbacks(card) == [{"action": "cancel", "job_id": "jJOB", "creator": CREATOR, "key": "om_1"}]
    assert "https://v.example.com/1.mp4" in text(card)


def test_a_running_job_shows_a_line_per_stage_reached() -> None:
    record = progress_record(half_way(), DeliveryNotes())
    card = progress_card(make_job(progress=record), now=T0 + 7)
    assert header(card) == ("视频分析中", "Analysing videos", "wathet")
    assert stage_lines(card) == [
        "✅ 已排队 / Queued",
        "✅ 已开始 / Started",
        "✅ 下载：1 个成功，1 个失败 / Downloads: 1 ok, 1 failed",
        "✅ 音频已提取：1/2 个 / Audio extracted: 1 of 2",
        "⏳ 正在转写第 1 个视频（共 2 个） / Transcribing video 1 of 2",
    ]
    body = text(card)
    assert "用时 / Elapsed: 7 秒 / 7 s" in body
    assert "语音转写中 40% / transcribing 40%" in body
    assert "链接不存在（HTTP 404）。" in body and "The link was not found (HTTP 404)." in body
    assert f"<at id={CREATOR}></at>" in body
    assert callbacks(card) == [{"action": "cancel", "job_id": "jJOB", "creator": CREATOR, "key": "om_1"}]


def test_failures_come_first_with_their_reasons() -> None:
    card = progress_card(make_job(progress=progress_record(half_way(), DeliveryNotes())), now=T0 + 7)
    body = text(card)
    assert body.index("失败的视频 / Failed videos (1)") < body.index("其他视频 / Other videos (1)")
    assert body.index("1.mp4") < body.index("0.mp4")


def test_a_done_job_has_counts_time_the_table_and_retry_for_what_failed() -> None:
    batch = finished(half_way())
    url = "https://example.feishu.cn/base/bascnX?table=tblY"
    job = make_job(
        status=JobStatus.DONE,
        progress=progress_record(batch, DeliveryNotes(rows_written=2, rows_total=2)),
        result={"table_url": url, "failed_sources": [VideoSource.url("https://v.example.com/1.mp4").to_dict()]},
        finished_at=T0 + 66,
    )
    card = progress_card(job, now=T0 + 999)
    title, subtitle, template = header(card)
    assert (title, subtitle) == ("视频分析完成", "Video analysis done")
    assert template == "yellow"  # done, with a failure
    body = text(card)
    assert "完成：1 个成功，1 个失败，用时 1 分 05 秒" in body and "Done: 1 ok, 1 failed in 1 min 05 s" in body
    assert stage_lines(card)[-1] == "✅ 写入多维表格：2 / 2 行 / Writing results: 2 / 2 rows"
    (open_table,) = [b for b in buttons(card) if b["behaviors"][0]["type"] == "open_url"]
    assert open_table["behaviors"] == [{"type": "open_url", "default_url": url}]
    assert callbacks(card) == [{"action": "retry_failed", "job_id": "jJOB", "creator": CREATOR}]


def test_a_failed_job_says_what_went_wrong_and_what_to_do() -> None:
    batch = finished(half_way(), Stage.FAILED)
    error = UserText(zh="写入多维表格失败，请稍后点「重试」。", en="Writing the Base failed; click “Retry” later.")
    job = make_job(
        status=JobStatus.FAILED,
        progress=progress_record(batch, DeliveryNotes(error=error)),
        error={"code": "delivery_failed", "message": error.to_dict(), "detail": "x"},
        result={"failed_sources": [VideoSource.url("https://v.example.com/0.mp4").to_dict()]},
    )
    card = progress_card(job, now=T0 + 100)
    assert header(card) == ("视频分析失败", "Video analysis failed", "red")
    body = text(card)
    assert "出了什么问题 / What went wrong" in body
    assert error.zh in body and error.en in body
    assert callbacks(card) == [{"action": "retry_failed", "job_id": "jJOB", "creator": CREATOR}]
    assert not [b for b in buttons(card) if b["behaviors"][0]["type"] == "open_url"]


def test_a_cancelled_job_and_one_being_cancelled() -> None:
    record = progress_record(half_way(), DeliveryNotes())
    cancelling = progress_card(make_job(progress=record, cancel_requested=True), now=T0 + 8)
    assert header(cancelling)[:2] == ("正在取消", "Cancelling")
    assert callbacks(cancelling) == []  # nothing left to click

    done = progress_record(finished(half_way(), Stage.CANCELLED), DeliveryNotes())
    cancelled = progress_card(make_job(status=JobStatus.CANCELLED, progress=done), now=T0 + 100)
    assert header(cancelled) == ("视频分析已取消", "Video analysis cancelled", "grey")
    assert "已取消 / cancelled" in text(cancelled)  # the video that was still running
    assert callbacks(cancelled) == []


def test_a_resumed_job_says_so() -> None:
    card = progress_card(make_job(progress=progress_record(half_way(), DeliveryNotes()), attempts=2), now=T0 + 9)
    body = text(card)
    assert "服务重启后已继续这个任务（第 2 次尝试）" in body
    assert "Resumed after a restart (attempt 2)" in body
    assert "正在转写第 1 个视频" in body  # where it was


def test_the_card_comes_from_the_saved_record_alone() -> None:
    notes = DeliveryNotes(notes=[UserText(zh="视频取自「链接」列。", en="Videos were read from the link column.")])
    notes.add_skipped([SkippedRow("", 3, UserText(zh="「链接」列为空。", en="The link column is empty."), "第三行")])
    record = progress_record(half_way(), notes)
    stored = json.loads(json.dumps(record))  # what SQLite gives back after a restart
    assert progress_card(make_job(progress=stored), now=T0 + 7) == progress_card(make_job(progress=record), now=T0 + 7)
    body = text(progress_card(make_job(progress=stored), now=T0 + 7))
    assert "跳过的行 / Skipped rows (1)" in body and "第 3 行 / Row 3（第三行）" in body
    assert "视频取自「链接」列。" in body


def test_500_videos_stay_under_30_kb_with_failures_first() -> None:
    names = [f"https://v.example.com/{'很长的名字' * 40}/{i}.mp4" for i in range(500)]
    events = [ProgressEvent(Stage.STARTED, video_count=500, at=T0)]
    for i in range(500):
        long_reason = VideoFailure(
            "download_failed", "downloading", UserText(zh="原因" * 300 + str(i), en="reason " * 300 + str(i))
        )
        events.append(ProgressEvent(Stage.DOWNLOADING, i, 500, 0.0, at=T0 + 1))
        if i % 2:
            events.append(ProgressEvent(Stage.FAILED, i, 500, failure=long_reason, at=T0 + 2))
    notes = DeliveryNotes()
    notes.add_skipped([SkippedRow("", n, UserText(zh="空" * 500, en="empty " * 100), "名" * 200) for n in range(300)])
    job = make_job(sources=500, progress=progress_record(folded(names, events), notes))
    card = progress_card(job, now=T0 + 30)
    size = len(cards.card_json(card).encode())
    assert size < 30 * 1024, size
    body = text(card)
    assert "失败的视频 / Failed videos (250)" in body
    assert "另有" in body and "and 240 more failed" in body
    assert "跳过的行 / Skipped rows (300)" in body
    assert len(notes.to_dict()["skipped"]) == MAX_SAVED_SKIPPED  # the record stays bounded too


def test_user_text_never_reaches_markdown() -> None:
    hostile = "**bold** <at id=all></at> [click](https://evil.example.com)"
    batch = folded([hostile], [ProgressEvent(Stage.STARTED, video_count=1, at=T0)])
    batch.apply(
        ProgressEvent(Stage.FAILED, 0, 1, failure=VideoFailure("x", "downloading", UserText(hostile, hostile)), at=T0)
    )
    notes = DeliveryNotes(notes=[UserText(hostile, hostile)])
    notes.add_skipped([SkippedRow("", 1, UserText(hostile, hostile), hostile)])
    spec = dataclasses.replace(make_job().spec, options=AnalysisOptions(task_name=hostile), creator_id="ou_x</at>")
    card = progress_card(make_job(spec=spec, progress=progress_record(batch, notes)), now=T0)
    assert hostile in text(card)
    assert not any("evil.example.com" in m or "<at id=all>" in m or "ou_x</at>" in m for m in markdowns(card))


def test_chinese_comes_first_everywhere() -> None:
    record = progress_record(finished(half_way()), DeliveryNotes(rows_written=2, rows_total=2))
    card = progress_card(make_job(status=JobStatus.DONE, progress=record), now=T0)
    for line in "\n".join(markdowns(card)).split("\n"):
        if re.search(r"[\u4e00-\u9fff]", line) and re.search(r"[A-Za-z]{3,}", line) and " / " in line:
            zh = line.split(" / ", 1)[0]
            assert re.search(r"[\u4e00-\u9fff]", zh), line
    for button in buttons(card):
        label = button["text"]["content"]
        assert re.match(r"[\u4e00-\u9fff]", label) and " / " in label, label


@pytest.mark.parametrize(
    ("status", "stage", "cancel_requested", "state"),
    [
        (JobStatus.QUEUED, Stage.QUEUED, False, cards.CardState.QUEUED),
        (JobStatus.RUNNING, Stage.STARTED, False, cards.CardState.RUNNING),
        (JobStatus.RUNNING, Stage.STARTED, True, cards.CardState.CANCELLING),
        (JobStatus.RUNNING, Stage.DELIVERING, False, cards.CardState.DELIVERING),
        (JobStatus.RUNNING, Stage.DONE, False, cards.CardState.DONE),
        (JobStatus.DONE, Stage.DONE, False, cards.CardState.DONE),
        (JobStatus.FAILED, Stage.STARTED, False, cards.CardState.FAILED),  # failed by a restart limit
        (JobStatus.CANCELLED, Stage.QUEUED, True, cards.CardState.CANCELLED),
    ],
)
def test_card_state(status: JobStatus, stage: Stage, cancel_requested: bool, state: str) -> None:
    batch = BatchProgress.new(["a"], at=T0)
    batch.stage = stage
    job = make_job(status=status, cancel_requested=cancel_requested)
    assert cards.card_state(job, batch) == state


def test_the_task_form() -> None:
    card = cards.task_form_card(creator_id=CREATOR, max_links=7)
    (form,) = [e for e in card["body"]["elements"] if e["tag"] == "form"]
    fields = {e["name"]: e for e in form["elements"]}
    assert set(fields) == {
        "links",
        "task_name",
        "screenshot_mode",
        "screenshot_value",
        "preset",
        "analysis_request",
        "folder",
        "submit",
    }
    assert [o["value"] for o in fields["preset"]["options"]] == ["general", "meeting", "ad"]
    assert fields["links"]["input_type"] == "multiline_text" and fields["links"]["required"] is True
    assert "最多 7 个" in fields["links"]["label"]["content"] and "up to 7" in fields["links"]["label"]["content"]
    assert [o["value"] for o in fields["screenshot_mode"]["options"]] == ["scenes", "interval", "times"]
    assert fields["screenshot_mode"]["tag"] == "select_static"
    submit = fields["submit"]
    assert submit["form_action_type"] == "submit"
    assert submit["behaviors"] == [{"type": "callback", "value": {"action": "submit_task_form", "creator": CREATOR}}]
    assert header(card)[:2] == ("新建视频分析任务", "New video analysis task")
    assert len(cards.card_json(card).encode()) < 30 * 1024


def test_inputs_that_were_not_used_stay_on_the_card() -> None:
    spec = dataclasses.replace(
        make_job().spec, rejected=(UserText(zh="不支持 ftp: 链接", en="ftp: links are not supported"),)
    )
    card = progress_card(make_job(spec=spec, progress=progress_record(half_way(), DeliveryNotes())), now=T0)
    body = text(card)
    assert "未处理的输入 / Not used" in body
    assert "不支持 ftp: 链接" in body and "ftp: links are not supported" in body


# --- insight on the done card ------------------------------------------------------------------------


def done_with_insight(summary: InsightSummary, sources: int = 2) -> Job:
    record = progress_record(finished(folded([f"v{i}" for i in range(sources)], [])), DeliveryNotes())
    result = JobResult(table_url="https://x.feishu.cn/base/app?table=t", app_token="app", table_id="t", insight=summary)
    return make_job(sources=sources, status=JobStatus.DONE, progress=record, result=result.to_dict())


def test_the_done_card_shows_each_videos_gist_and_the_overview() -> None:
    summary = InsightSummary(
        enabled=True,
        gist=((1, "产品演示", "介绍了新款水杯。\n[00:05] 开场 — 问题"), (2, "Second", "A talk about budgets.")),
        overview="共同点 Shared: both sell",
    )
    card = progress_card(done_with_insight(summary), now=T0 + 70)
    body = text(card)
    assert "内容摘要 / What the videos say" in body
    assert "#1 产品演示\\n介绍了新款水杯。\\n[00:05] 开场 — 问题" in body  # chapters keep their lines
    assert "#2 Second\\nA talk about budgets." in body
    assert "共同点 Shared: both sell" in body
    assert "LLM_BASE_URL" not in body


def test_a_long_gist_is_trimmed_to_fit_the_card() -> None:
    gist = tuple((n, f"视频{n}", "很长的摘要内容" * 2000) for n in range(1, 21))
    card = progress_card(done_with_insight(InsightSummary(enabled=True, gist=gist), sources=20), now=T0 + 70)
    assert len(cards.card_json(card).encode()) < 30 * 1024
    assert "#20 视频20" in text(card)


def test_with_insight_off_the_done_card_says_how_to_turn_it_on() -> None:
    body = text(progress_card(done_with_insight(InsightSummary(enabled=False)), now=T0 + 70))
    assert INSIGHT_OFF_NOTE.zh in body and "LLM_BASE_URL" in body
    assert "内容摘要" not in body


def test_the_insight_summary_survives_the_job_store() -> None:
    summary = InsightSummary(enabled=True, gist=((1, "a", "b"),), overview="o")
    stored = json.loads(json.dumps(JobResult(insight=summary).to_dict()))
    assert JobResult.from_dict(stored).insight == summary
    assert JobResult.from_dict({}).insight is None


def test_a_job_failed_by_restarts_shows_nothing_still_under_way() -> None:
    # The record was last saved mid-transcription; the next start found no attempt left and failed it.
    job = make_job(
        status=JobStatus.FAILED,
        progress=progress_record(half_way(), DeliveryNotes()),
        error=interrupted_error(3),
        attempts=3,
        finished_at=T0 + 90,
    )
    card = progress_card(job, now=T0 + 100)
    body = text(card)

    assert header(card)[0] == "视频分析失败"
    assert "40%" not in body and "⏳" not in body, body
    assert "⛔ https://v.example.com/0.mp4 — 未完成 / not finished" in body
    assert "服务重启打断了 3 次" in body
    assert not [c for c in callbacks(card) if c.get("action") == "cancel"]
