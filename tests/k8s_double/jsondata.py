"""Copying plain JSON data: `copy.deepcopy` is general and slow; the store copies on every access."""

from __future__ import annotations

from typing import Any, TypeVar, cast

T = TypeVar("T")


def clone(value: T) -> T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), without deepcopy's memo machinery."""
    return cast(T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value
