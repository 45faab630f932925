"""The store contract: executions as rows, each with an append-only event log.

An execution is created as a row (`NewExecution`: what to run, with which parameters and
priority) together with its first event; everything after that is an appended event. The row's
`status` is a summary kept in step with the events (`status_after`) so the queue and the listing
can filter on it; the execution *record* is always `state.reduce(events)`.

The runner appends without blocking the trio loop (`append` buffers) and calls `flush` before
every side effect, so a durable store writes the step ledger before the effect happens
(SECURITY.md rule 5). The queue is the store (DESIGN §6): `claim` atomically hands the
highest-priority pending execution (FIFO within a priority) to one agent, with an attempt number
that is the fencing token; `heartbeat` renews the leases an agent holds. `heartbeat` renews the leases of
everything an agent holds; an execution whose lease ran out is claimed again (`reclaim`) under a
new attempt number, and a store refuses writes carrying an older one (`fence`, `StaleClaim`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..events import Event, EventType

TERMINAL = frozenset({"completed", "failed", "cancelled", "rolled_back", "rollback_failed"})
ROLLBACK_ALLOWED = frozenset({"completed", "failed", "cancelled"})
LEASE_SECONDS = 30.0
EXPIRED = 0.0  # the lease of an execution handed over (`release_for_takeover`): over for any `now`


class Band(enum.StrEnum):
    """Priority bands for the queue-depth metric: a bounded label over 0..100."""

    LOW = "low"  # 0..29
    NORMAL = "normal"  # 30..69
    HIGH = "high"  # 70..100

    @classmethod
    def of(cls, priority: int) -> Band:
        return cls.LOW if priority < 30 else cls.NORMAL if priority < 70 else cls.HIGH


@dataclass(frozen=True, slots=True, kw_only=True)
class NewExecution:
    """A submission: what the queue needs to hand the execution to an agent later.

    `package` is the runbook text as submitted (compiled again, from a digest cache, by the
    agent); `params` are the resolved parameter values (secrets are never parameters and are
    never stored: the agent resolves them when it runs the execution).
    """

    execution_id: str
    workflow_name: str
    workflow_version: str
    package: str | None
    package_path: str
    params: Mapping[str, Any]
    priority: int
    dry_run: bool
    created_at: float
    status: str = "pending"  # `wpk run` creates its execution already running
    rollback: bool = True
    not_before: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    first_event: Event | None = None  # the EXECUTION_CREATED event, stored with the row
    agent_id: str | None = None  # who runs it from the start: a local `wpk run` (engine/recovery.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRow:
    execution_id: str
    workflow_name: str
    workflow_version: str
    status: str
    priority: int
    dry_run: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    package: str | None
    package_path: str
    params: dict[str, Any]
    rollback: bool
    agent_id: str | None
    attempt: int
    lease_until: float | None
    cancel_requested: bool
    not_before: float | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def workflow_id(self) -> str:
        return f"{self.workflow_name}-{self.workflow_version}"

    def summary(self) -> dict[str, Any]:
        """One line of `GET /executions` and `wpk executions list`."""
        from ..state import iso

        return {
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "status": self.status,
            "priority": self.priority,
            "dry_run": self.dry_run,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """An execution handed to one agent; `attempt` is the fencing token of this claim."""

    row: ExecutionRow
    attempt: int
    lease_until: float
    history: tuple[Event, ...] = ()  # the execution's events so far, read in the same transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionQuery:
    statuses: tuple[str, ...] = ()
    workflow: str | None = None  # a workflow name, or name-version
    since: float | None = None  # created at or after
    limit: int = 50
    cursor: int | None = None  # from the previous page's `next`


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[ExecutionRow]
    next: int | None  # pass back as `cursor` for the next (older) page; None: no more


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    offset: int  # 0-based index among the execution's log lines: `?offset=` resumes after it
    time: float
    step: str | None
    item: int | None
    stream: str
    line: str

    def as_dict(self) -> dict[str, Any]:
        from ..state import iso

        return {
            "offset": self.offset,
            "time": iso(self.time),
            "step": self.step,
            "item": self.item,
            "stream": self.stream,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    """An agent as registered in the store (the lifecycle and failover come with the agents work)."""

    agent_id: str
    labels: dict[str, str]
    capacity: int
    version: str
    state: str  # created | running | paused | stopped | failed
    heartbeat_at: float
    started_at: float
    adapters: tuple[str, ...] = ()
    requested: str | None = None  # pause | resume | drain, asked through the store, not yet applied

    def as_dict(self) -> dict[str, Any]:
        from ..state import iso

        return {
            "agent_id": self.agent_id,
            "labels": self.labels,
            "capacity": self.capacity,
            "version": self.version,
            "state": self.state,
            "heartbeat_at": iso(self.heartbeat_at),
            "started_at": iso(self.started_at),
            "adapters": list(self.adapters),
            "requested": self.requested,
        }


def status_after(event: Event) -> str | None:
    """The row status an event moves an execution to.

    The row reaches a final status only when the execution is over (EXECUTION_CLOSED, which
    a manual rollback records too): between the end of the main phase and the end of rollback
    and `finally` steps it stays `running` or `rolling_back`, so whoever polls the row (a log
    follower, `submit --wait`, the queue) never takes a pause between phases for the end.
    """
    t, d = event.type, event.data
    if t is EventType.EXECUTION_STARTED:
        return "running"
    if t is EventType.ROLLBACK_STARTED:
        return "rolling_back"
    if t is EventType.EXECUTION_CLOSED and "status" in d:
        return str(d["status"])
    return None


def row_from_created(event: Event) -> NewExecution:
    """A row for an execution whose creation was only recorded as an event (a bare `Runner`)."""
    d = event.data
    name, _, version = str(d["workflow_id"]).rpartition("-")
    return NewExecution(
        execution_id=str(d["execution_id"]),
        workflow_name=name,
        workflow_version=version,
        package=None,
        package_path="",
        params=dict(d.get("params", {})),
        priority=int(d.get("priority", 50)),
        dry_run=bool(d.get("dry_run", False)),
        created_at=event.time,
    )


@runtime_checkable
class EventStore(Protocol):
    """What the runner needs: append (buffered), flush, replay."""

    def append(self, execution_id: str, event: Event) -> None: ...

    async def flush(self) -> None: ...

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]: ...

    async def execution_ids(self) -> list[str]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ExecutionStore(EventStore, Protocol):
    """The whole contract: what the agent loop, the sidecar and `wpk executions` use."""

    async def create_execution(self, new: NewExecution) -> None: ...

    async def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    async def list_executions(self, query: ExecutionQuery) -> Page: ...

    async def logs(self, execution_id: str, offset: int = 0, limit: int = 1000) -> list[LogLine]: ...

    async def transition(
        self, execution_id: str, allowed: Iterable[str], to: str, events: Iterable[Event] = ()
    ) -> bool:
        """Compare-and-set of the row status, with events appended in the same transaction."""
        ...

    async def request_cancel(self, execution_id: str) -> None: ...

    async def cancel_requested(self, execution_ids: Iterable[str]) -> set[str]: ...

    async def claim(
        self,
        agent_id: str,
        *,
        now: float,
        lease_seconds: float = LEASE_SECONDS,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> Claim | None: ...

    async def claim_batch(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = LEASE_SECONDS,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> list[Claim]:
        """Up to `limit` claims in one transaction, in claim order (an agent with free capacity).

        Only executions the agent is eligible for (`scheduler.eligible` of the execution's
        placement labels and the agent's `labels`) and that are due (`not_before`), ordered by
        `scheduler.order_key` with the agent's `aging_rate` (priority points per minute)."""
        ...

    async def heartbeat(
        self, agent_id: str, *, now: float, state: str, lease_seconds: float = LEASE_SECONDS
    ) -> None: ...

    async def release(self, execution_id: str, attempt: int) -> bool:
        """Give a claimed execution back to the queue (its lease dropped), if the claim is still
        this one (`attempt` is the fencing token): what a draining agent does with work it never
        started. Resuming a started execution is the durable-store work."""
        ...

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
        """The resume queue (DESIGN §5): started executions (`running`, `rolling_back`) whose lease
        ran out, or with `own` also those `agent_id` held before it restarted, claimed under a new
        attempt number (the old holder's writes are refused from then on). Only executions the
        agent's `labels` allow (`scheduler.eligible`, as for `claim_batch`): an execution placed
        on `cluster=prod-eu` is never taken over by an agent elsewhere. Local `wpk run`
        executions hold no lease and are never taken over."""
        ...

    async def release_for_takeover(self, execution_id: str, attempt: int) -> bool:
        """Hand a started execution over now, as it stands: its lease ends at once (and no agent
        holds it, so no heartbeat renews it), so the next `reclaim` of any eligible agent takes
        it over and resumes it from its events. The status and the events stay as they are.
        Only if the claim is still `attempt` (the fencing token) and the execution is `running`
        or `rolling_back`: what an agent shutting down does with what outlived its grace period."""
        ...

    def fence(self, execution_id: str, attempt: int | None) -> None:
        """From now on this store's writes for `execution_id` carry `attempt` as fencing token: a
        flush is refused (`StaleClaim`) once another claim has a newer attempt. None: no token."""
        ...

    async def prune(self, *, finished_before: float) -> int:
        """Delete executions that ended before `finished_before` (rows, events, logs): retention.
        Returns how many went. Running, pending and rolling-back executions are never touched."""
        ...

    async def register_agent(self, agent: AgentInfo) -> None: ...

    async def list_agents(self) -> list[AgentInfo]: ...

    async def request_agent(self, agent_id: str, request: str, *, states: Iterable[str]) -> bool:
        """Record a control request (pause, resume, drain) for an agent if its state is one of
        `states` (compare-and-set); the agent applies it at its next heartbeat."""
        ...

    async def clear_request(self, agent_id: str, request: str) -> None:
        """The agent applied `request`: forget it, unless another request replaced it meanwhile."""
        ...

    async def fail_stale_agents(self, *, now: float, stale_after: float) -> list[str]:
        """Mark `failed` every live agent (created, running, paused) whose last heartbeat is older
        than `stale_after` seconds; the ids marked. Their executions are taken over once their
        leases expire (the claim's business, DESIGN §5)."""
        ...

    async def queue_depth(self) -> dict[str, int]: ...


class UnknownStore(ValueError):
    pass


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked, full, corrupt): one clear line, no traceback."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used at all: unreachable, refused credentials, a server error."""


class StaleClaim(StoreError):
    """A write carries a fencing token (attempt number) that is no longer the execution's claim:
    another agent took the execution over after this one's lease ran out. The write is refused."""


def decode_labels(raw: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}


def stale_message(execution_id: str, attempt: int) -> str:
    return (
        f"execution {execution_id}: claimed by another agent since attempt {attempt} "
        "(this agent's lease ran out); its writes are refused"
    )


def store_error_in(exc: BaseException) -> StoreError | None:
    """The store failure behind `exc`, also when trio wrapped it in an exception group."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = store_error_in(inner)
            if found is not None:
                return found
    return None
