"""Dataclasses at the seams of the pipeline: what goes in (sources, options), what comes out (results),
and what is reported on the way (progress events).

Everything here is plain data with ``to_dict``/``from_dict`` where it is stored (job rows, results.json),
so the job store and the bot never depend on the pipeline's internals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.insight.models import BatchOverview, VideoInsight

from pipeline.names import MAX_TASK_NAME_CHARS, clean_name


@dataclass(frozen=True)
class UserText:
    """A message for a person, Chinese first, English second (the order cards and the CLI show them)."""

    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"

    def to_dict(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserText:
        return cls(zh=str(data.get("zh", "")), en=str(data.get("en", "")))


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


class SourceKind(StrEnum):
    """Kinds the pipeline fetches itself. ``bot/`` registers fetchers for further kinds (Feishu ones),
    so ``VideoSource.kind`` is a plain string, not this enum."""

    URL = "url"
    LOCAL = "local"


@dataclass(frozen=True)
class VideoSource:
    """Where one video comes from. ``locator`` is what the fetcher for ``kind`` understands (a URL,
    a path, a Feishu file key); ``name`` is what people see; ``meta`` carries fetcher-specific extras
    (a message id, a record id) as strings so the source survives a round trip through JSON."""

    kind: str
    locator: str
    name: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Names come from users (a file name, a table cell, a page title): capped and on one line from
        # the start, so no later step (cards, cells, the contact sheet) pays for a hostile one.
        object.__setattr__(self, "name", clean_name(self.name))
        if "file_name" in self.meta:
            object.__setattr__(self, "meta", {**self.meta, "file_name": clean_name(self.meta["file_name"])})

    @property
    def display_name(self) -> str:
        """The name, or the locator (a URL, a path) cut to a length and characters fit to show."""
        return self.name or clean_name(self.locator)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "locator": self.locator, "name": self.name, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoSource:
        return cls(
            kind=str(data["kind"]),
            locator=str(data["locator"]),
            name=str(data.get("name", "")),
            meta={str(k): str(v) for k, v in dict(data.get("meta") or {}).items()},
        )

    @classmethod
    def url(cls, url: str, name: str = "") -> VideoSource:
        return cls(kind=SourceKind.URL.value, locator=url, name=name)

    @classmethod
    def local(cls, path: str | Path, name: str = "") -> VideoSource:
        p = Path(path)
        return cls(kind=SourceKind.LOCAL.value, locator=str(p), name=name or p.name)


class ScreenshotMode(StrEnum):
    SCENES = "scenes"  # scene changes plus speech anchors (the default)
    INTERVAL = "interval"  # every N seconds
    TIMES = "times"  # at the given times


DEFAULT_MAX_SCREENSHOTS = 20


@dataclass(frozen=True)
class ScreenshotPlan:
    """How to pick screenshots. Validated by ``pipeline.frames`` against the video's duration."""

    mode: ScreenshotMode = ScreenshotMode.SCENES
    interval_s: float | None = None
    times_s: tuple[float, ...] = ()
    max_shots: int = DEFAULT_MAX_SCREENSHOTS

    @classmethod
    def parse(cls, text: str, max_shots: int = DEFAULT_MAX_SCREENSHOTS) -> ScreenshotPlan:
        """Parse ``scenes``, ``interval:N`` or ``times:T1,T2,...`` (seconds; ``mm:ss`` accepted too).

        Raises ``InvalidOptionsError`` with a message for the user on anything else. Times past the end
        of a video can only be judged once it is probed: ``pipeline.frames`` drops those with a note."""
        from pipeline.errors import InvalidOptionsError

        head, _, rest = text.strip().partition(":")
        mode = head.strip().lower()
        if mode == ScreenshotMode.SCENES.value and not rest.strip():
            return cls(mode=ScreenshotMode.SCENES, max_shots=max_shots)
        if mode == ScreenshotMode.INTERVAL.value:
            interval = _parse_seconds(rest)
            if interval is None or interval <= 0:
                raise InvalidOptionsError(
                    f"screenshot interval must be a number of seconds above 0, got {rest.strip()!r}",
                    UserText(
                        zh=f"截图间隔必须是大于 0 的秒数（收到：{rest.strip() or '空'}）。例如：间隔 10",
                        en=f"The screenshot interval must be a number of seconds above 0 (got "
                        f"{rest.strip() or 'nothing'}). For example: interval 10",
                    ),
                )
            return cls(mode=ScreenshotMode.INTERVAL, interval_s=interval, max_shots=max_shots)
        if mode == ScreenshotMode.TIMES.value:
            parts = [p for p in rest.replace("，", ",").replace(" ", ",").split(",") if p.strip()]
            times = [_parse_seconds(p) for p in parts]
            bad = [p.strip() for p, t in zip(parts, times, strict=True) if t is None or t < 0]
            if not parts or bad:
                shown = ", ".join(bad) or "nothing"
                raise InvalidOptionsError(
                    f"screenshot times must be seconds >= 0, got {shown}",
                    UserText(
                        zh=f"截图时间必须是不小于 0 的秒数（有问题的：{shown}）。例如：截图 0,5,12.5",
                        en=f"Screenshot times must be seconds, 0 or more (problem: {shown}). "
                        "For example: times 0,5,12.5",
                    ),
                )
            unique = tuple(sorted({t for t in times if t is not None}))
            return cls(mode=ScreenshotMode.TIMES, times_s=unique[:max_shots], max_shots=max_shots)
        raise InvalidOptionsError(
            f"unknown screenshot mode {text.strip()!r}",
            UserText(
                zh=f"不认识的截图方式：{text.strip()}。可用：scenes（按场景）、interval:N（每 N 秒）、times:0,5,12.5",
                en=f"Unknown screenshot mode: {text.strip()}. Use scenes, interval:N or times:0,5,12.5",
            ),
        )

    def describe(self) -> str:
        if self.mode is ScreenshotMode.INTERVAL:
            return f"interval:{self.interval_s:g}"
        if self.mode is ScreenshotMode.TIMES:
            return "times:" + ",".join(f"{t:g}" for t in self.times_s)
        return "scenes"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "interval_s": self.interval_s,
            "times_s": list(self.times_s),
            "max_shots": self.max_shots,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScreenshotPlan:
        interval = data.get("interval_s")
        return cls(
            mode=ScreenshotMode(data.get("mode", ScreenshotMode.SCENES.value)),
            interval_s=float(interval) if interval is not None else None,
            times_s=tuple(float(t) for t in data.get("times_s") or ()),
            max_shots=int(data.get("max_shots", DEFAULT_MAX_SCREENSHOTS)),
        )


