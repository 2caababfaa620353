"""The one package that wraps lark-oapi: ``FeishuClient`` (messages, files, Bitable, Drive, Wiki over a
retrying transport) and the error tree callers act on. ``lark_oapi`` is imported lazily inside the
calls, so importing this package stays cheap on the server's start path."""

from bot.feishu.bitable import RECORDS_PER_BATCH, BitableApp, BitableField, BitableTable
from bot.feishu.client import FeishuClient
from bot.feishu.drive import DriveFile, FolderPage
from bot.feishu.errors import (
    CredentialsRejected,
    FeishuError,
    MessageGone,
    NotFound,
    PermissionDenied,
    RateLimited,
    ScopeMissing,
    TokenInvalid,
    TooLarge,
    TransientError,
    error_for,
)
from bot.feishu.files import MB, UPLOAD_ALL_MAX_BYTES
from bot.feishu.messages import FetchedMessage, card_json
from bot.feishu.transport import RetryPolicy
from bot.feishu.wiki import WikiNode

__all__ = [
    "MB",
    "RECORDS_PER_BATCH",
    "UPLOAD_ALL_MAX_BYTES",
    "BitableApp",
    "BitableField",
    "BitableTable",
    "CredentialsRejected",
    "DriveFile",
    "FeishuClient",
    "FeishuError",
    "FetchedMessage",
    "FolderPage",
    "MessageGone",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "ScopeMissing",
    "TokenInvalid",
    "TooLarge",
    "TransientError",
    "WikiNode",
    "card_json",
    "error_for",
]
