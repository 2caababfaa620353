"""A message that replies to (quotes) another: analyse the message it points at.

In a group the bot receives only messages that @-mention it, and a video or a file cannot carry a
mention. So a user replies to the video, file or link message with "@bot" (and nothing else to
analyse), and the bot reads that parent message with the get-message API and takes it as if it had been
sent to the bot: its links, its video or its file (downloaded from the parent message, where the
resource lives). The job belongs to the person who replied, is keyed by the reply's message id (a
redelivered reply never queues it twice) and the cards answer the reply.

The read is a call to Feishu, so it happens on the outbox, never on the path that acknowledges the event.
A parent the bot cannot read (recalled, or in a chat or thread the bot cannot see) gets a clear answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot import cards
from bot.feishu import FeishuError, FetchedMessage, MessageGone, NotFound, ScopeMissing
from bot.inbound.commands import BadOptions, Command, CommandRules, Help, NewJob, Nothing, parse_message
from bot.inbound.events import IncomingMessage
from bot.scopes import missing_scope_text
from pipeline.models import JobSpec, UserText

log = logging.getLogger(__name__)

QueueJob = Callable[[IncomingMessage, JobSpec], None]
Reply = Callable[[IncomingMessage, Callable[[], Mapping[str, Any]], str], None]

PARENT_GONE = UserText(
    zh="你回复的那条消息已被撤回或删除，无法分析。请重新发送视频、文件或链接。",
    en="The message you replied to was recalled or deleted, so there is nothing to analyse. Send the video, "
    "file or link again.",
)
PARENT_UNREADABLE = UserText(
    zh="机器人读不到你回复的那条消息（可能机器人不在它所在的群或话题里，或缺少读取群消息的权限）。"
    "请把视频、文件或链接直接发给机器人，或在机器人所在的群里重新发送后回复它并 @ 机器人。",
    en="The bot cannot read the message you replied to (it may not be in that chat or thread, or lack the "
    "permission to read group messages). Send the video, file or link to the bot directly, or post it again "
    "in a group with the bot, then reply to it and @-mention the bot.",
)
PARENT_HAS_NOTHING = UserText(
    zh="你回复的那条消息里没有视频、文件或链接。",
    en="The message you replied to has no video, file or link in it.",
)

_MENTION = re.compile(r"@_user_\d+|@_all")


class MessageReader(Protocol):
    """The one thing this needs from ``bot.feishu.FeishuClient``."""

    def get_message(self, message_id: str) -> FetchedMessage: ...


class RepliedMessages:
    def __init__(self, reader: MessageReader, rules: CommandRules) -> None:
        self._reader = reader
        self._rules = rules

    def wanted(self, message: IncomingMessage, command: Command) -> bool:
        """Whether the reply itself holds nothing to analyse, so its parent should be read: it found no
        input, or it is a bare mention (which alone would be answered with help)."""
        if not message.parent_id:
            return False
        if isinstance(command, Nothing):
            return True
        return isinstance(command, Help) and _bare_mention(message)

    def resolve(self, message: IncomingMessage, queue: QueueJob, reply: Reply) -> None:
        """Read the parent and queue its job, or answer why not. Runs on the outbox."""
        try:
            parent = self._reader.get_message(message.parent_id)
        except ScopeMissing as exc:
            log.info("the replied-to message cannot be read: %s", exc)
            self._answer(message, reply, missing_scope_text(exc))
            return
        except (MessageGone, NotFound) as exc:
            log.info("the replied-to message cannot be read: %s", exc)
            self._answer(message, reply, PARENT_GONE)
            return
        except FeishuError as exc:
            log.info("the replied-to message cannot be read: %s", exc)
            self._answer(message, reply, PARENT_UNREADABLE)
            return
        if parent.deleted:
            self._answer(message, reply, PARENT_GONE)
            return
        command = parse_message(_as_message(message, parent), self._rules)
        if isinstance(command, NewJob):
            # The reply is the request: its id keys the job and gets the cards.
            queue(message, dataclasses.replace(command.spec, source_message_id=message.message_id))
        elif isinstance(command, Nothing):
            nothing = command
            reply(
                message,
                lambda: cards.nothing_card(nothing.reason, nothing.rejected, max_links=self._rules.max_links),
                "reply:parent_nothing",
            )
        elif isinstance(command, BadOptions):
            bad = command
            reply(message, lambda: cards.error_card(bad.problem, bad.example), "reply:parent_bad_options")
        else:
            self._answer(message, reply, PARENT_HAS_NOTHING)

    def _answer(self, message: IncomingMessage, reply: Reply, reason: UserText) -> None:
        reply(message, lambda: cards.nothing_card(reason, max_links=self._rules.max_links), "reply:parent_unusable")


def _bare_mention(message: IncomingMessage) -> bool:
    if message.message_type != "text":
        return False
    text = str(_text_of(message.content))
    for mention in message.mentions:
        if mention.key:
            text = text.replace(mention.key, " ")
    return not _MENTION.sub(" ", text).strip()


def _text_of(content: str) -> Any:
    try:
        data = json.loads(content) if content else {}
    except ValueError:
        return ""
    return data.get("text", "") if isinstance(data, dict) else ""


def _as_message(reply: IncomingMessage, parent: FetchedMessage) -> IncomingMessage:
    """The parent's content, as if the replying person had sent it: resources stay addressed through the
    parent's message id, which is where Feishu keeps them."""
    return IncomingMessage(
        event_id=reply.event_id,
        message_id=parent.message_id,
        chat_id=reply.chat_id,
        chat_type=reply.chat_type,
        message_type=parent.message_type,
        content=parent.content,
        sender_open_id=reply.sender_open_id,
        sender_type=reply.sender_type,
        tenant_key=reply.tenant_key,
    )
