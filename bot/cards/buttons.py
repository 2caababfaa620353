"""Button values: the action ids, and the value dict every button carries. Values already sit in
sent cards, so their keys and action ids never change."""

from __future__ import annotations

from typing import Any

from bot.cards.primitives import button
from pipeline.models import UserText

OPEN_TASK_FORM = "open_task_form"
CANCEL = "cancel"
RETRY_FAILED = "retry_failed"
SUBMIT_TASK_FORM = "submit_task_form"


def action_value(action: str, job_id: str, creator_id: str, key: str = "") -> dict[str, str]:
    """A button's callback value. The creator rides along so a deployment without the job row (a
    stateless instance) can still tell who may act; the job store is checked too when it has the job.
    ``key`` (the job's idempotency key) lets such an instance find the job's async invocation to stop
    it. Feishu signs the callbacks of the cards we sent, so these values are ours, not the user's."""
    value = {"action": action, "job_id": job_id}
    if creator_id:
        value["creator"] = creator_id
    if key:
        value["key"] = key
    return value


def cancel_button(job_id: str, creator_id: str, key: str = "") -> Any:
    return button(
        UserText(zh="取消", en="Cancel"),
        action_value(CANCEL, job_id, creator_id, key),
        kind="danger",
        confirm=UserText(zh="确定取消这个任务吗？", en="Cancel this job?"),
    )


def retry_button(job_id: str, creator_id: str, count: int) -> Any:
    return button(
        UserText(zh=f"重试失败项（{count} 个）", en=f"Retry failed ({count})"),
        action_value(RETRY_FAILED, job_id, creator_id),
    )


def open_url_button(label: UserText, url: str) -> Any:
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": f"{label.zh} / {label.en}"},
        "type": "primary",
        "behaviors": [{"type": "open_url", "default_url": url}],
    }
