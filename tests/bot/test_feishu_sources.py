"""Feishu-backed sources through the real FeishuClient (real lark-oapi) against the fake Open Platform:
chat files, Bitable attachments, and Bitable links expanded into one source per row. Assertions are on
the files written, the requests the fake recorded, and the errors a user would read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.feishu import FeishuClient
from bot.inbound.commands import FEISHU_BITABLE, FEISHU_RESOURCE, classify_link
from bot.job.bitable_reader import BitableExpansion, expand_bitable
from bot.job.feishu_sources import (
    FEISHU_DRIVE_MEDIA,
    BitableAccessError,
    BitableEmptyError,
    BitableNotFoundError,
    BitableNoVideoError,
    FeishuFileError,
    FeishuFileTooLargeError,
    MessageResourceFetcher,
    feishu_registry,
)
from bot.job.record import SkippedRow
from pipeline.errors import DownloadError, TooLargeError, UnsupportedSourceError
from pipeline.models import CancelToken, UserText, VideoSource
from tests.support.feishu import ATTACHMENT, TEXT, URL, FakeFeishu

APP = "bascnSourceBase0000000000001"
TABLE = "tblSourceTable01"
MESSAGE = "om_dc13264520392913993dd051dba21dcf"
RESOURCES = "/open-apis/im/v1/messages/*/resources/*"
RECORDS = "/open-apis/bitable/v1/apps/*/tables/*/records"


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings.load(_env_file=None, work_dir=tmp_path / "work", data_dir=tmp_path / "data", **values)


def bitable_source(table_id: str = TABLE, view_id: str = "", app_token: str = APP) -> VideoSource:
    link = f"https://example.feishu.cn/base/{app_token}" + (f"?table={table_id}" if table_id else "")
    if view_id:
        link += f"&view={view_id}"
    source = classify_link(link)
    assert isinstance(source, VideoSource)
    assert source.kind == FEISHU_BITABLE
    return source


def text(value: str) -> list[dict[str, str]]:
    """A text cell as the records API returns it: a list of segments."""
    return [{"type": "text", "text": value}]


def url_cell(link: str, label: str = "") -> dict[str, str]:
    return {"link": link, "text": label or link}


# --------------------------------------------------------------------------------------------------
# Files sent in a chat
# --------------------------------------------------------------------------------------------------


def test_a_video_message_is_downloaded_with_type_file(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, speech_video: Path, tmp_path: Path
) -> None:
    data = speech_video.read_bytes()
    fake_feishu.add_message_resource(MESSAGE, "file_v3_video", data, file_name="周会 录像.mp4")
    source = VideoSource(
        kind=FEISHU_RESOURCE, locator="file_v3_video", name="周会 录像.mp4", meta={"message_id": MESSAGE}
    )
    seen: list[tuple[int, int | None]] = []
    registry = feishu_registry(settings(tmp_path), feishu_client)

    fetched = registry.fetch(source, tmp_path / "in", on_bytes=lambda d, t: seen.append((d, t)), cancel=CancelToken())

    assert fetched.path.read_bytes() == data
    assert fetched.path.parent == tmp_path / "in"
    assert fetched.name == "周会 录像.mp4"
    assert fetched.size_bytes == len(data)
    assert seen == [(len(data), len(data))]
    (request,) = fake_feishu.find("GET", RESOURCES)
    assert request.path == f"/open-apis/im/v1/messages/{MESSAGE}/resources/file_v3_video"
    assert request.query["type"] == "file"


def test_a_file_over_our_cap_is_refused_and_leaves_nothing(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_message_resource(MESSAGE, "file_big", b"\x00" * 5000)
    registry = feishu_registry(settings(tmp_path, max_video_bytes=4096), feishu_client)
    source = VideoSource(kind=FEISHU_RESOURCE, locator="file_big", meta={"message_id": MESSAGE})

    with pytest.raises(FeishuFileTooLargeError) as caught:
        registry.fetch(source, tmp_path / "in", cancel=CancelToken())

    assert isinstance(caught.value, TooLargeError)  # the pipeline reports it as any too-large video
    assert caught.value.limit_bytes == 4096
    assert "链接" in caught.value.user_message.zh and "link" in caught.value.user_message.en
    assert list((tmp_path / "in").iterdir()) == []


def test_feishus_own_100_mb_refusal_says_send_a_link(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path
) -> None:
    # The real answer for a file over 100 MB; the fake would need 100 MB of bytes to produce it itself.
    fake_feishu.fail("GET", RESOURCES, status=400, code=234037, msg="Downloaded file size exceeds limit.")
    fetcher = MessageResourceFetcher(feishu_client, max_bytes=2 * 1024**3)
    source = VideoSource(kind=FEISHU_RESOURCE, locator="file_huge", meta={"message_id": MESSAGE})

    with pytest.raises(FeishuFileTooLargeError) as caught:
        fetcher.fetch(source, tmp_path, on_bytes=None, cancel=CancelToken())

    assert caught.value.limit_bytes == 100 * 1024 * 1024  # Feishu's cap, though ours is 2 GB
    assert "100 MB" in caught.value.user_message.zh
    assert "send the link" in caught.value.user_message.en
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("recalled", [False, True])
def test_a_missing_or_recalled_file_asks_to_send_it_again(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path, recalled: bool
) -> None:
    if recalled:
        fake_feishu.add_message_resource(MESSAGE, "file_gone", b"video")
        fake_feishu.recall_message(MESSAGE)
    fetcher = MessageResourceFetcher(feishu_client, max_bytes=1024)
    source = VideoSource(kind=FEISHU_RESOURCE, locator="file_gone", meta={"message_id": MESSAGE})

    with pytest.raises(FeishuFileError) as caught:
        fetcher.fetch(source, tmp_path, on_bytes=None, cancel=CancelToken())

    assert "请重新发送视频" in caught.value.user_message.zh
    assert "send the video again" in caught.value.user_message.en
    assert list(tmp_path.iterdir()) == []


def test_a_feishu_outage_is_a_retryable_download_error(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_message_resource(MESSAGE, "file_v3_video", b"video bytes")
    fake_feishu.fail("GET", RESOURCES, status=503, times=None)
    fetcher = MessageResourceFetcher(feishu_client, max_bytes=1024)
    source = VideoSource(kind=FEISHU_RESOURCE, locator="file_v3_video", meta={"message_id": MESSAGE})

    with pytest.raises(DownloadError) as caught:
        fetcher.fetch(source, tmp_path, on_bytes=None, cancel=CancelToken())

    assert caught.value.retryable
    assert "重试" in caught.value.user_message.zh
    assert len(fake_feishu.find("GET", RESOURCES)) == 4  # the client's attempts, then the user is told


def test_the_bot_registry_never_reads_local_files(feishu_client: FeishuClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"server file")
    registry = feishu_registry(settings(tmp_path), feishu_client)

    assert registry.kinds() == {"url", FEISHU_RESOURCE, FEISHU_DRIVE_MEDIA}
    with pytest.raises(UnsupportedSourceError):
        registry.fetch(VideoSource.local(secret), tmp_path / "in", cancel=CancelToken())


# --------------------------------------------------------------------------------------------------
# Bitable links
# --------------------------------------------------------------------------------------------------


def test_a_url_column_becomes_one_source_per_row_named_from_the_title_column(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [
            {"field_name": "标题", "type": TEXT},
            {"field_name": "负责人备注", "type": TEXT},
            {"field_name": "视频链接", "type": URL},
        ],
        [
            {"标题": text("产品发布会"), "视频链接": url_cell("https://cdn.example.com/launch.mp4", "发布会")},
            {"标题": text("  周会\n第 3 周 "), "视频链接": url_cell("https://www.bilibili.com/video/BV1xx411c7mD")},
        ],
        table_name="视频清单",
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert [(s.kind, s.locator, s.name) for s in expansion.sources] == [
        ("url", "https://cdn.example.com/launch.mp4", "产品发布会"),
        ("url", "https://www.bilibili.com/video/BV1xx411c7mD", "周会 第 3 周"),
    ]
    assert expansion.skipped == [] and expansion.over_cap == []
    assert expansion.table_name == "视频清单"
    assert (expansion.column, expansion.title_column) == ("视频链接", "标题")
    assert "「视频链接」" in expansion.notes[0].zh and "“标题”" in expansion.notes[0].en
    first = expansion.sources[0].meta
    records = fake_feishu.table(APP, TABLE).records
    assert first["record_id"] == records[0]["record_id"] and first["row_number"] == "1"
    assert first["app_token"] == APP and first["table_id"] == TABLE


def test_an_attachment_column_gives_drive_media_sources_that_download_with_the_permission_extra(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, speech_video: Path, tmp_path: Path
) -> None:
    data = speech_video.read_bytes()
    fake_feishu.add_drive_media("boxcnVideoToken0000000000001", data, "演示.mp4", parent_node=APP)
    table = fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "名称", "type": TEXT}, {"field_name": "附件", "type": ATTACHMENT}],
        [
            {
                "名称": text("演示视频"),
                "附件": [
                    {
                        "file_token": "boxcnVideoToken0000000000001",
                        "name": "演示.mp4",
                        "size": len(data),
                        "type": "video/mp4",
                    }
                ],
            }
        ],
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)
    (source,) = expansion.sources
    assert (source.kind, source.locator, source.name) == (
        FEISHU_DRIVE_MEDIA,
        "boxcnVideoToken0000000000001",
        "演示视频",
    )
    assert source.meta["size"] == str(len(data)) and source.meta["file_name"] == "演示.mp4"

    # The fake's "CDN" for temporary download URLs is on loopback, like the rest of it.
    registry = feishu_registry(settings(tmp_path, allow_private_urls=True), feishu_client)
    fetched = registry.fetch(source, tmp_path / "in", cancel=CancelToken())

    assert fetched.path.read_bytes() == data
    assert fetched.content_type == "video/mp4"
    # Streamed from a temporary URL, not through the SDK's download (which holds the file in memory).
    assert fake_feishu.find("GET", "/open-apis/drive/v1/medias/*/download") == []
    assert len(fake_feishu.find("GET", "/cdn/tmp/*")) == 1
    (download,) = fake_feishu.find("GET", "/open-apis/drive/v1/medias/batch_get_tmp_download_url")
    field_id = table.field_named("附件")["field_id"]  # type: ignore[index]
    record_id = table.records[0]["record_id"]
    assert json.loads(download.query["extra"]) == {
        "bitablePerm": {"tableId": TABLE, "attachments": {field_id: {record_id: ["boxcnVideoToken0000000000001"]}}}
    }


def test_an_extra_given_in_the_attachment_url_is_used_as_is(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_drive_media("boxcnAdvancedPerm00000000001", b"\x00\x00\x00\x18ftypmp42", "a.mp4")
    given = '{"bitablePerm":{"tableId":"tblSourceTable01","rev":7}}'
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "视频", "type": ATTACHMENT}],
        [
            {
                "视频": [
                    {
                        "file_token": "boxcnAdvancedPerm00000000001",
                        "name": "a.mp4",
                        "size": 12,
                        "type": "video/mp4",
                        "url": "https://open.feishu.cn/open-apis/drive/v1/medias/boxcnAdvancedPerm00000000001/download"
                        "?extra=%7B%22bitablePerm%22%3A%7B%22tableId%22%3A%22tblSourceTable01%22%2C%22rev%22%3A7%7D%7D",
                    }
                ]
            }
        ],
    )

    (source,) = expand_bitable(feishu_client, bitable_source(), max_rows=5).sources
    registry = feishu_registry(settings(tmp_path, allow_private_urls=True), feishu_client)
    registry.fetch(source, tmp_path / "in", cancel=CancelToken())

    (download,) = fake_feishu.find("GET", "/open-apis/drive/v1/medias/batch_get_tmp_download_url")
    assert download.query["extra"] == given


def test_an_oversized_attachment_is_refused_before_any_download(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_drive_media("boxcnHugeVideo00000000000001", b"small here", "huge.mov")
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "视频文件", "type": ATTACHMENT}],
        [{"视频文件": [{"file_token": "boxcnHugeVideo00000000000001", "name": "huge.mov", "size": 5 * 1024**3}]}],
    )
    (source,) = expand_bitable(feishu_client, bitable_source(), max_rows=5).sources
    registry = feishu_registry(settings(tmp_path, max_video_bytes=1024**3), feishu_client)

    with pytest.raises(TooLargeError) as caught:
        registry.fetch(source, tmp_path / "in", cancel=CancelToken())

    assert caught.value.size_bytes == 5 * 1024**3
    assert fake_feishu.find("GET", "/open-apis/drive/v1/medias/*") == []


def test_rows_without_a_usable_video_are_reported_with_their_reason(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "名称", "type": TEXT}, {"field_name": "视频地址", "type": TEXT}],
        [
            {"名称": text("好的"), "视频地址": text("见 https://cdn.example.com/a.mp4 谢谢")},
            {"名称": text("空行")},
            {"名称": text("没有链接"), "视频地址": text("稍后补充")},
            {"名称": text("FTP"), "视频地址": text("ftp://files.example.com/b.mp4")},
            {"名称": text("文档"), "视频地址": text("https://example.feishu.cn/docx/AbCdEf123")},
            {"名称": text("另一个表"), "视频地址": text("https://example.feishu.cn/base/bascnOther?table=tblX")},
            {
                "名称": text("超链接段"),
                "视频地址": [{"type": "url", "text": "点这里", "link": "https://cdn.example.com/c.mp4"}],
            },
        ],
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert [(s.locator, s.name, s.meta["row_number"]) for s in expansion.sources] == [
        ("https://cdn.example.com/a.mp4", "好的", "1"),
        ("https://cdn.example.com/c.mp4", "超链接段", "7"),
    ]
    reasons = {row.row_number: row for row in expansion.skipped}
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert reasons[2].reason.zh == "「视频地址」列为空。" and reasons[2].name == "空行"
    assert "稍后补充" in reasons[3].reason.zh and "no http(s) link" in reasons[3].reason.en
    assert "http(s)" in reasons[4].reason.zh  # an ftp:// cell has no http(s) link
    assert "不是可下载的视频" in reasons[5].reason.zh and reasons[5].link.endswith("/docx/AbCdEf123")
    assert "another Base" in reasons[6].reason.en
    records = fake_feishu.table(APP, TABLE).records
    assert [r.record_id for r in expansion.skipped] == [records[i]["record_id"] for i in (1, 2, 3, 4, 5)]
    assert any("5 行" in note.zh for note in expansion.notes)


def test_a_column_named_like_video_wins_over_a_busier_one(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    links = [f"https://ref.example.com/{n}.mp4" for n in range(4)]
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [
            {"field_name": "标题", "type": TEXT},
            {"field_name": "参考", "type": TEXT},
            {"field_name": "Video URL", "type": URL},
            {"field_name": "素材附件", "type": ATTACHMENT},
        ],
        [
            {"标题": text(f"第{n}条"), "参考": text(link), **({"Video URL": url_cell(link)} if n < 2 else {})}
            for n, link in enumerate(links)
        ],
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert expansion.column == "Video URL"
    assert len(expansion.sources) == 2
    assert [r.row_number for r in expansion.skipped] == [3, 4]


def test_without_a_named_column_the_one_with_most_videos_is_chosen(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [
            {"field_name": "说明", "type": TEXT},
            {"field_name": "备用", "type": TEXT},
            {"field_name": "来源", "type": TEXT},
        ],
        [
            {"说明": text("https://a.example.com/1.mp4"), "来源": text("https://b.example.com/1.mp4")},
            {"来源": text("https://b.example.com/2.mp4")},
            {"来源": text("https://b.example.com/3.mp4")},
        ],
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert expansion.column == "来源"
    # The primary text column names the videos when no column is named like a title.
    assert expansion.title_column == "说明"
    assert [s.locator for s in expansion.sources] == [f"https://b.example.com/{n}.mp4" for n in (1, 2, 3)]


def test_non_video_attachments_are_skipped_with_their_names(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "附件", "type": ATTACHMENT}],
        [
            {"附件": [{"file_token": "boxcnPdf", "name": "纪要.pdf", "size": 10, "type": "application/pdf"}]},
            {
                "附件": [
                    {"file_token": "boxcnCover", "name": "封面.png", "size": 10, "type": "image/png"},
                    {"file_token": "boxcnClipA", "name": "a.MOV", "size": 10, "type": "application/octet-stream"},
                    {"file_token": "boxcnClipB", "name": "b.mp4", "size": 10, "type": "video/mp4"},
                ]
            },
        ],
    )

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert [s.locator for s in expansion.sources] == ["boxcnClipA"]  # found by its extension
    (skipped,) = expansion.skipped
    assert skipped.row_number == 1 and "纪要.pdf" in skipped.reason.zh
    assert any("只分析第一个" in note.zh for note in expansion.notes)


def test_a_large_table_is_read_page_by_page_and_capped(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "名称", "type": TEXT}, {"field_name": "链接", "type": URL}],
        [{"名称": text(f"视频 {n:03d}"), "链接": url_cell(f"https://cdn.example.com/{n:03d}.mp4")} for n in range(750)],
    )

    expansion = expand_bitable(feishu_client, bitable_source(view_id="vewAllRows1"), max_rows=100)

    assert [s.name for s in expansion.sources] == [f"视频 {n:03d}" for n in range(100)]
    assert len(expansion.over_cap) == 650
    assert expansion.over_cap[0].row_number == 101 and expansion.over_cap[-1].row_number == 750
    assert expansion.over_cap[0].name == "视频 100" and "100" in expansion.over_cap[0].reason.en
    assert any("650" in note.zh for note in expansion.notes)
    pages = fake_feishu.find("GET", RECORDS)
    assert len(pages) == 2
    assert [p.query.get("page_size") for p in pages] == ["500", "500"]
    assert "page_token" not in pages[0].query and pages[1].query["page_token"]
    assert all(p.query["view_id"] == "vewAllRows1" for p in pages)


def test_a_page_too_large_for_feishu_is_read_again_in_smaller_pages(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP,
        TABLE,
        [{"field_name": "链接", "type": URL}],
        [{"链接": url_cell(f"https://e.com/{n}.mp4")} for n in range(60)],
    )
    fake_feishu.fail("GET", RECORDS, status=400, code=1254030, msg="TooLargeResponse")

    expansion = expand_bitable(feishu_client, bitable_source(), max_rows=100)

    assert len(expansion.sources) == 60
    assert [p.query["page_size"] for p in fake_feishu.find("GET", RECORDS)] == ["500", "50", "50"]


def test_a_base_the_app_was_not_added_to_says_how_to_add_it(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(APP, TABLE, [{"field_name": "链接", "type": URL}], readable=False)

    with pytest.raises(BitableAccessError) as caught:
        expand_bitable(feishu_client, bitable_source(), max_rows=20)

    message = caught.value.user_message
    assert "添加文档应用" in message.zh and "分享" in message.zh
    assert "Add document app" in message.en and "Share" in message.en
    assert caught.value.code == "bitable_no_access"


def test_an_empty_table_has_nothing_to_analyse(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.add_bitable(APP, TABLE, [{"field_name": "链接", "type": URL}], [], table_name="待办视频")

    with pytest.raises(BitableEmptyError) as caught:
        expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert "「待办视频」是空的" in caught.value.user_message.zh
    assert "empty" in caught.value.user_message.en


def test_a_table_with_rows_but_no_videos_names_the_columns_checked(
    fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    fake_feishu.add_bitable(
        APP, TABLE, [{"field_name": "名称", "type": TEXT}, {"field_name": "链接", "type": URL}], [{"名称": text("a")}]
    )

    with pytest.raises(BitableNoVideoError) as caught:
        expand_bitable(feishu_client, bitable_source(), max_rows=20)

    assert "名称、链接" in caught.value.user_message.zh


def test_a_missing_table_or_base_is_reported_clearly(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        APP, TABLE, [{"field_name": "链接", "type": URL}], [{"链接": url_cell("https://e.com/a.mp4")}]
    )

    with pytest.raises(BitableNotFoundError) as table_missing:
        expand_bitable(feishu_client, bitable_source(table_id="tblDeletedTable1"), max_rows=20)
    with pytest.raises(BitableNotFoundError) as base_missing:
        expand_bitable(feishu_client, bitable_source(app_token="bascnNoSuchBase"), max_rows=20)

    assert "数据表不存在" in table_missing.value.user_message.zh
    assert "table in the link does not exist" in table_missing.value.user_message.en
    assert "找不到这个多维表格" in base_missing.value.user_message.zh


def test_a_link_without_a_table_reads_the_first_table(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        APP, TABLE, [{"field_name": "链接", "type": URL}], [{"链接": url_cell("https://e.com/a.mp4")}]
    )
    fake_feishu.add_bitable(APP, "tblSecondTable01", [{"field_name": "链接", "type": URL}], [], table_name="第二张")

    expansion = expand_bitable(feishu_client, bitable_source(table_id=""), max_rows=20)

    assert expansion.table_id == TABLE
    assert [s.locator for s in expansion.sources] == ["https://e.com/a.mp4"]


def test_expansions_round_trip_through_json() -> None:
    expansion = BitableExpansion(
        sources=[VideoSource.url("https://e.com/a.mp4", name="a")],
        skipped=[SkippedRow("rec1", 2, UserText(zh="空", en="empty"), name="b", link="https://e.com/b")],
        table_name="表",
        app_token=APP,
        table_id=TABLE,
        column="链接",
        over_cap=[SkippedRow("rec3", 3, UserText(zh="超出", en="over"))],
        notes=[UserText(zh="注", en="note")],
    )

    assert BitableExpansion.from_dict(json.loads(json.dumps(expansion.to_dict()))) == expansion
