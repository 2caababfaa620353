"""Card actions through the real webhook (uvicorn on loopback, the real SDK, the fake Feishu): cancel,
retry failed, the task form. Jobs here are run by a scripted job function, so each test decides when a
job ends; the end-to-end files run the real one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.jobs import Job, JobStatus
from pipeline.jobs.runner import JobContext, JobOutcome
from pipeline.models import ScreenshotMode
from tests.support.events import SAMPLE_OPEN_ID
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, decoded

SOMEONE_ELSE = "ou_0000000000000000000000000someone"


class ScriptedJobs:
    """A job function that holds each job until the test releases it (or the job is cancelled), then
    finishes it DONE with every source but the first one listed as failed."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []
        self._lock = threading.Condition()

    def __call__(self, context: JobContext) -> JobOutcome:
        with self._lock:
            self.started.append(context.job.id)
            self._lock.notify_all()
        while not self.release.wait(0.02):
            context.cancel.raise_if_cancelled()
        failed = [s.to_dict() for s in context.job.spec.sources[1:]]
        return JobOutcome.done({"failed_sources": failed})

    def wait_started(self, job_id: str, timeout: float = 10.0) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: job_id in self.started, timeout), f"{job_id} never started"


@pytest.fixture
def jobs() -> ScriptedJobs:
    return ScriptedJobs()


@pytest.fixture
def app(webhook_env: WebhookEnv, jobs: ScriptedJobs) -> Iterator[WebhookClient]:
    with webhook_env.serve(job_function=jobs) as client:
        try:
            yield client
        finally:
            jobs.release.set()  # before the app stops, so it need not wait for held jobs


def queue_job(app: WebhookClient, text: str = "https://v.example.com/a.mp4 https://v.example.com/b.mp4") -> Job:
    request = app.events.text(text)
    assert app.send(request).status_code == 200
    job = app.job_for(app.message_id_of(request))
    assert job is not None
    return app.wait_for_card_message(job.id)


def click(
    app: WebhookClient, value: dict[str, Any], *, operator: str = SAMPLE_OPEN_ID, **fields: Any
) -> dict[str, Any]:
    response = app.send(app.events.card_action(value=value, operator_open_id=operator, **fields))
    assert response.status_code == 200, response.text
    body = decoded(response)
    assert body["toast"]["i18n"]["zh_cn"] and body["toast"]["i18n"]["en_us"]
    return body


def flush_cards(app: WebhookClient, job_id: str) -> None:
    assert app.bot.card_updater is not None
    assert app.bot.card_updater.flush(job_id, 10.0)


def cancel_value(job: Job) -> dict[str, str]:
    return {"action": "cancel", "job_id": job.id, "creator": job.spec.creator_id}


# --- cancel --------------------------------------------------------------------------------------------


def test_the_creator_cancels_a_running_job(app: WebhookClient, jobs: ScriptedJobs) -> None:
    job = queue_job(app)
    jobs.wait_started(job.id)

    body = click(app, cancel_value(job))

    assert body["toast"]["type"] == "success"
    assert "正在取消" in body["toast"]["content"] and "Cancelling" in body["toast"]["i18n"]["en_us"]
    assert app.wait_for_status(job.id, JobStatus.CANCELLED).cancel_requested
    flush_cards(app, job.id)
    card = app.fake.message(job.card_message_id or "").card
    assert card["header"]["title"]["content"] == "正在取消"
    assert "cancel" not in card_text(card).split("\n")  # no cancel button left


