"""Events: the only source of truth about an execution.

Everything that happens is appended as an `Event`; status, per-step records, logs and the plan
are all derived from the event list (`state.reduce`). Event types are an enum, never strings
built by concatenation; payloads are JSON-serialisable and already redacted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class EventType(enum.StrEnum):
    EXECUTION_CREATED = "execution_created"
    EXECUTION_STARTED = "execution_started"
    # A plain main step's first attempt begins with it: its STEP_STARTED carries `attempt: 1`
    # and no ATTEMPT_STARTED follows (one event fewer per step). Retries, `for_each` items and
    # steps that begin with a condition or a wait record every attempt as ATTEMPT_STARTED.
    STEP_STARTED = "step_started"
    STEP_SKIPPED = "step_skipped"
    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_FAILED = "attempt_failed"
    LOG = "log"
    STEP_PLANNED = "step_planned"  # dry-run: a write that was simulated
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_CANCELLED = "step_cancelled"
    ITEM_COMPLETED = "item_completed"
    ITEM_FAILED = "item_failed"
    EXECUTION_FINISHED = "execution_finished"  # main phase over: completed | failed | cancelled
    ROLLBACK_STARTED = "rollback_started"
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_COMPLETED = "compensation_completed"
    COMPENSATION_FAILED = "compensation_failed"
    ROLLBACK_FINISHED = "rollback_finished"  # rolled_back | rollback_failed
    EXECUTION_CLOSED = "execution_closed"  # everything, finally steps included, is over


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: EventType
    time: float
    step: str | None = None
    item: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "type": str(self.type), "time": self.time}
        if self.step is not None:
            out["step"] = self.step
        if self.item is not None:
            out["item"] = self.item
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(
            seq=int(raw["seq"]),
            type=EventType(raw["type"]),
            time=float(raw["time"]),
            step=raw.get("step"),
            item=raw.get("item"),
            data=dict(raw.get("data", {})),
        )
