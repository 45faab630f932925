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


@dataclass(slots=True)
class Conductor:
    workflow: Workflow
    waiting: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)  # step -> why it must be skipped
    finished: int = 0
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.waiting = {s.id: len(s.needs) for s in self.workflow.steps}

    @property
    def done(self) -> bool:
        return self.finished == len(self.workflow.steps)

    def initial(self) -> list[Command]:
        return [StartStep(s.id) for s in self.workflow.steps if not s.needs]

    def on_finished(self, step_id: str, status: StepStatus) -> list[Command]:
        """A main step reached a final status; return the steps this unblocks."""
        self.finished += 1
        step = self.workflow.step(step_id)
        blocking: str | None = None
        if status is StepStatus.FAILED and not step.continue_on_error:
            self.failures.append(step_id)
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
                why = self.blocked.get(successor)
                commands.append(SkipStep(successor, why) if why else StartStep(successor))
        return commands

    def pending(self, state: ExecutionState) -> list[str]:
        """Main steps that never started (after a cancel or timeout)."""
        return [s.id for s in self.workflow.steps if state.step(s.id).status is StepStatus.PENDING]
