"""Group chats end to end: "@bot" in reply to a video in a group is analysed by the production job function."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.jobs import JobStatus
from tests.bot.test_replied import GROUP, MENTION
from tests.support.e2e_support import SHORT_KEYWORDS, E2EApp, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.feishu.chat_messages import ChatMessages


@pytest.mark.slow
def test_a_group_reply_to_a_video_is_analysed_end_to_end(e2e: E2EApp, short_clip: Path) -> None:
    chat = ChatMessages(e2e.fake)
    video = chat.add("media", {"file_key": "file_e2e", "file_name": "周会录像.mp4", "duration": 5000}, chat_id=GROUP)
    e2e.fake.add_message_resource(video, "file_e2e", short_clip.read_bytes(), file_name="周会录像.mp4")
    request = e2e.events.text("@_user_1", chat_type="group", chat_id=GROUP, mentions=[MENTION], parent_id=video)
    assert e2e.client.send(request).status_code == 200
    reply_id = e2e.client.message_id_of(request)

    e2e.client.reply_to(reply_id, timeout=30)  # the queued card, answering the reply
    job = e2e.client.job_for(reply_id)
    assert job is not None
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()
    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["ok"] == 1
    e2e.fake.wait_for("GET", f"/open-apis/im/v1/messages/{video}/resources/file_e2e")
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    (row,) = results_table(e2e.fake, base)
    assert cell_text(row["视频 Video"]) == "周会录像.mp4"
    transcript = cell_text(row["转写文本 Transcript"]).lower()
    assert all(word in transcript for word in SHORT_KEYWORDS), transcript
