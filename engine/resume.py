"""Where a resumed execution picks up (DESIGN §5): read from the events a claim hands over.

An agent that takes an execution over (its previous agent died, or restarted) replays the
recorded events into a fresh runner; this module says which phase the execution was in and
what may run again. The rule: a completed step never runs again; a step that was running when
its agent was lost runs again only when that is safe (the action reads only, or the step says
`idempotent: true`), else it fails as "agent lost, outcome unknown" and the rollback policy
applies. A `for_each` step follows the rule item by item (`Runner._resumed_items`). A rollback
resumes where it stopped: the compensation under way runs again when repeating it is harmless
(`compensation.rerun_reason`: an idempotent step, an adapter's idempotent inverse, an
idempotent `rollback:` call), else it fails as "agent lost, outcome unknown"; the rest runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .events import Event, EventType
from .state import ExecutionStatus

LOST_STEP_ERROR = "agent lost, outcome unknown: the agent running this step ended before it finished"
LOST_COMPENSATION_ERROR = (
    "agent lost, outcome unknown: the agent running this compensation ended before it finished"
)
REDACTED_INPUT_ERROR = (
    "agent lost: this step needs an output that the store keeps redacted (it holds a secret), and "
    "the step that produced it cannot be re-run safely (it is not read-only): resubmit the execution"
)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """The phases an execution's events show as done."""

    started: bool = False
    finished: ExecutionStatus | None = None  # the main phase's outcome, once recorded
    finished_error: str | None = None
    rollback_started: bool = False
    rollback_finished: ExecutionStatus | None = None
    closed: bool = False

    @classmethod
    def of(cls, history: Sequence[Event]) -> ResumePoint:
        started = closed = rollback_started = False
        finished = rollback_finished = None
        finished_error = None
        for e in history:
            t = e.type
            if t is EventType.EXECUTION_STARTED:
                started = True
            elif t is EventType.EXECUTION_FINISHED and "status" in e.data:
                finished = ExecutionStatus(e.data["status"])
                finished_error = e.data.get("error")
            elif t is EventType.ROLLBACK_STARTED:
                rollback_started = True
            elif t is EventType.ROLLBACK_FINISHED and "status" in e.data:
                rollback_finished = ExecutionStatus(e.data["status"])
            elif t is EventType.EXECUTION_CLOSED:
                closed = True
        return cls(started, finished, finished_error, rollback_started, rollback_finished, closed)


__all__ = ["LOST_COMPENSATION_ERROR", "LOST_STEP_ERROR", "REDACTED_INPUT_ERROR", "ResumePoint"]
