"""Insight through the bot, end to end: a text message with two video links, real ffmpeg and Whisper
tiny.en, the fake Feishu and the fake OpenAI-compatible model on loopback. The Base's rows hold what the
fake model said, the done card shows the summaries, and a question in the card's thread is answered
with a time; a failing model leaves rows without insight but with the reason; insight off adds nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline.jobs import Job, JobStatus
from tests.support.e2e_support import (
    E2EApp,
    E2EEnv,
    cell_text,
    e2e_settings_overrides,
    results_table,
)
from tests.support.events import SAMPLE_OPEN_ID, EventFactory
from tests.support.fake_openai import FakeOpenAI, Fault
from tests.support.feishu import FakeFeishu
from tests.support.feishu.records import FakeMessage
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import WebhookEnv, card_text, webhook_settings

pytestmark = pytest.mark.slow

SUMMARY = "摘要 Summary"
CHAPTERS = "章节 Chapters"
KEY_POINTS = "要点 Key points"
VISUAL = "画面解读 Visual read"
ANALYSIS = "模板分析 Preset analysis"
REQUEST_ANSWER = "分析要求的回答 Analysis answer"
REASON = "AI 解读说明 Insight reason"
MODELS = "模型 Models"
TOKENS = "用量(tokens) Tokens"
NOTES_MD = "笔记 Notes (notes.md)"
INSIGHT_COLUMNS = (SUMMARY, CHAPTERS, KEY_POINTS, VISUAL, ANALYSIS, REQUEST_ANSWER, REASON, MODELS, TOKENS, NOTES_MD)


@pytest.fixture
def two_links(media_server: MediaServer, short_clip: Path) -> tuple[str, str]:
    media_server.add_file("first.mp4", short_clip.read_bytes())
    media_server.add_file("second.mp4", short_clip.read_bytes())
    return media_server.url("/media/first.mp4"), media_server.url("/media/second.mp4")


@pytest.fixture
def insight_app(tmp_path: Path, fake_feishu: FakeFeishu, fake_model: FakeOpenAI) -> Iterator[E2EApp]:
    with serve_with_insight(tmp_path, fake_feishu, fake_model) as app:
        yield app


@contextmanager
def serve_with_insight(
    tmp_path: Path, fake_feishu: FakeFeishu, fake_model: FakeOpenAI, **overrides: Any
) -> Iterator[E2EApp]:
    events = EventFactory(app_id=fake_feishu.app_id)
    settings = webhook_settings(
        tmp_path,
        fake_feishu,
        events,
        **e2e_settings_overrides(),
        llm_base_url=fake_model.base_url,
        llm_api_key="test-key",
        llm_model="text-model",
        vlm_model="vision-model",
        vlm_max_screenshots=2,
        vlm_image_max_px=160,
        llm_max_retries=0,
        llm_timeout_s=20,
        **overrides,
    )
    with E2EEnv(WebhookEnv(settings, fake_feishu, events)).serve() as app:
        yield app


def finished_job(app: E2EApp, text: str) -> tuple[str, Job]:
    message_id, job = app.send_text(text)
    done = app.wait_finished(job.id)
    app.settle_cards()
    assert done.status is JobStatus.DONE, done.error
    return message_id, done


def video_rows(app: E2EApp) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    (base,) = app.bases_owned_by(SAMPLE_OPEN_ID)
    rows = results_table(app.fake, base)
    videos = [r for r in rows if cell_text(r.get("视频 Video")) != "总览 Overview"]
    return videos, [r for r in rows if r not in videos]


def wait_reply(app: E2EApp, message_id: str, timeout: float = 60.0) -> FakeMessage:
    deadline = time.monotonic() + timeout
    while not app.client.replies_to(message_id):
        assert time.monotonic() < deadline, f"no reply to {message_id}"
        time.sleep(0.05)
    (reply,) = app.client.replies_to(message_id)
    return reply


def test_two_videos_get_insight_in_the_base_and_the_card_and_a_question_is_answered(
    insight_app: E2EApp, fake_model: FakeOpenAI, two_links: tuple[str, str]
) -> None:
    first, second = two_links
    _message, job = finished_job(insight_app, f"{first} {second} 预设：广告\n分析要求：列出卖点")
    assert job.spec.options.preset == "ad" and job.spec.options.analysis_request == "列出卖点"

    videos, overview = video_rows(insight_app)
    assert len(videos) == 2
    for row in videos:
        assert cell_text(row["状态 Status"]) == "成功 OK"
        assert cell_text(row[SUMMARY]).startswith("FAKE-SUMMARY")
        chapters = cell_text(row[CHAPTERS])
        assert "FAKE-CHAPTER" in chapters and re.search(r"^\[00:0\d\] ", chapters, re.MULTILINE), chapters
        assert "FAKE-POINT" in cell_text(row[KEY_POINTS])
        assert cell_text(row[VISUAL]).startswith("FAKE-VISUAL")
        assert "FAKE-HOOK" in cell_text(row[ANALYSIS])
        assert cell_text(row[REQUEST_ANSWER]).startswith("FAKE-REQUEST-ANSWER")
        assert "text-model" in cell_text(row[MODELS]) and row[TOKENS] > 0
        (notes,) = row[NOTES_MD]
        media = insight_app.fake.media[notes["file_token"]]
        assert media.name.endswith("-notes.md") and b"FAKE-SUMMARY" in media.data
    (overview_row,) = overview
    assert "FAKE-OVERVIEW shared" in cell_text(overview_row[SUMMARY])

    card = card_text(insight_app.card_message(job).card)
    assert "内容摘要 / What the videos say" in card and "FAKE-SUMMARY" in card
    assert "FAKE-OVERVIEW shared" in card

    # A question in the card's thread: answered from the transcript, with the time it was said.
    card_id = job.card_message_id or ""
    request = insight_app.events.text("What did they say about the budget?", parent_id=card_id)
    question_id = insight_app.client.message_id_of(request)
    assert insight_app.client.send(request).status_code == 200
    answer = card_text(wait_reply(insight_app, question_id).card)
    assert "FAKE-ANSWER" in answer and "budget" in answer.lower()
    assert re.search(r"\[00:0\d\]", answer), answer
    assert len(fake_model.of_kind("qa")) == 1
    assert insight_app.client.job_for(question_id) is None  # a question makes no job

    # Someone else, in another chat, quoting the card: told why not, in both languages.
    stranger = insight_app.events.text(
        "What about the budget?", parent_id=card_id, sender_open_id="ou_stranger", chat_id="oc_elsewhere"
    )
    stranger_id = insight_app.client.message_id_of(stranger)
    assert insight_app.client.send(stranger).status_code == 200
    denied = card_text(wait_reply(insight_app, stranger_id).card)
    assert "只有发起这个任务的人" in denied and "Only the person who started this job" in denied
    assert len(fake_model.of_kind("qa")) == 1


def test_a_question_after_the_retention_period_is_told_the_transcripts_are_gone(
    tmp_path: Path, fake_feishu: FakeFeishu, fake_model: FakeOpenAI, short_clip_url: str
) -> None:
    # Retention 0 keeps nothing: every question comes after the retention period.
    with serve_with_insight(tmp_path, fake_feishu, fake_model, insight_retention_days=0) as app:
        _message, job = finished_job(app, short_clip_url)
        request = app.events.text("Was the budget mentioned?", parent_id=job.card_message_id or "")
        question_id = app.client.message_id_of(request)
        assert app.client.send(request).status_code == 200
        answer = card_text(wait_reply(app, question_id).card)
    assert "已过保留期" in answer and "retention period" in answer
    assert fake_model.of_kind("qa") == []


def test_a_failing_model_leaves_rows_without_insight_but_with_the_reason(
    insight_app: E2EApp, fake_model: FakeOpenAI, two_links: tuple[str, str]
) -> None:
    fake_model.always = Fault.status_code(500)
    first, second = two_links
    _message, job = finished_job(insight_app, f"{first} {second}")

    videos, _overview = video_rows(insight_app)
    assert len(videos) == 2
    for row in videos:
        assert cell_text(row["状态 Status"]) == "成功 OK"
        assert "budget" in cell_text(row["转写文本 Transcript"]).lower()
        assert row["截图 Screenshots"]
        assert SUMMARY not in row and CHAPTERS not in row
        assert cell_text(row[REASON]), row
    assert job.result["counts"]["ok"] == 2


def test_with_insight_off_the_base_has_no_insight_columns_and_the_card_says_how_to_turn_it_on(
    e2e: E2EApp, short_clip_url: str
) -> None:
    _message, job = finished_job(e2e, f"{short_clip_url} 预设：会议")
    (base,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    (table,) = base.tables.values()
    names = {f["field_name"] for f in table.fields}
    assert not names & set(INSIGHT_COLUMNS)
    (row,) = table.rows()
    assert cell_text(row["状态 Status"]) == "成功 OK"
    card = card_text(e2e.card_message(job).card)
    assert "LLM_BASE_URL" in card and "内容摘要" not in card
    # A reply to the card is no question without insight: it is answered as any message without videos.
    request = e2e.events.text("What about the budget?", parent_id=job.card_message_id or "")
    reply_id = e2e.client.message_id_of(request)
    assert e2e.client.send(request).status_code == 200
    assert "没有可分析的视频" in card_text(wait_reply(e2e, reply_id).card)
