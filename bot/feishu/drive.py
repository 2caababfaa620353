"""Drive: folder listings and file deletion, permissions (collaborators, owner, access checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.feishu.transport import Transport


@dataclass(frozen=True)
class DriveFile:
    """One entry of a folder listing (``type``: "bitable", "docx", "folder", ...)."""

    token: str
    name: str
    type: str
    url: str = ""
    created_time: int = 0  # unix seconds


@dataclass(frozen=True)
class FolderPage:
    files: tuple[DriveFile, ...]
    next_page_token: str = ""  # empty: the last page


class Drive(Transport):
    def list_folder(
        self, folder_token: str = "", *, page_token: str = "", page_size: int = 200, newest_first: bool = False
    ) -> FolderPage:
        """One page of a folder's files (the app's own root folder when ``folder_token`` is empty)."""
        from lark_oapi.api.drive.v1 import ListFileRequest

        def call() -> Any:
            builder = ListFileRequest.builder().page_size(page_size)
            if folder_token:
                builder = builder.folder_token(folder_token)
            if page_token:
                builder = builder.page_token(page_token)
            if newest_first:
                builder = builder.order_by("CreatedTime").direction("DESC")
            return self._sdk.drive.v1.file.list(builder.build())

        data = self._run("drive.file.list", call).data
        files = tuple(
            DriveFile(
                token=f.token or "",
                name=f.name or "",
                type=f.type or "",
                url=f.url or "",
                created_time=_seconds(f.created_time),
            )
            for f in (data.files or ())
        )
        return FolderPage(files=files, next_page_token=(data.next_page_token or "") if data.has_more else "")

    def delete_file(self, token: str, *, doc_type: str = "bitable") -> None:
        """Delete a file the app owns (it goes to the owner's recycle bin)."""
        from lark_oapi.api.drive.v1 import DeleteFileRequest

        def call() -> Any:
            return self._sdk.drive.v1.file.delete(DeleteFileRequest.builder().file_token(token).type(doc_type).build())

        self._run("drive.file.delete", call)

    def add_member(
        self,
        token: str,
        *,
        member_id: str,
        doc_type: str = "bitable",
        member_type: str = "openid",
        perm: str = "full_access",
        need_notification: bool = False,
    ) -> None:
        """Make a user (or chat, ...) a collaborator of a document."""
        from lark_oapi.api.drive.v1 import BaseMember, CreatePermissionMemberRequest

        def call() -> Any:
            member = BaseMember.builder().member_type(member_type).member_id(member_id).perm(perm).build()
            request = (
                CreatePermissionMemberRequest.builder()
                .token(token)
                .type(doc_type)
                .need_notification(need_notification)
                .request_body(member)
                .build()
            )
            return self._sdk.drive.v1.permission_member.create(request)

        self._run("drive.permission_member.create", call)

    def transfer_owner(
        self,
        token: str,
        *,
        member_id: str,
        doc_type: str = "bitable",
        member_type: str = "openid",
        remove_old_owner: bool = False,
        old_owner_perm: str = "full_access",
        need_notification: bool | None = None,
    ) -> None:
        """Hand a document the app owns to a user; the app keeps ``old_owner_perm`` unless removed."""
        from lark_oapi.api.drive.v1 import Owner, TransferOwnerPermissionMemberRequest

        def call() -> Any:
            owner = Owner.builder().member_type(member_type).member_id(member_id).build()
            builder = (
                TransferOwnerPermissionMemberRequest.builder()
                .token(token)
                .type(doc_type)
                .remove_old_owner(remove_old_owner)
                .request_body(owner)
            )
            if not remove_old_owner:
                builder = builder.old_owner_perm(old_owner_perm)
            if need_notification is not None:
                builder = builder.need_notification(need_notification)
            return self._sdk.drive.v1.permission_member.transfer_owner(builder.build())

        self._run("drive.permission_member.transfer_owner", call)

    def may(self, token: str, *, doc_type: str, action: str) -> bool:
        """Whether the app may do ``action`` (view, edit, ...) on a document or folder
        (``GET /open-apis/drive/v1/permissions/:token/members/auth``)."""
        from lark_oapi.api.drive.v1 import AuthPermissionMemberRequest

        def call() -> Any:
            request = AuthPermissionMemberRequest.builder().token(token).type(doc_type).action(action).build()
            return self._sdk.drive.v1.permission_member.auth(request)

        return bool(self._run("drive.permission_member.auth", call).data.auth_result)


def _seconds(value: Any) -> int:
    """Drive answers times as strings of unix seconds."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
