"""Feishu misbehaving during a job: rate limits and server errors on card updates, uploads and rows, and
a token that expires half-way. The job still completes, with every row written exactly once."""

from __future__ import annotations

import pytest

from pipeline.jobs import JobStatus
from tests.support.e2e_support import SHORT_KEYWORDS, E2EApp, card_header, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import callback_values, card_text

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

PATCH = "/open-apis/im/v1/messages/*"
UPLOAD = "/open-apis/drive/v1/medias/upload_all"
ROWS = "/open-apis/bitable/v1/apps/*/tables/*/records/batch_create"


def test_429s_and_5xx_for_a_while_do_not_stop_the_job(
    e2e: E2EApp, short_clip_url: str, media_server: MediaServer
) -> None:
    fake = e2e.fake
    # More card failures than the client's own retries (4 attempts): the card updater retries too.
    fake.fail("PATCH", PATCH, status=429, times=3)
    fake.fail("PATCH", PATCH, status=502, times=3)
    fake.fail("POST", UPLOAD, status=500, times=3)
    fake.fail("POST", UPLOAD, status=429, times=2)
    fake.fail("POST", ROWS, status=503, times=3)
    fake.fail("POST", "/open-apis/bitable/v1/apps", status=500, times=1)

    broken = media_server.url("/status/404")
    _, job = e2e.send_text(f"{short_clip_url} {broken}")
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    faults = [r for r in fake.requests if r.fault]
    assert {r.path.split("/")[-1] for r in faults} >= {"upload_all", "batch_create", "apps"}
    assert len([r for r in faults if r.method == "PATCH"]) == 6
    # Exactly one Base and two rows: the retried batch_create landed once.
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    rows = results_table(fake, base)
    assert len(rows) == 2
    good = next(r for r in rows if cell_text(r["状态 Status"]) == "成功 OK")
    assert all(word in cell_text(good["转写文本 Transcript"]).lower() for word in SHORT_KEYWORDS)
    assert good["截图 Screenshots"]  # uploaded after their retries
    assert card_header(e2e.card_message(done).card) == "视频分析完成"
    assert e2e.work_dir_entries() == []


def test_a_token_that_expires_mid_job(e2e: E2EApp, short_clip_url: str) -> None:
    fake = e2e.fake
    _, job = e2e.send_text(short_clip_url)
    e2e.wait_progress(job.id, lambda progress: progress.get("stage") == "started")
    tokens_before = len(fake.issued_tokens)
    fake.invalidate_tokens()

    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    assert [r for r in fake.requests if r.code == 99991663]  # the old token was refused...
    assert len(fake.issued_tokens) > tokens_before  # ...a new one fetched, and the job went on
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    assert len(results_table(fake, base)) == 1
    assert card_header(e2e.card_message(done).card) == "视频分析完成"


def test_a_results_table_feishu_never_takes_fails_the_job_and_says_so(e2e: E2EApp, short_clip_url: str) -> None:
    e2e.fake.fail("POST", ROWS, status=503, times=None)
    _, job = e2e.send_text(short_clip_url)
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error["code"] == "delivery_failed"
    card = e2e.card_message(done).card
    assert card_header(card) == "视频分析失败"
    text = card_text(card)
    assert "视频已分析完" in text and "The videos were analysed" in text
    assert "分析已完成 1 个视频" in text and "服务器上不保留结果文件" in text
    assert "the server keeps no result files" in text
    # "Retry" runs the videos again (their analysis went with the job's work directory).
    assert callback_values(card) == [{"action": "retry_failed", "job_id": job.id, "creator": SAMPLE_OPEN_ID}]
    assert [s["locator"] for s in done.result["failed_sources"]] == [short_clip_url]
    assert e2e.work_dir_entries() == []


def test_a_queued_reply_that_never_went_out_is_sent_by_the_job(e2e: E2EApp, short_clip_url: str) -> None:
    # Every try of the queued card fails (the client tries 4 times): the job runs anyway and its first
    # progress update replies with the card, under the same idempotency key.
    e2e.fake.fail("POST", "/open-apis/im/v1/messages/*/reply", status=500, times=4)
    message_id, job = e2e.send_text(short_clip_url)
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    (reply,) = e2e.client.replies_to(message_id)
    assert reply.message_id == done.card_message_id
    assert card_header(reply.card) == "视频分析完成"


def test_a_base_made_but_not_acknowledged_is_the_jobs_only_base(e2e: E2EApp, short_clip_url: str) -> None:
    # Feishu makes the Base, the answer never arrives; the delivery's retry finds it instead of making
    # a second one, so nothing empty and app-owned is left behind.
    fake = e2e.fake
    fake.lose_answer("POST", "/open-apis/bitable/v1/apps")

    _, job = e2e.send_text(short_clip_url)
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    assert len(fake.find("POST", "/open-apis/bitable/v1/apps")) == 1
    (base,) = fake.apps.values()
    assert base.owner["member_id"] == SAMPLE_OPEN_ID
    assert done.result["table_url"].startswith(base.url)
    (row,) = results_table(fake, base)
    assert cell_text(row["状态 Status"]) == "成功 OK"
