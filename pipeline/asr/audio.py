"""16 kHz mono WAV audio read window by window, so speech recognition of a four-hour video holds a few
minutes of samples at a time, whatever the engine.

Each window but the last ends at the quietest 20 ms near its end (a pause, in speech), so no word is cut
in two; timestamps of a window's segments are shifted by ``AudioWindow.start_s``.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import TranscriptionError

if TYPE_CHECKING:
    import numpy.typing as npt

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AudioWindow:
    start_s: float
    samples: npt.NDArray[np.float32]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


class AudioWindows:
    """A 16 kHz mono 16-bit PCM WAV read as consecutive windows of at most ``window_s`` seconds.

    Each window but the last ends at the quietest 20 ms within its final ``search_s`` seconds (a
    pause, in speech), and the rest is carried into the next window: only one window is ever held."""

    _FRAME = SAMPLE_RATE // 50  # 20 ms

    def __init__(self, path: Path, *, window_s: float, search_s: float | None = None) -> None:
        self.path = path
        self.window = max(int(window_s * SAMPLE_RATE), self._FRAME * 2)
        search = int((search_s if search_s is not None else min(15.0, window_s / 4)) * SAMPLE_RATE)
        self.search = min(max(search, self._FRAME), self.window // 2)
        try:
            with wave.open(str(path), "rb") as wav:
                self._check_format(wav)
                self.total_samples = wav.getnframes()
        except FileNotFoundError:
            raise TranscriptionError(f"audio file not found: {path}") from None
        except (wave.Error, EOFError) as exc:
            raise TranscriptionError(f"{path.name} is not a PCM WAV file: {exc}") from exc

    @property
    def duration_s(self) -> float:
        return self.total_samples / SAMPLE_RATE

    def _check_format(self, wav: wave.Wave_read) -> None:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        if rate != SAMPLE_RATE or width != 2 or channels < 1:
            raise TranscriptionError(
                f"{self.path.name}: expected 16 kHz 16-bit PCM audio, got {rate} Hz, {8 * width}-bit, "
                f"{channels} channel(s) (pipeline.ffmpeg makes the right kind)"
            )

    def __iter__(self) -> Iterator[AudioWindow]:
        with wave.open(str(self.path), "rb") as wav:
            channels = wav.getnchannels()
            carry = np.empty(0, dtype=np.float32)
            offset = 0  # sample index where ``carry`` begins
            while True:
                wanted = self.window - len(carry)
                chunk = _pcm16_to_float(wav.readframes(wanted), channels)
                buffer = np.concatenate((carry, chunk)) if len(carry) else chunk
                if len(chunk) < wanted:  # end of file
                    if len(buffer):
                        yield AudioWindow(offset / SAMPLE_RATE, buffer)
                    return
                cut = self._quietest_cut(buffer)
                yield AudioWindow(offset / SAMPLE_RATE, buffer[:cut])
                carry = buffer[cut:].copy()
                offset += cut

    def _quietest_cut(self, buffer: npt.NDArray[np.float32]) -> int:
        tail = buffer[len(buffer) - self.search :]
        frames = len(tail) // self._FRAME
        energy = np.square(tail[: frames * self._FRAME].reshape(frames, self._FRAME)).sum(axis=1)
        quietest = int(np.argmin(energy))
        return len(buffer) - self.search + quietest * self._FRAME + self._FRAME // 2


def _pcm16_to_float(raw: bytes, channels: int) -> npt.NDArray[np.float32]:
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32, copy=False)
