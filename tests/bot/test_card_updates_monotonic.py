"""A card update whose answer is lost (Feishu slow, the client gave up) may still be applied by Feishu
after a newer card: the updater then sends the newest card once more, so a finished job never ends up
showing an older progress card. Real FeishuClient (short timeout) against the fake Feishu, whose
``delay`` applies a request only after the client stopped waiting, as the real one can."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.feishu import FeishuClient, RetryPolicy
from bot.job.card_updater import CardUpdater
from pipeline.jobs import JobStore
from pipeline.models import JobSpec, VideoSource
from tests.support.feishu import FakeFeishu

CHAT = "oc_5ce6d572455d361153b7cb51da133945"
CARD_ID = "om_card_lost_answer"
CLIENT_TIMEOUT_S = 0.5
FEISHU_LATE_BY_S = 2.0  # the slow PATCH is applied this long after it arrived
SETTLE_S = 3.0


def card(label: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": {"title": {"tag": "plain_text", "content": label}, "template": "blue"},
        "body": {"elements": [{"tag": "markdown", "content": label}]},
    }


def label_of(content: str | dict[str, Any]) -> str:
    data = json.loads(content) if isinstance(content, str) else content
    return str(data["header"]["title"]["content"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "state.sqlite3") as job_store:
        yield job_store


def test_a_late_applied_progress_patch_is_overwritten_by_the_final_card(
    fake_feishu: FakeFeishu, store: JobStore
) -> None:
    client = FeishuClient(
        fake_feishu.app_id,
        fake_feishu.app_secret,
        domain=fake_feishu.url,
        timeout=CLIENT_TIMEOUT_S,
        retry=RetryPolicy(max_attempts=1, base_delay_s=0.01, max_delay_s=0.05, max_total_s=1.0),
    )
    spec = JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),), chat_id=CHAT, source_message_id="om_u1")
    job, _ = store.create(spec, idempotency_key="om_u1")
    fake_feishu.add_bot_message(CARD_ID, card("queued"), chat_id=CHAT)
    store.set_card_message(job.id, CARD_ID)
    updater = CardUpdater(client, store, min_interval_s=0.05, retry_base_s=0.05, retry_max_s=0.1, settle_s=SETTLE_S)
    try:
        fake_feishu.delay("PATCH", f"/open-apis/im/v1/messages/{CARD_ID}", FEISHU_LATE_BY_S, times=1)
        updater.push(job.id, card("transcribing 62%"))
        # The client gives up on that PATCH; the job finishes meanwhile.
        time.sleep(CLIENT_TIMEOUT_S + 0.3)
        updater.show_final(job, card("done"))
        assert updater.flush(job.id, 10.0)

        # Feishu applies the slow PATCH late, over "done"...
        slow = fake_feishu.find("PATCH", f"/open-apis/im/v1/messages/{CARD_ID}")[0]
        deadline = time.monotonic() + FEISHU_LATE_BY_S + 5
        while slow.status == 0:
            assert time.monotonic() < deadline, "the slow PATCH was never handled"
            time.sleep(0.05)
        applied = [label_of(p) for p in fake_feishu.patch_history(CARD_ID)]
        assert applied[applied.index("done") + 1 :][:1] == ["transcribing 62%"], applied
        # ...and the newest card is put back once that window has passed.
        deadline = time.monotonic() + SETTLE_S + 5
        while label_of(fake_feishu.message(CARD_ID).content) != "done":
            assert time.monotonic() < deadline, [label_of(p) for p in fake_feishu.patch_history(CARD_ID)]
            time.sleep(0.05)
        history = [label_of(p) for p in fake_feishu.patch_history(CARD_ID)]
        assert history[-1] == "done", history
    finally:
        updater.stop(5.0)
