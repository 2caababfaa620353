"""Durable jobs: what was asked, where it stands, and what came of it, in one SQLite table.

A job moves through::

    QUEUED ──claim──> RUNNING ──finish──> DONE | FAILED | CANCELLED
       │                 │
       └─request_cancel──┴──> CANCELLED   (a queued job at once; a running one when its code notices)

    RUNNING ──(crash or restart)──> recover_interrupted ──> QUEUED again, or FAILED after max attempts

The store is the only shared state between the webhook that accepts a request, the runner that does the
work and the card that shows it, so every change is one short SQL transaction and every reader sees a
whole row. Several connections (threads, processes, the bot's own tables in the same file) coexist: the
file is in WAL mode and every connection waits on a busy lock instead of failing.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.models import JobSpec, UserText

log = logging.getLogger(__name__)

# How long a statement waits for another connection's write lock before giving up. Writes here take
# microseconds; the wait only matters when another process holds the file (a slow disk, a long migration).
BUSY_TIMEOUT_S = 30.0

SCHEMA_COMPONENT = "jobs"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """A terminal job never changes status again."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class JobNotFoundError(LookupError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


@dataclass(frozen=True)
class Job:
    id: str
    spec: JobSpec
    status: JobStatus
    progress: dict[str, Any]  # the saved progress record (pipeline.jobs.progress.BatchProgress.to_dict())
    result: dict[str, Any]  # what delivery produced (a table URL, counts)
    error: dict[str, Any] | None  # {"code", "message": {"zh", "en"}, "detail"} for failed jobs
    card_message_id: str | None
    attempts: int
    cancel_requested: bool
    parent_job_id: str | None  # the job a "retry failed" job retries
    idempotency_key: str | None  # at most one job per key, ever
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None


def new_job_id() -> str:
    """Short, unguessable and URL-safe (96 random bits); the ``j`` keeps it from starting with ``-``,
    so it is also a safe directory and command-line argument."""
    return "j" + secrets.token_urlsafe(12)


def job_error(code: str, message: UserText, detail: str = "") -> dict[str, Any]:
    """The shape of ``Job.error``: a stable code, words for the user, and a technical detail for logs."""
    return {"code": code, "message": message.to_dict(), "detail": detail}


def interrupted_error(attempts: int) -> dict[str, Any]:
    times_en = "once" if attempts == 1 else f"{attempts} times"
    return job_error(
        "interrupted",
        UserText(
            zh=f"任务被服务重启打断了 {attempts} 次，已停止重试。请重新发送视频再试一次。",
            en=f"The job was interrupted by a restart {times_en}, so it was stopped. "
            "Send the videos again to try once more.",
        ),
        f"interrupted by a restart {attempts} times (attempt limit reached)",
    )


