"""JobStore against real SQLite files: round trips, idempotency, atomic claims, cancel, recovery."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.jobs import Job, JobNotFoundError, JobStatus, JobStore, new_job_id
from pipeline.models import AnalysisOptions, JobSpec, ScreenshotPlan, UserText, VideoSource


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_spec(n: int = 2, creator: str = "ou_creator") -> JobSpec:
    return JobSpec(
        sources=tuple(VideoSource.url(f"https://example.com/v{i}.mp4", name=f"视频 {i}") for i in range(n)),
        options=AnalysisOptions(
            screenshots=ScreenshotPlan.parse("times:0,5,12.5"),
            asr_backend="whisper",
            language="en",
            task_name="周会",
        ),
        creator_id=creator,
        chat_id="oc_chat",
        source_message_id="om_message",
        rejected=(UserText(zh="不支持 ftp 链接", en="ftp links are not supported"),),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[JobStore]:
    s = JobStore(db_path, clock=clock)
    yield s
    s.close()


def test_job_ids_are_short_url_safe_and_distinct() -> None:
    ids = {new_job_id() for _ in range(2000)}
    assert len(ids) == 2000
    for job_id in ids:
        assert re.fullmatch(r"j[A-Za-z0-9_-]{16}", job_id)


def test_create_get_list_round_trip(store: JobStore, clock: FakeClock, db_path: Path) -> None:
    assert db_path.exists()
    spec = make_spec()
    job, created = store.create(spec)
    assert created
    assert job.status is JobStatus.QUEUED
    assert job.spec == spec
    assert job.progress == {} and job.result == {} and job.error is None
    assert job.attempts == 0 and not job.cancel_requested
    assert job.created_at == job.updated_at == clock.now
    assert job.started_at is None and job.finished_at is None

    fetched = store.get(job.id)
    assert fetched == job
    assert fetched is not None and fetched.spec.options.screenshots.times_s == (0.0, 5.0, 12.5)
    assert fetched.spec.rejected[0].zh == "不支持 ftp 链接"
    assert store.get("j-nope") is None

    clock.advance(1)
    second, _ = store.create(make_spec(1), parent_job_id=job.id)
    assert second.parent_job_id == job.id
    assert [j.id for j in store.list()] == [job.id, second.id]
    assert [j.id for j in store.list(newest_first=True)] == [second.id, job.id]
    assert [j.id for j in store.list(limit=1)] == [job.id]
    assert store.list([]) == []


def test_the_store_survives_a_reopen(db_path: Path, clock: FakeClock) -> None:
    with JobStore(db_path, clock=clock) as first:
        job, _ = first.create(make_spec())
        first.save_progress(job.id, {"stage": "downloading", "videos": [{"name": "视频 0"}]})
        first.set_card_message(job.id, "om_card")
    with JobStore(db_path, clock=clock) as second:
        again = second.get(job.id)
    assert again is not None
    assert again.spec == job.spec
    assert again.progress == {"stage": "downloading", "videos": [{"name": "视频 0"}]}
    assert again.card_message_id == "om_card"


def test_the_file_is_in_wal_mode(store: JobStore, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_idempotency_key_gives_one_job_per_key_even_across_a_reopen(db_path: Path) -> None:
    with JobStore(db_path) as first:
        job, created = first.create(make_spec(), idempotency_key="om_123")
        again, created_again = first.create(make_spec(3), idempotency_key="om_123")
        other, created_other = first.create(make_spec(), idempotency_key="om_456")
    assert created and not created_again and created_other
    assert again.id == job.id and again.spec == job.spec  # the first spec, not the second
    assert other.id != job.id
    with JobStore(db_path) as reopened:
        after, created_after = reopened.create(make_spec(), idempotency_key="om_123")
        assert not created_after and after.id == job.id
        assert len(reopened.list(limit=None)) == 2


def test_idempotency_key_holds_under_concurrent_creates(db_path: Path) -> None:
    JobStore(db_path).close()
    stores = [JobStore(db_path) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    results: list[tuple[Job, bool]] = []
    lock = threading.Lock()

    def create(s: JobStore) -> None:
        barrier.wait()
        outcome = s.create(make_spec(), idempotency_key="om_same")
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1


def test_claim_is_atomic_under_contention(db_path: Path) -> None:
    with JobStore(db_path) as setup:
        job, _ = setup.create(make_spec())
    # One store (one connection) per thread: the claim must be atomic in SQL, not just behind a lock.
    stores = [JobStore(db_path) for _ in range(16)]
    barrier = threading.Barrier(len(stores))
    winners: list[Job] = []
    losers: list[None] = []
    lock = threading.Lock()

    def claim(s: JobStore) -> None:
        barrier.wait()
        got = s.claim(job.id)
        with lock:
            if got is None:
                losers.append(None)
            else:
                winners.append(got)

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert len(winners) == 1 and len(losers) == 15
    assert winners[0].status is JobStatus.RUNNING and winners[0].attempts == 1
    with JobStore(db_path) as check:
        stored = check.get(job.id)
    assert stored is not None and stored.attempts == 1 and stored.status is JobStatus.RUNNING


def test_claim_only_moves_queued_jobs(store: JobStore, clock: FakeClock) -> None:
    job, _ = store.create(make_spec())
    clock.advance(5)
    claimed = store.claim(job.id)
    assert claimed is not None and claimed.started_at == clock.now and claimed.updated_at == clock.now
    assert store.claim(job.id) is None  # already running
    store.finish(job.id, JobStatus.DONE)
    assert store.claim(job.id) is None  # finished
    assert store.claim("j-unknown") is None


def test_finish_records_the_outcome_and_the_first_terminal_status_wins(store: JobStore, clock: FakeClock) -> None:
    job, _ = store.create(make_spec())
    store.claim(job.id)
    clock.advance(30)
    done = store.finish(job.id, JobStatus.DONE, result={"table_url": "https://x.feishu.cn/base/abc", "rows": 2})
    assert done.status is JobStatus.DONE
    assert done.result == {"table_url": "https://x.feishu.cn/base/abc", "rows": 2}
    assert done.finished_at == clock.now and done.error is None

    late, changed = store.try_finish(job.id, JobStatus.FAILED, error={"code": "x", "message": {}, "detail": ""})
    assert not changed
    assert late.status is JobStatus.DONE and late.error is None
    assert store.finish(job.id, JobStatus.CANCELLED).status is JobStatus.DONE

    other, _ = store.create(make_spec())
    error = {"code": "delivery_failed", "message": {"zh": "写入失败", "en": "Writing failed"}, "detail": "HTTP 500"}
    failed = store.finish(other.id, JobStatus.FAILED, error=error)
    assert failed.status is JobStatus.FAILED and failed.error == error


def test_finish_refuses_non_terminal_statuses_and_unknown_jobs(store: JobStore) -> None:
    job, _ = store.create(make_spec())
    with pytest.raises(ValueError, match="terminal"):
        store.finish(job.id, JobStatus.RUNNING)
    with pytest.raises(JobNotFoundError):
        store.finish("j-unknown", JobStatus.DONE)
    with pytest.raises(JobNotFoundError):
        store.save_progress("j-unknown", {})
    with pytest.raises(JobNotFoundError):
        store.set_card_message("j-unknown", "om_x")


def test_progress_and_results_must_be_json_objects(store: JobStore) -> None:
    job, _ = store.create(make_spec())
    with pytest.raises(TypeError):
        store.save_progress(job.id, ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.save_progress(job.id, {"when": object()})


def test_cancel_a_queued_job_cancels_it_at_once(store: JobStore, clock: FakeClock) -> None:
    job, _ = store.create(make_spec())
    clock.advance(2)
    cancelled = store.request_cancel(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel_requested
    assert cancelled.finished_at == clock.now
    assert store.claim(job.id) is None  # no runner ever starts it


def test_cancel_a_running_job_only_sets_the_flag(store: JobStore) -> None:
    job, _ = store.create(make_spec())
    store.claim(job.id)
    assert not store.is_cancel_requested(job.id)
    flagged = store.request_cancel(job.id)
    assert flagged is not None
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert flagged.finished_at is None
    assert store.is_cancel_requested(job.id)
    # The runner records the end when the job's code notices.
    assert store.finish(job.id, JobStatus.CANCELLED).status is JobStatus.CANCELLED


@pytest.mark.parametrize("terminal", [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED])
def test_cancel_a_finished_job_changes_nothing(store: JobStore, terminal: JobStatus) -> None:
    job, _ = store.create(make_spec())
    store.claim(job.id)
    finished = store.finish(job.id, terminal)
    after = store.request_cancel(job.id)
    assert after == finished
    assert not store.is_cancel_requested(job.id)


def test_cancel_an_unknown_job(store: JobStore) -> None:
    assert store.request_cancel("j-unknown") is None
    assert not store.is_cancel_requested("j-unknown")


def test_recovery_requeues_interrupted_jobs_after_a_reopen(db_path: Path, clock: FakeClock) -> None:
    with JobStore(db_path, clock=clock) as before_crash:
        job, _ = before_crash.create(make_spec())
        untouched, _ = before_crash.create(make_spec())
        before_crash.claim(job.id)
        before_crash.save_progress(job.id, {"stage": "transcribing"})
    with JobStore(db_path, clock=clock) as after_restart:
        requeued, ended = after_restart.recover_interrupted(max_attempts=2)
        assert [j.id for j in requeued] == [job.id] and ended == []
        again = after_restart.get(job.id)
        assert again is not None
        assert again.status is JobStatus.QUEUED and again.attempts == 1 and again.started_at is None
        assert after_restart.get(untouched.id) == untouched
        # Claimed again: the second attempt.
        second = after_restart.claim(job.id)
        assert second is not None and second.attempts == 2


def test_recovery_fails_a_job_that_used_its_attempts_with_a_clear_error(db_path: Path, clock: FakeClock) -> None:
    with JobStore(db_path, clock=clock) as s:
        job, _ = s.create(make_spec())
        s.claim(job.id)
        s.recover_interrupted(max_attempts=2)  # first crash: queued again
        s.claim(job.id)  # second attempt, crashes too
    with JobStore(db_path, clock=clock) as s:
        requeued, ended = s.recover_interrupted(max_attempts=2)
        assert requeued == []
        assert [j.id for j in ended] == [job.id]
        failed = s.get(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.finished_at == clock.now
    assert failed.error is not None
    assert failed.error["code"] == "interrupted"
    assert "2 times" in failed.error["message"]["en"] and "restart" in failed.error["message"]["en"]
    assert "2" in failed.error["message"]["zh"] and "重启" in failed.error["message"]["zh"]


def test_recovery_finishes_the_cancel_a_user_asked_for(store: JobStore) -> None:
    job, _ = store.create(make_spec())
    store.claim(job.id)
    store.request_cancel(job.id)
    requeued, ended = store.recover_interrupted(max_attempts=3)
    assert requeued == []
    assert [(j.id, j.status) for j in ended] == [(job.id, JobStatus.CANCELLED)]


def test_counts_by_status(store: JobStore) -> None:
    jobs = [store.create(make_spec())[0] for _ in range(5)]
    store.claim(jobs[0].id)
    store.claim(jobs[1].id)
    store.finish(jobs[1].id, JobStatus.DONE)
    store.request_cancel(jobs[2].id)
    assert store.counts_by_status() == {
        JobStatus.QUEUED: 2,
        JobStatus.RUNNING: 1,
        JobStatus.DONE: 1,
        JobStatus.FAILED: 0,
        JobStatus.CANCELLED: 1,
    }
    assert [j.id for j in store.list([JobStatus.QUEUED])] == [jobs[3].id, jobs[4].id]
    assert {j.id for j in store.list([JobStatus.RUNNING, JobStatus.DONE])} == {jobs[0].id, jobs[1].id}


def test_terminal_statuses() -> None:
    assert [s for s in JobStatus if s.terminal] == [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED]


def test_shares_its_file_with_other_stores(db_path: Path) -> None:
    # Another store in the same file, with its own connection and its own use of user_version, must not
    # make the job store skip its schema (or the other way round).
    db_path.parent.mkdir(parents=True)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE dedupe (event_id TEXT PRIMARY KEY, seen_at REAL)")
    other.execute("PRAGMA user_version = 1")
    with JobStore(db_path) as s:
        job, _ = s.create(make_spec())
        other.execute("INSERT INTO dedupe VALUES ('ev_1', 1.0)")  # writes interleave with the store's
        s.claim(job.id)
        assert other.execute("SELECT COUNT(*) FROM dedupe").fetchone()[0] == 1
        assert other.execute("PRAGMA user_version").fetchone()[0] == 1
    other.close()
    with JobStore(db_path) as reopened:  # no second migration of an existing table
        assert reopened.get(job.id) is not None


def test_refuses_a_schema_newer_than_the_code(db_path: Path) -> None:
    JobStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'jobs'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        JobStore(db_path)


def test_a_closed_store_says_so(db_path: Path) -> None:
    s = JobStore(db_path)
    s.close()
    s.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        s.get("j-x")


def test_save_result_checkpoints_a_running_job_and_finish_keeps_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "state.sqlite3")
    job, _ = store.create(JobSpec(sources=(VideoSource.url("https://example.com/a.mp4"),)))
    store.claim(job.id)
    store.save_result(job.id, {"app_token": "bas1", "table_id": "tbl1"})
    assert store.get(job.id).result == {"app_token": "bas1", "table_id": "tbl1"}  # type: ignore[union-attr]

    finished = store.finish(job.id, JobStatus.FAILED, error={"code": "x"})
    assert finished.result == {"app_token": "bas1", "table_id": "tbl1"}
    with pytest.raises(JobNotFoundError):
        store.save_result("j-missing", {})


def test_a_job_is_found_by_its_card_message_or_its_key(store: JobStore) -> None:
    job, _ = store.create(make_spec(), idempotency_key="om_source")
    other, _ = store.create(make_spec(), idempotency_key="om_other")
    store.set_card_message(job.id, "om_card")
    found = store.find_by_card_message("om_card")
    assert found is not None and found.id == job.id
    by_key = store.find_by_key("om_other")
    assert by_key is not None and by_key.id == other.id
    assert store.find_by_card_message("om_unknown") is None and store.find_by_key("om_unknown") is None
    assert store.find_by_card_message("") is None and store.find_by_key("") is None


def test_a_job_is_found_by_its_card_message_through_an_index_the_previous_version_can_read(tmp_path: Path) -> None:
    # The file as main 882ad58 wrote it (schema version 1, no such index).
    path = tmp_path / "state.sqlite3"
    path.write_bytes((Path(__file__).parents[1] / "fixtures" / "jobs_v1.sqlite3").read_bytes())
    with JobStore(path) as s:
        job, _ = s.create(make_spec())
        s.set_card_message(job.id, "om_card_1")
        assert s.find_by_card_message("om_card_1") == s.get(job.id)
    with closing(sqlite3.connect(path)) as db:
        plan = " ".join(
            str(row[-1])
            for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE card_message_id = ? ORDER BY created_at DESC LIMIT 1",
                ("om_card_1",),
            )
        )
        assert "USING INDEX jobs_by_card_message" in plan, plan
        # Still version 1: the previous code opens the file rather than refusing a "newer" schema.
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'jobs'").fetchone() == (1,)
    with JobStore(path) as again:  # opening it again adds nothing and loses nothing
        assert again.find_by_card_message("om_card_1") is not None
