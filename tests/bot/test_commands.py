"""bot.inbound.commands: one Feishu message -> Help | Nothing | BadOptions | NewJob (pure parsing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.inbound.commands import (
    FEISHU_BITABLE,
    FEISHU_RESOURCE,
    BadOptions,
    CommandRules,
    Help,
    NewJob,
    Nothing,
    find_links,
    parse_message,
)
from bot.inbound.events import IncomingMessage, Mention
from pipeline.models import ScreenshotMode, SourceKind

RULES = CommandRules(max_links=20, max_screenshots=20, default_screenshots="scenes")


def message(message_type: str, content: dict[str, Any], *, mentions: tuple[Mention, ...] = ()) -> IncomingMessage:
    return IncomingMessage(
        event_id="ev_1",
        message_id="om_abc",
        chat_id="oc_chat",
        chat_type="group",
        message_type=message_type,
        content=json.dumps(content, ensure_ascii=False),
        sender_open_id="ou_alice",
        sender_type="user",
        mentions=mentions,
    )


def text(value: str, **kwargs: Any) -> IncomingMessage:
    return message("text", {"text": value}, **kwargs)


def job(msg: IncomingMessage, rules: CommandRules = RULES) -> NewJob:
    command = parse_message(msg, rules)
    assert isinstance(command, NewJob), command
    return command


def urls(command: NewJob) -> list[str]:
    return [s.locator for s in command.spec.sources]


# --- help and nothing --------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["帮助", "help", "/help", "HELP", " @_user_1 帮助 ", "使用说明", "？", "@_user_1"])
def test_help_words_and_a_bare_mention_ask_for_help(said: str) -> None:
    assert parse_message(text(said, mentions=(Mention(key="@_user_1", name="Bot"),)), RULES) == Help()


@pytest.mark.parametrize("said", ["你好", "hello there", "截图 0,5", "name: weekly sync"])
def test_text_without_links_is_nothing_to_do_with_a_reason(said: str) -> None:
    command = parse_message(text(said), RULES)
    assert isinstance(command, Nothing)
    assert "没有找到视频链接" in command.reason.zh
    assert "No video link" in command.reason.en
    assert command.rejected == ()


@pytest.mark.parametrize("kind", ["image", "audio", "sticker", "merge_forward"])
def test_unsupported_message_types_say_what_is_accepted(kind: str) -> None:
    command = parse_message(message(kind, {"image_key": "img_1"}), RULES)
    assert isinstance(command, Nothing)
    assert "视频链接" in command.reason.zh
    assert "video link" in command.reason.en


# --- links in text -------------------------------------------------------------------------------


def test_every_link_is_taken_in_order_deduplicated_with_trailing_punctuation_stripped() -> None:
    command = job(
        text(
            "看看这个https://a.example.com/v1.mp4，还有 https://b.example.com/v2.mp4。"
            "再来一个 (https://c.example.com/v3.mp4), 以及 https://a.example.com/v1.mp4!"
        )
    )
    assert urls(command) == [
        "https://a.example.com/v1.mp4",
        "https://b.example.com/v2.mp4",
        "https://c.example.com/v3.mp4",
    ]
    assert all(s.kind == SourceKind.URL.value for s in command.spec.sources)
    assert command.spec.rejected == ()


def test_job_spec_carries_who_asked_and_where() -> None:
    spec = job(text("https://x.example.com/a.mp4")).spec
    assert (spec.creator_id, spec.chat_id, spec.source_message_id) == ("ou_alice", "oc_chat", "om_abc")


def test_a_closing_bracket_that_belongs_to_the_link_is_kept() -> None:
    assert find_links("见 https://en.wikipedia.org/wiki/Foo_(bar)。") == ["https://en.wikipedia.org/wiki/Foo_(bar)"]


def test_mention_placeholders_are_not_read_as_text() -> None:
    command = job(text("@_user_1 https://x.example.com/a.mp4 @_user_2", mentions=(Mention(key="@_user_1"),)))
    assert urls(command) == ["https://x.example.com/a.mp4"]


@pytest.mark.parametrize(
    ("bad", "scheme"),
    [("ftp://files.example.com/a.mp4", "ftp"), ("file:///etc/passwd", "file"), ("javascript:alert(1)", "javascript")],
)
def test_links_with_other_schemes_are_reported_back_not_dropped(bad: str, scheme: str) -> None:
    command = job(text(f"{bad} https://ok.example.com/v.mp4"))
    assert urls(command) == ["https://ok.example.com/v.mp4"]
    assert len(command.spec.rejected) == 1
    assert bad in command.spec.rejected[0].zh and bad in command.spec.rejected[0].en
    assert f"{scheme}:" in command.spec.rejected[0].en


def test_only_unusable_links_is_nothing_with_the_rejections_listed() -> None:
    command = parse_message(text("ftp://files.example.com/a.mp4"), RULES)
    assert isinstance(command, Nothing)
    assert [r.en for r in command.rejected] == [
        "ftp: links are not supported (only http/https): ftp://files.example.com/a.mp4"
    ]


def test_over_the_cap_the_first_n_are_taken_and_the_rest_named() -> None:
    links = [f"https://v.example.com/{i}.mp4" for i in range(50)]
    command = job(text(" ".join(links)))
    assert urls(command) == links[:20]
    assert command.over_cap == tuple(links[20:])
    notes = [r.en for r in command.spec.rejected]
    assert "first 20 were taken" in notes[0] and "the 30 below were not" in notes[0]
    assert notes[1:] == [f"Not taken: {link}" for link in links[20:]]


def test_the_cap_comes_from_the_rules() -> None:
    command = job(
        text("https://a.example.com/1 https://a.example.com/2 https://a.example.com/3"), CommandRules(max_links=2)
    )
    assert urls(command) == ["https://a.example.com/1", "https://a.example.com/2"]
    assert command.over_cap == ("https://a.example.com/3",)


# --- Bitable and other Feishu links ----------------------------------------------------------------


def test_bitable_link_becomes_one_bitable_source() -> None:
    link = "https://acme.feishu.cn/base/bascnAbC123?table=tblXyZ&view=vewQ1"
    (source,) = job(text(f"分析这个表 {link}")).spec.sources
    assert source.kind == FEISHU_BITABLE
    assert source.locator == "bascnAbC123"
    assert source.meta == {"url": link, "table_id": "tblXyZ", "view_id": "vewQ1"}


def test_bitable_link_on_larksuite_without_a_view() -> None:
    (source,) = job(text("https://acme.larksuite.com/base/bascnQ?table=tbl9")).spec.sources
    assert (source.kind, source.locator, source.meta.get("table_id"), "view_id" in source.meta) == (
        FEISHU_BITABLE,
        "bascnQ",
        "tbl9",
        False,
    )


def test_document_links_get_a_clear_message_and_wiki_links_are_bases() -> None:
    command = parse_message(
        text("https://acme.feishu.cn/wiki/wikcnX?table=tbl1 https://acme.feishu.cn/docx/doxcnY"), RULES
    )
    # A wiki link may wrap a Base: the job resolves it (tests/test_wiki.py); a docx link is no video.
    assert isinstance(command, NewJob)
    (wiki,) = command.spec.sources
    assert wiki.kind == FEISHU_BITABLE and wiki.meta["wiki_token"] == "wikcnX"
    (doc,) = command.spec.rejected
    assert "不是可下载的视频" in doc.zh and "not a downloadable video" in doc.en


# --- rich text (post) ------------------------------------------------------------------------------


def test_post_takes_hrefs_and_links_in_text_runs_in_reading_order() -> None:
    content = {
        "title": "周会录像 任务：周会",
        "content": [
            [{"tag": "text", "text": "第一个："}, {"tag": "a", "href": "https://a.example.com/1.mp4", "text": "录像"}],
            [
                {"tag": "at", "user_id": "@_user_1", "user_name": "Bot"},
                {"tag": "text", "text": "https://b.example.com/2.mp4"},
            ],
            [{"tag": "a", "href": "https://a.example.com/1.mp4", "text": "again"}, {"tag": "text", "text": "截图 0,5"}],
        ],
    }
    command = job(message("post", content))
    assert urls(command) == ["https://a.example.com/1.mp4", "https://b.example.com/2.mp4"]
    assert command.spec.options.task_name == "周会"
    assert command.spec.options.screenshots.times_s == (0.0, 5.0)


def test_post_nested_under_a_locale_and_embedded_media() -> None:
    content = {
        "zh_cn": {
            "title": "",
            "content": [
                [{"tag": "media", "file_key": "file_v2_x", "image_key": "img_1"}],
                [{"tag": "text", "text": "看"}],
            ],
        }
    }
    (source,) = job(message("post", content)).spec.sources
    assert (source.kind, source.locator, source.meta["message_id"]) == (FEISHU_RESOURCE, "file_v2_x", "om_abc")


def test_post_with_an_ftp_href_reports_it() -> None:
    content = {"title": "", "content": [[{"tag": "a", "href": "ftp://x.example.com/a.mp4", "text": "x"}]]}
    command = parse_message(message("post", content), RULES)
    assert isinstance(command, Nothing)
    assert "ftp://x.example.com/a.mp4" in command.rejected[0].en


# --- media and file attachments ------------------------------------------------------------------


def test_media_message_is_a_message_resource_source() -> None:
    content = {"file_key": "75235e0c-4f92", "image_key": "img_x", "file_name": "测试视频.mp4", "duration": 2000}
    (source,) = job(message("media", content)).spec.sources
    assert source.kind == FEISHU_RESOURCE
    assert source.locator == "75235e0c-4f92"
    assert source.name == "测试视频.mp4"
    assert source.meta == {
        "message_id": "om_abc",
        "file_name": "测试视频.mp4",
        "duration": "2000",
        "image_key": "img_x",
    }


@pytest.mark.parametrize("name", ["meeting.mp4", "clip.MOV", "recording", "screen.webm"])
def test_video_like_files_are_accepted(name: str) -> None:
    (source,) = job(message("file", {"file_key": "fk_1", "file_name": name})).spec.sources
    assert (source.kind, source.locator, source.meta["file_name"]) == (FEISHU_RESOURCE, "fk_1", name)


@pytest.mark.parametrize("name", ["notes.txt", "slides.PDF", "photo.jpg", "archive.zip"])
def test_files_that_are_obviously_not_videos_get_a_friendly_reply(name: str) -> None:
    command = parse_message(message("file", {"file_key": "fk_1", "file_name": name}), RULES)
    assert isinstance(command, Nothing)
    assert name in command.reason.zh and "视频文件" in command.reason.zh
    assert "not a video file" in command.reason.en


# --- options ---------------------------------------------------------------------------------------

LINK = "https://v.example.com/a.mp4"


@pytest.mark.parametrize(
    "said",
    [
        f"{LINK} 截图 0,5,12.5",
        f"{LINK} times 0,5,12.5",
        f"{LINK} screenshots at 0, 5, 12.5",
        f"截图：0、5、12.5 {LINK}",
    ],
)
def test_screenshot_times_in_chinese_and_english(said: str) -> None:
    plan = job(text(said)).spec.options.screenshots
    assert (plan.mode, plan.times_s) == (ScreenshotMode.TIMES, (0.0, 5.0, 12.5))


def test_times_accept_minutes_and_seconds() -> None:
    assert job(text(f"{LINK} 截图 1:30, 75")).spec.options.screenshots.times_s == (75.0, 90.0)


@pytest.mark.parametrize(
    ("said", "seconds"),
    [
        (f"{LINK} 每10秒截图", 10.0),
        (f"{LINK} 每隔 2.5 秒", 2.5),
        (f"{LINK} 间隔 10", 10.0),
        (f"{LINK} interval 10", 10.0),
        (f"{LINK} interval: 15s", 15.0),
        (f"{LINK} every 10s", 10.0),
        (f"{LINK} every 2 minutes", 120.0),
        (f"{LINK} 每1分钟截图", 60.0),
    ],
)
def test_screenshot_interval_in_chinese_and_english(said: str, seconds: float) -> None:
    plan = job(text(said)).spec.options.screenshots
    assert (plan.mode, plan.interval_s) == (ScreenshotMode.INTERVAL, seconds)


@pytest.mark.parametrize("said", [f"{LINK} 场景", f"{LINK} scenes", f"{LINK} 按场景截图"])
def test_scene_mode(said: str) -> None:
    assert job(text(said), CommandRules(default_screenshots="interval:30")).spec.options.screenshots.mode is (
        ScreenshotMode.SCENES
    )


def test_no_screenshot_option_uses_the_configured_default() -> None:
    plan = job(text(LINK), CommandRules(default_screenshots="interval:30", max_screenshots=7)).spec.options.screenshots
    assert (plan.mode, plan.interval_s, plan.max_shots) == (ScreenshotMode.INTERVAL, 30.0, 7)


def test_ordinary_english_words_are_not_options() -> None:
    plan = job(text(f"{LINK} this is 3 times faster, nice scene")).spec.options.screenshots
    assert plan.mode is ScreenshotMode.SCENES


@pytest.mark.parametrize(
    ("said", "name"),
    [
        (f"{LINK}\n任务：周会", "周会"),
        (f"任务: 产品评审 第二场\n{LINK}", "产品评审 第二场"),
        (f"{LINK} name: weekly sync", "weekly sync"),
        (f"task: Q3 review {LINK}", "Q3 review"),
        (f"任务：截图测试 {LINK} 每 5 秒", "截图测试"),
        (f"任务：周会 截图 0,5 {LINK}", "周会"),
    ],
)
def test_task_name(said: str, name: str) -> None:
    assert job(text(said)).spec.options.task_name == name


def test_a_task_name_does_not_swallow_options_after_it() -> None:
    plan = job(text(f"任务：周会 截图 0,5 {LINK}")).spec.options.screenshots
    assert plan.times_s == (0.0, 5.0)


@pytest.mark.parametrize(
    ("said", "language"),
    [
        (f"{LINK} 语言：英文", "en"),
        (f"{LINK} 语言 中文", "zh"),
        (f"{LINK} language: en", "en"),
        (f"{LINK} lang auto", None),
    ],
)
def test_language_hint(said: str, language: str | None) -> None:
    assert job(text(said)).spec.options.language == language


# --- bad options never make a job ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "zh_fragment", "en_fragment"),
    [
        (f"{LINK} interval 0", "截图间隔必须是大于 0 的秒数", "above 0"),
        (f"{LINK} 每0秒截图", "截图间隔必须是大于 0 的秒数", "above 0"),
        (f"{LINK} 截图：abc", "截图时间必须是不小于 0 的秒数", "problem: abc"),
        (f"{LINK} times: 5, -3", "有问题的：-3", "problem: -3"),
        (f"{LINK} 截图 0,5 每10秒", "只能选一种", "Choose one screenshot mode"),
        (f"{LINK} 语言：法语", "不认识的语言：法语", "Unknown language"),
    ],
)
def test_invalid_options_are_reported_with_an_example(said: str, zh_fragment: str, en_fragment: str) -> None:
    command = parse_message(text(said), RULES)
    assert isinstance(command, BadOptions), command
    assert zh_fragment in command.problem.zh
    assert en_fragment in command.problem.en
    assert "截图 0,5,12.5" in command.example.zh and "times 0,5,12.5" in command.example.en


def test_invalid_options_without_a_link_are_still_reported() -> None:
    assert isinstance(parse_message(text("interval 0"), RULES), BadOptions)


def test_times_are_capped_by_max_screenshots() -> None:
    plan = job(text(f"{LINK} 截图 1,2,3,4,5"), CommandRules(max_screenshots=3)).spec.options.screenshots
    assert plan.times_s == (1.0, 2.0, 3.0)


def test_content_that_is_not_json_is_nothing() -> None:
    broken = IncomingMessage(
        event_id="e",
        message_id="om_1",
        chat_id="oc",
        chat_type="p2p",
        message_type="text",
        content="{not json",
        sender_open_id="ou",
        sender_type="user",
    )
    assert isinstance(parse_message(broken, RULES), Help)  # an empty message: help, not a crash