# Each entry upgrades the schema by one version; append, never edit. The version is kept per component
# in ``schema_versions`` rather than in ``PRAGMA user_version``: the file is shared with other stores
# (the bot's dedupe table), and one file-wide number would let one store skip another's migrations.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE jobs (
            id               TEXT PRIMARY KEY,
            spec             TEXT NOT NULL,
            status           TEXT NOT NULL,
            progress         TEXT NOT NULL DEFAULT '{}',
            result           TEXT NOT NULL DEFAULT '{}',
            error            TEXT,
            card_message_id  TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            parent_job_id    TEXT,
            idempotency_key  TEXT UNIQUE,
            created_at       REAL NOT NULL,
            updated_at       REAL NOT NULL,
            started_at       REAL,
            finished_at      REAL
        )
        """,
        "CREATE INDEX jobs_by_status ON jobs (status, created_at)",
        "CREATE INDEX jobs_by_parent ON jobs (parent_job_id)",
    ),
)

# Indexes added at every open, outside the versions above: a new version would make the previous code
# refuse the file ("newer than this code knows"), while an extra index changes nothing it reads or
# writes (SQLite keeps it up to date for any writer). Only ever ``IF NOT EXISTS`` indexes here.
_UNVERSIONED_INDEXES: tuple[str, ...] = (
    # A reply to a job's card (a follow-up question) finds its job by the card's message id.
    "CREATE INDEX IF NOT EXISTS jobs_by_card_message ON jobs (card_message_id)",
)


class JobStore:
    """Jobs in a SQLite file. Thread-safe: one connection, one lock, one transaction per call.

    Several stores (threads, processes) may open the same file; the status checks live inside the SQL
    (``claim`` only moves a QUEUED row), so two of them never both win a job."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; ``_transaction`` opens them explicitly so a
        # read-then-write holds the write lock from the start (BEGIN IMMEDIATE).
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process crash (the case that matters here); only a power cut
            # may lose the last commits.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- plumbing ----------------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the job store is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = db.execute("SELECT version FROM schema_versions WHERE component = ?", (SCHEMA_COMPONENT,)).fetchone()
            current = int(row["version"]) if row else 0
            if current > len(_MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has jobs schema version {current}, newer than this code knows "
                    f"({len(_MIGRATIONS)}); run the newer version or use another DATA_DIR"
                )
            for version in range(current + 1, len(_MIGRATIONS) + 1):
                for statement in _MIGRATIONS[version - 1]:
                    db.execute(statement)
                log.info("job store %s: schema migrated to version %d", self.path, version)
            db.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (SCHEMA_COMPONENT, len(_MIGRATIONS)),
            )
            for statement in _UNVERSIONED_INDEXES:
                db.execute(statement)

    @staticmethod
    def _row_to_job(row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"],
            spec=JobSpec.from_dict(json.loads(row["spec"])),
            status=JobStatus(row["status"]),
            progress=json.loads(row["progress"]),
            result=json.loads(row["result"]),
            error=json.loads(row["error"]) if row["error"] is not None else None,
            card_message_id=row["card_message_id"],
            attempts=int(row["attempts"]),
            cancel_requested=bool(row["cancel_requested"]),
            parent_job_id=row["parent_job_id"],
            idempotency_key=row["idempotency_key"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            started_at=float(row["started_at"]) if row["started_at"] is not None else None,
            finished_at=float(row["finished_at"]) if row["finished_at"] is not None else None,
        )

    @staticmethod
    def _fetch(db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobStore._row_to_job(row) if row else None

    @staticmethod
    def _fetch_existing(db: sqlite3.Connection, job_id: str) -> Job:
        job = JobStore._fetch(db, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    # --- the API -----------------------------------------------------------------------------------

    def create(
        self, spec: JobSpec, *, idempotency_key: str | None = None, parent_job_id: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a new job. With a key already used (a redelivered event), return that job and False."""
        now = self._clock()
        job_id = new_job_id()
        spec_json = _dumps(spec.to_dict())  # outside the write lock
        with self._transaction() as db:
            # One statement on the webhook's path: the UNIQUE key turns a redelivery into a no-op.
            inserted = db.execute(
                "INSERT INTO jobs (id, spec, status, parent_job_id, idempotency_key, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (job_id, spec_json, JobStatus.QUEUED.value, parent_job_id, idempotency_key, now, now),
            ).rowcount
            if not inserted:
                row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                return self._row_to_job(row), False
        job = Job(
            id=job_id,
            spec=spec,
            status=JobStatus.QUEUED,
            progress={},
            result={},
            error=None,
            card_message_id=None,
            attempts=0,
            cancel_requested=False,
            parent_job_id=parent_job_id,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
        )
        return job, True

    def adopt(
        self,
        job_id: str,
        spec: JobSpec,
        *,
        idempotency_key: str | None = None,
        card_message_id: str | None = None,
        parent_job_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Record, QUEUED and under its own id, a job created in another store (another FC instance's),
        so it can be claimed and run here. Idempotent: a job this store already has is returned as it is
        (False), only gaining ``card_message_id`` if it had none. When another job here already holds
        ``idempotency_key`` (a redelivery that reached this instance too), the adopted job is stored
        without it: the platform's task id already keeps the two from both running."""
        now = self._clock()
        with self._transaction() as db:
            existing = self._fetch(db, job_id)
            if existing is not None:
                if card_message_id and not existing.card_message_id:
                    db.execute(
                        "UPDATE jobs SET card_message_id = ?, updated_at = ? WHERE id = ?",
                        (card_message_id, now, job_id),
                    )
                    existing = self._fetch_existing(db, job_id)
                return existing, False
            if idempotency_key is not None:
                holder = db.execute("SELECT id FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if holder is not None:
                    log.warning(
                        "job %s: idempotency key already held by job %s here; adopted without it", job_id, holder["id"]
                    )
                    idempotency_key = None
            db.execute(
                "INSERT INTO jobs (id, spec, status, card_message_id, parent_job_id, idempotency_key, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    _dumps(spec.to_dict()),
                    JobStatus.QUEUED.value,
                    card_message_id,
                    parent_job_id,
                    idempotency_key,
                    now,
                    now,
                ),
            )
            return self._fetch_existing(db, job_id), True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._fetch(self._db, job_id)

    def find_by_card_message(self, message_id: str) -> Job | None:
        """The job whose card is the message ``message_id`` (a reply in its thread names it)."""
        if not message_id:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE card_message_id = ? ORDER BY created_at DESC LIMIT 1", (message_id,)
            ).fetchone()
        return None if row is None else self._row_to_job(row)

    def find_by_key(self, idempotency_key: str) -> Job | None:
        if not idempotency_key:
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return None if row is None else self._row_to_job(row)

    def list(
        self,
        statuses: Iterable[JobStatus] | None = None,
        *,
        limit: int | None = 100,
        newest_first: bool = False,
    ) -> builtins.list[Job]:
        """Jobs in creation order (oldest first unless ``newest_first``); ``limit=None`` for all."""
        sql = "SELECT * FROM jobs"
        params: builtins.list[Any] = []
        if statuses is not None:
            wanted = [JobStatus(s).value for s in statuses]
            if not wanted:
                return []
            sql += f" WHERE status IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY created_at {order}, rowid {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [self._row_to_job(row) for row in rows]

    def claim(self, job_id: str) -> Job | None:
        """Move a QUEUED job to RUNNING for the caller; None when it is not QUEUED (another runner has it,
        it was cancelled, it is finished, or there is no such job)."""
        now = self._clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?, updated_at = ? "
                "WHERE id = ? AND status = ?",
                (JobStatus.RUNNING.value, now, now, job_id, JobStatus.QUEUED.value),
            )
            if cursor.rowcount != 1:
                return None
            return self._fetch_existing(db, job_id)

    def save_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                (_dumps(progress), self._clock(), job_id),
            )
            if cursor.rowcount != 1:
                raise JobNotFoundError(job_id)

    def save_result(self, job_id: str, result: dict[str, Any]) -> None:
        """Save what a running job has produced so far (a checkpoint: say, the results table it
        created), so a job resumed after a restart carries on from it instead of doing it twice."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET result = ?, updated_at = ? WHERE id = ?",
                (_dumps(result), self._clock(), job_id),
            )
            if cursor.rowcount != 1:
                raise JobNotFoundError(job_id)

    def set_card_message(self, job_id: str, message_id: str) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET card_message_id = ?, updated_at = ? WHERE id = ?",
                (message_id, self._clock(), job_id),
            )
            if cursor.rowcount != 1:
                raise JobNotFoundError(job_id)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> Job:
        """Record a terminal status. The first terminal status wins: finishing a job that is already
        DONE/FAILED/CANCELLED changes nothing and returns it as it is (so a late writer never turns a
        cancelled job into a done one). Without ``result`` the last saved one is kept."""
        return self.try_finish(job_id, status, result=result, error=error)[0]

    def try_finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[Job, bool]:
        """``finish``, also saying whether this call made the change (False: it was already terminal),
        so only the writer that finished a job tells its user."""
        status = JobStatus(status)
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, got {status.value!r}")
        now = self._clock()
        with self._transaction() as db:
            job = self._fetch_existing(db, job_id)
            if job.status.terminal:
                log.warning("job %s is already %s; not changing it to %s", job_id, job.status.value, status.value)
                return job, False
            db.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                (
                    status.value,
                    _dumps(result if result is not None else job.result),
                    _dumps(error) if error is not None else None,
                    now,
                    now,
                    job_id,
                ),
            )
            return self._fetch_existing(db, job_id), True

    def request_cancel(self, job_id: str) -> Job | None:
        """Ask for a job to stop. QUEUED: cancelled at once. RUNNING: only flagged; the job's code stops at
        its next check and the runner records CANCELLED. Terminal: unchanged. None for an unknown id."""
        now = self._clock()
        with self._transaction() as db:
            job = self._fetch(db, job_id)
            if job is None:
                return None
            if job.status is JobStatus.QUEUED:
                db.execute(
                    "UPDATE jobs SET status = ?, cancel_requested = 1, finished_at = ?, updated_at = ? WHERE id = ?",
                    (JobStatus.CANCELLED.value, now, now, job_id),
                )
            elif job.status is JobStatus.RUNNING:
                db.execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            else:
                return job
            return self._fetch_existing(db, job_id)

    def is_cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def recover_interrupted(self, max_attempts: int) -> tuple[builtins.list[Job], builtins.list[Job]]:
        """Deal with jobs a crash or restart left RUNNING: returns (requeued, ended).

        A job with attempts left goes back to QUEUED (it starts again from scratch). One that has used
        ``max_attempts`` is FAILED with an error that says so, and one whose user had asked to cancel is
        CANCELLED; both are in the second list so their users can be told.

        Call this only when no runner is working on this file (at start-up, before workers run): every
        RUNNING row is taken to be an orphan."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = self._clock()
        requeued: builtins.list[Job] = []
        ended: builtins.list[Job] = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY created_at, rowid", (JobStatus.RUNNING.value,)
            ).fetchall()
            for job in (self._row_to_job(row) for row in rows):
                if job.cancel_requested:
                    db.execute(
                        "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                        (JobStatus.CANCELLED.value, now, now, job.id),
                    )
                    ended.append(self._fetch_existing(db, job.id))
                elif job.attempts >= max_attempts:
                    db.execute(
                        "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                        (JobStatus.FAILED.value, _dumps(interrupted_error(job.attempts)), now, now, job.id),
                    )
                    ended.append(self._fetch_existing(db, job.id))
                else:
                    db.execute(
                        "UPDATE jobs SET status = ?, started_at = NULL, updated_at = ? WHERE id = ?",
                        (JobStatus.QUEUED.value, now, job.id),
                    )
                    requeued.append(self._fetch_existing(db, job.id))
        for job in requeued:
            log.warning("job %s was interrupted (attempt %d of %d): queued again", job.id, job.attempts, max_attempts)
        for job in ended:
            log.warning("job %s was interrupted: now %s", job.id, job.status.value)
        return requeued, ended

    def counts_by_status(self) -> dict[JobStatus, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        counts = dict.fromkeys(JobStatus, 0)
        for row in rows:
            counts[JobStatus(row["status"])] = int(row["n"])
        return counts

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _dumps(value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object (dict), got {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
