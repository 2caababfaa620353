"""Analyse videos: one video stage by stage, and a batch in which downloads overlap the CPU work.

One video: download -> probe -> audio -> transcribe (the scene scan runs beside it) -> screenshots ->
outputs. Every stage emits a ``ProgressEvent``; a failure is caught, recorded with the stage it happened
in and the words for the user, and the batch goes on. Cancellation is checked between stages and
inside the long ones (downloads, ffmpeg, ASR).

A batch runs up to ``max_parallel_downloads`` videos at once; the CPU-heavy stages take a slot from a
process-wide semaphore (``cpu_slots``), so while one video is transcribed the next ones download, and
two jobs in one process never run two ASR engines against each other on a small machine.

Events: one batch ``STARTED``, then per video its stages in order and one ``DONE`` / ``FAILED`` /
``CANCELLED``. The batch's own end (``DELIVERING``, ``DONE``...) is the caller's to announce: the bot
still has results to deliver when ``analyze_batch`` returns.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pipeline import ffmpeg, frames, shot_times
from pipeline.asr import get_transcriber
from pipeline.asr.base import Transcriber
from pipeline.config import PipelineSettings
from pipeline.download import safe_filename
from pipeline.errors import (
    JobCancelled,
    PipelineError,
    TooLongError,
    TranscriptionError,
    UnplayableMediaError,
)
from pipeline.keywords import extract_keywords
from pipeline.models import (
    AnalysisOptions,
    BatchResult,
    CancelToken,
    MediaInfo,
    ProgressCallback,
    ProgressEvent,
    ScreenshotMode,
    Stage,
    Transcript,
    UserText,
    VideoFailure,
    VideoResult,
    VideoSource,
    VideoStatus,
)
from pipeline.outputs import video_record, write_json, write_video_outputs
from pipeline.report import write_batch_report
from pipeline.sources import SourceRegistry
from pipeline.truncation import decoded_seconds, truncation_note

if TYPE_CHECKING:
    from pipeline.insight.runner import InsightRun

log = logging.getLogger(__name__)

T = TypeVar("T")

TranscriberFactory = Callable[[str | None], Transcriber]

_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}
# How often a video waiting for a CPU slot looks at its cancel token.
_SLOT_POLL_S = 0.2


def cpu_slots(count: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore for CPU-heavy stages (one per configured size)."""
    with _slots_lock:
        if count not in _slots:
            _slots[count] = threading.BoundedSemaphore(count)
        return _slots[count]


NO_AUDIO_NOTE = UserText(
    zh="视频没有音轨：只截图，没有文字稿。",
    en="The video has no audio track: screenshots only, no transcript.",
)
AUDIO_ONLY_NOTE = UserText(
    zh="这是纯音频文件：只有文字稿，没有截图。",
    en="This is an audio-only file: transcript only, no screenshots.",
)
NO_SPEECH_NOTE = UserText(
    zh="没有识别到说话内容。",
    en="No speech was recognised.",
)
INTERNAL_ERROR = UserText(
    zh="处理这个视频时出现内部错误。请稍后点“重试失败项”；如果一直失败，请联系管理员。",
    en="An internal error stopped this video. Try again later with “Retry failed”; "
    "if it keeps failing, contact the administrator.",
)


@dataclass
class _VideoRun:
    """What one video has gathered so far; turned into a ``VideoResult`` whatever happens."""

    index: int
    source: VideoSource
    out_dir: Path
    scratch: Path
    media: MediaInfo | None = None
    transcript: Transcript | None = None
    notes: list[UserText] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


