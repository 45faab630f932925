"""The in-memory store (`--store memory:`): nothing is kept after the process ends.

The same contract as SQLite, on dicts: everything happens on the trio thread between two
awaits, so each operation is atomic without a lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .. import scheduler
from ..events import Event, EventType
from .base import (
    EXPIRED,
    LEASE_SECONDS,
    TERMINAL,
    AgentInfo,
    Band,
    Claim,
    ExecutionQuery,
    ExecutionRow,
    LogLine,
    NewExecution,
    Page,
    StaleClaim,
    row_from_created,
    stale_message,
    status_after,
)


def _row(new: NewExecution, n: int) -> tuple[int, ExecutionRow]:
    return n, ExecutionRow(
        execution_id=new.execution_id,
        workflow_name=new.workflow_name,
        workflow_version=new.workflow_version,
        status=new.status,
        priority=new.priority,
        dry_run=new.dry_run,
        created_at=new.created_at,
        started_at=None,
        finished_at=None,
        package=new.package,
        package_path=new.package_path,
        params=dict(new.params),
        rollback=new.rollback,
        agent_id=new.agent_id,
        attempt=0,
        lease_until=None,
        cancel_requested=False,
        not_before=new.not_before,
        labels=dict(new.labels),
    )


class MemoryStore:
    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._rows: dict[str, tuple[int, ExecutionRow]] = {}
        self._agents: dict[str, AgentInfo] = {}
        self._n = 0
        self._fences: dict[str, int] = {}
        self._stale: list[str] = []  # refused writes, reported by the next flush

    # -- events ------------------------------------------------------------------------------
    def fence(self, execution_id: str, attempt: int | None) -> None:
        if attempt is None:
            self._fences.pop(execution_id, None)
        else:
            self._fences[execution_id] = attempt

    def append(self, execution_id: str, event: Event) -> None:
        fence = self._fences.get(execution_id)
        if fence is not None and execution_id in self._rows and self._rows[execution_id][1].attempt != fence:
            self._stale.append(stale_message(execution_id, fence))
            return
        if event.type is EventType.EXECUTION_CREATED and execution_id not in self._rows:
            self._insert(row_from_created(event))
        self._events.setdefault(execution_id, []).append(event)
        status = status_after(event)
        if status is not None and execution_id in self._rows:
            n, row = self._rows[execution_id]
            changes: dict[str, Any] = {"status": status}
            if event.type is EventType.EXECUTION_STARTED:
                changes["started_at"] = event.time
            elif status in ("completed", "failed", "cancelled", "rolled_back", "rollback_failed"):
                changes["finished_at"] = event.time
            self._rows[execution_id] = (n, dataclasses.replace(row, **changes))

    async def flush(self) -> None:
        if self._stale:
            message, self._stale = self._stale[0], []
            raise StaleClaim(message)

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]:
        return [e for e in self._events.get(execution_id, ()) if e.seq > after_seq]

    async def execution_ids(self) -> list[str]:
        return list(self._events)

    async def aclose(self) -> None:
        return None

    # -- executions --------------------------------------------------------------------------
    def _insert(self, new: NewExecution) -> None:
        self._n += 1
        self._rows[new.execution_id] = _row(new, self._n)

    async def create_execution(self, new: NewExecution) -> None:
        if new.execution_id in self._rows:
            raise ValueError(f"execution {new.execution_id} exists")
        self._insert(new)
        if new.first_event is not None:
            self._events.setdefault(new.execution_id, []).append(new.first_event)

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        found = self._rows.get(execution_id)
        return None if found is None else found[1]

    async def list_executions(self, query: ExecutionQuery) -> Page:
        picked: list[tuple[int, ExecutionRow]] = []
        for n, row in sorted(self._rows.values(), key=lambda pair: -pair[0]):
            if query.cursor is not None and n >= query.cursor:
                continue
            if query.statuses and row.status not in query.statuses:
                continue
            if query.workflow and query.workflow not in (row.workflow_name, row.workflow_id):
                continue
            if query.since is not None and row.created_at < query.since:
                continue
            picked.append((n, row))
            if len(picked) > query.limit:
                break
        more = len(picked) > query.limit
        picked = picked[: query.limit]
        return Page([r for _, r in picked], picked[-1][0] if more and picked else None)

    async def logs(self, execution_id: str, offset: int = 0, limit: int = 1000) -> list[LogLine]:
        lines = [e for e in self._events.get(execution_id, ()) if e.type is EventType.LOG]
        return [
            LogLine(
                offset=i,
                time=e.time,
                step=e.step,
                item=e.item,
                stream=str(e.data.get("stream", "")),
                line=str(e.data.get("line", "")),
            )
            for i, e in enumerate(lines[offset : offset + limit], start=offset)
        ]

    async def transition(
        self, execution_id: str, allowed: Iterable[str], to: str, events: Iterable[Event] = ()
    ) -> bool:
        found = self._rows.get(execution_id)
        if found is None or found[1].status not in set(allowed):
            return False
        n, row = found
        self._rows[execution_id] = (n, dataclasses.replace(row, status=to))
        for event in events:
            self.append(execution_id, event)
        return True

    async def request_cancel(self, execution_id: str) -> None:
        found = self._rows.get(execution_id)
        if found is not None:
            self._rows[execution_id] = (found[0], dataclasses.replace(found[1], cancel_requested=True))

    async def cancel_requested(self, execution_ids: Iterable[str]) -> set[str]:
        return {i for i in execution_ids if i in self._rows and self._rows[i][1].cancel_requested}

    # -- queue and agents --------------------------------------------------------------------
    async def claim(
        self,
        agent_id: str,
        *,
        now: float,
        lease_seconds: float = 30.0,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> Claim | None:
        claims = await self.claim_batch(
            agent_id, now=now, limit=1, lease_seconds=lease_seconds, labels=labels, aging_rate=aging_rate
        )
        return claims[0] if claims else None

    async def claim_batch(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = 30.0,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> list[Claim]:
        mine = labels or {}
        eligible = sorted(
            (
                (scheduler.order_key(row.priority, row.created_at, n, aging_rate), n, row)
                for n, row in self._rows.values()
                if row.status == "pending"
                and scheduler.due(row.not_before, now)
                and scheduler.eligible(row.labels, mine)
            ),
            key=lambda t: t[0],
        )
        claims = []
        for _, n, row in eligible[:limit]:
            row = dataclasses.replace(
                row,
                status="running",
                agent_id=agent_id,
                attempt=row.attempt + 1,
                lease_until=now + lease_seconds,
            )
            self._rows[row.execution_id] = (n, row)
            history = tuple(self._events.get(row.execution_id, ()))
            claims.append(
                Claim(row=row, attempt=row.attempt, lease_until=now + lease_seconds, history=history)
            )
        return claims

    async def heartbeat(self, agent_id: str, *, now: float, state: str, lease_seconds: float = 30.0) -> None:
        agent = self._agents.get(agent_id)
        if agent is not None:
            self._agents[agent_id] = dataclasses.replace(agent, heartbeat_at=now, state=state)
        for execution_id, (n, row) in list(self._rows.items()):
            if row.agent_id == agent_id and row.status in ("running", "rolling_back"):
                self._rows[execution_id] = (n, dataclasses.replace(row, lease_until=now + lease_seconds))

    async def reclaim(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = LEASE_SECONDS,
        own: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> list[Claim]:
        mine = labels or {}
        eligible = sorted(
            (
                (-row.priority, n, row)
                for n, row in self._rows.values()
                if row.status in ("running", "rolling_back")
                and row.lease_until is not None
                and (row.lease_until < now or (own and row.agent_id == agent_id))
                and scheduler.eligible(row.labels, mine)
            ),
            key=lambda t: (t[0], t[1]),
        )
        claims = []
        for _, n, row in eligible[:limit]:
            row = dataclasses.replace(
                row, agent_id=agent_id, attempt=row.attempt + 1, lease_until=now + lease_seconds
            )
            self._rows[row.execution_id] = (n, row)
            history = tuple(self._events.get(row.execution_id, ()))
            claims.append(
                Claim(row=row, attempt=row.attempt, lease_until=now + lease_seconds, history=history)
            )
        return claims

    async def release(self, execution_id: str, attempt: int) -> bool:
        found = self._rows.get(execution_id)
        if found is None or found[1].attempt != attempt or found[1].status != "running":
            return False
        n, row = found
        self._rows[execution_id] = (
            n,
            dataclasses.replace(row, status="pending", agent_id=None, lease_until=None),
        )
        return True

    async def release_for_takeover(self, execution_id: str, attempt: int) -> bool:
        found = self._rows.get(execution_id)
        if found is None or found[1].attempt != attempt or found[1].status not in ("running", "rolling_back"):
            return False
        n, row = found
        self._rows[execution_id] = (n, dataclasses.replace(row, agent_id=None, lease_until=EXPIRED))
        return True

    async def prune(self, *, finished_before: float) -> int:
        gone = [
            eid
            for eid, (_, row) in self._rows.items()
            if row.status in TERMINAL and row.finished_at is not None and row.finished_at < finished_before
        ]
        for eid in gone:
            del self._rows[eid]
            self._events.pop(eid, None)
        return len(gone)

    async def register_agent(self, agent: AgentInfo) -> None:
        self._agents[agent.agent_id] = agent

    async def list_agents(self) -> list[AgentInfo]:
        return sorted(self._agents.values(), key=lambda a: a.agent_id)

    async def request_agent(self, agent_id: str, request: str, *, states: Iterable[str]) -> bool:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state not in set(states):
            return False
        self._agents[agent_id] = dataclasses.replace(agent, requested=request)
        return True

    async def clear_request(self, agent_id: str, request: str) -> None:
        agent = self._agents.get(agent_id)
        if agent is not None and agent.requested == request:
            self._agents[agent_id] = dataclasses.replace(agent, requested=None)

    async def fail_stale_agents(self, *, now: float, stale_after: float) -> list[str]:
        marked = []
        for agent in list(self._agents.values()):
            if agent.state in scheduler.LIVE_STATES and scheduler.is_stale(
                agent.heartbeat_at, now, stale_after
            ):
                self._agents[agent.agent_id] = dataclasses.replace(agent, state="failed")
                marked.append(agent.agent_id)
        return marked

    async def queue_depth(self) -> dict[str, int]:
        depth = {str(b): 0 for b in Band}
        for _, row in self._rows.values():
            if row.status == "pending":
                depth[str(Band.of(row.priority))] += 1
        return depth
