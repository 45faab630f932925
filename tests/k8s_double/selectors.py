"""Label and field selectors, in the query-string syntax and as `LabelSelector` objects.

The query syntax is the one `kubectl -l` and the client's `label_selector=` send:
`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a` (does not exist),
joined by commas. A selector the real server would refuse is a 400 BadRequest here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Requirement = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `( … )`."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _requirement(term: str) -> Requirement:
    if match := _SET_RE.match(term):
        key, op, raw = match.group(1), match.group(3), match.group(4)
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if not values:
            raise bad_request(f"unable to parse requirement: values for {op!r} must not be empty: {term!r}")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ_RE.match(term):
        key, op, value = match.group(1), match.group(3), match.group(4)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_RE.match(term):
        negate, key = match.group(1) == "!", match.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: {term!r}")


def parse_label_selector(text: str) -> Requirement:
    """Compile a query-string label selector into a predicate over an object's labels."""
    requirements = [_requirement(term) for term in _split_top_level(text)]
    return lambda labels: all(req(labels) for req in requirements)


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Match a `LabelSelector` object (`matchLabels` + `matchExpressions`). An empty one matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """Render a `LabelSelector` in query syntax, as `Scale.status.selector` carries it."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), sorted(expr.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def _lookup(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, Mapping) and dotted == "source":
        return str(value.get("component", ""))
    return str(value)


def parse_field_selector(text: str, supported: tuple[str, ...]) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector. Only the labels the real server indexes are accepted (400 otherwise)."""
    checks: list[tuple[str, bool, str]] = []
    for term in _split_top_level(text):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        label, op, value = match.group(1), match.group(2), match.group(3)
        if label not in ("metadata.name", "metadata.namespace", *supported):
            raise bad_request(f"field label not supported: {label}")
        checks.append((label, op == "!=", value))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((_lookup(obj, label) == value) != negate for label, negate, value in checks)

    return predicate
