"""The conductor: which step runs next, and what rollback must undo. No I/O.

Like orquesta's conductor, this decides and the host acts: the trio runner reports each step
that finishes and carries out the commands returned. Bookkeeping is incremental (a count of
unfinished needs per step), so a 10,000-step chain costs O(1) per step, and replaying an event
log through the same methods rebuilds the same decisions after a crash.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from wpk.adapters import registry
from wpk.adapters.base import Inverse

from .model import RollbackMode, Step, Workflow
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


class CompensationKind(enum.StrEnum):
    BODY = "body"  # the step's explicit `rollback:` body
    INVERSE = "inverse"  # the adapter's automatic inverse
    IMPOSSIBLE = "impossible"  # a write with no inverse and no body: reported, not hidden


@dataclass(frozen=True, slots=True)
class Compensation:
    step_id: str
    kind: CompensationKind
    items: tuple[int, ...] = ()  # for_each items to undo, last completed first

    def describe(self, step: Step) -> str:
        if self.kind is CompensationKind.BODY and step.rollback_body is not None:
            return f"run {step.rollback_body.uses}"
        if self.kind is CompensationKind.INVERSE:
            return f"undo {step.call.uses} (automatic inverse)"
        return f"cannot undo {step.call.uses}: no automatic inverse and no `rollback:` body"


def _needs_compensation(step: Step, read_only: bool) -> CompensationKind | None:
    if step.rollback_mode is RollbackMode.NONE:
        return None
    if step.rollback_mode is RollbackMode.BODY:
        return CompensationKind.BODY
    info = registry.action_info(step.call.uses)
    if read_only or info is None or info.inverse is Inverse.NOT_NEEDED:
        return None
    if info.inverse is Inverse.AUTO:
        return CompensationKind.INVERSE
    # `dry_run: execute` declares the step harmless enough to run during a dry-run: a read in
    # all but name, so there is nothing to undo (the validator reads it the same way).
    return None if step.dry_run == "execute" else CompensationKind.IMPOSSIBLE


def compensation_plan(
    workflow: Workflow, state: ExecutionState, *, statuses: Iterable[StepStatus] = (StepStatus.COMPLETED,)
) -> list[Compensation]:
    """Completed main steps to undo, in reverse completion order.

    A dependant always completes after the steps it needs, so reverse completion order never
    undoes a step before one that depends on it. Steps already compensated are left out, which
    makes a second rollback of the same execution a no-op. A failed `for_each` step still has
    its completed items undone: those changes happened.
    """
    wanted = set(statuses)
    item_done = wanted & {StepStatus.COMPLETED, StepStatus.SIMULATED}  # a dry-run plans simulated items
    candidates = []
    for step in workflow.steps:
        record = state.steps.get(step.id)
        if record is None or record.completed_seq is None:
            continue
        done = (i for i, it in (record.items or {}).items() if it.status in item_done)
        items = tuple(sorted(done, reverse=True))
        if record.status not in wanted and not (record.status is StepStatus.FAILED and items):
            continue
        kind = _needs_compensation(step, record.read_only)
        if kind is None:
            continue
        candidates.append((record.completed_seq, Compensation(step.id, kind, items)))
    candidates.sort(key=lambda pair: pair[0], reverse=True)
    return [c for _, c in candidates]
