"""JOB_RUNNER=fc-async end to end: the real app on loopback, a stand-in for FC's async front that replays
invocations to it (``tests/support/fc_front.py``), the fake Feishu, and the production job function
(download, Whisper tiny.en, Bitable) where a job really runs.

Every request the bot gets "through FC" carries the headers FC adds (temporary credentials, region,
function name), as on the platform.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.fc.api import FcContext, FcTaskStopper
from bot.fc.envelope import (
    MAX_ASYNC_BODY_BYTES,
    JobEnvelope,
    sign,
    signed_headers,
    task_id_for,
    verify,
)
from bot.fc.runner import (
    CANCEL_ELSEWHERE,
    CANCEL_NOT_SET_UP,
    CANCEL_NOT_STOPPED,
    CancelFailed,
    FcAsyncRunner,
)
from pipeline.asr import get_transcriber
from pipeline.config import ConfigError
from pipeline.jobs import Job, JobStatus, JobStore
from pipeline.jobs.runner import JobOutcome
from pipeline.models import JobSpec, UserText, VideoSource
from tests.support.e2e_support import e2e_settings_overrides
from tests.support.events import SAMPLE_OPEN_ID, EventFactory, Headers
from tests.support.fc_front import FakeFcFront
from tests.support.feishu import FakeFeishu, FakeMessage
from tests.support.media_server import MediaServer
from tests.support.webhook_harness import WebhookClient, WebhookEnv, callback_values, card_text, webhook_settings

pytestmark = pytest.mark.slow  # end to end: the real app, fake Feishu, real media and Whisper

SECRET = secrets.token_hex(24)
JOB_TIMEOUT_S = 120.0


@pytest.fixture
def front() -> Iterator[FakeFcFront]:
    with FakeFcFront() as fake_front:
        yield fake_front


def fc_env(tmp_path: Path, fake: FakeFeishu, front: FakeFcFront, name: str = "a", **overrides: Any) -> WebhookEnv:
    """One FC instance's environment: its own DATA_DIR (instances share no disk), the same function."""
    events = EventFactory(app_id=fake.app_id)
    values: dict[str, Any] = {
        **e2e_settings_overrides(),
        "job_runner": "fc-async",
        "fc_invoke_url": front.url,
        "job_secret": SECRET,
        "fc_api_endpoint": front.url,
        "shutdown_grace_s": 2.0,
    }
    values.update(overrides)
    return WebhookEnv(webhook_settings(tmp_path / name, fake, events, **values), fake, events)


def through_fc(request: tuple[Headers, bytes], front: FakeFcFront) -> tuple[Headers, bytes]:
    """A webhook as the function receives it behind FC's HTTP trigger: with FC's headers added."""
    headers, body = request
    return {**headers, **front.forwarded_headers()}, body


def wait_for(condition: Any, what: str, timeout_s: float = JOB_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s}s")
        time.sleep(0.02)


