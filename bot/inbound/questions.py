"""Follow-up questions: a message that replies to a job's card (in its thread, or quoting it) asks about
that job's videos, and is answered from their kept transcripts with ``[mm:ss]`` citations.

Which job: Feishu gives a reply's ``parent_id`` (the message it answers or quotes) and ``root_id`` (the
first message of the chain). Either may be the job's card (its message id is recorded for the job) or
the message that started the job (the card is a reply to it, so it roots the card's thread).

The answer needs a model call of up to ``LLM_TIMEOUT_S``: it runs on this module's own worker threads,
never on the webhook's path and never in the outbox that sends the job cards. Who may ask, and for how
long, is ``pipeline.insight.qa.answer_question``'s call (the job's creator or chat, within
``INSIGHT_RETENTION_DAYS``); its answer, or why there is none, goes back as a reply card.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bot.cards.primitives import Card, make_card, markdown, plain
from bot.inbound.events import IncomingMessage
from bot.inbound.intake import CardReplier
from bot.keys import job_key_for_message, reply_uuid
from bot.outbox import Outbox
from pipeline.jobs import Job, JobStore
from pipeline.logs import log_context
from pipeline.models import UserText

if TYPE_CHECKING:
    from pipeline.config import PipelineSettings

log = logging.getLogger(__name__)

_MENTION_KEY = re.compile(r"@_user_\d+|@_all")  # the placeholders Feishu writes for @-mentions
# A card's plain_text is shown whole; the answer is capped well below the 30 KB card limit.
MAX_ANSWER_CHARS = 6000
MAX_QUOTED_QUESTION_CHARS = 300


class FollowUps:
    def __init__(self, *, settings: PipelineSettings, store: JobStore, replier: CardReplier, workers: Outbox) -> None:
        self._settings = settings
        self._store = store
        self._replier = replier
        self._workers = workers

    def job_for(self, message: IncomingMessage) -> Job | None:
        """The job whose card (or starting message) ``message`` replies to with a question; None for
        anything else, and always None with insight off (such replies are handled as before)."""
        if not self._settings.insight_enabled or not (message.parent_id or message.root_id):
            return None
        if not question_text(message):
            return None  # a bare @-mention asks nothing (in a group it asks to analyse what it replies to)
        for message_id in dict.fromkeys(m for m in (message.parent_id, message.root_id) if m):
            job = self._store.find_by_card_message(message_id) or self._store.find_by_key(
                job_key_for_message(message_id)
            )
            if job is not None:
                return job
        return None

    def ask(self, message: IncomingMessage, job: Job) -> None:
        """Answer on a worker thread; returns at once."""
        question = question_text(message)
        job_id = job.id

        def answer() -> None:
            with log_context(job_id=job_id):
                card = self._answer_card(message, job_id, question)
                self._replier.reply_card(message.message_id, card, uuid=reply_uuid(message.message_id))

        self._workers.submit(answer, name="reply:question")

    def _answer_card(self, message: IncomingMessage, job_id: str, question: str) -> Card:
        # Imported here: the model client (openai) stays out of the webhook's start-up.
        from pipeline.insight.qa import answer_question
        from pipeline.insight.store import InsightStore

        store = InsightStore(self._settings.data_dir, self._settings.insight_retention_days)
        result = answer_question(
            self._settings,
            store,
            job_id,
            question,
            user_id=message.sender_open_id,
            chat_id=message.chat_id,
        )
        log.info("question answered: %s, %d citation(s)", result.status, len(result.citations))
        return answer_card(question, result.text, answered=result.answered)


def answer_card(question: str, answer: str, *, answered: bool) -> Card:
    """The reply to a question: the question quoted, then the answer (plain text: it quotes videos)."""
    elements: list[dict[str, Any]] = []
    if question:
        shown = question if len(question) <= MAX_QUOTED_QUESTION_CHARS else question[:MAX_QUOTED_QUESTION_CHARS] + "…"
        elements += [markdown("**问题 / Question**"), plain(shown)]
    text = answer if len(answer) <= MAX_ANSWER_CHARS else answer[: MAX_ANSWER_CHARS - 1] + "…"
    elements += [markdown("**回答 / Answer**"), plain(text)]
    if answered:
        elements.append(markdown("时间点 [mm:ss] 指视频中的位置。\nTimes such as [mm:ss] point into the videos."))
    title = UserText(zh="视频问答", en="Question about the videos")
    return make_card(title, "blue" if answered else "grey", elements)


def question_text(message: IncomingMessage) -> str:
    """What was asked: the text of a text or rich-text message, without @mentions."""
    try:
        content = json.loads(message.content) if message.content else {}
    except ValueError:
        return ""
    if not isinstance(content, dict):
        return ""
    if message.message_type == "text":
        text = str(content.get("text", ""))
    elif message.message_type == "post":
        text = " ".join(_post_texts(content))
    else:
        return ""
    for mention in message.mentions:
        if mention.key:
            text = text.replace(mention.key, " ")
    return " ".join(_MENTION_KEY.sub(" ", text).split())


def _post_texts(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _post_texts(item)
    elif isinstance(node, Mapping):
        if node.get("tag") in ("text", "a") and isinstance(node.get("text"), str):
            yield node["text"]
        for key in ("title", "content"):
            value = node.get(key)
            if key == "title" and isinstance(value, str):
                yield value
            elif key == "content":
                yield from _post_texts(value)
        for value in node.values():  # a post nested under a locale ({"zh_cn": {...}})
            if isinstance(value, Mapping) and "content" in value:
                yield from _post_texts(value)
