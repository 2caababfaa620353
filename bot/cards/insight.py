"""The insight part of a done card: each video's gist (its summary; the chapters too for a one-video job)
and the batch's overview, or the line that says insight is off and how to turn it on.

What the model wrote goes into ``plain_text`` only (never markdown: it quotes what videos say)."""

from __future__ import annotations

from typing import Any

from bot.cards.primitives import markdown, plain
from bot.job.record import InsightSummary
from pipeline.insight.models import INSIGHT_OFF_NOTE

# Characters of summaries a card shows at most (Chinese takes 3 bytes each, against the 30 KB body
# limit); ``fit`` shrinks the card by lowering ``shown``, which shrinks this share: all at FULL_AT.
GIST_CHARS = 6000
OVERVIEW_CHARS = 1500
FULL_AT = 10
MIN_CHARS = 80


def _cut(text: str, limit: int) -> str:
    """``text`` to at most ``limit`` characters, keeping its line breaks (chapters are one a line)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def insight_block(summary: InsightSummary | None, shown: int) -> list[dict[str, Any]]:
    if summary is None:
        return []
    if not summary.enabled:
        return [plain(f"ℹ️ {INSIGHT_OFF_NOTE.zh}\n{INSIGHT_OFF_NOTE.en}")]
    share = min(1.0, shown / FULL_AT)
    elements: list[dict[str, Any]] = []
    if summary.gist:
        elements.append(markdown("**内容摘要 / What the videos say**"))
        limit = max(MIN_CHARS, int(GIST_CHARS * share) // len(summary.gist))
        for number, name, text in summary.gist:
            elements.append(plain(f"#{number} {_cut(name, 120)}\n{_cut(text, limit)}"))
    if summary.overview:
        limit = max(MIN_CHARS, int(OVERVIEW_CHARS * share))
        elements += [markdown("**总览 / Overview**"), plain(_cut(summary.overview, limit))]
    return elements
