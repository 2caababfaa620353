"""What travels in a Function Compute job invocation, and how it is signed.

FC instances share no disk, so the instance that runs a job learns everything about it from the
invocation body: the ``JobEnvelope`` (job id, spec, idempotency key, attempt, card message id), as JSON
under FC's 128 KB limit for asynchronous bodies.

The function's HTTP trigger is anonymous (Feishu cannot sign FC requests), so anyone could POST to
``/jobs/run``. Each invocation therefore carries an HMAC-SHA256 of ``"<timestamp>." + body`` made with
``JOB_SECRET``::

    X-Job-Timestamp: 1732416000
    X-Job-Signature: v1=<64 hex digits>

``verify`` refuses a missing or malformed pair, a timestamp outside ``max_age_s`` (past or future) and a
wrong signature; the caller refuses a signature it has seen before (a replayed body).

``task_id_for`` turns the job's idempotency key (the Feishu message id) into FC's async task id, so a
redelivered message that reaches another instance, and makes a second job there, is refused by FC as a
duplicate task instead of running twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bot.keys import fc_task_id
from pipeline.models import JobSpec, UserText
from pipeline.safe_json import JsonTooDeep, loads_bounded

ENVELOPE_VERSION = 1
# FC refuses asynchronous invocations whose body is larger than this.
MAX_ASYNC_BODY_BYTES = 128 * 1024
TIMESTAMP_HEADER = "X-Job-Timestamp"
SIGNATURE_HEADER = "X-Job-Signature"
SIGNATURE_PREFIX = "v1="

_JOB_ID = re.compile(r"^j[A-Za-z0-9_-]{1,64}$")
_SIGNATURE = re.compile(r"^v1=[0-9a-f]{64}$")
# FC task ids: a letter or "_" first, then letters, digits, "_" and "-", at most 128 characters.
_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TASK_ID_READABLE_CHARS = 80


class EnvelopeError(ValueError):
    """The body is not a job envelope this version understands."""


class EnvelopeTooLarge(ValueError):
    """Even without its optional parts the envelope is over FC's limit."""

    def __init__(self, size_bytes: int) -> None:
        super().__init__(f"the job envelope is {size_bytes} bytes, over FC's {MAX_ASYNC_BODY_BYTES}-byte limit")
        self.size_bytes = size_bytes


@dataclass(frozen=True)
class JobEnvelope:
    job_id: str
    spec: JobSpec
    idempotency_key: str | None = None
    attempt: int = 1
    card_message_id: str | None = None
    parent_job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": ENVELOPE_VERSION,
            "job_id": self.job_id,
            "spec": self.spec.to_dict(),
            "idempotency_key": self.idempotency_key,
            "attempt": self.attempt,
            "card_message_id": self.card_message_id,
            "parent_job_id": self.parent_job_id,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def fitted_json(self, limit: int = MAX_ASYNC_BODY_BYTES) -> bytes:
        """The body to send: as is when it fits ``limit``; otherwise without the list of unused inputs
        (the queued card already showed it to the user), or ``EnvelopeTooLarge``."""
        body = self.to_json()
        if len(body) <= limit:
            return body
        count = len(self.spec.rejected)
        slim = replace(
            self,
            spec=replace(
                self.spec,
                rejected=(
                    UserText(
                        zh=f"另有 {count} 项输入未使用（见排队卡片）",
                        en=f"{count} input(s) not used (listed on the queued card)",
                    ),
                )
                if count
                else (),
            ),
        )
        body = slim.to_json()
        if len(body) > limit:
            raise EnvelopeTooLarge(len(body))
        return body

    @classmethod
    def from_json(cls, body: bytes) -> JobEnvelope:
        try:
            data = loads_bounded(body)
        except JsonTooDeep as exc:
            raise EnvelopeError(str(exc)) from None
        except (ValueError, UnicodeDecodeError):
            raise EnvelopeError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise EnvelopeError("the body is not a JSON object")
        if data.get("v") != ENVELOPE_VERSION:
            raise EnvelopeError(f"unknown envelope version {data.get('v')!r}")
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise EnvelopeError("job_id is missing or malformed")
        attempt = data.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise EnvelopeError("attempt must be a positive integer")
        spec = data.get("spec")
        if not isinstance(spec, dict):
            raise EnvelopeError("spec is missing")
        try:
            parsed_spec = JobSpec.from_dict(spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"spec is malformed: {type(exc).__name__}") from None
        return cls(
            job_id=job_id,
            spec=parsed_spec,
            idempotency_key=_optional_str(data, "idempotency_key"),
            attempt=attempt,
            card_message_id=_optional_str(data, "card_message_id"),
            parent_job_id=_optional_str(data, "parent_job_id"),
        )


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"{key} must be a string")
    return value or None


task_id_for = fc_task_id  # FC's async task id of a job (``bot.keys``)


# --------------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------------


class SignatureProblem(StrEnum):
    """Why a job invocation's signature was refused; the value is the ``error`` of the 401 answer."""

    MISSING = "missing_signature"
    MALFORMED = "malformed_signature"
    EXPIRED = "expired_signature"
    MISMATCH = "bad_signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float, max_age_s: float
) -> SignatureProblem | None:
    """None when ``body`` was signed with ``secret`` within ``max_age_s`` of ``now``. ``headers`` are
    looked up case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "").strip()
    given = lowered.get(SIGNATURE_HEADER.lower(), "").strip()
    if not stamp or not given:
        return SignatureProblem.MISSING
    if not stamp.isdigit() or len(stamp) > 12 or not _SIGNATURE.fullmatch(given):
        return SignatureProblem.MALFORMED
    if abs(now - int(stamp)) > max_age_s:
        return SignatureProblem.EXPIRED
    if not hmac.compare_digest(sign(secret, int(stamp), body), given):
        return SignatureProblem.MISMATCH
    return None
