"""A watch over one download: cancel, an overall deadline and a minimum average rate, enforced from a
helper thread so they take effect while the downloading thread is blocked reading the socket.

A read timeout alone bounds one silence, not a download: a server that sends a few bytes every minute
keeps a worker forever, and a cancel is only noticed when the next chunk arrives (minutes, at 2 KB/s).
The watch wakes every ``tick_s``; when the job was cancelled, the deadline passed or the average rate
fell below the minimum, it records why and shuts the socket being read down, so the blocked read
returns at once. The downloading thread then calls ``raise_if_stopped`` and reports the real reason
instead of a broken connection (which would otherwise be retried).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from urllib.parse import urlsplit

from pipeline.errors import DownloadError, JobCancelled
from pipeline.models import CancelToken, UserText

TICK_S = 0.2


class StopReason(StrEnum):
    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    TOO_SLOW = "too_slow"


@dataclass(frozen=True)
class TransferLimits:
    """``deadline_s``: the whole download, retries and waits included. ``min_bytes_per_s``: the lowest
    average rate, judged from ``rate_grace_s`` on (0 turns it off). ``slack_bytes``: bytes that may be
    in flight unseen (one read's worth), counted in the download's favour."""

    deadline_s: float
    min_bytes_per_s: float
    rate_grace_s: float
    slack_bytes: int = 0


class TransferWatch:
    """Use as a context manager around a download; ``attach`` the socket being read, ``count`` bytes."""

    def __init__(
        self,
        url: str,
        limits: TransferLimits,
        cancel: CancelToken,
        *,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = urlsplit(url).hostname or "?"
        self._limits = limits
        self._cancel = cancel
        self._tick_s = tick_s
        self._clock = clock
        self._started = clock()
        self._bytes = 0
        self._socket: socket.socket | None = None
        self._reason: StopReason | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-watch", daemon=True)

    def __enter__(self) -> TransferWatch:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    # --- the downloading thread ------------------------------------------------------------------

    def attach(self, sock: socket.socket | None) -> None:
        """The socket the body is read from (None: not known). Shut down at once if already stopped."""
        with self._lock:
            self._socket = sock
            stopped = self._reason is not None
        if stopped:
            _shut_down(sock)

    def count(self, received: int) -> None:
        with self._lock:
            self._bytes += received

    def remaining_s(self) -> float:
        return self._limits.deadline_s - (self._clock() - self._started)

    def raise_if_stopped(self) -> None:
        """Raise why the watch stopped the download, if it did (or the job was cancelled)."""
        reason = self._reason or self._evaluate()
        if reason is None:
            return
        self._reason = reason
        if reason is StopReason.CANCELLED:
            raise JobCancelled()
        raise self._error(reason)

    # --- the watch thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._done.wait(self._tick_s):
            reason = self._evaluate()
            if reason is not None:
                with self._lock:
                    self._reason = reason
                    sock = self._socket
                _shut_down(sock)
                return

    def _evaluate(self) -> StopReason | None:
        if self._cancel.cancelled:
            return StopReason.CANCELLED
        elapsed = self._clock() - self._started
        if elapsed > self._limits.deadline_s:
            return StopReason.DEADLINE
        minimum = self._limits.min_bytes_per_s
        if minimum > 0 and elapsed > self._limits.rate_grace_s:
            with self._lock:
                received = self._bytes
            if (received + self._limits.slack_bytes) / elapsed < minimum:
                return StopReason.TOO_SLOW
        return None

    def _error(self, reason: StopReason) -> DownloadError:
        limits = self._limits
        if reason is StopReason.DEADLINE:
            minutes = limits.deadline_s / 60
            return DownloadError(
                f"the download from {self._host} did not finish within {limits.deadline_s:g} s",
                retryable=True,
                user_message=UserText(
                    zh=f"从 {self._host} 下载超过 {minutes:g} 分钟仍未完成，已停止。"
                    "请换一个更快的链接，或稍后点“重试失败项”。",
                    en=f"The download from {self._host} took longer than {minutes:g} min and was stopped. "
                    "Try a faster link, or “Retry failed” later.",
                ),
            )
        rate_kib = limits.min_bytes_per_s / 1024
        return DownloadError(
            f"the download from {self._host} averaged under {limits.min_bytes_per_s:g} bytes/s",
            retryable=True,
            user_message=UserText(
                zh=f"{self._host} 的下载速度过慢（平均低于 {rate_kib:g} KB/s），已停止。"
                "请换一个链接，或稍后点“重试失败项”。",
                en=f"The download from {self._host} was too slow (under {rate_kib:g} KB/s on average) and was "
                "stopped. Try another link, or “Retry failed” later.",
            ),
        )


def _shut_down(sock: socket.socket | None) -> None:
    """Wake a thread blocked reading ``sock``: its read returns (EOF or an error) at once."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
