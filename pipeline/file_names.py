"""File names for downloaded bodies: from ``Content-Disposition`` or the URL, made safe as one path
component, and reserved in a directory without overwriting anything."""

from __future__ import annotations

import email.message
import itertools
import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-flv": ".flv",
    "video/mp2t": ".ts",
    "video/x-msvideo": ".avi",
    "video/3gpp": ".3gp",
    "audio/mp4": ".m4a",
    "audio/mpeg": ".mp3",
}
_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*]')


def name_from_response(
    content_disposition: str | None, url: str, content_type: str | None = None, *, max_bytes: int = 180
) -> str:
    """A safe file name for a body: the one ``Content-Disposition`` suggests, else the URL's last path
    segment; an extension from the content type is added when the name has none."""
    raw = _disposition_name(content_disposition) or unquote(PurePosixPath(urlsplit(url).path).name)
    extension = _EXTENSIONS.get(content_type or "", "")
    name = safe_filename(raw, max_bytes=max_bytes - len(extension))
    return name if PurePosixPath(name).suffix else name + extension


def _disposition_name(value: str | None) -> str:
    if not value:
        return ""
    # RFC 6266: filename* (RFC 5987, charset'lang'percent-encoded) wins over filename.
    extended = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;\s]+)", value, re.IGNORECASE)
    if extended:
        try:
            return unquote(extended.group(2), encoding=extended.group(1) or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    message = email.message.Message()
    message["Content-Disposition"] = value
    name = message.get_filename() or ""
    # http.client decodes header bytes as latin-1; servers that send raw UTF-8 names are common.
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def safe_filename(raw: str, *, default: str = "video", max_bytes: int = 180) -> str:
    """A name that is safe as one path component: only the last segment of any path, no control or
    invisible characters, no leading dots, capped in UTF-8 bytes with the extension kept. Chinese,
    spaces and other readable characters stay."""
    text = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    text = " ".join(text.split())  # tabs, newlines and runs of spaces become one space
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))  # controls, bidi overrides
    text = _UNSAFE_NAME_CHARS.sub("_", text).strip(" .")
    if not text:
        text = default
    if len(text.encode()) <= max_bytes:
        return text
    path = PurePosixPath(text)
    suffix = path.suffix if len(path.suffix.encode()) <= 16 else ""
    stem = text[: len(text) - len(suffix)]
    budget = max_bytes - len(suffix.encode())
    stem = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(" .")
    return (stem or default) + suffix


def reserve_path(dest_dir: Path, name: str) -> Path:
    """Create ``dest_dir/name`` exclusively, or ``name (1).ext``, ``name (2).ext``... if it is taken."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    for n in itertools.count():
        candidate = dest_dir / (name if n == 0 else f"{stem} ({n}){suffix}")
        try:
            candidate.open("xb").close()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover
