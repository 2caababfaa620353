"""Runners with real threads, real SQLite files and a real killed process. No timing assertions: threads
meet on events and conditions; timeouts only stop a broken test from hanging."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.errors import JobCancelled, TooLongError
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.jobs.runner import JobContext, JobOutcome, LocalRunner, SyncRunner, run_job
from pipeline.models import JobSpec, VideoSource

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0  # how long a broken test may hang before it fails; never a measure of speed


def spec(n: int = 1) -> JobSpec:
    return JobSpec(sources=tuple(VideoSource.url(f"https://example.com/{i}.mp4") for i in range(n)), creator_id="ou_1")


class Finished:
    """on_finished that hands each finished job to the test."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[Job] = queue.Queue()

    def __call__(self, job: Job) -> None:
        self.jobs.put(job)

    def get(self) -> Job:
        return self.jobs.get(timeout=WAIT_S)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def store(db_path: Path) -> Iterator[JobStore]:
    s = JobStore(db_path)
    yield s
    s.close()


@pytest.fixture
def finished() -> Finished:
    return Finished()


@pytest.fixture
def runners() -> Iterator[list[LocalRunner]]:
    """Runners made by a test, stopped at its end whatever happened."""
    made: list[LocalRunner] = []
    yield made
    for runner in made:
        runner.stop(timeout_s=WAIT_S)


def local_runner(
    runners: list[LocalRunner],
    store: JobStore,
    fn: Callable[[JobContext], JobOutcome],
    work_dir: Path,
    finished: Finished | None = None,
    *,
    workers: int = 1,
    max_attempts: int = 2,
    poll_s: float = 0.01,
) -> LocalRunner:
    runner = LocalRunner(
        store,
        fn,
        work_dir=work_dir,
        max_concurrent_jobs=workers,
        max_attempts=max_attempts,
        on_finished=finished,
        cancel_poll_interval_s=poll_s,
    )
    runners.append(runner)
    return runner


# --- outcomes -----------------------------------------------------------------------------------


