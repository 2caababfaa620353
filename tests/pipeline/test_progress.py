"""Folding ProgressEvents into the progress record the card is rendered from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.jobs import JobStore
from pipeline.jobs.progress import BatchProgress, VideoState
from pipeline.models import JobSpec, ProgressEvent, Stage, UserText, VideoFailure, VideoSource

T0 = 1_700_000_000.0
NAMES = ["会议录像.mp4", "https://example.com/broken.mp4", "demo.mov"]
DOWNLOAD_FAILURE = VideoFailure(
    code="download_failed",
    stage="downloading",
    message=UserText(zh="下载失败：服务器返回 404。", en="Download failed: the server answered 404."),
    detail="HTTP 404 for https://example.com/broken.mp4",
)


class Events:
    """Builds events with increasing timestamps, as the pipeline would emit them."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self, stage: Stage, video: int | None = None, **kwargs: Any) -> ProgressEvent:
        self.at += 1
        return ProgressEvent(stage=stage, video_index=video, video_count=3, at=self.at, **kwargs)


def fold(progress: BatchProgress, events: list[ProgressEvent]) -> list[bool]:
    return [progress.apply(e) for e in events]


def test_a_realistic_batch_of_three_with_one_failed_download() -> None:
    ev = Events()
    progress = BatchProgress.new(NAMES, at=T0)
    assert progress.counts() == {
        "total": 3,
        "pending": 3,
        "running": 0,
        "ok": 0,
        "failed": 0,
        "cancelled": 0,
        "downloads_ok": 0,
        "downloads_failed": 0,
        "audio_done": 0,
        "transcripts_done": 0,
        "screenshots_done": 0,
    }

    # Downloads run side by side; the second link is broken.
    noticed = fold(
        progress,
        [
            ev(Stage.STARTED),
            ev(Stage.DOWNLOADING, 0, fraction=0.0, bytes_done=0, bytes_total=10_000_000),
            ev(Stage.DOWNLOADING, 1, fraction=0.0),
            ev(Stage.DOWNLOADING, 2, fraction=0.0),
            ev(Stage.DOWNLOADING, 0, bytes_done=200_000, bytes_total=10_000_000),  # 2 %: not worth a card
            ev(Stage.DOWNLOADING, 0, bytes_done=5_000_000, bytes_total=10_000_000),  # 50 %
            ev(Stage.FAILED, 1, failure=DOWNLOAD_FAILURE),
            ev(Stage.DOWNLOADING, 0, bytes_done=10_000_000, bytes_total=10_000_000),
            ev(Stage.PROBING, 0, fraction=0.0),
        ],
    )
    assert noticed == [True, True, True, True, False, True, True, True, True]
    assert progress.stage is Stage.STARTED and progress.started_at == T0 + 1
    assert progress.videos[0].stage is Stage.PROBING and progress.videos[0].state is VideoState.RUNNING
    assert progress.videos[1].state is VideoState.FAILED and progress.videos[1].failure == DOWNLOAD_FAILURE
    assert progress.videos[2].fraction == 0.0
    assert (progress.downloads_ok, progress.downloads_failed, progress.running, progress.failed) == (1, 1, 2, 1)

    fold(
        progress,
        [
            ev(Stage.AUDIO, 0, fraction=0.0),
            ev(Stage.TRANSCRIBING, 0, fraction=0.0),
            ev(Stage.DOWNLOADING, 2, fraction=1.0),
            ev(Stage.PROBING, 2, fraction=0.0),
            ev(Stage.AUDIO, 2, fraction=0.0),
            ev(Stage.TRANSCRIBING, 0, fraction=0.6),
            ev(Stage.TRANSCRIBING, 2, fraction=0.0),
        ],
    )
    # Mid-flight: both good videos are transcribing, so their audio is done but no transcript yet.
    assert (progress.downloads_ok, progress.audio_done, progress.transcripts_done) == (2, 2, 0)
    assert progress.videos[0].fraction == 0.6

    fold(
        progress,
        [
            ev(Stage.SCREENSHOTS, 0, fraction=0.0),
            ev(Stage.OUTPUTS, 0),
            ev(Stage.DONE, 0),
            ev(Stage.SCREENSHOTS, 2, fraction=0.5),
        ],
    )
    assert (progress.transcripts_done, progress.screenshots_done, progress.ok) == (2, 1, 1)

    noticed = fold(
        progress,
        [
            ev(Stage.OUTPUTS, 2),
            ev(Stage.DONE, 2),
            ev(Stage.DELIVERING),
            ev(Stage.DONE),
        ],
    )
    assert noticed == [True, True, True, True]
    assert progress.finished and progress.to_dict()["stage"] == "done"
    assert progress.finished_at == progress.updated_at == ev.at
    assert progress.counts() == {
        "total": 3,
        "pending": 0,
        "running": 0,
        "ok": 2,
        "failed": 1,
        "cancelled": 0,
        "downloads_ok": 2,
        "downloads_failed": 1,
        "audio_done": 2,
        "transcripts_done": 2,
        "screenshots_done": 2,
    }
    assert progress.videos[1].failed_in == "downloading"
    assert progress.videos[0].stages == [
        Stage.DOWNLOADING,
        Stage.PROBING,
        Stage.AUDIO,
        Stage.TRANSCRIBING,
        Stage.SCREENSHOTS,
        Stage.OUTPUTS,
    ]

    # JSON round trip: what the store saves is what the card reads back.
    data = json.loads(json.dumps(progress.to_dict()))
    assert data["counts"]["downloads_failed"] == 1
    assert data["videos"][1]["failure"]["message"]["zh"] == "下载失败：服务器返回 404。"
    again = BatchProgress.from_dict(data)
    assert again == progress
    assert again.to_dict() == progress.to_dict()


