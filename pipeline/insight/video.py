"""One video's insight: the text analysis (summary, chapters, key points, preset fields, the analysis
request) and the visual read, asked at the same time so a video costs about one call's latency.

Transcripts longer than ``LLM_CHUNK_CHARS`` are analysed in chunks at once (map) and merged in one
more call (reduce); the times stay true because every line carries its own. When even that would pass
the token budget, every k-th sentence is kept (evenly over the video) and a note says so.
Nothing here raises for a model's failure: it lands in ``VideoInsight.problems``.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import ValidationError

from pipeline.config import PipelineSettings
from pipeline.insight import prompts
from pipeline.insight.client import InsightError, InvalidAnswer, ModelClient, TokenBudget, estimate_tokens, problem
from pipeline.insight.models import FrameNote, InsightProblem, PresetAnalysis, Usage, VideoInsight, VisualRead, clock
from pipeline.insight.presets import Preset
from pipeline.insight.schemas import TextAnswer, VisualAnswer
from pipeline.insight.timeline import (
    Snapper,
    chunk_segments,
    speech_at,
    spoken_segments,
    thin,
    timed_lines,
)
from pipeline.models import Screenshot, Segment, UserText, VideoResult

log = logging.getLogger(__name__)

# Tokens kept aside per call for the instructions and the answer's JSON wrapping.
_CALL_OVERHEAD_TOKENS = 600

NO_TRANSCRIPT_NOTE = UserText(
    zh="没有文字稿，摘要和章节无法生成。",
    en="There is no transcript, so there is no summary or chapters.",
)
THINNED_NOTE = UserText(
    zh="文字稿超出 token 预算，摘要只用了均匀抽取的部分句子。",
    en="The transcript exceeds the token budget: the summary used an even sample of its sentences.",
)
DROPPED_TIMES_NOTE = UserText(
    zh="模型给出的部分时间超出了视频长度，已忽略。",
    en="Some times the model gave lie outside the video and were left out.",
)


@dataclass(frozen=True)
class VideoRequest:
    """What one video's insight is asked for."""

    preset: Preset
    request: str = ""


def analyse_video(
    client: ModelClient,
    settings: PipelineSettings,
    video: VideoResult,
    ask: VideoRequest,
    job_budget: TokenBudget,
) -> VideoInsight:
    insight = VideoInsight(preset=ask.preset.name, request=ask.request)
    budget = TokenBudget(settings.llm_tokens_per_video, parent=job_budget)
    transcript = video.transcript
    segments = spoken_segments(transcript.segments) if transcript else []
    language = transcript.language if transcript else ""
    duration = video.media.duration_s if video.media else 0.0
    want_visual = bool(settings.vlm_model and video.screenshots)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="insight") as pool:
        text_job = pool.submit(_text_part, client, settings, video.title, segments, language, ask, budget)
        visual_job = (
            pool.submit(_visual_part, client, settings, video.screenshots, segments, language, budget)
            if want_visual
            else None
        )
        if segments:
            _take_text(insight, text_job.result(), segments, duration, ask.preset)
        else:
            insight.notes.append(NO_TRANSCRIPT_NOTE)
        if visual_job is not None:
            visual, usage, visual_problem = visual_job.result()
            insight.usage.add(usage)
            if visual is not None:
                insight.visual = visual
                insight.models.append(settings.vlm_model)
                if not insight.summary and not segments:
                    insight.summary = visual.overall
            if visual_problem is not None:
                insight.problems.append(visual_problem)
    if segments:
        insight.models.insert(0, settings.llm_model)
    return insight


# ------------------------------------------------------------------------------------------- text


@dataclass
class _TextOutcome:
    answer: TextAnswer | None
    usage: Usage
    problems: list[InsightProblem]
    raw_text: str = ""
    thinned: bool = False


def _text_part(
    client: ModelClient,
    settings: PipelineSettings,
    title: str,
    segments: list[Segment],
    language: str,
    ask: VideoRequest,
    budget: TokenBudget,
) -> _TextOutcome:
    outcome = _TextOutcome(None, Usage(), [])
    if not segments:
        return outcome
    chunk_chars = settings.llm_chunk_chars
    per_call = settings.llm_max_output_tokens + _CALL_OVERHEAD_TOKENS
    sent = segments
    while True:
        chunks = chunk_segments(sent, chunk_chars)
        calls = len(chunks) + (1 if len(chunks) > 1 else 0)
        need = estimate_tokens("\n".join(timed_lines(sent))) + calls * per_call
        if need <= budget.left or len(sent) <= 1:
            break
        fewer = thin(sent, max(200, int(sum(len(x) + 1 for x in timed_lines(sent)) * 0.7)))
        if len(fewer) >= len(sent):  # as short as it gets: the call itself reports the budget
            break
        outcome.thinned, sent = True, fewer
    try:
        if len(chunks) == 1:
            system = prompts.text_system(language, ask.preset, ask.request)
            answer, usage = client.ask(
                TextAnswer, system, prompts.text_user(timed_lines(chunks[0]), ask.request, title), budget=budget
            )
            outcome.usage.add(usage)
            outcome.answer = answer
            return outcome
        outcome.answer = _map_reduce(client, settings, title, chunks, language, ask, budget, outcome)
    except InvalidAnswer as exc:
        outcome.problems.append(exc.problem)
        outcome.raw_text = exc.raw_text
    except InsightError as exc:
        outcome.problems.append(exc.problem)
    return outcome


