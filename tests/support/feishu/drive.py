"""The fake Feishu's drive/v1 and wiki/v2: media upload and download, folder listing and file deletion,
permissions, wiki nodes.

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
    apps: dict[str, FakeApp]
    deleted_apps: list[FakeApp]

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

    # ---- files in folders ----------------------------------------------------------------------------

    def _list_files(self, rec: RecordedRequest) -> _Reply:
        """GET /drive/v1/files: the Bases in ``folder_token`` (empty: the app's root folder, where Bases
        created without a folder land). Paged (``page_size`` 1..200, default 100; ``next_page_token``
        only while ``has_more``); ``order_by`` EditedTime (default) or CreatedTime, ``direction`` DESC
        (default) or ASC. Times are strings of unix seconds, as Feishu sends them."""
        folder = rec.query.get("folder_token", "")
        try:
            page_size = int(rec.query.get("page_size", "100"))
            start = int(rec.query.get("page_token") or "0")
        except ValueError:
            raise FeishuApiError(400, 1061002, "params error.") from None
        if not 1 <= page_size <= 200 or start < 0:
            raise FeishuApiError(400, 1061002, "params error.")
        if rec.query.get("order_by", "EditedTime") not in ("EditedTime", "CreatedTime"):
            raise FeishuApiError(400, 1061002, "params error: order_by")
        direction = rec.query.get("direction", "DESC")
        if direction not in ("ASC", "DESC"):
            raise FeishuApiError(400, 1061002, "params error: direction")
        apps = sorted(
            (a for a in self.apps.values() if a.folder_token == folder),
            key=lambda a: a.created_time,
            reverse=direction == "DESC",
        )
        page = apps[start : start + page_size]
        has_more = start + page_size < len(apps)
        data: dict[str, Any] = {
            "files": [
                {
                    "token": a.app_token,
                    "name": a.name,
                    "type": "bitable",
                    "parent_token": folder,
                    "url": a.url,
                    "created_time": str(a.created_time),
                    "modified_time": str(a.created_time),
                    "owner_id": a.owner.get("member_id", ""),
                }
                for a in page
            ],
            "has_more": has_more,
        }
        if has_more:
            data["next_page_token"] = str(start + page_size)
        return self._ok(data)

    def _delete_file(self, rec: RecordedRequest, file_token: str) -> _Reply:
        """DELETE /drive/v1/files/:token?type=bitable: only the owner (here, while the app owns it) may."""
        if rec.query.get("type") != "bitable":
            raise FeishuApiError(400, 1061002, "params error: type")
        app = self.apps.get(file_token)
        if app is None:
            raise FeishuApiError(404, 1061007, "file has been delete.")
        if app.owner != {"member_type": "app", "member_id": self.app_id}:
            raise FeishuApiError(403, 1061004, "forbidden.")
        del self.apps[file_token]
        self.deleted_apps.append(app)
        return self._ok({})

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

    # ---- folders -------------------------------------------------------------------------------------

    def set_folder_access(self, folder_token: str, access: str) -> None:
        """``edit`` (the default for any folder), ``view``, ``none``, or ``missing`` (no such folder)."""
        if access not in ("edit", "view", "none", "missing"):
            raise ValueError(access)
        with self._lock:
            self.folder_access[folder_token] = access

    def check_folder_writable(self, folder_token: str) -> None:
        """What creating a document in a folder answers when the app may not (Drive's codes)."""
        access = self.folder_access.get(folder_token, "edit")
        if access == "missing":
            raise FeishuApiError(404, 1061003, "not found.")
        if access != "edit":
            raise FeishuApiError(403, 1061004, "forbidden.")

    def _auth_member(self, rec: RecordedRequest, token: str) -> _Reply:
        """``members/auth``: may the caller do ``action`` on ``token`` of ``type``?"""
        doc_type = rec.query.get("type", "")
        action = rec.query.get("action", "")
        if not doc_type or action not in ("view", "edit", "share", "comment", "export", "copy", "print"):
            raise FeishuApiError(400, 1063001, "Invalid parameter")
        if doc_type == "folder":
            access = self.folder_access.get(token, "edit")
            if access == "missing":
                raise FeishuApiError(404, 1063005, "Resource is deleted")
            allowed = access == "edit" or (access == "view" and action == "view")
        else:
            allowed = token in self.apps
        return self._ok({"auth_result": allowed})
