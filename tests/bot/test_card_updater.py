"""bot.job.card_updater.CardUpdater against the fake Feishu (real FeishuClient, real SDK, real SQLite job store):
coalescing, pacing, retries, cards that are gone, jobs without a card yet, flush, and monotonic updates (a
PATCH whose answer was lost may be applied late by Feishu: the newest card is sent once more after it)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.feishu import FeishuClient, RetryPolicy
from bot.job.card_updater import CardUpdater, final_card_hook
from bot.keys import first_card_uuid, reply_uuid
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.models import JobSpec, VideoSource
from tests.support.feishu import FakeFeishu

CHAT = "oc_5ce6d572455d361153b7cb51da133945"
PATCH = "/open-apis/im/v1/messages/*"


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


@pytest.fixture
def updater(feishu_client: FeishuClient, store: JobStore) -> Iterator[CardUpdater]:
    cards = CardUpdater(feishu_client, store, min_interval_s=0.2, retry_base_s=0.05, retry_max_s=0.2)
    yield cards
    cards.stop(5.0)


def new_job(store: JobStore, *, message_id: str = "om_user_message_0001", key: str | None = None) -> Job:
    spec = JobSpec(
        sources=(VideoSource.url("https://v.example.com/a.mp4"),),
        creator_id="ou_creator",
        chat_id=CHAT,
        source_message_id=message_id,
    )
    job, _ = store.create(spec, idempotency_key=key if key is not None else message_id)
    return job


def job_with_card(store: JobStore, fake: FakeFeishu, card_id: str = "om_card_0001") -> Job:
    job = new_job(store)
    fake.add_bot_message(card_id, card("queued"), chat_id=CHAT)
    store.set_card_message(job.id, card_id)
    fresh = store.get(job.id)
    assert fresh is not None
    return fresh


def patches_to(fake: FakeFeishu, message_id: str) -> list[Any]:
    return [r for r in fake.find("PATCH", f"/open-apis/im/v1/messages/{message_id}") if r.status == 200]


def test_only_the_latest_card_goes_out_and_pushes_never_wait(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    for step in range(60):
        updater.push(job.id, card(f"step {step}"))
    assert updater.flush(job.id, 10.0)

    sent = patches_to(fake_feishu, "om_card_0001")
    assert 1 <= len(sent) < 10  # 60 states, a handful of PATCHes
    assert label_of(fake_feishu.message("om_card_0001").content) == "step 59"
    # In order: every PATCH carries a later state than the one before.
    steps = [int(label_of(r.json["content"]).split()[1]) for r in sent]
    assert steps == sorted(steps)


def test_patches_of_one_card_are_spaced_below_feishus_rate_limit(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    for step in range(6):
        updater.push(job.id, card(f"step {step}"))
        assert updater.flush(job.id, 10.0)  # each one delivered before the next is pushed

    sent = patches_to(fake_feishu, "om_card_0001")
    assert len(sent) == 6
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= 0.18, gaps  # min_interval_s=0.2, measured where the fake received them
    assert not [r for r in fake_feishu.requests if r.code == 230020]


def test_a_card_identical_to_the_one_on_screen_is_not_sent_again(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    updater.push(job.id, card("same"))
    assert updater.flush(job.id, 10.0)
    updater.push(job.id, card("same"))
    updater.push(job.id, lambda: card("same"))  # rendered, found identical, not sent
    assert updater.flush(job.id, 10.0)
    assert len(patches_to(fake_feishu, "om_card_0001")) == 1


def test_failed_sends_are_retried_until_the_card_is_on_screen(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    # More 5xx answers than the client's own retries (4 attempts): the updater tries again itself.
    fake_feishu.fail("PATCH", PATCH, status=500, times=6)
    updater.push(job.id, card("after the outage"))
    assert updater.flush(job.id, 20.0)

    assert label_of(fake_feishu.message("om_card_0001").content) == "after the outage"
    assert len([r for r in fake_feishu.find("PATCH", PATCH) if r.fault]) == 6
    assert updater.failed >= 1


def test_429s_are_waited_out(updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu) -> None:
    job = job_with_card(store, fake_feishu)
    fake_feishu.fail("PATCH", PATCH, status=429, times=3, headers={"x-ogw-ratelimit-reset": "0"})
    updater.push(job.id, card("rate limited"))
    assert updater.flush(job.id, 20.0)
    assert label_of(fake_feishu.message("om_card_0001").content) == "rate limited"


def test_flush_gives_up_when_feishu_stays_down(updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu) -> None:
    job = job_with_card(store, fake_feishu)
    fake_feishu.fail("PATCH", PATCH, status=500, times=None)
    updater.push(job.id, card("never"))
    assert updater.flush(job.id, 0.5) is False
    assert label_of(fake_feishu.message("om_card_0001").content) == "queued"


@pytest.mark.parametrize("how", ["recalled", "too_old"])
def test_a_gone_card_is_replaced_by_a_new_reply(
    how: str, updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    if how == "recalled":
        fake_feishu.recall_message("om_card_0001")
    else:
        fake_feishu.age_message("om_card_0001", days=15)
    updater.push(job.id, card("where it is now"))
    assert updater.flush(job.id, 10.0)

    fresh = store.get(job.id)
    assert fresh is not None and fresh.card_message_id not in (None, "om_card_0001")
    new = fake_feishu.message(fresh.card_message_id)
    assert new.parent_id == job.spec.source_message_id  # a reply to the user's message
    assert label_of(new.content) == "where it is now"
    # Later states go to the new card.
    updater.push(job.id, card("later"))
    assert updater.flush(job.id, 10.0)
    assert label_of(fake_feishu.message(fresh.card_message_id).content) == "later"


def test_when_the_users_message_is_gone_too_the_card_is_posted_in_the_chat(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    fake_feishu.recall_message("om_card_0001")
    fake_feishu.recall_message(job.spec.source_message_id)
    updater.push(job.id, card("in the chat"))
    assert updater.flush(job.id, 10.0)

    fresh = store.get(job.id)
    assert fresh is not None and fresh.card_message_id
    posted = fake_feishu.message(fresh.card_message_id)
    assert (posted.receive_id, posted.receive_id_type, posted.parent_id) == (CHAT, "chat_id", "")
    assert label_of(posted.content) == "in the chat"


def test_a_card_that_keeps_disappearing_is_not_chased_forever(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    for step in range(5):
        current = store.get(job.id)
        assert current is not None and current.card_message_id
        fake_feishu.recall_message(current.card_message_id)
        updater.push(job.id, card(f"step {step}"))
        assert updater.flush(job.id, 10.0)

    replies = [m for m in fake_feishu.sent_messages if m.parent_id == job.spec.source_message_id]
    assert len(replies) == 2  # max_replacements
    updater.push(job.id, card("ignored"))
    assert updater.flush(job.id, 1.0)
    assert len([m for m in fake_feishu.sent_messages if m.parent_id == job.spec.source_message_id]) == 2


def test_a_job_without_a_card_gets_one_as_a_reply(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = new_job(store)
    updater.push(job.id, card("first state"))
    assert updater.flush(job.id, 10.0)

    fresh = store.get(job.id)
    assert fresh is not None and fresh.card_message_id
    reply = fake_feishu.message(fresh.card_message_id)
    assert reply.parent_id == job.spec.source_message_id
    assert reply.uuid == reply_uuid(job.spec.source_message_id)  # the key the queued reply used
    assert label_of(reply.content) == "first state"


def test_a_queued_reply_that_did_land_is_reused_not_doubled(
    feishu_client: FeishuClient, updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = new_job(store)
    # The queued card went out but its message id never reached the store (the answer was lost).
    landed = feishu_client.reply_card(job.spec.source_message_id, card("queued"), uuid=first_card_uuid(job))
    updater.push(job.id, card("running"))
    assert updater.flush(job.id, 10.0)

    fresh = store.get(job.id)
    assert fresh is not None and fresh.card_message_id == landed
    assert [m.message_id for m in fake_feishu.sent_messages] == [landed]
    assert label_of(fake_feishu.message(landed).content) == "running"


def test_jobs_not_made_from_a_message_use_their_own_first_card_key(store: JobStore) -> None:
    from_message = new_job(store, message_id="om_msg_1")
    retry = new_job(store, message_id="om_msg_1", key="retry:jParent")
    assert first_card_uuid(from_message) == reply_uuid("om_msg_1")
    assert first_card_uuid(retry) not in (reply_uuid("om_msg_1"), first_card_uuid(from_message))


def test_a_late_progress_card_never_replaces_the_final_one(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    updater.show_final(job, card("done"))
    updater.push(job.id, card("cancelling"))
    assert updater.flush(job.id, 10.0)
    assert label_of(fake_feishu.message("om_card_0001").content) == "done"


def test_renders_happen_only_when_a_card_is_sent(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    renders: list[int] = []

    def render(step: int) -> Any:
        def make() -> dict[str, Any]:
            renders.append(step)
            return card(f"step {step}")

        return make

    for step in range(200):
        updater.push(job.id, render(step))
    assert updater.flush(job.id, 10.0)
    assert renders[-1] == 199
    assert len(renders) == len(patches_to(fake_feishu, "om_card_0001")) < 10


def test_many_jobs_from_many_threads(updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu) -> None:
    jobs = []
    for number in range(8):
        job = new_job(store, message_id=f"om_user_{number:04d}")
        fake_feishu.add_bot_message(f"om_card_{number:04d}", card("queued"), chat_id=CHAT)
        store.set_card_message(job.id, f"om_card_{number:04d}")
        jobs.append(job)

    def churn(job: Job) -> None:
        for step in range(30):
            updater.push(job.id, card(f"{job.id} {step}"))

    threads = [threading.Thread(target=churn, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number, job in enumerate(jobs):
        assert updater.flush(job.id, 10.0)
        assert label_of(fake_feishu.message(f"om_card_{number:04d}").content) == f"{job.id} 29"
    assert updater.pending() == 0


def test_memory_stays_bounded(feishu_client: FeishuClient, store: JobStore, fake_feishu: FakeFeishu) -> None:
    cards = CardUpdater(feishu_client, store, min_interval_s=0.0, max_entries=5)
    try:
        for number in range(20):
            job = new_job(store, message_id=f"om_user_{number:04d}")
            cards.push(job.id, card("once"))
            assert cards.flush(job.id, 10.0)
        assert cards.tracked <= 5
    finally:
        cards.stop()


def test_final_card_hook_shows_jobs_that_ended_elsewhere(
    updater: CardUpdater, store: JobStore, fake_feishu: FakeFeishu
) -> None:
    job = job_with_card(store, fake_feishu)
    cancelled = store.request_cancel(job.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    final_card_hook(updater)(cancelled)
    assert updater.flush(job.id, 10.0)
    shown = fake_feishu.message("om_card_0001").card
    assert shown["header"]["title"]["content"] == "视频分析已取消"
    assert shown["header"]["subtitle"]["content"] == "Video analysis cancelled"


# --- a late-applied PATCH -------------------------------------------------------------------------------

CARD_ID = "om_card_lost_answer"
CLIENT_TIMEOUT_S = 0.5
FEISHU_LATE_BY_S = 2.0  # the slow PATCH is applied this long after it arrived (the fake's ``delay``)
SETTLE_S = 3.0


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
