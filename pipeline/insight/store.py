"""Transcripts kept for follow-up questions: one SQLite file in ``DATA_DIR``, one row per job, with the
job's creator and chat so only they can ask. Rows older than ``INSIGHT_RETENTION_DAYS`` are deleted
(on every save and every read); 0 keeps nothing at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.models import BatchResult, VideoResult, VideoStatus

STORE_FILE = "insight.sqlite3"
_DAY_S = 86_400.0


@dataclass(frozen=True)
class StoredVideo:
    number: int  # 1-based
    name: str
    duration_s: float
    segments: tuple[tuple[float, float, str], ...]
    visual: tuple[tuple[float, str], ...] = ()  # (time, what is on screen)
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "duration_s": self.duration_s,
                "segments": [list(s) for s in self.segments], "visual": [list(v) for v in self.visual],
                "summary": self.summary}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredVideo:
        return cls(
            number=int(data["number"]),
            name=str(data.get("name", "")),
            duration_s=float(data.get("duration_s", 0.0)),
            segments=tuple((float(a), float(b), str(t)) for a, b, t in data.get("segments") or ()),
            visual=tuple((float(a), str(t)) for a, t in data.get("visual") or ()),
            summary=str(data.get("summary", "")),
        )


@dataclass(frozen=True)
class StoredJob:
    job_id: str
    creator_id: str
    chat_id: str
    saved_at: float
    videos: tuple[StoredVideo, ...]

    def allows(self, user_id: str, chat_id: str) -> bool:
        """The job's creator anywhere, or anyone in the chat the job was asked in."""
        return bool((user_id and user_id == self.creator_id) or (chat_id and chat_id == self.chat_id))


class InsightStore:
    def __init__(self, data_dir: Path, retention_days: float) -> None:
        self._path = data_dir / STORE_FILE
        self._retention_s = retention_days * _DAY_S
        self._lock = threading.Lock()

    @property
    def keeps_anything(self) -> bool:
        return self._retention_s > 0

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            db = sqlite3.connect(self._path, timeout=10)
            try:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS insight_jobs (job_id TEXT PRIMARY KEY, creator_id TEXT NOT NULL, "
                    "chat_id TEXT NOT NULL, saved_at REAL NOT NULL, videos TEXT NOT NULL)"
                )
                with db:
                    yield db
            finally:
                db.close()

    def save(self, job_id: str, creator_id: str, chat_id: str, batch: BatchResult, *, now: float | None = None) -> bool:
        """Keep the transcripts of ``batch`` for questions; False (and nothing kept) when retention is 0."""
        now = time.time() if now is None else now
        self.purge(now=now)
        if not self.keeps_anything:
            return False
        videos = [_stored(v) for v in sorted(batch.videos, key=lambda v: v.index) if v.status is VideoStatus.OK]
        payload = json.dumps([v.to_dict() for v in videos], ensure_ascii=False)
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO insight_jobs VALUES (?, ?, ?, ?, ?)",
                (job_id, creator_id, chat_id, now, payload),
            )
        return True

    def load(self, job_id: str, *, now: float | None = None) -> StoredJob | None:
        """The job's transcripts, or None when never kept or already past retention (then deleted)."""
        self.purge(now=now)
        if not self._path.exists():
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT job_id, creator_id, chat_id, saved_at, videos FROM insight_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        videos = tuple(StoredVideo.from_dict(v) for v in json.loads(row[4]))
        return StoredJob(row[0], row[1], row[2], float(row[3]), videos)

    def purge(self, *, now: float | None = None) -> int:
        """Delete what is past retention; returns how many jobs went."""
        if not self._path.exists():
            return 0
        cutoff = (time.time() if now is None else now) - self._retention_s
        with self._db() as db:
            # With retention 0 the cutoff is now: everything goes.
            return db.execute("DELETE FROM insight_jobs WHERE saved_at <= ?", (cutoff,)).rowcount


def _stored(video: VideoResult) -> StoredVideo:
    segments = tuple(
        (s.start, s.end, " ".join(s.text.split())) for s in (video.transcript.segments if video.transcript else ())
    )
    insight = video.insight
    visual: tuple[tuple[float, str], ...] = ()
    if insight is not None and insight.visual is not None:
        visual = tuple((f.time_s, f"{f.description} {f.on_screen_text}".strip()) for f in insight.visual.frames)
    return StoredVideo(
        number=video.index + 1,
        name=video.title,
        duration_s=video.media.duration_s if video.media else 0.0,
        segments=segments,
        visual=visual,
        summary=insight.summary if insight is not None else "",
    )
