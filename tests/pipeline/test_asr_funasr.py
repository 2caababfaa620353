"""FunASR engine through the real ``funasr.AutoModel`` with tiny random model directories (see
``tests/asr_models.py``): the text is noise, so these tests assert structure, timing and behaviour."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.asr import FunasrTranscriber, WhisperTranscriber, get_transcriber
from pipeline.asr.audio import AudioWindows
from pipeline.asr.funasr_engine import segments_from_result
from pipeline.config import PipelineSettings
from pipeline.errors import InvalidOptionsError, JobCancelled, ModelUnavailableError, TranscriptionError
from pipeline.models import CancelToken, Transcript
from tests.support.asr_fixtures import LongSpeech, read_wav, wav_duration, write_wav
from tests.support.asr_models import TinyFunasrModels

pytestmark = pytest.mark.slow  # real models (Whisper tiny.en, FunASR) on real media

PUNCTUATION = set("，。？、")
REPO = Path(__file__).resolve().parents[3]


def engine(
    models: TinyFunasrModels, *, vad: bool = True, punc: bool = True, window_s: float = 180.0
) -> FunasrTranscriber:
    return FunasrTranscriber(
        model_dir=str(models.asr),
        vad_model_dir=str(models.vad) if vad else "",
        punc_model_dir=str(models.punc) if punc else "",
        threads=1,
        window_s=window_s,
    )


def assert_well_formed(transcript: Transcript, duration_s: float) -> None:
    assert transcript.segments, "no segments"
    previous_start = 0.0
    for segment in transcript.segments:
        assert 0.0 <= segment.start <= segment.end <= duration_s + 1e-6, segment
        assert segment.start >= previous_start, "segments out of order"
        assert segment.text.strip()
        assert " " not in segment.text, f"spaces left between Chinese characters: {segment.text!r}"
        assert "<" not in segment.text, f"special token leaked: {segment.text!r}"
        previous_start = segment.start


@pytest.fixture(scope="module")
def full_engine(tiny_funasr_models: TinyFunasrModels) -> FunasrTranscriber:
    return engine(tiny_funasr_models)


# --------------------------------------------------------------------------------------------------
# The real AutoModel path
# --------------------------------------------------------------------------------------------------


def test_transcribes_with_vad_and_punctuation_into_timestamped_sentences(
    full_engine: FunasrTranscriber, speech_wav_16k: Path
) -> None:
    duration = wav_duration(speech_wav_16k)
    transcript = full_engine.transcribe(speech_wav_16k)

    assert (transcript.backend, transcript.model, transcript.language) == ("funasr", "tiny-paraformer-zh", "zh")
    assert_well_formed(transcript, duration)
    # The punctuation model split the text into several sentences, each ending in its mark.
    assert len(transcript.segments) > 1
    assert any(s.text[-1] in PUNCTUATION for s in transcript.segments)
    # Speech starts after espeak-ng's lead-in and the sentences reach into the last second of speech.
    assert transcript.segments[0].start < 1.0
    assert transcript.segments[-1].end > duration - 1.5
    assert transcript.to_dict()["segments"][0]["text"] == transcript.segments[0].text


def test_without_punctuation_model_word_timestamps_become_sentences(
    tiny_funasr_models: TinyFunasrModels, speech_wav_16k: Path
) -> None:
    transcript = engine(tiny_funasr_models, punc=False).transcribe(speech_wav_16k)

    assert_well_formed(transcript, wav_duration(speech_wav_16k))
    assert not any(ch in PUNCTUATION for s in transcript.segments for ch in s.text)


def test_without_vad_model_short_windows_still_give_timestamps(
    tiny_funasr_models: TinyFunasrModels, speech_wav_16k: Path
) -> None:
    fractions: list[float] = []
    transcript = engine(tiny_funasr_models, vad=False, punc=False).transcribe(
        speech_wav_16k, on_progress=fractions.append
    )

    assert_well_formed(transcript, wav_duration(speech_wav_16k))
    assert fractions[-1] == 1.0


def test_long_audio_is_windowed_and_timestamps_are_offset(
    tiny_funasr_models: TinyFunasrModels, long_speech_wav: LongSpeech
) -> None:
    fractions: list[float] = []
    transcript = engine(tiny_funasr_models, window_s=20.0).transcribe(
        long_speech_wav.path, on_progress=fractions.append
    )

    assert_well_formed(transcript, long_speech_wav.duration_s)
    # One progress report per window: ~60 s in windows of at most 20 s.
    assert len(fractions) >= 3
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Every repetition of the speech has sentences starting inside it, the last ones included (so the
    # later windows' timestamps were shifted by their offsets)...
    for start, end in long_speech_wav.blocks:
        assert any(start - 0.3 <= s.start < end for s in transcript.segments), (start, end)
    # ...and no sentence sits in the silent gaps between them.
    gaps = [
        (end + 0.3, nxt - 0.3)
        for (_, end), (nxt, _) in zip(long_speech_wav.blocks, long_speech_wav.blocks[1:], strict=False)
    ]
    for segment in transcript.segments:
        for gap_start, gap_end in gaps:
            assert not (gap_start <= segment.start and segment.end <= gap_end), (segment, gap_start, gap_end)


def test_cancel_stops_between_windows(tiny_funasr_models: TinyFunasrModels, long_speech_wav: LongSpeech) -> None:
    token = CancelToken()
    fractions: list[float] = []

    def cancel_after_first_window(fraction: float) -> None:
        fractions.append(fraction)
        token.cancel()

    with pytest.raises(JobCancelled):
        engine(tiny_funasr_models, window_s=20.0).transcribe(
            long_speech_wav.path, cancel=token, on_progress=cancel_after_first_window
        )
    assert len(fractions) == 1 and fractions[0] < 0.5


def test_a_cancelled_job_does_not_load_the_model(tiny_funasr_models: TinyFunasrModels, speech_wav_16k: Path) -> None:
    token = CancelToken()
    token.cancel()
    fresh = engine(tiny_funasr_models)
    with pytest.raises(JobCancelled):
        fresh.transcribe(speech_wav_16k, cancel=token)
    assert fresh.load_count == 0


def test_model_is_loaded_once_per_engine_and_engines_are_shared(
    tiny_funasr_models: TinyFunasrModels, speech_wav_16k: Path, tmp_path: Path
) -> None:
    # Engines are cached per process by their model settings: a model dir of this test's own keeps
    # engines other tests already loaded out of the count.
    own_model = shutil.copytree(tiny_funasr_models.asr, tmp_path / "asr")
    settings = PipelineSettings.load(
        asr_backend="funasr",
        funasr_model_dir=str(own_model),
        funasr_vad_model_dir=str(tiny_funasr_models.vad),
        funasr_punc_model_dir=str(tiny_funasr_models.punc),
        asr_threads=1,
    )
    first = get_transcriber(settings)
    assert isinstance(first, FunasrTranscriber)
    assert first.load_count == 0  # lazy: nothing loaded until asked

    threads = [threading.Thread(target=first.warm) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.transcribe(speech_wav_16k)
    second = get_transcriber(settings, "funasr")
    second.transcribe(speech_wav_16k)

    assert second is first
    assert first.load_count == 1
    # Other model settings are another engine; the other backend too.
    other = get_transcriber(settings.model_copy(update={"funasr_punc_model_dir": ""}))
    assert other is not first
    assert isinstance(get_transcriber(settings, "whisper"), WhisperTranscriber)


def test_unknown_backend_is_a_user_error() -> None:
    with pytest.raises(InvalidOptionsError) as info:
        get_transcriber(PipelineSettings.load(), "kaldi")
    assert "funasr" in info.value.user_message.zh and "whisper" in info.value.user_message.en


# --------------------------------------------------------------------------------------------------
# Missing and broken models: clear errors, no hub
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("no-weights", "has no readable model.pt"),
        ("a-file", "is not a directory"),
    ],
)
def test_unusable_model_directory_is_reported(tmp_path: Path, layout: str, expected: str) -> None:
    target = tmp_path / "paraformer"
    if layout == "empty":
        target.mkdir()
    elif layout == "no-weights":
        target.mkdir()
        (target / "config.yaml").write_text("model: SeacoParaformer\n")
    elif layout == "a-file":
        target.write_text("not a directory")

    with pytest.raises(ModelUnavailableError) as info:
        FunasrTranscriber(model_dir=str(target)).warm()
    message = str(info.value)
    assert "FUNASR_MODEL_DIR" in message and str(target) in message and expected in message
    assert info.value.code == "model_unavailable"
    assert "模型" in info.value.user_message.zh


def test_empty_setting_without_downloads_names_the_setting() -> None:
    with pytest.raises(ModelUnavailableError) as info:
        FunasrTranscriber(model_dir="").warm()
    assert "FUNASR_MODEL_DIR is empty" in str(info.value)
    assert "FUNASR_ALLOW_DOWNLOAD" in str(info.value)


def test_missing_vad_directory_is_reported_even_when_the_asr_model_is_fine(
    tiny_funasr_models: TinyFunasrModels, tmp_path: Path
) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        FunasrTranscriber(model_dir=str(tiny_funasr_models.asr), vad_model_dir=str(tmp_path / "vad")).warm()
    assert "FUNASR_VAD_MODEL_DIR" in str(info.value) and "does not exist" in str(info.value)


def test_corrupt_weights_are_reported_as_unavailable(tiny_funasr_models: TinyFunasrModels, tmp_path: Path) -> None:
    broken = tmp_path / "broken-paraformer"
    broken.mkdir()
    for name in ("config.yaml", "tokens.txt", "am.mvn"):
        (broken / name).write_bytes((tiny_funasr_models.asr / name).read_bytes())
    (broken / "model.pt").write_bytes(b"this is not a torch checkpoint")

    with pytest.raises(ModelUnavailableError) as info:
        FunasrTranscriber(model_dir=str(broken)).warm()
    assert "cannot load the FunASR models" in str(info.value) and str(broken) in str(info.value)


def test_missing_model_fails_before_funasr_is_imported(tmp_path: Path) -> None:
    """No FunASR import means no ModelScope client: a missing directory cannot reach for the hub."""
    script = f"""
