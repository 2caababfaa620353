"""Bases inside a wiki: a /wiki/<token> link is resolved with the wiki get-node API (real SDK, fake
Feishu) and read as the Base it wraps; a node that is not a Base, or that does not exist, gets a clear
answer."""

from __future__ import annotations

import pytest

from bot.feishu import FeishuClient
from bot.inbound.commands import FEISHU_BITABLE, WIKI_TOKEN, CommandRules, NewJob, classify_link, parse_message
from bot.inbound.events import IncomingMessage
from bot.job.bitable_reader import expand_bitable
from bot.job.wiki_bases import WikiBaseError, WikiNotABaseError
from pipeline.models import VideoSource
from tests.support.feishu import TEXT, URL, FakeFeishu

BASE = "bascnInsideTheWiki000000001"
TABLE = "tblWikiTable0001"
NODE = "wikcnNodeOfTheBase"
GET_NODE = "/open-apis/wiki/v2/spaces/get_node"


def wiki_source(node: str = NODE, table: str = TABLE) -> VideoSource:
    source = classify_link(f"https://acme.feishu.cn/wiki/{node}?table={table}")
    assert isinstance(source, VideoSource)
    return source


def test_a_wiki_link_is_a_bitable_source_resolved_later() -> None:
    message = IncomingMessage(
        event_id="e1",
        message_id="om_1",
        chat_id="oc_1",
        chat_type="p2p",
        message_type="text",
        content='{"text": "https://acme.feishu.cn/wiki/wikcnX?table=tbl1&view=vew2 https://acme.feishu.cn/docx/d"}',
        sender_open_id="ou_1",
        sender_type="user",
    )
    command = parse_message(message, CommandRules())
    assert isinstance(command, NewJob)
    (source,) = command.spec.sources
    assert source.kind == FEISHU_BITABLE
    assert source.meta[WIKI_TOKEN] == "wikcnX"
    assert (source.meta["table_id"], source.meta["view_id"]) == ("tbl1", "vew2")
    (doc,) = command.spec.rejected  # a docx link is still not a video
    assert "not a downloadable video" in doc.en


def test_a_wiki_base_is_read_as_the_base_it_wraps(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        BASE,
        TABLE,
        [{"field_name": "标题", "type": TEXT}, {"field_name": "视频链接", "type": URL}],
        [{"标题": [{"type": "text", "text": "发布会"}], "视频链接": {"link": "https://cdn.example.com/a.mp4"}}],
        table_name="视频清单",
    )
    fake_feishu.add_wiki_node(NODE, BASE, title="视频清单")

    expansion = expand_bitable(feishu_client, wiki_source(), max_rows=10)

    assert [(s.locator, s.name) for s in expansion.sources] == [("https://cdn.example.com/a.mp4", "发布会")]
    assert expansion.app_token == BASE and expansion.table_id == TABLE
    (lookup,) = fake_feishu.find("GET", GET_NODE)
    assert lookup.query["token"] == NODE
    assert fake_feishu.find("GET", f"/open-apis/bitable/v1/apps/{BASE}/tables/{TABLE}/records")


@pytest.mark.parametrize(
    ("obj_type", "zh", "en"),
    [("docx", "文档", "a document"), ("sheet", "电子表格", "a spreadsheet"), ("mindnote", "思维笔记", "a mind note")],
)
def test_a_wiki_page_that_is_not_a_base_gets_a_clear_answer(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, obj_type: str, zh: str, en: str
) -> None:
    fake_feishu.add_wiki_node(NODE, "doxcnSomething", obj_type=obj_type, title="会议纪要")
    with pytest.raises(WikiNotABaseError) as caught:
        expand_bitable(feishu_client, wiki_source(), max_rows=10)
    message = caught.value.user_message
    assert zh in message.zh and "不是多维表格" in message.zh and "会议纪要" in message.zh
    assert en in message.en and "not a Base" in message.en
    assert fake_feishu.find("GET", "/open-apis/bitable/*") == []


def test_a_wiki_token_that_does_not_exist(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    with pytest.raises(WikiBaseError) as caught:
        expand_bitable(feishu_client, wiki_source(node="wikcnGone"), max_rows=10)
    assert "找不到这个知识库页面" in caught.value.user_message.zh
    assert "does not exist" in caught.value.user_message.en


def test_a_wiki_the_bot_may_not_read(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.fail("GET", GET_NODE, status=400, code=131006, msg="permission denied")
    with pytest.raises(WikiBaseError) as caught:
        expand_bitable(feishu_client, wiki_source(), max_rows=10)
    assert "无权读取" in caught.value.user_message.zh and "may not read" in caught.value.user_message.en
