"""The rollback plan: what undoing an execution does, step by step, in the order it is done.

One function, `plan_rollback`, serves both the rollback and the dry-run's rollback plan, so the
plan a user reads before a run is the list the rollback later carries out: the same selection,
the same order (reverse completion order; a `for_each` step's items last-first), the same words.
Each entry is an `Undo`: the step's explicit `rollback:` body rendered, the adapter's concrete
automatic inverse ("scale Deployment shop/web back to 2 replicas"), a write that cannot be undone,
or "nothing to undo" and why. The words come from a `describe` callback the runner provides (it
holds the scope to render bodies and the adapters' recorded inverses); this module does no I/O.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wpk.adapters import registry
from wpk.adapters.base import Inverse

from .model import RollbackMode, Step, Workflow
from .state import ExecutionState, StepRecord, StepStatus


class UndoKind(enum.StrEnum):
    BODY = "body"  # the step's explicit `rollback:` body
    INVERSE = "inverse"  # the adapter's automatic inverse
    IMPOSSIBLE = "impossible"  # a write with no inverse and no body: reported, never hidden
    NOTHING = "nothing"  # nothing to undo (read-only, `rollback: none`, no lasting effect)
    ROLLBACK_STEP = "rollback-step"  # one of `spec.rollback.steps`, after the compensations


ACTING = frozenset({UndoKind.BODY, UndoKind.INVERSE, UndoKind.IMPOSSIBLE})


@dataclass(frozen=True, slots=True, kw_only=True)
class Undo:
    """One line of the rollback plan."""

    step: str
    kind: UndoKind
    action: str  # what is done, in concrete words
    item: int | None = None  # the `for_each` item, when the step has items
    conditional: bool = False  # the step has a `when`: undone only if it ran
    note: str | None = None  # e.g. that a value was read during the dry-run

    @property
    def acts(self) -> bool:
        """Whether carrying this entry out does something (or reports a write left undone)."""
        return self.kind in ACTING

    @property
    def label(self) -> str:
        return self.step if self.item is None else f"{self.step}[{self.item}]"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "kind": str(self.kind), "action": self.action}
        if self.item is not None:
            out["item"] = self.item
        if self.conditional:
            out["conditional"] = True
        if self.note:
            out["note"] = self.note
        return out

    def text(self) -> str:
        extra = " (if it ran)" if self.conditional else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.label}: {self.action}{note}{extra}"


def undo_text(entry: Mapping[str, Any]) -> str:
    """The text line of an `Undo.as_dict()` (the JSON plan and the text plan say the same)."""
    undo = Undo(
        step=str(entry["step"]),
        kind=UndoKind(entry["kind"]),
        action=str(entry["action"]),
        item=entry.get("item"),
        conditional=bool(entry.get("conditional")),
        note=entry.get("note"),
    )
    return undo.text()


Describe = Callable[[Step, UndoKind, "int | None"], str]
"""`describe(step, kind, item)`: the concrete words for a BODY, INVERSE or ROLLBACK_STEP entry."""


def undo_kind(step: Step, read_only: bool) -> tuple[UndoKind, str | None]:
    """How a finished step is undone, and (for NOTHING) why there is nothing to undo."""
    if step.rollback_mode is RollbackMode.NONE:
        return UndoKind.NOTHING, "nothing to undo: the step says `rollback: none`"
    if step.rollback_mode is RollbackMode.BODY:
        return UndoKind.BODY, None
    info = registry.action_info(step.call.uses)
    if read_only or (info is not None and info.read_only):
        return UndoKind.NOTHING, "nothing to undo: read-only"
    if info is None:
        return UndoKind.IMPOSSIBLE, None
    if info.inverse is Inverse.NOT_NEEDED:
        return UndoKind.NOTHING, f"nothing to undo: {step.call.uses} leaves no lasting change"
    if info.inverse is Inverse.AUTO:
        return UndoKind.INVERSE, None
    # `dry_run: execute` declares the step harmless enough to run during a dry-run: a read in
    # all but name, so there is nothing to undo (the validator reads it the same way).
    if step.dry_run == "execute":
        return UndoKind.NOTHING, "nothing to undo: `dry_run: execute` declares it harmless"
    return UndoKind.IMPOSSIBLE, None


def impossible_text(step: Step) -> str:
    return (
        f"cannot undo {step.call.uses}: it has no automatic inverse and the step has no "
        "`rollback:` body (the execution ends rollback_failed)"
    )


def rerun_reason(step: Step, kind: UndoKind, body_inputs: Mapping[str, Any] | None) -> str | None:
    """Why a compensation its lost agent left under way may run again; None if it may not.

    Running it again must be harmless whatever the first run did (docs/stores.md, crash
    recovery): the step says `idempotent: true`; or its adapter declares the automatic inverse
    idempotent (it deletes what was created, puts back a recorded object or replica count); or
    the `rollback:` body's call is idempotent with these inputs (a read, an HTTP PUT or DELETE,
    a server-side apply; never a shell command unless the step says so). A write that cannot
    be undone changes nothing, so reporting it again is harmless too.
    """
    if step.idempotent:
        return "the step says `idempotent: true`"
    if kind is UndoKind.IMPOSSIBLE:
        return "it changes nothing"
    if kind is UndoKind.INVERSE:
        info = registry.action_info(step.call.uses)
        if info is not None and info.inverse_idempotent:
            return f"the inverse of {step.call.uses} is idempotent"
        return None
    body = step.rollback_body
    if kind is UndoKind.BODY and body is not None and body_inputs is not None:
        info = registry.action_info(body.uses)
        if info is not None and info.is_idempotent(body_inputs):
            return f"{body.uses} is idempotent with these inputs"
    return None


def _items(record: StepRecord, done: frozenset[StepStatus]) -> tuple[int, ...]:
    """The items of a `for_each` step to undo, last first."""
    if record.status is StepStatus.SIMULATED:
        planned = (record.plan or {}).get("items")
        return tuple(range(len(planned) - 1, -1, -1)) if isinstance(planned, list) else ()
    return tuple(sorted((i for i, it in (record.items or {}).items() if it.status in done), reverse=True))


def plan_rollback(
    workflow: Workflow,
    state: ExecutionState,
    describe: Describe,
    *,
    statuses: Iterable[StepStatus] = (StepStatus.COMPLETED,),
    note: Callable[[Step, UndoKind, int | None], str | None] | None = None,
) -> list[Undo]:
    """Every finished main step in reverse completion order, with what undoing it means.

    A dependant always completes after the steps it needs, so reverse completion order never
    undoes a step before one that depends on it. Steps already compensated are left out, which
    makes a second rollback of the same execution a no-op. A failed `for_each` step still has
    its completed items undone: those changes happened. `spec.rollback.steps` come last. A
    resumed rollback passes COMPENSATING too: the step its lost agent was undoing comes first,
    with only its items not yet undone (the one under way included).
    """
    wanted = frozenset(statuses)
    done_items = frozenset({StepStatus.COMPLETED, StepStatus.SIMULATED, StepStatus.COMPENSATING})
    candidates: list[tuple[int, Step, StepRecord, tuple[int, ...]]] = []
    for step in workflow.steps:
        record = state.steps.get(step.id)
        if record is None or record.completed_seq is None:
            continue
        items = _items(record, done_items) if step.for_each is not None else ()
        if record.status not in wanted and not (record.status is StepStatus.FAILED and items):
            continue
        candidates.append((record.completed_seq, step, record, items))
    candidates.sort(key=lambda c: c[0], reverse=True)
    plan: list[Undo] = []
    for _, step, record, items in candidates:
        kind, why = undo_kind(step, record.read_only)
        conditional = step.when is not None and step.when is not True
        if kind is not UndoKind.NOTHING and step.for_each is not None and not items:
            kind, why = UndoKind.NOTHING, "nothing to undo: no item ran"
        if kind is UndoKind.NOTHING:
            plan.append(Undo(step=step.id, kind=kind, action=str(why), conditional=conditional))
            continue
        for item in items if step.for_each is not None else (None,):
            action = impossible_text(step) if kind is UndoKind.IMPOSSIBLE else describe(step, kind, item)
            extra = note(step, kind, item) if note is not None else None
            plan.append(
                Undo(step=step.id, kind=kind, action=action, item=item, conditional=conditional, note=extra)
            )
    for step in workflow.rollback_steps:
        plan.append(
            Undo(
                step=step.id, kind=UndoKind.ROLLBACK_STEP, action=describe(step, UndoKind.ROLLBACK_STEP, None)
            )
        )
    return plan


def describe_call(uses: str, inputs: Any) -> str:
    """`run shell.run with {"argv": [...]}`: a rendered call, compact and stable."""
    text = json.dumps(inputs, ensure_ascii=False, sort_keys=True, default=str)
    return f"run {uses} with {text}"


__all__ = [
    "ACTING",
    "Describe",
    "Undo",
    "UndoKind",
    "describe_call",
    "plan_rollback",
    "rerun_reason",
    "undo_kind",
    "undo_text",
]
