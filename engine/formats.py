"""The `format`s a parameter schema may use, all checked (docs/format.md, "Parameters").

jsonschema checks `hostname`, `uri` and `date-time` only when optional libraries are installed
(fqdn, rfc3987 — GPL — and rfc3339-validator), and otherwise lets every value pass: `-p
host=-bad-..host` ran to completion (issue 11, finding 3). docs recommend `format: hostname` for
values that reach commands, so a silent pass is a safety hole. We check these three ourselves,
to their RFCs, with the standard library (no new dependency, no GPL); `ipv4`, `ipv6`, `email`
and `date` keep jsonschema's built-in checks, which need nothing extra.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
# RFC 3986 characters: unreserved, reserved, and `%` (checked as %XX below).
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def is_hostname(value: Any) -> bool:
    """RFC 1123 host name: dot-separated labels of letters, digits and `-` (not at either end),
    each 1..63 characters, 253 in all; one trailing dot allowed."""
    if not isinstance(value, str):
        return True  # formats apply to strings only (JSON Schema)
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def is_uri(value: Any) -> bool:
    """RFC 3986 URI: a scheme, `:`, then only URI characters with well-formed %XX escapes;
    `http`/`https` URIs need a host."""
    if not isinstance(value, str):
        return True
    scheme, colon, rest = value.partition(":")
    if not colon or not _SCHEME.match(scheme):
        return False
    if not _URI_CHARS.match(rest) or _BAD_PERCENT.search(rest):
        return False
    if scheme.lower() in ("http", "https"):
        try:
            return bool(urlsplit(value).hostname)
        except ValueError:  # e.g. a bad port or bracket
            return False
    return True


def is_date_time(value: Any) -> bool:
    """RFC 3339 date-time (`2026-12-02T09:30:00Z`, `...+01:00`), with a real date and time."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


def format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("hostname")(is_hostname)
    checker.checks("uri")(is_uri)
    checker.checks("date-time")(is_date_time)
    return checker


FORMAT_CHECKER = format_checker()

__all__ = ["FORMAT_CHECKER", "is_date_time", "is_hostname", "is_uri"]