class Analyzer:
    """Runs the stages. Collaborators are passed in, so the bot can add Feishu sources to the registry
    and tests can choose the ASR engine."""

    def __init__(
        self,
        settings: PipelineSettings,
        registry: SourceRegistry,
        *,
        transcriber_for: TranscriberFactory | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._transcriber_for = transcriber_for or (lambda backend: get_transcriber(settings, backend))
        self._cpu = cpu_slots(settings.cpu_slots)

    # ---------------------------------------------------------------------------------------- batch

    def analyze_batch(
        self,
        sources: Sequence[VideoSource],
        options: AnalysisOptions,
        *,
        out_dir: Path,
        scratch_dir: Path,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> BatchResult:
        """Analyse every source; never raises for a bad video (its result says why it failed)."""
        cancel = cancel or CancelToken()
        emit = _serialised(on_progress)
        count = len(sources)
        started = time.time()
        out_dir.mkdir(parents=True, exist_ok=True)
        emit(ProgressEvent(Stage.STARTED, video_count=count))

        insight = self._insight_run(options)
        results: list[VideoResult] = []
        if count:
            workers = min(count, self._settings.max_parallel_downloads)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video") as pool:
                futures: list[Future[VideoResult]] = [
                    pool.submit(
                        self.analyze_video,
                        index,
                        source,
                        options,
                        out_dir=out_dir,
                        scratch_dir=scratch_dir,
                        video_count=count,
                        emit=emit,
                        cancel=cancel,
                        insight=insight,
                    )
                    for index, source in enumerate(sources)
                ]
                results = [future.result() for future in futures]

        overview = None
        if insight is not None:
            overview = insight.overview(results) if not cancel.cancelled else None
            insight.close()
        batch = BatchResult(
            videos=results,
            out_dir=out_dir,
            started_at=started,
            finished_at=time.time(),
            insight_enabled=insight is not None,
            overview=overview,
        )
        batch.results_json, batch.results_xlsx = write_batch_report(batch)
        return batch

    # ---------------------------------------------------------------------------------------- video

    def analyze_video(
        self,
        index: int,
        source: VideoSource,
        options: AnalysisOptions,
        *,
        out_dir: Path,
        scratch_dir: Path,
        video_count: int = 1,
        emit: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        insight: InsightRun | None = None,
    ) -> VideoResult:
        """One video, start to end. Returns a result in every case; a cancelled batch gets CANCELLED.

        With ``insight`` the model is asked after the CPU stages, outside the CPU slot: its network
        wait never holds up the next video's transcription."""
        cancel = cancel or CancelToken()
        emit = emit or (lambda _event: None)
        name = safe_filename(source.display_name, default="video")
        run = _VideoRun(
            index=index,
            source=source,
            out_dir=out_dir / f"{index + 1:03d}-{Path(name).stem}"[:120],
            scratch=scratch_dir / f"{index + 1:03d}",
        )
        started = time.monotonic()
        stage = Stage.DOWNLOADING

        def enter(next_stage: Stage) -> None:
            nonlocal stage
            cancel.raise_if_cancelled()
            stage = next_stage
            emit(ProgressEvent(next_stage, video_index=index, video_count=video_count, fraction=0.0))

        try:
            result = self._run_stages(run, options, enter, emit, video_count, cancel)
            if insight is not None and result.media is not None and not cancel.cancelled:
                self._add_insight(insight, result, run.out_dir)
        except JobCancelled:
            result = self._result(run, VideoStatus.CANCELLED)
            # Half a video's files are of no use to anyone; results.json still lists it as cancelled.
            shutil.rmtree(run.out_dir, ignore_errors=True)
        except PipelineError as exc:
            log.info("video %d failed at %s: %s", index + 1, stage.value, exc)
            result = self._failed(run, _failure(exc, stage))
        except Exception as exc:  # a bug must cost one video, not the batch
            log.exception("video %d crashed at %s", index + 1, stage.value)
            failure = VideoFailure("internal_error", stage.value, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            result = self._failed(run, failure)
        finally:
            # Downloads and audio are scratch: gone as soon as the video is done, so a batch of 500 never
            # holds more than a few videos on disk.
            shutil.rmtree(run.scratch, ignore_errors=True)
        result.processing_s = time.monotonic() - started
        end = {VideoStatus.OK: Stage.DONE, VideoStatus.FAILED: Stage.FAILED}.get(result.status, Stage.CANCELLED)
        emit(ProgressEvent(end, index, video_count, failure=result.failure))
        return result

    def _insight_run(self, options: AnalysisOptions) -> InsightRun | None:
        if not self._settings.insight_enabled:
            return None
        # Imported only when insight is on: a plain run never loads the model client.
        from pipeline.insight.runner import InsightRun

        return InsightRun(self._settings, options)

    @staticmethod
    def _add_insight(insight: InsightRun, result: VideoResult, out_dir: Path) -> None:
        """Ask the model about ``result``, then write notes.md and refresh metadata.json."""
        from pipeline.insight.notes import write_notes

        result.insight = insight.video(result)
        if result.outputs is None:
            return
        try:
            result.outputs = replace(result.outputs, notes_md=write_notes(result, out_dir))
            if result.outputs.metadata_json is not None:
                write_json(result.outputs.metadata_json, video_record(result, out_dir))
        except OSError as exc:
            log.warning("video %d: notes.md not written: %s", result.index + 1, exc)

    def _failed(self, run: _VideoRun, failure: VideoFailure) -> VideoResult:
        """The result of a video that stopped at ``failure``, with its metadata.json saying why."""
        result = self._result(run, VideoStatus.FAILED, failure)
        try:
            result.outputs = write_video_outputs(result, run.out_dir)
        except OSError as exc:  # the disk is the likely culprit; the failure itself still counts
            log.warning("video %d: metadata.json not written: %s", run.index + 1, exc)
        return result

    def _run_stages(
        self,
        run: _VideoRun,
        options: AnalysisOptions,
        enter: Callable[[Stage], None],
        emit: ProgressCallback,
        video_count: int,
        cancel: CancelToken,
    ) -> VideoResult:
        index = run.index
        enter(Stage.DOWNLOADING)
        run.scratch.mkdir(parents=True, exist_ok=True)
        run.out_dir.mkdir(parents=True, exist_ok=True)

        def on_bytes(done: int, total: int | None) -> None:
            fraction = done / total if total else None
            emit(ProgressEvent(Stage.DOWNLOADING, index, video_count, fraction, bytes_done=done, bytes_total=total))

        with self._timed(run, Stage.DOWNLOADING):
            fetched = self._registry.fetch(run.source, run.scratch / "download", on_bytes=on_bytes, cancel=cancel)

        enter(Stage.PROBING)
        with self._timed(run, Stage.PROBING):
            media = ffmpeg.probe(fetched.path)
        run.media = media
        if media.video is None and media.audio is None:
            raise UnplayableMediaError("the file has neither a video nor an audio stream")
        if media.duration_s > self._settings.max_video_seconds:
            raise TooLongError(media.duration_s, self._settings.max_video_seconds)
        if media.audio is None:
            run.notes.append(NO_AUDIO_NOTE)
        if media.video is None:
            run.notes.append(AUDIO_ONLY_NOTE)

        # The scene scan reads only keyframes; it runs beside the ASR rather than after it.
        scene_cuts: Future[list[float]] | None = None
        scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scenes")
        try:
            if media.video is not None and options.screenshots.mode is ScreenshotMode.SCENES:
                scene_cuts = scanner.submit(frames.detect_scene_cuts, fetched.path, media, cancel=cancel)

            transcription_failure: VideoFailure | None = None
            if media.audio is not None:
                enter(Stage.AUDIO)
                wav = run.scratch / "audio.wav"
                with self._timed(run, Stage.AUDIO):
                    ffmpeg.extract_audio(
                        fetched.path,
                        wav,
                        sample_rate=self._settings.audio_sample_rate,
                        channels=self._settings.audio_channels,
                        cancel=cancel,
                    )
                truncated = truncation_note(media, decoded_seconds(wav))
                if truncated is not None:
                    log.warning("video %d: %s", index + 1, truncated.en)
                    run.notes.append(truncated)
                enter(Stage.TRANSCRIBING)
                try:
                    run.transcript = self._transcribe(run, wav, options, emit, video_count, cancel)
                except TranscriptionError as exc:
                    # Screenshots are still worth having: record the failure and carry on.
                    log.warning("video %d: transcription failed: %s", index + 1, exc)
                    transcription_failure = _failure(exc, Stage.TRANSCRIBING)
                if run.transcript is not None and run.transcript.is_empty:
                    run.notes.append(NO_SPEECH_NOTE)

            screenshots = []
            if media.video is not None:
                enter(Stage.SCREENSHOTS)
                anchors = [s.start for s in run.transcript.segments] if run.transcript else []
                with self._timed(run, Stage.SCREENSHOTS):
                    cuts = scene_cuts.result() if scene_cuts is not None else []
                    times, shot_notes = shot_times.select_times(
                        options.screenshots, media, scene_cuts=cuts, speech_anchors=anchors
                    )
                    run.notes.extend(shot_notes)
                    screenshots = frames.capture(fetched.path, media, times, run.out_dir / "screenshots", cancel=cancel)
        finally:
            scanner.shutdown(wait=True, cancel_futures=True)

        enter(Stage.OUTPUTS)
        with self._timed(run, Stage.OUTPUTS):
            keywords = (
                extract_keywords(run.transcript.text, run.transcript.language)
                if run.transcript and not run.transcript.is_empty
                else []
            )
            status = VideoStatus.FAILED if transcription_failure else VideoStatus.OK
            result = self._result(run, status, transcription_failure)
            result.screenshots = screenshots
            result.keywords = keywords
            result.outputs = write_video_outputs(result, run.out_dir)
        # The time spent writing is known only now (metadata.json was written without it).
        result.stage_seconds = dict(run.stage_seconds)
        return result

    def _transcribe(
        self,
        run: _VideoRun,
        wav: Path,
        options: AnalysisOptions,
        emit: ProgressCallback,
        video_count: int,
        cancel: CancelToken,
    ) -> Transcript:
        transcriber = self._transcriber_for(options.asr_backend)

        def on_fraction(fraction: float) -> None:
            emit(ProgressEvent(Stage.TRANSCRIBING, run.index, video_count, fraction))

        with self._cpu_slot(cancel), self._timed(run, Stage.TRANSCRIBING):
            return transcriber.transcribe(wav, language=options.language, cancel=cancel, on_progress=on_fraction)

    @contextmanager
    def _cpu_slot(self, cancel: CancelToken) -> Iterator[None]:
        """Hold one of the process's CPU slots; waiting for it ends at once when ``cancel`` fires (another
        job's transcription may hold the slot for many minutes)."""
        while not self._cpu.acquire(timeout=_SLOT_POLL_S):
            cancel.raise_if_cancelled()
        try:
            cancel.raise_if_cancelled()
            yield
        finally:
            self._cpu.release()

    @contextmanager
    def _timed(self, run: _VideoRun, stage: Stage) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            run.stage_seconds[stage.value] = round(
                run.stage_seconds.get(stage.value, 0.0) + time.monotonic() - started, 3
            )

    @staticmethod
    def _result(run: _VideoRun, status: VideoStatus, failure: VideoFailure | None = None) -> VideoResult:
        return VideoResult(
            index=run.index,
            source=run.source,
            status=status,
            failure=failure,
            media=run.media,
            transcript=run.transcript,
            notes=list(run.notes),
            stage_seconds=dict(run.stage_seconds),
        )


def _failure(exc: PipelineError, stage: Stage) -> VideoFailure:
    return VideoFailure(code=exc.code, stage=stage.value, message=exc.user_message, detail=exc.detail)


def _serialised(callback: ProgressCallback | None) -> ProgressCallback:
    """Videos run in several threads; consumers of progress see one event at a time, in order."""
    if callback is None:
        return lambda _event: None
    lock = threading.Lock()

    def emit(event: ProgressEvent) -> None:
        with lock:
            try:
                callback(event)
            except Exception:  # a broken progress consumer must not fail the analysis
                log.exception("progress callback failed")

    return emit
