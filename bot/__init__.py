"""The bot's front door: ``Bot`` (every request goes through one of its methods), its ``Settings``, and
``Answer`` (what every ``Bot`` method answers with), and ``read_deadline_protocol`` (the HTTP protocol the
server runs uvicorn with: deadlines on reading a request). Everything else in ``bot/`` is its inside.

``Bot`` and ``read_deadline_protocol`` are imported on first use, so importing the settings stays cheap on
the server's start path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.answer import Answer
from bot.config import Settings

if TYPE_CHECKING:
    from bot.app import Bot
    from bot.read_deadlines import read_deadline_protocol

__all__ = ["Answer", "Bot", "Settings", "read_deadline_protocol"]


def __getattr__(name: str) -> Any:
    if name == "Bot":
        from bot.app import Bot

        return Bot
    if name == "read_deadline_protocol":
        from bot.read_deadlines import read_deadline_protocol

        return read_deadline_protocol
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
