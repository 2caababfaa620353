"""The fake Feishu's drive/v1 and wiki/v2: media upload and download, permissions, wiki nodes.

Mixed into ``FakeFeishu``, whose state and helpers it uses."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tests.support.feishu.records import (
    MEMBER_TYPES,
    PERMS,
    UPLOAD_ALL_LIMIT_BYTES,
    FakeApp,
    FakeMedia,
    FeishuApiError,
    RecordedRequest,
    _guess_type,
    _random_token,
    _Reply,
)


class DriveApi:
    # Set by FakeFeishu.
    _lock: Any

    def _upload_all(self, rec: RecordedRequest) -> _Reply:
        if rec.form is None:
            raise FeishuApiError(400, 1061002, "params error.")
        file_name = rec.form_value("file_name")
        parent_type = rec.form_value("parent_type")
        parent_node = rec.form_value("parent_node")
        size_text = rec.form_value("size")
        part = rec.form.get("file")
        if part is None or parent_type is None or parent_node is None or size_text is None:
            raise FeishuApiError(400, 1061002, "params error.")
        if not file_name or len(file_name) > 250:
            raise FeishuApiError(400, 1061008, "invalid file name.")
        if parent_type not in ("bitable_image", "bitable_file", "doc_image", "docx_image", "doc_file", "docx_file"):
            raise FeishuApiError(400, 1061002, "params error: parent_type")
        try:
            size = int(size_text)
        except ValueError:
            raise FeishuApiError(400, 1061002, "params error: size") from None
        if size > UPLOAD_ALL_LIMIT_BYTES or len(part.data) > UPLOAD_ALL_LIMIT_BYTES:
            raise FeishuApiError(400, 1061043, "file size beyond limit.")
        if size != len(part.data):
            raise FeishuApiError(400, 1062009, "the actual size is inconsistent with the parameter declaration size.")
        if parent_type.startswith("bitable_"):
            app = self.apps.get(parent_node)
            if app is None:
                raise FeishuApiError(400, 1061044, "parent node not exist.")
            if not app.readable:
                raise FeishuApiError(403, 1061004, "forbidden.")
        token = _random_token("", 27)
        self.media[token] = FakeMedia(
            file_token=token,
            data=part.data,
            name=file_name,
            content_type=_guess_type(file_name),
            parent_type=parent_type,
            parent_node=parent_node,
        )
        return self._ok({"file_token": token})

    def _download_media(self, rec: RecordedRequest, file_token: str) -> _Reply:
        media = self.media.get(file_token)
        if media is None:
            raise FeishuApiError(404, 1061003, "not found.")
        app = self.apps.get(media.parent_node)
        if app is not None and not app.readable:
            raise FeishuApiError(403, 1061004, "forbidden.")
        return self._file_reply(media)

    def _tmp_download_urls(self, rec: RecordedRequest) -> _Reply:
        tokens = [t for t in rec.query.get("file_tokens", "").split(",") if t]  # one token per call here
        if not tokens:
            raise FeishuApiError(400, 1061002, "params error: file_tokens")
        urls = []
        for token in tokens:
            media = self.media.get(token)
            if media is None:
                continue  # Feishu leaves unknown tokens out of the answer
            app = self.apps.get(media.parent_node)
            if app is not None and not app.readable:
                raise FeishuApiError(403, 1061004, "forbidden.")
            key = secrets.token_urlsafe(8)
            self.tmp_download_keys[key] = token
            urls.append({"file_token": token, "tmp_download_url": f"{self.url}/cdn/tmp/{quote(token)}?key={key}"})
        return self._ok({"tmp_download_urls": urls})

    def _tmp_download(self, rec: RecordedRequest, file_token: str) -> _Reply:
        media = self.media.get(file_token)
        if media is None or self.tmp_download_keys.get(rec.query.get("key", "")) != file_token:
            return _Reply(403, b"Forbidden", [("Content-Type", "text/plain")])
        return self._file_reply(media)

    def _doc_for_permission(self, rec: RecordedRequest, token: str) -> FakeApp:
        if rec.query.get("type") != "bitable":
            raise FeishuApiError(400, 1063001, "Invalid parameter: type must match the document (bitable)")
        app = self.apps.get(token)
        if app is None:
            raise FeishuApiError(400, 1063001, "Invalid parameter: document not found")
        return app

    def _check_member(self, body: Mapping[str, Any]) -> tuple[str, str]:
        member_type, member_id = body.get("member_type"), body.get("member_id")
        if member_type not in MEMBER_TYPES or not isinstance(member_id, str) or not member_id:
            raise FeishuApiError(400, 1063001, "Invalid parameter: member_type/member_id")
        if member_type == "openid" and not member_id.startswith("ou_"):
            raise FeishuApiError(400, 1063001, "Invalid parameter: member_id does not match member_type")
        return str(member_type), member_id

    def _app_is_manager(self, app: FakeApp) -> bool:
        if app.owner == {"member_type": "app", "member_id": self.app_id}:
            return True
        return any(m.get("member_id") == self.app_id and m.get("perm") == "full_access" for m in app.members)

    def _add_member(self, rec: RecordedRequest, token: str) -> _Reply:
        app = self._doc_for_permission(rec, token)
        body = self._body(rec)
        member_type, member_id = self._check_member(body)
        perm = body.get("perm")
        if perm not in PERMS:
            raise FeishuApiError(400, 1063001, "Invalid parameter: perm")
        if not self._app_is_manager(app):
            raise FeishuApiError(403, 1063002, "Permission denied")
        member = {
            "member_type": member_type,
            "member_id": member_id,
            "perm": perm,
            "perm_type": body.get("perm_type") or "container",
            "type": body.get("type") or "user",
        }
        app.members = [m for m in app.members if (m["member_type"], m["member_id"]) != (member_type, member_id)]
        app.members.append(member)
        return self._ok({"member": member}, msg="Success")

    def _transfer_owner(self, rec: RecordedRequest, token: str) -> _Reply:
        app = self._doc_for_permission(rec, token)
        member_type, member_id = self._check_member(self._body(rec))
        if app.owner != {"member_type": "app", "member_id": self.app_id}:
            raise FeishuApiError(403, 1063002, "Permission denied")
        old_owner = app.owner
        app.owner = {"member_type": member_type, "member_id": member_id}
        app.members = [m for m in app.members if (m["member_type"], m["member_id"]) != (member_type, member_id)]
        if rec.query.get("remove_old_owner", "false").lower() != "true":
            app.members.append(
                {
                    "member_type": old_owner["member_type"],
                    "member_id": old_owner["member_id"],
                    "perm": rec.query.get("old_owner_perm") or "full_access",
                    "perm_type": "container",
                    "type": "app",
                }
            )
        return self._ok({})

    def _wiki_node(self, rec: RecordedRequest) -> _Reply:
        node = self.wiki_nodes.get(rec.query.get("token", ""))
        if node is None:
            raise FeishuApiError(400, 131005, "not found")
        return self._ok({"node": dict(node)})
