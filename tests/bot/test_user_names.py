"""Names users supply (file names, links, task names, titles) reach cards, cells and the contact sheet
capped and on one line: no terminal escapes, CR/LF or NUL, and no step does work quadratic in them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageDraw

from bot.feishu import FeishuClient
from bot.job.record import SkippedRow
from bot.job.result_rows import Col
from bot.job.results_sink import BitableSink
from pipeline.contact_sheet import make_contact_sheet
from pipeline.models import AnalysisOptions, JobSpec, UserText, VideoResult, VideoSource, VideoStatus
from pipeline.names import MAX_NAME_CHARS, clean_name
from tests.support.feishu import FakeFeishu
from tests.support.shots import solid_shots
from tests.support.webhook_harness import WebhookClient, card_text

HOSTILE = "\x1b[31;1mred\x1b[0m\r\nInjected: line\x00 two\x1b]0;title\x07\u202egpj.mp4\x9b2J\x7f"
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_clean_name_strips_escapes_and_controls_and_caps() -> None:
    cleaned = clean_name(HOSTILE)
    assert cleaned == "red Injected: line twogpj.mp4"
    long = "https://v.example.com/" + "a" * 10_000
    capped = clean_name(long)
    assert len(capped) == MAX_NAME_CHARS and capped.endswith("…") and capped.startswith("https://v.example.com/a")
    for text in (HOSTILE, long, "  plain   name ", "会议记录.mp4"):
        assert clean_name(clean_name(text)) == clean_name(text)


def test_names_are_cleaned_where_they_enter_the_pipeline() -> None:
    source = VideoSource(kind="url", locator="https://v.example.com/x.mp4", name=HOSTILE, meta={"file_name": HOSTILE})
    assert not UNSAFE.search(source.name) and not UNSAFE.search(source.meta["file_name"])
    long_url = VideoSource.url("https://v.example.com/" + "b" * 10_000 + ".mp4")
    assert long_url.locator.endswith(".mp4")  # the link itself is kept whole for the download
    assert len(long_url.display_name) == MAX_NAME_CHARS
    options = AnalysisOptions(task_name="\x1b[2Jweekly\r\nsync" + "x" * 500)
    assert options.task_name is not None and options.task_name.startswith("weekly sync")
    assert len(options.task_name) <= 100
    # A job read back from the store is the same job.
    spec = JobSpec(sources=(source,), options=options)
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_a_long_title_is_fitted_with_few_measurements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Counted on Pillow's measuring call (not our code): fitting must not measure once per character.
    calls: list[int] = []
    measure = ImageDraw.ImageDraw.textlength

    def counting(self: ImageDraw.ImageDraw, text: Any, *args: Any, **kwargs: Any) -> float:
        calls.append(len(text))
        return measure(self, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "textlength", counting)
    shots = solid_shots(tmp_path / "shots", ["red", "navy"])
    title = "https://v.example.com/watch?v=" + "x" * 10_000
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=2, thumb_width=320, title=title)
    assert dest is not None
    assert 0 < len(calls) <= 16, f"{len(calls)} measurements"
    assert max(calls) <= MAX_NAME_CHARS


def test_a_hostile_file_name_reaches_the_card_clean(webhook: WebhookClient) -> None:
    request = webhook.events.file("file_v3_file_1", HOSTILE + ".mp4")
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    (source,) = job.spec.sources
    assert not UNSAFE.search(source.name)
    text = card_text(webhook.reply_to(message_id).card)
    assert "red Injected: line two" in text
    assert not UNSAFE.search(text.replace("\n", " ")), repr(text)


def test_a_10kb_link_is_shown_capped_on_the_card(webhook: WebhookClient) -> None:
    url = "https://v.example.com/" + "c" * 10_000 + ".mp4"
    request = webhook.events.text(url)
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None and job.spec.sources[0].locator == url
    text = card_text(webhook.reply_to(message_id).card)
    assert "c" * (MAX_NAME_CHARS - 30) in text
    assert "c" * (MAX_NAME_CHARS + 1) not in text


def test_bitable_cells_get_clean_capped_names(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    long_url = "https://v.example.com/" + "d" * 10_000 + ".mp4"
    hostile = VideoSource.url("https://v.example.com/e.mp4", name=HOSTILE)
    videos = [
        VideoResult(index=0, source=VideoSource.url(long_url), status=VideoStatus.OK),
        VideoResult(index=1, source=hostile, status=VideoStatus.OK),
    ]
    skipped = SkippedRow("rec1", 3, UserText(zh="没有链接", en="no link"), name=HOSTILE)
    sink = BitableSink(feishu_client, default_folder_token="fldcnResults", sleep=lambda _s: None)
    table = sink.write(job_id="job-names", title="t", owner_open_id="ou_x", videos=videos, skipped=[skipped])

    cells = [row[Col.VIDEO] for row in fake_feishu.records(table.app_token, table.table_id)]
    assert len(cells) == 3
    assert len(cells[0]) == MAX_NAME_CHARS and cells[0].startswith("https://v.example.com/ddd")
    for cell in cells[1:]:
        assert cell.startswith("red Injected: line two")
    assert not any(UNSAFE.search(cell) for cell in cells)