def test_the_record_round_trips_through_the_job_store(tmp_path: Path) -> None:
    ev = Events()
    progress = BatchProgress.new(NAMES, at=T0)
    fold(
        progress,
        [ev(Stage.STARTED), ev(Stage.DOWNLOADING, 0, fraction=0.3), ev(Stage.FAILED, 1, failure=DOWNLOAD_FAILURE)],
    )
    with JobStore(tmp_path / "state.sqlite3") as store:
        job, _ = store.create(JobSpec(sources=tuple(VideoSource.url(f"https://e.com/{n}") for n in range(3))))
        store.save_progress(job.id, progress.to_dict())
        saved = store.get(job.id)
    assert saved is not None
    assert BatchProgress.from_dict(saved.progress) == progress


def test_tiny_fraction_moves_are_not_noticed_but_add_up() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    assert progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.10))
    assert not progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.11))
    assert not progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.13))
    assert progress.videos[0].fraction == 0.13  # stored even when not noticed
    assert progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.15))  # 5 % since the last noticed
    assert not progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.15))
    assert not progress.apply(ev(Stage.TRANSCRIBING, 0))  # no fraction at all


def test_a_reloaded_record_does_not_report_old_moves_again() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.40))
    reloaded = BatchProgress.from_dict(json.loads(json.dumps(progress.to_dict())))
    assert not reloaded.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.42))
    assert reloaded.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.46))


def test_downloads_of_unknown_size_are_noticed_by_growth() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    assert progress.apply(ev(Stage.DOWNLOADING, 0, bytes_done=0))
    assert not progress.apply(ev(Stage.DOWNLOADING, 0, bytes_done=500_000))  # under 1 MiB
    assert progress.apply(ev(Stage.DOWNLOADING, 0, bytes_done=2_000_000))
    assert not progress.apply(ev(Stage.DOWNLOADING, 0, bytes_done=2_050_000))
    assert progress.videos[0].fraction is None and progress.videos[0].bytes_done == 2_050_000


