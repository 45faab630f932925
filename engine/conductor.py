"""The conductor: which step runs next. No I/O (what rollback undoes: `compensation.py`).

Like orquesta's conductor, this decides and the host acts: the trio runner reports each step
that finishes and carries out the commands returned. Bookkeeping is incremental (a count of
unfinished needs per step), so a 10,000-step chain costs O(1) per step, and replaying an event
log through the same methods rebuilds the same decisions after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Workflow
from .state import ExecutionState, StepStatus


@dataclass(frozen=True, slots=True)
class StartStep:
    step_id: str


@dataclass(frozen=True, slots=True)
class SkipStep:
    step_id: str
    reason: str


Command = StartStep | SkipStep


def not_started_reason(step_id: str) -> str:
    """Why fail-fast left a step or item unstarted: the words the record and the plan show."""
    return f"not started: the run failed at step {step_id!r} (fail_fast)"


@dataclass(slots=True)
class Conductor:
    """Decides what starts next. With `fail_fast` (the default) the first failure halts the run:
    every later decision is a skip, and the runner asks `stop_reason()` before any attempt or
    `for_each` item begins, so a step already dispatched but still waiting for a slot never runs.
    """

    workflow: Workflow
    waiting: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)  # step -> why it must be skipped
    finished: int = 0
    failures: list[str] = field(default_factory=list)  # failed steps, the first cause first
    halted_by: str | None = None  # the failure that stopped new work (fail_fast)

    def __post_init__(self) -> None:
        self.waiting = {s.id: len(s.needs) for s in self.workflow.steps}

    @property
    def done(self) -> bool:
        return self.finished == len(self.workflow.steps)

    def initial(self) -> list[Command]:
        return [StartStep(s.id) for s in self.workflow.steps if not s.needs]

    def failed(self, step_id: str) -> None:
        """A main step has failed (or its rollout passed `max_failures`), `continue_on_error` unset.

        Called as soon as the failure is certain, before the step's running items finish, so
        nothing new starts meanwhile.
        """
        if step_id not in self.failures:
            self.failures.append(step_id)
        if self.workflow.fail_fast and self.halted_by is None:
            self.halted_by = step_id

    def stop_reason(self) -> str | None:
        """Why no new step or item may start now, or None while the run goes on."""
        return not_started_reason(self.halted_by) if self.halted_by is not None else None

    def on_finished(self, step_id: str, status: StepStatus) -> list[Command]:
        """A main step reached a final status; return the steps this unblocks."""
        self.finished += 1
        step = self.workflow.step(step_id)
        blocking: str | None = None
        if status is StepStatus.FAILED and not step.continue_on_error:
            self.failed(step_id)
            blocking = f"upstream step {step_id!r} failed"
        elif status is StepStatus.CANCELLED:
            blocking = f"upstream step {step_id!r} was cancelled"
        elif status is StepStatus.SKIPPED and step_id in self.blocked:
            blocking = self.blocked[step_id]
        commands: list[Command] = []
        for successor in self.workflow.successors.get(step_id, ()):
            if blocking and successor not in self.blocked:
                self.blocked[successor] = blocking
            self.waiting[successor] -= 1
            if self.waiting[successor] == 0:
                why = self.blocked.get(successor) or self.stop_reason()
                commands.append(SkipStep(successor, why) if why else StartStep(successor))
        return commands

    def pending(self, state: ExecutionState) -> list[str]:
        """Main steps that never started (after a cancel or timeout)."""
        return [s.id for s in self.workflow.steps if state.step(s.id).status is StepStatus.PENDING]
