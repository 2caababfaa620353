"""Every idempotency key the bot derives, in one place: the same input gives the same key, so whatever is
retried (a redelivered event, a double click, a resent request, a resumed job) lands once.

    job_key_for_message(message_id)     the job a message makes (the store's UNIQUE idempotency key)
    retry_key(parent_job_id)            the one retry job of a job, however often "retry" is clicked
    form_key(message, operator, form)   the one job a submitted form makes
    reply_uuid(message_id)              Feishu's message ``uuid`` of our one reply to a message
    first_card_uuid(job)                the ``uuid`` of a job's first card
    replacement_card_uuid(job)          the ``uuid`` of a card sent again when the first one is gone
    rows_client_token(job_id, chunk)    Bitable ``client_token`` of one chunk of result rows
    base_name_tag(job_id)               the tag in a job's results Base name, by which a retry finds it
    fc_task_id(key, job_id)             Function Compute's async task id of a job

The strings are stored (jobs' keys) or sit in Feishu and FC (uuids, tokens, task ids): they never change.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from pipeline.jobs import Job

RETRY_KEY_PREFIX = "retry:"
FORM_KEY_PREFIX = "form:"
_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TASK_ID_READABLE_CHARS = 80


def stable_uuid(*parts: str) -> str:
    """A UUIDv4-shaped key derived from ``parts``: the same parts give the same key, so a retried job
    re-sends with the key of its first try (message ``uuid``, Bitable ``client_token``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def job_key_for_message(message_id: str) -> str:
    """A message makes at most one job: its id is the job's key (a redelivered event finds that job)."""
    return message_id


def retry_key(parent_job_id: str) -> str:
    """The idempotency key of the retry of a job: one retry job per parent, however often it is clicked."""
    return RETRY_KEY_PREFIX + parent_job_id


def form_key(open_message_id: str, operator_open_id: str, form_value: Mapping[str, Any]) -> str:
    """Same form, same person, same card: the same job (a double click, a redelivered callback)."""
    payload = json.dumps(
        [open_message_id, operator_open_id, dict(form_value)], ensure_ascii=False, sort_keys=True, default=str
    )
    return FORM_KEY_PREFIX + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def reply_uuid(message_id: str) -> str:
    """The idempotency key of our one reply to a message: Feishu drops a second send with the same uuid
    (for an hour), so a reply retried by the client or re-sent after a redelivery lands once."""
    return stable_uuid("reply", message_id)


def first_card_uuid(job: Job) -> str:
    """The idempotency key of a job's first card. A job made from a message was answered with
    ``reply_uuid(message_id)``; other jobs (a retry, a form) by this key."""
    if job.idempotency_key and job.idempotency_key == job.spec.source_message_id:
        return reply_uuid(job.spec.source_message_id)
    return stable_uuid("job-card", job.id)


def replacement_card_uuid(job: Job) -> str:
    """The key of a new card sent because the job's card is gone (recalled, too old to update)."""
    return stable_uuid("job-card-again", job.id, job.card_message_id or "")


def rows_client_token(job_id: str, chunk: int) -> str:
    """Bitable ``client_token`` of a chunk of result rows: a resent chunk returns the same records."""
    return stable_uuid(job_id, "rows", str(chunk))


def base_name_tag(job_id: str) -> str:
    """A short tag unique to a job, put in its results Base's name: creating a Base has no idempotency
    key, so a retry after a lost answer finds the Base it may have made by this name."""
    return stable_uuid(job_id, "base").replace("-", "")[:10]


def fc_task_id(idempotency_key: str | None, job_id: str) -> str:
    """FC's async task id for a job: readable (the key's safe characters) and unique (a hash of the
    whole key), so two keys that differ only in unsafe characters never share a task id. A job without
    a key (a retry, a form) is its own key."""
    key = idempotency_key or job_id
    readable = _TASK_ID_UNSAFE.sub("_", key)[:_TASK_ID_READABLE_CHARS]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"vi_{readable}_{digest}"
