"""The webhook, free of any web framework: ``WebhookHandler.handle(headers, body) -> Answer``.

A request passes these steps in order; the first that refuses answers with a 4xx JSON error carrying a
reason (also counted in metrics), never a 500 or a stack trace:

    configured?   FEISHU_ENCRYPT_KEY or FEISHU_VERIFICATION_TOKEN unset         403  (every request)
    body          empty / not JSON / nested too deeply / not a JSON object    400
    signed?       event without X-Lark-Signature/-Timestamp/-Nonce headers     401  (when an encrypt key is set;
                  decrypted here only to let an unsigned url_verification through)
    replay        X-Lark-Request-Timestamp outside the replay window           401  (the SDK has no such check)
    SDK           lark_oapi's EventDispatcherHandler: decryption, verification
                  token and signature; dispatch to processors that only
                  record the parsed event                                       401 token / 401 signature
                  A refusal is explained by looking at the request ourselves:
                  ciphertext not base64 or not decryptable; not a v2 event     400
    ours?         header.app_id is another app's                               403
    route         unknown event type -> 200 ignored; bot senders -> 200 ignored;
                  redelivered event_id or message_id -> 200 {"msg": "duplicate"}
                  messages -> ``on_message``; card callbacks -> ``on_card_action`` (toast / card)

An accepted event is decrypted once, by the SDK: the request path does not pay for a second opinion.

``url_verification`` (plain or encrypted, signed or not) is answered ``{"challenge": ...}``.

lark_oapi takes about 2 s to import, so the SDK dispatcher is built by ``warm_up()`` (the server calls
it from a background thread at start); ``handle`` builds it on first use if nobody did.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.answer import Answer
from bot.inbound.dedupe import SeenStore
from bot.inbound.events import CardAction, CardActionReply, IncomingMessage, Mention
from bot.metrics import BotMetrics
from pipeline.logs import log_context
from pipeline.models import UserText
from pipeline.safe_json import JsonTooDeep, loads_bounded

log = logging.getLogger(__name__)

MESSAGE_RECEIVED = "im.message.receive_v1"
CARD_ACTION = "card.action.trigger"
URL_VERIFICATION = "url_verification"

SIGNATURE_HEADERS = ("x-lark-request-timestamp", "x-lark-request-nonce", "x-lark-signature")


class Rejection(StrEnum):
    """Why a request was refused. The value is the metrics label and the ``error`` field."""

    EMPTY_BODY = "empty_body"
    NOT_JSON = "not_json"
    TOO_DEEP = "json_too_deep"
    NOT_AN_OBJECT = "not_a_json_object"
    NOT_AN_EVENT = "not_a_feishu_event"
    UNDECRYPTABLE = "undecryptable"
    MISSING_SIGNATURE = "missing_signature_headers"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_or_future_timestamp"
    INVALID_TOKEN = "invalid_verification_token"  # noqa: S105 - a reason, not a secret
    BAD_SIGNATURE = "bad_signature"
    MALFORMED_EVENT = "malformed_event"
    OTHER_APP = "other_app"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    NOT_CONFIGURED = "webhook_not_configured"


_REJECTIONS: dict[Rejection, tuple[int, str]] = {
    Rejection.EMPTY_BODY: (400, "empty body"),
    Rejection.NOT_JSON: (400, "body is not JSON"),
    Rejection.TOO_DEEP: (400, "body nests JSON too deeply"),
    Rejection.NOT_AN_OBJECT: (400, "body is not a JSON object"),
    Rejection.NOT_AN_EVENT: (400, "not a Feishu v2 event or url_verification"),
    Rejection.UNDECRYPTABLE: (400, "ciphertext is not base64 or does not decrypt with the configured key"),
    Rejection.MISSING_SIGNATURE: (401, "missing signature headers"),
    Rejection.BAD_TIMESTAMP: (401, "signature timestamp is not a number"),
    Rejection.STALE_TIMESTAMP: (401, "stale or future timestamp"),
    Rejection.INVALID_TOKEN: (401, "invalid verification token"),
    Rejection.BAD_SIGNATURE: (401, "bad signature"),
    Rejection.MALFORMED_EVENT: (400, "malformed event"),
    Rejection.OTHER_APP: (403, "event is for another app"),
    Rejection.TOO_LARGE: (413, "request body too large"),
    Rejection.UNAVAILABLE: (503, "temporarily unavailable, retry later"),
    Rejection.NOT_CONFIGURED: (
        403,
        "this bot takes no webhook events: FEISHU_ENCRYPT_KEY and FEISHU_VERIFICATION_TOKEN are not both set",
    ),
}


def _problem(reason: Rejection) -> Answer:
    status, message = _REJECTIONS[reason]
    return Answer.problem(status, reason.value, message)


class _Refused(Exception):
    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class _Dispatched:
    """What the SDK made of a request it accepted: a url_verification's challenge, or an event (the
    parsed SDK object, None for a type nobody handles) and its header fields."""

    challenge: str | None = None
    event: Any = None
    event_type: str = ""
    event_id: str = ""
    app_id: str = ""


MessageHandler = Callable[[IncomingMessage], None]
CardActionHandler = Callable[[CardAction], CardActionReply]
Clock = Callable[[], float]

CARD_ACTION_FAILED = CardActionReply(
    toast=UserText(zh="处理失败，请稍后再试。", en="That did not work; please try again later."),
    toast_type="error",
)

# Events the SDK processors parsed during the current ``handle`` call (one list per call and thread).
_recorded: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("webhook_recorded", default=None)


def _record(data: Any) -> None:
    slot = _recorded.get()
    if slot is not None:
        slot.append(data)


def _drop_dispatch_tracebacks(record: logging.LogRecord) -> bool:
    # The SDK logs every refused request with a traceback and request data; we answer and count
    # those ourselves.
    return not str(record.msg).startswith("handle event failed")


class WebhookHandler:
    def __init__(
        self,
        *,
        app_id: str,
        encrypt_key: str,
        verification_token: str,
        replay_window_s: float,
        seen: SeenStore,
        metrics: BotMetrics,
        on_message: MessageHandler,
        on_card_action: CardActionHandler,
        clock: Clock = time.time,
    ) -> None:
        self._app_id = app_id
        self._encrypt_key = encrypt_key
        self._verification_token = verification_token
        self._replay_window_s = replay_window_s
        self._seen = seen
        self._metrics = metrics
        self._on_message = on_message
        self._on_card_action = on_card_action
        self._clock = clock
        self._dispatcher: Any = None
        self._cipher: Any = None
        self._ready_lock = threading.Lock()

    # --- start-up ------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Import lark_oapi and build the SDK dispatcher (about 2 s the first time in a process)."""
        with self._ready_lock:
            if self._dispatcher is not None:
                return
            import lark_oapi
            from lark_oapi.core.utils import AESCipher
            from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTriggerResponse

            logging.getLogger("Lark").addFilter(_drop_dispatch_tracebacks)

            def record_card_action(data: Any) -> Any:
                _record(data)
                # The real answer is built after the SDK returns; the SDK needs a response object to marshal.
                return P2CardActionTriggerResponse()

            self._cipher = AESCipher(self._encrypt_key) if self._encrypt_key else None
            self._dispatcher = (
                lark_oapi.EventDispatcherHandler.builder(self._encrypt_key, self._verification_token)
                .register_p2_im_message_receive_v1(_record)
                .register_p2_card_action_trigger(record_card_action)
                .build()
            )

    @property
    def ready(self) -> bool:
        return self._dispatcher is not None

    # --- the request ---------------------------------------------------------------------------

    def reject_oversized(self) -> Answer:
        """The answer for a body over the size cap (the adapter decides that before reading it)."""
        return self._refuse(Rejection.TOO_LARGE)

    def handle(self, headers: Mapping[str, str], body: bytes) -> Answer:
        if not self.ready:
            self.warm_up()
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            if not (self._encrypt_key and self._verification_token):
                # Without both, a request cannot be verified: trust none rather than an unsigned one.
                raise _Refused(Rejection.NOT_CONFIGURED)
            if not body.strip():
                raise _Refused(Rejection.EMPTY_BODY)
            envelope = _json_object(body, Rejection.NOT_JSON, Rejection.NOT_AN_OBJECT)
            unsigned = self._encrypt_key and not all(lowered.get(name) for name in SIGNATURE_HEADERS)
            # Only a url_verification may come unsigned: decrypt it here to see which this is.
            if unsigned and self._open(envelope).get("type") != URL_VERIFICATION:
                raise _Refused(Rejection.MISSING_SIGNATURE)
            self._check_replay_window(lowered)
            dispatched = self._dispatch(lowered, body, envelope)
        except _Refused as refused:
            return self._refuse(refused.reason)

        if dispatched.challenge is not None:
            self._metrics.events_received.labels(event_type=URL_VERIFICATION).inc()
            return Answer.ok(challenge=dispatched.challenge)
        return self._route(dispatched)

    def route_event(self, event: Any) -> Answer:
        """An event the SDK has already parsed elsewhere (the long connection): the same steps a webhook
        event takes after decryption (app check, dedupe, messages, card actions)."""
        header = getattr(event, "header", None)
        return self._route(
            _Dispatched(
                event=event,
                event_type=_s(getattr(header, "event_type", None)),
                event_id=_s(getattr(header, "event_id", None)),
                app_id=_s(getattr(header, "app_id", None)),
            )
        )

    def _route(self, dispatched: _Dispatched) -> Answer:
        if self._app_id and dispatched.app_id != self._app_id:
            return self._refuse(Rejection.OTHER_APP)
        self._metrics.events_received.labels(event_type=dispatched.event_type).inc()
        if dispatched.event is None:
            self._metrics.ignored.labels(reason="unknown_event_type").inc()
            return Answer.ok(msg="ignored")

        with log_context(event_id=dispatched.event_id or None):
            try:
                if dispatched.event_type == CARD_ACTION:
                    return self._card_action(_card_action_from_sdk(dispatched.event))
                return self._message(_message_from_sdk(dispatched.event))
            except Exception as exc:
                log.error("handling %s failed: %s: %s", dispatched.event_type, type(exc).__name__, exc, exc_info=True)
                return self._refuse(Rejection.UNAVAILABLE)

    # --- steps -----------------------------------------------------------------------------------

    def _refuse(self, reason: Rejection) -> Answer:
        self._metrics.rejected.labels(reason=reason.value).inc()
        if reason is not Rejection.UNAVAILABLE:
            log.info("webhook request refused: %s", reason.value)
        return _problem(reason)

    def _open(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The event as JSON: the body itself, or what its ``encrypt`` field decrypts to. Only used where
        the SDK cannot say it (an unsigned request, or one the SDK refused): on the way of an ordinary
        event the SDK's decryption is the only one."""
        if "encrypt" in envelope:
            ciphertext = envelope["encrypt"]
            if not isinstance(ciphertext, str) or not ciphertext or self._cipher is None:
                raise _Refused(Rejection.UNDECRYPTABLE)
            try:
                raw = base64.b64decode(ciphertext, validate=True)
                decrypted = self._cipher.decrypt(raw)
            except (binascii.Error, ValueError):
                raise _Refused(Rejection.UNDECRYPTABLE) from None
            plaintext = _json_object(decrypted, Rejection.UNDECRYPTABLE, Rejection.UNDECRYPTABLE)
        else:
            plaintext = envelope
        if plaintext.get("type") == URL_VERIFICATION:
            return plaintext
        header = plaintext.get("header")
        if plaintext.get("schema") != "2.0" or not isinstance(header, dict) or not header.get("event_type"):
            raise _Refused(Rejection.NOT_AN_EVENT)
        return plaintext

    def _check_replay_window(self, headers: Mapping[str, str]) -> None:
        stamp = headers.get("x-lark-request-timestamp")
        if stamp is None:
            return
        try:
            sent_at = float(int(stamp.strip()))
        except ValueError:
            raise _Refused(Rejection.BAD_TIMESTAMP) from None
        if abs(self._clock() - sent_at) > self._replay_window_s:
            raise _Refused(Rejection.STALE_TIMESTAMP)

    def _dispatch(self, headers: Mapping[str, str], body: bytes, envelope: dict[str, Any]) -> _Dispatched:
        """Run the SDK: decryption, token, signature, parsing. When it refuses, look at the request
        ourselves to say why (the SDK answers every failure alike, with a 500 and a message)."""
        from lark_oapi.core.model import RawRequest

        request = RawRequest()
        request.uri = "/webhook/event"
        # The SDK looks headers up case-sensitively by their canonical names ("X-Lark-Signature").
        request.headers = {_title_case(name): value for name, value in headers.items()}
        request.body = body
        slot: list[Any] = []
        token = _recorded.set(slot)
        try:
            response = self._dispatcher.do(request)
        finally:
            _recorded.reset(token)
        if response.status_code == 200:
            if slot:
                header = getattr(slot[0], "header", None)
                return _Dispatched(
                    event=slot[0],
                    event_type=_s(getattr(header, "event_type", None)),
                    event_id=_s(getattr(header, "event_id", None)),
                    app_id=_s(getattr(header, "app_id", None)),
                )
            return _Dispatched(challenge=_challenge(response.content))
        plaintext = self._open(envelope)  # raises the precise reason for undecryptable and non-events
        failure = _sdk_failure(response.content)
        if "processor not found" in failure:
            header = plaintext.get("header") or {}
            return _Dispatched(
                event_type=str(header.get("event_type", "")),
                event_id=str(header.get("event_id", "")),
                app_id=str(header.get("app_id", "")),
            )
        if "verification_token" in failure:
            raise _Refused(Rejection.INVALID_TOKEN)
        if "signature" in failure:
            raise _Refused(Rejection.BAD_SIGNATURE)
        if "encrypt_key" in failure:
            raise _Refused(Rejection.UNDECRYPTABLE)
        log.info("the SDK refused an event: %.200s", failure)
        raise _Refused(Rejection.MALFORMED_EVENT)

    def _message(self, message: IncomingMessage) -> Answer:
        if not message.from_person:
            # Our own cards and other bots' messages come back as events too.
            self._metrics.ignored.labels(reason="bot_sender").inc()
            return Answer.ok(msg="ignored")
        recorded = [
            (kind, key) for kind, key in (("event_id", message.event_id), ("message_id", message.message_id)) if key
        ]
        # Claimed, not yet handled: a crash before the job exists leaves a claim a redelivery takes over.
        duplicate = self._seen.first_time_all(recorded, self._clock(), claim=True)
        if duplicate is not None:
            self._metrics.duplicates.labels(key=duplicate[0]).inc()
            return Answer.ok(msg="duplicate")
        try:
            self._on_message(message)
        except Exception:
            # Let Feishu's redelivery try again: forget the ids so it is not dropped as a duplicate.
            for kind, key in recorded:
                self._seen.forget(kind, key)
            raise
        self._seen.handled(recorded, self._clock())
        return Answer.ok(msg="ok")

    def _card_action(self, action: CardAction) -> Answer:
        try:
            reply = self._on_card_action(action)
        except Exception as exc:
            log.error("card action %r failed: %s: %s", action.action, type(exc).__name__, exc, exc_info=True)
            reply = CARD_ACTION_FAILED
        return Answer(200, reply.to_feishu())


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _json_object(raw: bytes, not_json: Rejection, not_object: Rejection) -> dict[str, Any]:
    try:
        value = loads_bounded(raw)
    except JsonTooDeep:
        raise _Refused(Rejection.TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError):
        raise _Refused(not_json) from None
    if not isinstance(value, dict):
        raise _Refused(not_object)
    return value


def _title_case(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _challenge(content: bytes | None) -> str:
    try:
        answer = loads_bounded(content or b"{}")
    except ValueError:
        return ""
    return str(answer.get("challenge", "")) if isinstance(answer, dict) else ""


def _sdk_failure(content: bytes | None) -> str:
    text = (content or b"").decode("utf-8", "replace")
    try:
        parsed = loads_bounded(text)
    except ValueError:
        return text  # the SDK formats its message with % and does not escape quotes
    return str(parsed.get("msg", text)) if isinstance(parsed, dict) else text


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _message_from_sdk(data: Any) -> IncomingMessage:
    header = getattr(data, "header", None)
    event = getattr(data, "event", None)
    message = getattr(event, "message", None)
    sender = getattr(event, "sender", None)
    sender_id = getattr(sender, "sender_id", None)
    mentions = tuple(
        Mention(
            key=_s(getattr(m, "key", None)),
            name=_s(getattr(m, "name", None)),
            open_id=_s(getattr(getattr(m, "id", None), "open_id", None)),
        )
        for m in (getattr(message, "mentions", None) or ())
    )
    return IncomingMessage(
        event_id=_s(getattr(header, "event_id", None)),
        message_id=_s(getattr(message, "message_id", None)),
        chat_id=_s(getattr(message, "chat_id", None)),
        chat_type=_s(getattr(message, "chat_type", None)),
        message_type=_s(getattr(message, "message_type", None)),
        content=_s(getattr(message, "content", None)),
        sender_open_id=_s(getattr(sender_id, "open_id", None)),
        sender_type=_s(getattr(sender, "sender_type", None)),
        mentions=mentions,
        tenant_key=_s(getattr(header, "tenant_key", None)),
        root_id=_s(getattr(message, "root_id", None)),
        parent_id=_s(getattr(message, "parent_id", None)),
    )


def _card_action_from_sdk(data: Any) -> CardAction:
    header = getattr(data, "header", None)
    event = getattr(data, "event", None)
    action = getattr(event, "action", None)
    context = getattr(event, "context", None)
    value = getattr(action, "value", None)
    form_value = getattr(action, "form_value", None)
    return CardAction(
        event_id=_s(getattr(header, "event_id", None)),
        operator_open_id=_s(getattr(getattr(event, "operator", None), "open_id", None)),
        value=value if isinstance(value, dict) else {},
        form_value=form_value if isinstance(form_value, dict) else {},
        tag=_s(getattr(action, "tag", None)),
        name=_s(getattr(action, "name", None)),
        open_message_id=_s(getattr(context, "open_message_id", None)),
        open_chat_id=_s(getattr(context, "open_chat_id", None)),
    )
