"""What delivery does with a job's insight besides its rows: the words its done card shows, and the
transcripts kept for follow-up questions. The insight modules are imported only when insight is on."""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from bot.job.record import InsightSummary
from pipeline.models import BatchResult

if TYPE_CHECKING:
    from pipeline.config import PipelineSettings
    from pipeline.jobs import Job

log = logging.getLogger(__name__)

# How much of the videos' summaries the done card carries (Chinese takes 3 bytes a character; the card
# body is limited to 30 KB, which the rest of the card shares, and the card shrinks them further to fit).
CARD_GIST_MAX_CHARS = 6000
CARD_OVERVIEW_MAX_CHARS = 1500


def overview_of(batch: BatchResult) -> str:
    """The batch's overview as text (the overview row of the table); "" when there is none."""
    if batch.overview is None:
        return ""
    from pipeline.insight.fields import overview_text

    return overview_text(batch.overview)


def insight_summary(batch: BatchResult, overview: str) -> InsightSummary:
    """What the done card shows of the insight (stored with the job's result)."""
    if not batch.insight_enabled:
        return InsightSummary(enabled=False)
    from pipeline.insight.fields import card_gist

    gist = tuple(card_gist(batch.videos, max_chars=CARD_GIST_MAX_CHARS))
    cut = overview if len(overview) <= CARD_OVERVIEW_MAX_CHARS else overview[: CARD_OVERVIEW_MAX_CHARS - 1] + "…"
    return InsightSummary(enabled=True, gist=gist, overview=cut)


def keep_for_questions(settings: PipelineSettings, job: Job, batch: BatchResult) -> bool:
    """Keep the job's transcripts for follow-up questions (``INSIGHT_RETENTION_DAYS``, only with insight
    on, only for the job's creator and chat). A failure here costs the questions, never the job."""
    if not batch.insight_enabled:
        return False
    from pipeline.insight.store import InsightStore

    try:
        store = InsightStore(settings.data_dir, settings.insight_retention_days)
        return store.save(job.id, job.spec.creator_id, job.spec.chat_id, batch)
    except (sqlite3.Error, OSError, ValueError) as exc:
        log.warning("transcripts not kept for questions: %s: %s", type(exc).__name__, exc)
        return False
