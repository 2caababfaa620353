"""FunASR speech recognition: Paraformer (paraformer-zh) with FSMN-VAD and CT-Punc, sentence timestamps.

Models come from local directories (``FUNASR_MODEL_DIR``, ``FUNASR_VAD_MODEL_DIR``,
``FUNASR_PUNC_MODEL_DIR``; the container bakes ModelScope snapshots in at build time). Hub names are used
only when ``FUNASR_ALLOW_DOWNLOAD`` is set: an offline hub makes FunASR retry for a long time, so a
missing directory is reported at once instead. The VAD and punctuation models are optional: without
VAD the audio windows are cut shorter, without punctuation sentences are split at pauses.

Long audio is read in windows of a few minutes, each cut at its quietest moment near the end so no word
is split, so memory stays flat whatever the length; timestamps are shifted by the window's offset, and
cancellation and progress are handled between windows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.asr.audio import AudioWindows
from pipeline.asr.base import LoadOnce, ProgressFn, ProgressReporter, resolve_threads, tidy_text, unreadable_reason
from pipeline.errors import ModelUnavailableError, TranscriptionError
from pipeline.models import CancelToken, Segment, Transcript

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

LANGUAGE = "zh"
# What ``funasr.AutoModel`` reads from a local model directory.
_REQUIRED_FILES = ("config.yaml", "model.pt")
# ModelScope names, used only when downloads are allowed and a setting is empty.
HUB_ASR, HUB_VAD, HUB_PUNC = "paraformer-zh", "fsmn-vad", "ct-punc"

# Without a VAD the whole window goes to Paraformer at once: keep it short.
_WINDOW_WITHOUT_VAD_S = 30.0
# Without punctuation, word timestamps are grouped into sentences at pauses this long, or this long a sentence.
_PAUSE_SPLIT_S = 0.6
_MAX_SENTENCE_S = 15.0
_SENTENCE_ENDS = ("。", "？", "！", ".", "?", "!", "；", ";")


@dataclass(frozen=True)
class _ModelRef:
    """One model to load: a local directory, or a hub name when downloads are allowed."""

    setting: str  # environment variable it came from, for messages
    value: str

    @property
    def display_name(self) -> str:
        return Path(self.value).name or self.value


class FunasrTranscriber:
    backend = "funasr"

    def __init__(
        self,
        *,
        model_dir: str,
        vad_model_dir: str = "",
        punc_model_dir: str = "",
        allow_download: bool = False,
        device: str = "cpu",
        threads: int = 0,
        window_s: float = 180.0,
        max_segment_s: float = 30.0,
    ) -> None:
        if window_s <= 0 or max_segment_s <= 0:
            raise ValueError("window_s and max_segment_s must be positive")
        self._settings = {
            "FUNASR_MODEL_DIR": model_dir.strip(),
            "FUNASR_VAD_MODEL_DIR": vad_model_dir.strip(),
            "FUNASR_PUNC_MODEL_DIR": punc_model_dir.strip(),
        }
        self._allow_download = allow_download
        self._device = device
        self._threads = resolve_threads(threads)
        self._window_s = window_s
        self._max_segment_s = max_segment_s
        asr_setting = self._settings["FUNASR_MODEL_DIR"]
        self.model_name = Path(asr_setting).name if asr_setting else HUB_ASR
        self._has_vad = bool(self._settings["FUNASR_VAD_MODEL_DIR"]) or allow_download
        self._model: LoadOnce[Any] = LoadOnce(self._load)
        # AutoModel keeps per-call state on itself (its kwargs dicts): one generate() at a time.
        self._infer_lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------------

    @property
    def load_count(self) -> int:
        return self._model.count

    def warm(self) -> None:
        self._model.get()

    def _resolve(self, setting: str, hub_name: str) -> _ModelRef | None:
        """The model a setting names; None when it is empty and downloads are not allowed."""
        value = self._settings[setting]
        if not value:
            return _ModelRef(setting, hub_name) if self._allow_download else None
        path = Path(value).expanduser()
        if not path.exists() and self._allow_download:
            return _ModelRef(setting, value)  # a ModelScope id such as "iic/speech_..."
        problem = unreadable_reason(path, _REQUIRED_FILES)
        if problem:
            raise ModelUnavailableError(
                f"{setting}={path} {problem}: a FunASR model directory needs {' and '.join(_REQUIRED_FILES)}",
                searched=[str(path)],
            )
        return _ModelRef(setting, str(path))

    def _load(self) -> Any:
        asr = self._resolve("FUNASR_MODEL_DIR", HUB_ASR)
        if asr is None:
            raise ModelUnavailableError(
                "FUNASR_MODEL_DIR is empty: set it to a local FunASR model directory (config.yaml + model.pt), "
                f"or set FUNASR_ALLOW_DOWNLOAD=true to fetch {HUB_ASR!r} from ModelScope",
                searched=["FUNASR_MODEL_DIR"],
            )
        vad = self._resolve("FUNASR_VAD_MODEL_DIR", HUB_VAD)
        punc = self._resolve("FUNASR_PUNC_MODEL_DIR", HUB_PUNC)
        if vad is None:
            log.warning(
                "no FunASR VAD model (FUNASR_VAD_MODEL_DIR is empty): audio is cut in %.0f s windows",
                _WINDOW_WITHOUT_VAD_S,
            )
        if punc is None:
            log.warning("no FunASR punctuation model (FUNASR_PUNC_MODEL_DIR is empty): sentences split at pauses")

        options: dict[str, Any] = {
            "model": asr.value,
            "device": self._device,
            "ncpu": self._threads,
            "disable_update": True,  # otherwise it asks PyPI for a newer version, with no timeout
            "disable_pbar": True,
            # Only used by its logging.basicConfig(), a no-op once the app has configured logging.
            "log_level": "WARNING",
        }
        if vad is not None:
            options["vad_model"] = vad.value
            options["vad_kwargs"] = {"max_single_segment_time": int(self._max_segment_s * 1000)}
        if punc is not None:
            options["punc_model"] = punc.value

        searched = [ref.value for ref in (asr, vad, punc) if ref is not None]
        log.info(
            "loading FunASR: asr=%s vad=%s punc=%s (device=%s, threads=%d)",
            asr.value,
            vad.value if vad else "-",
            punc.value if punc else "-",
            self._device,
            self._threads,
        )
        try:
            from funasr import AutoModel

            model = AutoModel(**options)
        except Exception as exc:  # FunASR raises anything from AssertionError to KeyError on a bad model
            raise ModelUnavailableError(f"cannot load the FunASR models: {exc}", searched=searched) from exc
        return model

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
        if language and not language.lower().startswith(("zh", "cn", "yue")):
            log.warning(
                "FunASR %s recognises Mandarin (and some English); language %r was requested", self.model_name, language
            )
        window_s = self._window_s if self._has_vad else min(self._window_s, _WINDOW_WITHOUT_VAD_S)
        windows = AudioWindows(audio_path, window_s=window_s)  # checks the file before the model loads
        model = self._model.get()
        progress = ProgressReporter(on_progress)
        segments: list[Segment] = []
        with self._infer_lock:
            for window in windows:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                try:
                    results = model.generate(input=window.samples, sentence_timestamp=True)
                except Exception as exc:  # FunASR's failures are untyped
                    raise TranscriptionError(
                        f"FunASR failed on {audio_path.name} at {window.start_s:.0f}s: {exc}"
                    ) from exc
                for result in results:
                    segments.extend(
                        _shift(segments_from_result(result, window.duration_s), window.start_s, windows.duration_s)
                    )
                progress.report(window.end_s / windows.duration_s if windows.duration_s else 1.0)
        progress.done()
        segments.sort(key=lambda s: (s.start, s.end))
        log.info("funasr: %d segments from %.1f s of audio", len(segments), windows.duration_s)
        return Transcript(segments=tuple(segments), language=LANGUAGE, backend=self.backend, model=self.model_name)


# --------------------------------------------------------------------------------------------------
# FunASR results -> segments
# --------------------------------------------------------------------------------------------------


def segments_from_result(result: Mapping[str, Any], window_s: float) -> list[Segment]:
    """Sentences of one ``generate()`` result, in seconds from the start of its input.

    In order of preference: ``sentence_info`` (VAD + punctuation, or VAD alone), word timestamps
    grouped at pauses and sentence-ending marks (no punctuation model), or the whole text over the
    whole input (no timestamps at all)."""
    sentences = [s for s in result.get("sentence_info") or () if isinstance(s, Mapping)]
    found: list[Segment] = []
    for sentence in sentences:
        text = tidy_text(str(sentence.get("text") or sentence.get("sentence") or ""))
        span = _span_ms(sentence.get("start"), sentence.get("end"))
        if text and span is not None:
            found.append(_segment(span[0] / 1000, span[1] / 1000, text, window_s))
    if found:
        return found

    raw_text = str(result.get("text") or "")
    if not tidy_text(raw_text):
        return []
    stamps = [s for s in (_span_ms(*pair[:2]) for pair in _pairs(result.get("timestamp"))) if s is not None]
    if not stamps:
        return [_segment(0.0, window_s, tidy_text(raw_text), window_s)]
    words = raw_text.split()
    if len(words) != len(stamps):
        return [_segment(stamps[0][0] / 1000, stamps[-1][1] / 1000, tidy_text(raw_text), window_s)]
    return _group_words(words, stamps, window_s)


def _group_words(words: Sequence[str], stamps: Sequence[tuple[float, float]], window_s: float) -> list[Segment]:
    groups: list[Segment] = []
    start_i = 0
    for i in range(len(words)):
        last = i == len(words) - 1
        ends_sentence = words[i].endswith(_SENTENCE_ENDS)
        pause = not last and (stamps[i + 1][0] - stamps[i][1]) / 1000 >= _PAUSE_SPLIT_S
        too_long = (stamps[i][1] - stamps[start_i][0]) / 1000 >= _MAX_SENTENCE_S
        if last or ends_sentence or pause or too_long:
            text = tidy_text(" ".join(words[start_i : i + 1]))
            groups.append(_segment(stamps[start_i][0] / 1000, stamps[i][1] / 1000, text, window_s))
            start_i = i + 1
    return [g for g in groups if g.text]


def _pairs(value: Any) -> list[Sequence[Any]]:
    if not isinstance(value, Sequence):
        return []
    return [v for v in value if isinstance(v, Sequence) and not isinstance(v, str) and len(v) >= 2]


def _span_ms(start: Any, end: Any) -> tuple[float, float] | None:
    try:
        a, b = float(start), float(end)
    except (TypeError, ValueError):
        return None
    if a != a or b != b:  # NaN
        return None
    return a, max(a, b)


def _segment(start_s: float, end_s: float, text: str, limit_s: float) -> Segment:
    start = min(max(start_s, 0.0), limit_s)
    return Segment(start=start, end=min(max(end_s, start), limit_s), text=text)


def _shift(segments: Sequence[Segment], offset_s: float, limit_s: float) -> Iterator[Segment]:
    for s in segments:
        start = min(s.start + offset_s, limit_s)
        yield Segment(start=start, end=min(max(s.end + offset_s, start), limit_s), text=s.text)
