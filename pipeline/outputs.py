"""The files written for one video: ``transcript.json``, ``transcript.txt``, ``subtitles.srt``,
``metadata.json`` and the screenshots' contact sheet.

The helpers (``transcript_text``, ``video_record``, and ``srt_text``/``format_timestamp`` from
``pipeline.subtitles``) are public so the batch report and the bot build the same texts.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.contact_sheet import make_contact_sheet
from pipeline.models import Transcript, VideoOutputs, VideoResult
from pipeline.subtitles import format_clock, format_timestamp, isoformat, srt_text

__all__ = [
    "CONTACT_SHEET",
    "METADATA_JSON",
    "SUBTITLES_SRT",
    "TRANSCRIPT_JSON",
    "TRANSCRIPT_TXT",
    "format_clock",
    "format_timestamp",
    "relative_path",
    "srt_text",
    "transcript_text",
    "video_record",
    "write_json",
    "write_text",
    "write_video_outputs",
]

log = logging.getLogger(__name__)

TRANSCRIPT_JSON = "transcript.json"
TRANSCRIPT_TXT = "transcript.txt"
SUBTITLES_SRT = "subtitles.srt"
METADATA_JSON = "metadata.json"
CONTACT_SHEET = "contact_sheet.jpg"


# --------------------------------------------------------------------------------------------------
# Transcript text and records
# --------------------------------------------------------------------------------------------------


def transcript_text(transcript: Transcript, title: str | None = None) -> str:
    """The readable transcript: a header, one ``[mm:ss] text`` line per segment, then the plain text."""
    segments = [s for s in transcript.segments if s.text.strip()]
    long_video = any(s.start >= 3600 for s in segments)
    header = [
        title or "",
        f"语言 Language: {transcript.language or '?'} | 识别 ASR: {transcript.backend} / {transcript.model} | "
        f"段落 Segments: {len(segments)}",
    ]
    lines = [h for h in header if h]
    lines.append("")
    if not segments:
        lines.append("（未识别到语音 / No speech was recognised）")
        return "\n".join(lines) + "\n"
    lines.extend(f"[{format_clock(s.start, with_hours=long_video)}] {' '.join(s.text.split())}" for s in segments)
    lines += ["", "全文 Full text", "-" * 20, transcript.text]
    return "\n".join(lines) + "\n"


def relative_path(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form; the absolute path when it lies elsewhere."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def video_record(
    result: VideoResult,
    base_dir: Path,
    *,
    outputs: VideoOutputs | None = None,
    with_segments: bool = False,
) -> dict[str, Any]:
    """Everything known about one video as JSON-ready data, file paths relative to ``base_dir``.

    ``outputs`` defaults to ``result.outputs``; ``with_segments`` adds the full transcript (the batch
    report wants it; metadata.json points at transcript.json instead)."""
    outputs = outputs if outputs is not None else result.outputs
    transcript: dict[str, Any] | None = None
    if result.transcript is not None:
        t = result.transcript
        transcript = {
            "language": t.language,
            "backend": t.backend,
            "model": t.model,
            "segment_count": len(t.segments),
            "characters": len(t.text),
        }
        if with_segments:
            transcript["text"] = t.text
            transcript["segments"] = [s.to_dict() for s in t.segments]
    files: dict[str, str | None] = {}
    if outputs is not None:
        files = {
            name: relative_path(path, base_dir) if path is not None else None
            for name, path in (
                ("directory", outputs.directory),
                ("transcript_json", outputs.transcript_json),
                ("transcript_txt", outputs.transcript_txt),
                ("subtitles_srt", outputs.subtitles_srt),
                ("metadata_json", outputs.metadata_json),
                ("contact_sheet", outputs.contact_sheet),
            )
        }
        if outputs.notes_md is not None:
            files["notes_md"] = relative_path(outputs.notes_md, base_dir)
    record: dict[str, Any] = {
        "index": result.index,
        "name": result.title,
        "source": result.source.to_dict(),
        "status": result.status.value,
        "failure": result.failure.to_dict() if result.failure else None,
        "media": result.media.to_dict() if result.media else None,
        "transcript": transcript,
        "keywords": list(result.keywords),
        "notes": [n.to_dict() for n in result.notes],
        "screenshots": [
            {
                "time_s": round(shot.time_s, 3),
                "timestamp": format_timestamp(shot.time_s, decimal_mark="."),
                "reason": shot.reason.value,
                "file": relative_path(shot.path, base_dir),
            }
            for shot in sorted(result.screenshots, key=lambda s: s.time_s)
        ],
        "files": files,
        "stage_seconds": {stage: round(seconds, 3) for stage, seconds in result.stage_seconds.items()},
        "processing_s": round(result.processing_s, 3),
        "analysed_at": isoformat(result.analysed_at),
    }
    if result.insight is not None:
        record["insight"] = result.insight.to_dict()
    return record


def write_json(path: Path, data: Mapping[str, Any] | Sequence[Any]) -> None:
    """Pretty UTF-8 JSON (Chinese kept readable), written whole or not at all."""
    write_text(path, json.dumps(_finite(data), ensure_ascii=False, indent=2, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """NaN and infinities have no JSON form: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# One video's files
# --------------------------------------------------------------------------------------------------


def write_video_outputs(result: VideoResult, out_dir: Path) -> VideoOutputs:
    """Write the files that apply to ``result`` into ``out_dir`` and say which were written.

    A video without a transcript gets no transcript files and no subtitles; one with an empty
    transcript gets the transcript files (saying no speech was found) but no subtitles; a failed or
    cancelled video still gets ``metadata.json`` carrying its failure. The contact sheet is a
    convenience: if it cannot be drawn the other files are written anyway."""
    out_dir.mkdir(parents=True, exist_ok=True)
    transcript_json = transcript_txt = subtitles_srt = contact_sheet = None

    if result.transcript is not None:
        transcript_json = out_dir / TRANSCRIPT_JSON
        write_json(transcript_json, result.transcript.to_dict())
        transcript_txt = out_dir / TRANSCRIPT_TXT
        write_text(transcript_txt, transcript_text(result.transcript, result.title))
        srt = srt_text(result.transcript.segments)
        if srt:
            subtitles_srt = out_dir / SUBTITLES_SRT
            write_text(subtitles_srt, srt)

    if result.screenshots:
        try:
            contact_sheet = make_contact_sheet(result.screenshots, out_dir / CONTACT_SHEET, title=result.title)
        except OSError as exc:
            log.warning("contact sheet for video %s not written: %s", result.index, exc)

    metadata_json = out_dir / METADATA_JSON
    outputs = VideoOutputs(
        directory=out_dir,
        transcript_json=transcript_json,
        transcript_txt=transcript_txt,
        subtitles_srt=subtitles_srt,
        metadata_json=metadata_json,
        contact_sheet=contact_sheet,
    )
    write_json(metadata_json, video_record(result, out_dir, outputs=outputs))
    return outputs
