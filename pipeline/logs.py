"""Logging for the server and the CLI: text or one JSON object per line, with the job and event ids
of the work in progress, and secrets scrubbed from every line.

The ids come from context variables (``log_context``) so code deep in the pipeline logs them without
passing them around. Message texts from users are never logged whole: use ``preview``.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

_REDACTED = "**********"


@contextmanager
def log_context(*, job_id: str | None = None, event_id: str | None = None) -> Iterator[None]:
    """Tag every log line inside the block with these ids."""
    tokens = []
    if job_id is not None:
        tokens.append((_job_id, _job_id.set(job_id)))
    if event_id is not None:
        tokens.append((_event_id, _event_id.set(event_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def preview(text: str | None, limit: int = 24) -> str:
    """A short, single-line preview of user text for logs: enough to recognise, not to read."""
    if not text:
        return "''"
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return repr(flat)
    return repr(flat[:limit] + "…") + f" ({len(flat)} chars)"


class _ContextFilter(logging.Filter):
    """Adds job_id/event_id and scrubs secret values from the rendered message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real secrets are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = _job_id.get()
        record.event_id = _event_id.get()
        if self._secrets:
            message = record.getMessage()
            scrubbed = message
            for secret in self._secrets:
                scrubbed = scrubbed.replace(secret, _REDACTED)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = []
        if getattr(record, "job_id", None):
            ids.append(f"job={record.__dict__['job_id']}")
        if getattr(record, "event_id", None):
            ids.append(f"event={record.__dict__['event_id']}")
        record.ids = (" [" + " ".join(ids) + "]") if ids else ""
        return super().format(record)


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger (idempotent: replaces what an earlier call installed)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s %(event_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(name)s%(ids)s: %(message)s"))
    handler.addFilter(_ContextFilter(secrets))
    handler.set_name("video-insight")

    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "video-insight":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party loggers that would otherwise log request bodies or tracebacks of rejected events.
    for noisy, noisy_level in (("Lark", logging.CRITICAL), ("urllib3", logging.WARNING), ("httpx", logging.WARNING)):
        logging.getLogger(noisy).setLevel(noisy_level)
