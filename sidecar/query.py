"""Query-string values, checked: a bad one is a 400 naming the parameter and what it accepts."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from .errors import ApiError


def bad(name: str, expected: str) -> ApiError:
    return ApiError(400, "bad_request", f"query parameter {name!r} must be {expected}", {"parameter": name})


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.strip().isdigit() or len(raw) > 12:
        raise bad(name, f"an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise bad(name, f"an integer from {low} to {high}")
    return value


def boolean(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise bad(name, "true or false")


def timestamp(request: Request, name: str) -> float | None:
    """ISO 8601 (`2026-01-31T12:00:00Z`) or seconds since the epoch."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw) if raw.replace(".", "", 1).isdigit() else datetime.fromisoformat(raw).timestamp()
    except (ValueError, OverflowError):
        raise bad(name, "an ISO 8601 time or seconds since the epoch") from None
