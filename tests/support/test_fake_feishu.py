"""The fake Open Platform and the webhook event builders, checked against the official samples and
against lark-oapi itself (raw HTTP for the fake's wire behaviour, the real SDK where it reads answers)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest
import requests
from lark_oapi.api.im.v1 import GetMessageResourceRequest
from lark_oapi.core.model import RawRequest
from lark_oapi.event.callback.model.p2_card_action_trigger import (
    P2CardActionTrigger,
    P2CardActionTriggerResponse,
)

from tests.support import events
from tests.support.feishu import TOKEN_PATH, FakeFeishu

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "feishu-samples"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


FREE_MAPS = frozenset({"fields"})  # user-named keys (a record's field values)


def conforms(actual: Any, expected: Any, *, optional: frozenset[str] = frozenset(), path: str = "$") -> list[str]:
    """Where ``actual`` departs from the shape of ``expected``: keys missing (unless optional) and
    values of another JSON type. Extra keys in ``actual`` are allowed."""
    problems: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {type(actual).__name__}"]
        if path.rsplit(".", 1)[-1] in FREE_MAPS:
            return problems
        for key, value in expected.items():
            if key not in actual:
                if key not in optional:
                    problems.append(f"{path}.{key}: missing")
                continue
            problems += conforms(actual[key], value, optional=optional, path=f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {type(actual).__name__}"]
        if expected and actual:
            problems += conforms(actual[0], expected[0], optional=optional, path=f"{path}[0]")
    elif expected is not None and actual is not None:
        kinds = (bool, int, float, str)
        want = next(k for k in kinds if isinstance(expected, k))
        if not isinstance(actual, want) or (want is int and isinstance(actual, bool)):
            problems.append(f"{path}: expected {want.__name__}, got {type(actual).__name__}")
    return problems


class Api:
    """Raw HTTP against the fake, holding a tenant token: the fake's own wire behaviour."""

    def __init__(self, fake: FakeFeishu) -> None:
        self.fake = fake
        self.token = self.fetch_token()

    def fetch_token(self) -> str:
        answer = requests.post(
            self.fake.url + TOKEN_PATH,
            data=json.dumps({"app_id": self.fake.app_id, "app_secret": self.fake.app_secret}),
            timeout=5,
        )
        token: str = answer.json()["tenant_access_token"]
        return token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.fake.url + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture
def api(fake_feishu: FakeFeishu) -> Api:
    return Api(fake_feishu)


SHARED_CARD = {
    "config": {"update_multi": True},
    "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": "queued"}}],
}


# --------------------------------------------------------------------------------------------------
# Token endpoint
# --------------------------------------------------------------------------------------------------


def test_token_endpoint_parses_a_body_sent_without_content_type(fake_feishu: FakeFeishu) -> None:
    body = json.dumps({"app_id": fake_feishu.app_id, "app_secret": fake_feishu.app_secret}).encode()
    answer = requests.post(fake_feishu.url + TOKEN_PATH, data=body, timeout=5)  # bytes: no Content-Type

    recorded = fake_feishu.find("POST", TOKEN_PATH)[0]
    assert recorded.header("Content-Type") is None
    assert answer.status_code == 200
    payload = answer.json()
    assert conforms(payload, sample("auth_tenant_access_token_internal.response.json")) == []
    assert "data" not in payload
    assert payload["expire"] == 7200
    assert payload["tenant_access_token"] in fake_feishu.issued_tokens


