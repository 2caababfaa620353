"""A file cut short with its header intact (faststart MP4: the index first) probes with the full
duration and decodes without an error. It must not pass as a plain "OK": the row's notes say that only
part of it could be read. Real ffmpeg, Whisper tiny.en, and the Bitable sink against the fake Feishu."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.feishu import FeishuClient
from bot.job.result_rows import Col
from bot.job.results_sink import BitableSink
from pipeline import ffmpeg
from pipeline.analyze import Analyzer
from pipeline.config import PipelineSettings
from pipeline.models import AnalysisOptions, VideoSource, VideoStatus
from pipeline.sources import default_registry
from tests.support import media
from tests.support.feishu import FakeFeishu

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cut_in_half(media_dir: Path, speech_video: Path) -> Path:
    """The 12 s speech video (faststart) cut at half its bytes: the header still says 12 s."""
    return media.truncated(speech_video, media_dir / "cut-in-half.mp4", keep_fraction=0.5)


def test_a_truncated_file_says_so_in_the_rows_notes(
    tmp_path: Path, speech_video: Path, cut_in_half: Path, fake_feishu: FakeFeishu, feishu_client: FeishuClient
) -> None:
    assert ffmpeg.probe(cut_in_half).duration_s == pytest.approx(12.0, abs=0.1)  # the header's word
    settings = PipelineSettings.load(
        _env_file=None, asr_backend="whisper", work_dir=tmp_path / "work", data_dir=tmp_path / "data"
    )
    batch = Analyzer(settings, default_registry(settings, include_local=True)).analyze_batch(
        [VideoSource.local(cut_in_half), VideoSource.local(speech_video)],
        AnalysisOptions(),
        out_dir=tmp_path / "out",
        scratch_dir=tmp_path / "scratch",
    )
    cut, whole = batch.videos
    assert cut.status is VideoStatus.OK  # what could be read is still worth having
    (note,) = [n for n in cut.notes if "incomplete" in n.en]
    assert "不完整" in note.zh and "12:00" not in note.en and "00:12" in note.en
    assert not [n for n in whole.notes if "incomplete" in n.en]

    sink = BitableSink(feishu_client, default_folder_token="fldcnResults", sleep=lambda _s: None)
    table = sink.write(job_id="job-cut", title="cut", owner_open_id="ou_x", videos=batch.videos)
    cut_row, whole_row = fake_feishu.records(table.app_token, table.table_id)
    assert "incomplete" in cut_row[Col.NOTES] and "不完整" in cut_row[Col.NOTES]
    assert "incomplete" not in whole_row.get(Col.NOTES, "")
