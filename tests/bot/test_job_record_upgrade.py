"""Jobs stored by the previous version (main 882ad58, ``tests/fixtures/jobs_v1.sqlite3``, written by
``tests/fixtures/make_jobs_v1.py`` with that version's real ``JobStore``) resume and render under this one."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bot import cards
from bot.job.record import DeliveryNotes, JobResult
from pipeline.jobs import Job, JobContext, JobOutcome, JobStatus, JobStore, SyncRunner

FIXTURE = Path(__file__).parents[1] / "fixtures" / "jobs_v1.sqlite3"
RUNNING, DONE, FAILED = "jGD68RGl74qcXFDoF", "jzxVwQIVLzuQGd3QC", "jmtl5_zGSx04pyWPt"
T0 = 1_760_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    path = tmp_path / "jobs.sqlite3"
    shutil.copyfile(FIXTURE, path)
    return JobStore(path, clock=lambda: T0 + 5000)


def stored_result(store_path: Path, job_id: str) -> dict[str, object]:
    with sqlite3.connect(store_path) as db:
        loaded: dict[str, object] = json.loads(
            db.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        )
    return loaded


def test_a_job_interrupted_mid_delivery_resumes_from_its_checkpoint(store: JobStore, tmp_path: Path) -> None:
    requeued, ended = store.recover_interrupted(max_attempts=3)
    assert [job.id for job in requeued] == [RUNNING]
    assert ended == []
    seen: list[Job] = []

    def resume(context: JobContext) -> JobOutcome:
        seen.append(context.job)
        return JobOutcome.done(JobResult(sink=JobResult.of(context.job).sink, counts={"ok": 2}).to_dict())

    finished = SyncRunner(store, resume, work_dir=tmp_path / "work").run(RUNNING)
    assert finished is not None and finished.status is JobStatus.DONE
    job = seen[0]
    assert job.attempts == 2
    assert job.card_message_id == "om_card_running"
    # The results sink's checkpoint, read through the typed record, is the one the old version saved.
    sink = JobResult.of(job).sink
    assert sink is not None
    assert sink["app_token"] == "app_1" and sink["table_id"] == "tbl_1" and sink["rows_written"] == 1
    notes = DeliveryNotes.of(job)
    assert (notes.rows_written, notes.rows_total, notes.skipped_total) == (1, 2, 1)
    assert notes.skipped[0].row_number == 3 and notes.skipped[0].reason.en == "this row has no video"
    assert notes.notes[0].en == "note"
    card = json.dumps(cards.progress_card(job, now=T0 + 5000), ensure_ascii=False)
    assert "row 3" in card and "this row has no video" in card


def test_finished_jobs_read_back_and_write_the_same_json(store: JobStore, tmp_path: Path) -> None:
    for job_id in (DONE, FAILED):
        job = store.get(job_id)
        assert job is not None
        assert JobResult.of(job).to_dict() == stored_result(tmp_path / "jobs.sqlite3", job_id)


def test_the_old_done_and_failed_cards_render_with_their_links_and_retry(store: JobStore) -> None:
    done = store.get(DONE)
    failed = store.get(FAILED)
    assert done is not None and failed is not None
    assert [s.name for s in JobResult.of(done).retryable] == ["b.mp4"]
    assert JobResult.of(failed).table_url_partial == "https://x.feishu.cn/base/app_1"
    done_card = json.dumps(cards.progress_card(done, now=T0 + 5000), ensure_ascii=False)
    assert "https://x.feishu.cn/base/app_1" in done_card
    assert cards.RETRY_FAILED in done_card
    failed_card = json.dumps(cards.progress_card(failed, now=T0 + 5000), ensure_ascii=False)
    assert "writing failed" in failed_card and "https://x.feishu.cn/base/app_1" in failed_card
