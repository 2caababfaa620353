"""The one module that runs ffmpeg and ffprobe.

Every call builds an argument list (never a shell line), reads only local regular files and puts
``-protocol_whitelist file`` before every ``-i``: a crafted input (an HLS playlist, an ffconcat list, a
DASH manifest dressed up as ``.mp4``) then cannot make ffmpeg open a network address. Each process runs
in its own process group under a watchdog that kills the group on cancellation or timeout.

Failures raise ``FFmpegError`` (tool, return code, the last ~2 KB of stderr); ``probe`` turns them into
``UnplayableMediaError`` with a reason a person can read.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipeline.errors import (
    FFmpegError,
    JobCancelled,
    MediaError,
    NotAVideoError,
    UnplayableMediaError,
    UnsupportedSourceError,
)
from pipeline.models import AudioStream, CancelToken, MediaInfo, UserText, VideoStream

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# Inputs may be read from local files and nothing else, nested opens (playlist entries) included.
LOCAL_FILES_ONLY = ("-protocol_whitelist", "file")

PROBE_TIMEOUT_S = 60.0
EXTRACT_TIMEOUT_S = 1800.0  # 4 h of audio at a tenth of the measured 550x real time
SCAN_TIMEOUT_S = 3600.0
GRAB_TIMEOUT_S = 60.0

STDERR_TAIL_BYTES = 2048
_WATCH_INTERVAL_S = 0.1
_PROBE_OUTPUT_CAP = 16 * 1024 * 1024
_MAX_FRAME_SIDE = 8192

# Demuxers that only point at other files. Even restricted to local files they could read arbitrary
# files on this machine into a "video", so they are refused outright.
_INDIRECT_FORMATS = frozenset({"hls", "applehttp", "concat", "dash", "sdp", "rtsp", "rtp"})

_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SHOWINFO_PTS = re.compile(rb"\[Parsed_showinfo_\d+ @ [^\]]*\] n:\s*\d+ pts:\s*-?\d+ pts_time:(-?[0-9.eE+-]+)")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def local_input(path: Path) -> Path:
    """The absolute path of a local regular file, or an error. ffmpeg only ever sees an absolute path
    (it starts with ``/``, so it can neither be read as ``proto:...`` nor as an option), and only of a
    plain file: URLs, ``-``-prefixed names, devices and FIFOs never reach its command line."""
    text = str(path)
    absolute = Path(path).absolute()
    if absolute.is_file():
        return absolute
    if text.startswith("-") or _URL_LIKE.match(text) or "://" in text:
        raise UnsupportedSourceError(f"not a local file path: {text[:80]}")
    raise NotAVideoError(
        f"{absolute.name} is not a readable file",
        UserText(
            zh=f"找不到文件：{absolute.name}。请确认文件存在后重试。",
            en=f"The file {absolute.name} was not found. Check that it exists and try again.",
        ),
    )


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------


class _StderrTail:
    """The last few KB of a process's stderr, decoded leniently, for error messages."""

    def __init__(self, limit: int = STDERR_TAIL_BYTES) -> None:
        self._lines: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self._size += len(line)
        while self._size > self._limit and len(self._lines) > 1:
            self._size -= len(self._lines.popleft())

    def text(self) -> str:
        return b"".join(self._lines)[-self._limit :].decode("utf-8", errors="replace").strip()


