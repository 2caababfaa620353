"""Drive permissions (collaborators, owner) and Wiki nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.feishu.transport import Transport


@dataclass(frozen=True)
class WikiNode:
    node_token: str
    obj_token: str
    obj_type: str
    title: str = ""


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

    # ---- Wiki ------------------------------------------------------------------------------------

    def get_wiki_node(self, node_token: str) -> WikiNode:
        """What a ``/wiki/<token>`` link wraps (a Base: ``obj_type == "bitable"``, ``obj_token`` its app_token)."""
        from lark_oapi.api.wiki.v2 import GetNodeSpaceRequest

        def call() -> Any:
            request = GetNodeSpaceRequest.builder().token(node_token).obj_type("wiki").build()
            return self._sdk.wiki.v2.space.get_node(request)

        node = self._run("wiki.space.get_node", call).data.node
        return WikiNode(
            node_token=node.node_token or node_token,
            obj_token=node.obj_token,
            obj_type=node.obj_type,
            title=node.title or "",
        )
