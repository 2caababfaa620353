"""Screenshots: which moments to capture, finding scene cuts, and capturing the frames.

``select_times`` is pure: a plan, the probed media, scene cuts and speech anchors in; the times to
capture (with why) and notes for the user out. ``detect_scene_cuts`` compares consecutive keyframes
from ``ffmpeg.scan_keyframes``. ``capture`` reads the frames with OpenCV (seeking for far targets,
grabbing forward for near ones), turns them the way a player would, drops near-duplicates and writes
JPEGs. OpenCV is imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline import ffmpeg
from pipeline.errors import FFmpegError
from pipeline.models import (
    CancelToken,
    MediaInfo,
    Screenshot,
    ScreenshotMode,
    ScreenshotPlan,
    ShotReason,
    UserText,
)
from pipeline.shot_times import Shot, select_times

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

    Frame = NDArray[np.uint8]  # height x width x 3, RGB

log = logging.getLogger(__name__)


# --- scene detection ------------------------------------------------------------------------------
SCENE_THRESHOLD = 0.3  # a keyframe this different from the previous one is a new scene, always
MIN_CHANGE = 0.015  # below this, two keyframes show the same thing
STAND_OUT = 3.0  # a change this many times the usual change around it is a cut
NEIGHBOURS = 2  # transitions on each side that set "the usual change around it"
MAX_KEYFRAME_GAP_S = 10.0  # longer stretches without a keyframe get evenly spaced candidates

# --- capture --------------------------------------------------------------------------------------
GRAB_AHEAD_S = 3.0  # decoding forward this far is cheaper than a seek (which decodes from a keyframe)
MAX_GRABS = 2000  # a bound for files whose timestamps never reach the target
STUCK_GRABS = 25  # frames in a row without a newer timestamp: the file has none worth seeking by
OVERSHOOT_S = 0.5  # a seek that lands further past its target than this (or two frames) missed
SEEK_BACK_S = (0.0, 2.0, 10.0)  # where to seek from, before the target, until one lands before it
RETRY_EARLIER_S = (0.25, 1.0)
JPEG_QUALITY = 85
THUMB_SIDE = 64
# Two pictures are the same when almost no pixel of their 64x64 thumbnails changed by more than
# CHANGED_LEVEL. Measured on slides that share a background: two frames of one slide differ in at most
# 0.05% of the pixels (a running clock, compression), two slides with different titles in at least 1.1%.
CHANGED_LEVEL = 0.12
SAME_PICTURE_FRACTION = 0.003
PHASH_NEAR = 8  # of 64 bits


# --------------------------------------------------------------------------------------------------
# Scene cuts
# --------------------------------------------------------------------------------------------------


def detect_scene_cuts(
    path: Path,
    media: MediaInfo,
    *,
    cancel: CancelToken | None = None,
    threshold: float = SCENE_THRESHOLD,
) -> list[float]:
    """Times where a new scene shows, from keyframes only. A keyframe is a cut when it differs from the
    previous one by ``threshold`` or more, or when its change stands out against the changes between
    the keyframes around it (a slide change in a still recording). Stretches longer than
    ``MAX_KEYFRAME_GAP_S`` without a keyframe get evenly spaced candidates, so a video with a long
    GOP is still covered. If the scan fails, the candidates alone are returned."""
    if media.video is None:
        return []
    times: list[float] = []
    scores: list[float] = []
    try:
        previous: Frame | None = None
        for time_s, frame in ffmpeg.scan_keyframes(path, cancel=cancel):
            if previous is not None:
                scores.append(frame_distance(previous, frame))
            times.append(time_s)
            previous = frame
    except FFmpegError as exc:
        log.warning("keyframe scan failed, falling back to evenly spaced candidates: %s", exc.stderr_tail)
        times, scores = [0.0], []
    cuts = [t for t, is_cut in zip(times[1:], _cut_flags(scores, threshold), strict=True) if is_cut]
    fill = _gap_fillers(times, media.duration_s)
    return sorted(set(cuts) | set(fill))


def frame_distance(a: Frame, b: Frame) -> float:
    """How different two small RGB frames look, 0 (same) to 1: the larger of the colour-histogram
    distance (robust to motion) and the mean absolute pixel difference (catches layout changes)."""
    import numpy as np

    if a.shape != b.shape:
        return 1.0
    histogram_distance = 0.5 * float(np.abs(_colour_histogram(a) - _colour_histogram(b)).sum())
    pixel_distance = float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0
    return max(histogram_distance, pixel_distance)


def _colour_histogram(frame: Frame) -> NDArray[np.float64]:
    """A normalised 64-bin histogram over colours quantised to 4 levels per channel."""
    import numpy as np

    levels = (frame >> 6).astype(np.int32)
    index = levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2]
    counts = np.bincount(index.ravel(), minlength=64).astype(np.float64)
    return counts / max(1.0, float(counts.sum()))


def _cut_flags(scores: Sequence[float], threshold: float) -> list[bool]:
    """Which keyframe-to-keyframe changes are cuts: big ones always; smaller visible ones when they
    stand out from the changes around them (a slide change among still keyframes, not the steady
    change of a moving camera)."""
    return [
        s >= threshold or (s >= MIN_CHANGE and s >= STAND_OUT * _usual_change(scores, i)) for i, s in enumerate(scores)
    ]


def _usual_change(scores: Sequence[float], index: int) -> float:
    around = sorted([*scores[max(0, index - NEIGHBOURS) : index], *scores[index + 1 : index + 1 + NEIGHBOURS]])
    # With fewer than two neighbours there is nothing to compare with: any visible change counts.
    return around[len(around) // 2] if len(around) >= 2 else 0.0


def _gap_fillers(keyframe_times: Sequence[float], duration: float) -> list[float]:
    """Evenly spaced times inside every stretch longer than ``MAX_KEYFRAME_GAP_S`` between keyframes
    (and the end of the video)."""
    marks = sorted({0.0, *keyframe_times, *([duration] if duration > 0 else [])})
    fillers: list[float] = []
    for start, end in itertools.pairwise(marks):
        pieces = math.ceil((end - start) / MAX_KEYFRAME_GAP_S)
        fillers += [start + (end - start) * i / pieces for i in range(1, pieces)]
    return fillers


# --------------------------------------------------------------------------------------------------
# Capture
# --------------------------------------------------------------------------------------------------


class _FrameSource(Protocol):
    def frame_at(self, time_s: float) -> tuple[float, Frame] | None:
        """The frame shown at ``time_s`` (RGB, turned as a player shows it) and its own time."""
        ...

    def close(self) -> None: ...


def capture(
    path: Path,
    media: MediaInfo,
    times: Sequence[Shot],
    out_dir: Path,
    *,
    max_width: int = 1280,
    cancel: CancelToken | None = None,
) -> list[Screenshot]:
    """Capture the frames at ``times`` as JPEGs in ``out_dir``, at most ``max_width`` wide, named by
    time. A frame that looks like one already kept is dropped (unless the user asked for that exact
    time); a frame that cannot be read is tried slightly earlier, then skipped."""
    if media.video is None or not times:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _open_frames(ffmpeg.local_input(path), media, cancel)
    kept: list[_Fingerprint] = []
    shots: list[Screenshot] = []
    try:
        for time_s, reason in sorted(times):
            if cancel is not None:
                cancel.raise_if_cancelled()
            read = _read_near(source, time_s)
            if read is None:
                log.warning("no readable frame near %.2f s; screenshot skipped", time_s)
                continue
            shot = _keep_if_new(read, reason, kept, out_dir, len(shots) + 1, max_width)
            if shot is not None:
                shots.append(shot)
    finally:
        source.close()
    return shots


def _read_near(source: _FrameSource, time_s: float) -> tuple[float, Frame] | None:
    """The frame at ``time_s``, else slightly earlier (the last frames of a file often fail)."""
    tried: set[float] = set()
    for back in (0.0, *RETRY_EARLIER_S):
        attempt = max(0.0, time_s - back)
        if attempt in tried:
            continue
        tried.add(attempt)
        read = source.frame_at(attempt)
        if read is not None:
            return read
    return None


def _keep_if_new(
    read: tuple[float, Frame],
    reason: ShotReason,
    kept: list[_Fingerprint],
    out_dir: Path,
    number: int,
    max_width: int,
) -> Screenshot | None:
    from PIL import Image

    time_s, frame = read
    image = _fit_width(Image.fromarray(frame), max_width)
    fingerprint = _Fingerprint.of(image)
    if reason is not ShotReason.TIME and any(fingerprint.looks_like(other) for other in kept):
        log.debug("screenshot at %.2f s dropped: looks like one already kept", time_s)
        return None
    kept.append(fingerprint)
    path = out_dir / shot_file_name(number, time_s)
    image.save(path, "JPEG", quality=JPEG_QUALITY)
    return Screenshot(time_s=round(time_s, 3), path=path, reason=reason)


def shot_file_name(number: int, time_s: float) -> str:
    """``shot_0003_01m05s.jpg``; ``shot_0003_1h02m05s.jpg`` past an hour."""
    whole = int(time_s)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    stamp = f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes:02d}m{secs:02d}s"
    return f"shot_{number:04d}_{stamp}.jpg"


def _fit_width(image: Image.Image, max_width: int) -> Image.Image:
    from PIL import Image

    if image.width <= max_width:
        return image
    height = max(1, round(image.height * max_width / image.width))
    return image.resize((max_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)


@dataclass(frozen=True)
class _Fingerprint:
    """What a picture looks like, for spotting near-duplicates: a perceptual hash (overall structure)
    and a 64x64 colour thumbnail. pHash alone cannot tell slides apart that differ only in their text
    (two titles on one background hash alike), so two pictures are the same only when their hashes are
    close AND almost no thumbnail pixel changed."""

    phash: Any  # imagehash.ImageHash (untyped)
    thumbnail: NDArray[np.float32]

    @classmethod
    def of(cls, image: Image.Image) -> _Fingerprint:
        import imagehash
        import numpy as np
        from PIL import Image

        small = image.convert("RGB").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
        return cls(phash=imagehash.phash(image), thumbnail=np.asarray(small, dtype=np.float32) / 255.0)

    def looks_like(self, other: _Fingerprint) -> bool:
        import numpy as np

        if int(self.phash - other.phash) > PHASH_NEAR:
            return False
        changed = np.abs(self.thumbnail - other.thumbnail).max(axis=2) > CHANGED_LEVEL
        return float(changed.mean()) <= SAME_PICTURE_FRACTION


# --- frame sources -------------------------------------------------------------------------------


def _open_frames(path: Path, media: MediaInfo, cancel: CancelToken | None) -> _FrameSource:
    """OpenCV when it can open the file; ffmpeg, one process per frame, when it cannot."""
    opened = _OpenCVFrames.open(path, media)
    if opened is not None:
        return opened
    log.warning("OpenCV cannot open %s; capturing with ffmpeg instead", path.name)
    return _FFmpegFrames(path, cancel)


_OPENCV_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_opencv_options_lock = threading.Lock()


def _restrict_opencv_to_local_files() -> None:
    """OpenCV's own FFmpeg reads options from the environment when a capture opens; the same
    local-files-only rule as ``pipeline.ffmpeg`` applies to it."""
    with _opencv_options_lock:
        current = os.environ.get(_OPENCV_OPTIONS_ENV, "")
        if "protocol_whitelist" not in current:
            os.environ[_OPENCV_OPTIONS_ENV] = "|".join(filter(None, (current, "protocol_whitelist;file")))


class _OpenCVFrames:
    """Frames from one ``cv2.VideoCapture``: ``grab()`` forward to a near target, a seek to a far one.

    A seek should land on the target itself (OpenCV decodes forward from the keyframe before it). In
    files without an index (MPEG-TS) it can land past the target; then it is tried from further back,
    and at last from the start, so a screenshot never shows a later moment than the one asked for."""

    def __init__(self, path: Path, capture: Any, extra_rotation: int, fps: float) -> None:
        self._path = path
        self._capture = capture
        self._extra_rotation = extra_rotation
        self._fps = fps
        self._overshoot_s = max(OVERSHOOT_S, 2.0 / fps) if fps > 0 else OVERSHOOT_S
        self._position_s: float | None = None  # time of the last frame grabbed
        self._timeless = False  # set once timestamps prove useless (raw streams): every read fails fast

    @classmethod
    def open(cls, path: Path, media: MediaInfo) -> _OpenCVFrames | None:
        capture = _new_capture(path)
        if capture is None:
            return None
        import cv2

        # Turn frames ourselves from the probed rotation; where OpenCV insists on turning them, only
        # the remainder is applied.
        applied = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) if capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) else 0
        wanted = media.video.rotation if media.video else 0
        fps = media.video.fps if media.video else 0.0
        return cls(path, capture, (wanted - applied) % 360, fps)

    def frame_at(self, time_s: float) -> tuple[float, Frame] | None:
        import cv2

        if self._timeless:
            return None
        try:
            if not self._move_to(time_s):
                return None
            ok, bgr = self._capture.retrieve()
        except cv2.error as exc:
            log.warning("OpenCV failed to read a frame at %.2f s: %s", time_s, exc)
            self._position_s = None
            return None
        if not ok or bgr is None:
            return None
        shown_at = self._position_s if self._position_s is not None else time_s
        return shown_at, _rotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._extra_rotation)

    def _move_to(self, time_s: float) -> bool:
        here = self._position_s
        if here is not None and here <= time_s <= here + GRAB_AHEAD_S:
            return self._grab_until(time_s)
        for back in SEEK_BACK_S:
            if not self._seek(max(0.0, time_s - back)):
                return False  # no frame there: past the end
            if self._not_past(time_s):
                return self._grab_until(time_s)
        if self._fps <= 0 or time_s * self._fps > MAX_GRABS:
            return False  # too far to read from the start
        log.debug("seeking to %.2f s overshoots; reading from the start", time_s)
        self._rewind()
        return self._grab_until(time_s)

    def _not_past(self, time_s: float) -> bool:
        return self._position_s is not None and self._position_s <= time_s + self._overshoot_s

    def _seek(self, time_s: float) -> bool:
        """Seek and grab the first frame there."""
        import cv2

        self._capture.set(cv2.CAP_PROP_POS_MSEC, time_s * 1000.0)
        self._position_s = None
        return self._grab()

    def _grab_until(self, time_s: float) -> bool:
        """Grab frames until the last one grabbed is at or past ``time_s``; False at the end of the file,
        when timestamps stop advancing, or when the target is implausibly far."""
        newest, stuck = -math.inf, 0
        for _ in range(MAX_GRABS):
            if self._position_s is not None and self._position_s >= time_s - 0.001:
                return True
            if not self._grab():
                return False
            here = self._position_s if self._position_s is not None else -math.inf
            stuck = stuck + 1 if here <= newest else 0
            newest = max(newest, here)
            if stuck >= STUCK_GRABS:
                log.warning("the video's timestamps do not advance; no frames can be found by time")
                self._timeless = True
                return False
        return False

    def _grab(self) -> bool:
        import cv2

        if not self._capture.grab():
            self._position_s = None
            return False
        self._position_s = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return True

    def _rewind(self) -> None:
        self._capture.release()
        self._capture = _new_capture(self._path)
        self._position_s = None
        if self._capture is None:
            self._timeless = True  # the file went away: nothing more to read

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def _new_capture(path: Path) -> Any:
    """An opened ``cv2.VideoCapture`` that leaves frames unrotated, or None."""
    import cv2

    _restrict_opencv_to_local_files()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return capture


class _FFmpegFrames:
    """The slow path: one ffmpeg process per frame (ffmpeg turns rotated video itself)."""

    def __init__(self, path: Path, cancel: CancelToken | None) -> None:
        self._path = path
        self._cancel = cancel

    def frame_at(self, time_s: float) -> tuple[float, Frame] | None:
        try:
            frame = ffmpeg.grab_frame(self._path, time_s, cancel=self._cancel)
        except FFmpegError as exc:
            log.warning("ffmpeg failed to read a frame at %.2f s: %s", time_s, exc.stderr_tail)
            return None
        return (time_s, frame) if frame is not None else None

    def close(self) -> None:
        return None


def _rotate(frame: Frame, clockwise: int) -> Frame:
    import numpy as np

    turns = (clockwise // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k=-turns)) if turns else frame


# --------------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------------


def take_screenshots(
    path: Path,
    media: MediaInfo,
    plan: ScreenshotPlan,
    out_dir: Path,
    *,
    speech_anchors: Sequence[float] = (),
    cancel: CancelToken | None = None,
    max_width: int = 1280,
) -> tuple[list[Screenshot], list[UserText]]:
    """Select, capture and de-duplicate the screenshots of one video, with notes for the user."""
    if media.video is None:
        return [], []
    cuts = detect_scene_cuts(path, media, cancel=cancel) if plan.mode is ScreenshotMode.SCENES else []
    times, notes = select_times(plan, media, scene_cuts=cuts, speech_anchors=speech_anchors)
    shots = capture(path, media, times, out_dir, max_width=max_width, cancel=cancel)
    if times and not shots:
        notes.append(
            UserText(
                zh="没有读到可用的画面，未生成截图。",
                en="No frame could be read from the video, so there are no screenshots.",
            )
        )
    return shots, notes
