"""Card callbacks through the real webhook: answered synchronously with a toast, never an error."""

from __future__ import annotations

from tests.support.webhook_harness import WebhookClient, decoded


def test_the_help_cards_form_button_answers_with_a_toast(webhook: WebhookClient) -> None:
    response = webhook.send(webhook.events.card_action(value={"action": "open_task_form"}))
    assert response.status_code == 200
    toast = decoded(response)["toast"]
    assert toast["type"] == "info"
    assert "视频链接" in toast["content"]
    assert toast["i18n"]["zh_cn"] == toast["content"]
    assert "video links" in toast["i18n"]["en_us"]


def test_an_unknown_action_gets_a_toast_not_an_error(webhook: WebhookClient) -> None:
    response = webhook.send(webhook.events.card_action(value={"action": "self_destruct"}))
    assert response.status_code == 200
    body = decoded(response)
    assert set(body) == {"toast"}
    assert body["toast"]["type"] == "warning"
    assert "已失效" in body["toast"]["content"] and "expired" in body["toast"]["i18n"]["en_us"]


def test_a_stale_button_without_an_action_value_gets_a_toast(webhook: WebhookClient) -> None:
    response = webhook.send(webhook.events.card_action(value={"job_id": "j-gone"}))
    assert (response.status_code, decoded(response)["toast"]["type"]) == (200, "warning")


def test_card_callbacks_are_authenticated_like_events(webhook: WebhookClient) -> None:
    headers, body = webhook.events.card_action(value={"action": "open_task_form"})
    headers["X-Lark-Signature"] = "0" * 64
    response = webhook.post(body, headers)
    assert (response.status_code, decoded(response)["error"]) == (401, "bad_signature")

    other_app = webhook.events.card_action(value={"action": "open_task_form"}, app_id="cli_someone_else")
    response = webhook.send(other_app)
    assert (response.status_code, decoded(response)["error"]) == (403, "other_app")


def test_a_toast_sends_nothing_to_feishu(webhook: WebhookClient) -> None:
    assert webhook.send(webhook.events.card_action(value={"action": "open_task_form"})).status_code == 200
    webhook.settle()
    assert webhook.fake.sent_messages == []
