"""A text message with two links, one good video with speech and one broken link, end to end: one card
that goes through every stage, a Base owned by the sender with one row per link, nothing left on disk."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.jobs import JobStatus
from tests.support.e2e_support import (
    SHORT_KEYWORDS,
    E2EApp,
    card_header,
    cell_text,
    first_index,
    open_url,
    results_table,
    stage_lines,
)
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import callback_values, card_text

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper


def test_two_links_one_good_one_broken(e2e: E2EApp, short_clip_url: str, media_server: MediaServer) -> None:
    broken = media_server.url("/status/404")
    message_id, job = e2e.send_text(f"请分析 {short_clip_url} 和 {broken} 任务：季度会议")

    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    # ONE card: the reply to the message, updated in place.
    reply = e2e.client.reply_to(message_id)
    assert done.card_message_id == reply.message_id
    assert len(e2e.client.replies_to(message_id)) == 1

    history = [json.loads(content) for content in reply.history]
    assert "视频分析已排队" in card_text(history[0])
    started = first_index(history, r"已开始 / Started")
    downloads = first_index(history, r"下载：1 个成功，1 个失败 / Downloads: 1 ok, 1 failed")
    transcripts = first_index(history, r"文字稿：1 个完成")
    screenshots = first_index(history, r"截图：1 个视频完成")
    writing = first_index(history, r"写入多维表格")
    finished = first_index(history, r"完成：1 个成功，1 个失败")
    assert 0 < started <= downloads <= transcripts <= screenshots <= writing <= finished, (
        started,
        downloads,
        transcripts,
        screenshots,
        writing,
        finished,
    )
    assert finished == len(history) - 1  # the done card is the last one, and it stays
    # Headers went from queued to running to done; never back.
    headers = [card_header(card) for card in history]
    assert headers[0] == "视频分析已排队" and headers[-1] == "视频分析完成"
    assert "视频分析中" in headers
    assert headers.index("视频分析完成") > max(i for i, h in enumerate(headers) if h == "视频分析中")

    final = history[-1]
    text = card_text(final)
    assert "季度会议" in text
    assert "404" in text  # the broken link's reason, on the card
    lines = stage_lines(final)
    assert lines[0].endswith("已排队 / Queued") and lines[1].endswith("已开始 / Started")
    assert any("Downloads: 1 ok, 1 failed" in line for line in lines)
    assert any("Audio extracted: 1 of 2" in line for line in lines)
    # The Base: owned by the sender, opened by the card's button, one row per link.
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    assert open_url(final) == done.result["table_url"]
    assert done.result["table_url"].startswith(base.url)
    assert done.result["counts"] == {"total": 2, "ok": 1, "failed": 1, "cancelled": 0, "skipped": 0}
    assert [v["job_id"] for v in callback_values(final)] == [job.id]  # retry the failed one
    rows = results_table(e2e.fake, base)
    assert len(rows) == 2
    good, bad = sorted(rows, key=lambda row: "404" in cell_text(row.get("来源链接 Source")))
    transcript = cell_text(good["转写文本 Transcript"]).lower()
    assert all(word in transcript for word in SHORT_KEYWORDS), transcript
    assert cell_text(good["状态 Status"]) == "成功 OK"
    assert len(good["截图 Screenshots"]) >= 2
    (srt,) = good["字幕 Subtitles (SRT)"]
    assert srt["name"].endswith(".srt")
    assert cell_text(bad["状态 Status"]) == "失败 Failed"
    assert "404" in cell_text(bad["错误原因 Error"])
    # The failed source is kept for "retry failed".
    assert [s["locator"] for s in done.result["failed_sources"]] == [broken]
    # The job's work directory is gone.
    assert e2e.work_dir_entries() == []


def test_every_kind_of_bad_link_is_explained_and_none_sinks_the_batch(
    e2e: E2EApp, short_clip_url: str, media_server: MediaServer
) -> None:
    bad = {
        media_server.url("/status/404"): "HTTP 404",
        media_server.url("/status/403"): "HTTP 403",
        media_server.url("/empty"): "空文件",
        media_server.url("/media/random.mp4"): "不完整",
        media_server.url("/html/page.html"): "视频",
    }
    _, job = e2e.send_text(" ".join([short_clip_url, *bad, "ftp://files.example.com/a.mp4"]))
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["ok"] == 1 and done.result["counts"]["failed"] == len(bad)
    final = e2e.card_message(done).card
    text = card_text(final)
    assert f"失败的视频 / Failed videos ({len(bad)})" in text
    assert "未处理的输入 / Not used" in text and "ftp" in text  # taken out at parsing, still on the card
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    rows = {cell_text(r["来源链接 Source"]): r for r in results_table(e2e.fake, base)}
    assert cell_text(rows[short_clip_url]["状态 Status"]) == "成功 OK"
    for link, reason in bad.items():
        row = rows[link]
        assert cell_text(row["状态 Status"]) == "失败 Failed"
        error = cell_text(row["错误原因 Error"])
        assert reason in error, (link, error)
        assert re.search(r"[A-Za-z]{4}", error), error  # English too
    assert e2e.work_dir_entries() == []
