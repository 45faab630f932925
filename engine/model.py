"""The compiled, immutable model of a runbook: what the runner executes.

A validated `SourceDoc` is compiled once into frozen dataclasses. After this point there is no
YAML, no schema and no raw dict walking: durations are seconds, retries are a policy object,
templates are pre-parsed, the DAG (topological order, predecessors, successors) is computed.
"""

from __future__ import annotations

import collections
import enum
import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .durations import DURATION_FORMS as DURATION_FORMS
from .loader import Mark, SourceDoc, mark_below
from .template_text import is_template

DEFAULT_CONCURRENCY = 8
DEFAULT_ROLLBACK_TIMEOUT = 600.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """`500ms`, `30s`, `5m`, `2h` or an integer number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * _UNITS[unit]
    if text.isdigit():
        return float(text)
    raise ValueError(f"not a duration: {value!r}")


class StepKind(enum.StrEnum):
    MAIN = "main"
    FINALLY = "finally"
    ROLLBACK = "rollback"


class RollbackMode(enum.StrEnum):
    AUTO = "auto"  # the adapter's inverse, where it has one
    NONE = "none"  # deliberately nothing
    BODY = "body"  # an explicit `rollback: {uses, with}`


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 1  # total attempts; 1 = no retry
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 30.0

    def delay(self, failed_attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter, capped (AWS architecture blog's recipe)."""
        ceiling = min(self.max_backoff, self.backoff * self.factor ** max(failed_attempt - 1, 0))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureBudget:
    """How many failed `for_each` items a rollout tolerates: `max_failures: 2` or `"25%"`.

    A percentage is of the rendered list, rounded down (Ansible's `max_fail_percentage` reads the
    same way: the share must be exceeded, not reached, for the rollout to stop).
    """

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> FailureBudget:
        if isinstance(raw, str) and raw.endswith("%"):
            return cls(percent=float(raw[:-1]))
        return cls(count=int(raw))

    def tolerated(self, items: int) -> int:
        if self.percent is not None:
            return int(items * self.percent // 100)
        return self.count or 0

    def describe(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCall:
    uses: str
    inputs: Mapping[str, Any]  # still holding templates; rendered per attempt
    timeout: float | None = None
    retries: RetryPolicy | None = None
    templated: bool = True  # False: inputs are literal, already checked at validation

    @property
    def adapter(self) -> str:
        return self.uses.partition(".")[0]

    @property
    def action(self) -> str:
        return self.uses.partition(".")[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    id: str
    kind: StepKind
    call: ActionCall
    needs: tuple[str, ...] = ()
    when: Any = None  # None (always), a bool, or a whole-template string
    for_each: Any = None  # None, a list, or a whole-template string
    concurrency: int | None = None
    max_failures: FailureBudget | None = None  # None: see `item_stop_after`
    timeout: float | None = None
    timeout_template: str | None = None  # `timeout: "{{ ... }}"`, resolved before the step starts
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    continue_on_error: bool = False
    outputs: Mapping[str, Any] = field(default_factory=dict)
    rollback_mode: RollbackMode = RollbackMode.AUTO
    rollback_body: ActionCall | None = None
    dry_run: str | None = None  # "simulate" | "execute" | None (by the action's read-only flag)
    idempotent: bool = False
    description: str = ""
    line: int = 0
    # "path:line:col" of the fields a run can fail on (when, for_each, timeout, with, outputs.x),
    # so a run-time error points at the field, like a validation error does.
    where: Mapping[str, str] = field(default_factory=dict)

    def item_stop_after(self, items: int, *, fail_fast: bool) -> int | None:
        """Failed items this rollout absorbs before it stops starting new ones (None: never stops).

        An explicit `max_failures` always applies. Without one, a rollout stops at its first
        failed item when the run fails fast and the step's failure matters; `fail_fast: false`
        or `continue_on_error: true` keep every item going (GitHub Actions' matrix reads
        `continue-on-error` the same way: such a failure does not trip `fail-fast`). The
        runner passes `fail_fast=False` for `finally` and rollback steps: fail-fast is about
        the main phase, so only their own `max_failures` stops them.
        """
        if self.max_failures is not None:
            return self.max_failures.tolerated(items)
        return 0 if fail_fast and not self.continue_on_error else None

    def item_failures_tolerated(self, items: int) -> int:
        """Failed items that still leave the step `completed` (only `max_failures` grants any)."""
        return self.max_failures.tolerated(items) if self.max_failures is not None else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    name: str
    version: str
    description: str
    params: Mapping[str, Mapping[str, Any]]
    secrets: tuple[str, ...]
    priority: int
    placement: Mapping[str, str]
    concurrency: int
    timeout: float | None
    fail_fast: bool
    steps: tuple[Step, ...]
    finally_steps: tuple[Step, ...]
    rollback_enabled: bool
    rollback_steps: tuple[Step, ...]
    rollback_timeout: float
    order: tuple[str, ...]  # a topological order of the main steps
    successors: Mapping[str, tuple[str, ...]]
    by_id: Mapping[str, Step]
    source: str = ""

    @property
    def workflow_id(self) -> str:
        return f"{self.name}-{self.version}"

    def step(self, step_id: str) -> Step:
        return self.by_id[step_id]


_ROLLBACK_MODES: dict[Any, RollbackMode] = {mode.value: mode for mode in RollbackMode}


def _retry_policy(raw: Any, base: RetryPolicy) -> RetryPolicy:
    if raw is None:  # most steps: no ABC check
        return base
    if not isinstance(raw, Mapping):
        return base
    return RetryPolicy(
        attempts=int(raw.get("attempts", base.attempts)),
        backoff=parse_duration(raw.get("backoff", base.backoff)),
        factor=float(raw.get("factor", base.factor)),
        max_backoff=parse_duration(raw.get("max_backoff", base.max_backoff)),
    )


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def _precompile(value: Any) -> bool:
    """Parse every template once now, so a run never meets a syntax error; whether there was one."""
    if isinstance(value, str):
        if is_template(value):
            from .expressions import compile_template  # only runbooks with templates pay for Jinja2

            compile_template(value)
            return True
        return False
    found = False
    if isinstance(value, Mapping):
        for item in value.values():
            found = _precompile(item) or found
    elif isinstance(value, list):
        for item in value:
            found = _precompile(item) or found
    return found


def _compile_step(
    raw: Mapping[str, Any],
    kind: StepKind,
    defaults: Mapping[str, Any],
    line: int,
    where: Mapping[str, str],
    base_retries: RetryPolicy,
) -> Step:
    """One step; `base_retries` is `spec.defaults.retries`, compiled once per list by the caller."""
    default_timeout = defaults.get("timeout")
    rollback = raw.get("rollback", "auto")
    body: ActionCall | None = None
    if type(rollback) is str:  # a mode (a dict lookup, no enum call a step)
        mode = _ROLLBACK_MODES.get(rollback) or RollbackMode(rollback)
    else:  # a body: validation allows nothing else
        mode = RollbackMode.BODY
        body = ActionCall(
            uses=str(rollback["uses"]),
            inputs=dict(rollback.get("with", {})),
            templated=_has_template(rollback.get("with", {})),
            timeout=parse_duration(rollback["timeout"]) if "timeout" in rollback else None,
            retries=_retry_policy(rollback.get("retries"), RetryPolicy()) if "retries" in rollback else None,
        )
        _precompile(body.inputs)
    timeout = raw.get("timeout", default_timeout)
    inputs = dict(raw.get("with", {}))
    step = Step(
        id=str(raw["id"]),
        kind=kind,
        call=ActionCall(uses=str(raw["uses"]), inputs=inputs, templated=bool(inputs) and _precompile(inputs)),
        needs=tuple(raw.get("needs", ())),
        when=raw.get("when"),
        for_each=raw.get("for_each"),
        concurrency=raw.get("concurrency"),
        max_failures=FailureBudget.parse(raw["max_failures"]) if "max_failures" in raw else None,
        timeout=parse_duration(timeout) if timeout is not None and not is_template(timeout) else None,
        timeout_template=timeout if is_template(timeout) else None,
        retries=_retry_policy(raw.get("retries"), base_retries),
        continue_on_error=bool(raw.get("continue_on_error", defaults.get("continue_on_error", False))),
        outputs=dict(raw.get("outputs", {})),
        rollback_mode=mode,
        rollback_body=body,
        dry_run=raw.get("dry_run"),
        idempotent=bool(raw.get("idempotent", False)),
        description=str(raw.get("description", "")),
        line=line,
        where=where,
    )
    for value in (step.when, step.for_each, step.outputs, step.timeout_template):
        if value:
            _precompile(value)
    return step


def topological_order(steps: tuple[Step, ...]) -> tuple[str, ...]:
    """Kahn's algorithm, stable in document order."""
    pending = {s.id: len(s.needs) for s in steps}
    successors: dict[str, list[str]] = {s.id: [] for s in steps}
    for s in steps:
        for need in s.needs:
            successors[need].append(s.id)
    ready = collections.deque(s.id for s in steps if not s.needs)
    order: list[str] = []
    while ready:
        current = ready.popleft()  # a list's pop(0) made this quadratic
        order.append(current)
        for nxt in successors[current]:
            pending[nxt] -= 1
            if pending[nxt] == 0:
                ready.append(nxt)
    if len(order) != len(steps):
        raise ValueError("dependency cycle")  # the validator reports cycles before this
    return tuple(order)


def _mark_at(doc: SourceDoc, path: tuple[str | int, ...], rel: tuple[str | int, ...]) -> Mark:
    return doc.mark((*path, *rel))


def compile_workflow(doc: SourceDoc) -> Workflow:
    """Compile a document that `validate_document` found free of errors."""
    data = doc.data
    meta = data["metadata"]
    spec = data["spec"]
    defaults = spec.get("defaults", {})

    def where(mark: Callable[[tuple[str | int, ...]], Mark], raw: Mapping[str, Any]) -> dict[str, str]:
        fields: list[tuple[str | int, ...]] = [
            (f,) for f in ("when", "for_each", "timeout", "with") if f in raw
        ]
        if "outputs" in raw:
            fields += [("outputs", name) for name in raw["outputs"] or {}]
        if "with" in raw:
            fields += [("with", name) for name in raw["with"] or {}]
        out = {}
        for rel in fields:
            at = mark(rel)
            out[".".join(str(p) for p in rel)] = f"{doc.path}:{at.line}:{at.col}"
        return out

    def build(items: list[Mapping[str, Any]], kind: StepKind, key: tuple[str, ...]) -> tuple[Step, ...]:
        retries = _retry_policy(defaults.get("retries"), RetryPolicy())
        nodes = doc.nodes_under(key)  # one walk from the root for the whole list
        out = []
        for i, raw in enumerate(items):
            mark: Callable[[tuple[str | int, ...]], Mark]
            if nodes is not None and i < len(nodes):
                line, mark = nodes[i].line, functools.partial(mark_below, nodes[i])
            else:  # no positions (a document from data): what `doc.mark` says
                path: tuple[str | int, ...] = (*key, i)
                line, mark = doc.mark(path).line, functools.partial(_mark_at, doc, path)
            out.append(_compile_step(raw, kind, defaults, line, where(mark, raw), retries))
        return tuple(out)

    steps = build(spec["steps"], StepKind.MAIN, ("spec", "steps"))
    rollback = spec.get("rollback", {})
    finally_steps = build(spec.get("finally", []), StepKind.FINALLY, ("spec", "finally"))
    rollback_steps = build(rollback.get("steps", []), StepKind.ROLLBACK, ("spec", "rollback", "steps"))
    successors: dict[str, list[str]] = {s.id: [] for s in steps}
    for s in steps:
        for need in s.needs:
            successors[need].append(s.id)
    return Workflow(
        name=str(meta["name"]),
        version=str(meta["version"]),
        description=str(meta.get("description", "")),
        params={k: dict(v) for k, v in spec.get("params", {}).items()},
        secrets=tuple(spec.get("secrets", ())),
        priority=int(spec.get("priority", 50)),
        placement=dict(spec.get("placement", {}).get("labels", {})),
        concurrency=int(spec.get("concurrency", DEFAULT_CONCURRENCY)),
        timeout=parse_duration(spec["timeout"]) if "timeout" in spec else None,
        fail_fast=bool(spec.get("fail_fast", True)),
        steps=steps,
        finally_steps=finally_steps,
        rollback_enabled=bool(rollback.get("enabled", True)),
        rollback_steps=rollback_steps,
        rollback_timeout=parse_duration(rollback.get("timeout", DEFAULT_ROLLBACK_TIMEOUT)),
        order=topological_order(steps),
        successors={k: tuple(v) for k, v in successors.items()},
        by_id={s.id: s for s in (*steps, *finally_steps, *rollback_steps)},
        source=doc.path,
    )
