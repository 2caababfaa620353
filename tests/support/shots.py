"""Screenshots for the output tests: real frames cut from a test video with ffmpeg, or solid colours
drawn with Pillow where a test needs to know every pixel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from pipeline.models import Screenshot, ShotReason
from tests.support import media


def frames_from(video: Path, times_s: Sequence[float], dest_dir: Path) -> list[Screenshot]:
    """One JPEG per time, as the screenshot stage would write them."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    for n, t in enumerate(times_s, start=1):
        path = dest_dir / f"shot-{n:03d}.jpg"
        media._run(["ffmpeg", "-y", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1", str(path)])
        shots.append(Screenshot(time_s=t, path=path, reason=ShotReason.SCENE))
    return shots


def solid_shots(
    dest_dir: Path,
    colours: Sequence[str],
    *,
    size: tuple[int, int] = (640, 360),
    step_s: float = 5.0,
    suffix: str = ".png",
) -> list[Screenshot]:
    """One plain image per colour, ``step_s`` apart."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    for n, colour in enumerate(colours):
        path = dest_dir / f"solid-{n:03d}{suffix}"
        Image.new("RGB", size, colour).save(path)
        shots.append(Screenshot(time_s=n * step_s, path=path, reason=ShotReason.INTERVAL))
    return shots
