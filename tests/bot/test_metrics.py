"""/metrics over real HTTP: what the webhook received, refused, ignored and deduplicated, and the jobs."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import BotMetrics
from pipeline.jobs import JobStatus
from tests.support import events
from tests.support.webhook_harness import REPLY_PATH, WebhookClient


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def test_webhook_outcomes_are_counted_by_type_reason_and_key(webhook: WebhookClient) -> None:
    accepted = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    assert webhook.send(webhook.events.request(accepted)).status_code == 200
    assert webhook.send(webhook.events.request(accepted)).status_code == 200  # duplicate event_id
    accepted["header"]["event_id"] = "new-event-id-same-message"
    assert webhook.send(webhook.events.request(accepted)).status_code == 200  # duplicate message_id
    assert webhook.send(webhook.events.text("https://v.example.com/b.mp4", sender_type="app")).status_code == 200
    unknown = events.text_message("x", app_id=webhook.events.app_id)
    unknown["header"]["event_type"] = "contact.user.created_v3"
    assert webhook.send(webhook.events.request(unknown)).status_code == 200
    assert webhook.post(b"").status_code == 400
    assert webhook.post(b"").status_code == 400
    headers, body = webhook.events.text("https://v.example.com/c.mp4")
    headers["X-Lark-Signature"] = "f" * 64
    assert webhook.post(body, headers).status_code == 401
    assert webhook.send(webhook.events.text("https://v.example.com/d.mp4", app_id="cli_other")).status_code == 403
    assert webhook.send(webhook.events.card_action(value={"action": "open_task_form"})).status_code == 200

    response = webhook.http.get(webhook.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    received = "video_insight_webhook_events_total"
    assert value(text, received, event_type="im.message.receive_v1") == 4
    assert value(text, received, event_type="contact.user.created_v3") == 1
    assert value(text, received, event_type="card.action.trigger") == 1
    rejected = "video_insight_webhook_rejected_total"
    assert value(text, rejected, reason="empty_body") == 2
    assert value(text, rejected, reason="bad_signature") == 1
    assert value(text, rejected, reason="other_app") == 1
    duplicates = "video_insight_webhook_duplicates_total"
    assert value(text, duplicates, key="event_id") == 1
    assert value(text, duplicates, key="message_id") == 1
    ignored = "video_insight_webhook_ignored_total"
    assert value(text, ignored, reason="bot_sender") == 1
    assert value(text, ignored, reason="unknown_event_type") == 1
    assert value(text, "video_insight_commands_total", command="job") == 1


def test_jobs_by_status_are_read_from_the_store_at_scrape_time(webhook: WebhookClient) -> None:
    before = webhook.metrics()
    assert {status.value: value(before, "video_insight_jobs", status=status.value) for status in JobStatus} == {
        status.value: 0 for status in JobStatus
    }
    request = webhook.events.text("https://v.example.com/a.mp4 https://v.example.com/b.mp4")
    assert webhook.send(request).status_code == 200
    job = webhook.job_for(webhook.message_id_of(request))
    assert job is not None
    webhook.wait_for_status(job.id, JobStatus.DONE)
    after = webhook.metrics()
    assert value(after, "video_insight_jobs", status="done") == 1
    assert value(after, "video_insight_jobs", status="queued") == 0


def test_a_reply_feishu_refuses_is_counted_and_the_job_still_runs(webhook: WebhookClient) -> None:
    webhook.fake.fail("POST", REPLY_PATH, status=400, code=230002, msg="Bot is not in the chat", times=1)
    request = webhook.events.text("https://v.example.com/a.mp4")
    assert webhook.send(request).status_code == 200
    job = webhook.job_for(webhook.message_id_of(request))
    assert job is not None
    webhook.jobs.wait_for(job.id)  # submitted even though its card could not be sent
    assert value(webhook.metrics(), "video_insight_outbox_failures_total", task="reply") == 1
    stored = webhook.bot.store.get(job.id)
    assert stored is not None and stored.card_message_id is None


def test_each_app_has_its_own_registry() -> None:
    first, second = BotMetrics(), BotMetrics()
    first.rejected.labels(reason="empty_body").inc()
    assert value(first.render().decode(), "video_insight_webhook_rejected_total", reason="empty_body") == 1
    assert value(second.render().decode(), "video_insight_webhook_rejected_total", reason="empty_body") is None
