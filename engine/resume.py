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

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .events import Event, EventType
from .model import Step
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


def _template_texts(value: Any) -> Iterator[str]:
    """Every template text in a step field: strings, compiled templates' sources, nested data.
    (Duck-typed on `source`: importing engine/expressions here would load Jinja at start-up.)"""
    if isinstance(value, str):
        yield value
    elif isinstance(getattr(value, "source", None), str):  # a compiled template
        yield value.source
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _template_texts(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _template_texts(v)


def reads_step(step: Step, other: str) -> bool:
    """Whether any template of `step` (inputs, `when`, `for_each`, `timeout`, outputs) refers
    to step `other`. Validation admits only literal references (`steps.<id>` or
    `steps['<id>']`, never a computed one), so finding the id after `steps` in the text is
    complete; it may over-match (an id inside a string literal), which only fails a step with
    a clear reason, never lets a redacted value through."""
    name = re.escape(other)
    pattern = re.compile(rf"\bsteps\s*(?:\.\s*{name}\b|\[\s*['\"]{name}['\"])")
    sources = (step.call.inputs, step.when, step.for_each, step.timeout_template, step.outputs)
    return any(pattern.search(text) for source in sources for text in _template_texts(source))


__all__ = ["LOST_COMPENSATION_ERROR", "LOST_STEP_ERROR", "REDACTED_INPUT_ERROR", "ResumePoint", "reads_step"]
