"""Names people supplied (file names, titles, links shown as text, task names), made fit to show.

A name travels into cards, Bitable cells, contact-sheet titles and logs. Left as sent, a 10 KB URL
makes every later step pay for it, and terminal escapes, CR/LF and NUL end up inside a cell or a card.
``clean_name`` is applied where a name enters (``VideoSource``, ``AnalysisOptions``) and again where
one is shown: it is idempotent, linear in the input, and bounded before any real work is done.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 200
MAX_TASK_NAME_CHARS = 100
ELLIPSIS = "…"

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-byte ESC x.
# Also the 8-bit CSI/OSC introducers (U+009B, U+009D).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-_]?"
)
# Every control character (C0, DEL, C1) becomes a space; whitespace runs are then collapsed.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Bidirectional overrides and isolates turn "gpj.mp4" into what looks like "mp4.jpg".
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def clean_name(text: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``text`` on one line without escapes, control or bidi characters, cut to ``max_chars``
    characters with an ellipsis. Applying it twice gives the same result as once."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    # Bounded first: escapes can only shorten the text, so eight times the cap is more than enough
    # to fill the cap, and the work below never sees more than that.
    text = text[: max_chars * 8]
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub(" ", text)
    text = _BIDI.sub("", text)
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1].rstrip() + ELLIPSIS
