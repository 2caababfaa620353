"""bot.outbox: sends run off the request path, in order, and a failure never reaches the caller."""

from __future__ import annotations

import threading

import pytest

from bot.outbox import InlineOutbox, ThreadOutbox


def test_one_worker_runs_tasks_in_order_on_its_own_thread() -> None:
    done: list[tuple[int, str]] = []
    outbox = ThreadOutbox(workers=1)
    outbox.start()
    for i in range(20):
        outbox.submit(lambda i=i: done.append((i, threading.current_thread().name)), name=f"task:{i}")
    outbox.stop(drain_timeout_s=10)
    assert [i for i, _ in done] == list(range(20))
    assert {name for _, name in done} == {"outbox-1"}


def test_a_stuck_send_does_not_hold_up_the_others() -> None:
    release = threading.Event()
    others_done = threading.Event()
    outbox = ThreadOutbox(workers=2)
    outbox.start()
    outbox.submit(lambda: release.wait(10), name="stuck")
    outbox.submit(others_done.set, name="next")
    assert others_done.wait(10)
    assert not outbox.wait_until_idle(0.05)  # the stuck one cannot finish before it is released
    release.set()
    assert outbox.wait_until_idle(10)
    assert outbox.pending == 0
    outbox.stop()


def test_stop_drains_what_was_queued() -> None:
    done: list[int] = []
    outbox = ThreadOutbox(workers=3)
    outbox.start()
    for i in range(50):
        outbox.submit(lambda i=i: done.append(i), name="t")
    outbox.stop(drain_timeout_s=10)
    assert sorted(done) == list(range(50))


def test_submit_returns_before_the_task_runs() -> None:
    release = threading.Event()
    ran = threading.Event()
    outbox = ThreadOutbox()
    outbox.start()

    def slow() -> None:
        release.wait(10)
        ran.set()

    outbox.submit(slow, name="slow")
    assert not ran.is_set()  # the caller (the webhook) is not held up
    release.set()
    outbox.stop(drain_timeout_s=10)
    assert ran.is_set()


def test_failures_are_reported_and_later_tasks_still_run() -> None:
    failures: list[tuple[str, str]] = []
    done: list[str] = []
    outbox = ThreadOutbox(on_failure=lambda name, exc: failures.append((name, str(exc))))
    outbox.start()

    def broken() -> None:
        raise RuntimeError("feishu said no")

    outbox.submit(broken, name="reply:queued")
    outbox.submit(lambda: done.append("after"), name="reply:help")
    outbox.stop(drain_timeout_s=10)
    assert failures == [("reply:queued", "feishu said no")]
    assert done == ["after"]


def test_after_stop_tasks_are_dropped_and_reported() -> None:
    failures: list[str] = []
    outbox = ThreadOutbox(on_failure=lambda name, exc: failures.append(name))
    outbox.start()
    outbox.stop()
    outbox.submit(lambda: None, name="late")
    assert failures == ["late"]


def test_submit_before_start_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        ThreadOutbox().submit(lambda: None, name="x")


def test_inline_outbox_runs_at_once_and_swallows_failures() -> None:
    failures: list[str] = []
    done: list[str] = []
    outbox = InlineOutbox(on_failure=lambda name, exc: failures.append(name))
    outbox.submit(lambda: done.append(threading.current_thread().name), name="ok")

    def broken() -> None:
        raise ValueError("boom")

    outbox.submit(broken, name="bad")
    assert done == [threading.current_thread().name]
    assert failures == ["bad"]
