"""``Answer``: what every ``Bot`` method answers with (the webhook, a job invocation, the lifecycle
hooks, metrics, health), so the server turns each into an HTTP response the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """An HTTP status and a JSON body; or, with ``raw``, a body of ``media_type`` as it is."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes | None = None
    media_type: str = JSON

    @classmethod
    def ok(cls, **body: Any) -> Answer:
        return cls(200, body)

    @classmethod
    def problem(cls, status: int, error: str, message: str) -> Answer:
        """A refusal: ``{"error": <a stable code>, "message": <what to do about it>}``."""
        return cls(status, {"error": error, "message": message})

    @classmethod
    def plain(cls, raw: bytes, media_type: str) -> Answer:
        return cls(200, raw=raw, media_type=media_type)
