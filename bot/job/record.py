"""The bot's typed view of a job's stored record: what its result says (``JobResult``, saved as the job's
``result``), what delivery adds to the progress record (``DeliveryNotes``, saved as
``progress["delivery"]``) and the source-table rows that gave no video (``SkippedRow``).

The pipeline stores these as plain JSON objects; delivery writes them through ``to_dict`` and cards and
actions read them through ``from_dict``. The keys are the ones earlier versions wrote and read, so a job
stored by one version resumes and renders under the next (``tests/fixtures/jobs_v1.sqlite3``), and
readers tolerate missing keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.jobs import BatchProgress, Job
from pipeline.models import UserText, VideoSource

# The card lists at most this many skipped rows; the count says how many there were in all.
MAX_SAVED_SKIPPED = 40


def int_or_none(value: Any) -> int | None:
    """A stored number that may be missing (``None``) or text (a row number read from a source's meta)."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SkippedRow:
    """A row of the source table that gave no video, and why (shown to the user and written as a
    "skipped" row of the results table). ``name``/``link`` are what the row showed, when anything."""

    record_id: str
    row_number: int  # 1-based, in the order the table (or view) lists its rows
    reason: UserText
    name: str = ""
    link: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "row_number": self.row_number,
            "reason": self.reason.to_dict(),
            "name": self.name,
            "link": self.link,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkippedRow:
        return cls(
            record_id=str(data.get("record_id") or ""),
            row_number=int(data.get("row_number") or 0),
            reason=UserText.from_dict(data.get("reason") or {}),
            name=str(data.get("name") or ""),
            link=str(data.get("link") or ""),
        )


@dataclass
class DeliveryNotes:
    """What the bot adds to a job's progress record besides the videos: rows of a source table that
    were skipped, notes about the sources, how far the results table is written, and why delivery
    failed. Saved as ``progress["delivery"]`` so the card can be rendered again after a restart."""

    skipped: list[SkippedRow] = field(default_factory=list)
    skipped_total: int = 0
    notes: list[UserText] = field(default_factory=list)
    rows_written: int | None = None
    rows_total: int | None = None
    table_url: str = ""
    error: UserText | None = None

    def add_skipped(self, rows: Sequence[SkippedRow]) -> None:
        room = max(0, MAX_SAVED_SKIPPED - len(self.skipped))
        self.skipped.extend(rows[:room])
        self.skipped_total += len(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": [s.to_dict() for s in self.skipped],
            "skipped_total": self.skipped_total,
            "notes": [n.to_dict() for n in self.notes],
            "rows_written": self.rows_written,
            "rows_total": self.rows_total,
            "table_url": self.table_url,
            "error": self.error.to_dict() if self.error else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DeliveryNotes:
        data = data or {}
        error = data.get("error")
        return cls(
            skipped=[SkippedRow.from_dict(s) for s in data.get("skipped") or ()],
            skipped_total=int(data.get("skipped_total") or 0),
            notes=[UserText.from_dict(n) for n in data.get("notes") or ()],
            rows_written=int_or_none(data.get("rows_written")),
            rows_total=int_or_none(data.get("rows_total")),
            table_url=str(data.get("table_url") or ""),
            error=UserText.from_dict(error) if error else None,
        )

    @classmethod
    def of(cls, job: Job) -> DeliveryNotes:
        return cls.from_dict(job.progress.get("delivery") if job.progress else None)


def progress_record(batch: BatchProgress, notes: DeliveryNotes) -> dict[str, Any]:
    """The progress record saved with a job: the pipeline's batch progress plus the bot's notes."""
    return {**batch.to_dict(), "delivery": notes.to_dict()}


@dataclass(frozen=True)
class JobResult:
    """A job's stored result. While it runs only ``sink`` is set: the results sink's checkpoint (its
    own keys, opaque here), so a retried or resumed delivery carries on. At the end: where the results
    are (``table_url`` when done; ``table_url_partial`` when delivery failed half-way), the counts,
    the sources "retry failed" offers again, and how long it took."""

    table_url: str = ""
    app_token: str = ""
    table_id: str = ""
    rows_written: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    # None: not recorded (a cancelled job's result); () when recorded and empty.
    failed_sources: tuple[VideoSource, ...] | None = None
    elapsed_s: float | None = None
    table_url_partial: str = ""
    sink: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that are set, so each kind of result stores exactly what it did before."""
        out: dict[str, Any] = {}
        if self.table_url:
            out.update(table_url=self.table_url, app_token=self.app_token, table_id=self.table_id)
            out["rows_written"] = self.rows_written
        if self.sink is not None:
            out["sink"] = dict(self.sink)
        if self.counts:
            out["counts"] = dict(self.counts)
        if self.failed_sources is not None:
            out["failed_sources"] = [s.to_dict() for s in self.failed_sources]
            out["elapsed_s"] = self.elapsed_s
        if self.table_url_partial:
            out["table_url_partial"] = self.table_url_partial
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobResult:
        data = data or {}
        sink = data.get("sink")
        elapsed = data.get("elapsed_s")
        counts = data.get("counts")
        return cls(
            table_url=str(data.get("table_url") or ""),
            app_token=str(data.get("app_token") or ""),
            table_id=str(data.get("table_id") or ""),
            rows_written=int_or_none(data.get("rows_written")),
            counts={str(k): int(v) for k, v in counts.items()} if isinstance(counts, Mapping) else {},
            failed_sources=(
                tuple(VideoSource.from_dict(s) for s in data.get("failed_sources") or ())
                if "failed_sources" in data
                else None
            ),
            elapsed_s=float(elapsed) if isinstance(elapsed, int | float) else None,
            table_url_partial=str(data.get("table_url_partial") or ""),
            sink=dict(sink) if isinstance(sink, Mapping) else None,
        )

    @property
    def retryable(self) -> tuple[VideoSource, ...]:
        """The sources "retry failed" offers again."""
        return self.failed_sources or ()

    @classmethod
    def of(cls, job: Job) -> JobResult:
        return cls.from_dict(job.result)