@dataclass(frozen=True)
class AnalysisOptions:
    """Per-job choices. ``None`` means "the configured default"."""

    screenshots: ScreenshotPlan = field(default_factory=ScreenshotPlan)
    asr_backend: str | None = None
    language: str | None = None
    task_name: str | None = None
    # Feishu folder for the results Base; opaque to the pipeline, carried for bot/.
    target_folder: str | None = None
    # Insight: a preset name (general, meeting, ad; None = general) and a free-form analysis request.
    preset: str | None = None
    analysis_request: str | None = None

    def __post_init__(self) -> None:
        if self.task_name is not None:
            object.__setattr__(self, "task_name", clean_name(self.task_name, MAX_TASK_NAME_CHARS) or None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "screenshots": self.screenshots.to_dict(),
            "asr_backend": self.asr_backend,
            "language": self.language,
            "task_name": self.task_name,
            "target_folder": self.target_folder,
            "preset": self.preset,
            "analysis_request": self.analysis_request,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisOptions:
        return cls(
            screenshots=ScreenshotPlan.from_dict(data.get("screenshots") or {}),
            asr_backend=data.get("asr_backend"),
            language=data.get("language"),
            task_name=data.get("task_name"),
            target_folder=data.get("target_folder"),
            preset=data.get("preset"),
            analysis_request=data.get("analysis_request"),
        )


@dataclass(frozen=True)
class JobSpec:
    """An accepted request: what to analyse, how, and who asked (ids are opaque strings here; the bot
    fills them with Feishu open_id / chat_id / message_id)."""

    sources: tuple[VideoSource, ...]
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    creator_id: str = ""
    chat_id: str = ""
    source_message_id: str = ""
    # Inputs found in the request but not usable (a ftp:// link, links over the cap), already worded
    # for the user; shown on the card so nothing is dropped silently.
    rejected: tuple[UserText, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": [s.to_dict() for s in self.sources],
            "options": self.options.to_dict(),
            "creator_id": self.creator_id,
            "chat_id": self.chat_id,
            "source_message_id": self.source_message_id,
            "rejected": [r.to_dict() for r in self.rejected],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            sources=tuple(VideoSource.from_dict(s) for s in data.get("sources") or ()),
            options=AnalysisOptions.from_dict(data.get("options") or {}),
            creator_id=str(data.get("creator_id", "")),
            chat_id=str(data.get("chat_id", "")),
            source_message_id=str(data.get("source_message_id", "")),
            rejected=tuple(UserText.from_dict(r) for r in data.get("rejected") or ()),
        )


def _parse_seconds(text: str) -> float | None:
    """``12.5`` or ``1:02.5`` or ``1:00:00`` -> seconds; None when it is not a time."""
    parts = text.strip().split(":")
    if not parts or len(parts) > 3 or not all(p.strip() for p in parts):
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):  # NaN / inf
        return None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return seconds


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedFile:
    """A source brought to local disk by a fetcher."""

    path: Path
    name: str
    size_bytes: int
    content_type: str | None = None
    final_url: str | None = None


