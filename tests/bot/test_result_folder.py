"""The configured results folder (FEISHU_FOLDER_TOKEN) is checked when a message's job is accepted: an
unusable one is said on the queued card at once (the job still runs; its Base goes to the bot's space)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, webhook_settings

FOLDER = "fldcnTeamResults0001"
AUTH = f"/open-apis/drive/v1/permissions/{FOLDER}/members/auth"


@pytest.fixture
def app(tmp_path: Path, fake_feishu: FakeFeishu) -> Iterator[WebhookClient]:
    events = EventFactory(app_id=fake_feishu.app_id)
    settings = webhook_settings(tmp_path, fake_feishu, events, feishu_folder_token=FOLDER)
    with WebhookEnv(settings, fake_feishu, events).serve() as client:
        yield client


def queue(app: WebhookClient, link: str) -> str:
    request = app.events.text(link)
    assert app.send(request).status_code == 200
    text = card_text(app.reply_to(app.message_id_of(request)).card)
    job = app.job_for(app.message_id_of(request))
    assert job is not None  # queued either way: the sender cannot fix the folder, the results are kept
    return text


def test_an_unusable_configured_folder_is_said_on_the_queued_card(app: WebhookClient) -> None:
    app.fake.set_folder_access(FOLDER, "none")

    text = queue(app, "https://v.example.com/a.mp4")
    again = queue(app, "https://v.example.com/b.mp4")

    for card in (text, again):
        assert "结果文件夹不可用" in card and "机器人的空间" in card and "bot's space" in card
    assert len(app.fake.find("GET", AUTH)) == 1  # asked once, not per message


def test_a_usable_configured_folder_adds_nothing(app: WebhookClient) -> None:
    text = queue(app, "https://v.example.com/a.mp4")
    assert "结果文件夹" not in text
    assert app.fake.find("GET", AUTH)[0].query == {"type": "folder", "action": "edit"}
