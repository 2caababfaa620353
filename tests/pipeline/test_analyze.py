"""The analysis of videos, stage by stage and in batches, for real: files over loopback HTTP from the media
server, ffmpeg, OpenCV, Whisper tiny.en (and FunASR with the tiny random models), the files written."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pytest

from pipeline.analyze import Analyzer, cpu_slots
from pipeline.asr import FunasrTranscriber, get_transcriber
from pipeline.asr.base import ProgressFn, Transcriber
from pipeline.config import PipelineSettings
from pipeline.errors import JobCancelled
from pipeline.jobs.progress import BatchProgress
from pipeline.models import (
    AnalysisOptions,
    BatchResult,
    CancelToken,
    ProgressEvent,
    ScreenshotPlan,
    ShotReason,
    Stage,
    Transcript,
    VideoResult,
    VideoSource,
    VideoStatus,
)
from pipeline.sources import default_registry
from tests.support import media
from tests.support.asr_models import TinyFunasrModels
from tests.support.media_server import PAGE_WITHOUT_VIDEO, MediaServer

pytestmark = pytest.mark.slow  # real models (Whisper tiny.en, FunASR) on real media

STAGES_OF_A_VIDEO = [
    Stage.DOWNLOADING,
    Stage.PROBING,
    Stage.AUDIO,
    Stage.TRANSCRIBING,
    Stage.SCREENSHOTS,
    Stage.OUTPUTS,
    Stage.DONE,
]


def make_settings(tmp_path: Path, **overrides: object) -> PipelineSettings:
    values: dict[str, object] = {
        "allow_private_urls": True,  # the media server is on loopback
        "asr_backend": "whisper",
        "work_dir": tmp_path / "work",
        "data_dir": tmp_path / "data",
        "download_retries": 0,
        "download_read_timeout_s": 10,
    }
    values.update(overrides)
    return PipelineSettings.load(_env_file=None, **values)


def analyzer(settings: PipelineSettings, transcriber: Transcriber | None = None) -> Analyzer:
    registry = default_registry(settings, include_local=True)
    if transcriber is None:
        return Analyzer(settings, registry)
    return Analyzer(settings, registry, transcriber_for=lambda backend: transcriber)


class CountingTranscriber:
    """A real engine wrapped to count its calls, how many run at once, and how each one ended.

    ``rendezvous_s``: each call first waits up to that long for a second call to be running beside it,
    so that two calls which *could* overlap do overlap, whatever the timing."""

    def __init__(self, engine: Transcriber, *, rendezvous_s: float = 0.0) -> None:
        self._engine = engine
        self.backend = engine.backend
        self.model_name = engine.model_name
        self._lock = threading.Lock()
        self._together = threading.Event()
        self._rendezvous_s = rendezvous_s
        self.running = 0
        self.most_at_once = 0
        self.outcomes: list[str] = []

    def warm(self) -> None:
        self._engine.warm()

    def transcribe(
        self,
        audio_path: Path,
        *,
        language: str | None = None,
        cancel: CancelToken | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            if self.running >= 2:
                self._together.set()
        try:
            if self._rendezvous_s:
                self._together.wait(self._rendezvous_s)
            transcript = self._engine.transcribe(audio_path, language=language, cancel=cancel, on_progress=on_progress)
        except JobCancelled:
            self.outcomes.append("cancelled")
            raise
        except Exception as exc:
            self.outcomes.append(type(exc).__name__)
            raise
        finally:
            with self._lock:
                self.running -= 1
        self.outcomes.append("ok")
        return transcript


@dataclass
class EventLog:
    events: list[ProgressEvent] = field(default_factory=list)

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def of_video(self, index: int) -> list[ProgressEvent]:
        return [e for e in self.events if e.video_index == index]

    def stages_of(self, index: int) -> list[Stage]:
        """The stages a video went through, in order, each once however many events it sent in it."""
        stages: list[Stage] = []
        for event in self.of_video(index):
            if not stages or stages[-1] is not event.stage:
                stages.append(event.stage)
        return stages


def assert_bilingual(text: object) -> None:
    zh, en = getattr(text, "zh", ""), getattr(text, "en", "")
    assert zh and en and zh != en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)


# --------------------------------------------------------------------------------------------------
# A batch with one of everything
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixedBatch:
    result: BatchResult
    events: EventLog
    scratch: Path
    server: MediaServer
    good_size: int


@pytest.fixture(scope="module")
def mixed_batch(
    tmp_path_factory: pytest.TempPathFactory,
    speech_video: Path,
    random_mp4: Path,
    silent_video: Path,
    audio_only_file: Path,
) -> Iterator[MixedBatch]:
    """One batch of six links analysed once; the tests below look at different sides of it."""
    root = tmp_path_factory.mktemp("mixed")
    server = MediaServer.start()
    server.add_file("clip.mp4", speech_video.read_bytes())
    server.add_file("random.mp4", random_mp4.read_bytes())
    server.add_file("silent.mp4", silent_video.read_bytes())
    server.add_file("speech.m4a", audio_only_file.read_bytes(), "audio/mp4")
    server.add_page("page.html", PAGE_WITHOUT_VIDEO)
    sources = [
        VideoSource.url(server.url("/media/clip.mp4"), name="Planning meeting"),
        VideoSource.url(server.url("/status/404")),
        VideoSource.url(server.url("/html/page.html")),
        VideoSource.url(server.url("/media/random.mp4")),
        VideoSource.url(server.url("/media/silent.mp4")),
        VideoSource.url(server.url("/media/speech.m4a")),
    ]
    settings = make_settings(root)
    events = EventLog()
    scratch = root / "scratch"
    scratch.mkdir()
    try:
        result = analyzer(settings).analyze_batch(
            sources, AnalysisOptions(), out_dir=root / "out", scratch_dir=scratch, on_progress=events
        )
        yield MixedBatch(result, events, scratch, server, len(speech_video.read_bytes()))
    finally:
        server.close()


def test_the_good_video_gets_transcript_screenshots_subtitles_and_contact_sheet(mixed_batch: MixedBatch) -> None:
    good = mixed_batch.result.videos[0]
    assert good.status is VideoStatus.OK and good.failure is None
    assert good.title == "Planning meeting"
    assert good.media is not None and good.media.video is not None and good.media.audio is not None
    assert good.transcript is not None and good.transcript.backend == "whisper"
    words = good.transcript.text.lower()
    assert all(keyword in words for keyword in media.SPEECH_KEYWORDS), words
    assert {"budget", "roadmap"} <= set(good.keywords)
    assert len(good.screenshots) >= 3  # three scenes
    assert all(shot.path.is_file() and shot.path.stat().st_size > 0 for shot in good.screenshots)
    outputs = good.outputs
    assert outputs is not None
    assert outputs.subtitles_srt is not None and "-->" in outputs.subtitles_srt.read_text(encoding="utf-8")
    assert outputs.contact_sheet is not None and outputs.contact_sheet.stat().st_size > 0
    assert outputs.transcript_txt is not None and "budget" in outputs.transcript_txt.read_text(encoding="utf-8")
    assert set(good.stage_seconds) == {s.value for s in STAGES_OF_A_VIDEO[:-1]}


@pytest.mark.parametrize(
    ("index", "code", "stage", "words"),
    [
        (1, "download_failed", "downloading", "404"),
        (2, "not_a_video", "downloading", "web page"),
        (3, "unplayable", "probing", "cannot be played"),
    ],
)
def test_each_bad_link_fails_alone_with_a_reason(
    mixed_batch: MixedBatch, index: int, code: str, stage: str, words: str
) -> None:
    video = mixed_batch.result.videos[index]
    assert video.status is VideoStatus.FAILED
    assert video.failure is not None
    assert (video.failure.code, video.failure.stage) == (code, stage)
    assert words in video.failure.message.en
    assert_bilingual(video.failure.message)
    assert video.transcript is None and video.screenshots == []
    # Its folder says why, for whoever opens it later.
    assert video.outputs is not None and video.outputs.metadata_json is not None
    recorded = json.loads(video.outputs.metadata_json.read_text(encoding="utf-8"))
    assert recorded["status"] == "failed" and recorded["failure"]["code"] == code


def test_a_video_without_audio_gets_screenshots_and_a_note(mixed_batch: MixedBatch) -> None:
    silent = mixed_batch.result.videos[4]
    assert silent.status is VideoStatus.OK
    assert silent.transcript is None
    assert silent.screenshots and all(shot.path.is_file() for shot in silent.screenshots)
    assert any("no audio track" in note.en for note in silent.notes)
    assert_bilingual(silent.notes[0])
    assert Stage.AUDIO not in mixed_batch.events.stages_of(4)


def test_an_audio_file_gets_a_transcript_and_no_screenshots(mixed_batch: MixedBatch) -> None:
    audio = mixed_batch.result.videos[5]
    assert audio.status is VideoStatus.OK
    assert audio.transcript is not None and "budget" in audio.transcript.text.lower()
    assert audio.screenshots == []
    assert audio.outputs is not None and audio.outputs.contact_sheet is None and audio.outputs.subtitles_srt
    assert any("audio-only" in note.en for note in audio.notes)
    assert Stage.SCREENSHOTS not in mixed_batch.events.stages_of(5)


def test_results_files_list_every_video(mixed_batch: MixedBatch) -> None:
    batch = mixed_batch.result
    assert (batch.ok_count, batch.failed_count) == (3, 3)
    assert batch.results_json is not None and batch.results_xlsx is not None
    listed = json.loads(batch.results_json.read_text(encoding="utf-8"))["videos"]
    assert [v["status"] for v in listed] == ["ok", "failed", "failed", "failed", "ok", "ok"]
    assert [v["source"]["locator"] for v in listed] == [v.source.locator for v in batch.videos]
    assert "budget" in listed[0]["transcript"]["text"].lower()
    rows = list(openpyxl.load_workbook(batch.results_xlsx).worksheets[0].iter_rows(min_row=2, values_only=True))
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row[4] for row in rows] == ["成功 OK", "失败 Failed", "失败 Failed", "失败 Failed", "成功 OK", "成功 OK"]


def test_scratch_space_is_empty_afterwards(mixed_batch: MixedBatch) -> None:
    assert list(mixed_batch.scratch.iterdir()) == []
    out = mixed_batch.result.out_dir
    assert not any(path.suffix in (".wav", ".part") for path in out.rglob("*"))


def test_progress_of_a_video_is_ordered_and_counts_bytes(mixed_batch: MixedBatch) -> None:
    log = mixed_batch.events
    first = log.events[0]
    assert (first.stage, first.video_index, first.video_count) == (Stage.STARTED, None, 6)
    assert log.stages_of(0) == STAGES_OF_A_VIDEO
    downloads = [e for e in log.of_video(0) if e.stage is Stage.DOWNLOADING and e.bytes_done is not None]
    assert downloads and downloads[-1].bytes_done == downloads[-1].bytes_total == mixed_batch.good_size
    transcribing = [e.fraction for e in log.of_video(0) if e.stage is Stage.TRANSCRIBING]
    assert transcribing[0] == 0.0 and transcribing[-1] == 1.0
    assert log.stages_of(1) == [Stage.DOWNLOADING, Stage.FAILED]
    assert log.stages_of(3) == [Stage.DOWNLOADING, Stage.PROBING, Stage.FAILED]
    # Every video ends exactly once.
    ends = [e.video_index for e in log.events if e.stage in (Stage.DONE, Stage.FAILED, Stage.CANCELLED)]
    assert sorted(i for i in ends if i is not None) == [0, 1, 2, 3, 4, 5] and len(ends) == 6


def test_progress_folds_into_the_right_counts(mixed_batch: MixedBatch) -> None:
    progress = BatchProgress.new([v.title for v in mixed_batch.result.videos])
    for event in mixed_batch.events.events:
        progress.apply(event)
    assert progress.counts() == {
        "total": 6,
        "pending": 0,
        "running": 0,
        "ok": 3,
        "failed": 3,
        "cancelled": 0,
        "downloads_ok": 4,  # the good one, the random bytes, the silent video, the audio file
        "downloads_failed": 2,  # the 404 and the web page
        "audio_done": 2,
        "transcripts_done": 2,
        "screenshots_done": 2,
    }
    assert progress.videos[3].failed_in == "probing"


# --------------------------------------------------------------------------------------------------
# Cancellation and failures
# --------------------------------------------------------------------------------------------------


def test_cancelling_mid_batch_cancels_the_rest_without_raising(
    tmp_path: Path, media_server: MediaServer, speech_video: Path
) -> None:
    settings = make_settings(tmp_path, max_parallel_downloads=2)
    counting = CountingTranscriber(get_transcriber(settings))
    cancel = CancelToken()
    events = EventLog()

    def on_progress(event: ProgressEvent) -> None:
        events(event)
        # Once a video (whichever got the CPU first) is part-way through its transcription.
        if event.stage is Stage.TRANSCRIBING and (event.fraction or 0) > 0:
            cancel.cancel()

    sources = [VideoSource.url(media_server.url("/media/clip.mp4"), name=f"copy {n}") for n in range(4)]
    scratch = tmp_path / "scratch"
    batch = analyzer(settings, counting).analyze_batch(
        sources,
        AnalysisOptions(),
        out_dir=tmp_path / "out",
        scratch_dir=scratch,
        on_progress=on_progress,
        cancel=cancel,
    )

    assert [v.status for v in batch.videos] == [VideoStatus.CANCELLED] * 4
    # The running transcription stopped between its windows; nothing after it started.
    assert counting.outcomes == ["cancelled"]
    assert not any(e.stage in (Stage.SCREENSHOTS, Stage.OUTPUTS, Stage.DONE) for e in events.events)
    ends = [e for e in events.events if e.stage is Stage.CANCELLED]
    assert sorted(e.video_index or 0 for e in ends) == [0, 1, 2, 3]
    # Listed as cancelled, with no half-made files and no scratch left.
    assert batch.results_json is not None
    listed = json.loads(batch.results_json.read_text(encoding="utf-8"))["videos"]
    assert [v["status"] for v in listed] == ["cancelled"] * 4
    assert sorted(p.name for p in batch.out_dir.iterdir()) == ["results.json", "results.xlsx"]
    assert list(scratch.iterdir()) == []


def test_a_batch_cancelled_before_it_starts_fetches_nothing(tmp_path: Path, media_server: MediaServer) -> None:
    cancel = CancelToken()
    cancel.cancel()
    sources = [VideoSource.url(media_server.url("/media/clip.mp4")) for _ in range(3)]
    batch = analyzer(make_settings(tmp_path)).analyze_batch(
        sources, AnalysisOptions(), out_dir=tmp_path / "out", scratch_dir=tmp_path / "scratch", cancel=cancel
    )
    assert [v.status for v in batch.videos] == [VideoStatus.CANCELLED] * 3
    assert media_server.requests == []


def test_a_failed_transcription_keeps_the_screenshots(
    tmp_path: Path, speech_video: Path, tiny_funasr_models: TinyFunasrModels
) -> None:
    broken = tmp_path / "broken-paraformer"
    broken.mkdir()
    for name in ("config.yaml", "tokens.txt", "am.mvn"):
        (broken / name).write_bytes((tiny_funasr_models.asr / name).read_bytes())
    (broken / "model.pt").write_bytes(b"not a torch checkpoint")
    engine = FunasrTranscriber(model_dir=str(broken), threads=1)
    scratch = tmp_path / "scratch"

    batch = analyzer(make_settings(tmp_path), engine).analyze_batch(
        [VideoSource.local(speech_video)], AnalysisOptions(), out_dir=tmp_path / "out", scratch_dir=scratch
    )

    video = batch.videos[0]
    assert video.status is VideoStatus.FAILED
    assert video.failure is not None
    assert (video.failure.code, video.failure.stage) == ("model_unavailable", "transcribing")
    assert_bilingual(video.failure.message)
    assert video.transcript is None
    assert len(video.screenshots) >= 3 and all(shot.path.is_file() for shot in video.screenshots)
    assert video.outputs is not None and video.outputs.contact_sheet is not None
    assert video.outputs.subtitles_srt is None
    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# The CPU semaphore
# --------------------------------------------------------------------------------------------------


def test_a_video_waiting_for_the_cpu_gives_up_when_cancelled(tmp_path: Path, speech_video: Path) -> None:
    """Another job holds every CPU slot (for minutes, in real life): cancelling must not wait for it."""
    settings = make_settings(tmp_path, cpu_slots=3)
    slots = cpu_slots(3)
    for _ in range(3):
        slots.acquire()
    counting = CountingTranscriber(get_transcriber(settings))
    cancel = CancelToken()
    results: list[BatchResult] = []

    def on_progress(event: ProgressEvent) -> None:
        if event.stage is Stage.TRANSCRIBING:
            cancel.cancel()  # the video now waits for a slot that nobody will free

    batch_thread = threading.Thread(
        target=lambda: results.append(
            analyzer(settings, counting).analyze_batch(
                [VideoSource.local(speech_video)],
                AnalysisOptions(),
                out_dir=tmp_path / "out",
                scratch_dir=tmp_path / "scratch",
                on_progress=on_progress,
                cancel=cancel,
            )
        )
    )
    try:
        batch_thread.start()
        batch_thread.join(timeout=120)  # a liveness bound, not a speed check: without it a bug hangs the suite
        assert not batch_thread.is_alive(), "the cancelled video kept waiting for a CPU slot"
    finally:
        for _ in range(3):
            slots.release()
        batch_thread.join()
    assert [v.status for v in results[0].videos] == [VideoStatus.CANCELLED]
    assert counting.outcomes == []  # it never got to the engine


def run_two_batches(tmp_path: Path, settings: PipelineSettings, counting: CountingTranscriber, video: Path) -> None:
    """Two batches of two videos each, in two threads at once, like two jobs of one server."""
    results: list[BatchResult] = []

    def one_batch(name: str) -> None:
        results.append(
            analyzer(settings, counting).analyze_batch(
                [VideoSource.local(video), VideoSource.local(video)],
                AnalysisOptions(screenshots=ScreenshotPlan.parse("times:1")),
                out_dir=tmp_path / name,
                scratch_dir=tmp_path / f"scratch-{name}",
            )
        )

    threads = [threading.Thread(target=one_batch, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [v.status for batch in results for v in batch.videos] == [VideoStatus.OK] * 4


def test_two_batches_never_transcribe_at_once(tmp_path: Path, speech_video: Path) -> None:
    settings = make_settings(tmp_path, cpu_slots=1)
    counting = CountingTranscriber(get_transcriber(settings), rendezvous_s=1.0)
    run_two_batches(tmp_path, settings, counting, speech_video)
    assert counting.outcomes == ["ok"] * 4
    assert counting.most_at_once == 1


def test_with_two_cpu_slots_two_transcriptions_do_overlap(tmp_path: Path, speech_video: Path) -> None:
    """The check above can see an overlap: with room for two, the two batches meet."""
    settings = make_settings(tmp_path, cpu_slots=2)
    counting = CountingTranscriber(get_transcriber(settings), rendezvous_s=30.0)
    run_two_batches(tmp_path, settings, counting, speech_video)
    assert counting.outcomes == ["ok"] * 4
    assert counting.most_at_once == 2


# --------------------------------------------------------------------------------------------------
# FunASR and screenshot options
# --------------------------------------------------------------------------------------------------


def test_funasr_end_to_end_with_tiny_models(
    tmp_path: Path, speech_video: Path, tiny_funasr_models: TinyFunasrModels
) -> None:
    settings = make_settings(
        tmp_path,
        asr_backend="funasr",
        funasr_model_dir=str(tiny_funasr_models.asr),
        funasr_vad_model_dir=str(tiny_funasr_models.vad),
        funasr_punc_model_dir=str(tiny_funasr_models.punc),
        asr_threads=1,
    )
    batch = analyzer(settings).analyze_batch(
        [VideoSource.local(speech_video)], AnalysisOptions(), out_dir=tmp_path / "out", scratch_dir=tmp_path / "s"
    )
    video = batch.videos[0]
    assert video.status is VideoStatus.OK, video.failure
    transcript = video.transcript
    assert transcript is not None
    assert (transcript.backend, transcript.language, transcript.model) == ("funasr", "zh", "tiny-paraformer-zh")
    # Random weights say nothing sensible, but the sentences are real FunASR output, in time order.
    assert transcript.segments
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and starts[0] >= 0 and transcript.segments[-1].end <= 12.5
    assert len(video.keywords) <= 10
    assert video.outputs is not None and video.outputs.subtitles_srt is not None
    assert len(video.screenshots) >= 3


@pytest.fixture(scope="module")
def four_colours(media_dir: Path) -> Path:
    """8 s without audio: red, green, blue and yellow for 2 s each."""
    return media.video(media_dir / "four-colours.mp4", duration_s=8.0, scenes=("red", "green", "blue", "yellow"))


def screenshots_of(tmp_path: Path, video: Path, plan: str) -> VideoResult:
    batch = analyzer(make_settings(tmp_path)).analyze_batch(
        [VideoSource.local(video)],
        AnalysisOptions(screenshots=ScreenshotPlan.parse(plan)),
        out_dir=tmp_path / "out",
        scratch_dir=tmp_path / "scratch",
    )
    return batch.videos[0]


def test_screenshot_times_past_the_end_are_skipped_with_a_note(tmp_path: Path, four_colours: Path) -> None:
    video = screenshots_of(tmp_path, four_colours, "times:1,5,30,1:00")
    assert video.status is VideoStatus.OK
    assert [(round(s.time_s), s.reason) for s in video.screenshots] == [(1, ShotReason.TIME), (5, ShotReason.TIME)]
    notes = [n for n in video.notes if "past the end" in n.en]
    assert len(notes) == 1 and "0:30" in notes[0].en and "1:00" in notes[0].en
    assert_bilingual(notes[0])


def test_interval_screenshots_come_at_the_interval(tmp_path: Path, four_colours: Path) -> None:
    video = screenshots_of(tmp_path, four_colours, "interval:2")
    assert [s.time_s for s in video.screenshots] == pytest.approx([1.0, 3.0, 5.0, 7.0], abs=0.05)
    assert all(s.reason is ShotReason.INTERVAL for s in video.screenshots)
    assert video.notes == [video.notes[0]] and "no audio track" in video.notes[0].en
