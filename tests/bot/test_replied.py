"""Group chats: "@bot" in reply to a video, file or link message analyses that message (read with the
get-message API from the fake Feishu); a parent the bot cannot read gets a clear answer."""

from __future__ import annotations

from typing import Any

import pytest

from bot.inbound.commands import FEISHU_RESOURCE
from tests.support.feishu.chat_messages import ChatMessages
from tests.support.webhook_harness import WebhookClient, card_text

GROUP = "oc_group_with_the_bot"
MENTION = {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "Video Bot", "mentioned_type": "bot"}
GET_MESSAGE = "/open-apis/im/v1/messages/{}"


@pytest.fixture
def chat(webhook: WebhookClient) -> ChatMessages:
    return ChatMessages(webhook.fake)


def reply_to(webhook: WebhookClient, parent_id: str, text: str = "@_user_1", **overrides: Any) -> str:
    """Send "@bot ..." as a reply to ``parent_id`` in the group; return the reply's message id."""
    request = webhook.events.text(text, chat_type="group", chat_id=GROUP, mentions=[MENTION], parent_id=parent_id)
    assert webhook.send(request).status_code == 200
    return webhook.message_id_of(request)


def test_a_reply_to_a_video_analyses_the_video(webhook: WebhookClient, chat: ChatMessages) -> None:
    video = chat.add("media", {"file_key": "file_v1", "image_key": "img_1", "file_name": "周会.mp4", "duration": 5000})
    reply_id = reply_to(webhook, video)

    card = webhook.reply_to(reply_id).card  # the answer goes to the reply, where the user asked
    assert "周会.mp4" in card_text(card)
    job = webhook.job_for(reply_id)
    assert job is not None and job.idempotency_key == reply_id
    (source,) = job.spec.sources
    assert source.kind == FEISHU_RESOURCE and source.locator == "file_v1"
    assert source.meta["message_id"] == video  # the file is downloaded from the message that holds it
    assert job.spec.source_message_id == reply_id and job.spec.chat_id == GROUP
    webhook.jobs.wait_for(job.id)
    assert len(webhook.fake.find("GET", GET_MESSAGE.format(video))) == 1


def test_a_reply_to_a_file_or_to_links(webhook: WebhookClient, chat: ChatMessages) -> None:
    document = chat.add("file", {"file_key": "file_f1", "file_name": "talk.mov"})
    links = chat.add("text", {"text": "看看这个 https://v.example.com/a.mp4 和 https://v.example.com/b.mp4"})
    for parent in (document, links):
        reply_id = reply_to(webhook, parent, "@_user_1 请分析")
        webhook.reply_to(reply_id)
        job = webhook.job_for(reply_id)
        assert job is not None
        if parent == document:
            assert [s.locator for s in job.spec.sources] == ["file_f1"]
        else:
            assert [s.locator for s in job.spec.sources] == [
                "https://v.example.com/a.mp4",
                "https://v.example.com/b.mp4",
            ]


def test_a_redelivered_reply_queues_one_job(webhook: WebhookClient, chat: ChatMessages) -> None:
    video = chat.add("media", {"file_key": "file_v2", "file_name": "a.mp4"})
    request = webhook.events.text("@_user_1", chat_type="group", chat_id=GROUP, mentions=[MENTION], parent_id=video)
    reply_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200
    webhook.reply_to(reply_id)
    again = webhook.events.text(
        "@_user_1", chat_type="group", chat_id=GROUP, mentions=[MENTION], parent_id=video, message_id=reply_id
    )
    assert webhook.send(again).json() == {"msg": "duplicate"}
    webhook.settle()
    assert len(webhook.all_jobs()) == 1 and len(webhook.replies_to(reply_id)) == 1


def test_a_reply_with_its_own_link_or_asking_for_help_is_taken_as_it_is(
    webhook: WebhookClient, chat: ChatMessages
) -> None:
    video = chat.add("media", {"file_key": "file_v3", "file_name": "a.mp4"})
    own = reply_to(webhook, video, "@_user_1 https://v.example.com/own.mp4")
    job = webhook.job_for(own)
    assert job is not None and [s.locator for s in job.spec.sources] == ["https://v.example.com/own.mp4"]
    helped = reply_to(webhook, video, "@_user_1 帮助")
    assert "使用说明" in card_text(webhook.reply_to(helped).card)
    assert webhook.fake.find("GET", GET_MESSAGE.format(video)) == []


@pytest.mark.parametrize(
    ("make_parent", "expected_zh", "expected_en"),
    [
        (lambda chat: _recalled(chat), "已被撤回或删除", "recalled or deleted"),
        (lambda chat: _hidden(chat), "机器人读不到你回复的那条消息", "cannot read the message you replied to"),
        (lambda chat: "om_does_not_exist", "机器人读不到你回复的那条消息", "cannot read the message you replied to"),
        (lambda chat: chat.add("sticker", {"file_key": "sticker_1"}), "暂不支持表情", "stickers"),
        (lambda chat: chat.add("image", {"image_key": "img_2"}), "暂不支持图片", "images"),
        (lambda chat: chat.add("text", {"text": "明天开会"}), "", "Nothing to analyse"),
    ],
    ids=["recalled", "bot-cannot-see", "unknown-id", "sticker", "image", "plain-text"],
)
def test_a_parent_that_cannot_be_analysed_gets_a_clear_answer(
    webhook: WebhookClient, chat: ChatMessages, make_parent: Any, expected_zh: str, expected_en: str
) -> None:
    parent = make_parent(chat)
    reply_id = reply_to(webhook, parent)
    text = card_text(webhook.reply_to(reply_id).card)
    assert expected_zh in text and expected_en in text
    assert webhook.all_jobs() == []


def _recalled(chat: ChatMessages) -> str:
    message_id = chat.add("media", {"file_key": "file_gone", "file_name": "a.mp4"})
    chat.recall(message_id)
    return message_id


def _hidden(chat: ChatMessages) -> str:
    message_id = chat.add("media", {"file_key": "file_hidden", "file_name": "a.mp4"})
    chat.hide(message_id)
    return message_id