class _Watched:
    """One ffmpeg/ffprobe process in its own process group, with stderr drained on a thread (kept as a
    tail; ``on_stderr_line`` may take lines out of it, ``on_stderr_end`` hears of the end) and a
    watchdog that kills the group when ``cancel`` fires or ``timeout_s`` passes. Use as a context
    manager; ``finish`` waits and raises the outcome."""

    def __init__(
        self,
        tool: str,
        argv: Sequence[str],
        *,
        cancel: CancelToken | None,
        timeout_s: float | None,
        capture_stdout: bool = False,
        on_stderr_line: Callable[[bytes], bool] | None = None,
        on_stderr_end: Callable[[], None] | None = None,
    ) -> None:
        self.tool = tool
        self._argv = list(argv)
        self._cancel = cancel
        self._timeout_s = timeout_s
        self._capture_stdout = capture_stdout
        self._on_stderr_line = on_stderr_line
        self._on_stderr_end = on_stderr_end
        self._tail = _StderrTail()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.killed_because: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Watched:
        if self._cancel is not None:
            self._cancel.raise_if_cancelled()
        log.debug("running %s", " ".join(self._argv))
        try:
            self.proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self._capture_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a kill takes every child with it
            )
        except OSError as exc:  # not installed, not executable
            raise FFmpegError(self.tool, 127, f"could not start {self.tool}: {exc}") from exc
        for target in (self._drain_stderr, self._watch):
            thread = threading.Thread(target=target, name=f"{self.tool}-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        proc = self._require_proc()
        if proc.poll() is None:
            self._kill()
        proc.wait()
        self._stopped.set()
        for thread in self._threads:
            thread.join()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def stdout(self) -> IO[bytes]:
        stream = self._require_proc().stdout
        if stream is None:
            raise RuntimeError("stdout was not captured")
        return stream

    def finish(self) -> None:
        """Wait for the process and raise what went wrong: cancellation, a timeout, a failure."""
        proc = self._require_proc()
        returncode = proc.wait()
        self._stopped.set()
        for thread in self._threads:
            thread.join()
        if self.killed_because == "cancelled":
            raise JobCancelled()
        if self.killed_because == "timeout":
            raise FFmpegError(self.tool, returncode, f"timed out after {self._timeout_s:g} s; {self.stderr_tail}")
        if returncode != 0:
            raise FFmpegError(self.tool, returncode, self.stderr_tail)

    @property
    def stderr_tail(self) -> str:
        return self._tail.text()

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("the process has not been started")
        return self.proc

    def _drain_stderr(self) -> None:
        stream = self._require_proc().stderr
        if stream is None:
            return
        try:
            for line in iter(stream.readline, b""):
                consumed = self._on_stderr_line(line) if self._on_stderr_line else False
                if not consumed:
                    self._tail.add(line)
        finally:
            stream.close()
            if self._on_stderr_end is not None:
                self._on_stderr_end()

    def _watch(self) -> None:
        proc = self._require_proc()
        deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
        while proc.poll() is None and not self._stopped.is_set():
            if self._cancel is not None and self._cancel.cancelled:
                self.killed_because = "cancelled"
                self._kill()
                return
            if deadline is not None and time.monotonic() > deadline:
                self.killed_because = "timeout"
                self._kill()
                return
            self._stopped.wait(_WATCH_INTERVAL_S)

    def _kill(self) -> None:
        proc = self._require_proc()
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, signal.SIGKILL)


