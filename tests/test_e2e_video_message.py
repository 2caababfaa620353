"""A video sent into the chat (a media message), end to end: fetched through the message resource API,
analysed, written; and one whose file Feishu will not hand over, which the card explains."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pipeline.jobs import JobStatus
from tests.support.e2e_support import SHORT_KEYWORDS, E2EApp, card_header, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.webhook_harness import card_text

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper


def media_message_id() -> str:
    return "om_" + secrets.token_hex(16)


def test_a_video_sent_in_the_chat_is_analysed(e2e: E2EApp, short_clip: Path) -> None:
    message_id, file_key = media_message_id(), "file_v3_" + secrets.token_hex(8)
    e2e.fake.add_message_resource(message_id, file_key, short_clip.read_bytes(), file_name="周会录像.mp4")

    _, job = e2e.send(e2e.events.media(file_key, "周会录像.mp4", message_id=message_id))
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    (download,) = e2e.fake.find("GET", f"/open-apis/im/v1/messages/{message_id}/resources/{file_key}")
    assert download.query["type"] == "file"
    card = e2e.card_message(done).card
    assert card_header(card) == "视频分析完成"
    assert "周会录像.mp4" in card_text(card)
    assert "完成：1 个成功，0 个失败" in card_text(card)
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    (row,) = results_table(e2e.fake, base)
    assert cell_text(row["视频 Video"]) == "周会录像.mp4"
    transcript = cell_text(row["转写文本 Transcript"]).lower()
    assert all(word in transcript for word in SHORT_KEYWORDS), transcript
    assert e2e.work_dir_entries() == []


def test_a_video_feishu_does_not_hand_over_is_explained_on_the_card(e2e: E2EApp) -> None:
    message_id, file_key = media_message_id(), "file_v3_gone"  # no resource: Feishu answers 234003

    _, job = e2e.send(e2e.events.media(file_key, "会议.mp4", message_id=message_id))
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    # One failed video is still a delivered job: the table says why.
    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["failed"] == 1
    text = card_text(e2e.card_message(done).card)
    assert "文件已撤回、删除或已过期" in text and "recalled, deleted or expired" in text
    assert "请重新发送视频" in text and "send the video again" in text
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    (row,) = results_table(e2e.fake, base)
    assert cell_text(row["状态 Status"]) == "失败 Failed"
    assert "已撤回" in cell_text(row["错误原因 Error"])
    assert e2e.work_dir_entries() == []


def test_a_video_feishu_keeps_failing_to_serve(e2e: E2EApp, short_clip: Path) -> None:
    message_id, file_key = media_message_id(), "file_v3_" + secrets.token_hex(8)
    e2e.fake.add_message_resource(message_id, file_key, short_clip.read_bytes())
    e2e.fake.fail("GET", f"/open-apis/im/v1/messages/{message_id}/resources/*", status=503, times=None)

    _, job = e2e.send(e2e.events.media(file_key, "clip.mp4", message_id=message_id))
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE
    text = card_text(e2e.card_message(done).card)
    assert "从飞书下载视频失败" in text and "Downloading the video from Feishu failed" in text
    # It can be retried from the card.
    assert [s["locator"] for s in done.result["failed_sources"]] == [file_key]
