"""JSON from outside, parsed with its nesting bounded.

``json.loads`` recurses once per ``[`` or ``{``: a body of 100,000 brackets raises RecursionError,
which is not a ValueError, so every ``except ValueError`` around a parse let it through as a 500 (and
a nesting just under the interpreter's limit can still exhaust the stack of a deep caller). Every place
that reads JSON a user or a peer sent goes through ``loads_bounded``: nesting deeper than ``max_depth``
is refused with ``JsonTooDeep`` (a ValueError, so "not JSON" handlers keep working) before the parser
runs, in time linear in the size of the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Feishu's events nest about 6 levels, rich-text posts about 8, our job envelopes about 6.
MAX_JSON_DEPTH = 64

# A JSON string literal (escapes included): brackets inside strings do not nest anything.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonTooDeep(ValueError):
    """The text nests arrays/objects deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nests deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting_exceeds(raw: bytes | str, max_depth: int) -> bool:
    """Whether ``raw`` opens more than ``max_depth`` arrays/objects at once (strings ignored).

    Stops at the first bracket past the bound, so a hostile run of ``[`` costs ``max_depth`` steps."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads_bounded(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(raw)``, refusing nesting deeper than ``max_depth`` with ``JsonTooDeep``.

    Other malformed input raises what ``json.loads`` raises (ValueError, UnicodeDecodeError)."""
    if nesting_exceeds(raw, max_depth):
        raise JsonTooDeep(max_depth)
    try:
        return json.loads(raw)
    except RecursionError:
        # Only reachable when called already deep in the stack; refused the same way.
        raise JsonTooDeep(max_depth) from None
