"""bot.cards: card JSON 2.0 builders (pure), bilingual, size-capped, user text never in markdown."""

from __future__ import annotations

import json
from typing import Any

from bot import cards
from bot.inbound.commands import FEISHU_BITABLE, FEISHU_RESOURCE
from pipeline.models import AnalysisOptions, JobSpec, ScreenshotPlan, UserText, VideoSource


def size(card: dict[str, Any]) -> int:
    return len(cards.card_json(card).encode())


def markdown_texts(card: dict[str, Any]) -> list[str]:
    return [e["content"] for e in card["body"]["elements"] if e.get("tag") == "markdown"]


def all_text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def test_every_card_is_json_2_0_and_updatable() -> None:
    spec = JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),))
    for card in (
        cards.help_card(),
        cards.nothing_card(UserText(zh="无", en="none")),
        cards.error_card(UserText(zh="错", en="wrong")),
        cards.queued_card("jABC", spec),
    ):
        assert card["schema"] == "2.0"
        assert card["config"]["update_multi"] is True
        assert card["header"]["title"]["content"] and card["header"]["subtitle"]["content"]


def test_help_card_states_the_cap_and_offers_the_form() -> None:
    card = cards.help_card(max_links=7)
    text = all_text(card)
    assert "最多 7 个" in text and "up to 7 per message" in text
    (button,) = [e for e in card["body"]["elements"] if e["tag"] == "button"]
    assert button["behaviors"] == [{"type": "callback", "value": {"action": "open_task_form"}}]
    # Chinese first, English second.
    assert text.index("可以发送") < text.index("Send:")


def test_queued_card_lists_videos_plan_rejections_and_a_cancel_button() -> None:
    spec = JobSpec(
        sources=(
            VideoSource.url("https://v.example.com/a.mp4"),
            VideoSource(kind=FEISHU_RESOURCE, locator="file_1", name="会议.mp4", meta={"message_id": "om_1"}),
            VideoSource(
                kind=FEISHU_BITABLE,
                locator="bascn1",
                meta={"url": "https://x.feishu.cn/base/bascn1", "table_id": "tbl1"},
            ),
        ),
        options=AnalysisOptions(screenshots=ScreenshotPlan.parse("interval:10"), task_name="周会", language="en"),
        rejected=(UserText(zh="不支持 ftp: 链接", en="ftp: links are not supported"),),
    )
    card = cards.queued_card("jXYZ", spec)
    text = all_text(card)
    for expected in (
        "https://v.example.com/a.mp4",
        "会议.mp4",
        "数据表 tbl1",
        "table tbl1",
        "周会",
        "每 10 秒截图一张",
        "a screenshot every 10 s",
        "语言：英文",
        "language: English",
        "不支持 ftp: 链接",
        "ftp: links are not supported",
        "jXYZ",
    ):
        assert expected in text, expected
    (button,) = [e for e in card["body"]["elements"] if e["tag"] == "button"]
    assert button["behaviors"][0]["value"] == {"action": "cancel", "job_id": "jXYZ"}
    assert "confirm" in button


def test_user_text_only_ever_lands_in_plain_text() -> None:
    hostile = "**bold** <at id=all></at> [click](https://evil.example.com)"
    spec = JobSpec(
        sources=(VideoSource(kind=FEISHU_RESOURCE, locator="f", name=hostile),),
        options=AnalysisOptions(task_name=hostile),
        rejected=(UserText(zh=hostile, en=hostile),),
    )
    for card in (cards.queued_card("j1", spec), cards.nothing_card(UserText(zh=hostile, en=hostile), spec.rejected)):
        assert hostile in all_text(card) or "<at id=all>" in all_text(card)
        assert not any("<at" in m or "evil.example.com" in m for m in markdown_texts(card))


def test_long_lists_are_cut_with_and_n_more() -> None:
    spec = JobSpec(sources=tuple(VideoSource.url(f"https://v.example.com/{i}.mp4") for i in range(25)))
    text = all_text(cards.queued_card("j1", spec))
    assert "https://v.example.com/9.mp4" in text
    assert "https://v.example.com/10.mp4" not in text
    assert "另有 15 个" in text and "and 15 more" in text


def test_huge_inputs_still_fit_under_30_kb() -> None:
    long_link = "https://v.example.com/" + "视" * 3000
    spec = JobSpec(
        sources=tuple(VideoSource.url(long_link + str(i)) for i in range(20)),
        options=AnalysisOptions(task_name="名" * 5000),
        rejected=tuple(UserText(zh="未处理：" + long_link + str(i), en="Not taken: " + long_link) for i in range(200)),
    )
    card = cards.queued_card("j1", spec)
    assert size(card) < 30 * 1024
    nothing = cards.nothing_card(UserText(zh="无" * 10000, en="x" * 10000), spec.rejected)
    assert size(nothing) < 30 * 1024
    assert size(cards.error_card(UserText(zh="错" * 10000, en="e" * 10000))) < 30 * 1024


def test_error_card_shows_problem_and_example_bilingually() -> None:
    card = cards.error_card(UserText(zh="截图间隔必须大于 0", en="interval must be above 0"))
    text = all_text(card)
    assert "截图间隔必须大于 0" in text and "interval must be above 0" in text
    assert "截图 0,5,12.5" in text and "times 0,5,12.5" in text
    assert "未创建任务" in text and "no task created" in text
