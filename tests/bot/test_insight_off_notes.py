"""A preset or an analysis request sent while insight is off (LLM_BASE_URL / LLM_MODEL unset) is not
silently dropped: the queued card says it will not be used and how to turn insight on; the job still runs.
Through the real webhook and SDK, asserting on the card the fake Feishu received."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.insight.models import INSIGHT_OFF_NOTE
from pipeline.jobs.runner import JobContext, JobOutcome
from tests.support.events import SAMPLE_OPEN_ID, EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.feishu.records import FakeMessage
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, decoded, webhook_settings

FORM_CARD = "om_form00000000000000000000000002"
UNUSED_ZH = "预设/分析要求不会被使用"
UNUSED_EN = "preset / analysis request of this task will not be used"


def finish_at_once(context: JobContext) -> JobOutcome:
    return JobOutcome.done({"failed_sources": []})


def serve(tmp_path: Path, fake: FakeFeishu, **llm: Any) -> Iterator[WebhookClient]:
    events = EventFactory(app_id=fake.app_id)
    settings = webhook_settings(tmp_path, fake, events, **llm)
    with WebhookEnv(settings, fake, events).serve(job_function=finish_at_once) as client:
        yield client


@pytest.fixture
def insight_off(tmp_path: Path, fake_feishu: FakeFeishu) -> Iterator[WebhookClient]:
    yield from serve(tmp_path, fake_feishu, llm_base_url="", llm_model="")


@pytest.fixture
def insight_on(tmp_path: Path, fake_feishu: FakeFeishu) -> Iterator[WebhookClient]:
    yield from serve(tmp_path, fake_feishu, llm_base_url="https://llm.example.com/v1", llm_model="some-model")


def first_card(message: FakeMessage) -> str:
    """The card as first sent (the queued card), before any progress PATCH replaced it."""
    return card_text(json.loads(message.history[0]))


def queued_card_of_message(app: WebhookClient, text: str) -> str:
    request = app.events.text(text)
    assert app.send(request).status_code == 200
    card = first_card(app.reply_to(app.message_id_of(request)))
    assert app.job_for(app.message_id_of(request)) is not None  # the job is queued all the same
    return card


def queued_card_of_form(app: WebhookClient, form: dict[str, Any]) -> str:
    action = app.events.card_action(
        value={"action": "submit_task_form", "creator": SAMPLE_OPEN_ID},
        operator_open_id=SAMPLE_OPEN_ID,
        form_value=form,
        open_message_id=FORM_CARD,
        name="submit",
    )
    response = app.send(action)
    assert response.status_code == 200, response.text
    assert decoded(response)["toast"]["type"] == "success"
    (job,) = app.all_jobs()
    reply = app.wait_for_card_message(job.id)
    return first_card(app.fake.message(reply.card_message_id or ""))


def says_insight_is_off(card: str) -> bool:
    said = UNUSED_ZH in card and UNUSED_EN in card and INSIGHT_OFF_NOTE.zh in card and INSIGHT_OFF_NOTE.en in card
    if said:
        assert card.index(UNUSED_ZH) < card.index(UNUSED_EN)  # Chinese first
    return said


@pytest.mark.parametrize(
    "text",
    [
        "https://v.example.com/a.mp4 预设：会议",
        "https://v.example.com/a.mp4 preset: ad",
        "https://v.example.com/a.mp4\n分析要求：列出每个卖点",
        "https://v.example.com/a.mp4\nanalysis: list the action items",
    ],
)
def test_a_message_with_insight_options_while_insight_is_off_is_told_so(insight_off: WebhookClient, text: str) -> None:
    assert says_insight_is_off(queued_card_of_message(insight_off, text))


def test_a_message_without_insight_options_gets_no_such_note(insight_off: WebhookClient) -> None:
    assert not says_insight_is_off(queued_card_of_message(insight_off, "https://v.example.com/a.mp4"))


def test_the_note_is_not_said_while_insight_is_on(insight_on: WebhookClient) -> None:
    card = queued_card_of_message(insight_on, "https://v.example.com/a.mp4 预设：会议\n分析要求：列出每个卖点")
    assert UNUSED_ZH not in card and INSIGHT_OFF_NOTE.zh not in card


@pytest.mark.parametrize(
    "extra", [{"preset": "meeting"}, {"analysis_request": "列出每个卖点"}], ids=["preset", "analysis_request"]
)
def test_a_form_with_insight_options_while_insight_is_off_is_told_so(
    insight_off: WebhookClient, extra: dict[str, str]
) -> None:
    assert says_insight_is_off(queued_card_of_form(insight_off, {"links": "https://v.example.com/a.mp4", **extra}))


def test_a_form_without_insight_options_gets_no_such_note(insight_off: WebhookClient) -> None:
    assert not says_insight_is_off(queued_card_of_form(insight_off, {"links": "https://v.example.com/a.mp4"}))
