"""The rendered inputs of `api.request`, checked and turned into one immutable `RequestSpec`.

The engine has already checked the inputs against the action's JSON Schema; this module still
checks what the schema cannot (a duration's syntax, a header value with a newline, `json` and
`body` together) so that the adapter never hands httpx something it would misinterpret. It also
owns what is shown of a request in plans and logs (`redact_headers`, `display_url`): credentials
never appear there, whatever the engine's own redaction catches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from wpk.adapters.base import InputError

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT = 30.0
DEFAULT_EXPECT = "2xx"
REDACTED = "***"

_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
_SENSITIVE_WORDS = ("token", "secret", "key", "auth", "password", "passwd", "credential", "session", "cookie")
_NOT_SENSITIVE = frozenset({"idempotency-key"})  # our own header; showing it helps, it grants nothing
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_METHOD = re.compile(r"^[A-Za-z]{1,20}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class StatusExpectation:
    """Accepted statuses as inclusive ranges: 200 is (200, 200), "2xx" is (200, 299)."""

    ranges: tuple[tuple[int, int], ...]
    text: str

    def accepts(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]
    content: bytes | None
    expect: StatusExpectation
    timeout: float
    follow_redirects: bool
    verify_tls: bool
    max_response_bytes: int
    # the body as the step gave it, for plans
    json_body: Any = None
    text_body: str | None = None
    has_json: bool = False

    @property
    def read_only(self) -> bool:
        return self.method in READ_ONLY_METHODS


def parse_expect_status(value: Any) -> StatusExpectation:
    """`200`, `[200, 204]`, `"2xx"`, `["2xx", 404]` -> the statuses a step accepts."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InputError("expect_status must not be an empty list")
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool):
            raise InputError(f"expect_status: {item!r} is not a status")
        if isinstance(item, int):
            if not 100 <= item <= 599:
                raise InputError(f"expect_status: {item} is not an HTTP status (100-599)")
            ranges.append((item, item))
        elif isinstance(item, str) and re.fullmatch(r"[1-5][xX][xX]", item.strip()):
            base = int(item.strip()[0]) * 100
            ranges.append((base, base + 99))
        elif isinstance(item, str) and re.fullmatch(r"[1-5]\d\d", item.strip()):
            ranges.append((int(item), int(item)))
        else:
            raise InputError(f"expect_status: {item!r} is not a status or a class like '2xx'")
    text = ", ".join(str(item).strip().lower() for item in items)
    return StatusExpectation(ranges=tuple(ranges), text=text)


def parse_timeout(value: Any) -> float:
    """Seconds as a number, or a duration string: `500ms`, `30s`, `5m`, `2h`."""
    if isinstance(value, bool):
        raise InputError("timeout must be a number of seconds or a duration like '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise InputError(f"timeout: {value!r} is not a number of seconds or a duration like '30s'")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"timeout must be positive, got {value!r}")
    return seconds


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InputError(f"{where} must be a string, number or boolean")


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InputError("headers must be a mapping of name to value")
    headers: list[tuple[str, str]] = []
    for name, raw in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InputError(f"headers: {name!r} is not a valid header name")
        text = _scalar(raw, f"header {name}")
        if any(c in text for c in "\r\n\0"):
            raise InputError(f"header {name} contains a line break or NUL")
        if not text.isascii():
            raise InputError(
                f"header {name} contains non-ASCII characters, which HTTP header values cannot carry; "
                "encode the value (e.g. `| urlencode` or `| b64encode`) as the receiving service expects"
            )
        headers.append((name, text))
    return tuple(headers)


def _query(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InputError("query must be a mapping of name to value (or list of values)")
    pairs: list[tuple[str, str]] = []
    for name, raw in value.items():
        for item in raw if isinstance(raw, list) else [raw]:
            pairs.append((str(name), _scalar(item, f"query parameter {name}")))
    return tuple(pairs)


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false")
    return value


def _has_header(headers: tuple[tuple[str, str], ...], name: str) -> bool:
    return any(key.lower() == name for key, _ in headers)


def _short(value: str, limit: int = 200) -> str:
    return (
        repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value) - limit} more characters)"
    )