def test_the_creator_cancels_a_queued_job_and_it_never_runs(app: WebhookClient, jobs: ScriptedJobs) -> None:
    first = queue_job(app, "https://v.example.com/first.mp4")
    jobs.wait_started(first.id)
    second = queue_job(app, "https://v.example.com/second.mp4")  # waits behind the first (1 worker)

    body = click(app, cancel_value(second))

    assert (body["toast"]["type"], body["toast"]["content"]) == ("success", "已取消。")
    assert app.bot.store.get(second.id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    flush_cards(app, second.id)
    assert app.fake.message(second.card_message_id or "").card["header"]["title"]["content"] == "视频分析已取消"
    jobs.release.set()
    app.wait_for_status(first.id, JobStatus.DONE)
    assert second.id not in jobs.started


def test_someone_else_cannot_cancel(app: WebhookClient, jobs: ScriptedJobs) -> None:
    job = queue_job(app)
    jobs.wait_started(job.id)
    patches_before = len(app.fake.find("PATCH", "/open-apis/im/v1/messages/*"))

    body = click(app, cancel_value(job), operator=SOMEONE_ELSE)

    assert body["toast"]["type"] == "warning"
    assert "只有发起这个任务的人" in body["toast"]["content"]
    assert "Only the person who started this job" in body["toast"]["i18n"]["en_us"]
    assert "card" not in body
    fresh = app.bot.store.get(job.id)
    assert fresh is not None and fresh.status is JobStatus.RUNNING and not fresh.cancel_requested
    assert len(app.fake.find("PATCH", "/open-apis/im/v1/messages/*")) == patches_before


def test_a_double_click_on_cancel(app: WebhookClient, jobs: ScriptedJobs) -> None:
    job = queue_job(app)
    jobs.wait_started(job.id)
    first = click(app, cancel_value(job))
    second = click(app, cancel_value(job))
    assert first["toast"]["type"] == "success"
    assert second["toast"]["type"] == "info"
    assert second["toast"]["content"] in ("正在取消，请稍候。", "这个任务已经取消了。")
    app.wait_for_status(job.id, JobStatus.CANCELLED)
    third = click(app, cancel_value(job))
    assert third["toast"]["content"] == "这个任务已经取消了。"


def test_cancelling_a_finished_job_changes_nothing(app: WebhookClient, jobs: ScriptedJobs) -> None:
    jobs.release.set()
    job = queue_job(app)
    app.wait_for_status(job.id, JobStatus.DONE)
    body = click(app, cancel_value(job))
    assert "已经结束" in body["toast"]["content"]
    assert app.bot.store.get(job.id).status is JobStatus.DONE  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"action": "cancel", "job_id": "jNoSuchJob"}, "找不到这个任务"),
        ({"action": "cancel"}, "找不到这个任务"),
        ({"action": "cancel", "job_id": "jNoSuchJob", "creator": SOMEONE_ELSE}, "只有发起这个任务的人"),
        ({"action": "retry_failed", "job_id": "jNoSuchJob"}, "找不到这个任务"),
        ({"action": "cancel", "job_id": ["not", "a", "string"]}, "找不到这个任务"),
    ],
)
def test_stale_or_unknown_jobs_get_a_toast(app: WebhookClient, value: dict[str, Any], expected: str) -> None:
    body = click(app, value)
    assert body["toast"]["type"] == "warning"
    assert expected in body["toast"]["content"]


# --- retry failed --------------------------------------------------------------------------------------


def retry_value(job: Job) -> dict[str, str]:
    return {"action": "retry_failed", "job_id": job.id, "creator": job.spec.creator_id}


def test_retry_makes_one_new_job_with_the_failed_videos(app: WebhookClient, jobs: ScriptedJobs) -> None:
    jobs.release.set()
    parent = queue_job(
        app, "https://v.example.com/ok.mp4 https://v.example.com/bad1.mp4 https://v.example.com/bad2.mp4"
    )
    app.wait_for_status(parent.id, JobStatus.DONE)

    first = click(app, retry_value(parent))
    second = click(app, retry_value(parent))  # a double click

    assert first["toast"]["type"] == "success" and "2" in first["toast"]["content"]
    assert "已经在重试" in second["toast"]["content"]
    children = [j for j in app.all_jobs() if j.parent_job_id == parent.id]
    assert len(children) == 1
    child = app.wait_for_status(children[0].id, JobStatus.DONE)
    assert [s.locator for s in child.spec.sources] == [
        "https://v.example.com/bad1.mp4",
        "https://v.example.com/bad2.mp4",
    ]
    assert child.spec.creator_id == parent.spec.creator_id
    # Its own card: a second reply to the user's message, naming the job it retries.
    replies = app.replies_to(parent.spec.source_message_id)
    assert len(replies) == 2
    assert child.card_message_id == replies[1].message_id
    assert parent.id in card_text(replies[1].card)


