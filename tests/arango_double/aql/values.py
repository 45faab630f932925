"""AQL value semantics: type order, comparison, truthiness and the casts operators apply.

Types order null < bool < number < string < array < object. Arrays compare element by element
(a missing element counts as null); objects compare over the sorted union of their attribute
names (a missing attribute counts as null). Strings compare by code point here, where ArangoDB
uses ICU collation: equal for ASCII, which is what the tests and the store use.
"""

from __future__ import annotations

import json
import math
from typing import Any

_RANK = {type(None): 0, bool: 1, int: 2, float: 2, str: 3, list: 4, dict: 5}


def type_rank(value: Any) -> int:
    return _RANK.get(type(value), 0)


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1, the way AQL's `<`, `==` and SORT order two values."""
    ra, rb = type_rank(a), type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return 0
    if ra in (1, 2, 3):
        return (a > b) - (a < b)
    if ra == 4:
        for i in range(max(len(a), len(b))):
            c = compare(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
            if c:
                return c
        return 0
    for key in sorted(set(a) | set(b)):
        c = compare(a.get(key), b.get(key))
        if c:
            return c
    return 0


def equal(a: Any, b: Any) -> bool:
    return compare(a, b) == 0


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value: Any) -> int | float:
    """The cast arithmetic applies: never fails, falls back to 0."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return number(int(text)) if text.lstrip("+-").isdigit() else number(float(text))
        except (ValueError, OverflowError):
            return 0
    if isinstance(value, list):
        if not value:
            return 0
        if len(value) == 1:
            return to_number(value[0])
        return 0
    return 0


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(number(value))
    return json.dumps(value, separators=(",", ":"))


def number(value: float | int) -> Any:
    """Arithmetic results: non-finite becomes null; integral doubles print as integers."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def canonical(value: Any) -> str:
    """A hashable key under which AQL-equal values coincide (grouping, DISTINCT, UNIQUE)."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"))


def _normal(value: Any) -> Any:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def type_name(value: Any) -> str:
    return ("null", "bool", "number", "string", "array", "object")[type_rank(value)]
