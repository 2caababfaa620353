"""Text messages through the real webhook (uvicorn on loopback), with the fake Feishu recording replies."""

from __future__ import annotations

from pipeline.jobs import JobStatus
from pipeline.models import ScreenshotMode
from tests.support.webhook_harness import WebhookClient, callback_values, card_text, decoded


def test_a_link_is_acknowledged_queued_and_answered_with_the_queued_card(webhook: WebhookClient) -> None:
    request = webhook.events.text("请分析 https://videos.example.com/demo.mp4 谢谢")
    message_id = webhook.message_id_of(request)

    response = webhook.send(request)

    assert response.status_code == 200
    assert decoded(response) == {"msg": "ok"}
    job = webhook.job_for(message_id)
    assert job is not None
    assert [s.locator for s in job.spec.sources] == ["https://videos.example.com/demo.mp4"]
    assert job.spec.source_message_id == message_id
    assert job.spec.chat_id == webhook.events.payload_of(request[1])["event"]["message"]["chat_id"]

    reply = webhook.reply_to(message_id)
    assert reply.msg_type == "interactive"
    card = reply.card
    assert card["schema"] == "2.0"
    assert card["config"]["update_multi"] is True
    assert "https://videos.example.com/demo.mp4" in card_text(card)
    assert "视频分析已排队" in card_text(card) and "Video analysis queued" in card_text(card)
    assert callback_values(card) == [
        {"action": "cancel", "job_id": job.id, "creator": job.spec.creator_id, "key": job.idempotency_key}
    ]

    # The card's message id is stored with the job, then the job is handed to the runner.
    finished = webhook.wait_for_status(job.id, JobStatus.DONE)
    assert finished.card_message_id == reply.message_id
    assert webhook.jobs.ran == [job.id]


def test_several_links_and_options_in_chinese(webhook: WebhookClient) -> None:
    request = webhook.events.text(
        "任务：周会录像\nhttps://a.example.com/1.mp4，https://b.example.com/2.mp4\n截图 0,5,12.5 语言：中文"
    )
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    assert [s.locator for s in job.spec.sources] == ["https://a.example.com/1.mp4", "https://b.example.com/2.mp4"]
    assert job.spec.options.task_name == "周会录像"
    assert job.spec.options.screenshots.mode is ScreenshotMode.TIMES
    assert job.spec.options.screenshots.times_s == (0.0, 5.0, 12.5)
    assert job.spec.options.language == "zh"

    text = card_text(webhook.reply_to(message_id).card)
    assert "周会录像" in text
    assert "https://a.example.com/1.mp4" in text and "https://b.example.com/2.mp4" in text
    assert "在第 0, 5, 12.5 秒截图" in text and "screenshots at 0, 5, 12.5 s" in text


def test_options_in_english_in_a_group_with_a_mention(webhook: WebhookClient) -> None:
    mention = {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "Video Bot", "mentioned_type": "bot"}
    request = webhook.events.text(
        "@_user_1 https://a.example.com/x.mp4 every 10s name: weekly sync", chat_type="group", mentions=[mention]
    )
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    assert job.spec.options.screenshots.interval_s == 10.0
    assert job.spec.options.task_name == "weekly sync"
    assert "every 10 s" in card_text(webhook.reply_to(message_id).card)


def test_help_is_answered_with_the_help_card_and_no_job(webhook: WebhookClient) -> None:
    request = webhook.events.text("帮助")
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    card = webhook.reply_to(message_id).card
    text = card_text(card)
    assert "使用说明" in text and "how to use" in text
    assert "截图 0,5,12.5" in text and "times 0,5,12.5" in text
    assert callback_values(card) == [{"action": "open_task_form"}]
    assert webhook.job_for(message_id) is None


def test_invalid_options_get_the_problem_and_an_example_and_no_job(webhook: WebhookClient) -> None:
    request = webhook.events.text("https://a.example.com/x.mp4 interval 0")
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    text = card_text(webhook.reply_to(message_id).card)
    assert "截图间隔必须是大于 0 的秒数" in text
    assert "above 0" in text
    assert "示例" in text and "Example" in text
    assert webhook.job_for(message_id) is None
    assert webhook.all_jobs() == []
