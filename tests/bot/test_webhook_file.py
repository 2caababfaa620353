"""File messages through the real webhook: videos are queued, obvious non-videos get a friendly reply."""

from __future__ import annotations

import pytest

from tests.support.webhook_harness import WebhookClient, card_text


@pytest.mark.parametrize("name", ["recording.mov", "会议.MP4", "capture"])
def test_a_video_file_is_queued(webhook: WebhookClient, name: str) -> None:
    request = webhook.events.file("file_v3_file_1", name)
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    (source,) = job.spec.sources
    assert (source.kind, source.locator, source.name) == ("feishu_message_resource", "file_v3_file_1", name)
    assert source.meta["message_id"] == message_id
    assert name in card_text(webhook.reply_to(message_id).card)


@pytest.mark.parametrize("name", ["notes.txt", "报告.pdf"])
def test_a_file_that_is_not_a_video_gets_a_send_a_video_reply(webhook: WebhookClient, name: str) -> None:
    request = webhook.events.file("file_v3_doc", name)
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    text = card_text(webhook.reply_to(message_id).card)
    assert name in text
    assert "请发送视频文件" in text and "Send a video file" in text
    assert webhook.job_for(message_id) is None
