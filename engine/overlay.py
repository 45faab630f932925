"""What a dry-run knows, and what it cannot: values that depend on a simulated change.

A dry-run executes reads and simulates writes. Anything derived from a simulated write is a
prediction at best (the server's dry-run answer) and unknown at worst (pods becoming ready, a
service's health after the change, a wait on the change). The runner marks each such value here,
by its path in the expression scope (`steps.<id>.outputs.<name>`, `steps.<id>.result.object.status`),
with the simulated steps it depends on. Before rendering a template, the runner asks
`unknown_in`: a template that reads (transitively) an unknown value is not rendered at all, and
whatever it feeds (a `when`, an input, an output) is reported as unknown rather than guessed, so a
dry-run never reports a pass or a failure it cannot know. Pure bookkeeping: no I/O, no adapters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Step, StepKind, Workflow
from .template_text import is_template

Path = tuple[str | int, ...]
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A value no dry-run can know: it depends on the simulated change of `because`."""

    because: tuple[str, ...]
    why: str = ""

    def text(self) -> str:
        steps = ", ".join(self.because)
        noun = "step" if len(self.because) == 1 else "steps"
        return f"unknown - depends on the simulated change of {noun} {steps}" + (
            f" ({self.why})" if self.why else ""
        )

    def merge(self, other: Unknown | None) -> Unknown:
        if other is None or other == self:
            return self
        because = tuple(dict.fromkeys((*self.because, *other.because)))
        reasons = (*self.why.split("; "), *other.why.split("; "))
        why = "; ".join(w for w in dict.fromkeys(reasons) if w)
        return Unknown(because, why)

    def as_dict(self) -> dict[str, Any]:
        return {"because": list(self.because), "why": self.why, "text": self.text()}


def merge_all(unknowns: Iterable[Unknown | None]) -> Unknown | None:
    found: Unknown | None = None
    for unknown in unknowns:
        if unknown is not None:
            found = unknown.merge(found) if found is not None else unknown
    return found


def _related(a: Path, b: Path) -> bool:
    """One path leads into the other (reading a parent reads its unknown child too)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


class Knowledge:
    """The unknown values of one dry-run, by scope path, and the writes it simulated."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.marks: dict[Path, Unknown] = {}
        self.simulated: dict[str, str] = {}  # simulated write step -> its adapter
        self._ancestors: dict[str, frozenset[str]] = {}

    # -- marking ---------------------------------------------------------------------------------
    def mark(self, path: Path, unknown: Unknown) -> None:
        previous = self.marks.get(path)
        self.marks[path] = unknown.merge(previous)

    def simulated_write(self, step: Step) -> None:
        self.simulated[step.id] = step.call.adapter

    # -- asking ----------------------------------------------------------------------------------
    def unknown_in(self, value: Any, local: Mapping[Path, Unknown] | None = None) -> Unknown | None:
        """Whether rendering `value` (a data tree holding templates) would read an unknown value."""
        if not self.marks and not local:
            return None
        found: Unknown | None = None
        for text in _templates(value):
            from .expressions import ExpressionError, compile_template

            try:
                references = compile_template(text).references
            except ExpressionError:
                continue  # reported when it is rendered
            for ref in references:
                full: Path = (ref.root, *ref.path)
                for marks in (self.marks, local or {}):
                    for path, unknown in marks.items():
                        if _related(full, path):
                            found = unknown.merge(found) if found is not None else unknown
        return found

    def ancestors(self, step: Step) -> frozenset[str]:
        """Main steps `step` comes after: its needs, transitively; for finally, every main step."""
        if step.kind is not StepKind.MAIN:
            return frozenset(s.id for s in self.workflow.steps)
        cached = self._ancestors.get(step.id)
        if cached is None:
            found: set[str] = set()
            for need in step.needs:
                found.add(need)
                found |= self.ancestors(self.workflow.step(need))
            cached = self._ancestors[step.id] = frozenset(found)
        return cached

    def upstream_simulated(self, step: Step) -> dict[str, str]:
        """The simulated writes this step comes after (id -> adapter), in the order simulated."""
        before = self.ancestors(step)
        return {s: a for s, a in self.simulated.items() if s in before and s != step.id}

    def unknown_outputs(
        self, step: Step, outputs: Any, local: Mapping[Path, Unknown]
    ) -> tuple[Any, dict[str, Unknown]]:
        """The step's outputs with each unknown one replaced by its text, and which were unknown."""
        if not step.outputs or not isinstance(outputs, dict):
            unknown = self.unknown_in(dict(step.outputs), local) if step.outputs else None
            if unknown is None:
                return outputs, {}
            return {name: unknown.text() for name in step.outputs}, dict.fromkeys(step.outputs, unknown)
        shown = dict(outputs)
        unknown_names: dict[str, Unknown] = {}
        for name, template in step.outputs.items():
            unknown = self.unknown_in(template, local)
            if unknown is not None:
                unknown_names[name] = unknown
                shown[name] = unknown.text()
        return shown, unknown_names

    @staticmethod
    def describe_parts(parts: Mapping[Path, Unknown]) -> dict[str, str]:
        return {_dotted(path): unknown.text() for path, unknown in parts.items()}


def _templates(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if is_template(value):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _templates(item)


def display_inputs(inputs: Any, knowledge: Knowledge) -> Any:
    """Inputs for the plan when some cannot be rendered: each unknown template shown as such."""
    if isinstance(inputs, str):
        if knowledge.unknown_in(inputs) is None:
            return inputs

        def shown(match: re.Match[str]) -> str:
            unknown = knowledge.unknown_in(match.group(0))
            return f"<{unknown.text()}>" if unknown is not None else match.group(0)

        return _EXPRESSION.sub(shown, inputs)
    if isinstance(inputs, Mapping):
        return {k: display_inputs(v, knowledge) for k, v in inputs.items()}
    if isinstance(inputs, list | tuple):
        return [display_inputs(v, knowledge) for v in inputs]
    return inputs


__all__ = ["Knowledge", "Unknown", "display_inputs", "merge_all"]
