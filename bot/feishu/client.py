"""``FeishuClient``: the one object the bot talks to the Feishu Open Platform through, put together
from one part per API family over a shared transport (retries, token repair, error mapping)."""

from __future__ import annotations

from bot.feishu.bitable import Bitable
from bot.feishu.drive import Drive
from bot.feishu.files import Files
from bot.feishu.messages import Messages
from bot.feishu.wiki import Wiki


class FeishuClient(Messages, Files, Bitable, Drive, Wiki):
    """Synchronous and thread-safe (the SDK client holds no per-call state; the token cache is shared).

    ``sleep`` and ``clock`` are injectable so tests can observe waits without spending them."""