def _ffmpeg_head(*, loglevel: str = "error") -> list[str]:
    return [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", loglevel]


def _input(path: Path) -> list[str]:
    return [*LOCAL_FILES_ONLY, "-i", str(path)]


# --------------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------------


def probe(path: Path, *, cancel: CancelToken | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """What is in a local media file. Raises ``NotAVideoError`` for an empty file and
    ``UnplayableMediaError`` (with a plain reason) for anything ffprobe cannot read."""
    src = local_input(path)
    size = src.stat().st_size
    if size == 0:
        raise NotAVideoError(
            "the file is empty (0 bytes)",
            UserText(
                zh="文件是空的（0 字节）。请重新发送视频文件。",
                en="The file is empty (0 bytes). Send the video file again.",
            ),
        )
    argv = [FFPROBE, "-hide_banner", "-loglevel", "error", *_input(src)]
    argv += ["-print_format", "json", "-show_format", "-show_streams"]
    with _Watched(FFPROBE, argv, cancel=cancel, timeout_s=timeout_s, capture_stdout=True) as run:
        output = run.stdout.read(_PROBE_OUTPUT_CAP + 1)
        if len(output) > _PROBE_OUTPUT_CAP:
            raise _unplayable(_BAD_DESCRIPTION)
        try:
            run.finish()
        except FFmpegError as exc:
            log.info("ffprobe could not read %s: %s", src.name, exc.stderr_tail)
            raise _unplayable(_unreadable_reason(exc.stderr_tail)) from exc
    try:
        data = json.loads(output or b"{}")
    except ValueError as exc:
        raise _unplayable(_BAD_DESCRIPTION) from exc
    return media_info_from_probe(data, size_bytes=size)


def _unplayable(reason: tuple[str, str]) -> UnplayableMediaError:
    return UnplayableMediaError(reason[0], reason[1])


# (English, Chinese) reasons, worded for the person who sent the file.
_INCOMPLETE = (
    "the file is incomplete: its index is missing, as after an interrupted download",
    "文件不完整，缺少索引，可能下载中断了",
)
_PLAYLIST = (
    "it is a playlist that refers to other files or addresses, which is not allowed",
    "这是引用其他文件或网址的播放列表，不允许处理",
)
_NO_ACCESS = ("the file cannot be read", "文件无法读取")
_UNKNOWN_FORMAT = ("not a recognised audio or video format", "不是可识别的音视频格式")
_UNREADABLE = ("it could not be read as audio or video", "无法作为音视频读取")
_NO_STREAMS = ("it has no audio or video streams", "文件里没有音频或视频流")
_BAD_DESCRIPTION = ("its description could not be read", "无法读取文件信息")


def _unreadable_reason(stderr: str) -> tuple[str, str]:
    if "moov atom not found" in stderr:
        return _INCOMPLETE
    if "not on whitelist" in stderr or "Unsafe file name" in stderr:
        return _PLAYLIST
    if "Permission denied" in stderr:
        return _NO_ACCESS
    if "Invalid data found" in stderr:
        return _UNKNOWN_FORMAT
    return _UNREADABLE


def media_info_from_probe(data: Mapping[str, Any], *, size_bytes: int) -> MediaInfo:
    """``MediaInfo`` from ffprobe's JSON (``-show_format -show_streams``)."""
    fmt: Mapping[str, Any] = data.get("format") or {}
    container = str(fmt.get("format_name") or "")
    if container in _INDIRECT_FORMATS:
        raise _unplayable(_PLAYLIST)
    streams: list[Mapping[str, Any]] = list(data.get("streams") or [])
    video = next((s for s in streams if _is_real_video(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise _unplayable(_NO_STREAMS)
    return MediaInfo(
        duration_s=_duration(fmt, streams),
        size_bytes=size_bytes,
        container=container,
        video=_video_stream(video) if video is not None else None,
        audio=_audio_stream(audio) if audio is not None else None,
        bit_rate=_int(fmt.get("bit_rate")),
    )


def _is_real_video(stream: Mapping[str, Any]) -> bool:
    """A video stream that moves: cover art (``attached_pic``) is a picture, not a video."""
    disposition: Mapping[str, Any] = stream.get("disposition") or {}
    return (
        stream.get("codec_type") == "video"
        and not disposition.get("attached_pic")
        and (_int(stream.get("width")) or 0) > 0
        and (_int(stream.get("height")) or 0) > 0
    )


def _video_stream(stream: Mapping[str, Any]) -> VideoStream:
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")) or 0.0
    return VideoStream(
        codec=str(stream.get("codec_name") or "unknown"),
        width=_int(stream.get("width")) or 0,
        height=_int(stream.get("height")) or 0,
        fps=round(fps, 3),
        rotation=_rotation(stream),
    )


def _audio_stream(stream: Mapping[str, Any]) -> AudioStream:
    return AudioStream(
        codec=str(stream.get("codec_name") or "unknown"),
        sample_rate=_int(stream.get("sample_rate")) or 0,
        channels=_int(stream.get("channels")) or 0,
        duration_s=_float(stream.get("duration")) or 0.0,
    )


def _rotation(stream: Mapping[str, Any]) -> int:
    """Degrees clockwise a player turns the picture. The display matrix that ffprobe reports is
    counter-clockwise; the legacy ``rotate`` tag is clockwise."""
    for side_data in stream.get("side_data_list") or ():
        angle = _float(side_data.get("rotation"))
        if angle is not None:
            return _quarter_turns(-angle)
    tags: Mapping[str, Any] = stream.get("tags") or {}
    angle = _float(tags.get("rotate"))
    return _quarter_turns(angle) if angle is not None else 0


def _quarter_turns(degrees: float) -> int:
    return (round(degrees / 90) * 90) % 360


def _duration(fmt: Mapping[str, Any], streams: Sequence[Mapping[str, Any]]) -> float:
    """The container's duration, else the longest stream's; 0.0 when nobody knows (ffprobe says N/A)."""
    duration = _float(fmt.get("duration"))
    if duration is not None and duration > 0:
        return duration
    known = [d for d in (_float(s.get("duration")) for s in streams) if d is not None and d > 0]
    return max(known, default=0.0)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _rate(value: Any) -> float | None:
    """``"30000/1001"`` -> 29.97; ``"0/0"`` and junk -> None."""
    numerator, _, denominator = str(value or "").partition("/")
    num, den = _float(numerator), _float(denominator or "1")
    if num is None or den is None or den == 0 or num <= 0:
        return None
    return num / den


# --------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------


def extract_audio(
    src: Path,
    dest: Path,
    *,
    sample_rate: int = 16000,
    channels: int = 1,
    cancel: CancelToken | None = None,
    timeout_s: float = EXTRACT_TIMEOUT_S,
) -> Path:
    """The first audio stream of ``src`` as a PCM WAV (16-bit) at ``dest``. The file appears only when
    complete; a cancelled or failed run leaves nothing behind."""
    source = local_input(src)
    target = Path(dest).absolute()
    partial = target.with_name(target.name + ".part")
    argv = [*_ffmpeg_head(), *_input(source), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    argv += ["-ac", str(channels), "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav", "-y", str(partial)]
    try:
        with _Watched(FFMPEG, argv, cancel=cancel, timeout_s=timeout_s) as run:
            run.finish()
        partial.replace(target)
    except FFmpegError as exc:
        if "matches no streams" in exc.stderr_tail:
            raise _no_audio_error(source) from exc
        raise
    finally:
        partial.unlink(missing_ok=True)
    return target


def _no_audio_error(source: Path) -> MediaError:
    return MediaError(
        f"{source.name} has no audio stream",
        UserText(
            zh="这个文件没有音轨，无法生成文字稿。",
            en="This file has no audio track, so there is nothing to transcribe.",
        ),
    )


# --------------------------------------------------------------------------------------------------
# Merging separate streams
# --------------------------------------------------------------------------------------------------

MERGE_TIMEOUT_S = 600.0
# Containers a merge may write, by the destination's suffix: MP4 for the H.264/AAC pairs most sites
# offer, Matroska for anything else (it holds every codec, so a copy never fails for the container).
_MERGE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def merge_av(
    video: Path,
    audio: Path,
    dest: Path,
    *,
    cancel: CancelToken | None = None,
    timeout_s: float = MERGE_TIMEOUT_S,
) -> Path:
    """One file at ``dest`` with the first video stream of ``video`` and the first audio stream of
    ``audio``, copied as they are (no re-encoding: seconds for an hour of video). ``dest``'s suffix
    picks the container (``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``). The file appears only when
    complete; a cancelled or failed run leaves nothing behind."""
    video_in, audio_in = local_input(video), local_input(audio)
    target = Path(dest).absolute()
    container = _MERGE_FORMATS.get(target.suffix.lower())
    if container is None:
        raise ValueError(f"merge_av writes {', '.join(sorted(_MERGE_FORMATS))} files, not {target.name}")
    partial = target.with_name(target.name + ".part")
    argv = [*_ffmpeg_head(), *_input(video_in), *_input(audio_in)]
    argv += ["-map", "0:V:0", "-map", "1:a:0", "-c", "copy", "-sn", "-dn"]
    argv += ["-f", container, "-y", str(partial)]
    try:
        with _Watched(FFMPEG, argv, cancel=cancel, timeout_s=timeout_s) as run:
            run.finish()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------


def scan_keyframes(
    path: Path,
    *,
    width: int = 64,
    cancel: CancelToken | None = None,
    timeout_s: float = SCAN_TIMEOUT_S,
) -> Generator[tuple[float, NDArray[np.uint8]], None, None]:
    """``(time_s, frame)`` for every keyframe of the first video stream, in order: small RGB frames
    ``width`` pixels wide (``height x width x 3``), one at a time.

    Only keyframes are decoded (``-skip_frame nokey``): encoders put them at scene cuts, so this finds
    cuts for a small fraction of a full decode. Frames stay in colour because cuts between colours of
    equal brightness (red to green) vanish in grayscale. Timestamps come from ``showinfo`` on stderr;
    each frame's line is logged before the frame is written to the pipe."""
    source = local_input(path)
    times: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    argv = [*_ffmpeg_head(loglevel="info"), "-skip_frame", "nokey", *_input(source), "-map", "0:V:0"]
    argv += ["-vf", f"scale={width}:-2:flags=area,format=rgb24,showinfo", "-fps_mode", "passthrough"]
    argv += ["-c:v", "ppm", "-f", "image2pipe", "pipe:1"]

    def on_line(line: bytes) -> bool:
        match = _SHOWINFO_PTS.search(line)
        if match:
            times.put(float(match.group(1)))
        return b"Parsed_showinfo" in line

    watched = _Watched(
        FFMPEG,
        argv,
        cancel=cancel,
        timeout_s=timeout_s,
        capture_stdout=True,
        on_stderr_line=on_line,
        on_stderr_end=lambda: times.put(None),
    )
    with watched as run:
        while (frame := _read_ppm(run.stdout)) is not None:
            time_s = times.get()  # the frame's line was logged before the frame was written
            if time_s is None:
                break
            yield time_s, frame
        run.finish()


def grab_frame(
    path: Path,
    time_s: float,
    *,
    cancel: CancelToken | None = None,
    timeout_s: float = GRAB_TIMEOUT_S,
) -> NDArray[np.uint8] | None:
    """One full-size RGB frame at ``time_s`` as shown (rotation applied), or None when there is no frame
    there. The slow path for files OpenCV cannot open: one process per frame."""
    source = local_input(path)
    argv = [*_ffmpeg_head(), "-ss", f"{max(0.0, time_s):.3f}", *_input(source), "-map", "0:V:0"]
    argv += ["-frames:v", "1", "-vf", "format=rgb24", "-c:v", "ppm", "-f", "image2pipe", "pipe:1"]
    with _Watched(FFMPEG, argv, cancel=cancel, timeout_s=timeout_s, capture_stdout=True) as run:
        frame = _read_ppm(run.stdout, max_side=_MAX_FRAME_SIDE)
        run.stdout.read()
        run.finish()
    return frame


def _read_ppm(stream: IO[bytes], *, max_side: int = _MAX_FRAME_SIDE) -> NDArray[np.uint8] | None:
    """The next binary PPM (P6, 8-bit) from ``stream`` as an ``h x w x 3`` array; None at the end."""
    import numpy as np

    magic = stream.readline()
    if not magic:
        return None
    dims, depth = stream.readline().split(), stream.readline().strip()
    if magic.strip() != b"P6" or len(dims) != 2 or depth != b"255":
        raise FFmpegError(FFMPEG, 0, f"unexpected frame header {magic[:16]!r}")
    width, height = int(dims[0]), int(dims[1])
    if not (0 < width <= max_side and 0 < height <= max_side):
        raise FFmpegError(FFMPEG, 0, f"unexpected frame size {width}x{height}")
    size = width * height * 3
    data = stream.read(size)
    if len(data) < size:
        return None  # the process ended mid-frame; finish() says why
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
