"""Drive permissions (collaborators, owner)."""

from __future__ import annotations

from typing import Any

from bot.feishu.transport import Transport


class Drive(Transport):
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
