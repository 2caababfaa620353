"""Stopping a job's asynchronous FC invocation through Function Compute's own API (StopAsyncTask).

A Cancel click may reach an instance other than the one running the job, and FC instances share
nothing; FC itself can stop the invocation, by the task id the job was submitted with. The call is made
with the official SDK (``alibabacloud-fc20230330``, imported on first use: about 0.2 s).

Credentials: FC passes temporary ones (from the function's role) with every request it forwards to a
custom container, in ``x-fc-access-key-id``, ``x-fc-access-key-secret`` and ``x-fc-security-token``;
``FcContext.observe`` keeps the latest, and falls back to configured ones (``ALIBABA_CLOUD_ACCESS_KEY_*``,
which FC also sets from the role) when a request carried none. They live in memory only and are never
logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

ACCESS_KEY_ID_HEADER = "x-fc-access-key-id"
ACCESS_KEY_SECRET_HEADER = "x-fc-access-key-secret"  # noqa: S105 - a header name
SECURITY_TOKEN_HEADER = "x-fc-security-token"  # noqa: S105 - a header name
ACCOUNT_ID_HEADER = "x-fc-account-id"
REGION_HEADER = "x-fc-region"
FUNCTION_NAME_HEADER = "x-fc-function-name"
QUALIFIER_HEADER = "x-fc-qualifier"

# A card click must be answered within 3 s: the stop call gets well under that.
CONNECT_TIMEOUT_MS = 1000
READ_TIMEOUT_MS = 1500


@dataclass(frozen=True)
class CloudCredentials:
    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)
    security_token: str = field(default="", repr=False)

    @property
    def usable(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret)


class TaskStopError(Exception):
    """FC did not stop the task. ``reason`` is for logs (no credentials in it)."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class AsyncTaskStopper(Protocol):
    def stop(self, task_id: str) -> None:
        """Stop the asynchronous invocation ``task_id``; ``TaskStopError`` when FC did not."""
        ...


class FcContext:
    """What FC tells the container with each request (credentials, region, function), the latest kept.
    Thread-safe: requests are handled on several threads."""

    def __init__(
        self,
        *,
        region: str = "",
        function_name: str = "",
        job_function_name: str = "",
        fallback: CloudCredentials | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._region = region
        self._function_name = function_name
        # Where the jobs run when that is another function (a two-function deployment): fixed, never replaced
        # by the name FC passes with each request, which is this function's own.
        self._job_function_name = job_function_name
        self._qualifier = ""
        self._account_id = ""
        self._fallback = fallback if fallback is not None and fallback.usable else None
        self._observed: CloudCredentials | None = None

    def observe(self, headers: Mapping[str, str]) -> None:
        lowered = {name.lower(): value for name, value in headers.items() if name.lower().startswith("x-fc-")}
        if not lowered:
            return
        credentials = CloudCredentials(
            access_key_id=lowered.get(ACCESS_KEY_ID_HEADER, ""),
            access_key_secret=lowered.get(ACCESS_KEY_SECRET_HEADER, ""),
            security_token=lowered.get(SECURITY_TOKEN_HEADER, ""),
        )
        with self._lock:
            if credentials.usable:
                self._observed = credentials
            self._region = lowered.get(REGION_HEADER) or self._region
            self._function_name = lowered.get(FUNCTION_NAME_HEADER) or self._function_name
            self._qualifier = lowered.get(QUALIFIER_HEADER) or self._qualifier
            self._account_id = lowered.get(ACCOUNT_ID_HEADER) or self._account_id

    def credentials(self) -> CloudCredentials | None:
        with self._lock:
            return self._observed or self._fallback

    @property
    def region(self) -> str:
        with self._lock:
            return self._region

    @property
    def function_name(self) -> str:
        """The function whose async tasks run the jobs (the one StopAsyncTask addresses)."""
        with self._lock:
            return self._job_function_name or self._function_name

    @property
    def qualifier(self) -> str:
        with self._lock:
            return self._qualifier

    @property
    def account_id(self) -> str:
        with self._lock:
            return self._account_id


class FcTaskStopper:
    """StopAsyncTask through the SDK. ``endpoint``: empty for the region's public endpoint, or a URL
    (``https://fcv3.cn-hangzhou.aliyuncs.com``; tests point it at a stand-in over http)."""

    def __init__(
        self,
        context: FcContext,
        *,
        endpoint: str = "",
        connect_timeout_ms: int = CONNECT_TIMEOUT_MS,
        read_timeout_ms: int = READ_TIMEOUT_MS,
    ) -> None:
        self._context = context
        self._endpoint = endpoint.strip().rstrip("/")
        self._connect_timeout_ms = connect_timeout_ms
        self._read_timeout_ms = read_timeout_ms

    def stop(self, task_id: str) -> None:
        credentials = self._context.credentials()
        if credentials is None:
            raise TaskStopError(
                "no credentials: FC passed none with the requests (the function has no role) and "
                "ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET are not set"
            )
        region = self._context.region
        function_name = self._context.function_name
        if not function_name or (not region and not self._endpoint):
            raise TaskStopError("the function name or region is unknown (FC_FUNCTION_NAME, FC_REGION)")

        try:
            from alibabacloud_fc20230330 import models
            from alibabacloud_fc20230330.client import Client
            from alibabacloud_tea_openapi import utils_models
        except ImportError as exc:
            raise TaskStopError(f"the Function Compute SDK is not installed (alibabacloud-fc20230330): {exc}") from None

        protocol, _, host = self._endpoint.partition("://") if self._endpoint else ("https", "", "")
        config = utils_models.Config(
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            security_token=credentials.security_token or None,
            region_id=region or None,
            endpoint=host or None,
            protocol=protocol,
            connect_timeout=self._connect_timeout_ms,
            read_timeout=self._read_timeout_ms,
        )
        request = models.StopAsyncTaskRequest(qualifier=self._context.qualifier or None)
        try:
            response = Client(config).stop_async_task(function_name, task_id, request)
        except Exception as exc:
            raise _stop_error(exc) from None
        status = int(getattr(response, "status_code", 0) or 0)
        if not 200 <= status < 300:
            raise TaskStopError(f"StopAsyncTask answered HTTP {status}", status=status)
        log.info("FC stopped async task %s", task_id)


def _stop_error(exc: Exception) -> TaskStopError:
    """The SDK's error, reduced to what may be logged: HTTP status, FC's error code and message."""
    status: Any = getattr(exc, "status_code", None)
    code = str(getattr(exc, "code", "") or "")
    message = str(getattr(exc, "message", "") or "")
    if status is None:
        # Connection errors: the SDK wraps the transport error; its text names the host, not secrets.
        return TaskStopError(f"StopAsyncTask did not get an answer: {type(exc).__name__}: {message[:300]}")
    return TaskStopError(
        f"StopAsyncTask refused: HTTP {status} {code}: {message[:300]}",
        status=int(status),
        code=code,
    )
