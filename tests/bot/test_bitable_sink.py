"""BitableSink through the real FeishuClient (real lark-oapi) against the fake Open Platform.

Assertions are on what the fake recorded and the state it keeps: the Base, its typed schema, the rows
and their values per type, the uploaded files behind attachment cells, collaborators and the owner.
Screenshots, contact sheets, subtitles and transcript files are real, made by the pipeline from the
``speech_video`` fixture. Waits (upload throttling) run on a manual clock: recorded, never spent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.feishu import FeishuClient, FeishuError, TransientError
from bot.inbound.commands import FEISHU_RESOURCE
from bot.job.feishu_sources import FEISHU_DRIVE_MEDIA
from bot.job.record import SkippedRow
from bot.job.result_rows import (
    BATCH_MAX_BYTES,
    CUT_MARK,
    RESULT_FIELDS,
    STATUS_OPTIONS,
    TABLE_NAME,
    TEXT_CELL_MAX_BYTES,
    Col,
)
from bot.job.results_sink import BitableSink, ResultsTable
from bot.keys import base_name_tag, rows_client_token, stable_uuid
from pipeline import ffmpeg
from pipeline.errors import JobCancelled
from pipeline.models import (
    CancelToken,
    Segment,
    Transcript,
    UserText,
    VideoFailure,
    VideoOutputs,
    VideoResult,
    VideoSource,
    VideoStatus,
)
from pipeline.outputs import write_video_outputs
from tests.support import media
from tests.support.feishu import ATTACHMENT, DATE, NUMBER, SINGLE_SELECT, TEXT, URL, FakeFeishu
from tests.support.shots import frames_from

OWNER = "ou_7d8a6e6df7621556ce0d21922b676706ccs"
JOB = "job-5f1c2a"
APPS = "/open-apis/bitable/v1/apps"
UPLOAD = "/open-apis/drive/v1/medias/upload_all"
BATCH = "/open-apis/bitable/v1/apps/*/tables/*/records/batch_create"
ANALYSED_AT = 1_718_000_000.25


class ManualClock:
    """A clock that moves only when someone sleeps on it: waits are recorded, never spent."""

    def __init__(self) -> None:
        self.now = 500.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Checkpoints:
    """What the caller would persist: every checkpoint the sink saved, in order."""

    def __init__(self, fail_when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.saved: list[dict[str, Any]] = []
        self._fail_when = fail_when

    def __call__(self, state: dict[str, Any]) -> None:
        if self._fail_when is not None and self._fail_when(state):
            raise RuntimeError("the process died while saving")
        # What a JSON column would keep: the checkpoint must survive a round trip.
        self.saved.append(json.loads(json.dumps(state)))

    @property
    def last(self) -> dict[str, Any]:
        return self.saved[-1]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sink(feishu_client: FeishuClient, clock: ManualClock) -> BitableSink:
    return BitableSink(feishu_client, default_folder_token="fldcnResultsFolder", clock=clock, sleep=clock.sleep)


@pytest.fixture(scope="module")
def video_media(speech_video: Path) -> Any:
    return ffmpeg.probe(speech_video)


def speech_transcript(segments: tuple[Segment, ...] | None = None, language: str = "en") -> Transcript:
    default = tuple(
        Segment(start=0.4 + 3.8 * n, end=3.9 + 3.8 * n, text=sentence)
        for n, sentence in enumerate(media.SPEECH_SENTENCES)
    )
    return Transcript(segments=segments or default, language=language, backend="whisper", model="tiny.en")


def analysed(
    index: int,
    source: VideoSource,
    out_dir: Path,
    speech_video: Path,
    probed: Any,
    *,
    shot_times: tuple[float, ...] = (1.0, 5.0, 9.0),
    transcript: Transcript | None = None,
) -> VideoResult:
    """A finished video with real files: JPEG frames of the test video, and the pipeline's own outputs
    (transcript TXT/JSON, SRT, contact sheet) written from them."""
    shots = frames_from(speech_video, shot_times, out_dir / "shots")
    result = VideoResult(
        index=index,
        source=source,
        status=VideoStatus.OK,
        media=probed,
        transcript=transcript or speech_transcript(),
        screenshots=shots,
        keywords=list(media.SPEECH_KEYWORDS),
        notes=[UserText(zh="已按场景截图", en="screenshots at scene changes")],
        processing_s=12.34,
        analysed_at=ANALYSED_AT,
    )
    result.outputs = write_video_outputs(result, out_dir)
    return result


def synthetic(count: int) -> list[VideoResult]:
    """Cheap results without files, for the row-count tests."""
    return [
        VideoResult(
            index=n,
            source=VideoSource.url(f"https://cdn.example.com/v/{n:04d}.mp4", name=f"video-{n:04d}"),
            status=VideoStatus.OK,
            processing_s=1.5,
            analysed_at=ANALYSED_AT,
        )
        for n in range(count)
    ]


def names(fake: FakeFeishu, result: ResultsTable) -> list[str]:
    return [row[Col.VIDEO] for row in fake.records(result.app_token, result.table_id)]


def media_bytes(fake: FakeFeishu, cell: list[dict[str, Any]]) -> list[bytes]:
    return [fake.media[item["file_token"]].data for item in cell]


# --------------------------------------------------------------------------------------------------
# One job, end to end
# --------------------------------------------------------------------------------------------------


def test_a_job_becomes_a_base_the_requester_owns_with_typed_fields_and_one_row_per_video(
    fake_feishu: FakeFeishu, sink: BitableSink, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    ok = analysed(
        0,
        VideoSource.url("https://cdn.example.com/planning.mp4", name="季度规划会"),
        tmp_path / "v0",
        speech_video,
        video_media,
    )
    from_base = analysed(
        1,
        VideoSource(
            kind=FEISHU_DRIVE_MEDIA,
            locator="boxcnSourceVideo",
            name="附件视频",
            meta={"bitable_url": "https://example.feishu.cn/base/bascnSrc?table=tblSrc", "row_number": "4"},
        ),
        tmp_path / "v1",
        speech_video,
        video_media,
        shot_times=(2.0,),
    )
    failed = VideoResult(
        index=2,
        source=VideoSource(
            kind=FEISHU_RESOURCE, locator="file_v3_x", name="聊天里的视频.mp4", meta={"message_id": "om_1"}
        ),
        status=VideoStatus.FAILED,
        failure=VideoFailure(
            code="unplayable",
            stage="probing",
            message=UserText(zh="文件无法播放。", en="The file cannot be played."),
        ),
        analysed_at=ANALYSED_AT,
    )
    skipped = SkippedRow("recSkip01", 7, UserText(zh="「视频」列为空。", en="The video column is empty."), name="空行")
    saved = Checkpoints()

    result = sink.write(
        job_id=JOB,
        title="周会视频分析",
        owner_open_id=OWNER,
        videos=[ok, from_base, failed],
        skipped=[skipped],
        save_checkpoint=saved,
    )

    # The Base, where it was asked to be, opened on the results table.
    app = fake_feishu.app(result.app_token)
    assert app.name == f"周会视频分析 · {base_name_tag(JOB)}" and app.folder_token == "fldcnResultsFolder"
    assert result.url == f"{app.url}?table={result.table_id}"
    assert list(app.tables) == [result.table_id], "the empty default table is removed"
    assert app.tables[result.table_id].name == TABLE_NAME
    assert result.rows_written == 4

    # The requester owns it; they were made a full-access collaborator before the transfer.
    assert fake_feishu.owner(result.app_token) == {"member_type": "openid", "member_id": OWNER}
    assert result.owner_transferred and result.notes == ()
    (add,) = fake_feishu.find("POST", f"/open-apis/drive/v1/permissions/{result.app_token}/members")
    assert add.json == {"member_type": "openid", "member_id": OWNER, "perm": "full_access"}
    (transfer,) = fake_feishu.find("POST", "*/members/transfer_owner")
    assert add.at <= transfer.at and transfer.query["type"] == "bitable"

    # The schema: proper types, options in order, Chinese first.
    table = fake_feishu.table(result.app_token, result.table_id)
    types = {f["field_name"]: f["type"] for f in table.fields}
    assert types == {spec["field_name"]: spec["type"] for spec in RESULT_FIELDS}
    assert table.fields[0]["field_name"] == Col.VIDEO and table.fields[0]["is_primary"]
    assert types[Col.STATUS] == SINGLE_SELECT and types[Col.SOURCE] == URL and types[Col.ANALYSED_AT] == DATE
    assert types[Col.DURATION] == NUMBER and types[Col.PROCESSING] == NUMBER and types[Col.KEYWORDS] == TEXT
    for column in (Col.SCREENSHOTS, Col.CONTACT_SHEET, Col.SUBTITLES, Col.FULL_TRANSCRIPT):
        assert types[column] == ATTACHMENT
    status = table.field_named(Col.STATUS)
    assert status is not None
    assert [o["name"] for o in status["property"]["options"]] == list(STATUS_OPTIONS)
    assert STATUS_OPTIONS[0] == "成功 OK"

    rows = fake_feishu.records(result.app_token, result.table_id)
    assert [r[Col.VIDEO] for r in rows] == ["季度规划会", "附件视频", "聊天里的视频.mp4", "空行"]
    first = rows[0]
    assert first[Col.STATUS] == "成功 OK"
    assert first[Col.SOURCE] == {
        "text": "https://cdn.example.com/planning.mp4",
        "link": "https://cdn.example.com/planning.mp4",
    }
    assert first[Col.DURATION] == round(video_media.duration_s, 1)
    assert first[Col.RESOLUTION] == "320x240"
    assert first[Col.LANGUAGE] == "en"
    assert first[Col.TRANSCRIPT] == " ".join(media.SPEECH_SENTENCES)
    assert first[Col.TIMED_TRANSCRIPT].splitlines() == [
        "[00:00] Welcome to the quarterly planning meeting.",
        "[00:04] Today we will review the budget and the product roadmap.",
        "[00:08] Please send your questions to the team before Friday.",
    ]
    assert first[Col.KEYWORDS] == "meeting, budget, roadmap, friday"
    assert first[Col.ASR] == "whisper / tiny.en"
    assert first[Col.PROCESSING] == 12.3
    assert first[Col.ANALYSED_AT] == int(ANALYSED_AT * 1000)
    assert first[Col.NOTES] == "已按场景截图 / screenshots at scene changes"
    assert Col.ERROR not in first and Col.FULL_TRANSCRIPT not in first

    # Attachment cells hold files uploaded to this Base: the very JPEGs and SRT the pipeline wrote.
    assert media_bytes(fake_feishu, first[Col.SCREENSHOTS]) == [s.path.read_bytes() for s in ok.screenshots]
    assert ok.outputs is not None and ok.outputs.subtitles_srt is not None and ok.outputs.contact_sheet is not None
    assert media_bytes(fake_feishu, first[Col.SUBTITLES]) == [ok.outputs.subtitles_srt.read_bytes()]
    assert media_bytes(fake_feishu, first[Col.CONTACT_SHEET]) == [ok.outputs.contact_sheet.read_bytes()]
    shot = fake_feishu.media[first[Col.SCREENSHOTS][0]["file_token"]]
    assert (shot.parent_type, shot.parent_node, shot.name) == ("bitable_image", result.app_token, "01-00-01.jpg")
    srt = fake_feishu.media[first[Col.SUBTITLES][0]["file_token"]]
    assert (srt.parent_type, srt.name) == ("bitable_file", "季度规划会.srt")
    assert srt.data.startswith(b"1\n00:00:00,400 --> ")

    second = rows[1]
    assert second[Col.SOURCE] == {
        "text": "源表第 4 行 Source row 4",
        "link": "https://example.feishu.cn/base/bascnSrc?table=tblSrc",
    }
    assert len(second[Col.SCREENSHOTS]) == 1

    third = rows[2]
    assert third[Col.STATUS] == "失败 Failed"
    assert third[Col.ERROR] == "文件无法播放。\nThe file cannot be played."
    assert Col.SOURCE not in third  # a file sent in the chat has no link

    fourth = rows[3]
    assert fourth[Col.STATUS] == "已跳过 Skipped"
    assert fourth[Col.ERROR] == "「视频」列为空。\nThe video column is empty."
    assert "源表第 7 行" in fourth[Col.NOTES]

    # Checkpoints: the Base's name before it is made, the Base, the owner, the table, then the rows.
    assert saved.saved[0]["base_intent"]["name"] == app.name and "app_token" not in saved.saved[0]
    assert saved.saved[1]["app_token"] == result.app_token and "table_id" not in saved.saved[1]
    assert saved.last["owner_done"] and saved.last["table_id"] == result.table_id
    assert saved.last["chunks_written"] == 1 and saved.last["rows_written"] == 4
    assert saved.last["url"] == app.url and saved.last["prepared"] == {}


def test_an_explicit_folder_and_an_empty_title(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    result = sink.write(job_id=JOB, title="  ", owner_open_id=OWNER, videos=synthetic(1), folder_token="fldcnOther")

    app = fake_feishu.app(result.app_token)
    assert app.folder_token == "fldcnOther"
    assert app.name == f"视频分析 Video analysis · {base_name_tag(JOB)}"


@pytest.mark.parametrize("access", ["none", "missing"])
def test_a_folder_that_turned_unusable_falls_back_to_the_apps_space(
    fake_feishu: FakeFeishu, sink: BitableSink, access: str
) -> None:
    """The analysis is done when the Base is created: a folder the app cannot use (any more) must not lose
    it. The Base goes to the app's own space, is handed over, and a note says so."""
    fake_feishu.set_folder_access("fldcnGone", access)

    result = sink.write(job_id=JOB, title="周会", owner_open_id=OWNER, videos=synthetic(2), folder_token="fldcnGone")

    folders = [c.json.get("folder_token", "") for c in fake_feishu.find("POST", "/open-apis/bitable/v1/apps")]
    assert folders == ["fldcnGone", ""]  # refused in the folder, then made in the app's space
    assert fake_feishu.app(result.app_token).folder_token == ""
    assert result.rows_written == 2 and result.owner_transferred
    assert fake_feishu.owner(result.app_token) == {"member_type": "openid", "member_id": OWNER}
    (note,) = result.notes
    assert "机器人的空间" in note.zh and "bot's space" in note.en


