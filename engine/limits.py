"""The engine's budgets: how much work and data one request or one execution may cost.

Every phase that untrusted input reaches has a bound of wpk's own (SECURITY.md rule 1): template
compilation computes nothing (engine/expressions.py), rendering has its caps, and the limits here
bound what a caller of the agent could otherwise make unbounded: pattern-matching time per
request, `for_each` items, output kept per step and per execution, events and log bytes per
execution. They come from the `limits:` section of the agent configuration, never from a
runbook; an error for an exceeded limit names it and says where to raise it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["LimitExceeded", "Limits", "configure", "current", "json_size", "limit_message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Defaults suit an agent with a few GiB of memory; docs/security.md lists each one."""

    regex_seconds: float = 1.0
    """Total time user-supplied `pattern`s may spend matching in one validation or one set of
    parameters (each match also stops after 0.25 s)."""
    for_each_items: int = 10_000
    """Most items one `for_each` step may run."""
    step_output_bytes: int = 16 * 1024 * 1024
    """Largest result plus outputs of one step (or one item), measured as JSON."""
    execution_output_bytes: int = 64 * 1024 * 1024
    """Largest total of results and outputs of all steps of one execution."""
    execution_events: int = 200_000
    """Most events one execution may record (log lines included)."""
    execution_log_bytes: int = 64 * 1024 * 1024
    """Most log text one execution may record; later lines are dropped with a notice."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Limits:
        """The `limits:` section (already checked against the agent-config schema)."""
        return replace(cls(), **{f.name: raw[f.name] for f in fields(cls) if f.name in raw})


class LimitExceeded(Exception):
    """A budget ran out; the message names the limit and how to raise it."""


def limit_message(what: str, name: str, value: float) -> str:
    shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
    return (
        f"{what} (limit limits.{name} = {shown}; an operator can raise it in the `limits:` "
        "section of the agent configuration, not in the runbook)"
    )


_current = Limits()


def configure(limits: Limits) -> None:
    """Set the process-wide limits (the agent does this once, from its configuration)."""
    global _current
    _current = limits


def current() -> Limits:
    return _current


def json_size(value: Any, limit: int) -> int:
    """About how many bytes `value` takes as JSON; stops counting once past `limit`.

    Iterative and bounded, so measuring a huge value costs no more than the limit."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int | float):
            total += 12
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            for key, element in item.items():
                stack.append(key)
                stack.append(element)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += len(str(item))
    return total
