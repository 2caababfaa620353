"""The one place the bot talks to the Feishu Open Platform: a thin, retrying wrapper around lark-oapi.

Every call goes through the SDK's typed request builders; this module adds what the SDK leaves out:

* retries with bounded exponential backoff for rate limits (HTTP 429 / 99991400, honouring
  ``x-ogw-ratelimit-reset``), 5xx answers and broken connections;
* recovery from an invalid tenant token: the SDK caches the token process-wide and never refetches it
  on 99991663, so the cache entry is cleared and the call retried once;
* idempotency keys (message ``uuid``, Bitable ``client_token``) so that a retried write lands once;
* downloads written to disk with a size cap, the partial file removed on error;
* one small error tree the bot can act on.

``lark_oapi`` takes about a second to import: it is imported inside the constructor and methods, so
importing this module stays cheap for the server's start path.

Logs carry the operation, codes, HTTP status and Feishu's log_id; never tokens, secrets or bodies.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from bot.feishu.errors import (
    CREDENTIAL_CODES,
    RATE_LIMIT_CODES,
    CredentialsRejected,
    RateLimited,
    TokenInvalid,
    TransientError,
    error_for,
)

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. Waits double from ``base_delay_s`` (with jitter) up to ``max_delay_s``;
    a rate limit's ``x-ogw-ratelimit-reset`` is honoured up to ``max_delay_s``. A call gives up after
    ``max_attempts`` attempts or once waiting again would pass ``max_total_s``."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    max_total_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_total_s < 0:
            raise ValueError("retry policy needs max_attempts >= 1 and non-negative delays")

    def backoff_s(self, attempt: int) -> float:
        """Wait after the ``attempt``-th failure (1-based): exponential, half-jittered."""
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


class Transport:
    """Synchronous and thread-safe (the SDK client holds no per-call state; the token cache is shared).

    ``sleep`` and ``clock`` are injectable so tests can observe waits without spending them."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        domain: str = "https://open.feishu.cn",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import lark_oapi as lark

        self._app_id = app_id
        self.domain = domain
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        # The SDK sets its process-wide "Lark" logger to this level; CRITICAL matches pipeline.logs,
        # which keeps the SDK from logging request details and event payloads.
        self._sdk: Any = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(domain)
            .timeout(timeout)
            .log_level(lark.LogLevel.CRITICAL)
            .build()
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Self:
        return cls(
            settings.feishu_app_id,
            settings.feishu_app_secret.get_secret_value(),
            domain=settings.feishu_domain,
            **options,
        )

    # ---- the retry loop --------------------------------------------------------------------------

    def _call(self, operation: str, send: Callable[[], Any], *, idempotent: bool = True) -> Any:
        """Run ``send`` (which builds a fresh SDK request each time) until it succeeds or must stop.

        Non-idempotent calls are resent only when the platform provably did not act: rate limits,
        rejected tokens, and connections that never opened."""
        policy = self.retry
        deadline = self._clock() + policy.max_total_s
        attempt = 0
        token_refreshed = False
        while True:
            attempt += 1
            try:
                return self._checked(operation, send())
            except TokenInvalid as err:
                if token_refreshed:
                    raise
                token_refreshed = True
                attempt -= 1  # the refetch is a repair, not a retry
                log.warning(
                    "feishu %s: token rejected (code %s, log_id %s); refetching", operation, err.code, err.log_id
                )
                self._forget_token()
                continue
            except (RateLimited, TransientError) as err:
                resend_ok = idempotent or isinstance(err, RateLimited) or not getattr(err, "request_sent", True)
                wait = policy.backoff_s(attempt)
                if isinstance(err, RateLimited) and err.reset_after_s is not None:
                    wait = min(policy.max_delay_s, max(wait, err.reset_after_s))
                if not resend_ok or attempt >= policy.max_attempts or self._clock() + wait > deadline:
                    log.warning(
                        "feishu %s failed after %d attempt(s): code %s, http %s, log_id %s",
                        operation,
                        attempt,
                        err.code,
                        err.http_status,
                        err.log_id,
                    )
                    raise
                log.warning(
                    "feishu %s: code %s, http %s, log_id %s; retry %d/%d in %.2fs",
                    operation,
                    err.code,
                    err.http_status,
                    err.log_id,
                    attempt + 1,
                    policy.max_attempts,
                    wait,
                )
                self._sleep(wait)

    def _checked(self, operation: str, send_result: Any) -> Any:
        resp = send_result
        if resp.success():
            return resp
        raw = resp.raw
        status = raw.status_code if raw is not None else None
        headers: Mapping[str, str] = raw.headers if raw is not None and raw.headers else {}
        log_id = resp.get_log_id() or (resp.error.log_id if resp.error is not None else None)
        code = resp.code if resp.code is not None else -1
        msg = resp.msg or ("non-JSON error answer" if resp.code is None else "")
        raise error_for(code, msg, http_status=status, log_id=log_id, operation=operation, headers=headers)

    def _send(self, operation: str, call: Callable[[], Any]) -> Any:
        """Invoke the SDK and translate what it raises into this module's errors."""
        import requests
        from lark_oapi.core.exception import NoAuthorizationException, ObtainAccessTokenException
        from urllib3.exceptions import NewConnectionError

        try:
            return call()
        except ObtainAccessTokenException as exc:
            code = int(exc.code) if exc.code is not None else -1
            if code in CREDENTIAL_CODES:
                raise CredentialsRejected(code, str(exc.msg), operation=operation) from None
            if code in RATE_LIMIT_CODES:
                raise RateLimited(code, str(exc.msg), operation=operation) from None
            raise TransientError(code, f"tenant token request failed: {exc.msg}", operation=operation) from None
        except NoAuthorizationException as exc:
            raise CredentialsRejected(-1, exc.msg, operation=operation) from None
        except requests.exceptions.ConnectTimeout:
            raise TransientError(-1, "connect timeout", operation=operation, request_sent=False) from None
        except requests.exceptions.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            never_sent = isinstance(reason, NewConnectionError)
            raise TransientError(
                -1, f"connection failed ({type(exc).__name__})", operation=operation, request_sent=not never_sent
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(-1, f"request failed ({type(exc).__name__})", operation=operation) from None
        except ValueError as exc:
            # The SDK parses every answer as JSON: a gateway's HTML error page lands here.
            raise TransientError(-1, f"unparseable answer ({type(exc).__name__})", operation=operation) from None

    def _run(self, operation: str, call: Callable[[], Any], *, idempotent: bool = True) -> Any:
        return self._call(operation, lambda: self._send(operation, call), idempotent=idempotent)

    def _forget_token(self) -> None:
        from lark_oapi.core.token.manager import TokenManager

        # The SDK's cache key for a self-built app's tenant token; an empty value forces a refetch.
        TokenManager.cache.set(f"self_tenant_token:{self._app_id}", "", 0)


def _marshal(obj: Any) -> str:
    from lark_oapi.core.json import JSON

    text = JSON.marshal(obj)
    return text if isinstance(text, str) else "null"