def _map_reduce(
    client: ModelClient,
    settings: PipelineSettings,
    title: str,
    chunks: list[list[Segment]],
    language: str,
    ask: VideoRequest,
    budget: TokenBudget,
    outcome: _TextOutcome,
) -> TextAnswer:
    system = prompts.text_system(language, ask.preset, ask.request, partial=True)

    def one(chunk: list[Segment]) -> tuple[TextAnswer, Usage]:
        return client.ask(TextAnswer, system, prompts.text_user(timed_lines(chunk), "", title), budget=budget)

    with ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="insight-map") as pool:
        futures = [pool.submit(one, chunk) for chunk in chunks]
        parts: list[str] = []
        for number, (chunk, future) in enumerate(zip(chunks, futures, strict=True), start=1):
            try:
                answer, usage = future.result()
            except InsightError as exc:  # one lost part costs that part, not the video
                outcome.problems.append(exc.problem)
                continue
            outcome.usage.add(usage)
            lines = [f"Part {number} ({timed_lines(chunk[:1])[0][:7]} - {timed_lines(chunk[-1:])[0][:7]}):"]
            lines.append(f"Summary: {answer.summary}")
            lines += [f"Chapter [{c.start}] {c.title}: {c.summary}" for c in answer.chapters]
            lines += [f"Key point [{k.time}] {k.text}" for k in answer.key_points]
            parts.append("\n".join(lines))
    if not parts:
        raise InsightError(outcome.problems[0])
    merged, usage = client.ask(
        TextAnswer,
        prompts.text_system(language, ask.preset, ask.request),
        prompts.reduce_user(parts, ask.request, title),
        budget=budget,
    )
    outcome.usage.add(usage)
    return merged


def _take_text(
    insight: VideoInsight, outcome: _TextOutcome, segments: list[Segment], duration: float, preset: Preset
) -> None:
    insight.usage.add(outcome.usage)
    insight.problems.extend(outcome.problems)
    insight.raw_text = outcome.raw_text
    if outcome.thinned:
        insight.notes.append(THINNED_NOTE)
    answer = outcome.answer
    if answer is None:
        return
    snapper = Snapper(segments, duration)
    insight.summary = answer.summary.strip()
    insight.chapters = snapper.chapters([(c.start, c.title, c.summary) for c in answer.chapters])
    insight.key_points = snapper.key_points([(k.time, k.text) for k in answer.key_points])
    if snapper.dropped:
        insight.notes.append(DROPPED_TIMES_NOTE)
    insight.request_answer = answer.request_answer.strip() if insight.request else ""
    if preset.schema is not None and preset.render is not None and answer.extra:
        try:
            fields = preset.schema.model_validate(answer.extra).model_dump()
            insight.analysis = PresetAnalysis(preset.name, fields, tuple(preset.render(fields)))
        except ValidationError as exc:
            insight.problems.append(
                problem(
                    "invalid_preset_fields",
                    f"模型给出的“{preset.label.zh}”字段格式不对，已省略。",
                    f"The model's {preset.label.en} fields were malformed and were left out.",
                    str(exc).splitlines()[0],
                )
            )


# ----------------------------------------------------------------------------------------- visual


def pick_screenshots(shots: Sequence[Screenshot], limit: int) -> list[Screenshot]:
    """Up to ``limit`` screenshots spread evenly over the video, in time order."""
    ordered = sorted(shots, key=lambda s: s.time_s)
    if len(ordered) <= limit:
        return ordered
    step = len(ordered) / limit
    return [ordered[int(i * step)] for i in range(limit)]


def image_data_url(shot: Screenshot, max_px: int) -> str:
    """The screenshot shrunk so its longest side is ``max_px``, as a JPEG data URL."""
    with Image.open(shot.path) as image:
        picture = image.convert("RGB")
    picture.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _visual_part(
    client: ModelClient,
    settings: PipelineSettings,
    screenshots: Sequence[Screenshot],
    segments: list[Segment],
    language: str,
    budget: TokenBudget,
) -> tuple[VisualRead | None, Usage, InsightProblem | None]:
    chosen = pick_screenshots(screenshots, settings.vlm_max_screenshots)
    content: list[dict[str, Any]] = [{"type": "text", "text": f"{len(chosen)} screenshots of the video:"}]
    usable: list[tuple[Screenshot, str]] = []
    for shot in chosen:
        try:
            url = image_data_url(shot, settings.vlm_image_max_px)
        except OSError as exc:
            log.warning("screenshot %s not sent to the vision model: %s", shot.path.name, exc)
            continue
        said = speech_at(segments, shot.time_s)
        usable.append((shot, said))
        content.append(
            {"type": "text", "text": f"Screenshot {len(usable)} at [{clock(shot.time_s)}]; being said: {said or '-'}"}
        )
        content.append({"type": "image_url", "image_url": {"url": url}})
    if not usable:
        return None, Usage(), None
    try:
        answer, usage = client.ask(
            VisualAnswer, prompts.visual_system(language), content, model=settings.vlm_model, budget=budget
        )
    except InvalidAnswer as exc:
        return VisualRead(exc.raw_text, (), settings.vlm_model), Usage(), exc.problem
    except InsightError as exc:
        return None, Usage(), exc.problem
    notes = []
    for frame in answer.frames:
        if 1 <= frame.index <= len(usable):
            shot, said = usable[frame.index - 1]
            notes.append(FrameNote(shot.time_s, shot.path.name, frame.description, frame.on_screen_text, said))
    return VisualRead(answer.overall.strip(), tuple(notes), settings.vlm_model), usage, None
