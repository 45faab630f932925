"""What a duration looks like, and how to say so when one is wrong (no imports: cheap everywhere).

`timeout: 2 minutes` should not be answered with "string value is not valid here": the message
names the valid forms and, where the intent is clear, the spelling that works (`2m`, `90s`).
"""

from __future__ import annotations

import re
from typing import Any

DURATION_FORMS = "durations look like 500ms, 30s, 5m, 2h, or a whole number of seconds"
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_WORDS = {
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def _spelled(seconds: float) -> str | None:
    """The one-unit spelling of `seconds`, largest unit first, if a whole number fits."""
    for unit in ("h", "m", "s", "ms"):
        count = seconds / _SECONDS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return None


def duration_problem(value: Any) -> str:
    """Why `value` is not a duration, the valid forms, and the likely intended spelling."""
    forms = f"({DURATION_FORMS})"
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return f"expected a duration, got {type(value).__name__} {forms}"
    if isinstance(value, int | float) and value < 0:
        return f"a duration cannot be negative: {value} {forms}"
    if isinstance(value, float):
        return f"{value} is not a whole number of seconds {forms}"
    text = str(value).strip().lower()
    parts = _PART.findall(text)
    if parts and "".join(f"{n}{u}" for n, u in parts) == re.sub(r"\s+", "", text):
        units = [_WORDS.get(u) for _, u in parts]
        if all(units):
            total = sum(float(n) * _SECONDS[str(u)] for (n, _), u in zip(parts, units, strict=True))
            better = _spelled(total)
            if better:
                return f"{str(value)!r} is not a duration: write {better} {forms}"
    return f"{str(value)!r} is not a duration {forms}"


__all__ = ["DURATION_FORMS", "duration_problem"]
