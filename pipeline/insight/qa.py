"""Follow-up questions about a job's videos, answered from the stored transcripts (and visual notes)
with ``[mm:ss]`` citations checked against the transcripts.

``answer_question`` never raises for a model's failure or a refused asker: the ``QAResult`` carries
the words for the user in every case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.config import PipelineSettings
from pipeline.insight.client import InsightError, ModelClient, TokenBudget
from pipeline.insight.models import Usage, clock
from pipeline.insight.prompts import QA_SYSTEM
from pipeline.insight.schemas import QAAnswer
from pipeline.insight.store import InsightStore, StoredJob, StoredVideo
from pipeline.insight.timeline import parse_time
from pipeline.models import UserText

MAX_QUESTION_CHARS = 1000
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Citation:
    video: int  # 1-based
    time_s: float

    @property
    def label(self) -> str:
        return f"[{clock(self.time_s)}]"


@dataclass
class QAResult:
    """``status``: answered | not_found | denied | expired | off | failed. ``text`` is what to post."""

    status: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def answered(self) -> bool:
        return self.status in ("answered", "not_found")


DENIED = UserText(
    zh="只有发起这个任务的人或任务所在群的成员可以追问这些视频。",
    en="Only the person who started this job, or members of its chat, can ask about these videos.",
)
EXPIRED = UserText(
    zh="这个任务的文字稿已过保留期被删除（INSIGHT_RETENTION_DAYS），无法再追问。请重新提交视频。",
    en="This job's transcripts were deleted after the retention period (INSIGHT_RETENTION_DAYS), so it "
    "cannot be asked about any more. Send the videos again.",
)
OFF = UserText(
    zh="AI 问答未开启：管理员设置 LLM_BASE_URL 和 LLM_MODEL 后即可追问。",
    en="Questions are off: an administrator sets LLM_BASE_URL and LLM_MODEL to turn them on.",
)
NOT_FOUND = UserText(zh="视频里没有提到这个问题的答案。", en="The videos do not answer this question.")


def answer_question(
    settings: PipelineSettings,
    store: InsightStore,
    job_id: str,
    question: str,
    *,
    user_id: str,
    chat_id: str,
    client: ModelClient | None = None,
) -> QAResult:
    if not settings.insight_enabled:
        return QAResult("off", str(OFF))
    job = store.load(job_id)
    if job is None:
        return QAResult("expired", str(EXPIRED))
    if not job.allows(user_id, chat_id):
        return QAResult("denied", str(DENIED))
    question = " ".join(question.split())[:MAX_QUESTION_CHARS]
    context = build_context(job, question, settings.llm_chunk_chars)
    own_client = client is None
    client = client or ModelClient(settings)
    budget = TokenBudget(settings.llm_tokens_per_video)
    try:
        answer, usage = client.ask(QAAnswer, QA_SYSTEM, f"{context}\n\nQuestion: {question}", budget=budget)
    except InsightError as exc:
        return QAResult("failed", str(exc.problem.message))
    finally:
        if own_client:
            client.close()
    citations = _checked(job, answer)
    if not answer.found:
        text = answer.answer.strip() or str(NOT_FOUND)
        return QAResult("not_found", f"{text}\n({NOT_FOUND})", [], usage)
    text = answer.answer.strip()
    missing = [c for c in citations if c.label not in text]
    if missing:  # the model listed times it did not write out: show them so the answer stays checkable
        text += " " + " ".join(_cite(job, c) for c in missing)
    return QAResult("answered", text, citations, usage)


def build_context(job: StoredJob, question: str, max_chars: int) -> str:
    """Every video's ``[mm:ss]`` lines; when too long, the sentences sharing most words with the question
    (in time order), so the answer can still be found in a long talk."""
    blocks = {v.number: _lines(v) for v in job.videos}
    total = sum(len(line) + 1 for lines in blocks.values() for line in lines)
    if total > max_chars:
        words = {w.lower() for w in _WORD.findall(question) if len(w) > 1}
        scored = [
            (sum(1 for w in _WORD.findall(line.lower()) if w in words), number, i)
            for number, lines in blocks.items()
            for i, line in enumerate(lines)
        ]
        scored.sort(key=lambda item: -item[0])
        keep: set[tuple[int, int]] = set()
        size = 0
        for _score, number, i in scored:
            line = blocks[number][i]
            if size + len(line) + 1 > max_chars:
                break
            keep.add((number, i))
            size += len(line) + 1
        blocks = {n: [line for i, line in enumerate(lines) if (n, i) in keep] for n, lines in blocks.items()}
    parts = []
    for video in job.videos:
        parts.append(f"Video {video.number}: {video.name}")
        if video.summary:
            parts.append(f"Summary: {video.summary}")
        parts.extend(blocks[video.number])
    return "\n".join(parts)


def _lines(video: StoredVideo) -> list[str]:
    lines = [(start, f"[{clock(start)}] {text}") for start, _end, text in video.segments if text]
    lines += [(time_s, f"[{clock(time_s)}] (on screen) {text}") for time_s, text in video.visual if text]
    return [line for _t, line in sorted(lines, key=lambda item: item[0])]


def _checked(job: StoredJob, answer: QAAnswer) -> list[Citation]:
    """The model's citations that point inside a real video, in order, without duplicates."""
    videos = {v.number: v for v in job.videos}
    seen: list[Citation] = []
    for raw in answer.citations:
        video = videos.get(raw.video)
        time_s = parse_time(raw.time)
        if video is None or time_s is None or time_s < 0 or (video.duration_s and time_s > video.duration_s + 0.5):
            continue
        citation = Citation(video.number, time_s)
        if citation not in seen:
            seen.append(citation)
    return seen


def _cite(job: StoredJob, citation: Citation) -> str:
    prefix = f"#{citation.video} " if len(job.videos) > 1 else ""
    return f"{prefix}{citation.label}"
