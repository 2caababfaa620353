"""A missing scope (99991672) is answered with the scope to add, wherever the refused call was made; the
README's scope table is the bot's own list (``bot.scopes.SCOPES``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.feishu import FeishuClient, PermissionDenied, ScopeMissing, error_for
from bot.inbound.commands import classify_link
from bot.job.bitable_reader import expand_bitable
from bot.job.delivery import delivery_error, feishu_job_error
from bot.job.wiki_bases import WikiBaseError
from bot.scopes import SCOPES
from pipeline.errors import SourceError
from pipeline.models import VideoSource
from tests.bot.test_replied import reply_to
from tests.support.feishu import FakeFeishu
from tests.support.feishu.chat_messages import ChatMessages
from tests.support.webhook_harness import WebhookClient, card_text

README = Path(__file__).resolve().parents[2] / "README.md"
# What Feishu answers (the same sentence in English, then Chinese, then a link to grant the scopes).
NO_SCOPE_MSG = (
    "Access denied. One of the following scopes is required: [bitable:app, bitable:app:readonly].应用尚未开通"
    "所需的应用身份权限：[bitable:app, bitable:app:readonly]，点击链接申请并开通任一权限即可："
    "https://open.feishu.cn/app/cli_x/auth?q=bitable:app,bitable:app:readonly&op_from=openapi&token_type=tenant"
)


def test_the_readme_lists_exactly_the_bots_scopes() -> None:
    table = README.read_text(encoding="utf-8").split("| Scope | Why the bot needs it |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^ *\| `([^`]+)`", table, flags=re.M)
    assert listed == list(SCOPES)
    assert "im:resource" not in listed and "im:message:send_as_bot" not in listed


def test_99991672_names_the_scopes() -> None:
    err = error_for(99991672, NO_SCOPE_MSG, http_status=400)
    assert isinstance(err, ScopeMissing) and isinstance(err, PermissionDenied)
    assert err.scopes == ("bitable:app", "bitable:app:readonly")
    assert error_for(99991672, "Access denied.", http_status=400).scopes == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize("make_error", [feishu_job_error, delivery_error])
def test_a_job_failing_for_a_scope_says_which_to_add(make_error: object) -> None:
    error = make_error(error_for(99991672, NO_SCOPE_MSG))  # type: ignore[operator]
    zh, en = error["message"]["zh"], error["message"]["en"]
    assert "`bitable:app`" in zh and "权限管理" in zh and "发布新版本" in zh
    assert "`bitable:app`" in en and "Permissions & Scopes" in en


def test_reading_a_base_without_the_scope(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.fail("GET", "/open-apis/bitable/v1/apps/*", status=400, code=99991672, msg=NO_SCOPE_MSG, times=None)
    source = classify_link("https://acme.feishu.cn/base/bascnNoScope000000000000001?table=tblNoScope000001")
    assert isinstance(source, VideoSource)
    with pytest.raises(SourceError) as caught:
        expand_bitable(feishu_client, source, max_rows=10)
    assert caught.value.code == "feishu_scope_missing"
    assert "`bitable:app`" in caught.value.user_message.zh and "Permissions & Scopes" in caught.value.user_message.en


def test_a_wiki_link_without_the_wiki_scope(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    msg = "Access denied. One of the following scopes is required: [wiki:wiki, wiki:wiki:readonly]."
    fake_feishu.fail("GET", "/open-apis/wiki/v2/spaces/get_node", status=400, code=99991672, msg=msg)
    source = classify_link("https://acme.feishu.cn/wiki/wikcnNodeNoScope?table=tblNoScope000001")
    assert isinstance(source, VideoSource)
    with pytest.raises(WikiBaseError) as caught:
        expand_bitable(feishu_client, source, max_rows=10)
    assert "`wiki:wiki:readonly`（读取知识库中的多维表格链接）" in caught.value.user_message.zh


def test_a_group_reply_without_the_group_message_scope(webhook: WebhookClient) -> None:
    chat = ChatMessages(webhook.fake)
    parent = chat.add("media", {"file_key": "file_1", "file_name": "a.mp4"})
    msg = "Access denied. One of the following scopes is required: [im:message.group_msg]."
    webhook.fake.fail("GET", f"/open-apis/im/v1/messages/{parent}", status=400, code=99991672, msg=msg)
    text = card_text(webhook.reply_to(reply_to(webhook, parent)).card)
    assert "`im:message.group_msg`" in text and "Permissions & Scopes" in text
    assert webhook.all_jobs() == []
