"""Whether the results Base can go into a Drive folder, asked when a job is accepted.

An app cannot be made a collaborator of a person's folder directly: the platform's way is to give a
group that contains the bot edit (or manage) rights on the folder. So a folder named in the task form is
checked with the permission API (``members/auth``, ``action=edit``) before the job is queued, and an
unusable one is answered at once instead of after all the analysis. A folder that turns unusable later
does not lose finished work: the results sink falls back to the app's own space (``results_sink``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bot.feishu import FeishuError, NotFound, PermissionDenied, ScopeMissing
from pipeline.models import UserText

log = logging.getLogger(__name__)

HOW_TO_SHARE_ZH = (
    "请把机器人所在的群加为该文件夹的协作者（可编辑或可管理），或不填写文件夹（结果会存到机器人的空间并转给你）。"
)
HOW_TO_SHARE_EN = (
    "Give a group that contains the bot edit (or manage) access to the folder, or leave the folder out (the "
    "results then go to the bot's space and are handed over to you)."
)


class FolderAccess(Protocol):
    """The one thing this needs from ``bot.feishu.FeishuClient``."""

    def may(self, token: str, *, doc_type: str, action: str) -> bool: ...


def folder_problem(client: FolderAccess, folder_token: str) -> UserText | None:
    """Why the app cannot create a Base in the folder, or None when it can (or when Feishu could not say:
    the job then goes ahead and the results sink's fallback keeps its results)."""
    try:
        if client.may(folder_token, doc_type="folder", action="edit"):
            return None
    except NotFound:
        return UserText(
            zh=f"找不到这个文件夹（可能已被删除，或链接不完整）。{HOW_TO_SHARE_ZH}",
            en=f"This folder does not exist (it may have been deleted, or the link is cut short). {HOW_TO_SHARE_EN}",
        )
    except ScopeMissing as exc:
        # The check itself is not allowed: say nothing about the folder; the sink's fallback keeps the work.
        log.warning("could not check access to folder %s: %s; the job goes ahead", folder_token, exc)
        return None
    except PermissionDenied:
        pass
    except FeishuError as exc:
        log.warning("could not check access to folder %s: %s; the job goes ahead", folder_token, exc)
        return None
    return UserText(
        zh=f"机器人没有这个文件夹的编辑权限，无法在其中创建结果表格。{HOW_TO_SHARE_ZH}",
        en=f"The bot may not edit this folder, so it cannot create the results Base there. {HOW_TO_SHARE_EN}",
    )


class DefaultFolder:
    """The configured folder (``FEISHU_FOLDER_TOKEN``) that jobs from messages write into, checked when a
    job is accepted: at most once every ``ttl_s`` (one Feishu call, off the request path). When it is
    unusable the job still runs (the operator, not the sender, can fix it): the queued card says the
    results go to the bot's space and are handed over, which is where the sink puts them."""

    def __init__(
        self,
        client: FolderAccess,
        folder_token: str,
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._folder_token = folder_token
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._checked: tuple[float, UserText | None] | None = None

    def notes(self) -> tuple[UserText, ...]:
        now = self._clock()
        with self._lock:
            checked = self._checked
        if checked is None or now - checked[0] >= self._ttl_s:
            checked = (now, folder_problem(self._client, self._folder_token))
            with self._lock:
                self._checked = checked
        problem = checked[1]
        if problem is None:
            return ()
        return (
            UserText(
                zh=f"管理员配置的结果文件夹不可用：{problem.zh} 本次结果会保存到机器人的空间并转给你。",
                en=f"The results folder the administrator set up cannot be used: {problem.en} This job's results "
                "go to the bot's space and are handed over to you.",
            ),
        )
