"""Feishu's 10,000 uploads a day per app: a count in the state database that jobs reserve from, and a
results Base that gets the most useful attachments first when the day's allowance runs short (the row
and the card say what was left out)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from bot.feishu import FeishuClient
from bot.job.result_rows import Col
from bot.job.results_sink import BitableSink
from bot.job.upload_quota import UploadQuota
from pipeline.models import VideoSource
from tests.bot.test_bitable_sink import OWNER, UPLOAD, ManualClock, analysed, video_media  # noqa: F401
from tests.support.feishu import FakeFeishu

DAY = 1_764_928_800.0  # 2025-12-05 10:00 UTC = 18:00 in UTC+8


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_count_is_shared_kept_and_reset_on_feishus_day(tmp_path: Path) -> None:
    clock = Clock(DAY)
    db = tmp_path / "state.sqlite3"
    quota = UploadQuota(db, daily_limit=10, clock=clock)
    assert quota.take(4) == 4
    assert UploadQuota(db, daily_limit=10, clock=clock).take(9) == 6  # another worker, same file: what is left
    assert quota.take(1) == 0 and quota.left() == 0
    clock.now = DAY + 5 * 3600  # 23:00 in UTC+8: still the same Feishu day
    assert quota.take(1) == 0
    clock.now = DAY + 6 * 3600 + 1  # past midnight in UTC+8 (22:00 UTC): a new day
    assert quota.left() == 10 and quota.take(3) == 3


def test_two_jobs_at_once_never_get_more_than_the_day_allows(tmp_path: Path) -> None:
    quota = UploadQuota(tmp_path / "state.sqlite3", daily_limit=100, clock=Clock(DAY))
    granted: list[int] = []
    threads = [threading.Thread(target=lambda: granted.append(quota.take(7))) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


def two_videos(tmp_path: Path, speech_video: Path, probed: Any) -> list[Any]:
    return [
        analysed(
            n,
            VideoSource.url(f"https://cdn.example.com/{n}.mp4", name=f"会议 {n}"),
            tmp_path / str(n),
            speech_video,
            probed,
        )
        for n in range(2)
    ]


def test_when_the_allowance_runs_short_the_most_useful_attachments_go_first(
    fake_feishu: FakeFeishu,
    feishu_client: FeishuClient,
    speech_video: Path,
    video_media: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Each video wants 5 uploads (3 screenshots, contact sheet, SRT); 7 are left today: both contact
    sheets and SRTs, then each video's first screenshot, then video 0's second."""
    clock = ManualClock()
    quota = UploadQuota(tmp_path / "state.sqlite3", daily_limit=9_993 + 7, clock=Clock(DAY))
    assert quota.take(9_993) == 9_993  # other jobs today
    sink = BitableSink(feishu_client, clock=clock, sleep=clock.sleep, quota=quota)
    videos = two_videos(tmp_path, speech_video, video_media)

    result = sink.write(job_id="job-quota", title="配额", owner_open_id=OWNER, videos=videos)

    assert len(fake_feishu.find("POST", UPLOAD)) == 7 and quota.left() == 0
    first, second = fake_feishu.records(result.app_token, result.table_id)
    for row in (first, second):
        assert len(row[Col.CONTACT_SHEET]) == 1 and len(row[Col.SUBTITLES]) == 1
    assert len(first[Col.SCREENSHOTS]) == 2 and len(second[Col.SCREENSHOTS]) == 1
    assert "截图 3" in first[Col.NOTES] and "上传额度" in first[Col.NOTES] and "upload allowance" in first[Col.NOTES]
    assert "截图 2" in second[Col.NOTES] and "截图 3" in second[Col.NOTES]
    (note,) = result.notes  # for the card
    assert "3 个附件未上传" in note.zh and "3 attachment(s)" in note.en


def test_an_exhausted_allowance_still_writes_every_row(
    fake_feishu: FakeFeishu,
    feishu_client: FeishuClient,
    speech_video: Path,
    video_media: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The day's uploads are used up before the job's turn: no upload is tried, the analysis is all there."""
    clock = ManualClock()
    quota = UploadQuota(tmp_path / "state.sqlite3", daily_limit=0, clock=Clock(DAY))
    sink = BitableSink(feishu_client, clock=clock, sleep=clock.sleep, quota=quota)

    result = sink.write(
        job_id="job-none", title="无额度", owner_open_id=OWNER, videos=two_videos(tmp_path, speech_video, video_media)
    )

    assert fake_feishu.find("POST", UPLOAD) == [] and result.rows_written == 2
    for row in fake_feishu.records(result.app_token, result.table_id):
        assert Col.SCREENSHOTS not in row and "截图总览未上传" in row[Col.NOTES]
        assert row[Col.TRANSCRIPT]
    assert "10 个附件未上传" in result.notes[0].zh
