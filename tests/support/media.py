"""Test media made on the spot with espeak-ng and ffmpeg: real files, seconds to build.

Used through the fixtures in ``conftest.py``; importable by benchmarks too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Words whisper tiny.en recognises reliably from espeak-ng's voice; tests look for them.
SPEECH_SENTENCES = (
    "Welcome to the quarterly planning meeting.",
    "Today we will review the budget and the product roadmap.",
    "Please send your questions to the team before Friday.",
)
SPEECH_KEYWORDS = ("meeting", "budget", "roadmap", "friday")


def _run(cmd: Sequence[str]) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True)


def speech_wav(path: Path, sentences: Sequence[str] = SPEECH_SENTENCES, voice: str = "en-us") -> Path:
    """Synthesise speech to a WAV file (22.05 kHz mono from espeak-ng)."""
    text_file = path.with_suffix(".txt")
    text_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    _run(["espeak-ng", "-v", voice, "-s", "150", "-f", str(text_file), "-w", str(path)])
    return path


def video(
    path: Path,
    *,
    duration_s: float = 6.0,
    size: str = "320x240",
    fps: int = 25,
    scenes: Sequence[str] = ("testsrc2",),
    audio: Path | None = None,
    tone: bool = False,
    label: bool = True,
) -> Path:
    """An H.264 MP4. ``scenes`` are lavfi sources shown one after another in equal parts (colours such
    as ``"red"`` or ``"testsrc2"``), which gives hard cuts for scene detection. ``audio`` muxes a WAV as
    AAC (padded or cut to the duration); ``tone`` adds a sine instead; neither gives a silent-free
    video without an audio stream."""
    part = duration_s / len(scenes)
    inputs: list[str] = []
    for scene in scenes:
        source = (
            f"testsrc2=size={size}:rate={fps}" if scene == "testsrc2" else f"color=c={scene}:size={size}:rate={fps}"
        )
        inputs += ["-f", "lavfi", "-t", f"{part:.3f}", "-i", source]
    n = len(scenes)
    chain = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0,format=yuv420p"
    if label:
        chain += ",drawtext=text='%{pts\\:hms}':x=10:y=10:fontsize=20:fontcolor=white:box=1:boxcolor=black"
    chain += "[v]"
    cmd = ["ffmpeg", "-y", "-v", "error", *inputs]
    maps = ["-map", "[v]"]
    if audio is not None:
        cmd += ["-i", str(audio)]
        chain += f";[{n}:a]apad,atrim=0:{duration_s:.3f}[a]"
        maps += ["-map", "[a]"]
    elif tone:
        cmd += ["-f", "lavfi", "-t", f"{duration_s:.3f}", "-i", "sine=frequency=440:sample_rate=16000"]
        maps += ["-map", f"{n}:a"]
    cmd += ["-filter_complex", chain, *maps, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio is not None or tone:
        cmd += ["-c:a", "aac", "-b:a", "64k"]
    cmd += ["-t", f"{duration_s:.3f}", "-movflags", "+faststart", str(path)]
    _run(cmd)
    return path


def audio_only(path: Path, speech: Path) -> Path:
    """An M4A with one AAC stream and no video."""
    _run(["ffmpeg", "-y", "-v", "error", "-i", str(speech), "-c:a", "aac", "-b:a", "64k", str(path)])
    return path


def truncated(src: Path, path: Path, keep_fraction: float = 0.4) -> Path:
    """The first part of a file: a download cut short."""
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def random_bytes(path: Path, size: int = 64 * 1024) -> Path:
    path.write_bytes(os.urandom(size))
    return path
