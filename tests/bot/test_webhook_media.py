"""Video (media) messages through the real webhook, including Feishu's own signed sample."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.events import SAMPLE_APP_ID, EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, decoded, webhook_settings

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "feishu-samples"


def test_a_video_message_queues_a_message_resource_job(webhook: WebhookClient) -> None:
    request = webhook.events.media("file_v3_00ab_video", "周会录像.mp4")
    message_id = webhook.message_id_of(request)

    response = webhook.send(request)
    assert (response.status_code, decoded(response)) == (200, {"msg": "ok"})

    job = webhook.job_for(message_id)
    assert job is not None
    (source,) = job.spec.sources
    assert source.kind == "feishu_message_resource"
    assert source.locator == "file_v3_00ab_video"
    assert source.meta["message_id"] == message_id
    assert source.meta["file_name"] == "周会录像.mp4"
    assert source.meta["duration"] == "2000"

    reply = webhook.reply_to(message_id)
    assert "周会录像.mp4" in card_text(reply.card)
    webhook.jobs.wait_for(job.id)
    assert webhook.wait_for_card_message(job.id).card_message_id == reply.message_id


def test_the_official_encrypted_signed_sample_is_accepted(tmp_path: Path) -> None:
    sample = json.loads((SAMPLES / "event_im_message_receive_v1.media.encrypted_signed.json").read_text())
    signed_at = float(sample["headers"]["X-Lark-Request-Timestamp"])
    with FakeFeishu(app_id=SAMPLE_APP_ID) as fake:
        factory = EventFactory(
            app_id=SAMPLE_APP_ID,
            verification_token=sample["verification_token"],
            encrypt_key=sample["encrypt_key"],
        )
        env = WebhookEnv(webhook_settings(tmp_path, fake, factory), fake, factory)
        # The sample was signed at a fixed moment; the app's clock is set just after it.
        with env.serve(clock=lambda: signed_at + 5) as client:
            response = client.post(sample["body"].encode(), sample["headers"])
            assert (response.status_code, decoded(response)) == (200, {"msg": "ok"})

            message_id = "om_5ce6d572455d361153b7cb51da133945"
            job = client.job_for(message_id)
            assert job is not None
            assert job.spec.sources[0].locator == "75235e0c-4f92-430a-a99b-8446610223cg"
            assert job.spec.creator_id == "ou_84aad35d084aa403a838cf73ee18467"
            assert "测试视频.mp4" in card_text(client.reply_to(message_id).card)
