"""Who may run what, in which order, and how an agent's state may change (DESIGN §6): pure data.

The stores, the agent loop, the API and the CLI all decide with these functions, so a claim on
SQLite, in memory or on ArangoDB orders and filters executions the same way, and `GET /queue`
lists them in the order an agent would claim them.

Aging. The effective priority of a pending execution is `priority + rate * minutes waited`
(`rate` in priority points per minute, `wpk serve --aging-rate`, default `DEFAULT_AGING_RATE`).
Ordering by it is ordering by `priority - rate * created_minutes` (the `now` term is the same
for every row), so it needs no clock in the query. The bound it gives: an execution of priority
`p` submitted at `t0` is claimed before any execution submitted after `t0 + (100 - p) / rate`
minutes, whatever that one's priority; so under a continuous stream of priority-100 work a
priority-0 execution waits at most `100 / rate` minutes plus the time to run the work already
ahead of it then. Rate 0 turns aging off (strict priority, FIFO within a priority).

Placement. An execution's labels (the runbook's `spec.placement.labels`) must all be among the
claiming agent's labels, with the same values; an agent with no labels takes only executions
with no placement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_AGING_RATE = 10.0  # priority points per minute: priority 0 overtakes fresh 100 in 10 minutes
MAX_AGING_RATE = 6000.0

# -- agent lifecycle ------------------------------------------------------------------------

AGENT_STATES = ("created", "running", "paused", "stopped", "failed")
LIVE_STATES = frozenset({"created", "running", "paused"})  # registered and heartbeating
# The allowed (from, to) pairs; everything else is refused. `failed -> running`: an agent whose
# heartbeats come back (a long pause, a partition) runs again; the claims it held were fenced
# by their attempt numbers when its leases ran out.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("created", "running"),
        ("created", "stopped"),
        ("created", "failed"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "stopped"),
        ("paused", "stopped"),
        ("running", "failed"),
        ("paused", "failed"),
        ("failed", "running"),
    }
)
# Control requests (API, CLI) and the state each one leads to.
REQUESTS: dict[str, str] = {"pause": "paused", "resume": "running", "drain": "stopped"}


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow (409 over HTTP)."""

    def __init__(self, agent_id: str, state: str, to: str, request: str | None = None) -> None:
        what = f"{request} it" if request else f"go to {to}"
        super().__init__(
            f"agent {agent_id} is {state}: cannot {what} "
            f"(allowed from {state}: {', '.join(allowed_from(state)) or 'nothing'})"
        )
        self.agent_id = agent_id
        self.state = state
        self.to = to
        self.message = str(self)


def allowed_from(state: str) -> list[str]:
    return sorted(to for frm, to in TRANSITIONS if frm == state)


def can_transition(state: str, to: str) -> bool:
    return (state, to) in TRANSITIONS


def check_transition(agent_id: str, state: str, to: str, request: str | None = None) -> None:
    if state == to and request is not None:
        return  # asking a paused agent to pause is harmless
    if not can_transition(state, to):
        raise IllegalTransition(agent_id, state, to, request)


def check_request(agent_id: str, state: str, request: str) -> str:
    """The state `request` leads to from `state`, or IllegalTransition."""
    if request not in REQUESTS:
        raise ValueError(f"unknown request {request!r}: use {', '.join(REQUESTS)}")
    to = REQUESTS[request]
    check_transition(agent_id, state, to, request)
    return to


def is_stale(heartbeat_at: float, now: float, stale_after: float) -> bool:
    return now - heartbeat_at > stale_after


# -- the queue -------------------------------------------------------------------------------


def effective_priority(priority: int, created_at: float, now: float, rate: float) -> float:
    """`priority` raised by `rate` points per minute of waiting (never lowered)."""
    return priority + rate * max(0.0, now - created_at) / 60.0


def order_key(priority: int, created_at: float, n: int, rate: float) -> tuple[float, int]:
    """Sort key of claim order (ascending): highest effective priority first, then FIFO."""
    return (-(priority - rate * created_at / 60.0), n)


def eligible(execution_labels: Mapping[str, Any], agent_labels: Mapping[str, Any]) -> bool:
    """May an agent with `agent_labels` run an execution placed with `execution_labels`?"""
    return all(k in agent_labels and str(agent_labels[k]) == str(v) for k, v in execution_labels.items())


def eligible_json(execution_labels: str, agent_labels: str) -> bool:
    """`eligible` on the stored JSON text (SQLite calls this inside the claim's query)."""
    if execution_labels in ("{}", ""):
        return True
    return eligible(json.loads(execution_labels), json.loads(agent_labels))


def parse_at(text: str) -> float:
    """`--at` / `not_before`: an ISO 8601 time (no zone: UTC) or seconds since the epoch."""
    from datetime import UTC, datetime

    raw = text.strip()
    try:
        if raw.replace(".", "", 1).isdigit():
            return float(raw)
        when = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-01-31T12:00:00Z) or seconds since the epoch"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_in(text: str, now: float) -> float:
    """`--in 10m`: now plus a duration (500ms, 30s, 5m, 2h, or whole seconds)."""
    from .model import parse_duration

    try:
        return now + parse_duration(text.strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--in {text!r}: {exc}") from None


def due(not_before: float | None, now: float) -> bool:
    return not_before is None or not_before <= now


@dataclass(frozen=True, slots=True)
class AgentView:
    """What `waiting_reason` needs to know about an agent."""

    agent_id: str
    state: str
    labels: Mapping[str, str]


def waiting_reason(
    labels: Mapping[str, str], not_before: float | None, now: float, agents: Iterable[AgentView]
) -> str | None:
    """Why a pending execution is not being claimed, when that can be said; else None."""
    from .state import iso

    if not due(not_before, now):
        return f"not before {iso(not_before)}"
    live = [a for a in agents if a.state in LIVE_STATES]
    if not live:
        return "no live agent"
    if labels and not any(eligible(labels, a.labels) for a in live):
        wanted = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return f"no live agent has the labels {wanted}"
    if not any(a.state in ("running", "created") for a in live if eligible(labels, a.labels)):
        return "every agent that could run it is paused"
    return None


__all__ = [
    "AGENT_STATES",
    "DEFAULT_AGING_RATE",
    "LIVE_STATES",
    "REQUESTS",
    "TRANSITIONS",
    "AgentView",
    "IllegalTransition",
    "allowed_from",
    "can_transition",
    "check_request",
    "check_transition",
    "due",
    "effective_priority",
    "eligible",
    "eligible_json",
    "is_stale",
    "order_key",
    "parse_at",
    "parse_in",
    "waiting_reason",
]
