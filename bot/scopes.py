"""The Open Platform scopes the bot asks for, each with the feature that needs it, and the answer a user
gets when Feishu refuses a call for a scope the app was not granted (99991672).

The README's scope table lists the same set; ``tests/bot/test_scopes.py`` keeps the two in step.
"""

from __future__ import annotations

from bot.feishu import ScopeMissing
from pipeline.models import UserText

# scope -> (what it is for, zh; en). Tenant (app identity) scopes; the minimal set for every feature.
SCOPES: dict[str, tuple[str, str]] = {
    "im:message.p2p_msg:readonly": ("接收私聊消息", "receive messages users send the bot in a direct chat"),
    "im:message.group_at_msg:readonly": (
        "接收群里 @ 机器人的消息",
        "receive messages that @-mention the bot in a group",
    ),
    "im:message.group_msg": (
        "在群里读取被回复的那条消息",
        "groups: read the message an @bot reply points at (get-message API)",
    ),
    "im:message": (
        "回复、更新进度卡片、下载用户发送的视频和文件",
        "reply, update the progress card, download the videos and files users send",
    ),
    "bitable:app": (
        "创建结果多维表格、读取用户发送的多维表格、上传截图和文件",
        "create the results Base, read a Base a user sends, upload screenshots and files into cells",
    ),
    "docs:permission.member:create": ("把结果表格共享给发起人", "share the results Base with the requester"),
    "docs:permission.member:transfer": ("把结果表格的所有权转给发起人", "hand the results Base over to the requester"),
    "drive:drive:readonly": (
        "下载多维表格附件中的视频；提交表单时检查能否在指定文件夹中创建表格；创建表格的应答丢失时在文件夹中找回它",
        "download videos attached to a Base's cells; check, when a form is sent, that the bot may create the "
        "Base in the chosen folder; find the results Base again when Feishu's answer to creating it was lost",
    ),
    "wiki:wiki:readonly": ("读取知识库中的多维表格链接", "look up a /wiki/ link to find the Base inside it"),
}


def missing_scope_text(exc: ScopeMissing) -> UserText:
    """What the card says: the scope(s) to add (any one of those Feishu named), what each is for, and how."""
    named = exc.scopes or ("?",)
    zh_list = "、".join(f"`{s}`" + (f"（{SCOPES[s][0]}）" if s in SCOPES else "") for s in named)
    en_list = ", ".join(f"`{s}`" + (f" ({SCOPES[s][1]})" if s in SCOPES else "") for s in named)
    either_zh = "其中任一" if len(named) > 1 else ""
    either_en = "any one of " if len(named) > 1 else ""
    return UserText(
        zh=f"机器人的飞书应用缺少权限：{zh_list}。请管理员在开发者后台「权限管理」中开通{either_zh}"
        "并发布新版本，然后重试。",
        en=f"The bot's Feishu app lacks a permission scope: {en_list}. Ask the administrator to add {either_en}"
        "it under Permissions & Scopes in the developer console and publish a new version, then try again.",
    )