def post_jobs_run(app: WebhookClient, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return app.http.post(app.url + "/jobs/run", content=body, headers=headers or {})


def envelope_for(url: str, job_id: str | None = None) -> JobEnvelope:
    job_id = job_id or "j" + secrets.token_urlsafe(12)
    spec = JobSpec(sources=(VideoSource.url(url),), creator_id=SAMPLE_OPEN_ID, source_message_id="om_" + job_id)
    return JobEnvelope(job_id=job_id, spec=spec, idempotency_key="om_" + job_id)


def cards_saying(message: FakeMessage, text: str) -> list[dict[str, Any]]:
    every = [json.loads(content) for content in message.history]
    return [card for card in every if text in card_text(card)]


# --------------------------------------------------------------------------------------------------
# A message, through the async front, to the end
# --------------------------------------------------------------------------------------------------


def test_a_message_runs_in_an_async_invocation_of_the_same_function(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, short_clip_url: str
) -> None:
    with fc_env(tmp_path, fake_feishu, front).serve(job_function=None) as app:
        front.route_to(app.url)
        request = app.events.text(f"请分析 {short_clip_url}")
        message_id = app.message_id_of(request)

        response = app.send(through_fc(request, front))
        assert (response.status_code, response.json()) == (200, {"msg": "ok"})

        # The queued card went out BEFORE the acknowledgement (FC freezes the instance after it).
        (reply,) = app.replies_to(message_id)
        assert "视频分析已排队" in card_text(json.loads(reply.history[0]))
        job = app.job_for(message_id)
        assert job is not None and job.card_message_id == reply.message_id

        # One asynchronous invocation of the function itself, signed, idempotent by the message id.
        (invocation,) = front.wait_for_invocations(1)
        assert invocation.status == 202
        assert invocation.path == "/jobs/run"
        assert invocation.header("X-Fc-Invocation-Type") == "Async"
        assert invocation.header("X-Fc-Async-Task-Id") == task_id_for(message_id, job.id)
        assert verify(SECRET, invocation.headers, invocation.body, now=time.time(), max_age_s=300) is None
        assert len(invocation.body) <= MAX_ASYNC_BODY_BYTES
        envelope = JobEnvelope.from_json(invocation.body)
        assert (envelope.job_id, envelope.idempotency_key, envelope.attempt) == (job.id, message_id, 1)
        assert envelope.card_message_id == reply.message_id
        assert envelope.spec == job.spec

        # FC replayed it to the function, which ran the job to the end inside that request.
        front.wait_for_replay(invocation, JOB_TIMEOUT_S)
        assert invocation.replay_status == 200, invocation.replay_body
        assert invocation.replay_body == {"job_id": job.id, "status": "done"}
        assert front.task_states[task_id_for(message_id, job.id)] == "Succeeded"
        done = app.bot.store.get(job.id)
        assert done is not None and done.status is JobStatus.DONE
        assert done.result.get("table_url")

        # The same card, updated in place by the instance that ran the job, says done.
        assert len(app.replies_to(message_id)) == 1
        assert cards_saying(fake_feishu.message(reply.message_id), "视频分析完成")


def test_a_redelivered_message_is_not_run_twice_on_any_instance(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront
) -> None:
    env_a = fc_env(tmp_path, fake_feishu, front, "a")
    env_b = fc_env(tmp_path, fake_feishu, front, "b")
    with env_a.serve() as a, env_b.serve() as b:
        front.route_to(a.url)
        message_id = "om_" + secrets.token_hex(16)
        first = a.events.text("https://videos.example.com/talk.mp4", message_id=message_id)
        assert a.send(through_fc(first, front)).json() == {"msg": "ok"}
        (invocation,) = front.wait_for_invocations(1)
        front.wait_for_replay(invocation)
        job = a.job_for(message_id)
        assert job is not None and env_a.jobs.ran == [job.id]

        # Feishu redelivers to the same instance: dropped as a duplicate, nothing submitted.
        assert a.send(through_fc(first, front)).json() == {"msg": "duplicate"}
        # ...and, under a new event id, to an instance that never saw it: it makes a job of its own, but
        # FC refuses the second task with the same id, so nothing runs twice.
        again = b.events.text("https://videos.example.com/talk.mp4", message_id=message_id)
        assert b.send(through_fc(again, front)).json() == {"msg": "ok"}
        invocations = front.wait_for_invocations(2)
        assert [i.status for i in invocations] == [202, 409]
        assert invocations[0].task_id == invocations[1].task_id == task_id_for(message_id, job.id)
        other = b.job_for(message_id)
        assert other is not None and other.id != job.id
        # Not a failure for the user: the job is running elsewhere.
        assert other.status is JobStatus.QUEUED
        assert env_b.jobs.ran == [] and env_a.jobs.ran == [job.id]
        # One card for the message: the reply's uuid made the second reply land on the first.
        assert len(a.replies_to(message_id)) == 1


# --------------------------------------------------------------------------------------------------
# /jobs/run refuses what it cannot trust
# --------------------------------------------------------------------------------------------------


def test_job_invocations_need_a_fresh_valid_signature_and_are_run_once(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront
) -> None:
    with fc_env(tmp_path, fake_feishu, front).serve() as app:
        envelope = envelope_for("https://videos.example.com/a.mp4")
        body = envelope.to_json()
        now = int(time.time())

        refused = {
            "none": post_jobs_run(app, body),
            "wrong secret": post_jobs_run(app, body, signed_headers("x" * 40, body, now)),
            "expired": post_jobs_run(app, body, signed_headers(SECRET, body, now - 400)),
            "future": post_jobs_run(app, body, signed_headers(SECRET, body, now + 400)),
            "malformed": post_jobs_run(app, body, {"X-Job-Timestamp": str(now), "X-Job-Signature": "v1=zz"}),
            "other body": post_jobs_run(app, body + b" ", signed_headers(SECRET, body, now)),
        }
        answers = {name: (r.status_code, r.json()["error"]) for name, r in refused.items()}
        assert answers == {
            "none": (401, "missing_signature"),
            "wrong secret": (401, "bad_signature"),
            "expired": (401, "expired_signature"),
            "future": (401, "expired_signature"),
            "malformed": (401, "malformed_signature"),
            "other body": (401, "bad_signature"),
        }
        assert app.bot.store.get(envelope.job_id) is None
        assert app.jobs.ran == []

        headers = signed_headers(SECRET, body, now)
        ran = post_jobs_run(app, body, headers)
        assert (ran.status_code, ran.json()) == (200, {"job_id": envelope.job_id, "status": "done"})
        replayed = post_jobs_run(app, body, headers)
        assert (replayed.status_code, replayed.json()["error"]) == (409, "replayed")
        # Signed anew (a second FC delivery of a job that already ran): answered, not run again.
        again = post_jobs_run(app, body, signed_headers(SECRET, body, now + 1))
        assert (again.status_code, again.json()) == (200, {"job_id": envelope.job_id, "status": "done"})
        assert app.jobs.ran == [envelope.job_id]

        not_an_envelope = b'{"v": 1, "job_id": "../../etc"}'
        bad = post_jobs_run(app, not_an_envelope, signed_headers(SECRET, not_an_envelope, now))
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_envelope")
        huge = b"x" * (300 * 1024)
        too_large = post_jobs_run(app, huge, signed_headers(SECRET, huge, now))
        assert (too_large.status_code, too_large.json()["error"]) == (413, "too_large")


def test_a_local_runner_does_not_take_job_invocations(tmp_path: Path, fake_feishu: FakeFeishu) -> None:
    events = EventFactory(app_id=fake_feishu.app_id)
    env = WebhookEnv(webhook_settings(tmp_path, fake_feishu, events, job_secret=SECRET), fake_feishu, events)
    with env.serve() as app:
        body = envelope_for("https://videos.example.com/a.mp4").to_json()
        response = post_jobs_run(app, body, signed_headers(SECRET, body, time.time()))
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
        assert app.all_jobs() == []


# --------------------------------------------------------------------------------------------------
# When FC does not take a job
# --------------------------------------------------------------------------------------------------


def send_and_get_job(app: WebhookClient, front: FakeFcFront, text: str) -> tuple[str, Job]:
    request = app.events.text(text)
    response = app.send(through_fc(request, front))
    assert (response.status_code, response.json()) == (200, {"msg": "ok"})
    message_id = app.message_id_of(request)
    job = app.job_for(message_id)
    assert job is not None
    return message_id, job


def test_when_fc_does_not_take_a_job_it_fails_and_the_user_is_told_before_the_ack(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, short_clip_url: str
) -> None:
    failed_message = "Function Compute did not take it"
    with fc_env(tmp_path, fake_feishu, front).serve(job_function=None) as app:
        front.route_to(app.url)

        # 5xx: retried a few times, then given up.
        front.fail(503, times=3)
        message_id, job = send_and_get_job(app, front, short_clip_url)
        assert job.status is JobStatus.FAILED and job.error is not None
        assert job.error["code"] == "submit_failed"
        attempts = front.wait_for_invocations(3)
        assert [i.status for i in attempts] == [503, 503, 503]
        assert {i.task_id for i in attempts} == {task_id_for(message_id, job.id)}
        # Checked right after the answer to Feishu: the failed card was out before it.
        (reply,) = app.replies_to(message_id)
        assert cards_saying(fake_feishu.message(reply.message_id), failed_message)
        assert "视频分析失败" in card_text(fake_feishu.message(reply.message_id).card)

        # A 4xx is final: not retried.
        front.fail(400)
        message_id, job = send_and_get_job(app, front, short_clip_url)
        assert job.status is JobStatus.FAILED
        assert [i.status for i in front.invocations[3:]] == [400]
        (reply,) = app.replies_to(message_id)
        assert cards_saying(fake_feishu.message(reply.message_id), failed_message)

        # Nobody listening at the trigger URL.
        front.close()
        message_id, job = send_and_get_job(app, front, short_clip_url)
        assert job.status is JobStatus.FAILED and job.error is not None
        assert "ConnectionError" in job.error["detail"]
        (reply,) = app.replies_to(message_id)
        assert cards_saying(fake_feishu.message(reply.message_id), failed_message)
        assert len(front.invocations) == 4


def test_a_job_too_large_for_an_async_body_is_refused_clearly_and_long_lists_are_shrunk(
    tmp_path: Path, front: FakeFcFront
) -> None:
    told: list[Job] = []
    with JobStore(tmp_path / "state.sqlite3") as store:
        runner = FcAsyncRunner(
            store,
            lambda context: JobOutcome.done(),
            work_dir=tmp_path / "work",
            invoke_url=front.url,
            secret=SECRET,
            on_finished=told.append,
        )
        runner.start()
        # Hundreds of unusable inputs: the list is shown on the queued card, and dropped from the body.
        noisy = JobSpec(
            sources=(VideoSource.url("https://videos.example.com/a.mp4"),),
            rejected=tuple(UserText(zh="不支持 " + "x" * 500, en="not supported " + "x" * 500) for _ in range(300)),
        )
        job, _ = store.create(noisy, idempotency_key="om_noisy")
        runner.submit(job.id)
        (invocation,) = front.wait_for_invocations(1)
        assert invocation.status == 202 and len(invocation.body) <= MAX_ASYNC_BODY_BYTES
        sent = JobEnvelope.from_json(invocation.body).spec
        assert sent.sources == noisy.sources
        assert [r.en for r in sent.rejected] == ["300 input(s) not used (listed on the queued card)"]

        # Sources alone over the limit: no invocation at all, the job FAILED with words for the user.
        huge = JobSpec(sources=tuple(VideoSource.url(f"https://v.example.com/{i}/" + "a" * 2000) for i in range(80)))
        job, _ = store.create(huge, idempotency_key="om_huge")
        runner.submit(job.id)
        failed = store.get(job.id)
        assert failed is not None and failed.status is JobStatus.FAILED and failed.error is not None
        assert failed.error["code"] == "request_too_large"
        assert "smaller messages" in failed.error["message"]["en"]
        assert [j.id for j in told] == [job.id]
        assert len(front.invocations) == 1


def test_task_ids_are_safe_for_fc_and_unique_per_key() -> None:
    ids = {
        key: task_id_for(key, "jX")
        for key in ("om_dc13264520392913993dd051dba21dcf", "om_a/b", "om_a?b", "中文消息", "x" * 500)
    }
    for task_id in ids.values():
        assert len(task_id) <= 128
        assert task_id[0].isalpha()
        assert all((c.isalnum() and c.isascii()) or c in "_-" for c in task_id), task_id
    assert len(set(ids.values())) == len(ids)
    assert task_id_for("om_a/b", "j1") == task_id_for("om_a/b", "j2")  # the message decides, not the job
    assert task_id_for(None, "jOnly") != task_id_for(None, "jOther")


# --------------------------------------------------------------------------------------------------
# Cancel, when the click reaches another instance than the one running the job
# --------------------------------------------------------------------------------------------------


def test_a_cancel_on_another_instance_stops_the_fc_task_and_updates_the_card(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, media_server: MediaServer
) -> None:
    slow = media_server.url("/trickle/clip.mp4?chunk=65536&pause=1.0")
    env_a = fc_env(tmp_path, fake_feishu, front, "a")
    env_b = fc_env(tmp_path, fake_feishu, front, "b")
    with env_a.serve(job_function=None) as a, env_b.serve(job_function=None) as b:
        front.route_to(b.url)  # the job runs on B; the webhook and the click reach A
        message_id, job = send_and_get_job(a, front, slow)
        assert [i.status for i in front.wait_for_invocations(1)] == [202]
        wait_for(lambda: (j := b.bot.store.get(job.id)) is not None and j.status is JobStatus.RUNNING, "B runs it")

        (reply,) = a.replies_to(message_id)
        (cancel_value,) = callback_values(json.loads(reply.history[0]))
        click = a.events.card_action(
            value=cancel_value, operator_open_id=job.spec.creator_id, open_message_id=reply.message_id
        )
        answer = a.send(through_fc(click, front))
        assert answer.status_code == 200
        assert answer.json()["toast"]["i18n"]["en_us"] == "Cancelled."

        # A asked FC to stop the task, with the credentials FC passed it and a valid V3 signature.
        task_id = task_id_for(message_id, job.id)
        (stop,) = front.stops_of(task_id)
        assert (stop.status, stop.signature_valid, stop.function_name) == (200, True, front.function_name)
        assert (stop.access_key_id, stop.security_token) == (front.access_key_id, front.security_token)
        assert front.task_states[task_id] == "Stopped"
        # ...and, since the stopped invocation cannot, updated the card itself, before answering.
        cancelled = a.bot.store.get(job.id)
        assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
        assert cards_saying(fake_feishu.message(reply.message_id), "视频分析已取消")
        end_stopped_invocation(b, job.id)


def test_a_cancel_on_an_instance_that_never_saw_the_job_still_stops_it(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, media_server: MediaServer
) -> None:
    """Instances share no disk: the click may land on one with no record of the job. The button carries
    the creator and the job's key, so that instance can still check who clicked and stop the task."""
    slow = media_server.url("/trickle/clip.mp4?chunk=65536&pause=1.0")
    env_a, env_b, env_c = (fc_env(tmp_path, fake_feishu, front, name) for name in "abc")
    with (
        env_a.serve(job_function=None) as a,
        env_b.serve(job_function=None) as b,
        env_c.serve(job_function=None) as c,
    ):
        front.route_to(b.url)  # the webhook reaches A, the job runs on B, the clicks reach C
        message_id, job = send_and_get_job(a, front, slow)
        wait_for(lambda: (j := b.bot.store.get(job.id)) is not None and j.status is JobStatus.RUNNING, "B runs it")
        (reply,) = a.replies_to(message_id)
        (cancel_value,) = callback_values(json.loads(reply.history[0]))
        assert c.bot.store.get(job.id) is None

        stranger = c.events.card_action(
            value=cancel_value, operator_open_id="ou_someone_else", open_message_id=reply.message_id
        )
        refused = c.send(through_fc(stranger, front))
        assert refused.json()["toast"]["i18n"]["en_us"] == "Only the person who started this job can do that."
        assert front.stops == []

        click = c.events.card_action(
            value=cancel_value, operator_open_id=job.spec.creator_id, open_message_id=reply.message_id
        )
        answer = c.send(through_fc(click, front)).json()

        assert answer["toast"]["i18n"]["en_us"] == "Cancelled."
        assert "任务已取消" in card_text(answer["card"]["data"])  # the clicked card, replaced in the answer
        task_id = task_id_for(message_id, job.id)
        (stop,) = front.stops_of(task_id)
        assert (stop.status, stop.signature_valid) == (200, True)
        assert front.task_states[task_id] == "Stopped"
        end_stopped_invocation(b, job.id)


def test_two_functions_the_webhook_function_stops_the_workers_task(
    tmp_path: Path, fake_feishu: FakeFeishu, media_server: MediaServer
) -> None:
    """The two-function layout: the webhook function (SERVER_ROLE=webhook) answers Feishu and the click, the
    worker function runs the job. FC tells the webhook function its own name with every request; the stop
    must still address the worker's task."""
    slow = media_server.url("/trickle/clip.mp4?chunk=65536&pause=1.0")
    with FakeFcFront(function_name="video-insight-worker") as worker_front:
        webhook_env = fc_env(
            tmp_path,
            fake_feishu,
            worker_front,
            "webhook",
            server_role="webhook",
            job_function_name="video-insight-worker",
        )
        worker_env = fc_env(tmp_path, fake_feishu, worker_front, "worker")
        with webhook_env.serve(job_function=None) as webhook, worker_env.serve(job_function=None) as worker:
            worker_front.route_to(worker.url)

            def to_webhook_function(request: tuple[Headers, bytes]) -> tuple[Headers, bytes]:
                headers, body = through_fc(request, worker_front)
                return {**headers, "x-fc-function-name": "video-insight-webhook"}, body

            request = webhook.events.text(slow)
            assert webhook.send(to_webhook_function(request)).json() == {"msg": "ok"}
            message_id = webhook.message_id_of(request)
            job = webhook.job_for(message_id)
            assert job is not None
            wait_for(
                lambda: (j := worker.bot.store.get(job.id)) is not None and j.status is JobStatus.RUNNING,
                "the worker runs it",
            )

            (reply,) = webhook.replies_to(message_id)
            (cancel_value,) = callback_values(json.loads(reply.history[0]))
            click = webhook.events.card_action(
                value=cancel_value, operator_open_id=job.spec.creator_id, open_message_id=reply.message_id
            )
            answer = webhook.send(to_webhook_function(click)).json()
            assert answer["toast"]["i18n"]["en_us"] == "Cancelled."
            (stop,) = worker_front.stops_of(task_id_for(message_id, job.id))
            assert (stop.status, stop.function_name) == (200, "video-insight-worker")
            end_stopped_invocation(worker, job.id)


def end_stopped_invocation(instance: WebhookClient, job_id: str) -> None:
    """FC ends an invocation it stopped; the stand-in cannot reach into the instance, so the test does,
    rather than leave the job's threads running past the test."""
    instance.bot.runner.cancel(job_id)
    wait_for(lambda: (j := instance.bot.store.get(job_id)) is not None and j.status.terminal, "the job ends")


def stopper_runner(tmp_path: Path, front: FakeFcFront, store: JobStore, fc: FcContext) -> FcAsyncRunner:
    runner = FcAsyncRunner(
        store,
        lambda context: JobOutcome.done(),
        work_dir=tmp_path / "work",
        invoke_url=front.url,
        secret=SECRET,
        stopper=FcTaskStopper(fc, endpoint=front.url),
    )
    runner.start()
    return runner


def test_a_cancel_that_cannot_stop_the_task_says_why(tmp_path: Path, front: FakeFcFront) -> None:
    front.route_to("http://127.0.0.1:9")  # nothing listens: replays fail, so the task ends "Failed"
    with JobStore(tmp_path / "state.sqlite3") as store:
        fc = FcContext(region=front.region, function_name=front.function_name)
        runner = stopper_runner(tmp_path, front, store, fc)
        job, _ = store.create(envelope_for("https://videos.example.com/a.mp4").spec, idempotency_key="om_1")
        runner.submit(job.id)
        (invocation,) = front.wait_for_invocations(1)
        front.wait_for_replay(invocation)

        # No credentials: FC passed none (no role) and none are configured.
        with pytest.raises(CancelFailed) as no_credentials:
            runner.cancel(job.id)
        assert no_credentials.value.user_message == CANCEL_NOT_SET_UP
        assert front.stops == []

        # With FC's credentials, but the task has already ended.
        fc.observe(front.forwarded_headers())
        with pytest.raises(CancelFailed) as ended:
            runner.cancel(job.id)
        assert ended.value.user_message == CANCEL_NOT_STOPPED
        (stop,) = front.stops
        assert (stop.status, stop.signature_valid) == (400, True)
        still = store.get(job.id)
        assert still is not None and still.status is JobStatus.QUEUED  # nothing was recorded as cancelled

        with pytest.raises(CancelFailed) as unknown:
            runner.cancel("jNotHere")
        assert unknown.value.user_message == CANCEL_ELSEWHERE


# --------------------------------------------------------------------------------------------------
# Lifecycle hooks
# --------------------------------------------------------------------------------------------------


def test_initialize_loads_the_speech_model(tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront) -> None:
    # A beam size of its own: the engine cache is per process and per settings, so no other test's
    # engine counts here.
    env = fc_env(tmp_path, fake_feishu, front, asr_backend="whisper", whisper_beam_size=4)
    with env.serve() as app:
        engine = get_transcriber(app.bot.settings)
        assert getattr(engine, "load_count") == 0  # noqa: B009 - the engines' counter, not in the protocol
        response = app.http.post(app.url + "/initialize", headers=front.forwarded_headers())
        assert (response.status_code, response.json()) == (
            200,
            {"status": "ready", "asr_backend": "whisper", "model": "tiny.en"},
        )
        assert getattr(engine, "load_count") == 1  # noqa: B009


def test_initialize_without_the_model_answers_503_with_the_reason(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-model"
    env = fc_env(tmp_path, fake_feishu, front, asr_backend="whisper", whisper_model_dir=str(missing))
    with env.serve() as app, caplog.at_level(logging.ERROR, logger="bot.hosting"):
        response = app.http.post(app.url + "/initialize")
        assert response.status_code == 503
        assert response.json()["error"] == "model_unavailable"
        assert str(missing) in response.json()["message"]
        assert any("initialize" in r.getMessage() and str(missing) in r.getMessage() for r in caplog.records)


def test_the_webhook_role_loads_no_model_and_runs_no_job(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront
) -> None:
    """SERVER_ROLE=webhook: FC's initializer returns at once (a cold webhook must answer within Feishu's 3 s),
    and a job invocation that reaches this function by mistake is refused, not run on its small instance."""
    env = fc_env(tmp_path, fake_feishu, front, server_role="webhook", asr_backend="whisper", whisper_beam_size=3)
    with env.serve() as app:
        engine = get_transcriber(app.bot.settings)
        response = app.http.post(app.url + "/initialize", headers=front.forwarded_headers())
        assert (response.status_code, response.json()) == (200, {"status": "ready", "role": "webhook"})
        assert getattr(engine, "load_count") == 0  # noqa: B009 - the engines' counter, not in the protocol

        body = envelope_for("https://videos.example.com/a.mp4").to_json()
        refused = post_jobs_run(app, body, signed_headers(SECRET, body, time.time()))
        assert refused.status_code == 404
        assert "SERVER_ROLE=webhook" in refused.json()["message"]


def test_pre_stop_stops_intake_and_tells_the_running_jobs_user(
    tmp_path: Path, fake_feishu: FakeFeishu, front: FakeFcFront, media_server: MediaServer
) -> None:
    slow = media_server.url("/trickle/clip.mp4?chunk=65536&pause=1.0")
    with fc_env(tmp_path, fake_feishu, front).serve(job_function=None) as app:
        front.route_to(app.url)
        message_id, job = send_and_get_job(app, front, slow)
        (invocation,) = front.wait_for_invocations(1)
        wait_for(lambda: (j := app.bot.store.get(job.id)) is not None and j.status is JobStatus.RUNNING, "running")

        response = app.http.get(app.url + "/pre-stop", headers=front.forwarded_headers())
        assert (response.status_code, response.json()) == (200, {"status": "stopping", "interrupted": [job.id]})

        stopped = app.bot.store.get(job.id)
        assert stopped is not None and stopped.status is JobStatus.FAILED and stopped.error is not None
        assert stopped.error["code"] == "interrupted_by_platform"
        # Told on the job's card before pre-stop answered (the instance goes away after it).
        (reply,) = app.replies_to(message_id)
        assert cards_saying(fake_feishu.message(reply.message_id), "Function Compute recycled the instance")

        # No more work here: webhooks and job invocations are answered 503.
        late = app.send(through_fc(app.events.text("https://videos.example.com/late.mp4"), front))
        assert (late.status_code, late.json()["error"]) == (503, "unavailable")
        body = envelope_for("https://videos.example.com/b.mp4").to_json()
        refused = post_jobs_run(app, body, signed_headers(SECRET, body, time.time()))
        assert refused.status_code == 503

        # The interrupted job stopped at its next check; its invocation ends with the recorded failure.
        front.wait_for_replay(invocation)
        assert invocation.replay_status == 200
        assert invocation.replay_body == {"job_id": job.id, "status": "failed", "error": "interrupted_by_platform"}
        # ...and its own last card does not cover the "interrupted" one with a "cancelled" one.
        last_card = json.loads(fake_feishu.message(reply.message_id).history[-1])
        assert "Function Compute recycled the instance" in card_text(last_card)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def test_fc_async_settings_name_what_is_missing_and_never_the_secret() -> None:
    with pytest.raises(ConfigError) as missing:
        Settings.load(job_runner="fc-async")
    assert "JOB_INVOKE_URL" in str(missing.value) and "JOB_SECRET" in str(missing.value)

    short = "too-short-" + secrets.token_hex(4)
    with pytest.raises(ConfigError) as too_short:
        Settings.load(job_runner="fc-async", fc_invoke_url="https://f.fcapp.run", job_secret=short)
    assert "JOB_SECRET" in str(too_short.value) and "32" in str(too_short.value)
    assert short not in str(too_short.value)

    with pytest.raises(ConfigError) as not_a_url:
        Settings.load(job_runner="fc-async", fc_invoke_url="f.fcapp.run", job_secret=SECRET)
    assert "INVOKE_URL" in str(not_a_url.value)

    with pytest.raises(ConfigError) as local_webhook:
        Settings.load(server_role="webhook")
    assert "SERVER_ROLE=webhook" in str(local_webhook.value) and "JOB_RUNNER=fc-async" in str(local_webhook.value)

    ok = Settings.load(job_runner="fc-async", fc_invoke_url="https://f.fcapp.run/", job_secret=SECRET)
    assert ok.fc_invoke_url == "https://f.fcapp.run"
    assert SECRET not in repr(ok)


def test_signatures_cover_the_timestamp_and_the_body() -> None:
    body = b'{"v":1}'
    assert sign(SECRET, 100, body) != sign(SECRET, 101, body)
    assert sign(SECRET, 100, body) != sign(SECRET, 100, body + b" ")
    headers = signed_headers(SECRET, body, 1000.0)
    assert verify(SECRET, headers, body, now=1000.0 + 300, max_age_s=300) is None
    assert verify(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=1000.0, max_age_s=300) is None
    assert verify(SECRET, headers, body, now=1000.0 + 301, max_age_s=300) is not None


def test_a_store_adopts_a_job_from_another_instance_once(tmp_path: Path) -> None:
    envelope = envelope_for("https://videos.example.com/a.mp4")
    with JobStore(tmp_path / "state.sqlite3") as store:
        adopted, created = store.adopt(envelope.job_id, envelope.spec, idempotency_key="om_x", card_message_id="om_c")
        assert created and adopted.id == envelope.job_id and adopted.status is JobStatus.QUEUED
        assert (adopted.idempotency_key, adopted.card_message_id) == ("om_x", "om_c")

        again, created = store.adopt(envelope.job_id, envelope.spec, idempotency_key="om_x", card_message_id="om_d")
        assert not created and again == adopted  # unchanged, the first card kept

        # A redelivery already made a job for the same message here: the adopted one runs without the key.
        mine, _ = store.create(envelope.spec, idempotency_key="om_y")
        other, created = store.adopt("jFromElsewhere", envelope.spec, idempotency_key="om_y")
        assert created and other.idempotency_key is None and other.id != mine.id
