"""Bases inside a wiki: a /wiki/<token> link is resolved with the wiki get-node API (real SDK, fake
Feishu) and read as the Base it wraps; a node that is not a Base, or that does not exist, gets a clear
answer."""

from __future__ import annotations

import pytest

from bot.commands import FEISHU_BITABLE, WIKI_TOKEN, CommandRules, NewJob, classify_link, parse_message
from bot.events import IncomingMessage
from bot.feishu import FeishuClient
from bot.sources import expand_bitable
from bot.wiki import WikiBaseError, WikiNotABaseError
from pipeline.jobs import JobStatus
from pipeline.models import VideoSource
from tests.e2e_support import SHORT_KEYWORDS, E2EApp, cell_text, results_table
from tests.fakes.events import SAMPLE_OPEN_ID
from tests.fakes.feishu import TEXT, URL, FakeFeishu
from tests.webhook_harness import card_text

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


@pytest.mark.slow
def test_a_wiki_base_link_end_to_end(e2e: E2EApp, short_clip_url: str) -> None:
    e2e.fake.add_bitable(
        BASE,
        TABLE,
        [{"field_name": "标题", "type": TEXT}, {"field_name": "视频链接", "type": URL}],
        [{"标题": "季度会", "视频链接": {"text": short_clip_url, "link": short_clip_url}}],
        table_name="素材",
    )
    e2e.fake.add_wiki_node(NODE, BASE, title="素材库")
    doc_node = "wikcnMeetingNotes"
    e2e.fake.add_wiki_node(doc_node, "doxcnNotes", obj_type="docx", title="会议纪要")

    _, job = e2e.send_text(f"分析 https://acme.feishu.cn/wiki/{NODE}?table={TABLE}")
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()
    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["ok"] == 1
    (results,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    (row,) = results_table(e2e.fake, results)
    assert all(word in cell_text(row["转写文本 Transcript"]).lower() for word in SHORT_KEYWORDS)

    _, job = e2e.send_text(f"https://acme.feishu.cn/wiki/{doc_node}")
    refused = e2e.wait_finished(job.id)
    e2e.settle_cards()
    assert refused.status is JobStatus.FAILED
    text = card_text(e2e.card_message(refused).card)
    assert "不是多维表格" in text and "not a Base" in text
