"""`wpk executions …` and `wpk submit`: placeholder, filled in below."""

from __future__ import annotations

from typing import Any


def add_subcommands(sub: Any) -> None:
    return None
