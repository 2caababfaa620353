"""A Bitable link as the source, end to end: its videos analysed and its empty rows reported; a Base the
bot may not read, an empty table; and 500 rows, where the card and its updates must stay sane."""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import pytest

from pipeline.jobs import JobStatus
from tests.support.e2e_support import SHORT_KEYWORDS, E2EApp, card_header, card_size, cell_text, results_table
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.feishu import TEXT, URL
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import card_text

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

FIELDS = [{"field_name": "标题", "type": TEXT}, {"field_name": "视频链接", "type": URL}]


def source_base(e2e: E2EApp, records: list[dict[str, Any]], *, readable: bool = True) -> str:
    """A user's Base listing videos; returns the link a user would send."""
    app_token = "bascn" + secrets.token_hex(8)
    table_id = "tbl" + secrets.token_hex(6)
    e2e.fake.add_bitable(app_token, table_id, FIELDS, records, readable=readable, table_name="素材")
    return f"https://example.feishu.cn/base/{app_token}?table={table_id}"


def link(url: str) -> dict[str, str]:
    return {"text": url, "link": url}


def test_a_bitable_link_expands_into_its_videos(e2e: E2EApp, short_clip_url: str) -> None:
    base_link = source_base(e2e, [{"标题": "季度会", "视频链接": link(short_clip_url)}, {"标题": "还没上传"}])
    _, job = e2e.send_text(f"分析这个表 {base_link}")
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"] == {"total": 1, "ok": 1, "failed": 0, "cancelled": 0, "skipped": 1}
    text = card_text(e2e.card_message(done).card)
    assert "季度会" in text
    assert "跳过的行 / Skipped rows (1)" in text and "第 2 行 / Row 2（还没上传）" in text
    assert "视频取自「视频链接」列" in text  # which column the videos came from
    (results,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    rows = results_table(e2e.fake, results)
    assert [cell_text(r["状态 Status"]) for r in rows] == ["成功 OK", "已跳过 Skipped"]
    transcript = cell_text(rows[0]["转写文本 Transcript"]).lower()
    assert all(word in transcript for word in SHORT_KEYWORDS)
    assert e2e.work_dir_entries() == []


def test_a_base_the_bot_may_not_read_tells_the_user_to_add_the_app(e2e: E2EApp, short_clip_url: str) -> None:
    base_link = source_base(e2e, [{"标题": "a", "视频链接": link(short_clip_url)}], readable=False)
    _, job = e2e.send_text(base_link)
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error["code"] == "bitable_no_access"
    card = e2e.card_message(done).card
    assert card_header(card) == "视频分析失败"
    text = card_text(card)
    assert "没有这个多维表格的访问权限" in text and "添加文档应用" in text
    assert "has no access to this Base" in text and "Add document app" in text
    assert e2e.bases_owned_by(SAMPLE_OPEN_ID) == []  # nothing to deliver, no Base made
    assert e2e.work_dir_entries() == []


def test_an_empty_table(e2e: E2EApp) -> None:
    _, job = e2e.send_text(source_base(e2e, []))
    done = e2e.wait_finished(job.id)
    e2e.settle_cards()

    assert done.status is JobStatus.FAILED
    text = card_text(e2e.card_message(done).card)
    assert "是空的" in text and "is empty" in text
    assert e2e.bases_owned_by(SAMPLE_OPEN_ID) == []


def test_500_rows_keep_the_card_and_its_updates_sane(e2e: E2EApp, media_server: MediaServer) -> None:
    # Cheap videos: every link answers 404 at once, so this is about batching and progress, not media.
    records = [{"标题": f"第{n}个", "视频链接": link(media_server.url(f"/status/404?n={n}"))} for n in range(500)]
    message_id, job = e2e.send_text(source_base(e2e, records))
    done = e2e.wait_finished(job.id, timeout=300)
    e2e.settle_cards()

    assert done.status is JobStatus.DONE, done.error
    assert done.result["counts"]["failed"] == 500
    (results,) = e2e.bases_owned_by(SAMPLE_OPEN_ID)
    rows = results_table(e2e.fake, results)
    assert len(rows) == 500
    assert len({cell_text(r["视频 Video"]) for r in rows}) == 500  # no row twice

    card_message = e2e.card_message(done)
    history = [json.loads(content) for content in card_message.history]
    assert max(card_size(card) for card in history) < 30 * 1024
    # Thousands of progress events became far fewer PATCHes, paced per message. How many depends on how
    # long the job ran (at most one per 0.5 s while the card changes; over 100 when both cores are busy),
    # so the bound is fewer than one per video, and the pacing is checked on the gaps.
    patches = e2e.fake.find("PATCH", f"/open-apis/im/v1/messages/{card_message.message_id}")
    assert 2 <= len(patches) < 500
    assert min(b.at - a.at for a, b in itertools.pairwise(patches)) >= 0.45
    assert not [r for r in e2e.fake.requests if r.code == 230020]  # never over Feishu's per-message limit
    final = card_text(history[-1])
    assert "失败的视频 / Failed videos (500)" in final and "and 490 more failed" in final
    assert len(json.dumps(done.progress).encode()) < 400 * 1024
    assert message_id
