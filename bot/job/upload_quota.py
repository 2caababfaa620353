"""Feishu's daily allowance of Drive uploads, counted in the state database.

``upload_all`` is limited to 10,000 calls a day per app (besides 5 QPS, which ``results_sink`` keeps to).
Every worker thread and every restart of this instance shares one count: a row per day in the job
store's SQLite file (``DATA_DIR/state.sqlite3``), taken in one ``BEGIN IMMEDIATE`` transaction so two jobs
never both get the last uploads. A job reserves what it needs before its first upload and is granted
what is left; ``results_sink`` then uploads the most useful attachments first and says what it left out.

The day is Feishu's (China Standard Time, UTC+8), so the count resets when Feishu's does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

FEISHU_DAY = timezone(timedelta(hours=8))
FEISHU_DAILY_UPLOADS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS upload_quota (
    day  TEXT PRIMARY KEY,   -- YYYY-MM-DD in UTC+8
    used INTEGER NOT NULL
);
"""


class UploadQuota:
    def __init__(
        self,
        path: Path | str,
        *,
        daily_limit: int = FEISHU_DAILY_UPLOADS,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5000,
    ) -> None:
        if daily_limit < 0:
            raise ValueError("daily_limit must not be negative")
        self.daily_limit = daily_limit
        self._clock = clock
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, check_same_thread=False)
        self._conn.isolation_level = None  # transactions are explicit
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.executescript(_SCHEMA)

    def today(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).astimezone(FEISHU_DAY).date().isoformat()

    def left(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT used FROM upload_quota WHERE day = ?", (self.today(),)).fetchone()
        return max(0, self.daily_limit - (int(row[0]) if row else 0))

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` uploads for today; returns how many were granted (0 when none are left)."""
        if wanted <= 0:
            return 0
        day = self.today()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT used FROM upload_quota WHERE day = ?", (day,)).fetchone()
                used = int(row[0]) if row else 0
                granted = max(0, min(wanted, self.daily_limit - used))
                self._conn.execute(
                    "INSERT INTO upload_quota (day, used) VALUES (?, ?) "
                    "ON CONFLICT(day) DO UPDATE SET used = used + excluded.used",
                    (day, granted),
                )
                self._conn.execute("DELETE FROM upload_quota WHERE day < ?", (day,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return granted

    def close(self) -> None:
        with self._lock:
            self._conn.close()
