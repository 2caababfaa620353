"""The error tree of the Feishu wrapper, and the Feishu codes grouped by what a caller can do about them.


FeishuError(code, msg, http_status, log_id)   anything the Open Platform refused
├── RateLimited          429 / 99991400, per-message card updates (230020), Bitable 1254290
├── TokenInvalid         the tenant token was rejected even after one refetch
├── CredentialsRejected  the app id / secret are wrong (fix the configuration)
├── PermissionDenied     the app lacks access (not added to the Base, not in the chat, ...)
│   └── ScopeMissing     a scope is not granted (99991672): ``scopes`` names what to add
├── MessageGone          recalled, deleted, or too old to update (14 days)
├── NotFound             unknown message resource, Base, table, media or wiki node
├── TooLarge             over a size limit (ours or Feishu's)
└── TransientError       5xx, timeouts, broken connections: retried here, raised when retries run out

"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Feishu codes, grouped by what the caller can do about them.
RATE_LIMIT_CODES = frozenset({99991400, 230020, 1254290})
TOKEN_CODES = frozenset({99991661, 99991663, 99991664, 99991665, 99991668, 99991671, 99991677})
CREDENTIAL_CODES = frozenset({10003, 10014})
MESSAGE_GONE_CODES = frozenset({230011, 230031, 230110})
PERMISSION_CODES = frozenset(
    {
        91403,  # docs: no permission on the document
        1254302,  # bitable: role has no permission (advanced permissions)
        1254304,
        1254303,  # bitable: attachment not uploaded to this Base
        1254027,
        1061004,  # drive: forbidden
        1061073,  # drive: scope not granted
        1063002,  # permissions: not a collaborator / not the owner
        230002,  # bot not in the chat
        230027,  # lack of necessary permissions
        234004,  # message resource: app not in the chat
        131006,  # wiki: permission denied
    }
)
# The app (99991672) or the user token (99991679) lacks a scope; the message names the scopes in brackets.
SCOPE_CODES = frozenset({99991672, 99991679})
NOT_FOUND_CODES = frozenset({91402, 1254040, 1254041, 1254043, 1061003, 1061007, 1061044, 1063005, 234003, 131005})
TOO_LARGE_CODES = frozenset({230025, 234037, 1061043})
TRANSIENT_CODES = frozenset({1254607, 1255040, 1254291, 1061045, 1061001, 1061006, 1255001, 1255002})


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class FeishuError(Exception):
    """The Open Platform refused a call. ``code`` is Feishu's (-1 when no answer was parsed)."""

    retryable = False

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        http_status: int | None = None,
        log_id: str | None = None,
        operation: str = "",
    ) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.log_id = log_id
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}code {code} (http {http_status}, log_id {log_id}): {msg}")


class RateLimited(FeishuError):
    retryable = True

    def __init__(self, *args: Any, reset_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset_after_s = reset_after_s


class TokenInvalid(FeishuError):
    pass


class CredentialsRejected(FeishuError):
    pass


class PermissionDenied(FeishuError):
    pass


class ScopeMissing(PermissionDenied):
    """The app has not been granted a scope the call needs: ``scopes`` are those Feishu names (any one
    of them is enough), parsed from its message ("... one of the following scopes is required: [a, b]")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = _SCOPE_LIST.search(self.msg)
        names = found.group(1).split(",") if found else []
        self.scopes: tuple[str, ...] = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


_SCOPE_LIST = re.compile(r"\[([A-Za-z0-9_.:,\s-]+)\]")


class MessageGone(FeishuError):
    pass


class NotFound(FeishuError):
    pass


class TooLarge(FeishuError):
    def __init__(self, *args: Any, size_bytes: int | None = None, limit_bytes: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class TransientError(FeishuError):
    retryable = True

    def __init__(self, *args: Any, request_sent: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # False when the request never left (connect refused / connect timeout): safe to resend anything.
        self.request_sent = request_sent


def error_for(
    code: int,
    msg: str,
    *,
    http_status: int | None = None,
    log_id: str | None = None,
    operation: str = "",
    headers: Mapping[str, str] | None = None,
) -> FeishuError:
    """The error class for a Feishu code and HTTP status."""
    kwargs: dict[str, Any] = {"http_status": http_status, "log_id": log_id, "operation": operation}
    if code in TOKEN_CODES:
        return TokenInvalid(code, msg, **kwargs)
    if code in RATE_LIMIT_CODES or http_status == 429:
        return RateLimited(code, msg, reset_after_s=_reset_after(headers or {}), **kwargs)
    if code in CREDENTIAL_CODES:
        return CredentialsRejected(code, msg, **kwargs)
    if code in MESSAGE_GONE_CODES:
        return MessageGone(code, msg, **kwargs)
    if code in SCOPE_CODES:
        return ScopeMissing(code, msg, **kwargs)
    if code in PERMISSION_CODES:
        return PermissionDenied(code, msg, **kwargs)
    if code in NOT_FOUND_CODES:
        return NotFound(code, msg, **kwargs)
    if code in TOO_LARGE_CODES:
        return TooLarge(code, msg, **kwargs)
    if code in TRANSIENT_CODES or (http_status is not None and http_status >= 500):
        return TransientError(code, msg, **kwargs)
    return FeishuError(code, msg, **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _reset_after(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "x-ogw-ratelimit-reset")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
