"""url_verification: Feishu checks the request URL by POSTing a challenge, plain or encrypted."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import events
from tests.support.webhook_harness import WebhookClient, WebhookEnv, decoded, webhook_settings

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "feishu-samples"


def test_encrypted_challenge_as_feishu_sends_it_unsigned(webhook: WebhookClient) -> None:
    response = webhook.send(webhook.events.url_verification("chal-123", sign=False))
    assert response.status_code == 200
    assert decoded(response) == {"challenge": "chal-123"}


def test_encrypted_and_signed_challenge(webhook: WebhookClient) -> None:
    response = webhook.send(webhook.events.url_verification("chal-456"))
    assert (response.status_code, decoded(response)) == (200, {"challenge": "chal-456"})


def test_the_official_encrypted_sample(webhook: WebhookClient) -> None:
    # Encrypted with "test key", token rvaYgkND1GOiu5MM0E1rncYC6PLtF7JV: the harness's credentials.
    body = (SAMPLES / "event_url_verification.encrypted.json").read_bytes()
    response = webhook.post(body, {"Content-Type": "application/json"})
    assert (response.status_code, decoded(response)) == (200, {"challenge": "ajls384kdjx98XX"})


def test_plain_challenge_with_the_right_token(webhook: WebhookClient) -> None:
    headers, body = events.webhook_request(events.url_verification(challenge="plain-1"))
    response = webhook.post(body, headers)
    assert (response.status_code, decoded(response)) == (200, {"challenge": "plain-1"})


def test_plain_challenge_with_a_wrong_token_is_refused(webhook: WebhookClient) -> None:
    headers, body = events.webhook_request(events.url_verification(challenge="x", token="not-the-token"))
    response = webhook.post(body, headers)
    assert response.status_code == 401
    assert decoded(response)["error"] == "invalid_verification_token"
    assert "challenge" not in response.text


def test_an_app_without_an_encrypt_key_refuses_every_webhook_request(tmp_path: Path, webhook_env: WebhookEnv) -> None:
    # An unsigned request cannot be told from a forged one: without both secrets nothing is trusted.
    plain = events.EventFactory(app_id=webhook_env.fake.app_id, encrypt_key="")
    env = WebhookEnv(webhook_settings(tmp_path / "plain", webhook_env.fake, plain), webhook_env.fake, plain)
    with env.serve() as client:
        headers, body = plain.url_verification("no-key")
        assert json.loads(body)["type"] == "url_verification"  # really sent in the clear
        for request in ((headers, body), plain.text("https://v.example.com/a.mp4")):
            response = client.send(request)
            assert (response.status_code, decoded(response)["error"]) == (403, "webhook_not_configured")
            assert "challenge" not in response.text
        assert client.all_jobs() == []
        assert 'video_insight_webhook_rejected_total{reason="webhook_not_configured"} 2.0' in client.metrics()
