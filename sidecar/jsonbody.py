"""Request bodies as JSON, hardened (SECURITY.md, Sidecar): every limit checked before use.

`json.loads` alone accepts NaN and Infinity, turns `1e999` into infinity, raises ValueError on a
5,000-digit integer and RecursionError at depth ~1,000, keeps the last of duplicate keys and
lets lone surrogates (`"\\ud800"`) through to break storage later. Each of these is refused here
as a `BadJson` with one clear line, which the error table answers with 400.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJson(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not JSON: send numbers that are finite")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadJson(f"an integer of {len(text)} digits is too large (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"{text[:40]} is out of range for a number")
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadJson(f"duplicate key {key[:80]!r} in an object")
        out[key] = value
    return out


def _check(data: Any) -> None:
    """Depth and lone surrogates, walked without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadJson("a string holds a lone surrogate (invalid Unicode)")
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise BadJson(f"nested more than {MAX_DEPTH} levels deep")
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise BadJson("a key holds a lone surrogate (invalid Unicode)")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise BadJson(f"nested more than {MAX_DEPTH} levels deep")
            stack.extend((item, depth + 1) for item in value)


def parse(body: bytes) -> Any:
    """The JSON value of a request body, or BadJson saying what is wrong with it."""
    if not body.strip():
        raise BadJson("the request body is empty: send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(
            text, parse_constant=_constant, parse_int=_int, parse_float=_float, object_pairs_hook=_pairs
        )
    except RecursionError:
        raise BadJson(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise BadJson(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    _check(data)
    return data


def parse_object(body: bytes) -> dict[str, Any]:
    data = parse(body)
    if not isinstance(data, dict):
        raise BadJson(f"the body must be a JSON object, not {type(data).__name__}")
    return data
