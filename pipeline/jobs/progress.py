"""The progress record of a job: the pipeline's ``ProgressEvent``s folded into one JSON-ready object.

The runner saves it in the job row (``JobStore.save_progress``) and the bot renders the progress card
from it, so the card shows the same thing after a restart as before. ``apply`` says whether an event
changed something a person would notice, which is what the card updater coalesces on.

How events fold (events are defined in ``pipeline.models``):

* A per-video event with a working stage (DOWNLOADING ... OUTPUTS) marks the video running in that stage;
  later events in the same stage only move its fraction / byte counts.
* A per-video DONE / FAILED / CANCELLED ends it (state ok / failed / cancelled). FAILED carries the
  failure, whose ``stage`` names where it failed. Later working-stage events for an ended video are
  ignored (they are stragglers of work that was already abandoned).
* A batch event (``video_index`` None) sets the batch stage: STARTED, DELIVERING, DONE, FAILED,
  CANCELLED. The first terminal batch stage is final. When the batch is CANCELLED or FAILED, videos
  that had not ended are marked cancelled / failed with it, so no row spins forever on the card.

The counts on the card:

* ``downloads_ok``: videos that have their file: they reached any later stage or ended ok (a local file
  that needs no download counts too). ``downloads_failed``: failed with ``failure.stage == "downloading"``.
* ``audio_done``, ``transcripts_done``, ``screenshots_done``: videos that entered that stage and then
  moved on to another stage or ended ok. A stage a video skipped (no audio track: no transcript) is not
  counted as done, and one it failed or was cancelled in is not either.
* ``ok``, ``failed``, ``cancelled``, ``pending``, ``running``: videos in that state; ``total``: all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.models import WORK_STAGES, ProgressEvent, Stage, VideoFailure

# A fraction move smaller than this is not worth a card update. The epsilon absorbs float error
# (0.15 - 0.10 is 0.04999...).
NOTICEABLE_FRACTION = 0.05
_EPSILON = 1e-9
# For downloads of unknown size: growth worth showing, relative and absolute.
NOTICEABLE_BYTES_RATIO = 0.05
NOTICEABLE_BYTES_MIN = 1024 * 1024

BATCH_TERMINAL_STAGES = frozenset({Stage.DONE, Stage.FAILED, Stage.CANCELLED})


class VideoState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (VideoState.OK, VideoState.FAILED, VideoState.CANCELLED)


_END_STATES = {Stage.DONE: VideoState.OK, Stage.FAILED: VideoState.FAILED, Stage.CANCELLED: VideoState.CANCELLED}


@dataclass
class VideoProgress:
    name: str
    stage: Stage = Stage.QUEUED  # the working stage it is in, or was in when it ended
    state: VideoState = VideoState.PENDING
    fraction: float | None = None  # of the current stage, 0..1, where the stage reports it
    failure: VideoFailure | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    # Working stages entered, in order (a re-entry of the current stage is not repeated).
    stages: list[Stage] = field(default_factory=list)
    # What was last reported as noticeable, so many small moves still add up to a card update.
    _noticed_fraction: float = field(default=0.0, init=False, repr=False, compare=False)
    _noticed_bytes: int = field(default=0, init=False, repr=False, compare=False)

    @property
    def failed_in(self) -> str | None:
        """The stage a failed video failed in (the failure's own word for it where it has one)."""
        if self.state is not VideoState.FAILED:
            return None
        if self.failure is not None and self.failure.stage:
            return self.failure.stage
        return self.stage.value

    @property
    def has_file(self) -> bool:
        return self.state is VideoState.OK or any(s is not Stage.DOWNLOADING for s in self.stages)

    def completed(self, stage: Stage) -> bool:
        """Entered ``stage`` and then moved on to another one or ended ok."""
        if stage not in self.stages:
            return False
        return self.state is VideoState.OK or self.stages[-1] is not stage

    def apply(self, event: ProgressEvent) -> bool:
        if event.stage in _END_STATES:
            return self._end(_END_STATES[event.stage], event.failure)
        if event.stage not in WORK_STAGES or self.state.ended:
            return False
        if self.state is not VideoState.RUNNING or event.stage is not self.stage:
            self._enter(event.stage)
            self._set_amounts(event)
            self._noticed_fraction = self.fraction or 0.0
            self._noticed_bytes = self.bytes_done or 0
            return True
        self._set_amounts(event)
        return self._amount_noticed()

    def _enter(self, stage: Stage) -> None:
        self.stage = stage
        self.state = VideoState.RUNNING
        if not self.stages or self.stages[-1] is not stage:
            self.stages.append(stage)

    def _end(self, state: VideoState, failure: VideoFailure | None) -> bool:
        changed = state is not self.state
        self.state = state
        if state is VideoState.FAILED and failure is not None:
            changed = changed or failure != self.failure
            self.failure = failure
            failed_stage = _work_stage(failure.stage)
            if failed_stage is not None and failed_stage is not self.stage:
                self.stage = failed_stage
                if not self.stages or self.stages[-1] is not failed_stage:
                    self.stages.append(failed_stage)
        return changed

    def _set_amounts(self, event: ProgressEvent) -> None:
        if event.bytes_done is not None:
            self.bytes_done = event.bytes_done
        if event.bytes_total is not None:
            self.bytes_total = event.bytes_total
        if event.fraction is not None:
            self.fraction = _clamp(event.fraction)
        elif event.bytes_done is not None and self.bytes_total:
            self.fraction = _clamp(event.bytes_done / self.bytes_total)

    def _amount_noticed(self) -> bool:
        if self.fraction is not None:
            if abs(self.fraction - self._noticed_fraction) >= NOTICEABLE_FRACTION - _EPSILON:
                self._noticed_fraction = self.fraction
                return True
            return False
        if self.bytes_done is not None:
            grown = self.bytes_done - self._noticed_bytes
            if grown >= max(NOTICEABLE_BYTES_MIN, self._noticed_bytes * NOTICEABLE_BYTES_RATIO):
                self._noticed_bytes = self.bytes_done
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage.value,
            "state": self.state.value,
            "fraction": self.fraction,
            "failure": self.failure.to_dict() if self.failure else None,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "stages": [s.value for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoProgress:
        fraction = data.get("fraction")
        failure = data.get("failure")
        video = cls(
            name=str(data.get("name", "")),
            stage=Stage(data.get("stage", Stage.QUEUED.value)),
            state=VideoState(data.get("state", VideoState.PENDING.value)),
            fraction=float(fraction) if fraction is not None else None,
            failure=VideoFailure.from_dict(failure) if failure else None,
            bytes_done=_optional_int(data.get("bytes_done")),
            bytes_total=_optional_int(data.get("bytes_total")),
            stages=[Stage(s) for s in data.get("stages") or ()],
        )
        video._noticed_fraction = video.fraction or 0.0
        video._noticed_bytes = video.bytes_done or 0
        return video


@dataclass
class BatchProgress:
    stage: Stage
    videos: list[VideoProgress]
    started_at: float | None
    updated_at: float
    finished_at: float | None = None

    @classmethod
    def new(cls, names: Sequence[str], *, at: float | None = None) -> BatchProgress:
        return cls(
            stage=Stage.QUEUED,
            videos=[VideoProgress(name=name) for name in names],
            started_at=None,
            updated_at=time.time() if at is None else at,
        )

    @property
    def finished(self) -> bool:
        return self.stage in BATCH_TERMINAL_STAGES

    def apply(self, event: ProgressEvent) -> bool:
        """Fold one event in; True when a person would notice the change (a stage or state changed, a
        failure arrived, or a fraction moved by at least 5 %)."""
        self.updated_at = event.at
        if event.video_index is None:
            return self._apply_batch(event)
        if event.video_index < 0:
            return False
        self._ensure_videos(max(event.video_index + 1, event.video_count))
        changed = self.videos[event.video_index].apply(event)
        if changed and self.stage is Stage.QUEUED:
            self.stage = Stage.STARTED
            self.started_at = self.started_at or event.at
        return changed

    def _apply_batch(self, event: ProgressEvent) -> bool:
        self._ensure_videos(event.video_count)
        if self.finished or event.stage is self.stage:
            return False
        self.stage = event.stage
        if event.stage is not Stage.QUEUED and self.started_at is None:
            self.started_at = event.at
        if event.stage in BATCH_TERMINAL_STAGES:
            self.finished_at = event.at
            leftover = {Stage.CANCELLED: VideoState.CANCELLED, Stage.FAILED: VideoState.FAILED}.get(event.stage)
            if leftover is not None:
                for video in self.videos:
                    if not video.state.ended:
                        video.state = leftover
        return True

    def _ensure_videos(self, count: int) -> None:
        while len(self.videos) < count:
            self.videos.append(VideoProgress(name=f"#{len(self.videos) + 1}"))

    # --- counts for the card -----------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.videos)

    @property
    def pending(self) -> int:
        return self._count_state(VideoState.PENDING)

    @property
    def running(self) -> int:
        return self._count_state(VideoState.RUNNING)

    @property
    def ok(self) -> int:
        return self._count_state(VideoState.OK)

    @property
    def failed(self) -> int:
        return self._count_state(VideoState.FAILED)

    @property
    def cancelled(self) -> int:
        return self._count_state(VideoState.CANCELLED)

    @property
    def downloads_ok(self) -> int:
        return sum(1 for v in self.videos if v.has_file)

    @property
    def downloads_failed(self) -> int:
        return sum(1 for v in self.videos if v.failed_in == Stage.DOWNLOADING.value)

    @property
    def audio_done(self) -> int:
        return self._count_completed(Stage.AUDIO)

    @property
    def transcripts_done(self) -> int:
        return self._count_completed(Stage.TRANSCRIBING)

    @property
    def screenshots_done(self) -> int:
        return self._count_completed(Stage.SCREENSHOTS)

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "pending": self.pending,
            "running": self.running,
            "ok": self.ok,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "downloads_ok": self.downloads_ok,
            "downloads_failed": self.downloads_failed,
            "audio_done": self.audio_done,
            "transcripts_done": self.transcripts_done,
            "screenshots_done": self.screenshots_done,
        }

    def _count_state(self, state: VideoState) -> int:
        return sum(1 for v in self.videos if v.state is state)

    def _count_completed(self, stage: Stage) -> int:
        return sum(1 for v in self.videos if v.completed(stage))

    # --- storage -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``counts`` is included for readers that only render (ignored by ``from_dict``)."""
        return {
            "stage": self.stage.value,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "videos": [v.to_dict() for v in self.videos],
            "counts": self.counts(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchProgress:
        return cls(
            stage=Stage(data.get("stage", Stage.QUEUED.value)),
            videos=[VideoProgress.from_dict(v) for v in data.get("videos") or ()],
            started_at=_optional_float(data.get("started_at")),
            updated_at=float(data.get("updated_at") or 0.0),
            finished_at=_optional_float(data.get("finished_at")),
        )


def _work_stage(value: str) -> Stage | None:
    try:
        stage = Stage(value)
    except ValueError:
        return None
    return stage if stage in WORK_STAGES else None


def _clamp(fraction: float) -> float:
    return min(1.0, max(0.0, float(fraction)))


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _optional_float(value: Any) -> float | None:
    return float(value) if value is not None else None