def test_a_job_runs_to_done_with_its_progress_result_and_workspace(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    seen: dict[str, object] = {}

    def fn(ctx: JobContext) -> JobOutcome:
        seen["workspace"] = ctx.workspace.root
        seen["was_empty_dir"] = ctx.workspace.root.is_dir() and not any(ctx.workspace.root.iterdir())
        seen["status"] = ctx.job.status
        ctx.workspace.path("audio.wav").write_bytes(b"RIFF")
        ctx.save_progress({"stage": "outputs", "counts": {"ok": 1}})
        return JobOutcome.done({"table_url": "https://example.feishu.cn/base/b1"})

    job, _ = store.create(spec())
    runner = local_runner(runners, store, fn, work_dir, finished)
    runner.start()
    runner.submit(job.id)
    done = finished.get()
    assert done.id == job.id and done.status is JobStatus.DONE
    assert done.result == {"table_url": "https://example.feishu.cn/base/b1"}
    assert done.progress == {"stage": "outputs", "counts": {"ok": 1}}
    assert done.attempts == 1 and done.finished_at is not None
    assert seen["status"] is JobStatus.RUNNING
    assert seen["workspace"] == work_dir / job.id and seen["was_empty_dir"] is True
    assert not (work_dir / job.id).exists()


def test_an_unexpected_exception_fails_the_job_with_a_generic_message(
    store: JobStore, work_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fn(ctx: JobContext) -> JobOutcome:
        raise RuntimeError("boom in /srv/secret/path with token=abc123")

    job, _ = store.create(spec())
    with caplog.at_level(logging.ERROR):
        failed = SyncRunner(store, fn, work_dir=work_dir).run(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error["code"] == "internal_error"
    assert failed.error["detail"] == "RuntimeError"
    assert failed.error["message"]["zh"] and failed.error["message"]["en"]
    shown = json.dumps(failed.error, ensure_ascii=False)
    assert "boom" not in shown and "secret" not in shown and "Traceback" not in shown
    # The operator still gets the whole story in the log.
    assert "boom in /srv/secret/path" in caplog.text and "Traceback" in caplog.text


def test_a_pipeline_error_fails_the_job_with_its_own_words(store: JobStore, work_dir: Path) -> None:
    def fn(ctx: JobContext) -> JobOutcome:
        raise TooLongError(duration_s=5 * 3600, limit_s=4 * 3600)

    job, _ = store.create(spec())
    failed = SyncRunner(store, fn, work_dir=work_dir).run(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error["code"] == "too_long"
    assert "240" in failed.error["message"]["zh"] and "limit" in failed.error["message"]["en"]


def test_job_cancelled_ends_as_cancelled(store: JobStore, work_dir: Path) -> None:
    def fn(ctx: JobContext) -> JobOutcome:
        raise JobCancelled()

    job, _ = store.create(spec())
    cancelled = SyncRunner(store, fn, work_dir=work_dir).run(job.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED and cancelled.error is None


@pytest.mark.parametrize(
    "returned",
    [None, JobOutcome(JobStatus.RUNNING), JobOutcome(JobStatus.FAILED), "done"],
    ids=["none", "running", "failed-without-error", "a-string"],
)
def test_a_job_function_returning_nonsense_fails_visibly(store: JobStore, work_dir: Path, returned: object) -> None:
    def fn(ctx: JobContext) -> JobOutcome:
        return returned  # type: ignore[return-value]

    job, _ = store.create(spec())
    failed = SyncRunner(store, fn, work_dir=work_dir).run(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error["code"] == "internal_error"


@pytest.mark.parametrize("ending", ["done", "error", "cancelled"])
def test_the_workspace_is_removed_whatever_the_outcome(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner], ending: str
) -> None:
    during: list[bool] = []

    def fn(ctx: JobContext) -> JobOutcome:
        ctx.workspace.directory("video-0", "shots")
        ctx.workspace.path("video-0", "shots", "0001.jpg").write_bytes(b"\xff\xd8")
        during.append(ctx.workspace.path("video-0", "shots", "0001.jpg").exists())
        if ending == "error":
            raise ValueError("bad")
        if ending == "cancelled":
            raise JobCancelled()
        return JobOutcome.done()

    job, _ = store.create(spec())
    runner = local_runner(runners, store, fn, work_dir, finished)
    runner.start()
    runner.submit(job.id)
    ended = finished.get()
    expected = {"done": JobStatus.DONE, "error": JobStatus.FAILED, "cancelled": JobStatus.CANCELLED}[ending]
    assert ended.status is expected
    assert during == [True]
    assert not (work_dir / job.id).exists()
    assert list(work_dir.iterdir()) == []


def test_on_finished_errors_do_not_break_the_runner(
    store: JobStore, work_dir: Path, runners: list[LocalRunner], caplog: pytest.LogCaptureFixture
) -> None:
    calls: queue.Queue[str] = queue.Queue()

    def on_finished(job: Job) -> None:
        calls.put(job.id)
        raise ConnectionError("Feishu is down")

    first, _ = store.create(spec())
    second, _ = store.create(spec())
    runner = LocalRunner(
        store, lambda ctx: JobOutcome.done(), work_dir=work_dir, max_concurrent_jobs=1, max_attempts=2,
        on_finished=on_finished,
    )  # fmt: skip
    runners.append(runner)
    runner.start()  # both were queued before start: start submits them
    assert {calls.get(timeout=WAIT_S), calls.get(timeout=WAIT_S)} == {first.id, second.id}
    assert "on_finished failed" in caplog.text


# --- cancellation -------------------------------------------------------------------------------


def test_a_cancel_flag_set_through_the_store_reaches_the_running_job(
    store: JobStore, db_path: Path, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    started = threading.Event()

    def fn(ctx: JobContext) -> JobOutcome:
        started.set()
        if ctx.cancel.wait(WAIT_S):
            raise JobCancelled()
        return JobOutcome.done()

    job, _ = store.create(spec())
    runner = local_runner(runners, store, fn, work_dir, finished, poll_s=0.01)
    runner.start()
    runner.submit(job.id)
    assert started.wait(WAIT_S)
    # Another process (a second server worker handling the card button) only has the store.
    with JobStore(db_path) as elsewhere:
        flagged = elsewhere.request_cancel(job.id)
    assert flagged is not None and flagged.status is JobStatus.RUNNING
    ended = finished.get()
    assert ended.status is JobStatus.CANCELLED and ended.cancel_requested


def test_runner_cancel_reaches_a_running_job_at_once(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    started = threading.Event()

    def fn(ctx: JobContext) -> JobOutcome:
        assert not ctx.cancel.cancelled  # spends the one store poll of the hour
        started.set()
        if ctx.cancel.wait(WAIT_S):
            raise JobCancelled()
        return JobOutcome.done()

    job, _ = store.create(spec())
    runner = local_runner(runners, store, fn, work_dir, finished, poll_s=3600)  # the store is not asked again
    runner.start()
    runner.submit(job.id)
    assert started.wait(WAIT_S)
    runner.cancel(job.id)
    assert finished.get().status is JobStatus.CANCELLED


def test_cancelling_a_queued_job_ends_it_without_running_it(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    ran: list[str] = []
    started = threading.Event()
    gate = threading.Event()

    def fn(ctx: JobContext) -> JobOutcome:
        ran.append(ctx.job.id)
        started.set()
        assert gate.wait(WAIT_S)
        return JobOutcome.done()

    busy, _ = store.create(spec())
    waiting, _ = store.create(spec())
    runner = local_runner(runners, store, fn, work_dir, finished, workers=1)
    runner.start()
    assert started.wait(WAIT_S)  # the only worker holds `busy`; `waiting` is queued behind it
    runner.cancel(waiting.id)
    told = finished.get()
    assert (told.id, told.status) == (waiting.id, JobStatus.CANCELLED)
    gate.set()
    assert finished.get().id == busy.id
    runner.stop(timeout_s=WAIT_S)
    assert ran == [busy.id]
    assert store.get(waiting.id).status is JobStatus.CANCELLED  # type: ignore[union-attr]


# --- concurrency --------------------------------------------------------------------------------


def test_no_more_than_max_concurrent_jobs_run_at_once(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    limit, total = 2, 6
    changed = threading.Condition()
    running: set[str] = set()
    most_at_once = 0
    gates: dict[str, threading.Event] = {}

    def fn(ctx: JobContext) -> JobOutcome:
        nonlocal most_at_once
        with changed:
            running.add(ctx.job.id)
            most_at_once = max(most_at_once, len(running))
            changed.notify_all()
        try:
            assert gates[ctx.job.id].wait(WAIT_S)
        finally:
            with changed:
                running.discard(ctx.job.id)
                changed.notify_all()
        return JobOutcome.done()

    jobs = [store.create(spec())[0] for _ in range(total)]
    gates.update({job.id: threading.Event() for job in jobs})
    runner = local_runner(runners, store, fn, work_dir, finished, workers=limit)
    runner.start()
    for job in jobs:
        runner.submit(job.id)
        runner.submit(job.id)  # a second submit of the same job changes nothing

    done: list[str] = []
    while len(done) < total:
        with changed:
            # Every job is held until released: the runner fills exactly `limit` slots, never more.
            assert changed.wait_for(lambda: len(running) == min(limit, total - len(done)), WAIT_S)
            assert len(running) <= limit
            release = min(running)
        gates[release].set()
        ended = finished.get()
        assert ended.status is JobStatus.DONE
        done.append(ended.id)
    assert most_at_once == limit
    assert sorted(done) == sorted(j.id for j in jobs)
    assert all(j.attempts == 1 for j in store.list(limit=None))


def test_two_runners_on_one_store_never_run_the_same_job(db_path: Path, work_dir: Path) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def fn(ctx: JobContext) -> JobOutcome:
        with lock:
            calls.append(ctx.job.id)
        return JobOutcome.done()

    with JobStore(db_path) as setup:
        job, _ = setup.create(spec())
    stores = [JobStore(db_path), JobStore(db_path)]
    barrier = threading.Barrier(2)
    results: list[Job | None] = []

    def race(s: JobStore) -> None:
        barrier.wait()
        results.append(SyncRunner(s, fn, work_dir=work_dir).run(job.id))

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert calls == [job.id]
    assert sorted(r is None for r in results) == [False, True]


# --- restarts -----------------------------------------------------------------------------------


def test_start_recovers_interrupted_jobs_and_runs_the_queue_oldest_first(
    db_path: Path, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    with JobStore(db_path) as crashed:
        interrupted, _ = crashed.create(spec())  # running once when the process died
        crashed.claim(interrupted.id)
        worn_out, _ = crashed.create(spec())  # died on its last attempt too
        crashed.claim(worn_out.id)
        crashed.recover_interrupted(max_attempts=2)
        crashed.claim(worn_out.id)
        waiting, _ = crashed.create(spec())  # never started
    for job_id in (interrupted.id, worn_out.id):  # what the dead process left on disk
        (work_dir / job_id).mkdir(parents=True)
        (work_dir / job_id / "partial.mp4").write_bytes(b"half")

    order: list[str] = []
    leftovers: list[list[str]] = []

    def fn(ctx: JobContext) -> JobOutcome:
        order.append(ctx.job.id)
        leftovers.append(sorted(p.name for p in ctx.workspace.root.iterdir()))
        return JobOutcome.done()

    store = JobStore(db_path)
    try:
        runner = local_runner(runners, store, fn, work_dir, finished, workers=1, max_attempts=2)
        runner.start()
        told = [finished.get() for _ in range(3)]
        runner.stop(timeout_s=WAIT_S)
    finally:
        store.close()
    by_id = {job.id: job for job in told}
    assert by_id[worn_out.id].status is JobStatus.FAILED
    worn_out_error = by_id[worn_out.id].error
    assert worn_out_error is not None and worn_out_error["code"] == "interrupted"
    assert (by_id[interrupted.id].status, by_id[interrupted.id].attempts) == (JobStatus.DONE, 2)
    assert (by_id[waiting.id].status, by_id[waiting.id].attempts) == (JobStatus.DONE, 1)
    assert told[0].id == worn_out.id  # the user of the failed one is told first, at start
    assert order == [interrupted.id, waiting.id]
    assert leftovers == [[], []]  # a resumed job starts from a clean workspace
    assert list(work_dir.iterdir()) == []


def test_stop_leaves_running_jobs_for_the_next_start(db_path: Path, work_dir: Path, runners: list[LocalRunner]) -> None:
    started = threading.Event()
    gate = threading.Event()
    first_told = Finished()

    def slow(ctx: JobContext) -> JobOutcome:
        started.set()
        assert gate.wait(WAIT_S)
        return JobOutcome.done({"by": "first"})

    first_store = JobStore(db_path)
    job, _ = first_store.create(spec())
    queued, _ = first_store.create(spec())
    first = local_runner(runners, first_store, slow, work_dir, first_told, workers=1)
    first.start()
    assert started.wait(WAIT_S)
    first.stop(timeout_s=0)  # shutting down: the job is not finished and must not be cancelled
    assert not first.accepting
    assert first_store.get(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    assert first_store.get(queued.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    first.submit(queued.id)  # refused quietly: it stays queued for the next start

    # The next start (here while the old thread still hangs, as a process that is slow to die would).
    second_told = Finished()
    second_store = JobStore(db_path)
    second = local_runner(
        runners, second_store, lambda ctx: JobOutcome.done({"by": "second"}), work_dir, second_told, workers=1
    )
    second.start()
    resumed = {j.id: j for j in (second_told.get(), second_told.get())}
    assert resumed[job.id].status is JobStatus.DONE and resumed[job.id].attempts == 2
    assert resumed[job.id].result == {"by": "second"}
    assert resumed[queued.id].status is JobStatus.DONE

    gate.set()  # the old attempt ends late: it must not overwrite the result nor tell the user again
    first.stop(timeout_s=WAIT_S)
    assert first_told.jobs.empty()
    assert second_store.get(job.id).result == {"by": "second"}  # type: ignore[union-attr]
    with pytest.raises(RuntimeError):
        first.start()
    first_store.close()
    second.stop(timeout_s=WAIT_S)
    second_store.close()


@pytest.mark.slow
def test_a_killed_process_is_not_a_silent_loss(db_path: Path, work_dir: Path, runners: list[LocalRunner]) -> None:
    """A real process claims the job, starts writing, and is SIGKILLed. Recovery here requeues it, and a
    runner in this process then runs it to the end."""
    with JobStore(db_path) as setup:
        job, _ = setup.create(spec())
    child_code = textwrap.dedent(
        """
        import sys, threading
        from pathlib import Path
        from pipeline.jobs import JobStore
        from pipeline.jobs.runner import JobOutcome, LocalRunner

        def job(ctx):
            ctx.workspace.path("partial.mp4").write_bytes(b"half a video")
            print("running", ctx.job.id, flush=True)
            threading.Event().wait()  # until killed
            return JobOutcome.done()

        store = JobStore(Path(sys.argv[1]))
        LocalRunner(store, job, work_dir=Path(sys.argv[2]), max_concurrent_jobs=1, max_attempts=2).start()
        threading.Event().wait()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", child_code, str(db_path), str(work_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.split() == ["running", job.id]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=WAIT_S)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    store = JobStore(db_path)
    try:
        left = store.get(job.id)
        assert left is not None and left.status is JobStatus.RUNNING and left.attempts == 1
        assert (work_dir / job.id / "partial.mp4").exists()

        told = Finished()
        seen: list[str] = []

        def finish_it(ctx: JobContext) -> JobOutcome:
            seen.extend(p.name for p in ctx.workspace.root.iterdir())
            return JobOutcome.done({"rows": 1})

        runner = local_runner(runners, store, finish_it, work_dir, told, max_attempts=2)
        runner.start()
        done = told.get()
    finally:
        runner.stop(timeout_s=WAIT_S)
        store.close()
    assert (done.id, done.status, done.attempts, done.result) == (job.id, JobStatus.DONE, 2, {"rows": 1})
    assert seen == []  # started over, not from the half-written file
    assert not (work_dir / job.id).exists()


def test_submit_before_start_keeps_the_job_queued_for_start(
    store: JobStore, work_dir: Path, finished: Finished, runners: list[LocalRunner]
) -> None:
    job, _ = store.create(spec())
    runner = local_runner(runners, store, lambda ctx: JobOutcome.done(), work_dir, finished)
    assert not runner.accepting
    runner.submit(job.id)
    assert store.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    runner.start()
    assert runner.accepting
    assert finished.get().status is JobStatus.DONE


# --- SyncRunner and run_job ---------------------------------------------------------------------


def test_sync_runner_runs_inline_and_reports(store: JobStore, work_dir: Path, finished: Finished) -> None:
    threads: list[str] = []

    def fn(ctx: JobContext) -> JobOutcome:
        threads.append(threading.current_thread().name)
        return JobOutcome.done({"n": 1})

    job, _ = store.create(spec())
    runner = SyncRunner(store, fn, work_dir=work_dir, on_finished=finished)
    runner.start()
    runner.submit(job.id)
    assert threads == [threading.current_thread().name]
    assert store.get(job.id).status is JobStatus.DONE  # type: ignore[union-attr]
    assert finished.get().result == {"n": 1}
    assert runner.run(job.id) is None  # finished jobs are not run again
    runner.stop()
    other, _ = store.create(spec())
    runner.submit(other.id)
    assert store.get(other.id).status is JobStatus.QUEUED  # type: ignore[union-attr]


def test_sync_runner_cancel_from_another_thread(store: JobStore, work_dir: Path) -> None:
    started = threading.Event()

    def fn(ctx: JobContext) -> JobOutcome:
        started.set()
        if ctx.cancel.wait(WAIT_S):
            raise JobCancelled()
        return JobOutcome.done()

    job, _ = store.create(spec())
    runner = SyncRunner(store, fn, work_dir=work_dir, cancel_poll_interval_s=3600)

    def press_cancel() -> None:
        assert started.wait(WAIT_S)
        runner.cancel(job.id)

    canceller = threading.Thread(target=press_cancel)
    canceller.start()
    ended = runner.run(job.id)
    canceller.join()
    assert ended is not None and ended.status is JobStatus.CANCELLED


def test_run_job_uses_the_store_flag_without_a_runner(store: JobStore, work_dir: Path) -> None:
    # What an FC invocation of /jobs/run does: no runner object, just the store.
    def fn(ctx: JobContext) -> JobOutcome:
        ctx.store.request_cancel(ctx.job.id)  # as if the button was pressed meanwhile
        ctx.cancel.raise_if_cancelled()
        return JobOutcome.done()

    job, _ = store.create(spec())
    ended = run_job(store, job.id, fn, work_dir=work_dir)
    assert ended is not None and ended.status is JobStatus.CANCELLED
    assert run_job(store, "j-unknown", fn, work_dir=work_dir) is None
