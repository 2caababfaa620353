"""FeishuClient through the real lark-oapi SDK against the fake Open Platform: what goes over the wire,
retries, token recovery, errors, uploads, downloads and Bitable paging. No mocks: faults are injected in
the fake, and waits are observed through the client's injectable sleep/clock."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bot.feishu import (
    BitableField,
    CredentialsRejected,
    FeishuClient,
    FeishuError,
    MessageGone,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    TokenInvalid,
    TooLarge,
    TransientError,
)
from bot.keys import stable_uuid
from tests.support.feishu import TOKEN_PATH, FakeFeishu

MESSAGES = "/open-apis/im/v1/messages"
CARD = {
    "config": {"update_multi": True},
    "header": {"title": {"tag": "plain_text", "content": "视频分析"}},
    "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": "排队中 queued"}}],
}


class ManualClock:
    """A clock that only moves when the client sleeps: waits are recorded, never spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def client_for(fake: FakeFeishu, clock: ManualClock, **policy: Any) -> FeishuClient:
    retry = RetryPolicy(**{"max_attempts": 4, "base_delay_s": 0.5, "max_delay_s": 8.0, "max_total_s": 60.0, **policy})
    return FeishuClient(
        fake.app_id, fake.app_secret, domain=fake.url, timeout=10.0, retry=retry, sleep=clock.sleep, clock=clock
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(fake_feishu: FakeFeishu, clock: ManualClock) -> FeishuClient:
    return client_for(fake_feishu, clock)


# --------------------------------------------------------------------------------------------------
# Messages on the wire
# --------------------------------------------------------------------------------------------------


def test_reply_card_sends_the_card_as_an_interactive_json_string(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    message_id = client.reply_card("om_user1", CARD, uuid="ack-1")

    [recorded] = fake_feishu.find("POST", f"{MESSAGES}/om_user1/reply")
    assert recorded.json["msg_type"] == "interactive"
    assert isinstance(recorded.json["content"], str)
    assert json.loads(recorded.json["content"]) == CARD
    assert recorded.json["uuid"] == "ack-1"
    assert "reply_in_thread" not in recorded.json
    assert recorded.header("Content-Type") == "application/json; charset=utf-8"
    assert recorded.token in fake_feishu.issued_tokens
    sent = fake_feishu.message(message_id)
    assert (sent.parent_id, sent.card) == ("om_user1", CARD)


def test_send_card_and_texts_carry_receive_id_type_and_a_uuid(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    card_id = client.send_card("ou_alice", CARD, receive_id_type="open_id")
    text_id = client.send_text("oc_room", "你好 hello")
    reply_id = client.reply_text("om_user2", "收到", reply_in_thread=True)

    create_card, create_text = fake_feishu.find("POST", MESSAGES)
    assert create_card.query == {"receive_id_type": "open_id"}
    assert create_card.json["receive_id"] == "ou_alice"
    assert create_text.query == {"receive_id_type": "chat_id"}
    assert json.loads(create_text.json["content"]) == {"text": "你好 hello"}
    # No uuid from the caller: the client makes one per logical send (its own retries land once).
    assert str(uuid.UUID(create_card.json["uuid"])) == create_card.json["uuid"]
    assert create_card.json["uuid"] != create_text.json["uuid"]
    [reply] = fake_feishu.find("POST", f"{MESSAGES}/om_user2/reply")
    assert reply.json["reply_in_thread"] is True
    assert [m.message_id for m in fake_feishu.sent_messages] == [card_id, text_id, reply_id]


def test_update_card_patches_the_message(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    message_id = client.reply_card("om_user1", CARD)
    done = dict(CARD, elements=[{"tag": "div", "text": {"tag": "plain_text", "content": "完成 done"}}])

    client.update_card(message_id, done)

    [patch] = fake_feishu.find("PATCH", f"{MESSAGES}/{message_id}")
    assert set(patch.json) == {"content"}
    assert json.loads(patch.json["content"]) == done
    assert fake_feishu.patch_history(message_id) == [done]


def test_an_unshared_card_cannot_be_updated(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    message_id = client.reply_card("om_user1", {"elements": []})
    with pytest.raises(FeishuError) as caught:
        client.update_card(message_id, CARD)
    assert caught.value.code == 230001
    assert type(caught.value) is FeishuError
    assert len(fake_feishu.find("PATCH", f"{MESSAGES}/*")) == 1


def test_upload_image_returns_a_key_the_fake_stored(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    sheet = tmp_path / "contact-sheet.png"
    sheet.write_bytes(b"\x89PNG\r\n" + b"\0" * 512)

    image_key = client.upload_image(sheet)

    [upload] = fake_feishu.find("POST", "/open-apis/im/v1/images")
    assert upload.form_value("image_type") == "message"
    assert fake_feishu.images[image_key] == sheet.read_bytes()


def test_client_from_settings_unwraps_the_secret(fake_feishu: FakeFeishu) -> None:
    from bot.config import Settings

    settings = Settings(
        feishu_app_id=fake_feishu.app_id, feishu_app_secret=fake_feishu.app_secret, feishu_domain=fake_feishu.url + "/"
    )

    FeishuClient.from_settings(settings).send_text("oc_room", "hi")

    [token_request] = fake_feishu.find("POST", TOKEN_PATH)
    assert token_request.json == {"app_id": fake_feishu.app_id, "app_secret": fake_feishu.app_secret}
    assert len(fake_feishu.sent_messages) == 1


# --------------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------------


def test_rate_limited_twice_then_sent_once(fake_feishu: FakeFeishu, client: FeishuClient, clock: ManualClock) -> None:
    fake_feishu.fail("POST", f"{MESSAGES}/*/reply", status=429, times=2)

    message_id = client.reply_card("om_user1", CARD)

    attempts = fake_feishu.find("POST", f"{MESSAGES}/om_user1/reply")
    assert [a.status for a in attempts] == [429, 429, 200]
    assert len({a.json["uuid"] for a in attempts}) == 1  # the same idempotency key every time
    assert [m.message_id for m in fake_feishu.sent_messages] == [message_id]
    assert clock.waits == [1.0, 1.0]  # x-ogw-ratelimit-reset: 1


def test_rate_limit_reset_is_honoured_up_to_the_cap(fake_feishu: FakeFeishu, clock: ManualClock) -> None:
    client = client_for(fake_feishu, clock, max_delay_s=5.0)
    fake_feishu.fail("POST", MESSAGES, status=429, headers={"x-ogw-ratelimit-reset": "120"})

    client.send_text("oc_room", "hi")

    assert clock.waits == [5.0]


def test_server_error_then_success(fake_feishu: FakeFeishu, client: FeishuClient, clock: ManualClock) -> None:
    fake_feishu.fail("PATCH", f"{MESSAGES}/*", status=503)
    fake_feishu.fail("PATCH", f"{MESSAGES}/*", status=502, body=b"<html>502 Bad Gateway</html>")
    fake_feishu.fail("PATCH", f"{MESSAGES}/*", drop_connection=True)
    message_id = client.reply_card("om_user1", CARD)

    client.update_card(message_id, CARD)

    assert [r.status for r in fake_feishu.find("PATCH", f"{MESSAGES}/{message_id}")] == [503, 502, -1, 200]
    assert len(clock.waits) == 3
    assert all(0.25 <= wait <= 8.0 for wait in clock.waits)
    assert fake_feishu.patch_history(message_id) == [CARD]


def test_persistent_server_errors_end_in_transient_error(fake_feishu: FakeFeishu, clock: ManualClock) -> None:
    client = client_for(fake_feishu, clock, max_attempts=3)
    fake_feishu.fail("POST", MESSAGES, status=500, times=None)

    with pytest.raises(TransientError) as caught:
        client.send_card("oc_room", CARD)

    assert caught.value.http_status == 500
    assert caught.value.log_id  # Feishu's log id travels with the error
    assert len(fake_feishu.find("POST", MESSAGES)) == 3
    assert len(clock.waits) == 2
    assert fake_feishu.sent_messages == []


def test_retries_stop_when_the_time_budget_is_spent(fake_feishu: FakeFeishu, clock: ManualClock) -> None:
    client = client_for(fake_feishu, clock, max_attempts=50, base_delay_s=2.0, max_delay_s=2.0, max_total_s=5.0)
    fake_feishu.fail("POST", MESSAGES, status=500, times=None)

    with pytest.raises(TransientError):
        client.send_text("oc_room", "hi")

    assert sum(clock.waits) <= 5.0
    assert 2 <= len(fake_feishu.find("POST", MESSAGES)) <= 6


def test_invalid_token_is_refetched_once_then_the_call_succeeds(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    client.send_text("oc_room", "first")  # caches a tenant token in the SDK
    fake_feishu.invalidate_tokens()

    client.send_text("oc_room", "second")

    assert len(fake_feishu.find("POST", TOKEN_PATH)) == 2
    first, rejected, retried = fake_feishu.find("POST", MESSAGES)
    assert rejected.code == 99991663
    assert rejected.token == first.token != retried.token
    assert [json.loads(m.content)["text"] for m in fake_feishu.sent_messages] == ["first", "second"]


def test_a_token_rejected_again_after_the_refetch_is_raised(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    fake_feishu.fail("POST", MESSAGES, status=400, code=99991663, msg="Invalid access token", times=None)

    with pytest.raises(TokenInvalid):
        client.send_text("oc_room", "hi")

    assert len(fake_feishu.find("POST", MESSAGES)) == 2
    assert len(fake_feishu.find("POST", TOKEN_PATH)) == 2


def test_wrong_app_secret_is_not_retried(fake_feishu: FakeFeishu, clock: ManualClock) -> None:
    client = FeishuClient(fake_feishu.app_id, "wrong-secret", domain=fake_feishu.url, sleep=clock.sleep, clock=clock)

    with pytest.raises(CredentialsRejected) as caught:
        client.send_text("oc_room", "hi")

    assert caught.value.code == 10014
    assert len(fake_feishu.find("POST", TOKEN_PATH)) == 1
    assert fake_feishu.find("POST", MESSAGES) == []


def test_card_too_old_to_update_is_message_gone_without_retries(
    fake_feishu: FakeFeishu, client: FeishuClient, clock: ManualClock
) -> None:
    message_id = client.reply_card("om_user1", CARD)
    fake_feishu.age_message(message_id, days=15)

    with pytest.raises(MessageGone) as caught:
        client.update_card(message_id, CARD)

    assert caught.value.code == 230031
    assert len(fake_feishu.find("PATCH", f"{MESSAGES}/*")) == 1
    assert clock.waits == []

    fake_feishu.recall_message("om_recalled_by_user")
    with pytest.raises(MessageGone):
        client.reply_card("om_recalled_by_user", CARD)


def test_per_message_update_rate_limit_is_retried(
    fake_feishu: FakeFeishu, client: FeishuClient, clock: ManualClock
) -> None:
    message_id = client.reply_card("om_user1", CARD)
    fake_feishu.fail(
        "PATCH", f"{MESSAGES}/*", status=400, code=230020, msg="This operation triggers the frequency limit."
    )

    client.update_card(message_id, CARD)

    assert [r.code for r in fake_feishu.find("PATCH", f"{MESSAGES}/*")] == [230020, 0]
    assert len(clock.waits) == 1


def test_non_idempotent_create_is_not_resent_after_a_server_error(
    fake_feishu: FakeFeishu, client: FeishuClient
) -> None:
    fake_feishu.fail("POST", "/open-apis/bitable/v1/apps", status=500)
    with pytest.raises(TransientError):
        client.create_bitable_app("Results")
    assert len(fake_feishu.find("POST", "/open-apis/bitable/v1/apps")) == 1

    fake_feishu.fail("POST", "/open-apis/bitable/v1/apps", status=429)
    client.create_bitable_app("Results")
    assert [r.status for r in fake_feishu.find("POST", "/open-apis/bitable/v1/apps")] == [500, 429, 200]
    assert len(fake_feishu.apps) == 1


def test_an_unreachable_platform_is_a_transient_error_after_bounded_attempts(clock: ManualClock) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = FeishuClient(
        "cli_unreachable",
        "secret",
        domain=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0),
        sleep=clock.sleep,
        clock=clock,
    )

    with pytest.raises(TransientError) as caught:
        client.create_bitable_app("Results")

    assert caught.value.request_sent is False  # refused connections are safe to resend, even a create
    assert len(clock.waits) == 2


def test_logs_name_codes_and_log_ids_but_never_secrets_or_tokens(
    fake_feishu: FakeFeishu, client: FeishuClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.send_text("oc_room", "warm up")
    fake_feishu.invalidate_tokens()
    fake_feishu.fail("POST", MESSAGES, status=429)

    client.send_text("oc_room", "hi")

    assert "99991663" in caplog.text and "99991400" in caplog.text
    assert "log_id" in caplog.text
    for secret in [fake_feishu.app_secret, *fake_feishu.issued_tokens]:
        assert secret not in caplog.text


@pytest.mark.slow
def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = "import sys, bot.feishu; print('lark_oapi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------


def test_message_resource_is_written_to_disk(fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path) -> None:
    data = bytes(range(256)) * 6000  # 1.5 MB
    fake_feishu.add_message_resource("om_video", "file_v3_abc", data, "测试视频.mp4")

    saved = client.download_message_resource(
        "om_video", "file_v3_abc", tmp_path / "in" / "video.mp4", max_bytes=2_000_000
    )

    assert saved == tmp_path / "in" / "video.mp4"
    assert saved.read_bytes() == data
    [request] = fake_feishu.find("GET", "/open-apis/im/v1/messages/om_video/resources/file_v3_abc")
    assert request.query == {"type": "file"}
    assert [p.name for p in saved.parent.iterdir()] == ["video.mp4"]


def test_message_resource_over_the_cap_leaves_nothing(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_message_resource("om_video", "file_v3_abc", b"\0" * 5000)

    with pytest.raises(TooLarge) as caught:
        client.download_message_resource("om_video", "file_v3_abc", tmp_path / "video.mp4", max_bytes=4096)

    assert (caught.value.size_bytes, caught.value.limit_bytes) == (5000, 4096)
    assert list(tmp_path.iterdir()) == []


def test_unknown_message_resource_is_not_found(fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        client.download_message_resource("om_video", "missing", tmp_path / "v.mp4", max_bytes=1000)
    assert caught.value.code == 234003
    assert list(tmp_path.iterdir()) == []


def test_drive_media_download_and_its_size_precheck(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    fake_feishu.add_drive_media("boxcnVideo", b"video-bytes", "clip.mp4")

    saved = client.download_drive_media("boxcnVideo", tmp_path / "clip.mp4", max_bytes=100, expected_size=11)
    assert saved.read_bytes() == b"video-bytes"

    with pytest.raises(TooLarge):
        client.download_drive_media("boxcnVideo", tmp_path / "big.mp4", max_bytes=100, expected_size=10**9)
    assert len(fake_feishu.find("GET", "/open-apis/drive/v1/medias/*/download")) == 1  # refused before fetching
    with pytest.raises(NotFound):
        client.download_drive_media("boxcnMissing", tmp_path / "x.mp4", max_bytes=100)


# --------------------------------------------------------------------------------------------------
# Bitable
# --------------------------------------------------------------------------------------------------

RESULT_FIELDS = [
    {"field_name": "标题", "type": 1},
    {"field_name": "链接", "type": 15},
    {"field_name": "状态", "type": 3, "property": {"options": [{"name": "完成"}, {"name": "失败"}]}},
    {"field_name": "截图", "type": 17},
    {"field_name": "处理时间", "type": 5},
]


def test_create_a_base_and_a_table_then_read_the_schema(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    app = client.create_bitable_app("视频分析结果", "fldcnFolder")
    table_id = client.create_table(app.app_token, "Videos", RESULT_FIELDS, default_view_name="全部")

    assert app.url.endswith(app.app_token)
    assert fake_feishu.app(app.app_token).folder_token == "fldcnFolder"
    assert app.default_table_id in fake_feishu.app(app.app_token).tables
    fields = client.list_fields(app.app_token, table_id)
    assert [f.field_name for f in fields] == [f["field_name"] for f in RESULT_FIELDS]
    assert isinstance(fields[2], BitableField) and fields[0].is_primary
    assert fields[2].property is not None
    assert [o["name"] for o in fields[2].property["options"]] == ["完成", "失败"]
    assert {t.name for t in client.list_tables(app.app_token)} == {"数据表", "Videos"}

    client.delete_table(app.app_token, app.default_table_id)
    assert [t.table_id for t in client.list_tables(app.app_token)] == [table_id]


def test_upload_media_sends_multipart_the_fake_parses(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    app = client.create_bitable_app("Results")
    shot = tmp_path / "shot-0001.png"
    shot.write_bytes(b"\x89PNG\r\n" + bytes(range(256)) * 40)

    file_token = client.upload_media(shot, parent_type="bitable_image", parent_node=app.app_token)

    [upload] = fake_feishu.find("POST", "/open-apis/drive/v1/medias/upload_all")
    assert upload.form is not None
    assert upload.form["file"].data == shot.read_bytes()
    assert upload.form["file"].filename is None
    assert upload.form_value("file_name") == "shot-0001.png"
    assert upload.form_value("parent_type") == "bitable_image"
    assert upload.form_value("parent_node") == app.app_token
    assert upload.form_value("size") == str(shot.stat().st_size)
    assert upload.form_value("checksum") is None  # sent as an empty part
    assert fake_feishu.media[file_token].data == shot.read_bytes()

    with pytest.raises(NotFound) as caught:
        client.upload_media(shot, parent_type="bitable_image", parent_node="bascnNoSuchBase")
    assert caught.value.code == 1061044


def test_upload_media_over_20_mb_is_refused_before_sending(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as fh:
        fh.truncate(20 * 1024 * 1024 + 1)

    with pytest.raises(TooLarge):
        client.upload_media(big, parent_type="bitable_file", parent_node="bascnX")
    assert fake_feishu.requests == []


def test_batch_create_with_the_same_client_token_adds_rows_once(
    fake_feishu: FakeFeishu, client: FeishuClient, tmp_path: Path
) -> None:
    app = client.create_bitable_app("Results")
    table_id = client.create_table(app.app_token, "Videos", RESULT_FIELDS)
    shot = tmp_path / "a.png"
    shot.write_bytes(b"\x89PNG")
    token = client.upload_media(shot, parent_type="bitable_image", parent_node=app.app_token)
    rows: list[dict[str, Any]] = [
        {
            "标题": "季度规划",
            "链接": {"text": "video", "link": "https://example.com/v.mp4"},
            "状态": "完成",
            "截图": [{"file_token": token}],
            "处理时间": 1_700_000_000_000,
        },
        {"标题": "第二个", "状态": "失败"},
    ]
    client_token = stable_uuid("job-42", "batch-0")

    first = client.batch_create_records(app.app_token, table_id, rows, client_token=client_token)
    again = client.batch_create_records(app.app_token, table_id, rows, client_token=client_token)

    assert first == again and len(first) == 2
    stored = fake_feishu.records(app.app_token, table_id)
    assert [r["标题"] for r in stored] == ["季度规划", "第二个"]
    assert stored[0]["截图"][0]["file_token"] == token
    [recorded, _] = fake_feishu.find("POST", "/open-apis/bitable/v1/apps/*/records/batch_create")
    assert recorded.query["client_token"] == client_token
    assert recorded.json == {"records": [{"fields": row} for row in rows]}


def test_batch_create_errors_are_typed(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    app = client.create_bitable_app("Results")
    table_id = client.create_table(app.app_token, "Videos", RESULT_FIELDS)

    with pytest.raises(FeishuError) as caught:
        client.batch_create_records(app.app_token, table_id, [{"不存在": "x"}], client_token=stable_uuid("a"))
    assert caught.value.code == 1254045
    with pytest.raises(ValueError, match="at most 1000"):
        client.batch_create_records(app.app_token, table_id, [{"标题": "x"}] * 1001, client_token=stable_uuid("b"))
    assert client.batch_create_records(app.app_token, table_id, [], client_token=stable_uuid("c")) == []
    assert len(fake_feishu.find("POST", "/open-apis/bitable/v1/apps/*/records/batch_create")) == 1


def test_iter_records_pages_through_1200_rows(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        "bascnSource",
        "tblVideos",
        [{"field_name": "链接", "type": 15}, {"field_name": "序号", "type": 2}],
        [{"链接": {"text": f"v{i}", "link": f"https://e.com/{i}.mp4"}, "序号": i} for i in range(1200)],
    )

    records = list(client.iter_records("bascnSource", "tblVideos", page_size=500))

    assert [r["fields"]["序号"] for r in records] == list(range(1200))
    assert len({r["record_id"] for r in records}) == 1200
    pages = fake_feishu.find("GET", "/open-apis/bitable/v1/apps/bascnSource/tables/tblVideos/records")
    assert [p.query["page_size"] for p in pages] == ["500", "500", "500"]
    assert "page_token" not in pages[0].query
    assert pages[1].query["page_token"] and pages[2].query["page_token"] != pages[1].query["page_token"]


def test_a_base_the_app_cannot_read_is_permission_denied(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    fake_feishu.add_bitable(
        "bascnPrivate", "tblP", [{"field_name": "链接", "type": 1}], [{"链接": "x"}], readable=False
    )

    with pytest.raises(PermissionDenied) as caught:
        list(client.iter_records("bascnPrivate", "tblP"))
    assert (caught.value.code, caught.value.http_status) == (91403, 403)


def test_permission_calls_are_recorded_and_ownership_moves(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    app = client.create_bitable_app("Results")

    client.add_member(app.app_token, member_id="ou_alice")
    client.transfer_owner(app.app_token, member_id="ou_alice")

    add, transfer = fake_feishu.find("POST", f"/open-apis/drive/v1/permissions/{app.app_token}/members*")
    assert add.query["type"] == "bitable"
    assert add.json == {"member_type": "openid", "member_id": "ou_alice", "perm": "full_access"}
    assert transfer.path.endswith("/members/transfer_owner")
    assert transfer.query["type"] == "bitable"
    assert transfer.json == {"member_type": "openid", "member_id": "ou_alice"}
    assert fake_feishu.owner(app.app_token) == {"member_type": "openid", "member_id": "ou_alice"}
    assert [m["member_id"] for m in fake_feishu.members(app.app_token)] == [fake_feishu.app_id]

    with pytest.raises(PermissionDenied):  # the app no longer owns it
        client.transfer_owner(app.app_token, member_id="ou_bob")


def test_wiki_links_resolve_to_the_base_inside(fake_feishu: FakeFeishu, client: FeishuClient) -> None:
    fake_feishu.add_wiki_node("wikcnNode", "bascnInside", title="视频清单")

    node = client.get_wiki_node("wikcnNode")

    assert (node.obj_type, node.obj_token, node.title) == ("bitable", "bascnInside", "视频清单")
    with pytest.raises(NotFound):
        client.get_wiki_node("wikcnMissing")


def test_stable_uuid_is_deterministic_and_uuid4_shaped() -> None:
    key = stable_uuid("job-1", "rows")
    assert key == stable_uuid("job-1", "rows") != stable_uuid("job-1", "rows2")
    assert uuid.UUID(key).version == 4
    assert stable_uuid("a", "bc") != stable_uuid("ab", "c")


def test_error_classes_carry_what_the_bot_acts_on() -> None:
    assert issubclass(RateLimited, FeishuError) and RateLimited.retryable
    assert TransientError.retryable and not MessageGone.retryable


def test_a_folder_is_listed_newest_first_page_by_page_and_a_base_deleted(
    fake_feishu: FakeFeishu, client: FeishuClient
) -> None:
    made = [client.create_bitable_app(f"Results {n}", "fldcnListed").app_token for n in range(3)]
    for age, token in enumerate(reversed(made)):
        fake_feishu.app(token).created_time -= age  # made in order, a second apart
    client.create_bitable_app("Elsewhere", "fldcnOther")

    first = client.list_folder("fldcnListed", page_size=2, newest_first=True)
    second = client.list_folder("fldcnListed", page_size=2, newest_first=True, page_token=first.next_page_token)

    assert [f.token for f in first.files + second.files] == list(reversed(made))
    assert first.next_page_token and not second.next_page_token
    assert {f.type for f in first.files} == {"bitable"} and first.files[0].name == "Results 2"
    assert first.files[0].created_time == fake_feishu.app(made[2]).created_time
    (request,) = fake_feishu.find("GET", "/open-apis/drive/v1/files")[:1]
    assert request.query["order_by"] == "CreatedTime" and request.query["direction"] == "DESC"

    client.delete_file(made[0])
    assert made[0] not in fake_feishu.apps and fake_feishu.deleted_apps[0].app_token == made[0]
    with pytest.raises(NotFound):
        client.delete_file(made[0])