def test_1254608_on_a_chunk_that_was_applied_is_not_written_again(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    """ "Same request submitted repeatedly" may mean the rows landed: the table is read, and nothing is
    sent twice."""
    fake_feishu.fail("POST", BATCH, status=400, code=1254608, msg="same request submitted repeatedly", applied=True)

    result = sink.write(job_id=JOB, title="周会", owner_open_id=OWNER, videos=synthetic(3))

    assert len(fake_feishu.find("POST", BATCH)) == 1
    assert len(fake_feishu.find("GET", f"/open-apis/bitable/v1/apps/{result.app_token}/tables/*/records")) >= 1
    assert len(fake_feishu.records(result.app_token, result.table_id)) == 3 and result.rows_written == 3


def test_1254608_on_a_chunk_that_did_not_land_sends_it_again(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    fake_feishu.fail("POST", BATCH, status=400, code=1254608, msg="same request submitted repeatedly")

    result = sink.write(job_id=JOB, title="周会", owner_open_id=OWNER, videos=synthetic(3))

    sent = fake_feishu.find("POST", BATCH)
    assert len(sent) == 2 and sent[0].query["client_token"] == sent[1].query["client_token"]
    assert len(fake_feishu.records(result.app_token, result.table_id)) == 3


def test_1200_videos_are_written_in_chunks_of_500_with_stable_client_tokens(
    fake_feishu: FakeFeishu, sink: BitableSink
) -> None:
    progress: list[tuple[int, int]] = []

    result = sink.write(
        job_id=JOB,
        title="大批量",
        owner_open_id=OWNER,
        videos=synthetic(1200),
        on_progress=lambda d, t: progress.append((d, t)),
    )

    calls = fake_feishu.find("POST", BATCH)
    assert [len(c.json["records"]) for c in calls] == [500, 500, 200]
    assert [c.query["client_token"] for c in calls] == [rows_client_token(JOB, n) for n in range(3)]
    assert names(fake_feishu, result) == [f"video-{n:04d}" for n in range(1200)]
    assert result.rows_written == 1200
    assert progress[-1] == (1200, 1200)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


# --------------------------------------------------------------------------------------------------
# Resuming and retrying
# --------------------------------------------------------------------------------------------------


def test_a_job_resumed_after_a_crash_continues_in_the_same_base_without_duplicates(
    fake_feishu: FakeFeishu, sink: BitableSink
) -> None:
    saved = Checkpoints()

    def break_the_second_chunk(done: int, total: int) -> None:
        if done == 500:  # the first chunk is written
            fake_feishu.fail("POST", BATCH, status=500, times=None)

    with pytest.raises(TransientError):
        sink.write(
            job_id=JOB, title="续传", owner_open_id=OWNER, videos=synthetic(1200),
            save_checkpoint=saved, on_progress=break_the_second_chunk,
        )  # fmt: skip
    assert saved.last["chunks_written"] == 1
    fake_feishu.clear_faults()

    result = sink.write(
        job_id=JOB,
        title="续传",
        owner_open_id=OWNER,
        videos=synthetic(1200),
        checkpoint=saved.last,
        save_checkpoint=saved,
    )

    assert len(fake_feishu.find("POST", APPS)) == 1, "no second Base"
    assert len(fake_feishu.find("POST", "*/transfer_owner")) == 1
    assert names(fake_feishu, result) == [f"video-{n:04d}" for n in range(1200)]
    assert result.app_token == saved.saved[1]["app_token"]

    # Running the finished job again writes nothing more.
    before = len(fake_feishu.requests)
    again = sink.write(job_id=JOB, title="续传", owner_open_id=OWNER, videos=synthetic(1200), checkpoint=saved.last)
    assert again == result
    assert len(fake_feishu.requests) == before


def test_a_chunk_sent_before_the_crash_is_resent_identically_and_lands_once(
    fake_feishu: FakeFeishu, sink: BitableSink, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    videos = [
        analysed(
            n,
            VideoSource.url(f"https://cdn.example.com/{n}.mp4", name=f"会议 {n}"),
            tmp_path / f"v{n}",
            speech_video,
            video_media,
        )
        for n in range(2)
    ]
    # The process dies right after Feishu applied the rows, before the checkpoint said so.
    saved = Checkpoints(fail_when=lambda state: state.get("chunks_written") == 1)
    with pytest.raises(RuntimeError, match="died"):
        sink.write(job_id=JOB, title="断点", owner_open_id=OWNER, videos=videos, save_checkpoint=saved)
    app_token, table_id = saved.last["app_token"], saved.last["table_id"]
    assert len(fake_feishu.records(app_token, table_id)) == 2
    uploads = len(fake_feishu.find("POST", UPLOAD))

    result = sink.write(
        job_id=JOB,
        title="断点",
        owner_open_id=OWNER,
        videos=videos,
        checkpoint=saved.last,
        save_checkpoint=Checkpoints(),
    )

    first, second = fake_feishu.find("POST", BATCH)
    assert first.query["client_token"] == second.query["client_token"]
    assert first.body == second.body, "uploads were not redone: the resend is the same request"
    assert second.code == 0
    assert len(fake_feishu.find("POST", UPLOAD)) == uploads
    assert names(fake_feishu, result) == ["会议 0", "会议 1"]
    assert result.rows_written == 2


def test_a_chunk_written_before_a_crash_is_not_written_again_when_the_resumed_job_has_new_timings(
    fake_feishu: FakeFeishu, sink: BitableSink
) -> None:
    # The process dies right after Feishu applied the rows, before the checkpoint said so; the resumed
    # job analysed the videos again, so the same chunk now carries other processing times.
    saved = Checkpoints(fail_when=lambda state: state.get("chunks_written") == 1)
    with pytest.raises(RuntimeError, match="died"):
        sink.write(job_id=JOB, title="重跑", owner_open_id=OWNER, videos=synthetic(3), save_checkpoint=saved)
    reanalysed = synthetic(3)
    for video in reanalysed:
        video.processing_s += 7.5

    result = sink.write(
        job_id=JOB, title="重跑", owner_open_id=OWNER, videos=reanalysed, checkpoint=saved.last,
        save_checkpoint=Checkpoints(),
    )  # fmt: skip

    first, second = fake_feishu.find("POST", BATCH)
    assert first.query["client_token"] == second.query["client_token"]
    assert second.code == 1255006  # Feishu: that token was already used with another body
    assert names(fake_feishu, result) == ["video-0000", "video-0001", "video-0002"]  # once each
    assert result.rows_written == 3


def test_rate_limits_and_server_errors_during_uploads_and_rows_still_complete_without_duplicates(
    fake_feishu: FakeFeishu, sink: BitableSink, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    videos = [
        analysed(
            n,
            VideoSource.url(f"https://cdn.example.com/{n}.mp4", name=f"v{n}"),
            tmp_path / f"v{n}",
            speech_video,
            video_media,
        )
        for n in range(2)
    ]
    fake_feishu.fail("POST", UPLOAD, status=429, times=2)
    fake_feishu.fail("POST", UPLOAD, status=502, times=1)
    fake_feishu.fail("POST", BATCH, status=429, times=1)
    fake_feishu.fail("POST", BATCH, status=500, times=2)

    result = sink.write(job_id=JOB, title="重试", owner_open_id=OWNER, videos=videos)

    rows = fake_feishu.records(result.app_token, result.table_id)
    assert [r[Col.VIDEO] for r in rows] == ["v0", "v1"]
    for row, video in zip(rows, videos, strict=True):
        assert media_bytes(fake_feishu, row[Col.SCREENSHOTS]) == [s.path.read_bytes() for s in video.screenshots]
        assert len(row[Col.SUBTITLES]) == 1 and len(row[Col.CONTACT_SHEET]) == 1
        assert Col.NOTES not in row or "上传失败" not in row[Col.NOTES]
    stored = [m for m in fake_feishu.media.values() if m.parent_node == result.app_token]
    assert len(stored) == 2 * (3 + 1 + 1), "each file stored once"
    assert sum(1 for r in fake_feishu.find("POST", BATCH) if r.code == 0) == 1


def test_an_expired_token_mid_way_is_refetched_and_the_job_completes(
    fake_feishu: FakeFeishu, sink: BitableSink, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    videos = [
        analysed(
            n,
            VideoSource.url(f"https://cdn.example.com/{n}.mp4", name=f"v{n}"),
            tmp_path / f"v{n}",
            speech_video,
            video_media,
        )
        for n in range(2)
    ]
    expired: list[int] = []

    def expire_once(done: int, total: int) -> None:
        if done == 0 and not expired:  # before the first upload
            expired.append(done)
            fake_feishu.invalidate_tokens()

    result = sink.write(job_id=JOB, title="令牌", owner_open_id=OWNER, videos=videos, on_progress=expire_once)

    assert expired == [0]
    assert len(fake_feishu.issued_tokens) == 2
    assert any(r.code == 99991663 for r in fake_feishu.requests)
    rows = fake_feishu.records(result.app_token, result.table_id)
    assert [len(r[Col.SCREENSHOTS]) for r in rows] == [3, 3]


# --------------------------------------------------------------------------------------------------
# Ownership, uploads and long texts
# --------------------------------------------------------------------------------------------------


def test_a_refused_ownership_transfer_is_noted_and_the_job_goes_on(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    fake_feishu.fail("POST", "*/members/transfer_owner", status=403, code=1063002, msg="Permission denied", times=None)
    saved = Checkpoints()

    result = sink.write(job_id=JOB, title="转移失败", owner_open_id=OWNER, videos=synthetic(3), save_checkpoint=saved)

    assert not result.owner_transferred
    (note,) = result.notes
    assert "所有权" in note.zh and "full access" in note.en
    assert fake_feishu.owner(result.app_token)["member_type"] == "app"
    assert {"member_type": "openid", "member_id": OWNER, "perm": "full_access"}.items() <= fake_feishu.members(
        result.app_token
    )[0].items()
    assert names(fake_feishu, result) == ["video-0000", "video-0001", "video-0002"]
    assert saved.last["owner_done"] and saved.last["owner_transferred"] is False


def test_uploads_are_throttled_below_feishus_limit(
    fake_feishu: FakeFeishu, sink: BitableSink, clock: ManualClock, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    video = analysed(0, VideoSource.url("https://cdn.example.com/a.mp4"), tmp_path / "v", speech_video, video_media)

    sink.write(job_id=JOB, title="限速", owner_open_id=OWNER, videos=[video])

    assert len(fake_feishu.find("POST", UPLOAD)) == 5  # three screenshots, the contact sheet, the SRT
    assert clock.waits == pytest.approx([0.25] * 4)  # 4 uploads a second at most, by the sink's clock

    # The limit is the app's, not the job's: the next job's first upload waits its turn too.
    sink.write(job_id="job-2", title="限速 2", owner_open_id=OWNER, videos=[video])
    assert clock.waits == pytest.approx([0.25] * 9)
    with pytest.raises(ValueError, match="5 QPS"):
        BitableSink(FeishuClient("cli_x", "secret"), upload_qps=5.0)


def test_a_failed_or_oversized_upload_leaves_the_row_without_that_file_and_says_so(
    fake_feishu: FakeFeishu, sink: BitableSink, speech_video: Path, video_media: Any, tmp_path: Path
) -> None:
    video = analysed(
        0, VideoSource.url("https://cdn.example.com/a.mp4", name="a"), tmp_path / "v", speech_video, video_media
    )
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as fh:  # sparse: 21 MB on paper, nothing on disk
        fh.truncate(21 * 1024 * 1024)
    gone = tmp_path / "gone.jpg"
    video.screenshots = [
        *video.screenshots,
        type(video.screenshots[0])(time_s=10.0, path=huge, reason=video.screenshots[0].reason),
        type(video.screenshots[0])(time_s=11.0, path=gone, reason=video.screenshots[0].reason),
    ]
    # The first upload fails on every attempt the client makes.
    fake_feishu.fail("POST", UPLOAD, status=500, times=4)

    result = sink.write(job_id=JOB, title="上传失败", owner_open_id=OWNER, videos=[video])

    (row,) = fake_feishu.records(result.app_token, result.table_id)
    assert row[Col.STATUS] == "成功 OK"
    assert media_bytes(fake_feishu, row[Col.SCREENSHOTS]) == [s.path.read_bytes() for s in video.screenshots[1:3]]
    notes = row[Col.NOTES].splitlines()
    assert "截图 1（00:01）上传失败，未附上。 / The screenshot 1 (00:01) failed to upload: not attached." in notes
    assert any("超过 20 MB" in n for n in notes)
    assert any("文件缺失" in n for n in notes)
    sizes = [int(r.form_value("size") or 0) for r in fake_feishu.find("POST", UPLOAD)]
    assert max(sizes) < 20 * 1024 * 1024, "the oversized file was never sent"
    assert len(row[Col.SUBTITLES]) == 1 and len(row[Col.CONTACT_SHEET]) == 1


def test_a_long_transcript_is_cut_below_the_cell_limit_and_attached_whole(
    fake_feishu: FakeFeishu,
    feishu_client: FeishuClient,
    sink: BitableSink,
    speech_video: Path,
    video_media: Any,
    tmp_path: Path,
) -> None:
    fake_feishu.text_cell_limit_bytes = 196_608
    sentence = "今天我们回顾预算和产品路线图，请在周五之前把问题发给团队。" * 3
    segments = tuple(Segment(start=2.0 * n, end=2.0 * n + 1.9, text=f"{n}：{sentence}") for n in range(3000))
    video = analysed(
        0,
        VideoSource.url("https://cdn.example.com/long.mp4", name="长会议"),
        tmp_path / "v",
        speech_video,
        video_media,
        transcript=speech_transcript(segments, language="zh"),
    )
    assert video.transcript is not None and len(video.transcript.text.encode()) > 3 * TEXT_CELL_MAX_BYTES

    result = sink.write(job_id=JOB, title="长文本", owner_open_id=OWNER, videos=[video])

    (row,) = fake_feishu.records(result.app_token, result.table_id)
    for column in (Col.TRANSCRIPT, Col.TIMED_TRANSCRIPT):
        cell = row[column]
        assert cell.endswith(CUT_MARK)
        assert len(json.dumps(cell, ensure_ascii=False).encode()) <= TEXT_CELL_MAX_BYTES
    assert row[Col.TRANSCRIPT].startswith(video.transcript.text[:1000])
    assert row[Col.TIMED_TRANSCRIPT].splitlines()[1].startswith("[0:00:02] 1：")  # past an hour: h:mm:ss
    assert video.outputs is not None and video.outputs.transcript_txt is not None
    (full,) = media_bytes(fake_feishu, row[Col.FULL_TRANSCRIPT])
    assert full == video.outputs.transcript_txt.read_bytes()
    assert "全文见附件" in row[Col.NOTES]

    # Uncut, Feishu (as the fake plays it) refuses the cell: the cut is what lets the row in.
    with pytest.raises(FeishuError) as refused:
        feishu_client.batch_create_records(
            result.app_token, result.table_id, [{Col.TRANSCRIPT: video.transcript.text}], client_token=stable_uuid("x")
        )
    assert refused.value.code == 1254130


def test_a_cut_transcript_without_a_txt_file_is_attached_from_the_transcript_itself(
    fake_feishu: FakeFeishu, sink: BitableSink, tmp_path: Path
) -> None:
    segments = tuple(Segment(start=float(n), end=n + 0.9, text="word " * 40) for n in range(1000))
    result_in = VideoResult(
        index=0,
        source=VideoSource.url("https://cdn.example.com/x.mp4", name="x"),
        status=VideoStatus.OK,
        transcript=speech_transcript(segments),
        outputs=VideoOutputs(directory=tmp_path),
        analysed_at=ANALYSED_AT,
    )

    result = sink.write(job_id=JOB, title="无文件", owner_open_id=OWNER, videos=[result_in])

    assert (tmp_path / "transcript-full.txt").is_file()  # made inside the video's own folder

    (row,) = fake_feishu.records(result.app_token, result.table_id)
    (full,) = media_bytes(fake_feishu, row[Col.FULL_TRANSCRIPT])
    text = full.decode("utf-8")
    assert text.startswith("x\n语言 Language: en")
    assert text.count("word") == 40 * 1000 * 2  # the timestamped lines and the full text, nothing cut


# --------------------------------------------------------------------------------------------------
# Cancelling
# --------------------------------------------------------------------------------------------------


def test_cancelling_keeps_what_was_written_and_a_resume_finishes_in_the_same_base(
    fake_feishu: FakeFeishu, sink: BitableSink
) -> None:
    cancel = CancelToken()
    saved = Checkpoints()

    def cancel_at_the_start(done: int, total: int) -> None:
        if done == 0:  # nothing written yet: the rows are being prepared
            cancel.cancel()

    with pytest.raises(JobCancelled):
        sink.write(
            job_id=JOB, title="取消", owner_open_id=OWNER, videos=synthetic(5),
            save_checkpoint=saved, on_progress=cancel_at_the_start, cancel=cancel,
        )  # fmt: skip
    assert fake_feishu.find("POST", BATCH) == []

    result = sink.write(
        job_id=JOB, title="取消", owner_open_id=OWNER, videos=synthetic(5), checkpoint=saved.last, cancel=CancelToken()
    )

    assert len(fake_feishu.find("POST", APPS)) == 1
    assert names(fake_feishu, result) == [f"video-{n:04d}" for n in range(5)]


def test_a_job_cancelled_before_the_write_creates_nothing(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    cancel = CancelToken()
    cancel.cancel()

    with pytest.raises(JobCancelled):
        sink.write(job_id=JOB, title="t", owner_open_id=OWNER, videos=synthetic(1), cancel=cancel)

    assert fake_feishu.find("POST", APPS) == []


def test_rows_with_long_texts_are_chunked_by_request_size(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    # About 60 KB of transcript per cell, two cells per row: 40 rows are more than one request should carry.
    segments = tuple(Segment(start=float(n), end=n + 0.9, text="预算路线图" * 40) for n in range(100))
    videos = [
        VideoResult(
            index=n,
            source=VideoSource.url(f"https://cdn.example.com/{n}.mp4", name=f"长{n:02d}"),
            status=VideoStatus.OK,
            transcript=speech_transcript(segments, language="zh"),
            analysed_at=ANALYSED_AT,
        )
        for n in range(40)
    ]

    result = sink.write(job_id=JOB, title="分块", owner_open_id=OWNER, videos=videos)

    calls = fake_feishu.find("POST", BATCH)
    assert len(calls) == 2
    assert all(len(c.body) <= BATCH_MAX_BYTES for c in calls)
    assert sum(len(c.json["records"]) for c in calls) == 40
    assert names(fake_feishu, result) == [f"长{n:02d}" for n in range(40)]
    assert fake_feishu.find("POST", UPLOAD) == []  # nothing was cut, so no transcript files


def test_a_crash_right_after_the_table_was_made_reuses_that_table(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    saved = Checkpoints(fail_when=lambda state: "table_id" in state)
    with pytest.raises(RuntimeError, match="died"):
        sink.write(job_id=JOB, title="建表", owner_open_id=OWNER, videos=synthetic(2), save_checkpoint=saved)
    assert "table_id" not in saved.last

    result = sink.write(job_id=JOB, title="建表", owner_open_id=OWNER, videos=synthetic(2), checkpoint=saved.last)

    assert len(fake_feishu.find("POST", f"{APPS}/*/tables")) == 1, "no second results table"
    assert list(fake_feishu.app(result.app_token).tables) == [result.table_id]
    assert names(fake_feishu, result) == ["video-0000", "video-0001"]


def test_when_the_requester_can_be_neither_added_nor_made_owner_the_note_says_to_ask_an_admin(
    fake_feishu: FakeFeishu, sink: BitableSink
) -> None:
    fake_feishu.fail("POST", "/open-apis/drive/v1/permissions/*/members", status=403, code=1063002, times=None)
    fake_feishu.fail("POST", "*/members/transfer_owner", status=403, code=1063002, times=None)

    result = sink.write(job_id=JOB, title="无权限", owner_open_id=OWNER, videos=synthetic(1))

    (note,) = result.notes
    assert "管理员" in note.zh and "administrator" in note.en
    assert names(fake_feishu, result) == ["video-0000"]


def test_progress_counts_rows_written_not_rows_prepared(fake_feishu: FakeFeishu, sink: BitableSink) -> None:
    # The write of the rows is refused: the card must not say "2 / 2 rows" with none in the table.
    fake_feishu.fail("POST", BATCH, status=400, code=1254001, msg="WrongRequestBody", times=None)
    progress: list[tuple[int, int]] = []
    with pytest.raises(FeishuError):
        sink.write(
            job_id=JOB,
            title="t",
            owner_open_id=OWNER,
            videos=synthetic(2),
            on_progress=lambda d, t: progress.append((d, t)),
        )
    assert progress and all(done == 0 for done, _ in progress), progress
    fake_feishu.clear_faults()
    progress.clear()
    sink.write(
        job_id=JOB + "-ok",
        title="t",
        owner_open_id=OWNER,
        videos=synthetic(2),
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert progress[-1] == (2, 2)
