"""One video's insight from a transcript, against the fake model: times checked against the transcript,
presets, the capped analysis request, long transcripts in chunks, failures kept as reasons."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.errors import InvalidOptionsError
from pipeline.insight.fields import card_gist, insight_fields, overview_text
from pipeline.insight.presets import MAX_REQUEST_CHARS, resolve_preset
from pipeline.insight.runner import InsightRun
from pipeline.models import AnalysisOptions
from tests.support.fake_openai import FakeOpenAI, Fault
from tests.support.insight_support import insight_settings, spoken

LINES = [
    (0.4, "Welcome to the planning meeting."),
    (3.2, "Today we review the budget."),
    (7.9, "Alice will send the roadmap by Friday."),
]


def test_summary_chapters_and_points_come_from_the_model_with_real_times(
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    # The fake answers chapters at its transcript lines, plus these: one near a sentence, one past the end.
    fake_model.extra_chapters = [
        {"start": "00:03", "title": "Near the budget", "summary": ""},
        {"start": "09:59", "title": "Past the end", "summary": ""},
        {"start": 7.5, "title": "Snapped", "summary": ""},
    ]
    run = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions())
    insight = run.video(spoken(LINES, duration_s=10.0))
    assert insight.summary.startswith("FAKE-SUMMARY of 3 lines starting 00:00")
    starts = [c.start_s for c in insight.chapters]
    assert starts == [0.4, 3.2, 7.9]  # every start is a real sentence start; 09:59 dropped
    assert "Past the end" not in [c.title for c in insight.chapters]
    assert any("outside the video" in n.en for n in insight.notes)
    assert [k.time_s for k in insight.key_points] == [0.4]
    assert insight.models == ["text-model"] and insight.usage.calls == 1 and insight.usage.total_tokens > 0
    assert insight.problems == []


def test_a_transcript_of_one_word(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    run = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions())
    insight = run.video(spoken([(1.0, "Hello.")], duration_s=2.0))
    assert insight.summary.startswith("FAKE-SUMMARY of 1 lines")
    assert [(c.start_s, c.title) for c in insight.chapters] == [(1.0, "FAKE-CHAPTER Hello.")]


def test_meeting_preset_gives_decisions_and_owners(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    run = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions(preset="lecture"))
    insight = run.video(spoken(LINES, duration_s=10.0))
    assert insight.preset == "meeting"
    assert insight.analysis is not None
    assert insight.analysis.fields["action_items"][0]["owner"] == "Alice"
    assert "决定 Decision: FAKE-DECISION" in insight.analysis.lines
    assert '"decisions"' in fake_model.requests[0].system


def test_ad_preset_and_a_free_form_request_in_its_own_field(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    options = AnalysisOptions(preset="ad", analysis_request="Who is this ad for?")
    insight = InsightRun(insight_settings(tmp_path, fake_model.base_url), options).video(spoken(LINES, 10.0))
    assert insight.analysis is not None and insight.analysis.fields["hook"] == "FAKE-HOOK"
    assert insight.request == "Who is this ad for?"
    assert insight.request_answer == "FAKE-REQUEST-ANSWER (19 chars)"
    fields = insight_fields(insight)
    assert "开头钩子 Hook: FAKE-HOOK" in fields.analysis and fields.request_answer.startswith("FAKE-REQUEST")


def test_an_analysis_request_of_10000_characters_is_capped_with_a_note(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    options = AnalysisOptions(analysis_request="x" * 10_000)
    insight = InsightRun(insight_settings(tmp_path, fake_model.base_url), options).video(spoken(LINES, 10.0))
    assert len(insight.request) == MAX_REQUEST_CHARS
    assert insight.request_answer == f"FAKE-REQUEST-ANSWER ({MAX_REQUEST_CHARS} chars)"
    assert any("10000" in n.en and "2000" in n.en for n in insight.notes)
    assert "x" * 2001 not in fake_model.requests[0].user


def test_a_preset_that_does_not_exist(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    with pytest.raises(InvalidOptionsError) as caught:
        resolve_preset("poetry")
    assert "poetry" in caught.value.user_message.en and "general" in caught.value.user_message.en
    assert "模板" in caught.value.user_message.zh
    # A stored job carrying one still gets the general analysis, with the reason noted.
    run = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions(preset="poetry"))
    insight = run.video(spoken(LINES, 10.0))
    assert insight.preset == "general" and insight.summary
    assert any("poetry" in n.en for n in insight.notes)


def test_a_failing_model_leaves_a_reason_not_an_exception(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.always = Fault.status_code(500)
    insight = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions()).video(spoken(LINES, 10.0))
    assert not insight.has_content
    assert insight.missing_reason is not None and "500" in insight.missing_reason.en
    assert "模型服务出错" in insight_fields(insight).reason


def test_invalid_json_twice_keeps_the_raw_text_as_the_summary_cell(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults += [Fault("invalid_json"), Fault("invalid_json")]
    insight = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions()).video(spoken(LINES, 10.0))
    assert "it is about a meeting" in insight.raw_text
    assert insight.problems[0].code == "invalid_json"
    assert "it is about a meeting" in insight_fields(insight).summary


def two_hour_talk() -> list[tuple[float, str]]:
    """A sentence every 4 s for two hours, each naming its own minute so the times can be checked."""
    return [(i * 4.0, f"In minute {int(i * 4 // 60)} we discuss topic number {i}.") for i in range(1800)]


def test_a_two_hour_transcript_is_summarised_in_chunks_with_true_times(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    settings = insight_settings(tmp_path, fake_model.base_url, llm_chunk_chars=20_000)
    insight = InsightRun(settings, AnalysisOptions()).video(spoken(two_hour_talk(), duration_s=7200.0))
    texts = fake_model.of_kind("text")
    maps, reduce = texts[:-1], texts[-1]
    assert len(maps) >= 3
    assert all(len(r.user) < 25_000 for r in maps)
    assert "analyses of its parts" in reduce.user
    # The reduce kept the chunk chapters' times, which point at real sentences across the whole talk.
    starts = [c.start_s for c in insight.chapters]
    assert starts[0] == 0.0 and starts[-1] > 3600
    assert all(s % 4.0 == 0 for s in starts)
    assert all(c.title.startswith("MERGED") for c in insight.chapters)
    assert insight.usage.calls == len(texts)
    assert not any("budget" in n.en for n in insight.notes)


def test_a_transcript_beyond_the_token_budget_is_thinned_evenly(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    settings = insight_settings(tmp_path, fake_model.base_url, llm_chunk_chars=20_000, llm_tokens_per_video=15_000)
    insight = InsightRun(settings, AnalysisOptions()).video(spoken(two_hour_talk(), duration_s=7200.0))
    assert insight.summary and any("token budget" in n.en for n in insight.notes)
    assert insight.usage.total_tokens <= 15_000
    # Still the whole talk, not its first part: the sentences sent reach into the last ten minutes.
    sent = fake_model.of_kind("text")[0].user
    assert "[0:00:00]" in sent or "[00:00]" in sent
    assert "[1:5" in sent


def test_the_job_budget_is_shared_by_its_videos(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    settings = insight_settings(tmp_path, fake_model.base_url, llm_tokens_per_job=3000)
    run = InsightRun(settings, AnalysisOptions())
    first = run.video(spoken(LINES, 10.0))
    later = [run.video(spoken(LINES, 10.0)) for _ in range(3)]
    assert first.summary
    assert any(p.code == "token_budget" for v in later for p in v.problems)
    assert "LLM_TOKENS_PER_JOB" in str(later[-1].missing_reason)


def test_an_ad_batch_overview_puts_hooks_and_selling_points_side_by_side(
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    run = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions(preset="ad"))
    videos = [dataclasses.replace(spoken(LINES, 10.0, f"ad-{i}.mp4"), index=i) for i in range(2)]
    for video in videos:
        video.insight = run.video(video)
    overview = run.overview(videos)
    assert overview is not None and overview.shared == "FAKE-OVERVIEW shared"
    assert [(r.video, r.hook, r.selling_points) for r in overview.rows] == [
        (1, "FAKE-HOOK", ("FAKE-SP1", "FAKE-SP2")),
        (2, "FAKE-HOOK", ("FAKE-SP1", "FAKE-SP2")),
    ]
    text = overview_text(overview)
    assert "#2 ad-1.mp4: 钩子 Hook: FAKE-HOOK; 卖点 Selling points: FAKE-SP1; FAKE-SP2" in text
    (request,) = fake_model.of_kind("overview")
    assert "Video 1: ad-0.mp4" in request.user and "Hook: FAKE-HOOK" in request.user
    gist = card_gist(videos, max_chars=300)
    assert [(n, name) for n, name, _text in gist] == [(1, "ad-0.mp4"), (2, "ad-1.mp4")]
    assert all(text.startswith("FAKE-SUMMARY") and len(text) <= 200 for _n, _name, text in gist)


def test_a_single_video_card_gist_carries_its_chapters(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    video = spoken(LINES, 10.0)
    video.insight = InsightRun(insight_settings(tmp_path, fake_model.base_url), AnalysisOptions()).video(video)
    ((_number, _name, text),) = card_gist([video])
    assert text.startswith("FAKE-SUMMARY") and "[00:00] FAKE-CHAPTER" in text
