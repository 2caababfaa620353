"""Deeply nested JSON from outside, over real HTTP: refused with a 400 (never a 500 with a traceback)
wherever a request body is parsed, and a friendly reply when it hides in a signed message's content."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import httpx

from bot.fc.envelope import signed_headers
from pipeline.safe_json import MAX_JSON_DEPTH, JsonTooDeep, loads_bounded, nesting_exceeds
from tests.support import events
from tests.support.feishu import FakeFeishu
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, webhook_settings

DEEP_BODY = b"[" * 100_000
JOB_SECRET = secrets.token_hex(24)


def refused_as_too_deep(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text


def test_the_nesting_bound_ignores_brackets_inside_strings() -> None:
    assert not nesting_exceeds(json.dumps({"a": "[" * 10_000 + '\\"{{{'}), 3)
    assert nesting_exceeds(b"[[[[", 3)
    assert not nesting_exceeds(b"[[[]]]" * 1000, 3)
    assert loads_bounded('{"a": [[1]]}') == {"a": [[1]]}
    try:
        loads_bounded("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    except JsonTooDeep:
        pass
    else:
        raise AssertionError("nesting past the bound was parsed")


def test_an_unauthenticated_deep_body_at_the_webhook_gets_a_400(webhook: WebhookClient) -> None:
    response = webhook.post(DEEP_BODY, {"Content-Type": "application/json"})
    refused_as_too_deep(response)
    assert response.json()["error"] == "json_too_deep"
    # The same inside an object, and the server still answers the next request normally.
    refused_as_too_deep(webhook.post(b'{"a": ' + DEEP_BODY + b"}"))
    assert webhook.send(webhook.events.url_verification("still-up")).json() == {"challenge": "still-up"}


def test_a_signed_deep_body_at_jobs_run_gets_a_400(tmp_path: Path, fake_feishu: FakeFeishu) -> None:
    event_factory = events.EventFactory(app_id=fake_feishu.app_id)
    settings = webhook_settings(
        tmp_path,
        fake_feishu,
        event_factory,
        job_runner="fc-async",
        fc_invoke_url="http://127.0.0.1:9/never-called",
        job_secret=JOB_SECRET,
    )
    with WebhookEnv(settings, fake_feishu, event_factory).serve() as app:
        body = b'{"v": 1, "spec": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
        headers = {"Content-Type": "application/json", **signed_headers(JOB_SECRET, body, time.time())}
        response = app.http.post(app.url + "/jobs/run", content=body, headers=headers)
        refused_as_too_deep(response)
        assert response.json()["error"] == "bad_envelope"


def test_a_signed_message_whose_content_nests_deeply_gets_a_friendly_reply_and_stays_seen(
    webhook: WebhookClient,
) -> None:
    content = '{"text": ' + "[" * 2_000 + "]" * 2_000 + "}"
    payload = events.message_event(message_type="text", content=content, app_id=webhook.events.app_id)
    request = webhook.events.request(payload)
    message_id = webhook.message_id_of(request)

    response = webhook.send(request)
    assert (response.status_code, response.json()) == (200, {"msg": "ok"})
    reply = card_text(json.loads(webhook.reply_to(message_id).content))
    assert "无法读取" in reply and "could not be read" in reply
    assert webhook.all_jobs() == []

    # Feishu's redelivery of the same event is a duplicate: the first answer was final.
    again = webhook.send(request)
    assert (again.status_code, again.json()) == (200, {"msg": "duplicate"})
    webhook.settle()
    assert len(webhook.replies_to(message_id)) == 1
