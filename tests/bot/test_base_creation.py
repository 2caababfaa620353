"""A job owns exactly one results Base, whatever happens to the answer of the call that makes it.

Creating a Base has no idempotency key: when Feishu makes it but the answer is lost (the process dies,
or the client gives up on a slow answer), a retry that simply creates again leaves the first Base behind,
empty and owned by the app. The sink records the Base's unique name before the call and, on a retry,
looks for that name in the folder (Drive's file listing) before creating. Real lark-oapi against the
fake Open Platform, which carries the create out and then never answers (``lose_answer``)."""

from __future__ import annotations

import pytest

from bot.feishu import FeishuClient, FeishuError, TransientError
from bot.job.result_rows import TABLE_NAME
from bot.job.results_sink import BitableSink
from tests.bot.test_bitable_sink import APPS, JOB, OWNER, Checkpoints, synthetic
from tests.support.feishu import FakeFeishu
from tests.support.fixtures import FAST_FEISHU_RETRY

FOLDER = "fldcnResultsFolder"
FILES = "/open-apis/drive/v1/files"


def _write(sink: BitableSink, saved: Checkpoints) -> object:
    return sink.write(
        job_id=JOB,
        title="周会",
        owner_open_id=OWNER,
        videos=synthetic(3),
        checkpoint=saved.last if saved.saved else None,
        save_checkpoint=saved,
    )


def _assert_one_base_with_rows(fake: FakeFeishu, app_token: str) -> None:
    assert list(fake.apps) == [app_token], "the job owns exactly one Base"
    app = fake.app(app_token)
    (table,) = app.tables.values()
    assert table.name == TABLE_NAME and len(fake.records(app_token, table.table_id)) == 3
    assert fake.owner(app_token) == {"member_type": "openid", "member_id": OWNER}


@pytest.mark.parametrize("hold_s", [0.0, 2.5], ids=["answer-lost", "client-timeout"])
def test_a_base_made_without_an_answer_is_found_not_made_again(fake_feishu: FakeFeishu, hold_s: float) -> None:
    # "client-timeout": the client waits 1 s; the fake makes the Base, then stays silent 2.5 s.
    client = FeishuClient(
        fake_feishu.app_id, fake_feishu.app_secret, domain=fake_feishu.url, timeout=1.0, retry=FAST_FEISHU_RETRY
    )
    sink = BitableSink(client, default_folder_token=FOLDER, sleep=lambda _s: None)
    saved = Checkpoints()
    fake_feishu.lose_answer("POST", APPS, hold_s=hold_s)

    with pytest.raises(TransientError):
        _write(sink, saved)
    (made,) = fake_feishu.apps  # Feishu did make it; we never heard
    assert "app_token" not in saved.last and saved.last["base_intent"]["name"].startswith("周会 · ")

    result = _write(sink, saved)  # the retry (a resumed job, or the delivery's next attempt)

    assert result.app_token == made  # type: ignore[attr-defined]
    _assert_one_base_with_rows(fake_feishu, made)
    assert len(fake_feishu.find("POST", APPS)) == 1, "no second create"
    assert fake_feishu.find("GET", FILES), "the retry looked before creating"


def test_a_retry_that_finds_nothing_creates_the_base(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    # The create never reached Feishu (refused before acting): the name is free, the retry makes the Base.
    sink = BitableSink(feishu_client, default_folder_token=FOLDER, sleep=lambda _s: None)
    saved = Checkpoints()
    fake_feishu.fail("POST", APPS, status=400, code=1254001, msg="WrongRequestBody")
    with pytest.raises(FeishuError):
        _write(sink, saved)
    assert not fake_feishu.apps

    result = _write(sink, saved)

    _assert_one_base_with_rows(fake_feishu, result.app_token)  # type: ignore[attr-defined]


def test_a_second_base_from_an_earlier_retry_is_deleted(fake_feishu: FakeFeishu, feishu_client: FeishuClient) -> None:
    # Two creates whose answers were both lost (a listing that had not caught up in between): the
    # oldest is kept, the other deleted, so the job still ends with one Base.
    sink = BitableSink(feishu_client, default_folder_token=FOLDER, sleep=lambda _s: None)
    saved = Checkpoints()
    fake_feishu.lose_answer("POST", APPS, times=2)
    with pytest.raises(TransientError):
        _write(sink, saved)
    first = next(iter(fake_feishu.apps))
    fake_feishu.app(first).folder_token = "not-listed-yet"  # a listing that has not caught up
    with pytest.raises(TransientError):
        _write(sink, saved)  # listed nothing, created again: lost again
    assert len(fake_feishu.apps) == 2
    fake_feishu.app(first).folder_token = FOLDER
    fake_feishu.app(first).created_time -= 5  # the first was made earlier

    result = _write(sink, saved)

    assert result.app_token == first  # type: ignore[attr-defined]
    _assert_one_base_with_rows(fake_feishu, first)
    assert len(fake_feishu.deleted_apps) == 1 and fake_feishu.deleted_apps[0].app_token != first
