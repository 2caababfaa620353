"""Follow-up questions: answered from the stored transcripts with checked citations, refused for people
outside the job's chat, gone after the retention period."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pipeline.insight.qa import answer_question
from pipeline.insight.store import InsightStore
from pipeline.models import BatchResult
from tests.support.fake_openai import FakeOpenAI, Fault
from tests.support.insight_support import insight_settings, spoken

PLANNING = [(0.4, "Welcome to the planning meeting."), (192.0, "The budget grows by ten percent next year.")]
LAUNCH = [(1.0, "Our product launches in March."), (30.0, "Pricing starts at nine dollars.")]


def stored_job(tmp_path: Path, retention_days: float = 7.0, now: float | None = None) -> InsightStore:
    store = InsightStore(tmp_path / "data", retention_days)
    videos = [spoken(PLANNING, 300.0, "planning.mp4"), dataclasses.replace(spoken(LAUNCH, 60.0, "launch.mp4"), index=1)]
    batch = BatchResult(videos=videos, out_dir=tmp_path, started_at=0.0, finished_at=1.0)
    store.save("job-1", "ou_creator", "oc_team", batch, now=now)
    return store


def test_a_question_is_answered_with_a_citation(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    settings = insight_settings(tmp_path, fake_model.base_url)
    store = stored_job(tmp_path)
    result = answer_question(
        settings, store, "job-1", "How much does the budget grow?", user_id="ou_someone", chat_id="oc_team"
    )
    assert result.status == "answered"
    assert "[03:12]" in result.text and "ten percent" in result.text
    assert [(c.video, c.time_s) for c in result.citations] == [(1, 192.0)]
    (request,) = fake_model.of_kind("qa")
    assert "Video 2: launch.mp4" in request.user and "[00:30] Pricing starts at nine dollars." in request.user


def test_an_answer_not_in_the_videos_says_so(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    store = stored_job(tmp_path)
    settings = insight_settings(tmp_path, fake_model.base_url)
    result = answer_question(settings, store, "job-1", "Who won the football?", user_id="ou_creator", chat_id="")
    assert result.status == "not_found" and result.citations == []
    assert "视频里没有提到" in result.text and "do not answer" in result.text


def test_someone_outside_the_jobs_chat_is_refused(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    store = stored_job(tmp_path)
    settings = insight_settings(tmp_path, fake_model.base_url)
    result = answer_question(settings, store, "job-1", "What is the budget?", user_id="ou_other", chat_id="oc_other")
    assert result.status == "denied" and "只有" in result.text and "Only the person" in result.text
    assert fake_model.requests == []  # nothing of the job left the machine for them


def test_a_question_after_the_retention_period(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    eight_days_ago = time.time() - 8 * 86_400
    store = stored_job(tmp_path, retention_days=7, now=eight_days_ago)
    settings = insight_settings(tmp_path, fake_model.base_url)
    result = answer_question(settings, store, "job-1", "What is the budget?", user_id="ou_creator", chat_id="oc_team")
    assert result.status == "expired" and "INSIGHT_RETENTION_DAYS" in result.text
    assert store.load("job-1") is None
    assert fake_model.requests == []


def test_retention_zero_keeps_nothing(tmp_path: Path) -> None:
    store = stored_job(tmp_path, retention_days=0)
    assert store.load("job-1") is None
    assert not store.keeps_anything


def test_questions_are_off_without_a_model(tmp_path: Path) -> None:
    store = stored_job(tmp_path)
    settings = insight_settings(tmp_path, "", llm_model="")
    result = answer_question(settings, store, "job-1", "What is the budget?", user_id="ou_creator", chat_id="")
    assert result.status == "off" and "LLM_BASE_URL" in result.text


def test_a_long_job_sends_the_sentences_that_match_the_question(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    lines = [(i * 4.0, f"Filler sentence number {i} about nothing.") for i in range(1800)]
    lines[1500] = (6000.0, "The secret password is swordfish.")
    store = InsightStore(tmp_path / "data", 7)
    store.save("long", "ou_a", "oc_a", BatchResult([spoken(lines, 7200.0)], tmp_path, 0.0, 1.0))
    settings = insight_settings(tmp_path, fake_model.base_url, llm_chunk_chars=5000)
    result = answer_question(settings, store, "long", "What is the secret password?", user_id="ou_a", chat_id="")
    assert result.status == "answered" and "[1:40:00]" in result.text
    assert len(fake_model.of_kind("qa")[0].user) < 7000


def test_a_failing_model_gives_a_reason_not_an_error(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.always = Fault.status_code(500)
    store = stored_job(tmp_path)
    settings = insight_settings(tmp_path, fake_model.base_url)
    result = answer_question(settings, store, "job-1", "What is the budget?", user_id="ou_creator", chat_id="")
    assert result.status == "failed" and not result.answered
    assert "500" in result.text and "模型服务出错" in result.text
