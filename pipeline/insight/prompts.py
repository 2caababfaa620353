"""The words sent to the model. Kept together so what leaves the machine is easy to review."""

from __future__ import annotations

from pipeline.insight.presets import Preset

_TEXT_SHAPE = (
    '{"summary": "a few sentences", "chapters": [{"start": "mm:ss", "title": "...", "summary": "one line"}], '
    '"key_points": [{"time": "mm:ss", "text": "..."}], "extra": {}, "request_answer": ""}'
)


def _language(language: str) -> str:
    return (
        f"Write in the language of the transcript ({language or 'as spoken'}) unless the user's analysis "
        "request asks for another language."
    )


def text_system(language: str, preset: Preset, request: str, *, partial: bool = False) -> str:
    parts = [
        "You analyse a video from its transcript. Each transcript line is `[mm:ss] sentence`, timed from "
        "the start of the video. Ground every statement in the transcript; do not invent.",
        f"Answer with only one JSON object shaped like {_TEXT_SHAPE}.",
        "Chapter starts and key point times must be times of transcript lines. 3-10 chapters for a long "
        "video, fewer for a short one; 3-8 key points.",
        _language(language),
    ]
    if partial:
        parts.append("This is one part of a longer transcript: cover only this part; leave extra empty.")
    else:
        if preset.instructions:
            parts.append(preset.instructions)
        if request:
            parts.append('The user has an analysis request; answer it in "request_answer".')
    return "\n".join(parts)


def text_user(lines: list[str], request: str, title: str) -> str:
    head = f"Video: {title}\n\nTranscript:\n" + "\n".join(lines)
    if request:
        head += f"\n\nAnalysis request from the user:\n{request}"
    return head


def reduce_user(parts: list[str], request: str, title: str) -> str:
    head = (
        f"Video: {title}\n\nThe transcript was too long for one call; below are the analyses of its parts in "
        "order, with their times (still from the start of the video). Merge them into one analysis of "
        "the whole video: one summary, chapters and key points keeping the given times.\n\n" + "\n\n".join(parts)
    )
    if request:
        head += f"\n\nAnalysis request from the user:\n{request}"
    return head


def visual_system(language: str) -> str:
    return (
        "You describe screenshots of a video. For each numbered screenshot say what is on screen (text on "
        "slides, products, people, the scene), related to what is being said at that moment, and give one "
        "overall description of what the video shows. Answer with only one JSON object shaped like "
        '{"overall": "...", "frames": [{"index": 1, "description": "...", "on_screen_text": "..."}]}. '
        + _language(language)
    )


def overview_system(language: str) -> str:
    return (
        "You compare several videos from their summaries. Say what they share and how they differ. Answer "
        'with only one JSON object shaped like {"shared": "...", "differences": "..."}. ' + _language(language)
    )


QA_SYSTEM = (
    "You answer a question about one or more videos using only their transcripts and visual notes below. "
    "Lines are `[mm:ss] text` per video. Cite the times you rely on like [03:12] in the answer. If the "
    "videos do not contain the answer, say so and set found to false. Answer in the language of the "
    'question, with only one JSON object shaped like {"answer": "...", "found": true, '
    '"citations": [{"video": 1, "time": "mm:ss"}]}.'
)