@dataclass(frozen=True)
class VideoStream:
    codec: str
    width: int
    height: int
    fps: float
    rotation: int = 0  # degrees clockwise the player turns the picture

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown, after rotation."""
        if self.rotation % 180 == 90:
            return self.height, self.width
        return self.width, self.height

    @property
    def resolution(self) -> str:
        w, h = self.display_size
        return f"{w}x{h}"


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate: int
    channels: int
    # What the header says (0.0: not said); compared with what decodes to spot a truncated file.
    duration_s: float = 0.0


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    size_bytes: int
    container: str
    video: VideoStream | None
    audio: AudioStream | None
    bit_rate: int | None = None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resolution"] = self.video.resolution if self.video else None
        return data


@dataclass(frozen=True)
class Segment:
    """A timestamped sentence, seconds from the start of the video."""

    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str  # ISO 639-1 where known ("zh", "en"), else what the engine reported
    backend: str  # "funasr" | "whisper"
    model: str  # the model directory's name or the hub id

    @property
    def text(self) -> str:
        joiner = "" if self.language.startswith("zh") else " "
        return joiner.join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def is_empty(self) -> bool:
        return not any(s.text.strip() for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "backend": self.backend,
            "model": self.model,
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
        }


class ShotReason(StrEnum):
    SCENE = "scene"
    SPEECH = "speech"
    INTERVAL = "interval"
    TIME = "time"


@dataclass(frozen=True)
class Screenshot:
    time_s: float
    path: Path
    reason: ShotReason


class VideoStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class VideoFailure:
    """Why a video has no (complete) result: a stable code, the stage it failed in, and the words for
    the user."""

    code: str
    stage: str
    message: UserText
    detail: str = ""  # technical, English, for logs and results.json

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "stage": self.stage, "message": self.message.to_dict(), "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoFailure:
        return cls(
            code=str(data.get("code", "")),
            stage=str(data.get("stage", "")),
            message=UserText.from_dict(data.get("message") or {}),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class VideoOutputs:
    """Files written for one video, all under the video's output directory."""

    directory: Path
    transcript_json: Path | None = None
    transcript_txt: Path | None = None
    subtitles_srt: Path | None = None
    metadata_json: Path | None = None
    contact_sheet: Path | None = None
    notes_md: Path | None = None  # written when insight is on


