"""The bot's front door: ``Bot`` (every request goes through one of its methods), its ``Settings``, and
``Answer`` (what every ``Bot`` method answers with). Everything else in ``bot/`` is its inside.

``Bot`` is imported on first use, so importing the settings stays cheap on the server's start path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.answer import Answer
from bot.config import Settings

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = ["Answer", "Bot", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "Bot":
        from bot.app import Bot

        return Bot
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
