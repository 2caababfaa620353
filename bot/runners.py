"""The runner ``JOB_RUNNER`` asks for, and a job function named by ``JOB_FUNCTION``.

    local      ``LocalRunner``: worker threads in this process (Docker, Kubernetes, a laptop)
    fc-async   ``FcAsyncRunner``: each job in an asynchronous invocation of the same FC function,
               signed with ``JOB_SECRET``; cancel stops the invocation through FC's API

In fc-async mode replies go out through ``InlineOutbox``: FC freezes the instance once the webhook's
response is sent, so the queued card is sent before the acknowledgement (a reply takes ~100 ms, well
inside Feishu's 3 s), by the instance that got the message, as a reply to it with the stable
``reply_uuid``. The card then exists whatever happens to the invocation, and its message id travels in
the job envelope so the instance that runs the job updates the same card.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Settings
from bot.dedupe import SeenStore
from bot.jobrun import JobRunEndpoint
from pipeline.config import ConfigError
from pipeline.fc_api import CloudCredentials, FcContext, FcTaskStopper
from pipeline.fc_runner import FcAsyncRunner
from pipeline.jobs import JobStore
from pipeline.runner import JobFunction, LocalRunner, OnFinished


@dataclass(frozen=True)
class RunnerParts:
    runner: LocalRunner | FcAsyncRunner
    job_run: JobRunEndpoint | None = None  # fc-async only
    fc: FcContext | None = None  # fc-async only


def make_runner(
    settings: Settings,
    store: JobStore,
    seen: SeenStore,
    job_function: JobFunction,
    *,
    on_finished: OnFinished | None = None,
    settle_cards: Callable[[str], object] | None = None,
    clock: Callable[[], float] = time.time,
) -> RunnerParts:
    """``settle_cards(job_id)`` waits until the job's card updates have gone out (fc-async: the instance
    freezes once the response is sent)."""
    if settings.job_runner != "fc-async":
        return RunnerParts(
            LocalRunner(
                store,
                job_function,
                work_dir=settings.work_dir,
                max_concurrent_jobs=settings.max_concurrent_jobs,
                max_attempts=settings.job_max_attempts,
                on_finished=on_finished,
            )
        )
    fc = FcContext(
        region=settings.fc_region,
        function_name=settings.fc_function_name,
        job_function_name=settings.job_function_name,
        fallback=CloudCredentials(
            access_key_id=settings.alibaba_cloud_access_key_id.get_secret_value(),
            access_key_secret=settings.alibaba_cloud_access_key_secret.get_secret_value(),
            security_token=settings.alibaba_cloud_security_token.get_secret_value(),
        ),
    )
    secret = settings.job_secret.get_secret_value()
    runner = FcAsyncRunner(
        store,
        job_function,
        work_dir=settings.work_dir,
        invoke_url=settings.fc_invoke_url,
        secret=secret,
        stopper=FcTaskStopper(fc, endpoint=settings.fc_api_endpoint),
        on_finished=on_finished,
        settle=settle_cards,
        clock=clock,
    )
    job_run = JobRunEndpoint(
        secret=secret, max_age_s=settings.job_signature_max_age_s, seen=seen, runner=runner, clock=clock
    )
    return RunnerParts(runner, job_run, fc)


def import_job_function(path: str) -> JobFunction:
    """``package.module:function`` (``JOB_FUNCTION``) imported; ``ConfigError`` naming what is wrong."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"JOB_FUNCTION: cannot import {module_name}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"JOB_FUNCTION: {module_name} has no function {attribute}")
    job_function: JobFunction = function
    return job_function
