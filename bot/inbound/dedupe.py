"""Durable "have we seen this before?" for webhook deliveries.

Feishu redelivers an event it thinks failed for about 7 hours, sometimes under a new ``event_id`` for
the same message, so both ids are remembered, on disk, for at least ``ttl_s`` (8 h or more): a restart
or a second instance on the same ``DATA_DIR`` still drops them. One ``INSERT OR IGNORE`` decides, so two
concurrent deliveries of the same id cannot both win.

A message is *claimed* before it is handled and marked *handled* once its job exists (``handled``): a
process killed in between leaves a claim that nobody finishes, and a redelivery that finds a claim
older than ``claim_timeout_s`` takes it over instead of being dropped as a duplicate (the job insert
and the reply are idempotent per message, so a takeover never makes a second job or card). A fresh
unfinished claim is another delivery being handled right now: that one is a duplicate.

The table lives in the job store's SQLite file (``DATA_DIR/state.sqlite3``) on its own connection, and
registers its version in the file's ``schema_versions`` table as the component ``webhook_seen``
(version 2 added ``handled_at``; rows from version 1 count as handled).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

MIN_TTL_S = 8 * 3600.0
DEFAULT_PURGE_EVERY_S = 600.0
DEFAULT_CLAIM_TIMEOUT_S = 30.0
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_seen (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    seen_at REAL NOT NULL,
    handled_at REAL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_seen_by_age ON webhook_seen (seen_at);
CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO schema_versions (component, version) VALUES ('webhook_seen', 2);
"""


class SeenStore:
    """``first_time(kind, key, now)`` is True exactly once per (kind, key) within the TTL."""

    def __init__(
        self,
        path: Path | str,
        *,
        ttl_s: float = 24 * 3600.0,
        purge_every_s: float = DEFAULT_PURGE_EVERY_S,
        claim_timeout_s: float = DEFAULT_CLAIM_TIMEOUT_S,
        busy_timeout_ms: int = 5000,
    ) -> None:
        if ttl_s < MIN_TTL_S:
            raise ValueError(f"ttl_s must be at least {MIN_TTL_S:.0f} s: Feishu redelivers for about 7 hours")
        self.path = Path(path)
        self.ttl_s = ttl_s
        self._purge_every_s = purge_every_s
        self.claim_timeout_s = claim_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the request threads, serialised by a lock: each call is a single
        # short statement, and SQLite serialises writers anyway.
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, check_same_thread=False)
        self._conn.isolation_level = None  # autocommit: every statement is its own transaction
        self._lock = threading.Lock()
        self._last_purge = float("-inf")
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a crash of the process (not of the machine) without an fsync
            # per insert: a lost record costs at worst one duplicate card, never a lost message.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Version 1 had no ``handled_at``: its rows were recorded as handled, and stay so."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(webhook_seen)")}
            if "handled_at" not in columns:
                self._conn.execute("ALTER TABLE webhook_seen ADD COLUMN handled_at REAL")
                self._conn.execute("UPDATE webhook_seen SET handled_at = seen_at")
            self._conn.execute(
                "UPDATE schema_versions SET version = ? WHERE component = 'webhook_seen' AND version < ?",
                (SCHEMA_VERSION, SCHEMA_VERSION),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def first_time(self, kind: str, key: str, now: float) -> bool:
        """Record (kind, key); True if it was not recorded before (within the TTL)."""
        return self.first_time_all([(kind, key)], now) is None

    def first_time_all(
        self, keys: Sequence[tuple[str, str]], now: float, *, claim: bool = False
    ) -> tuple[str, str] | None:
        """Record every (kind, key) in one transaction (one commit on the request path instead of one
        per key). Returns the first one that was recorded before, or None when all are new.

        With ``claim`` the records are claims, finished by ``handled``; a claim left unfinished for
        ``claim_timeout_s`` (its handler died) is taken over and does not count as recorded before."""
        if now - self._last_purge >= self._purge_every_s:
            self.purge(now)
        duplicate: tuple[str, str] | None = None
        handled_at = None if claim else now
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for kind, key in keys:
                    cursor = self._conn.execute(
                        "INSERT OR IGNORE INTO webhook_seen (kind, key, seen_at, handled_at) VALUES (?, ?, ?, ?)",
                        (kind, key, now, handled_at),
                    )
                    if cursor.rowcount == 1:
                        continue
                    taken_over = self._conn.execute(
                        "UPDATE webhook_seen SET seen_at = ?, handled_at = ? "
                        "WHERE kind = ? AND key = ? AND handled_at IS NULL AND seen_at <= ?",
                        (now, handled_at, kind, key, now - self.claim_timeout_s),
                    )
                    if taken_over.rowcount == 1:
                        log.warning("%s %s: taking over a claim its handler never finished", kind, key)
                    elif duplicate is None:
                        duplicate = (kind, key)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return duplicate

    def handled(self, keys: Sequence[tuple[str, str]], now: float) -> None:
        """Finish the claims on ``keys``: from now on they are plain duplicates."""
        with self._lock:
            self._conn.executemany(
                "UPDATE webhook_seen SET handled_at = ? WHERE kind = ? AND key = ?", [(now, k, v) for k, v in keys]
            )

    def forget(self, kind: str, key: str) -> None:
        """Undo a record, so a redelivery is handled (used when handling failed after recording)."""
        with self._lock:
            self._conn.execute("DELETE FROM webhook_seen WHERE kind = ? AND key = ?", (kind, key))

    def purge(self, now: float) -> int:
        """Drop records older than the TTL; returns how many went."""
        with self._lock:
            self._last_purge = now
            cursor = self._conn.execute("DELETE FROM webhook_seen WHERE seen_at < ?", (now - self.ttl_s,))
            removed = cursor.rowcount
        if removed:
            log.debug("purged %d delivery records older than %.0f h", removed, self.ttl_s / 3600)
        return removed

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM webhook_seen").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