@dataclass
class VideoResult:
    index: int
    source: VideoSource
    status: VideoStatus
    failure: VideoFailure | None = None
    media: MediaInfo | None = None
    transcript: Transcript | None = None
    screenshots: list[Screenshot] = field(default_factory=list)
    outputs: VideoOutputs | None = None
    keywords: list[str] = field(default_factory=list)
    # Things worth telling that are not failures, worded for the user ("no audio track: screenshots only").
    notes: list[UserText] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    processing_s: float = 0.0
    analysed_at: float = field(default_factory=time.time)
    # What the model said (None when insight is off or the video never got that far).
    insight: VideoInsight | None = None

    @property
    def ok(self) -> bool:
        return self.status is VideoStatus.OK

    @property
    def title(self) -> str:
        return self.source.display_name


@dataclass
class BatchResult:
    videos: list[VideoResult]
    out_dir: Path
    started_at: float
    finished_at: float
    results_json: Path | None = None
    results_xlsx: Path | None = None
    insight_enabled: bool = False
    overview: BatchOverview | None = None

    @property
    def ok_count(self) -> int:
        return sum(1 for v in self.videos if v.ok)

    @property
    def failed_count(self) -> int:
        return sum(1 for v in self.videos if v.status is VideoStatus.FAILED)


# --------------------------------------------------------------------------------------------------
# Progress and cancellation
# --------------------------------------------------------------------------------------------------


class Stage(StrEnum):
    """Where a job or a video is. Batch-level stages have ``video_index=None`` in events."""

    QUEUED = "queued"
    STARTED = "started"
    DOWNLOADING = "downloading"
    PROBING = "probing"
    AUDIO = "audio"
    TRANSCRIBING = "transcribing"
    SCREENSHOTS = "screenshots"
    OUTPUTS = "outputs"
    DELIVERING = "delivering"  # results being written where the user reads them (the bot's Bitable)
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The one list of the work a video goes through: the stages in order, and what people are told each is
# (cards show both languages, the command line the English).
STAGE_STEPS: tuple[tuple[Stage, UserText], ...] = (
    (Stage.DOWNLOADING, UserText("下载中", "downloading")),
    (Stage.PROBING, UserText("读取视频信息", "reading metadata")),
    (Stage.AUDIO, UserText("提取音频", "extracting audio")),
    (Stage.TRANSCRIBING, UserText("语音转写中", "transcribing")),
    (Stage.SCREENSHOTS, UserText("截图中", "taking screenshots")),
    (Stage.OUTPUTS, UserText("生成文件", "writing files")),
)
WORK_STAGES: tuple[Stage, ...] = tuple(stage for stage, _ in STAGE_STEPS)
_STAGE_LABELS: dict[Stage, UserText] = {Stage.QUEUED: UserText("等待中", "waiting"), **dict(STAGE_STEPS)}


def stage_label(stage: Stage) -> UserText:
    """What a stage is called for people; a stage without words of its own by its value."""
    return _STAGE_LABELS.get(stage) or UserText(stage.value, stage.value)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress. Emitted at the start of each stage (``fraction`` 0), optionally inside
    it, and once per video when it finishes (``stage`` DONE/FAILED/CANCELLED with ``failure``)."""

    stage: Stage
    video_index: int | None = None
    video_count: int = 0
    fraction: float | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    failure: VideoFailure | None = None
    at: float = field(default_factory=time.time)


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Checked between stages and inside long loops. ``poll`` (for example "is the job's cancel flag
    set in the store") is called at most every ``poll_interval_s`` so hot loops stay cheap."""

    def __init__(self, poll: Callable[[], bool] | None = None, poll_interval_s: float = 1.0) -> None:
        self._event = threading.Event()
        self._poll = poll
        self._poll_interval_s = poll_interval_s
        self._last_poll = 0.0
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self._poll is None:
            return False
        now = time.monotonic()
        with self._lock:
            if now - self._last_poll < self._poll_interval_s:
                return False
            self._last_poll = now
        if self._poll():
            self._event.set()
            return True
        return False

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            from pipeline.errors import JobCancelled

            raise JobCancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True early if cancelled (for backoff loops)."""
        deadline = time.monotonic() + seconds
        while True:
            if self.cancelled:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._event.wait(min(remaining, self._poll_interval_s))
