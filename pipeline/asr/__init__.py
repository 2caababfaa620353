"""Speech recognition: one ``Transcriber`` interface (``base``), two engines (``funasr_engine``,
``whisper_engine``).

``get_transcriber`` hands out one engine per backend and model settings per process, so a model is
loaded once (lazily, on the first ``warm()`` or ``transcribe()``) and shared by every job. Importing this
package imports no engine library: torch, funasr and faster_whisper load with the first model.
"""

from __future__ import annotations

import threading

from pipeline.asr.base import Transcriber
from pipeline.asr.funasr_engine import FunasrTranscriber
from pipeline.asr.whisper_engine import WhisperTranscriber
from pipeline.config import PipelineSettings
from pipeline.errors import InvalidOptionsError
from pipeline.models import UserText

__all__ = ["BACKENDS", "FunasrTranscriber", "Transcriber", "WhisperTranscriber", "get_transcriber"]

BACKENDS = ("funasr", "whisper")

_engines: dict[tuple[object, ...], Transcriber] = {}
_engines_lock = threading.Lock()


def get_transcriber(settings: PipelineSettings, backend: str | None = None) -> Transcriber:
    """The engine for ``backend`` (default: ``settings.asr_backend``), shared per process.

    Raises ``InvalidOptionsError`` for an unknown backend name (it may come from a user's options)."""
    name = (backend or settings.asr_backend).strip().lower()
    if name not in BACKENDS:
        raise InvalidOptionsError(
            f"unknown speech recognition backend {name!r}",
            UserText(
                zh=f"不认识的语音识别引擎：{name}。可用：funasr、whisper",
                en=f"Unknown speech recognition engine: {name}. Use funasr or whisper.",
            ),
        )
    key = _settings_key(settings, name)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _build(settings, name)
            _engines[key] = engine
        return engine


def _settings_key(settings: PipelineSettings, backend: str) -> tuple[object, ...]:
    if backend == "funasr":
        return (
            backend,
            settings.funasr_model_dir,
            settings.funasr_vad_model_dir,
            settings.funasr_punc_model_dir,
            settings.funasr_allow_download,
            settings.asr_device,
            settings.asr_threads,
        )
    return (
        backend,
        settings.whisper_model_dir,
        settings.whisper_compute_type,
        settings.whisper_beam_size,
        settings.asr_device,
        settings.asr_threads,
    )


def _build(settings: PipelineSettings, backend: str) -> Transcriber:
    if backend == "funasr":
        return FunasrTranscriber(
            model_dir=settings.funasr_model_dir,
            vad_model_dir=settings.funasr_vad_model_dir,
            punc_model_dir=settings.funasr_punc_model_dir,
            allow_download=settings.funasr_allow_download,
            device=settings.asr_device,
            threads=settings.asr_threads,
        )
    return WhisperTranscriber(
        model_dir=settings.whisper_model_dir,
        device=settings.asr_device,
        compute_type=settings.whisper_compute_type,
        threads=settings.asr_threads,
        beam_size=settings.whisper_beam_size,
    )