_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


def _refuse_dot_segments(url: str) -> None:
    """A `.` or `..` segment in the path climbs out of the path the author wrote.

    `https://api/users/{{ params.user }}` with user `../../admin?x=1#` would reach `/admin`:
    the parameter re-routed the request. Values in URLs should pass through `| urlencode`; a
    dot-segment that is still there (also percent-encoded, which servers decode) is refused."""
    path = urlsplit(url).path
    if _DOT_SEGMENT.search(path):
        raise InputError(
            f"url path {_short(path)} contains a '.' or '..' segment, which would change the path "
            "the request goes to; put parameters in URLs through `| urlencode`"
        )


def parse_request(inputs: Mapping[str, Any], *, max_response_bytes: int) -> RequestSpec:
    """Check rendered inputs and apply defaults. `max_response_bytes` is the agent's ceiling."""
    method = inputs.get("method", "GET")
    if not isinstance(method, str) or not _METHOD.match(method):
        raise InputError(f"method: {method!r} is not an HTTP method")
    url = inputs.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InputError("url is required")
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise InputError(f"url {_short(url)} is not valid: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InputError(f"url must be an absolute http:// or https:// URL, got {_short(url)}")
    _refuse_dot_segments(url.strip())
    headers = _headers(inputs.get("headers"))
    has_json, has_body = "json" in inputs, inputs.get("body") is not None
    if has_json and has_body:
        raise InputError("give either json or body, not both")
    content: bytes | None = None
    if has_json:
        try:
            content = json.dumps(
                inputs["json"], ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InputError(f"json cannot be encoded: {exc}") from None
        if not _has_header(headers, "content-type"):
            headers += (("Content-Type", "application/json"),)
    elif has_body:
        body = inputs["body"]
        if not isinstance(body, str):
            raise InputError("body must be a string (use json for structured data)")
        content = body.encode("utf-8")
    requested = inputs.get("max_response_bytes")
    limit = max_response_bytes
    if requested is not None:
        limit = min(_int_at_least(requested, "max_response_bytes", 1), max_response_bytes)
    return RequestSpec(
        method=method.upper(),
        url=url.strip(),
        headers=headers,
        query=_query(inputs.get("query")),
        content=content,
        expect=parse_expect_status(inputs.get("expect_status", DEFAULT_EXPECT)),
        timeout=parse_timeout(inputs.get("timeout", DEFAULT_TIMEOUT)),
        follow_redirects=_bool(inputs.get("follow_redirects", False), "follow_redirects"),
        verify_tls=_bool(inputs.get("verify_tls", True), "verify_tls"),
        max_response_bytes=limit,
        json_body=inputs.get("json"),
        text_body=inputs.get("body") if has_body else None,
        has_json=has_json,
    )


# ---------------------------------------------------------------------------------------------
# What plans and logs may show


def is_sensitive(name: str) -> bool:
    """Whether a header or query parameter name suggests a credential."""
    lowered = name.lower()
    if lowered in _NOT_SENSITIVE:
        return False
    return lowered in _SENSITIVE_HEADERS or any(word in lowered for word in _SENSITIVE_WORDS)


def response_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Response headers for the step result: lower-cased, credentials (`set-cookie`) masked.

    A result is stored in the execution's events; a session cookie there would be a credential
    at rest, and no runbook needs its value to decide anything.
    """
    return {name.lower(): ("***" if name.lower() in _SENSITIVE_HEADERS else value) for name, value in headers}


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: REDACTED if is_sensitive(name) else value for name, value in headers}


def redact_query(query: Iterable[tuple[str, str]]) -> list[list[str]]:
    return [[name, REDACTED if is_sensitive(name) else value] for name, value in query]


def display_url(url: str) -> str:
    """The URL without its password and with credential-like query values hidden."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, REDACTED if is_sensitive(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparsable URL>"
