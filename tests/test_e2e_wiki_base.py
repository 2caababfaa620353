"""Bases inside a wiki end to end: a wiki Base read by the production job function; a wiki doc refused on the card."""

from __future__ import annotations

import pytest

from pipeline.jobs import JobStatus
from tests.bot.test_wiki_bases import BASE, NODE, TABLE
from tests.support.e2e_support import SHORT_KEYWORDS, E2EApp, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.feishu import TEXT, URL
from tests.support.webhook_harness import card_text


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