import json, sys
from pipeline.asr import FunasrTranscriber
from pipeline.errors import ModelUnavailableError
try:
    FunasrTranscriber(model_dir={str(tmp_path / "nowhere")!r}).warm()
except ModelUnavailableError as exc:
    loaded = [m for m in ("funasr", "modelscope", "torch") if m in sys.modules]
    print(json.dumps({{"error": str(exc), "loaded": loaded}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "does not exist" in report["error"]
    assert report["loaded"] == []


def test_importing_the_package_loads_no_engine_library() -> None:
    script = """
import json, sys
from pipeline.asr import get_transcriber
from pipeline.config import PipelineSettings
settings = PipelineSettings.load()
get_transcriber(settings, "funasr"); get_transcriber(settings, "whisper")
heavy = ("torch", "funasr", "faster_whisper", "ctranslate2", "modelscope")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# --------------------------------------------------------------------------------------------------
# Audio input
# --------------------------------------------------------------------------------------------------


def test_windows_cover_the_audio_exactly_and_cut_in_pauses(long_speech_wav: LongSpeech) -> None:
    samples = read_wav(long_speech_wav.path).astype(np.float32) / 32768.0
    windows = AudioWindows(long_speech_wav.path, window_s=20.0)
    parts = list(windows)

    assert len(parts) >= 3
    assert all(0 < len(w.samples) <= 20 * 16000 for w in parts)
    assert np.array_equal(np.concatenate([w.samples for w in parts]), samples)
    assert [w.start_s for w in parts[1:]] == pytest.approx([w.end_s for w in parts[:-1]])
    # Cuts land where it is quiet, not mid-word.
    for w in parts[:-1]:
        cut = round(w.end_s * 16000)
        assert np.abs(samples[cut - 160 : cut + 160]).max() < 0.05, w.end_s
    assert windows.duration_s == pytest.approx(long_speech_wav.duration_s)


def test_audio_that_is_not_16k_pcm_wav_is_refused_before_the_model_loads(
    tiny_funasr_models: TinyFunasrModels, tmp_path: Path
) -> None:
    fresh = engine(tiny_funasr_models)
    wrong_rate = write_wav(tmp_path / "44k.wav", np.zeros(44100, dtype=np.int16), rate=44100)
    with pytest.raises(TranscriptionError, match="expected 16 kHz"):
        fresh.transcribe(wrong_rate)

    not_wav = tmp_path / "noise.wav"
    not_wav.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(TranscriptionError, match="not a PCM WAV"):
        fresh.transcribe(not_wav)

    with pytest.raises(TranscriptionError, match="not found"):
        fresh.transcribe(tmp_path / "absent.wav")
    assert fresh.load_count == 0


def test_silence_gives_an_empty_transcript(full_engine: FunasrTranscriber, tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silence.wav", np.zeros(3 * 16000, dtype=np.int16))
    transcript = full_engine.transcribe(silence)
    assert transcript.segments == () and transcript.is_empty


# --------------------------------------------------------------------------------------------------
# Result shapes FunASR returns
# --------------------------------------------------------------------------------------------------


def test_sentence_info_is_preferred_and_clamped_to_the_input() -> None:
    result = {
        "text": "今天天气很好，我们出去吧。",
        "timestamp": [[0, 100]],
        "sentence_info": [
            {"text": "今天天气很好，", "start": 120, "end": 1500, "timestamp": []},
            {"text": "我们出去吧。", "start": 1600, "end": 9000, "timestamp": []},
            {"text": "", "start": 9000, "end": 9100},
        ],
    }
    segments = segments_from_result(result, window_s=5.0)
    assert [(s.start, s.end, s.text) for s in segments] == [
        (0.12, 1.5, "今天天气很好，"),
        (1.6, 5.0, "我们出去吧。"),
    ]


def test_word_timestamps_without_punctuation_are_grouped_at_pauses() -> None:
    result = {
        "text": "今 天 好 we go 明 天",
        "timestamp": [[0, 200], [200, 400], [400, 600], [600, 800], [800, 1000], [2000, 2200], [2200, 2400]],
        "sentence_info": [],
    }
    segments = segments_from_result(result, window_s=10.0)
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 1.0, "今天好 we go"), (2.0, 2.4, "明天")]


def test_mismatched_or_missing_timestamps_fall_back_to_one_segment() -> None:
    mismatched = segments_from_result({"text": "今 天 好", "timestamp": [[100, 200], [300, 900]]}, window_s=4.0)
    assert [(s.start, s.end, s.text) for s in mismatched] == [(0.1, 0.9, "今天好")]

    text_only = segments_from_result({"text": "今天好"}, window_s=4.0)
    assert [(s.start, s.end, s.text) for s in text_only] == [(0.0, 4.0, "今天好")]

    assert segments_from_result({"text": "   ", "timestamp": []}, window_s=4.0) == []
