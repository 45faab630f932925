"""Text fit for a terminal: nothing from a runbook, a parameter or a target can forge output.

A value may carry escape sequences (colours, cursor moves, window titles `ESC ]0;…`, clipboard
writes `ESC ]52;…`, hyperlinks), carriage returns that overwrite a line, newlines that start a
fake one, or bidirectional overrides that reorder what a reader sees. Issue 9: a `host`
parameter made the dry-run plan show `would run: ssh web-1 uptime` while the real command
stopped a service. Every such character is shown escaped (`\\x1b`, `\\n`, `\\u202e`), so the
bytes on the terminal are exactly the characters printed. JSON output needs none of this (its
encoder escapes control characters already) and is left unchanged.
"""

from __future__ import annotations

import re

__all__ = ["one_line", "text_block"]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: object) -> str:
    """`text` as one terminal line: every control character escaped, newlines included."""
    return _UNSAFE.sub(_escape, str(text))


def text_block(text: object) -> str:
    """`text` as several lines: like `one_line`, but newlines and tabs are kept."""
    return _UNSAFE_KEEP_NEWLINES.sub(_escape, str(text))
