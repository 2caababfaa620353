"""The speech recognition interface, and the small pieces both engines share.

An engine turns a 16 kHz mono WAV (made by ``pipeline.ffmpeg``) into a ``Transcript`` of timestamped
sentences. Engines load their model lazily, once, on the first ``warm()`` or ``transcribe()``; nothing
heavy (torch, funasr, faster_whisper) is imported before that.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar, runtime_checkable

from pipeline.config import cpu_count
from pipeline.models import CancelToken, Transcript

ProgressFn = Callable[[float], None]


@runtime_checkable
class Transcriber(Protocol):
    backend: str  # "funasr" | "whisper"
    model_name: str  # shown in results: the model directory's name or the hub id

    def transcribe(
        self,
        audio_path: Path,
        *,
        language: str | None = None,
        cancel: CancelToken | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        """Return the transcript; raise ``TranscriptionError`` (or its subclass
        ``ModelUnavailableError``) when it cannot, ``JobCancelled`` when ``cancel`` is set."""
        ...

    def warm(self) -> None:
        """Load the model now (the FC ``/initialize`` hook and the CLI call it before the first job)."""
        ...


M = TypeVar("M")


class LoadOnce(Generic[M]):
    """A model loaded on first use, once per engine, however many threads ask for it at the same time
    (loading FunASR takes seconds and hundreds of MB: it must never happen twice)."""

    def __init__(self, load: Callable[[], M]) -> None:
        self._load = load
        self._model: M | None = None
        self._lock = threading.Lock()
        self.count = 0  # how many times the model was actually loaded: 1 at most, unless loading failed

    def get(self) -> M:
        with self._lock:
            if self._model is None:
                self._model = self._load()
                self.count += 1
            return self._model


def resolve_threads(configured: int) -> int:
    """``ASR_THREADS``: 0 means every core this process may use."""
    return configured if configured > 0 else cpu_count()


def unreadable_reason(directory: Path, required: tuple[str, ...]) -> str | None:
    """Why ``directory`` is not a usable model directory, or None when it is.

    ``required`` lists alternatives of which at least one must be a readable file (for example
    ``("model.bin",)``); each entry may itself be ``"a|b"`` meaning either file will do."""
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "is not a directory"
    if not os.access(directory, os.R_OK | os.X_OK):
        return "is not readable"
    try:
        if not any(directory.iterdir()):
            return "is empty"
    except OSError as exc:
        return f"cannot be listed ({exc.strerror or exc})"
    for need in required:
        options = need.split("|")
        if not any((directory / name).is_file() and os.access(directory / name, os.R_OK) for name in options):
            return f"has no readable {' or '.join(options)}"
    return None


# Han characters plus CJK and full-width punctuation.
_CJK = r"\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")


def tidy_text(text: str) -> str:
    """Collapse whitespace; drop the spaces engines put between Chinese characters (Paraformer emits
    ``"今 天 天 气"`` when it returns timestamps) while keeping those around Latin words."""
    collapsed = " ".join(text.split())
    return _SPACE_BETWEEN_CJK.sub("", collapsed)


class ProgressReporter:
    """Forwards fractions in [0, 1] that never go backwards, and swallows nothing: a callback that
    raises stops the transcription (it is the caller's bug or cancellation)."""

    def __init__(self, callback: ProgressFn | None) -> None:
        self._callback = callback
        self._last = 0.0

    def report(self, fraction: float) -> None:
        if self._callback is None:
            return
        value = min(1.0, max(self._last, fraction))
        if value > self._last:
            self._last = value
            self._callback(value)

    def done(self) -> None:
        self.report(1.0)
