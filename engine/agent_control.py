"""Agents and the queue as the API and the CLI see them: list, control, and the claim order.

One set of operations for `GET /agents`, `POST /agents/{id}/pause|resume|drain`, `GET /queue`
and `wpk agents …` / `wpk queue` on a local store. A request for the agent of this process is
applied at once; a request for another agent is recorded in the store (compare-and-set on its
state) and that agent applies it at its next heartbeat.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .scheduler import (
    AGENT_STATES,
    REQUESTS,
    AgentView,
    IllegalTransition,
    check_request,
    effective_priority,
    order_key,
    waiting_reason,
)
from .store.base import AgentInfo, ExecutionQuery, ExecutionRow, ExecutionStore

if TYPE_CHECKING:
    from .agent import Agent

MAX_QUEUE = 10_000  # pending executions looked at for one listing


class AgentNotFound(LookupError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no agent {agent_id!r}")
        self.agent_id = agent_id


async def list_agents(store: ExecutionStore) -> list[dict[str, Any]]:
    return [a.as_dict() for a in await store.list_agents()]


async def find_agent(store: ExecutionStore, agent_id: str) -> AgentInfo:
    for agent in await store.list_agents():
        if agent.agent_id == agent_id:
            return agent
    raise AgentNotFound(agent_id)


async def get_agent(store: ExecutionStore, agent_id: str) -> dict[str, Any]:
    return (await find_agent(store, agent_id)).as_dict()


async def control(
    store: ExecutionStore, agent_id: str, request: str, *, local: Agent | None = None
) -> dict[str, Any]:
    """Pause, resume or drain an agent; its record afterwards (`requested` set if deferred)."""
    if request not in REQUESTS:
        raise ValueError(f"unknown request {request!r}: use {', '.join(REQUESTS)}")
    if local is not None and local.config.agent_id == agent_id:
        local.control(request)
        await store.heartbeat(
            agent_id, now=time.time(), state=local.state, lease_seconds=local.config.lease_seconds
        )
        return await get_agent(store, agent_id)
    agent = await find_agent(store, agent_id)
    check_request(agent_id, agent.state, request)
    legal = [s for s in AGENT_STATES if _legal(agent_id, s, request)]
    if not await store.request_agent(agent_id, request, states=legal):
        agent = await find_agent(store, agent_id)  # its state changed meanwhile: say the new one
        check_request(agent_id, agent.state, request)
    return await get_agent(store, agent_id)


def _legal(agent_id: str, state: str, request: str) -> bool:
    try:
        check_request(agent_id, state, request)
    except IllegalTransition:
        return False
    return True


async def pending_rows(store: ExecutionStore) -> list[ExecutionRow]:
    page = await store.list_executions(ExecutionQuery(statuses=("pending",), limit=MAX_QUEUE))
    return page.rows


async def queue(
    store: ExecutionStore, *, aging_rate: float, limit: int = 100, now: float | None = None
) -> dict[str, Any]:
    """Pending executions in the order an agent would claim them (ignoring placement), each with
    its effective priority and, where it can be said, why it waits."""
    from .state import iso

    now = time.time() if now is None else now
    rows = await pending_rows(store)
    views = [AgentView(a.agent_id, a.state, a.labels) for a in await store.list_agents()]
    # `n` (insertion order) is not on the row: created_at breaks ties the same way for rows
    # created by one clock; the execution id keeps the order total.
    rows.sort(
        key=lambda r: (order_key(r.priority, r.created_at, 0, aging_rate), r.created_at, r.execution_id)
    )
    out = []
    for position, row in enumerate(rows[:limit], start=1):
        out.append(
            {
                "position": position,
                "execution_id": row.execution_id,
                "workflow_id": row.workflow_id,
                "priority": row.priority,
                "effective_priority": round(
                    effective_priority(row.priority, row.created_at, now, aging_rate), 3
                ),
                "created_at": iso(row.created_at),
                "not_before": iso(row.not_before),
                "labels": dict(row.labels),
                "waiting_reason": waiting_reason(row.labels, row.not_before, now, views),
            }
        )
    return {"aging_rate": aging_rate, "total": len(rows), "executions": out}


async def waiting_reason_of(store: ExecutionStore, row: ExecutionRow) -> str | None:
    views = [AgentView(a.agent_id, a.state, a.labels) for a in await store.list_agents()]
    return waiting_reason(row.labels, row.not_before, time.time(), views)


__all__ = [
    "AgentNotFound",
    "control",
    "find_agent",
    "get_agent",
    "list_agents",
    "queue",
    "waiting_reason_of",
]
