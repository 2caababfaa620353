"""Sends to Feishu happen off the request path: the webhook acknowledges at once and the outbox
delivers the reply cards afterwards.

- ``ThreadOutbox``: one worker thread and a queue (a long-running server).
- ``InlineOutbox``: runs each send at once, in the caller's thread. Function Compute freezes the
  instance as soon as the response is sent, so a background thread there would never run.

Both log and count failures and never raise them to the caller: a reply that could not be sent must not
turn an accepted webhook into an error (Feishu would redeliver and the job would be queued twice).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

Task = Callable[[], None]
FailureCallback = Callable[[str, BaseException], None]


class Outbox(Protocol):
    def submit(self, fn: Task, *, name: str) -> None: ...

    def start(self) -> None: ...

    def stop(self, drain_timeout_s: float = 5.0) -> None: ...


def _run(fn: Task, name: str, on_failure: FailureCallback | None) -> bool:
    try:
        fn()
    except Exception as exc:
        # The exception type and message only: tracebacks of SDK errors can carry request data.
        log.warning("outbox task %s failed: %s: %s", name, type(exc).__name__, exc)
        if on_failure is not None:
            on_failure(name, exc)
        return False
    return True


class InlineOutbox:
    def __init__(self, *, on_failure: FailureCallback | None = None) -> None:
        self._on_failure = on_failure

    def submit(self, fn: Task, *, name: str) -> None:
        _run(fn, name, self._on_failure)

    def start(self) -> None:
        pass

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        pass


class ThreadOutbox:
    """Worker threads draining one queue. Several workers, so that one slow send (Feishu retrying a
    rate limit with backoff) does not hold up the replies behind it; tasks start in submission order.
    ``stop`` lets queued sends finish for up to ``drain_timeout_s``; what is left after that is logged
    and dropped (jobs among them stay QUEUED in the store and are resumed by the next start)."""

    def __init__(self, *, on_failure: FailureCallback | None = None, workers: int = 4, name: str = "outbox") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._on_failure = on_failure
        self._queue: queue.Queue[tuple[Task, str] | None] = queue.Queue()  # None: stop
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._name = name
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            for number in range(self._workers):
                thread = threading.Thread(target=self._work, name=f"{self._name}-{number + 1}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def submit(self, fn: Task, *, name: str) -> None:
        with self._lock:
            if self._stopping:
                log.warning("outbox is stopping: task %s dropped", name)
                if self._on_failure is not None:
                    self._on_failure(name, RuntimeError("outbox stopped"))
                return
            if not self._threads:
                raise RuntimeError("ThreadOutbox.start() was not called")
        self._queue.put((fn, name))

    @property
    def pending(self) -> int:
        """Tasks submitted and not finished yet."""
        return self._queue.unfinished_tasks

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Block until every submitted task has finished; False if some are still pending after ``timeout_s``."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout_s)

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + drain_timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            # The count includes the stop markers not yet taken: roughly what was dropped.
            log.warning("outbox did not drain within %.1f s; about %d task(s) dropped", drain_timeout_s, self.pending)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, name = item
                _run(fn, name, self._on_failure)
            finally:
                self._queue.task_done()