def test_retry_is_for_the_creator_only(app: WebhookClient, jobs: ScriptedJobs) -> None:
    jobs.release.set()
    parent = queue_job(app)
    app.wait_for_status(parent.id, JobStatus.DONE)
    body = click(app, retry_value(parent), operator=SOMEONE_ELSE)
    assert body["toast"]["type"] == "warning"
    assert [j for j in app.all_jobs() if j.parent_job_id == parent.id] == []


def test_retry_with_nothing_failed_or_a_job_still_running(app: WebhookClient, jobs: ScriptedJobs) -> None:
    running = queue_job(app, "https://v.example.com/a.mp4 https://v.example.com/b.mp4")
    jobs.wait_started(running.id)
    assert "还在进行中" in click(app, retry_value(running))["toast"]["content"]
    jobs.release.set()
    app.wait_for_status(running.id, JobStatus.DONE)

    single = queue_job(app, "https://v.example.com/only.mp4")  # the scripted job fails all but the first
    app.wait_for_status(single.id, JobStatus.DONE)
    body = click(app, retry_value(single))
    assert "没有失败的视频" in body["toast"]["content"]
    assert [j for j in app.all_jobs() if j.parent_job_id in (running.id, single.id)] == []


# --- the task form ---------------------------------------------------------------------------------------


FORM_CARD = "om_form00000000000000000000000001"


def submit(app: WebhookClient, form: dict[str, Any], operator: str = SAMPLE_OPEN_ID) -> dict[str, Any]:
    return click(
        app,
        {"action": "submit_task_form", "creator": operator},
        operator=operator,
        form_value=form,
        open_message_id=FORM_CARD,
        name="submit",
    )


def test_the_help_cards_button_answers_with_the_form(app: WebhookClient) -> None:
    body = click(app, {"action": "open_task_form"})
    assert body["toast"]["type"] == "info"
    card = body["card"]
    assert card["type"] == "raw"
    form = [e for e in card["data"]["body"]["elements"] if e["tag"] == "form"]
    assert len(form) == 1
    submit_button = next(e for e in form[0]["elements"] if e["tag"] == "button")
    assert submit_button["behaviors"][0]["value"] == {"action": "submit_task_form", "creator": SAMPLE_OPEN_ID}


def test_a_submitted_form_queues_a_job_like_a_message(app: WebhookClient, jobs: ScriptedJobs) -> None:
    form = {
        "links": "https://v.example.com/1.mp4\nhttps://v.example.com/2.mp4\nftp://old.example.com/x.mp4",
        "task_name": "  周会   录像 ",
        "screenshot_mode": "interval",
        "screenshot_value": "15",
        "folder": "https://example.feishu.cn/drive/folder/fldcnAbCdEf123456",
    }
    body = submit(app, form)
    again = submit(app, form)  # a double click

    assert body["toast"]["type"] == "success"
    assert body["card"]["data"]["header"]["title"]["content"] == "任务已提交"
    assert "已经提交过" in again["toast"]["content"]
    (job,) = app.all_jobs()
    assert [s.locator for s in job.spec.sources] == ["https://v.example.com/1.mp4", "https://v.example.com/2.mp4"]
    assert job.spec.options.task_name == "周会 录像"
    assert job.spec.options.screenshots.mode is ScreenshotMode.INTERVAL
    assert job.spec.options.screenshots.interval_s == 15.0
    assert job.spec.options.target_folder == "fldcnAbCdEf123456"
    assert job.spec.creator_id == SAMPLE_OPEN_ID
    assert any("ftp" in r.en for r in job.spec.rejected)
    # Its queued card is a reply to the form's message; then it runs.
    reply = app.wait_for_card_message(job.id)
    card = app.fake.message(reply.card_message_id or "")
    assert card.parent_id == FORM_CARD
    jobs.wait_started(job.id)


