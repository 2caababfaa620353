"""Bad input at the webhook, over real HTTP: each refused with a clear 4xx reason (never a 500), or
answered 200 and ignored / deduplicated, or answered with a friendly card, and nothing lost."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from pipeline.jobs import JobStatus
from pipeline.models import JobSpec, VideoSource
from tests.support import events
from tests.support.webhook_harness import WebhookClient, WebhookEnv, card_text, decoded

ONE_MB = 1024 * 1024


def refused(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    body = decoded(response)
    assert body["error"] == reason
    assert body["message"]
    assert "Traceback" not in response.text


def signed(body: bytes, encrypt_key: str = events.SAMPLE_ENCRYPT_KEY, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": "n0nce",
        "X-Lark-Signature": events.signature(ts, "n0nce", encrypt_key, body),
    }


# --- the body ----------------------------------------------------------------------------------------


def test_empty_body(webhook: WebhookClient) -> None:
    refused(webhook.post(b""), 400, "empty_body")


@pytest.mark.parametrize("body", [b"not json at all", b'{"schema": ', b"\xff\xfe\x00"])
def test_non_json(webhook: WebhookClient, body: bytes) -> None:
    refused(webhook.post(body, {"Content-Type": "application/json"}), 400, "not_json")


def test_json_that_is_not_an_object(webhook: WebhookClient) -> None:
    refused(webhook.post(b"[1, 2, 3]"), 400, "not_a_json_object")


@pytest.mark.parametrize(
    "payload",
    [{"hello": "world"}, {"schema": "2.0", "event": {}}, {"schema": "1.0", "header": {"event_type": "x"}}],
)
def test_json_without_the_event_schema(webhook: WebhookClient, payload: dict[str, Any]) -> None:
    # Encrypted and signed correctly, so only the schema is wrong.
    headers, body = webhook.events.request(payload)
    refused(webhook.post(body, headers), 400, "not_a_feishu_event")


# --- authentication ---------------------------------------------------------------------------------


def test_wrong_verification_token(webhook: WebhookClient) -> None:
    request = webhook.events.text("https://v.example.com/a.mp4", token="an-attackers-guess")
    refused(webhook.send(request), 401, "invalid_verification_token")
    assert webhook.all_jobs() == []


def test_bad_signature(webhook: WebhookClient) -> None:
    headers, body = webhook.events.text("https://v.example.com/a.mp4")
    headers["X-Lark-Signature"] = events.signature(
        headers["X-Lark-Request-Timestamp"], headers["X-Lark-Request-Nonce"], "wrong key", body
    )
    refused(webhook.post(body, headers), 401, "bad_signature")


def test_a_body_changed_after_signing(webhook: WebhookClient) -> None:
    headers, _signed_body = webhook.events.text("https://v.example.com/a.mp4")
    _, other_body = webhook.events.text("https://evil.example.com/b.mp4")
    refused(webhook.post(other_body, headers), 401, "bad_signature")


@pytest.mark.parametrize("dropped", ["X-Lark-Signature", "X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "all"])
def test_missing_signature_headers(webhook: WebhookClient, dropped: str) -> None:
    headers, body = webhook.events.text("https://v.example.com/a.mp4")
    for name in list(headers):
        if name == dropped or (dropped == "all" and name.startswith("X-Lark")):
            del headers[name]
    refused(webhook.post(body, headers), 401, "missing_signature_headers")


@pytest.mark.parametrize("offset_s", [-301, 301, -86400, 86400 * 365])
def test_stale_or_future_timestamp(webhook: WebhookClient, offset_s: int) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    request = webhook.events.request(payload, timestamp=int(time.time()) + offset_s)
    refused(webhook.send(request), 401, "stale_or_future_timestamp")
    assert webhook.all_jobs() == []


def test_a_timestamp_inside_the_window_is_accepted(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    request = webhook.events.request(payload, timestamp=int(time.time()) - 240)
    assert webhook.send(request).status_code == 200


def test_a_timestamp_that_is_not_a_number(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    refused(webhook.send(webhook.events.request(payload, timestamp="yesterday")), 401, "bad_timestamp")


def test_ciphertext_that_is_not_base64(webhook: WebhookClient) -> None:
    body = json.dumps({"encrypt": "%%% this is not base64 %%%"}).encode()
    refused(webhook.post(body, signed(body)), 400, "undecryptable")


def test_ciphertext_that_does_not_decrypt_with_our_key(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    body = json.dumps({"encrypt": events.encrypt(json.dumps(payload), "somebody else's key")}).encode()
    refused(webhook.post(body, signed(body)), 400, "undecryptable")


def test_ciphertext_too_short_to_hold_an_iv(webhook: WebhookClient) -> None:
    body = json.dumps({"encrypt": "AAAA"}).encode()
    refused(webhook.post(body, signed(body)), 400, "undecryptable")


def test_an_event_for_another_app(webhook: WebhookClient) -> None:
    request = webhook.events.text("https://v.example.com/a.mp4", app_id="cli_not_ours")
    refused(webhook.send(request), 403, "other_app")
    assert webhook.all_jobs() == []


def test_refused_requests_send_nothing_to_feishu(webhook: WebhookClient) -> None:
    webhook.post(b"")
    webhook.send(webhook.events.text("https://v.example.com/a.mp4", token="wrong"))
    webhook.send(webhook.events.text("https://v.example.com/a.mp4", app_id="cli_not_ours"))
    webhook.settle()
    assert webhook.fake.sent_messages == []
    assert webhook.all_jobs() == []


# --- messages that are not requests -------------------------------------------------------------------


def test_text_without_links_gets_a_friendly_reply(webhook: WebhookClient) -> None:
    request = webhook.events.text("你好，能帮我看看这个视频吗")
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200
    text = card_text(webhook.reply_to(message_id).card)
    assert "没有找到视频链接" in text and "No video link" in text
    assert "可以发送" in text and "Send:" in text  # what the bot accepts
    assert webhook.all_jobs() == []


def test_links_with_other_schemes_are_reported_back(webhook: WebhookClient) -> None:
    request = webhook.events.text("file:///etc/passwd ftp://files.example.com/a.mp4 https://ok.example.com/v.mp4")
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    assert [s.locator for s in job.spec.sources] == ["https://ok.example.com/v.mp4"]
    assert [r.en.split(":", 1)[0] for r in job.spec.rejected] == ["file", "ftp"]
    text = card_text(webhook.reply_to(message_id).card)
    assert "file:///etc/passwd" in text and "ftp://files.example.com/a.mp4" in text
    assert "未处理的输入" in text and "Not used" in text


def test_fifty_links_take_the_first_twenty_and_name_the_rest(webhook: WebhookClient) -> None:
    links = [f"https://v.example.com/clip-{i:02d}.mp4" for i in range(50)]
    request = webhook.events.text("\n".join(links))
    message_id = webhook.message_id_of(request)
    assert webhook.send(request).status_code == 200

    job = webhook.job_for(message_id)
    assert job is not None
    assert [s.locator for s in job.spec.sources] == links[:20]
    reply = webhook.reply_to(message_id)
    assert len(reply.content.encode()) < 30 * 1024
    text = card_text(reply.card)
    assert "已取前 20 个" in text and "the first 20 were taken" in text
    for link in links[20:]:
        assert f"Not taken: {link}" in text
    assert "… and 10 more" in text  # the videos list itself is cut at 10


def test_a_message_from_a_bot_is_ignored(webhook: WebhookClient) -> None:
    request = webhook.events.text("https://v.example.com/a.mp4", sender_type="app")
    response = webhook.send(request)
    assert (response.status_code, decoded(response)) == (200, {"msg": "ignored"})
    webhook.settle()
    assert webhook.replies_to(webhook.message_id_of(request)) == []
    assert webhook.fake.sent_messages == []
    assert webhook.all_jobs() == []


def test_an_unknown_event_type_is_acknowledged_and_ignored(webhook: WebhookClient) -> None:
    payload = events.text_message("x", app_id=webhook.events.app_id)
    payload["header"]["event_type"] = "im.chat.member.bot.added_v1"
    payload["event"] = {"chat_id": "oc_1"}
    response = webhook.send(webhook.events.request(payload))
    assert (response.status_code, decoded(response)) == (200, {"msg": "ignored"})
    webhook.settle()
    assert webhook.fake.sent_messages == []
    assert webhook.all_jobs() == []


# --- duplicates -----------------------------------------------------------------------------------------


def test_a_redelivered_event_id_is_dropped(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    first = webhook.send(webhook.events.request(payload))
    again = webhook.send(webhook.events.request(payload))  # re-encrypted, re-signed: only the ids repeat
    assert decoded(first) == {"msg": "ok"}
    assert (again.status_code, decoded(again)) == (200, {"msg": "duplicate"})
    message_id = payload["event"]["message"]["message_id"]
    webhook.settle()
    assert len(webhook.replies_to(message_id)) == 1
    assert len(webhook.all_jobs()) == 1


def test_the_same_message_under_a_new_event_id_is_dropped(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    assert decoded(webhook.send(webhook.events.request(payload))) == {"msg": "ok"}
    payload["header"]["event_id"] = "a-brand-new-event-id"
    again = webhook.send(webhook.events.request(payload))
    assert (again.status_code, decoded(again)) == (200, {"msg": "duplicate"})
    webhook.settle()
    assert len(webhook.replies_to(payload["event"]["message"]["message_id"])) == 1
    assert len(webhook.all_jobs()) == 1


def test_a_job_left_half_handled_is_carried_on_by_the_next_delivery(webhook: WebhookClient) -> None:
    # An earlier delivery created the job and then failed before its card went out (so its ids were
    # forgotten and Feishu redelivered): the redelivery sends the card and runs the job, once.
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    message_id = payload["event"]["message"]["message_id"]
    spec = JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),), source_message_id=message_id)
    job, _ = webhook.bot.store.create(spec, idempotency_key=message_id)

    assert decoded(webhook.send(webhook.events.request(payload))) == {"msg": "ok"}
    reply = webhook.reply_to(message_id)
    finished = webhook.wait_for_status(job.id, JobStatus.DONE)
    assert finished.card_message_id == reply.message_id
    assert [j.id for j in webhook.all_jobs()] == [job.id]


def test_a_job_that_already_has_its_card_is_not_answered_again(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    message_id = payload["event"]["message"]["message_id"]
    job, _ = webhook.bot.store.create(
        JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),)), idempotency_key=message_id
    )
    webhook.bot.store.set_card_message(job.id, "om_card_sent_earlier")

    assert decoded(webhook.send(webhook.events.request(payload))) == {"msg": "ok"}
    webhook.settle()
    assert webhook.fake.sent_messages == []
    assert webhook.jobs.ran == []


def test_duplicates_are_dropped_across_an_app_restart(webhook_env: WebhookEnv) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook_env.events.app_id)
    message_id = payload["event"]["message"]["message_id"]
    with webhook_env.serve() as first:
        assert decoded(first.send(first.events.request(payload))) == {"msg": "ok"}
        first.reply_to(message_id)

    with webhook_env.serve() as second:
        same_event = second.send(second.events.request(payload))
        assert decoded(same_event) == {"msg": "duplicate"}
        payload["header"]["event_id"] = "redelivered-with-a-new-id"
        same_message = second.send(second.events.request(payload))
        assert decoded(same_message) == {"msg": "duplicate"}
        second.settle()
        assert len(second.replies_to(message_id)) == 1
        assert [j.idempotency_key for j in second.all_jobs()] == [message_id]


# --- size ------------------------------------------------------------------------------------------------


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length]


def _port(webhook: WebhookClient) -> int:
    return int(webhook.url.rsplit(":", 1)[1])


def test_a_declared_size_over_the_cap_is_refused_before_the_body_is_read(webhook: WebhookClient) -> None:
    # Content-Length says 2 MB; only 100 bytes follow, and nothing more is sent until the answer
    # arrives: a server that waited for the body would never answer.
    head = (
        "POST /webhook/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {2 * ONE_MB}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", _port(webhook)), timeout=15) as sock:
        sock.sendall(head + b"{" + b" " * 99)
        status, body = _read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "too_large"


def test_a_streamed_body_over_the_cap_is_refused_once_the_cap_is_passed(webhook: WebhookClient) -> None:
    head = (
        b"POST /webhook/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", _port(webhook)), timeout=15) as sock:
        sock.sendall(head)
        # 17 x 64 KiB = 1.06 MiB: past the 1 MiB cap. The terminating chunk is never sent.
        for _ in range(17):
            sock.sendall(chunk)
        status, body = _read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "too_large"


def test_a_body_just_under_the_cap_is_read(webhook: WebhookClient) -> None:
    payload = events.text_message("https://v.example.com/a.mp4", app_id=webhook.events.app_id)
    payload["event"]["padding"] = "x" * (ONE_MB // 2)  # big, but under the cap once encrypted
    headers, body = webhook.events.request(payload)
    assert ONE_MB // 2 < len(body) < ONE_MB
    assert webhook.post(body, headers).status_code == 200
