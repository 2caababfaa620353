"""EVENT_MODE=websocket end to end, with no event ever posted to the bot: a user's message and a card click
reach it over the fake long connection, the PRODUCTION job function runs (real download, ffmpeg,
Whisper tiny.en), and the job ends with its Base, owned by the sender."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.jobs import JobStatus
from tests.support import events
from tests.support.e2e_support import E2EApp, E2EEnv, e2e_settings_overrides, results_table
from tests.support.events import SAMPLE_OPEN_ID, EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.feishu.ws import FakeLongConnection
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import WebhookEnv, callback_values, webhook_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def feishu_ws(fake_feishu: FakeFeishu) -> Iterator[FakeLongConnection]:
    with FakeLongConnection(fake_feishu) as server:
        yield server


@pytest.fixture
def ws_e2e(tmp_path: Path, fake_feishu: FakeFeishu, feishu_ws: FakeLongConnection) -> Iterator[E2EApp]:
    factory = EventFactory(app_id=fake_feishu.app_id)
    settings = webhook_settings(
        tmp_path,
        fake_feishu,
        factory,
        event_mode="websocket",
        feishu_encrypt_key="",
        feishu_verification_token="",
        **e2e_settings_overrides(),
    )
    with E2EEnv(WebhookEnv(settings, fake_feishu, factory)).serve() as app:
        feishu_ws.wait_connected(timeout=30)
        yield app


def test_a_message_and_a_retry_click_over_the_long_connection_end_with_a_base(
    ws_e2e: E2EApp, feishu_ws: FakeLongConnection, short_clip_url: str, media_server: MediaServer
) -> None:
    broken = media_server.url("/status/404")
    payload = events.text_message(f"{short_clip_url} {broken}", app_id=ws_e2e.fake.app_id)
    assert feishu_ws.wait_for_ack(feishu_ws.send_event(payload)).code == 200
    message_id = payload["event"]["message"]["message_id"]
    job = ws_e2e.client.job_for(message_id)
    assert job is not None

    done = ws_e2e.wait_finished(job.id)
    ws_e2e.settle_cards()
    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["ok"] == 1 and done.result["counts"]["failed"] == 1
    (base,) = ws_e2e.bases_owned_by(SAMPLE_OPEN_ID)
    assert len(results_table(ws_e2e.fake, base)) == 2

    # The final card's Retry button, clicked: the answer comes back in the acknowledgement frame, and a
    # new job with only the failed link runs to its end.
    final = ws_e2e.card_message(done).card
    (retry,) = [value for value in callback_values(final) if value.get("action") == "retry_failed"]
    click = events.card_action(value=retry, app_id=ws_e2e.fake.app_id, open_message_id=done.card_message_id or "")
    ack = feishu_ws.wait_for_ack(feishu_ws.send_event(click))
    assert ack.code == 200 and ack.answer["toast"]["type"] == "success", ack.answer
    retried = [j for j in ws_e2e.client.all_jobs() if j.id != job.id]
    assert len(retried) == 1 and [s.locator for s in retried[0].spec.sources] == [broken]
    again = ws_e2e.wait_finished(retried[0].id)
    assert again.status is JobStatus.DONE and again.result["counts"]["failed"] == 1
    assert len(ws_e2e.bases_owned_by(SAMPLE_OPEN_ID)) == 2
    assert feishu_ws.connections == 1 and feishu_ws.unacked() == []
