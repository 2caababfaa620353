"""Bases inside a wiki: a ``/wiki/<token>`` link names a wiki node, not a Base.

The node's token is not the Base's app_token. The wiki get-node API (``GET
/open-apis/wiki/v2/spaces/get_node?token=...``, scope ``wiki:wiki:readonly``) says what the node wraps
(``obj_type``) and that document's own token (``obj_token``): a node of type ``bitable`` is read as the
Base ``obj_token``; any other type (a doc, a sheet, a mind note) gets a clear answer. Resolving is a
Feishu call, so it happens in the job, where Bitable links are expanded, never when the message arrives.

    source = resolve_wiki_base(client, source)   # a wiki-linked Bitable source -> one whose locator is the Base
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from bot.feishu import FeishuError, NotFound, PermissionDenied, ScopeMissing, WikiNode
from bot.inbound.commands import WIKI_TOKEN
from bot.scopes import missing_scope_text
from pipeline.errors import SourceError
from pipeline.models import UserText, VideoSource

_OBJ_NAMES = {
    "doc": ("文档", "a document"),
    "docx": ("文档", "a document"),
    "sheet": ("电子表格", "a spreadsheet"),
    "mindnote": ("思维笔记", "a mind note"),
    "file": ("文件", "a file"),
    "slides": ("幻灯片", "a slide deck"),
}


class WikiReader(Protocol):
    def get_wiki_node(self, node_token: str) -> WikiNode: ...


class WikiBaseError(SourceError):
    """A wiki link that does not lead to a Base the bot can read."""

    code = "wiki_not_usable"


class WikiNotABaseError(WikiBaseError):
    code = "wiki_not_a_base"


def resolve_wiki_base(client: WikiReader, source: VideoSource) -> VideoSource:
    """The same source with the Base's app_token as its locator; unchanged when it is no wiki link."""
    token = source.meta.get(WIKI_TOKEN)
    if not token:
        return source
    link = source.meta.get("url", "")
    try:
        node = client.get_wiki_node(token)
    except NotFound as err:
        raise WikiBaseError(
            f"wiki node {token} not found: {err}",
            UserText(
                zh=f"找不到这个知识库页面（可能已被删除，或链接不完整）：{link}。请在知识库中打开多维表格，复制地址栏链接重新发送。",
                en=f"This wiki page does not exist (it may have been deleted, or the link is cut short): {link}. "
                "Open the Base in the wiki, copy the address bar link and send it again.",
            ),
        ) from err
    except ScopeMissing as err:
        raise WikiBaseError(f"scope missing for wiki node {token}: {err}", missing_scope_text(err)) from err
    except PermissionDenied as err:
        raise WikiBaseError(
            f"no access to wiki node {token}: {err}",
            UserText(
                zh=f"机器人无权读取这个知识库页面：{link}。请知识库管理员把机器人所在的群加为知识库成员（可阅读），"
                "或在多维表格中「添加文档应用」添加本机器人，然后重新发送。",
                en=f"The bot may not read this wiki page: {link}. Ask a wiki admin to add a group the bot is in as "
                "a member of the wiki space (read access), or add this bot's app to the Base (Add document app), "
                "then send the link again.",
            ),
        ) from err
    except FeishuError as err:
        raise WikiBaseError(
            f"reading wiki node {token} failed: {err}",
            UserText(
                zh=f"读取知识库页面失败（错误码 {err.code}）。请稍后重新发送链接。",
                en=f"Reading the wiki page failed (code {err.code}). Send the link again later.",
            ),
        ) from err
    if node.obj_type != "bitable" or not node.obj_token:
        zh, en = _OBJ_NAMES.get(node.obj_type, ("其他类型的页面", f"a page of type '{node.obj_type}'"))
        raise WikiNotABaseError(
            f"wiki node {token} is a {node.obj_type}, not a Base",
            UserText(
                zh=f"这个知识库链接指向的是{zh}（「{node.title}」），不是多维表格：{link}。请发送多维表格的链接。",
                en=f"This wiki link points at {en} (“{node.title}”), not a Base: {link}. Send the link of a Base.",
            ),
        )
    meta = dict(source.meta)
    return dataclasses.replace(source, locator=node.obj_token, name=source.name or node.title, meta=meta)
