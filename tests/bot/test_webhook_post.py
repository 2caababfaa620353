"""Rich-text (post) messages through the real webhook."""

from __future__ import annotations

from tests.support.events import link_paragraph, post_message
from tests.support.webhook_harness import WebhookClient, card_text


def test_links_in_a_tags_and_text_runs_are_queued_in_reading_order(webhook: WebhookClient) -> None:
    request = webhook.events.post(
        [
            link_paragraph("https://a.example.com/first.mp4", text="第一段录像", before="请分析："),
            [{"tag": "text", "text": "还有 https://b.example.com/second.mp4 和"}],
            [{"tag": "a", "href": "https://a.example.com/first.mp4", "text": "重复的链接"}],
            [{"tag": "text", "text": "每10秒截图"}],
        ],
        title="任务：产品评审",
    )
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    assert [s.locator for s in job.spec.sources] == [
        "https://a.example.com/first.mp4",
        "https://b.example.com/second.mp4",
    ]
    assert job.spec.options.task_name == "产品评审"
    assert job.spec.options.screenshots.interval_s == 10.0

    text = card_text(webhook.reply_to(message_id).card)
    assert "https://a.example.com/first.mp4" in text and "https://b.example.com/second.mp4" in text
    assert "产品评审" in text and "每 10 秒截图一张" in text
    webhook.jobs.wait_for(job.id)


def test_post_nested_under_a_locale(webhook: WebhookClient) -> None:
    payload = post_message(
        [link_paragraph("https://c.example.com/v.mp4")], locale="zh_cn", app_id=webhook.events.app_id
    )
    request = webhook.events.request(payload)
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200
    assert "https://c.example.com/v.mp4" in card_text(webhook.reply_to(message_id).card)


def test_a_post_with_only_an_ftp_link_is_answered_with_what_was_not_used(webhook: WebhookClient) -> None:
    request = webhook.events.post([link_paragraph("ftp://files.example.com/a.mp4", text="录像")])
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    text = card_text(webhook.reply_to(message_id).card)
    assert "没有可分析的视频" in text and "Nothing to analyse" in text
    assert "ftp://files.example.com/a.mp4" in text
    assert "only http/https" in text
    assert webhook.job_for(message_id) is None
