"""The execution record, derived from events and nothing else.

`ExecutionState.apply(event)` is a pure reduction step; `reduce(events)` replays a whole log.
The runner feeds the same reducer live, the store and the API replay it, so every view of an
execution agrees. Allowed state transitions are data (`STEP_TRANSITIONS`), not scattered ifs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .events import Event, EventType


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    SIMULATED = "simulated"  # dry-run only: a write that was planned, not done
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


FINISHED = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED,
                      StepStatus.CANCELLED, StepStatus.SIMULATED, StepStatus.COMPENSATED,
                      StepStatus.COMPENSATION_FAILED})  # fmt: skip

S = StepStatus
STEP_TRANSITIONS: frozenset[tuple[StepStatus, StepStatus]] = frozenset({
    (S.PENDING, S.RUNNING), (S.PENDING, S.SKIPPED), (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.RUNNING),  # re-run on resume: its agent was lost while it ran (idempotent or read-only)
    (S.RUNNING, S.COMPLETED), (S.RUNNING, S.FAILED), (S.RUNNING, S.SKIPPED),
    (S.RUNNING, S.CANCELLED), (S.RUNNING, S.SIMULATED),
    (S.COMPLETED, S.COMPENSATING), (S.FAILED, S.COMPENSATING),
    (S.COMPENSATING, S.COMPENSATED), (S.COMPENSATING, S.COMPENSATION_FAILED),
    (S.COMPENSATING, S.COMPENSATING),  # resumed: its agent was lost while it compensated
})  # fmt: skip


_EXECUTION_EVENTS = frozenset({
    EventType.EXECUTION_CREATED, EventType.EXECUTION_STARTED, EventType.EXECUTION_FINISHED,
    EventType.ROLLBACK_STARTED, EventType.ROLLBACK_FINISHED, EventType.EXECUTION_CLOSED,
})  # fmt: skip


class TransitionError(ValueError):
    pass


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class ItemRecord:
    index: int
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    outputs: Any = None
    result: Any = None
    error: str | None = None
    undo: Any = None  # what compensating the item needs (an automatic inverse's record)
    reason: str | None = None  # why it failed, as a step's `reason`

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "status": str(self.status), "attempts": self.attempts,
                "outputs": self.outputs, "error": self.error}  # fmt: skip


@dataclass(slots=True)
class StepRecord:
    id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: Any = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    completed_seq: int | None = None
    read_only: bool = False
    undo: Any = None
    plan: dict[str, Any] | None = None
    items: dict[int, ItemRecord] | None = None
    compensation_error: str | None = None
    compensation_resumed: str | None = None  # a lost agent's compensation, taken over: how

    def move(self, to: StepStatus) -> None:
        if (self.status, to) not in STEP_TRANSITIONS:
            raise TransitionError(f"step {self.id}: {self.status} -> {to} is not allowed")
        self.status = to

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": str(self.status),
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outputs": self.outputs,
            "error": self.error,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.compensation_error:
            out["compensation_error"] = self.compensation_error
        if self.compensation_resumed:
            out["compensation_resumed"] = self.compensation_resumed
        if self.items is not None:
            out["items"] = [self.items[i].as_dict() for i in sorted(self.items)]
        return out


@dataclass(slots=True)
class ExecutionState:
    execution_id: str = ""
    workflow_id: str = ""
    status: ExecutionStatus = ExecutionStatus.PENDING
    dry_run: bool = False
    priority: int = 50
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    current: set[str] = field(default_factory=set)
    completed_count: int = 0
    logs: int = 0
    last_seq: int = 0
    closed: bool = False
    # What rollback does (engine/compensation.py): planned by a dry-run, or carried out by a run.
    rollback_plan: list[dict[str, Any]] | None = None

    def step(self, step_id: str) -> StepRecord:
        record = self.steps.get(step_id)
        if record is None:
            record = self.steps[step_id] = StepRecord(step_id)
        return record

    def apply(self, event: Event) -> None:
        self.last_seq = event.seq
        t = event.type
        if t is EventType.LOG:
            self.logs += 1
            return
        if t in _EXECUTION_EVENTS:
            self._apply_execution(event)
            return
        assert event.step is not None
        record = self.steps.get(event.step) or self.step(event.step)
        if event.item is not None:
            self._apply_item(record, event)
            return
        d = event.data
        if t is EventType.STEP_STARTED:
            record.move(StepStatus.RUNNING)
            record.started_at = event.time
            if "attempt" in d:  # its first attempt began with it (one event, not two)
                record.attempts = int(d["attempt"])
            self.current.add(record.id)
        elif t is EventType.STEP_COMPLETED:
            record.move(StepStatus.COMPLETED)
            record.outputs = d.get("outputs")
            record.result = d.get("result")
            record.undo = d.get("undo")
            record.read_only = bool(d.get("read_only", False))
            record.plan = d.get("plan", record.plan)  # dry-run: inputs, and what is unknown
            record.error = None
            record.finished_at = event.time
            record.completed_seq = event.seq
            self.completed_count += 1
            self.current.discard(record.id)
        elif t is EventType.ATTEMPT_STARTED:
            record.attempts = int(d.get("attempt", record.attempts + 1))
        elif t is EventType.ATTEMPT_FAILED:
            record.error = d.get("error")
        elif t is EventType.STEP_SKIPPED:
            record.move(StepStatus.SKIPPED)
            record.reason = d.get("reason")
            record.finished_at = event.time
            self.current.discard(record.id)
        elif t is EventType.STEP_PLANNED:
            record.move(StepStatus.SIMULATED)
            record.plan = d.get("plan")
            record.outputs = d.get("outputs")
            record.finished_at = event.time
            record.completed_seq = event.seq
            self.current.discard(record.id)
        elif t is EventType.STEP_FAILED:
            record.move(StepStatus.FAILED)
            record.error = d.get("error")
            record.reason = d.get("reason")
            record.undo = d.get("undo", record.undo)
            record.finished_at = event.time
            record.completed_seq = event.seq
            self.current.discard(record.id)
        elif t is EventType.STEP_CANCELLED:
            record.move(StepStatus.CANCELLED)
            record.error = d.get("error", "cancelled")
            record.finished_at = event.time
            self.current.discard(record.id)
        elif t is EventType.COMPENSATION_STARTED:
            record.move(StepStatus.COMPENSATING)
            if d.get("resumed"):
                record.compensation_resumed = d["resumed"]
        elif t is EventType.COMPENSATION_COMPLETED:
            record.move(StepStatus.COMPENSATED)
        elif t is EventType.COMPENSATION_FAILED:
            record.move(StepStatus.COMPENSATION_FAILED)
            record.compensation_error = d.get("error")

    def _apply_execution(self, event: Event) -> None:
        t, d = event.type, event.data
        if t is EventType.EXECUTION_CREATED:
            self.execution_id = d["execution_id"]
            self.workflow_id = d["workflow_id"]
            self.dry_run = bool(d.get("dry_run", False))
            self.priority = int(d.get("priority", 50))
            self.params = dict(d.get("params", {}))
            self.created_at = event.time
            for step_id in d.get("steps", ()):
                self.step(step_id)
            return
        if t is EventType.EXECUTION_STARTED:
            self.status = ExecutionStatus.RUNNING
            self.started_at = event.time
            return
        if t is EventType.EXECUTION_FINISHED:
            self.status = ExecutionStatus(d["status"])
            self.rollback_plan = d.get("rollback_plan", self.rollback_plan)  # dry-run
            self.error = d.get("error")
            self.finished_at = event.time
            return
        if t is EventType.ROLLBACK_STARTED:
            self.status = ExecutionStatus.ROLLING_BACK
            self.rollback_plan = d.get("plan")
            return
        if t is EventType.ROLLBACK_FINISHED:
            self.status = ExecutionStatus(d["status"])
            if d.get("error"):
                self.error = f"{self.error}; {d['error']}" if self.error else d["error"]
            self.finished_at = event.time
            return
        if t is EventType.EXECUTION_CLOSED:
            if "status" in d:
                self.status = ExecutionStatus(d["status"])
            if d.get("error") and not self.error:
                self.error = d["error"]
            self.finished_at = event.time
            self.closed = True

    def _apply_item(self, record: StepRecord, event: Event) -> None:
        assert event.item is not None
        if record.items is None:
            record.items = {}
        item = record.items.get(event.item)
        if item is None:
            item = record.items[event.item] = ItemRecord(event.item)
        t, d = event.type, event.data
        if t is EventType.ATTEMPT_STARTED:
            item.status = StepStatus.RUNNING
            item.attempts = int(d.get("attempt", item.attempts + 1))
            record.attempts = max(record.attempts, item.attempts)
        elif t is EventType.ATTEMPT_FAILED:
            item.error = d.get("error")
            item.reason = d.get("reason", item.reason)
        elif t is EventType.ITEM_COMPLETED:
            item.status = StepStatus.COMPLETED
            item.outputs = d.get("outputs")
            item.result = d.get("result")
            item.undo = d.get("undo")
            item.error = None
        elif t is EventType.ITEM_FAILED:
            item.status = StepStatus.FAILED
            item.error = d.get("error")
            item.reason = d.get("reason", item.reason)
        elif t is EventType.STEP_PLANNED:
            item.status = StepStatus.SIMULATED
        elif t is EventType.COMPENSATION_STARTED:
            item.status = StepStatus.COMPENSATING
        elif t is EventType.COMPENSATION_COMPLETED:
            item.status = StepStatus.COMPENSATED
        elif t is EventType.COMPENSATION_FAILED:
            item.status = StepStatus.COMPENSATION_FAILED
            item.error = d.get("error")

    def as_dict(self) -> dict[str, Any]:
        """The execution record: the shape of `GET /execute/{id}` and `wpk run --format json`."""
        current = sorted(self.current)
        return {
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "status": str(self.status),
            "priority": self.priority,
            "dry_run": self.dry_run,
            "current_step": current[0] if current else None,
            "steps_completed": self.completed_count,
            "steps": [r.as_dict() for r in self.steps.values()],
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
        }


def reduce(events: Iterable[Event]) -> ExecutionState:
    state = ExecutionState()
    for event in events:
        state.apply(event)
    return state