@pytest.mark.parametrize(
    ("access", "expected_zh", "expected_en"),
    [
        ("none", "没有这个文件夹的编辑权限", "may not edit this folder"),
        ("view", "没有这个文件夹的编辑权限", "may not edit this folder"),
        ("missing", "找不到这个文件夹", "does not exist"),
    ],
)
def test_a_form_folder_the_bot_cannot_use_is_answered_at_once(
    app: WebhookClient, access: str, expected_zh: str, expected_en: str
) -> None:
    """Checked when the form is sent (the permission API), not after the analysis: no job is queued."""
    app.fake.set_folder_access("fldcnNoAccess0001", access)
    form = {
        "links": "https://v.example.com/a.mp4",
        "folder": "https://example.feishu.cn/drive/folder/fldcnNoAccess0001",
    }

    body = submit(app, form)

    assert body["toast"]["type"] == "error"
    assert expected_zh in body["toast"]["content"]
    assert "card" not in body
    assert app.all_jobs() == []
    (asked,) = app.fake.find("GET", "/open-apis/drive/v1/permissions/fldcnNoAccess0001/members/auth")
    assert asked.query == {"type": "folder", "action": "edit"}
    assert expected_en in body["toast"]["i18n"]["en_us"]


def test_a_form_sent_without_the_buttons_value_still_routes(app: WebhookClient, jobs: ScriptedJobs) -> None:
    """Feishu's callback may carry only ``action.name`` and ``form_value`` (no ``value``): still the form."""
    body = click(
        app,
        {},
        form_value={"links": "https://v.example.com/a.mp4"},
        open_message_id=FORM_CARD,
        name="submit",
    )
    assert body["toast"]["type"] == "success"
    (job,) = app.all_jobs()
    assert [s.locator for s in job.spec.sources] == ["https://v.example.com/a.mp4"]
    jobs.wait_started(job.id)


def test_a_valueless_click_that_is_not_the_form_is_stale(app: WebhookClient) -> None:
    body = click(app, {}, name="submit")  # the button's name, but no form fields
    assert "按钮已失效" in body["toast"]["content"]
    assert app.all_jobs() == []


def test_a_form_without_a_folder_asks_feishu_nothing(app: WebhookClient, jobs: ScriptedJobs) -> None:
    body = submit(app, {"links": "https://v.example.com/a.mp4"})
    assert body["toast"]["type"] == "success"
    assert app.fake.find("GET", "/open-apis/drive/v1/permissions/*") == []


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"links": "no links here"}, "没有可用的视频链接"),
        ({"links": "ftp://x.example.com/a.mp4"}, "不支持 ftp"),
        (
            {"links": "https://v.example.com/a.mp4", "screenshot_mode": "interval", "screenshot_value": "abc"},
            "截图间隔",
        ),
        ({"links": "https://v.example.com/a.mp4", "screenshot_mode": "times", "screenshot_value": "-1"}, "截图时间"),
        (
            {"links": "https://v.example.com/a.mp4", "folder": "https://evil.example.com/drive/folder/x"},
            "文件夹链接无效",
        ),
    ],
)
def test_invalid_forms_get_an_error_toast_and_no_job(app: WebhookClient, form: dict[str, Any], expected: str) -> None:
    body = submit(app, form)
    assert body["toast"]["type"] == "error"
    assert expected in body["toast"]["content"]
    assert "card" not in body
    assert app.all_jobs() == []


def test_someone_elses_form_is_not_theirs_to_submit(app: WebhookClient) -> None:
    body = click(
        app,
        {"action": "submit_task_form", "creator": SAMPLE_OPEN_ID},
        operator=SOMEONE_ELSE,
        form_value={"links": "https://v.example.com/a.mp4"},
    )
    assert body["toast"]["type"] == "warning"
    assert app.all_jobs() == []