def test_token_endpoint_rejects_a_wrong_secret(fake_feishu: FakeFeishu) -> None:
    answer = requests.post(
        fake_feishu.url + TOKEN_PATH,
        data=json.dumps({"app_id": fake_feishu.app_id, "app_secret": "wrong"}),
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == 10014
    assert fake_feishu.issued_tokens == []


def test_api_calls_need_a_valid_token_and_invalidation_revokes_old_ones(fake_feishu: FakeFeishu, api: Api) -> None:
    body = {"receive_id": "oc_1", "msg_type": "text", "content": json.dumps({"text": "hi"})}
    no_token = requests.post(
        fake_feishu.url + "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body, timeout=5
    )
    assert (no_token.status_code, no_token.json()["code"]) == (400, 99991661)

    assert api.call("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body).json()["code"] == 0

    fake_feishu.invalidate_tokens()
    stale = api.call("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body)
    assert stale.json()["code"] == 99991663
    assert stale.json()["error"]["log_id"] == stale.headers["X-Tt-Logid"]

    api.token = api.fetch_token()
    assert api.call("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body).json()["code"] == 0
    assert len(fake_feishu.sent_messages) == 2


# --------------------------------------------------------------------------------------------------
# Messages: the official request samples, and the answers' shapes
# --------------------------------------------------------------------------------------------------


def test_message_create_sample_is_accepted_and_answered_in_the_sample_shape(fake_feishu: FakeFeishu, api: Api) -> None:
    request = sample("im_message_create.request.json")
    answer = api.call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": "open_id"}, json=request)

    assert answer.status_code == 200
    payload = answer.json()
    optional = frozenset({"root_id", "parent_id", "thread_id", "mentions", "upper_message_id"})
    assert conforms(payload, sample("im_message_create.response.json"), optional=optional) == []
    sent = fake_feishu.message(payload["data"]["message_id"])
    assert (sent.receive_id, sent.msg_type, sent.body) == (request["receive_id"], "text", {"text": "test content"})
    assert sent.uuid == request["uuid"]


def test_message_uuid_makes_a_resend_return_the_first_message(fake_feishu: FakeFeishu, api: Api) -> None:
    body = {"receive_id": "oc_1", "msg_type": "text", "content": json.dumps({"text": "hi"}), "uuid": "u-1"}
    first = api.call("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body).json()
    second = api.call("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id", json=body).json()

    assert first["data"]["message_id"] == second["data"]["message_id"]
    assert len(fake_feishu.sent_messages) == 1


def test_invalid_receive_id_answers_like_the_official_error_sample(api: Api) -> None:
    body = {"receive_id": "oc_not_an_open_id", "msg_type": "text", "content": json.dumps({"text": "x"})}
    answer = api.call("POST", "/open-apis/im/v1/messages?receive_id_type=open_id", json=body)

    assert answer.status_code == 400
    expected = sample("error_230001_invalid_receive_id.response.json")
    assert conforms(answer.json(), expected) == []
    assert answer.json()["code"] == 230001
    assert answer.json()["msg"] == expected["msg"]


def test_reply_sample_is_accepted_and_answered_in_the_sample_shape(fake_feishu: FakeFeishu, api: Api) -> None:
    request = sample("im_message_reply.request.json")
    answer = api.call("POST", "/open-apis/im/v1/messages/om_user_message/reply", json=request)

    payload = answer.json()
    optional = frozenset({"thread_id", "mentions"})
    assert conforms(payload, sample("im_message_reply.response.json"), optional=optional) == []
    reply = fake_feishu.message(payload["data"]["message_id"])
    assert reply.parent_id == "om_user_message"
    assert reply.reply_in_thread is True


def test_patch_sample_is_accepted_on_a_shared_card(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.add_bot_message("om_card", SHARED_CARD)
    request = sample("im_message_patch_card.request.json")
    answer = api.call("PATCH", "/open-apis/im/v1/messages/om_card", json=request)

    assert (answer.status_code, answer.json()["code"], answer.json()["data"]) == (200, 0, {})
    assert fake_feishu.patch_history("om_card") == [json.loads(request["content"])]
    # The sample card itself is not shared (no update_multi): a second update is refused.
    again = api.call("PATCH", "/open-apis/im/v1/messages/om_card", json=request)
    assert again.json()["code"] == 230001


def test_patch_refuses_cards_that_are_not_shared(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.add_bot_message("om_card", {"elements": []})
    answer = api.call("PATCH", "/open-apis/im/v1/messages/om_card", json={"content": json.dumps(SHARED_CARD)})
    assert (answer.status_code, answer.json()["code"]) == (400, 230001)
    assert "update_multi" in answer.json()["msg"]

    fake_feishu.add_bot_message("om_v2", {"schema": "2.0", "body": {"elements": []}})
    ok = api.call("PATCH", "/open-apis/im/v1/messages/om_v2", json={"content": json.dumps(SHARED_CARD)})
    assert ok.json()["code"] == 0  # card JSON 2.0 is always shared


def test_patch_limits_size_age_recall_and_rate() -> None:
    now = [100.0]
    fake = FakeFeishu(clock=lambda: now[0]).start()
    try:
        api = Api(fake)
        for message_id in ("om_big", "om_old", "om_recalled", "om_busy"):
            fake.add_bot_message(message_id, SHARED_CARD)
        fake.age_message("om_old", 15)
        fake.recall_message("om_recalled")
        big = dict(SHARED_CARD, elements=[{"tag": "markdown", "content": "x" * 31 * 1024}])

        def patch(message_id: str, card: dict[str, Any] = SHARED_CARD) -> int:
            answer = api.call("PATCH", f"/open-apis/im/v1/messages/{message_id}", json={"content": json.dumps(card)})
            code: int = answer.json()["code"]
            return code

        assert patch("om_big", big) == 230025
        assert patch("om_old") == 230031
        assert patch("om_recalled") == 230011
        assert [patch("om_busy") for _ in range(6)] == [0, 0, 0, 0, 0, 230020]
        now[0] += 1.0  # the per-message window has passed
        assert patch("om_busy") == 0
    finally:
        fake.stop()


def test_image_upload_answers_in_the_sample_shape(fake_feishu: FakeFeishu, api: Api) -> None:
    answer = api.call("POST", "/open-apis/im/v1/images", data={"image_type": "message"}, files={"image": b"\x89PNG.."})
    payload = answer.json()
    assert conforms(payload, sample("im_image_create.response.json")) == []
    assert fake_feishu.images[payload["data"]["image_key"]] == b"\x89PNG.."


# --------------------------------------------------------------------------------------------------
# Message resources (read through the real SDK: it reads Content-Disposition case-sensitively)
# --------------------------------------------------------------------------------------------------


def sdk_client(fake: FakeFeishu) -> Any:
    return lark.Client.builder().app_id(fake.app_id).app_secret(fake.app_secret).domain(fake.url).build()


def test_message_resource_streams_bytes_with_raw_headers_the_sdk_reads(fake_feishu: FakeFeishu) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    fake_feishu.add_message_resource("om_video", "file_v2_x", data, "测试视频.mp4", "video/mp4")
    request = GetMessageResourceRequest.builder().message_id("om_video").file_key("file_v2_x").type("file").build()

    resp = sdk_client(fake_feishu).im.v1.message_resource.get(request)

    assert resp.success()
    assert resp.file.read() == data
    assert resp.file_name == "测试视频.mp4"
    assert resp.raw.headers["Content-Type"] == "video/mp4"


def test_unknown_message_resource_is_a_json_error(fake_feishu: FakeFeishu, api: Api) -> None:
    answer = api.call("GET", "/open-apis/im/v1/messages/om_x/resources/nope", params={"type": "file"})
    assert (answer.status_code, answer.json()["code"]) == (400, 234003)
    assert answer.headers["Content-Type"].startswith("application/json")


# --------------------------------------------------------------------------------------------------
# Bitable
# --------------------------------------------------------------------------------------------------


def create_app(api: Api) -> dict[str, Any]:
    answer = api.call("POST", "/open-apis/bitable/v1/apps", json=sample("bitable_app_create.request.json")).json()
    app: dict[str, Any] = answer["data"]["app"]
    return app


def test_app_and_table_samples_are_accepted_in_the_sample_shapes(fake_feishu: FakeFeishu, api: Api) -> None:
    created = api.call("POST", "/open-apis/bitable/v1/apps", json=sample("bitable_app_create.request.json")).json()
    assert conforms(created, sample("bitable_app_create.response.json")) == []
    app_token = created["data"]["app"]["app_token"]
    assert fake_feishu.app(app_token).folder_token == "fldcnqquW1svRIYVT2Np6Iabcef"

    table = api.call(
        "POST", f"/open-apis/bitable/v1/apps/{app_token}/tables", json=sample("bitable_table_create.request.json")
    ).json()
    assert conforms(table, sample("bitable_table_create.response.json")) == []
    stored = fake_feishu.table(app_token, table["data"]["table_id"])
    assert [f["field_name"] for f in stored.fields] == ["索引字段", "单选"]
    assert [o["name"] for o in stored.fields[1]["property"]["options"]] == ["Enabled", "Disabled", "Draft"]

    fields = api.call("GET", f"/open-apis/bitable/v1/apps/{app_token}/tables/{table['data']['table_id']}/fields").json()
    assert conforms(fields, sample("bitable_fields_list.response.json")) == []
    assert fields["data"]["has_more"] is False


def test_batch_create_sample_is_accepted_with_every_field_type(fake_feishu: FakeFeishu, api: Api) -> None:
    app_token = create_app(api)["app_token"]
    fake_feishu.add_drive_media("Vl3FbVkvnowlgpxpqsAbBrtFcrd", b"png", "a.png", "image/png", parent_node=app_token)
    types = {
        "文本": 1,
        "条码": 1,
        "数字": 2,
        "货币": 2,
        "评分": 2,
        "进度": 2,
        "单选": 3,
        "多选": 4,
        "日期": 5,
        "复选框": 7,
        "人员": 11,
        "群组": 23,
        "电话号码": 13,
        "超链接": 15,
        "附件": 17,
        "单向关联": 18,
        "双向关联": 21,
        "地理位置": 22,
    }
    table_id = api.call(
        "POST",
        f"/open-apis/bitable/v1/apps/{app_token}/tables",
        json={"table": {"name": "全部类型", "fields": [{"field_name": n, "type": t} for n, t in types.items()]}},
    ).json()["data"]["table_id"]

    answer = api.call(
        "POST",
        f"/open-apis/bitable/v1/apps/{app_token}/tables/{table_id}/records/batch_create",
        json=sample("bitable_records_batch_create.request.json"),
    )

    assert answer.json()["code"] == 0, answer.json()
    assert conforms(answer.json(), sample("bitable_records_batch_create.response.json")) == []
    rows = fake_feishu.records(app_token, table_id)
    assert [r["文本"] for r in rows] == ["文本内容", "文本内容2"]
    assert rows[0]["附件"][0]["file_token"] == "Vl3FbVkvnowlgpxpqsAbBrtFcrd"
    options = fake_feishu.table(app_token, table_id).field_named("多选")
    assert options is not None
    assert [o["name"] for o in options["property"]["options"]] == ["选项1", "选项2"]


def test_batch_create_is_all_or_nothing_and_checks_shapes(fake_feishu: FakeFeishu, api: Api) -> None:
    app_token = create_app(api)["app_token"]
    fields = [
        {"field_name": "标题", "type": 1},
        {"field_name": "链接", "type": 15},
        {"field_name": "日期", "type": 5},
        {"field_name": "状态", "type": 3},
        {"field_name": "截图", "type": 17},
    ]
    table_id = api.call(
        "POST", f"/open-apis/bitable/v1/apps/{app_token}/tables", json={"table": {"name": "t", "fields": fields}}
    ).json()["data"]["table_id"]
    path = f"/open-apis/bitable/v1/apps/{app_token}/tables/{table_id}/records/batch_create"
    good = {"fields": {"标题": "ok"}}

    def code_of(*bad: dict[str, Any]) -> int:
        records = [good, *({"fields": b} for b in bad)]
        code: int = api.call("POST", path, json={"records": records}).json()["code"]
        return code

    assert code_of({"标题": "x", "没有这个字段": 1}) == 1254045
    assert code_of({"链接": "https://example.com"}) == 1254068  # URL cells are {text, link}
    assert code_of({"日期": "2024-01-01"}) == 1254064  # dates are millisecond integers
    assert code_of({"状态": ["a"]}) == 1254062
    assert code_of({"截图": [{"file_token": "never-uploaded"}]}) == 1254303
    assert code_of({"截图": "token"}) == 1254069
    assert fake_feishu.records(app_token, table_id) == []  # nothing from any failed batch

    too_many = api.call("POST", path, json={"records": [good] * 1001}).json()
    assert too_many["code"] == 1254104
    assert code_of({"状态": "新选项", "链接": {"text": "t", "link": "https://e.com"}, "日期": 1700000000000}) == 0
    assert len(fake_feishu.records(app_token, table_id)) == 2


def test_client_token_makes_batch_create_idempotent(fake_feishu: FakeFeishu, api: Api) -> None:
    app_token = create_app(api)["app_token"]
    table_id = fake_feishu.app(app_token).default_table_id
    path = f"/open-apis/bitable/v1/apps/{app_token}/tables/{table_id}/records/batch_create"
    body = {"records": [{"fields": {"多行文本": "a"}}, {"fields": {"多行文本": "b"}}]}
    token = "fe599b60-450f-46ff-b2ef-9f6675625b97"

    first = api.call("POST", path, params={"client_token": token}, json=body).json()
    again = api.call("POST", path, params={"client_token": token}, json=body).json()

    assert [r["record_id"] for r in first["data"]["records"]] == [r["record_id"] for r in again["data"]["records"]]
    assert len(fake_feishu.records(app_token, table_id)) == 2
    other_body = api.call("POST", path, params={"client_token": token}, json={"records": [{"fields": {}}]}).json()
    assert other_body["code"] == 1255006
    not_uuid = api.call("POST", path, params={"client_token": "job-1"}, json=body).json()
    assert not_uuid["code"] == 1254037


def test_records_are_listed_page_by_page(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.add_bitable("bascnSource", "tblSource", [{"field_name": "n", "type": 2}], [{"n": i} for i in range(45)])
    path = "/open-apis/bitable/v1/apps/bascnSource/tables/tblSource/records"

    seen, page_token, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"page_size": 20}
        if page_token:
            params["page_token"] = page_token
        data = api.call("GET", path, params=params).json()["data"]
        pages += 1
        seen += [item["fields"]["n"] for item in data["items"]]
        if not data["has_more"]:
            break
        page_token = data["page_token"]

    assert (seen, pages) == (list(range(45)), 3)
    assert api.call("GET", path, params={"page_size": 501}).json()["code"] == 99992402


def test_unreadable_bitable_answers_forbidden(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.add_bitable("bascnPrivate", "tblP", [{"field_name": "n", "type": 1}], readable=False)
    answer = api.call("GET", "/open-apis/bitable/v1/apps/bascnPrivate/tables/tblP/records")
    assert (answer.status_code, answer.json()["code"]) == (403, 91403)


# --------------------------------------------------------------------------------------------------
# Drive
# --------------------------------------------------------------------------------------------------


def test_upload_all_parses_the_sdks_multipart_and_checks_the_parent(fake_feishu: FakeFeishu, api: Api) -> None:
    app_token = create_app(api)["app_token"]

    def upload(data: bytes, **fields: str) -> dict[str, Any]:
        form = {
            "file_name": "shot.png",
            "parent_type": "bitable_image",
            "parent_node": app_token,
            "size": str(len(data)),
        }
        form.update(fields)
        # Like the SDK: the file part has no filename, and a None field is an empty part.
        files = {**{k: (None, v) for k, v in form.items()}, "checksum": (None, ""), "file": (None, data)}
        answer: dict[str, Any] = api.call("POST", "/open-apis/drive/v1/medias/upload_all", files=files).json()
        return answer

    ok = upload(b"\x89PNG-bytes")
    assert conforms(ok, sample("drive_medias_upload_all.response.json")) == []
    media = fake_feishu.media[ok["data"]["file_token"]]
    assert (media.data, media.parent_node, media.name) == (b"\x89PNG-bytes", app_token, "shot.png")

    assert upload(b"x", parent_node="bascnNoSuchBase")["code"] == 1061044
    assert upload(b"xyz", size="5")["code"] == 1062009
    assert upload(b"x", parent_type="explorer")["code"] == 1061002
    assert upload(b"\0" * (20 * 1024 * 1024 + 1))["code"] == 1061043

    download = api.call("GET", f"/open-apis/drive/v1/medias/{ok['data']['file_token']}/download")
    assert (download.content, download.headers["Content-Type"]) == (b"\x89PNG-bytes", "image/png")
    assert api.call("GET", "/open-apis/drive/v1/medias/unknown/download").json()["code"] == 1061003


def test_permission_samples_are_accepted_and_ownership_tracked(fake_feishu: FakeFeishu, api: Api) -> None:
    app_token = create_app(api)["app_token"]
    base = f"/open-apis/drive/v1/permissions/{app_token}/members"

    member = api.call(
        "POST", base, params={"type": "bitable"}, json=sample("drive_permission_member_create.request.json")
    )
    assert conforms(member.json(), sample("drive_permission_member_create.response.json")) == []
    assert fake_feishu.members(app_token)[0]["perm"] == "view"
    assert api.call("POST", base, params={"type": "docx"}, json={}).json()["code"] == 1063001

    request = sample("drive_permission_transfer_owner.request.json")
    moved = api.call("POST", f"{base}/transfer_owner", params={"type": "bitable"}, json=request)
    assert moved.json()["code"] == 0
    assert fake_feishu.owner(app_token) == request
    assert {"member_id": fake_feishu.app_id, "perm": "full_access"}.items() <= fake_feishu.members(app_token)[
        -1
    ].items()
    # Only the owner may hand a document over.
    again = api.call("POST", f"{base}/transfer_owner", params={"type": "bitable"}, json=request)
    assert (again.status_code, again.json()["code"]) == (403, 1063002)


# --------------------------------------------------------------------------------------------------
# Record, faults, delays
# --------------------------------------------------------------------------------------------------


def test_find_takes_globs_and_regexes_and_wait_for_sees_background_requests(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.add_bot_message("om_card", SHARED_CARD)

    def patch_later() -> None:
        for _ in range(3):
            api.call("PATCH", "/open-apis/im/v1/messages/om_card", json={"content": json.dumps(SHARED_CARD)})

    worker = threading.Thread(target=patch_later)
    worker.start()
    found = fake_feishu.wait_for("PATCH", "/open-apis/im/v1/messages/*", count=3, timeout=10)
    worker.join()

    assert len(found) == 3
    assert len(fake_feishu.find("*", re.compile(r"/messages/om_card$"))) == 3
    assert fake_feishu.find("POST", "/open-apis/im/*") == []
    fake_feishu.reset_record()
    assert fake_feishu.requests == []
    with pytest.raises(AssertionError, match="expected 1 x GET"):
        fake_feishu.wait_for("GET", "/nothing", timeout=0.1)


def test_faults_answer_instead_of_the_endpoint_then_stop(fake_feishu: FakeFeishu, api: Api) -> None:
    path = "/open-apis/im/v1/messages?receive_id_type=chat_id"
    body = {"receive_id": "oc_1", "msg_type": "text", "content": json.dumps({"text": "x"})}
    fake_feishu.fail("POST", "/open-apis/im/v1/messages", times=2)
    fake_feishu.fail("GET", "/open-apis/bitable/*", status=502, body=b"<html>bad gateway</html>")

    limited = api.call("POST", path, json=body)
    assert (limited.status_code, limited.json()["code"]) == (429, 99991400)
    assert limited.headers["x-ogw-ratelimit-reset"] == "1"
    assert api.call("POST", path, json=body).status_code == 429
    assert api.call("POST", path, json=body).json()["code"] == 0
    assert [r.fault for r in fake_feishu.find("POST", "/open-apis/im/v1/messages")] == [True, True, False]

    gateway = api.call("GET", "/open-apis/bitable/v1/apps/x/tables")
    assert (gateway.status_code, gateway.text) == (502, "<html>bad gateway</html>")

    fake_feishu.fail("POST", "/open-apis/im/v1/messages", drop_connection=True)
    with pytest.raises(requests.ConnectionError):
        api.call("POST", path, json=body)
    assert len(fake_feishu.sent_messages) == 1


def test_delay_holds_the_answer_back(fake_feishu: FakeFeishu, api: Api) -> None:
    fake_feishu.delay("GET", "/open-apis/wiki/*", 2.0)
    with pytest.raises(requests.Timeout):
        requests.get(
            fake_feishu.url + "/open-apis/wiki/v2/spaces/get_node",
            params={"token": "x"},
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=0.3,
        )


# --------------------------------------------------------------------------------------------------
# Webhook event builders, against the official samples and lark-oapi's EventDispatcherHandler
# --------------------------------------------------------------------------------------------------


def dispatch(
    headers: dict[str, str], body: bytes, *, encrypt_key: str, token: str = events.SAMPLE_VERIFICATION_TOKEN
) -> tuple[int, Any, list[Any]]:
    """Run a webhook request through the SDK's dispatcher; returns status, JSON answer, events seen."""
    seen: list[Any] = []

    def on_card(event: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        seen.append(event)
        return P2CardActionTriggerResponse({"toast": {"type": "info", "content": "ok"}})

    handler = (
        lark.EventDispatcherHandler.builder(encrypt_key, token)
        .register_p2_im_message_receive_v1(seen.append)
        .register_p2_card_action_trigger(on_card)
        .build()
    )
    request = RawRequest()
    request.uri, request.headers, request.body = "/webhook/event", headers, body
    response = handler.do(request)
    return response.status_code, json.loads(response.content), seen


def test_encryption_matches_the_official_vector() -> None:
    vector = sample("encrypt_test_vector.json")
    assert events.decrypt(vector["encrypt"], vector["encrypt_key"]) == vector["plaintext"]
    assert events.decrypt(events.encrypt("你好 hello", "k"), "k") == "你好 hello"


def test_url_verification_builders_reproduce_the_samples_and_pass_the_sdk() -> None:
    encrypted = sample("event_url_verification.encrypted.json")
    payload = events.url_verification()
    headers, body = events.webhook_request(payload, encrypt_key="test key", iv=b"0123456789abcdef")
    assert json.loads(body) == encrypted

    status, answer, _ = dispatch(headers, body, encrypt_key="test key")
    assert (status, answer) == (200, {"challenge": "ajls384kdjx98XX"})
    plain_headers, plain_body = events.webhook_request(events.url_verification(token="xxxxxx"))
    assert json.loads(plain_body) == sample("event_url_verification.plain.json")
    assert dispatch(plain_headers, plain_body, encrypt_key="", token="xxxxxx")[:2] == (
        200,
        {"challenge": "ajls384kdjx98XX"},
    )


def test_media_event_builder_reproduces_the_signed_sample_byte_for_byte() -> None:
    signed = sample("event_im_message_receive_v1.media.encrypted_signed.json")
    status, answer, seen = dispatch(signed["headers"], signed["body"].encode(), encrypt_key=signed["encrypt_key"])
    assert (status, answer) == (200, {"msg": "success"})
    assert seen[0].event.message.message_type == "media"

    plaintext = sample("event_im_message_receive_v1.media.plaintext.json")
    headers, body = events.webhook_request(
        plaintext,
        encrypt_key="test key",
        timestamp=signed["headers"]["X-Lark-Request-Timestamp"],
        nonce=signed["headers"]["X-Lark-Request-Nonce"],
        iv=b"fedcba9876543210",
    )
    assert body == signed["body"].encode()
    assert headers["X-Lark-Signature"] == signed["headers"]["X-Lark-Signature"]


def test_message_builders_pass_the_sdk_with_their_overrides(feishu_events: events.EventFactory) -> None:
    requests_ = [
        feishu_events.text("look https://e.com/a.mp4", sender_open_id="ou_alice", message_id="om_1", chat_type="group"),
        feishu_events.post([events.link_paragraph("https://e.com/b.mp4", before="see ")], message_id="om_2"),
        feishu_events.media("file_v2_m", "clip.mp4", message_id="om_3", chat_id="oc_room"),
        feishu_events.file("file_v2_f", "talk.mov", message_id="om_4", sender_type="app", event_id="ev_4"),
    ]
    seen = []
    for headers, body in requests_:
        status, answer, got = dispatch(headers, body, encrypt_key="test key")
        assert (status, answer) == (200, {"msg": "success"})
        seen += got

    messages = [e.event.message for e in seen]
    assert [m.message_id for m in messages] == ["om_1", "om_2", "om_3", "om_4"]
    assert [m.message_type for m in messages] == ["text", "post", "media", "file"]
    assert json.loads(messages[0].content) == {"text": "look https://e.com/a.mp4"}
    assert seen[0].event.sender.sender_id.open_id == "ou_alice"
    assert messages[0].chat_type == "group"
    post = json.loads(messages[1].content)
    assert post["content"][0][1] == {"tag": "a", "href": "https://e.com/b.mp4", "text": "https://e.com/b.mp4"}
    assert json.loads(messages[2].content)["file_key"] == "file_v2_m"
    assert messages[2].chat_id == "oc_room"
    assert (seen[3].event.sender.sender_type, seen[3].header.event_id) == ("app", "ev_4")
    assert len({e.header.event_id for e in seen[:3]}) == 3  # fresh ids by default


def test_card_action_builder_passes_the_sdk_and_matches_the_sample(feishu_events: events.EventFactory) -> None:
    expected = sample("callback_card_action_trigger.constructed.json")
    payload = events.card_action(
        value={"action": "approve"}, create_time="1603977298000000", event_id=expected["header"]["event_id"]
    )
    assert conforms(payload, expected) == []
    # Equal to the sample but for the ids derived from the operator's open_id.
    for key in ("user_id", "union_id"):
        payload["event"]["operator"][key] = expected["event"]["operator"][key]
    assert payload == expected

    headers, body = feishu_events.card_action(
        value={"action": "cancel", "job_id": "j1"},
        operator_open_id="ou_bob",
        open_message_id="om_card",
        form_value={"shots": "interval:10"},
        name="cancel_button",
    )
    status, answer, seen = dispatch(headers, body, encrypt_key="test key")

    assert (status, answer) == (200, {"toast": {"type": "info", "content": "ok"}})
    event = seen[0].event
    assert event.operator.open_id == "ou_bob"
    assert event.action.value == {"action": "cancel", "job_id": "j1"}
    assert event.action.form_value == {"shots": "interval:10"}
    assert event.context.open_message_id == "om_card"


def test_a_tampered_body_or_a_wrong_key_is_rejected_by_the_sdk(feishu_events: events.EventFactory) -> None:
    headers, body = feishu_events.text("hi")
    assert dispatch(headers, body, encrypt_key="test key")[0] == 200
    assert dispatch(headers, body.replace(b'"}', b' "}'), encrypt_key="test key")[0] == 500
    assert dispatch(headers, body, encrypt_key="other key")[0] == 500
    unsigned_headers, unsigned_body = feishu_events.request(events.text_message("hi"), sign=False)
    assert "X-Lark-Signature" not in unsigned_headers
    assert dispatch(unsigned_headers, unsigned_body, encrypt_key="test key")[0] == 500
    assert feishu_events.payload_of(body)["event"]["message"]["content"] == json.dumps({"text": "hi"})
