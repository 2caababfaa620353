"""Cancel and retry with the real job function: a cancel by the creator stops a running job, anyone else
is refused, double clicks do nothing twice, and "retry failed" runs exactly the videos that failed."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pipeline.jobs import Job, JobStatus
from tests.support.e2e_support import E2EApp, card_header, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import card_text, decoded

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

SOMEONE_ELSE = "ou_0000000000000000000000000someone"


def click(e2e: E2EApp, action: str, job: Job, operator: str = SAMPLE_OPEN_ID) -> dict[str, Any]:
    value = {"action": action, "job_id": job.id, "creator": job.spec.creator_id}
    response = e2e.client.send(e2e.events.card_action(value=value, operator_open_id=operator))
    assert response.status_code == 200
    toast: dict[str, Any] = decoded(response)["toast"]
    return toast


def slow_download_url(media_server: MediaServer) -> str:
    """4 MB in 64 KB pieces with pauses: a download that takes seconds, and a cancel is seen between
    the downloader's 256 KB reads (what the file holds does not matter: it is cancelled first)."""
    media_server.add_file("big.mp4", os.urandom(4 * 1024 * 1024))
    return media_server.url("/trickle/big.mp4?chunk=65536&pause=0.05")


def downloading(progress: dict[str, Any]) -> bool:
    return any(v.get("stage") == "downloading" for v in progress.get("videos") or ())


def started(progress: dict[str, Any]) -> bool:
    return progress.get("stage") not in (None, "queued")


def test_the_creator_cancels_mid_run(e2e: E2EApp, media_server: MediaServer) -> None:
    _, job = e2e.send_text(slow_download_url(media_server))
    e2e.wait_progress(job.id, downloading)

    first = click(e2e, "cancel", job)
    second = click(e2e, "cancel", job)  # a double click

    assert first["type"] == "success"
    assert second["type"] == "info" and second["content"] in ("正在取消，请稍候。", "这个任务已经取消了。")
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()
    assert done.status is JobStatus.CANCELLED
    card = e2e.card_message(done).card
    assert card_header(card) == "视频分析已取消"
    assert "未完成的视频没有处理" in card_text(card) and "unfinished videos were not processed" in card_text(card)
    assert not [b for b in card["body"]["elements"] if b.get("tag") == "button"]
    assert e2e.bases_owned_by(SAMPLE_OPEN_ID) == []  # nothing delivered
    assert e2e.work_dir_entries() == []
    assert click(e2e, "cancel", job)["content"] == "这个任务已经取消了。"


def test_someone_else_cannot_cancel_and_the_job_finishes(e2e: E2EApp, short_clip_url: str) -> None:
    _, job = e2e.send_text(short_clip_url)
    e2e.wait_progress(job.id, started)

    toast = click(e2e, "cancel", job, operator=SOMEONE_ELSE)

    assert toast["type"] == "warning" and "只有发起这个任务的人" in toast["content"]
    done = e2e.wait_finished(job.id)
    assert done.status is JobStatus.DONE and not done.cancel_requested
    assert done.result["counts"]["ok"] == 1


def test_retry_after_a_partial_failure_runs_only_the_failed_video(
    e2e: E2EApp, short_clip_url: str, media_server: MediaServer
) -> None:
    flaky = media_server.url("/flaky/once?fail=1&code=503")  # 503 the first time, a video afterwards
    _, parent = e2e.send_text(f"{short_clip_url} {flaky}")
    parent = e2e.wait_finished(parent.id)
    e2e.settle_cards()
    assert parent.status is JobStatus.DONE
    assert parent.result["counts"] == {"total": 2, "ok": 1, "failed": 1, "cancelled": 0, "skipped": 0}
    assert "重试失败项（1 个）" in card_text(e2e.card_message(parent).card)

    first = click(e2e, "retry_failed", parent)
    second = click(e2e, "retry_failed", parent)  # a double click
    assert first["type"] == "success" and "已经在重试" in second["content"]

    (child,) = [j for j in e2e.client.all_jobs() if j.parent_job_id == parent.id]
    child = e2e.wait_finished(child.id)
    e2e.settle_cards()
    assert child.status is JobStatus.DONE, child.error
    assert [s.locator for s in child.spec.sources] == [flaky]
    assert child.result["counts"]["ok"] == 1 and child.result["failed_sources"] == []
    assert media_server.hits("/flaky/once") == 2  # once per job: the good video was not fetched again
    assert media_server.hits("/media/short.mp4") == 1
    # Its own card (a second reply to the message) and its own table with the one video.
    assert child.card_message_id not in (None, parent.card_message_id)
    assert card_header(e2e.card_message(child).card) == "视频分析完成"
    bases = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    assert len(bases) == 2
    child_base = next(b for b in bases if child.result["table_url"].startswith(b.url))
    (row,) = results_table(e2e.fake, child_base)
    assert cell_text(row["状态 Status"]) == "成功 OK"
    assert e2e.work_dir_entries() == []
