"""Card JSON 2.0 builders, pure functions of plain data, Chinese first and English second everywhere:
primitives and size fitting (``primitives``), button values (``buttons``), the reply cards (``reply``),
the progress card (``progress``) and the task form (``form``)."""

from bot.cards.buttons import CANCEL, OPEN_TASK_FORM, RETRY_FAILED, SUBMIT_TASK_FORM, action_value
from bot.cards.form import (
    FORM_FOLDER,
    FORM_LINKS,
    FORM_MAX_CHARS,
    FORM_SCREENSHOT_MODE,
    FORM_SCREENSHOT_VALUE,
    FORM_SUBMIT_BUTTON,
    FORM_TASK_NAME,
    form_submitted_card,
    task_form_card,
)
from bot.cards.primitives import CARD_LIMIT_BYTES, Card, card_json, fit
from bot.cards.progress import (
    CardState,
    card_state,
    format_duration,
    progress_card,
)
from bot.cards.reply import (
    cancelled_elsewhere_card,
    describe_plan,
    error_card,
    help_card,
    nothing_card,
    queued_card,
    restart_notice_card,
    video_label,
)

__all__ = [
    "CANCEL",
    "CARD_LIMIT_BYTES",
    "FORM_FOLDER",
    "FORM_LINKS",
    "FORM_MAX_CHARS",
    "FORM_SCREENSHOT_MODE",
    "FORM_SCREENSHOT_VALUE",
    "FORM_SUBMIT_BUTTON",
    "FORM_TASK_NAME",
    "OPEN_TASK_FORM",
    "RETRY_FAILED",
    "SUBMIT_TASK_FORM",
    "Card",
    "CardState",
    "action_value",
    "cancelled_elsewhere_card",
    "card_json",
    "card_state",
    "describe_plan",
    "error_card",
    "fit",
    "form_submitted_card",
    "format_duration",
    "help_card",
    "nothing_card",
    "progress_card",
    "queued_card",
    "restart_notice_card",
    "task_form_card",
    "video_label",
]
