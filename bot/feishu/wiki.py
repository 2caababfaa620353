"""Wiki nodes: what a ``/wiki/<token>`` link wraps (a Base, a doc, ...)."""

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


class Wiki(Transport):
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