def test_a_known_size_gives_a_fraction() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    progress.apply(ev(Stage.DOWNLOADING, 0, bytes_done=250, bytes_total=1000))
    assert progress.videos[0].fraction == 0.25


def test_stragglers_after_a_video_ended_are_ignored() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    progress.apply(ev(Stage.AUDIO, 0))
    assert progress.apply(ev(Stage.CANCELLED, 0))
    assert not progress.apply(ev(Stage.TRANSCRIBING, 0, fraction=0.5))
    assert not progress.apply(ev(Stage.CANCELLED, 0))  # said twice: nothing new
    video = progress.videos[0]
    assert video.state is VideoState.CANCELLED and video.stage is Stage.AUDIO
    assert progress.audio_done == 0  # cancelled in the middle of it


def test_a_failure_before_any_stage_event_names_its_stage() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    progress.apply(ev(Stage.FAILED, 0, failure=DOWNLOAD_FAILURE))
    assert progress.videos[0].stage is Stage.DOWNLOADING
    assert (progress.downloads_ok, progress.downloads_failed) == (0, 1)


def test_a_failure_later_on_keeps_the_download_and_earlier_stages() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    asr_failure = VideoFailure(
        code="transcription_failed", stage="transcribing", message=UserText(zh="识别失败", en="ASR failed")
    )
    fold(progress, [ev(Stage.DOWNLOADING, 0), ev(Stage.PROBING, 0), ev(Stage.AUDIO, 0), ev(Stage.TRANSCRIBING, 0)])
    progress.apply(ev(Stage.FAILED, 0, failure=asr_failure))
    assert (progress.downloads_ok, progress.downloads_failed, progress.audio_done, progress.transcripts_done) == (
        1,
        0,
        1,
        0,
    )
    assert progress.videos[0].failed_in == "transcribing"


def test_a_skipped_stage_is_not_counted_as_done() -> None:
    # A silent video: no audio or transcript stage, straight from probing to screenshots.
    ev = Events()
    progress = BatchProgress.new(["silent.mp4"], at=T0)
    fold(progress, [ev(Stage.DOWNLOADING, 0), ev(Stage.PROBING, 0), ev(Stage.SCREENSHOTS, 0), ev(Stage.DONE, 0)])
    assert (progress.ok, progress.audio_done, progress.transcripts_done, progress.screenshots_done) == (1, 0, 0, 1)


def test_a_cancelled_batch_ends_every_unfinished_video() -> None:
    ev = Events()
    progress = BatchProgress.new(NAMES, at=T0)
    fold(progress, [ev(Stage.STARTED), ev(Stage.DOWNLOADING, 0), ev(Stage.DONE, 0), ev(Stage.DOWNLOADING, 1)])
    assert progress.apply(ev(Stage.CANCELLED))
    assert [v.state for v in progress.videos] == [VideoState.OK, VideoState.CANCELLED, VideoState.CANCELLED]
    assert (progress.ok, progress.cancelled) == (1, 2)
    # The first terminal batch stage is final.
    assert not progress.apply(ev(Stage.DONE))
    assert progress.stage is Stage.CANCELLED


def test_batch_stage_repeats_and_unknown_indexes() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    assert progress.apply(ev(Stage.STARTED))
    assert not progress.apply(ev(Stage.STARTED))
    # An event for a video beyond the names (video_count 3) makes room for it rather than being lost.
    assert progress.apply(ev(Stage.DOWNLOADING, 2))
    assert [v.name for v in progress.videos] == ["a.mp4", "#2", "#3"]
    assert progress.total == 3 and progress.pending == 2
    assert not progress.apply(ev(Stage.DOWNLOADING, -1))


def test_the_first_video_event_starts_the_batch() -> None:
    ev = Events()
    progress = BatchProgress.new(["a.mp4"], at=T0)
    assert progress.to_dict()["stage"] == "queued" and progress.started_at is None
    progress.apply(ev(Stage.DOWNLOADING, 0))
    assert progress.to_dict()["stage"] == "started" and progress.started_at == ev.at
