"""The trio runner: carries out what the conductor decides, and records it as events.

Structure (trio's way): one nursery for the main phase inside a cancel scope that carries the
execution timeout and `cancel()`; each step is a task; each attempt runs under its own
`fail_after`; the execution-wide `concurrency` is a `CapacityLimiter`. Rollback and `finally`
run shielded from cancellation but under their own deadlines, so Ctrl-C cannot cut an undo short
and nothing waits forever. The runner never decides what runs next; it asks the conductor.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import trio

from wpk.adapters import registry
from wpk.adapters.base import ActionInfo, Adapter, AdapterError, InputError, Outcome, Plan, StepContext

from .budget import ExecutionBudget
from .compensation import Undo, UndoKind, describe_call, plan_rollback, rerun_reason
from .conductor import Conductor, SkipStep, StartStep
from .events import Event, EventType
from .limits import LimitExceeded, Limits
from .model import DURATION_FORMS, ActionCall, RetryPolicy, Step, StepKind, Workflow
from .overlay import Knowledge, Unknown, display_inputs, merge_all
from .resume import LOST_COMPENSATION_ERROR, LOST_STEP_ERROR, REDACTED_INPUT_ERROR, ResumePoint, reads_step
from .schema import action_validator, describe_path, friendly_message, iter_leaf_errors
from .secrets import MASK, Redactor, mask_secret_objects
from .state import ExecutionState, ExecutionStatus, StepStatus
from .store.base import EventStore, StoreError, store_error_in

_RESULT_EVENTS = frozenset(
    {EventType.STEP_COMPLETED, EventType.ITEM_COMPLETED, EventType.STEP_PLANNED, EventType.STEP_FAILED}
)
SHELL_QUOTED_FIELDS: Mapping[str, tuple[str, ...]] = {"shell.run": ("command",)}
FINALLY_TIMEOUT = 600.0
_LOG = EventType.LOG
_NO_SCOPE: Mapping[str, Any] = {}  # what a step without templates is given as its scope (never read)
_NO_LIMIT = nullcontext()  # reusable: an attempt without a timeout makes no context object


class StepFailure(Exception):
    """An attempt's failure, already in our terms (the adapter boundary mapped it)."""

    def __init__(self, message: str, *, retryable: bool, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.reason = reason


@dataclass(slots=True)
class AttemptResult:
    status: StepStatus  # COMPLETED, SIMULATED or FAILED
    result: Any = None
    outputs: Any = None
    undo: Any = None
    inputs: Any = None
    read_only: bool = False
    plan: Plan | None = None
    error: str | None = None
    reason: str | None = None
    unknown: Unknown | None = None  # dry-run: part or all of it depends on a simulated change
    outcome_unknown: bool = False  # dry-run: whether it succeeds depends on a simulated change
    unknown_info: dict[str, str] | None = None  # dry-run: which parts are unknown, and why
    outputs_now: dict[str, Any] | None = None  # dry-run: unknown outputs as a read sees them now


@dataclass(slots=True, kw_only=True)
class RunOptions:
    dry_run: bool = False
    rollback: bool = True
    execution_id: str | None = None
    priority: int | None = None
    adapter_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    seed: int | None = None
    limits: Limits | None = None  # None: the agent's configured limits (engine/limits.py)
    # Events already recorded for this execution (its creation by a submission, or a past run
    # to roll back by hand): replayed into the state before anything new is emitted.
    history: Sequence[Event] = ()


class AdapterPool:
    """Adapters built on first use from the agent configuration, closed at the end."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        self.config = config
        self.adapters: dict[str, Adapter] = {}

    def get(self, name: str) -> Adapter:
        adapter = self.adapters.get(name)
        if adapter is None:
            adapter = self.adapters[name] = registry.create_adapter(name, self.config.get(name, {}))
        return adapter

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            with trio.move_on_after(5, shield=True):
                await adapter.aclose()


def _check_inputs(uses: str, inputs: Any) -> None:
    validator = action_validator(uses)
    if validator is None:
        raise InputError(f"unknown action {uses!r}")
    for err in iter_leaf_errors(validator, inputs):
        where = (
            f"{uses} input {describe_path(list(err.absolute_path))}"
            if err.absolute_path
            else f"{uses} inputs"
        )
        raise InputError(friendly_message(err, where)[0])


def idempotency_key(execution_id: str, step_id: str, item: int | None, *, undo: bool = False) -> str:
    """Stable across attempts and agents; a compensation gets its own (a server honouring
    Idempotency-Key would otherwise answer the undo with the cached forward response)."""
    key = f"{execution_id}:{step_id}" + (f":{item}" if item is not None else "")
    return key + ":undo" if undo else key


def is_cancellation(exc: BaseException) -> bool:
    """`trio.Cancelled`, also when an adapter's own nursery wrapped it in an exception group."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        rest = exc.split(trio.Cancelled)[1]
        return rest is None
    return False


def as_text_where_expected(value: Any, schema: Mapping[str, Any]) -> Any:
    """A number rendered into a field (or list/map of fields) declared `string` becomes text.

    `argv: ["sleep", "{{ params.seconds }}"]` renders the integer 5; the action wants "5".
    Booleans are left alone: "True" is rarely what an author meant, so they still fail.
    """
    kind = schema.get("type")
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "array" and isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [as_text_where_expected(v, schema["items"]) for v in value]
    extra = schema.get("additionalProperties")
    if kind == "object" and isinstance(value, dict) and isinstance(extra, Mapping):
        return {k: as_text_where_expected(v, extra) for k, v in value.items()}
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


class Runner:
    def __init__(
        self,
        workflow: Workflow,
        *,
        params: Mapping[str, Any],
        secrets: Mapping[str, str],
        store: EventStore,
        options: RunOptions | None = None,
    ) -> None:
        self.workflow = workflow
        self.params = dict(params)
        self.secrets = dict(secrets)
        self.store = store
        self.options = options or RunOptions()
        self.dry_run = self.options.dry_run
        self.execution_id = self.options.execution_id or str(uuid.uuid4())
        self.redactor = Redactor(self.secrets.values())
        self.state = ExecutionState()
        self.conductor = Conductor(workflow)
        self.adapters = AdapterPool(self.options.adapter_config)
        self.rng = random.Random(self.options.seed)
        self.seq = 0
        self.limiter = trio.CapacityLimiter(workflow.concurrency)
        self.step_scope: dict[str, dict[str, Any]] = {
            s.id: {"outputs": None, "status": str(StepStatus.PENDING), "result": None}
            for s in (*workflow.steps, *workflow.finally_steps, *workflow.rollback_steps)
        }
        self.applied_inputs: dict[tuple[str, int | None], Any] = {}
        self.outcomes: dict[tuple[str, int | None], Outcome] = {}
        self.items_of: dict[str, list[Any]] = {}
        self.rollout_stopped: dict[str, str] = {}  # for_each step -> why its next items do not start
        self._to_start: deque[Step] = deque()  # dispatched main steps, in the conductor's order
        self._launching = False
        self._held: dict[tuple[str, int | None], object] = {}  # (step, item) -> its slot's borrower
        # Dry-run only: what depends on simulated changes, and the inverses the adapters planned.
        self.knowledge: Knowledge | None = Knowledge(workflow) if self.dry_run else None
        self.dry_inverse: dict[tuple[str, int | None], str] = {}
        self.unknown_conditions: dict[str, Unknown] = {}
        self.main_scope: trio.CancelScope | None = None
        self.cancel_requested = False
        self.abandoned = False  # `abandon`: nothing more is recorded, nothing more runs
        self._run_scope: trio.CancelScope | None = None
        self._shields: list[trio.CancelScope] = []  # rollback and finally: `abandon` opens them
        self._nursery: trio.Nursery | None = None
        self.budget = ExecutionBudget(self.options.limits)
        self.limit_error: str | None = None
        self.unrestorable: dict[tuple[str, int | None], str] = {}
        for event in self.options.history:
            self._replay(event)
        self.resume = ResumePoint.of(self.options.history)  # a takeover: what is done already
        self.unresolved: set[str] = set()  # steps whose redacted outputs could not be re-read

    def _replay(self, event: Event) -> None:
        """Rebuild what later decisions read from a recorded event (state, scope, undo records)."""
        self.state.apply(event)
        self.seq = event.seq
        if event.step is None or event.step not in self.step_scope:
            return
        record = self.state.steps[event.step]
        if event.item is not None:
            if event.type is EventType.ITEM_COMPLETED and record.items is not None:
                item = record.items[event.item]
                self._restore_undo((event.step, event.item), item.result, item.undo)
            return
        entry = self.step_scope[event.step]
        entry["status"] = str(record.status)
        if event.type is EventType.STEP_COMPLETED:
            entry.update(outputs=record.outputs, result=record.result)
            self._restore_undo((event.step, None), record.result, record.undo)

    def _restore_undo(self, key: tuple[str, int | None], result: Any, undo: Any) -> None:
        """A recorded undo record, for the automatic inverse of a resumed or manual rollback."""
        if undo is None:
            return
        if not _holds_masked_secret(undo):
            self.outcomes[key] = Outcome(result=result or {}, undo=undo)
        else:
            self.unrestorable[key] = (
                "the undo record holds a Kubernetes Secret, which the store keeps masked: "
                "restore it by hand (nothing was written)"
            )

    # -- events ------------------------------------------------------------------------------
    def emit(
        self, type_: EventType, step: str | None = None, item: int | None = None, /, **data: Any
    ) -> Event:
        self.seq += 1
        if data:  # most events carry little: no walk over an empty payload
            if type_ in _RESULT_EVENTS:
                data = mask_secret_objects(data)
            if self.redactor.values:  # a run with no secret values has nothing to mask
                data = self.redactor.redact(data)
        event = Event(self.seq, type_, time.time(), step, item, data)
        if self.abandoned:  # handed over: the agent that takes the execution over records the rest
            return event
        if self.limit_error is None and not self.budget.count_event():
            self._stop_for_limit(self.budget.events_message())
        state = self.state
        state.apply(event)
        if step is not None and item is None and type_ is not _LOG:
            self.step_scope[step]["status"] = str(state.steps[step].status)
        self.store.append(self.execution_id, event)
        on_event = self.options.on_event
        if on_event is not None:
            on_event(event)
        return event

    def log_sink(self, step_id: str, item: int | None) -> Callable[[str, str], None]:
        def log(stream: str, line: str) -> None:
            allowed, notice = self.budget.allow_log(line)
            if allowed:
                self.emit(EventType.LOG, step_id, item, stream=stream, line=line)
            elif notice:
                self.emit(EventType.LOG, step_id, item, stream="info", line=notice)

        return log

    def _stop_for_limit(self, message: str) -> None:
        """An execution-wide budget ran out: the main phase stops, as for a timeout."""
        self.limit_error = message
        if self.main_scope is not None:
            self.main_scope.cancel()

    # -- public API ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the main phase: running steps are cancelled, then the rollback policy applies."""
        self.cancel_requested = True
        if self.main_scope is not None:
            self.main_scope.cancel()

    def abandon(self, reason: str) -> None:
        """Stop here as if the agent had vanished, but cleanly: what runs is cancelled (a step's
        processes end), then nothing more is recorded or done (no cancel, no rollback, no
        `finally`, no final state). Each step left running says `reason` in its record; the
        execution stays `running` for another agent to resume from its events, where a step
        left running is one whose agent was lost (engine/resume.py)."""
        if self.abandoned:
            return
        for record in list(self.state.steps.values()):
            if record.status in (StepStatus.RUNNING, StepStatus.COMPENSATING):
                self.emit(EventType.ATTEMPT_FAILED, record.id, attempt=record.attempts, error=reason,
                          reason="handed_over")  # fmt: skip
        self.abandoned = True
        for shield in self._shields:
            shield.shield = False
        if self._run_scope is not None:
            self._run_scope.cancel()

    def _shield(self) -> trio.CancelScope:
        """A scope that Ctrl-C or a cancel cannot cut short, which `abandon` still can."""
        scope = trio.CancelScope(shield=not self.abandoned)
        self._shields.append(scope)
        return scope

    async def run(self) -> ExecutionState:
        """Run the execution, or resume it where its recorded events stop (engine/resume.py).

        A store failure (unreachable, full, a stale fencing token) ends the run at once with that
        `StoreError`: nothing more happens that the store could not record.
        """
        resume = self.resume
        if resume.closed:
            return self.state
        if self.seq == 0:  # a submission recorded the creation already
            priority = self.options.priority
            self.emit(
                EventType.EXECUTION_CREATED,
                **creation_data(self.workflow, self.execution_id, self.params, self.dry_run, priority),
            )
        if not resume.started:
            self.emit(EventType.EXECUTION_STARTED)
        failing = False
        try:
            try:
                with trio.CancelScope() as self._run_scope:  # `abandon` ends the run here
                    if self.abandoned:
                        self._run_scope.cancel()
                    await self._phases()
            except BaseExceptionGroup as group:  # a store failure inside a step's nursery
                found = store_error_in(group)
                if found is None:
                    raise
                raise found from None
        except BaseException:
            failing = True
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self.adapters.aclose()
                try:
                    await self.store.flush()
                except StoreError:
                    if not failing:
                        raise
        return self.state

    async def _phases(self) -> None:
        resume = self.resume
        if resume.finished is None:
            if resume.started:
                await self._reresolve_redacted()
            status, error = await self._main_phase()
            planned = (
                {"rollback_plan": [u.as_dict() for u in self.rollback_plan(dry_run=True)]}
                if self.dry_run and self.workflow.rollback_enabled
                else {}
            )
            self.emit(EventType.EXECUTION_FINISHED, status=str(status), error=error, **planned)
        else:
            status = resume.finished
        final = status
        if resume.rollback_finished is not None:
            final = resume.rollback_finished
        elif resume.rollback_started or self._rollback_applies(status):
            final = await self.rollback()
        final, error = await self._finally_phase(final, self.state.error)
        self.emit(EventType.EXECUTION_CLOSED, status=str(final), **({"error": error} if error else {}))

    # -- resume --------------------------------------------------------------------------------
    def _may_run_again(self, step: Step) -> bool:
        """A step its lost agent left running: safe to run again, or failed as outcome unknown."""
        if step.idempotent or self._reads_only(step):
            return True
        self.emit(EventType.STEP_FAILED, step.id, error=LOST_STEP_ERROR, reason="agent_lost")
        return False

    def _reads_only(self, step: Step, scope: Mapping[str, Any] | None = None) -> bool:
        info = registry.action_info(step.call.uses)
        if info is None:
            return False
        try:
            scope = scope or self.scope()
            inputs = self.render_inputs(step.call, scope, info, step) if step.call.templated else None
        except Exception:  # cannot tell: never re-run a write on a guess
            return False
        return bool(info.is_read_only(step.call.inputs if inputs is None else inputs))

    def _resumed_items(self, step: Step, items: Sequence[Any]) -> dict[int, AttemptResult]:
        """A `for_each` step its lost agent left running, item by item (docs/stores.md).

        An item recorded as completed or failed keeps that outcome and does not run again; an
        item left running runs again if that is safe (the step says `idempotent: true`, or the
        item's call only reads), else it fails as "agent lost, outcome unknown" and counts as a
        failed item (`max_failures` applies); an item not started runs. Returned: the items
        settled already, by index.
        """
        settled: dict[int, AttemptResult] = {}
        for index, item in sorted((self.state.step(step.id).items or {}).items()):
            if index >= len(items):
                continue
            if item.status is StepStatus.COMPLETED:
                scope = self.scope(item=items[index], index=index)
                settled[index] = AttemptResult(
                    StepStatus.COMPLETED, result=item.result, outputs=item.outputs, undo=item.undo,
                    read_only=self._reads_only(step, scope),
                )  # fmt: skip
            elif item.status is StepStatus.FAILED:
                failed = AttemptResult(StepStatus.FAILED, error=item.error, reason=item.reason or "error")
                settled[index] = failed
            elif item.status is StepStatus.RUNNING and not (
                step.idempotent or self._reads_only(step, self.scope(item=items[index], index=index))
            ):
                self.emit(EventType.ITEM_FAILED, step.id, index, error=LOST_STEP_ERROR, reason="agent_lost")
                settled[index] = AttemptResult(StepStatus.FAILED, error=LOST_STEP_ERROR, reason="agent_lost")
        return settled

    def _resume_dispatch(self, command: StartStep | SkipStep) -> None:
        """`_dispatch` for a resumed main phase: what is recorded as done is not done again."""
        record = self.state.step(command.step_id)
        status = record.status
        if status is StepStatus.PENDING:
            self._dispatch(command)  # which refuses a step that reads an unresolved redacted output
            return
        step = self.workflow.step(command.step_id)
        if status is StepStatus.RUNNING and (
            # a `for_each` step runs again: its items decide one by one (_resumed_items)
            step.for_each is not None or self._may_run_again(step)
        ):
            if not self._reads_unresolved(step):
                self._dispatch(command)
                return
            self.emit(EventType.STEP_FAILED, step.id, error=REDACTED_INPUT_ERROR, reason="agent_lost")
        for follow in self.conductor.on_finished(command.step_id, self.state.step(command.step_id).status):
            self._resume_dispatch(follow)

    def _reads_unresolved(self, step: Step) -> bool:
        """Whether `step` refers (directly or through an ancestor further up) to a step whose
        outputs the store keeps redacted and that could not be read again: it would get `***`."""
        return any(reads_step(step, other) for other in self.unresolved)

    async def _reresolve_redacted(self) -> None:
        """Completed steps whose outputs the store keeps redacted (they hold a secret): a
        read-only one is read again (nothing changes, no event but its logs); any other leaves
        its dependents to fail with a reason that says so (docs/stores.md)."""
        import json

        for step in self.workflow.steps:
            record = self.state.step(step.id)
            if record.status is not StepStatus.COMPLETED or record.items is not None:
                continue
            if MASK not in json.dumps(record.outputs, default=str):
                continue
            info = registry.action_info(step.call.uses)
            if not record.read_only or info is None:
                self.unresolved.add(step.id)
                continue
            try:
                again = await self._attempt(step, step.call, info, self.scope(), None, 1, step.timeout)
            except StepFailure:
                self.unresolved.add(step.id)
                continue
            self.step_scope[step.id].update(outputs=again.outputs, result=again.result)

    def _rollback_applies(self, status: ExecutionStatus) -> bool:
        """Failed or cancelled, rollback on, and something to undo (else the status stays as is)."""
        wf = self.workflow
        if (
            status is ExecutionStatus.COMPLETED
            or self.dry_run
            or not (self.options.rollback and wf.rollback_enabled)
        ):
            return False
        return bool(wf.rollback_steps) or any(u.acts for u in self.rollback_plan())

    # -- main phase ----------------------------------------------------------------------------
    async def _main_phase(self) -> tuple[ExecutionStatus, str | None]:
        wf = self.workflow
        with trio.CancelScope() as scope:
            self.main_scope = scope
            if self.cancel_requested:
                scope.cancel()
            if wf.timeout is not None:
                scope.deadline = trio.current_time() + wf.timeout
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for command in self.conductor.initial():
                    if self.resume.started:
                        self._resume_dispatch(command)
                    else:
                        self._dispatch(command)
        self._nursery = None
        if scope.cancelled_caught or self.cancel_requested:
            why = self.limit_error or (
                "execution cancelled"
                if self.cancel_requested
                else f"execution timed out after {wf.timeout:g}s"
            )
            for step_id in self.conductor.pending(self.state):
                self.emit(EventType.STEP_SKIPPED, step_id, reason=why)
            status = ExecutionStatus.CANCELLED if self.cancel_requested else ExecutionStatus.FAILED
            return status, why
        if self.conductor.failures:
            first = self.conductor.halted_by or self.conductor.failures[0]
            return ExecutionStatus.FAILED, f"step {first!r} failed: {self.state.step(first).error}"
        return ExecutionStatus.COMPLETED, None

    def _dispatch(self, command: StartStep | SkipStep) -> None:
        assert self._nursery is not None
        if isinstance(command, StartStep):
            step = self.workflow.step(command.step_id)
            if self.unresolved and self._reads_unresolved(step):  # resumed: it would get `***`
                self.emit(EventType.STEP_STARTED, step.id)
                self.emit(EventType.STEP_FAILED, step.id, error=REDACTED_INPUT_ERROR, reason="agent_lost")
                self._finished(step.id)
                return
            if not self._launching:
                try:
                    self.limiter.acquire_on_behalf_of_nowait((step.id, None))
                except trio.WouldBlock:
                    pass
                else:  # a slot was free and nothing queues before it: start it now
                    self._held[(step.id, None)] = (step.id, None)
                    self._nursery.start_soon(self._main_step, step, name=step.id)
                    return
            self._to_start.append(step)
            if not self._launching:
                self._launching = True
                self._nursery.start_soon(self._launch)
        else:
            self.emit(EventType.STEP_SKIPPED, command.step_id, reason=command.reason)
            self._finished(command.step_id)

    def _finished(self, step_id: str) -> None:
        record = self.state.step(step_id)
        for command in self.conductor.on_finished(step_id, record.status):
            self._dispatch(command)

    async def _launch(self) -> None:
        """Start queued steps one at a time, each once an execution slot is free for it.

        The slot is taken here, in the order the conductor gave the steps, and handed to the
        step's first attempt (`_held`): holding it is what "started" means. So steps that
        become ready together start in document order under `concurrency`, and a step still
        queued when the run fails fast is skipped, never started. (Spawned all at once, steps
        raced for the slots: trio may run a batch of new tasks in reverse.)
        """
        assert self._nursery is not None
        try:
            while self._to_start:
                step = self._to_start.popleft()
                key = (step.id, None)
                if self.stop_reason(step) is None:
                    await self.limiter.acquire_on_behalf_of(key)
                    if self.stop_reason(step) is None:
                        self._held[key] = key
                        self._nursery.start_soon(self._main_step, step, name=step.id)
                        continue
                    self.limiter.release_on_behalf_of(key)
                # The run failed while it queued: it never starts (fail-fast).
                self._dispatch(SkipStep(step.id, self.stop_reason(step) or ""))
        finally:
            self._launching = False

    def _release_held(self, key: tuple[str, int | None]) -> None:
        """A slot taken for a first attempt that never came (a false `when`, a for_each step)."""
        borrower = self._held.pop(key, None)
        if borrower is not None:
            self.limiter.release_on_behalf_of(borrower)

    async def _main_step(self, step: Step) -> None:
        try:
            await self.run_step(step)
        finally:
            self._release_held((step.id, None))
            if (
                self.state.step(step.id).status
                in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.SIMULATED)
                and self._nursery is not None
            ):
                self._finished(step.id)

    # -- one step ------------------------------------------------------------------------------
    def scope(self, *, attempt: int = 1, item: Any = None, index: int | None = None) -> dict[str, Any]:
        scope: dict[str, Any] = {
            "params": self.params,
            "secrets": self.secrets,
            "steps": self.step_scope,
            "execution": {"id": self.execution_id, "dry_run": self.dry_run, "attempt": attempt},
        }
        if index is not None:
            scope["item"] = item
            scope["index"] = index
        return scope

    async def run_step(self, step: Step) -> None:
        """Run one step (all items, all attempts); record everything as events.

        A plain main step (no condition, templated timeout or items, not a dry-run) begins its
        first attempt at once, on the slot it was started with: `step_started` says so
        (`attempt: 1`) and no `attempt_started` follows, one event fewer per step. Retries, items
        and every other step record each attempt with `attempt_started`."""
        if (
            step.when is None
            and step.for_each is None
            and step.timeout_template is None
            and self.knowledge is None
            and (step.id, None) in self._held
        ):
            self.emit(EventType.STEP_STARTED, step.id, attempt=1)
            announced = True
        else:
            self.emit(EventType.STEP_STARTED, step.id)
            announced = False
        try:
            await self._run_step_body(step, announced)
        except BaseException as exc:
            if is_cancellation(exc):
                self.emit(EventType.STEP_CANCELLED, step.id, error="cancelled")
            raise

    async def _run_step_body(self, step: Step, announced: bool = False) -> None:
        # Only templates (and a dry-run's bookkeeping) read the scope: a plain step builds none.
        plain = not (step.call.templated or step.outputs or step.when is not None or step.for_each is not None
                     or step.timeout_template is not None or self.knowledge is not None)  # fmt: skip
        base = _NO_SCOPE if plain else self.scope()
        if step.timeout_template is not None:
            resolved = self._resolve_timeout(step, base)
            if resolved is None:
                return
            step = dataclasses.replace(step, timeout=resolved)
        if step.when is not None:
            from .expressions import RenderError, render_value

            unknown = self.knowledge.unknown_in(step.when) if self.knowledge is not None else None
            if unknown is not None:
                # Dry-run, and the condition reads what a simulated change decides: show what the
                # step would do if it holds (its consequence), and that it may equally be skipped.
                self.unknown_conditions[step.id] = unknown
            else:
                try:
                    condition = render_value(step.when, base)
                except RenderError as exc:
                    self._fail(step, f"{self._where(step, 'when')}when: {exc.message}", "render")
                    return
                if not _truthy(condition):
                    self.emit(EventType.STEP_SKIPPED, step.id, reason=f"condition is false: {step.when}")
                    return
        if step.for_each is None:
            outcome = await self.call_step(step, base, None, announced=announced)
            self._record(step, outcome)
            return
        await self._run_items(step, base)

    def _resolve_timeout(self, step: Step, base: Mapping[str, Any]) -> float | None:
        """`timeout: "{{ ... }}"`: rendered once, before the step starts; a bad one fails the step."""
        from .expressions import RenderError, render_value
        from .model import parse_duration

        if self.knowledge is not None and self.knowledge.unknown_in(step.timeout_template) is not None:
            return 0.0  # a dry-run cannot know it; no limit for the simulation
        try:
            value = render_value(step.timeout_template, base)
            seconds = parse_duration(value)
            if seconds < 0:
                raise ValueError(value)
        except RenderError as exc:
            self._fail(step, f"{self._where(step, 'timeout')}timeout: {exc.message}", "render")
            return None
        except ValueError:
            self._fail(
                step,
                f"{self._where(step, 'timeout')}timeout: {value!r} is not a duration ({DURATION_FORMS})",
                "invalid_input",
            )
            return None
        return seconds

    async def _run_items(self, step: Step, base: Mapping[str, Any]) -> None:
        from .expressions import RenderError, render_value

        unknown = self.knowledge.unknown_in(step.for_each) if self.knowledge is not None else None
        if unknown is not None:
            self._record(step, self._not_run(step, step.call, unknown, "its items are"))
            return
        try:
            items = render_value(step.for_each, base)
        except RenderError as exc:
            self._fail(step, f"{self._where(step, 'for_each')}for_each: {exc.message}", "render")
            return
        if not isinstance(items, list):
            self._fail(
                step,
                f"{self._where(step, 'for_each')}for_each gave {type(items).__name__}, not a list",
                "render",
            )
            return
        try:
            self.budget.check_items(len(items))
        except LimitExceeded as exc:
            self._fail(step, f"for_each: {exc}", "limit")
            return
        self.items_of[step.id] = items
        results: list[AttemptResult | None] = [None] * len(items)
        main = step.kind is StepKind.MAIN
        stop_after = step.item_stop_after(len(items), fail_fast=main and self.workflow.fail_fast)
        failures = 0

        def item_failed(index: int) -> None:
            nonlocal failures
            failures += 1
            if stop_after is None or failures <= stop_after or step.id in self.rollout_stopped:
                return
            policy = f"max_failures: {step.max_failures.describe()}" if step.max_failures else "fail_fast"
            why = f"the rollout stopped at failed item {index} ({policy})"
            self.rollout_stopped[step.id] = f"not started: {why}"
            if main and not step.continue_on_error:
                self.conductor.failed(step.id)

        async def one(index: int, item: Any, slot: object, after: trio.Event | None, me: trio.Event) -> None:
            try:
                if after is not None and not after.is_set():
                    await after.wait()  # the item before it has begun: run up to the first pause
                me.set()
                scope = self.scope(item=item, index=index)
                outcome = await self.call_step(step, scope, index)
                results[index] = outcome
                if outcome.status is StepStatus.FAILED:
                    self.emit(EventType.ITEM_FAILED, step.id, index, error=outcome.error)
                    item_failed(index)
                elif outcome.status is StepStatus.COMPLETED:  # the undo record: for a resumed rollback
                    undo = {} if outcome.undo is None else {"undo": outcome.undo}
                    self.emit(EventType.ITEM_COMPLETED, step.id, index,
                              outputs=outcome.outputs, result=outcome.result, **undo)  # fmt: skip
                elif outcome.status is StepStatus.SIMULATED:  # so the rollback plan knows each item
                    summary = outcome.plan.summary if outcome.plan else ""
                    self.emit(EventType.STEP_PLANNED, step.id, index, plan={"summary": summary})
            finally:
                limiter.release_on_behalf_of(slot)
                self._release_held((step.id, index))

        # Resumed (its agent was lost): what is recorded as settled stays so, failures counted.
        resumed = self.resume.started and bool(self.state.step(step.id).items)
        settled = self._resumed_items(step, items) if resumed else {}
        for index, done_before in sorted(settled.items()):
            results[index] = done_before
            if done_before.status is StepStatus.FAILED:
                item_failed(index)

        # Items start in list order under any concurrency: this one loop takes, item by item,
        # a slot of the step's own limit and one of the execution's, and hands both to the
        # item; holding them is what "started" means. Free slots are taken without waiting, so
        # the first `concurrency` items start together, and each item runs up to its first
        # pause (its attempt event, its process spawned) before the next begins (`after`,
        # cheaper than a `nursery.start` per item). The first item inherits the slot the step
        # was started with. An item waiting for a slot when the rollout or the run stops never
        # starts. (Spawned all at once, items raced: trio may run a batch of new tasks reversed.)
        limiter = trio.CapacityLimiter(step.concurrency or self.workflow.concurrency)
        after: trio.Event | None = None
        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                if index in settled:
                    continue
                key, slot = (step.id, index), object()
                # the first item started (index 0 unless resumed) inherits the step's slot,
                # unless failures settled before a resume stopped the rollout already
                stopped = self.stop_reason(step) is not None
                inherited = None if stopped else self._held.pop((step.id, None), None)
                if inherited is not None:
                    limiter.acquire_on_behalf_of_nowait(slot)  # a fresh limiter: free
                elif not await self._take_item_slots(step, limiter, slot, key):
                    break
                self._held[key] = inherited or key
                me = trio.Event()
                nursery.start_soon(one, index, item, slot, after, me)
                after = me
        done = [r for r in results if r is not None]
        failed = [(i, r) for i, r in enumerate(results) if r is not None and r.status is StepStatus.FAILED]
        outputs = [r.outputs for r in done]
        result = [r.result for r in done]
        self.step_scope[step.id].update(outputs=outputs, result=result)
        unstarted = len(items) - len(done)
        if unstarted and not done:
            self.emit(EventType.STEP_SKIPPED, step.id, reason=self.stop_reason(step))
        elif unstarted or len(failed) > step.item_failures_tolerated(len(items)):
            self._fail_rollout(step, len(items), done, failed, unstarted, outputs)
        elif done and all(r.status is StepStatus.SIMULATED for r in done):
            for index, r in enumerate(results):
                if r is not None and r.plan is not None and r.plan.inverse:
                    self.dry_inverse[(step.id, index)] = r.plan.inverse
            self.emit(
                EventType.STEP_PLANNED,
                step.id,
                outputs=outputs,
                plan={
                    "summary": f"{len(items)} item(s) simulated",
                    "items": [_plan_dict(r.plan, r.inputs, r.unknown_info) for r in done],
                    **_unknown_entry(
                        merge_all(r.unknown for r in done), any(r.outcome_unknown for r in done)
                    ),
                    **self._condition_entry(step),
                },
            )
        else:
            self.emit(
                EventType.STEP_COMPLETED,
                step.id,
                outputs=outputs,
                result=result,
                read_only=all(r.read_only for r in done),
                **self._dry_inputs([r.inputs for r in done]),
                **self._dry_plan(
                    {
                        "items": [
                            _plan_dict(None, r.inputs, r.unknown_info)
                            | ({"outputs_now": r.outputs_now} if r.outputs_now else {})
                            for r in done
                        ],
                        **_unknown_entry(
                            merge_all(r.unknown for r in done), any(r.outcome_unknown for r in done)
                        ),
                    }
                ),
            )

    def _fail_rollout(
        self,
        step: Step,
        total: int,
        done: list[AttemptResult],
        failed: list[tuple[int, AttemptResult]],
        unstarted: int,
        outputs: list[Any],
    ) -> None:
        if failed:
            index, first = failed[0]
            error = f"{len(failed)} of {total} items failed: item {index}: {first.error}"
        else:
            error = f"stopped after {len(done)} of {total} items"
        if unstarted:
            why = self.stop_reason(step) or ""
            error += f"; {unstarted} not started ({why.removeprefix('not started: ')})"
        reason = failed[0][1].reason if failed else "fail_fast"
        self.emit(EventType.STEP_FAILED, step.id, error=error, reason=reason, outputs=outputs)

    async def _take_item_slots(
        self, step: Step, limiter: trio.CapacityLimiter, slot: object, key: tuple[str, int]
    ) -> bool:
        """The step's slot and an execution slot for its next item, taken in list order.

        False (and nothing held) when the rollout or the run has stopped, before or while the
        item waited.
        """
        if self.stop_reason(step) is not None:
            return False
        taken: list[tuple[trio.CapacityLimiter, object]] = []
        for lim, borrower in ((limiter, slot), (self.limiter, key)):
            try:
                lim.acquire_on_behalf_of_nowait(borrower)  # free: no pause, so items start together
            except trio.WouldBlock:
                await lim.acquire_on_behalf_of(borrower)
            taken.append((lim, borrower))
            if self.stop_reason(step) is not None:
                for held_lim, held in taken:
                    held_lim.release_on_behalf_of(held)
                return False
        return True

    async def _take_slot(self, step: Step, item: int | None, first: bool) -> Any:
        """An execution slot for one attempt; the borrower to release it with."""
        held = self._held.pop((step.id, item), None) if first else None
        if held is not None:
            return held  # taken in start order by `_dispatch`, `_launch` or the for_each loop
        borrower = trio.lowlevel.current_task()
        try:
            self.limiter.acquire_nowait()  # no extra trip through the scheduler when free
        except trio.WouldBlock:
            await self.limiter.acquire()
        return borrower

    def stop_reason(self, step: Step) -> str | None:
        """Why a main step or item may not start now: fail-fast, or its rollout stopped."""
        own = self.rollout_stopped.get(step.id)
        if own is not None or step.kind is not StepKind.MAIN:
            return own  # fail-fast stops the main phase only: finally and rollback steps run
        return self.conductor.stop_reason()

    def _dry_inputs(self, inputs: Any) -> dict[str, Any]:
        return {"inputs": inputs} if self.dry_run else {}

    def _dry_plan(self, plan: dict[str, Any]) -> dict[str, Any]:
        return {"plan": plan} if self.dry_run else {}

    def _condition_entry(self, step: Step) -> dict[str, Any]:
        unknown = self.unknown_conditions.get(step.id)
        return {"condition": unknown.text()} if unknown is not None else {}

    def _record(self, step: Step, outcome: AttemptResult) -> None:
        entry = self.step_scope[step.id]
        if outcome.status is StepStatus.COMPLETED:
            entry.update(outputs=outcome.outputs, result=outcome.result)
            dry: dict[str, Any] = {}
            if self.dry_run:  # a read that ran: its inputs, and what of it is unknown
                dry = {
                    "inputs": outcome.inputs,
                    "plan": _plan_dict(None, outcome.inputs, outcome.unknown_info)
                    | _unknown_entry(outcome.unknown, outcome.outcome_unknown)
                    | self._condition_entry(step)
                    | ({"outputs_now": outcome.outputs_now} if outcome.outputs_now else {}),
                }
            self.emit(
                EventType.STEP_COMPLETED,
                step.id,
                outputs=outcome.outputs,
                result=outcome.result,
                undo=outcome.undo,
                read_only=outcome.read_only,
                **dry,
            )
        elif outcome.status is StepStatus.SIMULATED:
            entry.update(outputs=outcome.outputs, result=outcome.result)
            if outcome.plan is not None and outcome.plan.inverse:
                self.dry_inverse[(step.id, None)] = outcome.plan.inverse
            self.emit(
                EventType.STEP_PLANNED,
                step.id,
                outputs=outcome.outputs,
                plan=_plan_dict(outcome.plan, outcome.inputs, outcome.unknown_info)
                | _unknown_entry(outcome.unknown, outcome.outcome_unknown)
                | self._condition_entry(step),
            )
        else:
            self._fail(step, outcome.error or "failed", outcome.reason or "error")

    @staticmethod
    def _where(step: Step, field: str) -> str:
        """`file:line:col: ` of a step's field, for a run-time error about it ('' if unknown)."""
        where = step.where.get(field)
        return f"{where}: " if where else ""

    def _fail(self, step: Step, error: str, reason: str) -> None:
        self.emit(EventType.STEP_FAILED, step.id, error=error, reason=reason)

    async def call_step(
        self, step: Step, scope: Mapping[str, Any], index: int | None, *, announced: bool = False
    ) -> AttemptResult:
        """One call of the step's action with its retry policy; in a dry-run, through `_dry_call`.

        `announced`: the step's `step_started` event recorded its first attempt already."""
        if self.knowledge is None:
            return await self.attempts(step, step.call, scope, item_index=index, announced=announced)
        return await self._dry_call(step, self.knowledge, scope, index)

    def _not_run(self, step: Step, call: ActionCall, unknown: Unknown, what: str) -> AttemptResult:
        assert self.knowledge is not None
        inputs = display_inputs(dict(call.inputs), self.knowledge)
        summary = f"not run: {what} {unknown.text()}"
        if step.id in self.unknown_conditions:
            summary = f"if its condition holds: runs {call.uses}, with inputs not known now ({what} unknown)"
        result = AttemptResult(
            StepStatus.SIMULATED,
            inputs=inputs,
            plan=Plan(summary=summary),
            unknown=unknown,
            outcome_unknown=True,
        )
        self._learn(step, result, None, {("result",): unknown})
        return result

    async def _dry_call(
        self, step: Step, knowledge: Knowledge, scope: Mapping[str, Any], index: int | None
    ) -> AttemptResult:
        """A dry-run call that knows what it simulated (docs/running.md, "Dry-run").

        Inputs that read an unknown value are not rendered (the step is reported as unknown). A
        read that comes after a simulated write sees the world before that write: its result is
        unknown unless the adapter answered through its overlay of simulated writes, and a failure
        is "unknown", never "will fail". Under a condition that depends on a simulated change, the
        step shows its consequence and is unknown as a whole. Unknown values are marked in
        `knowledge`, so everything derived from them is unknown too.
        """
        condition = self.unknown_conditions.get(step.id)
        unknown_inputs = knowledge.unknown_in(step.call.inputs)
        info = registry.action_info(step.call.uses)
        pure = bool(info is not None and info.input_schema.get("x-wpk", {}).get("pure"))
        call = step.call
        if unknown_inputs is not None:
            if not pure:
                return self._not_run(step, step.call, unknown_inputs.merge(condition), "its inputs are")
            # A core action observes nothing: run it with each unknown value shown as such, so
            # its consequence ("fails: pods=<unknown ...>") is in the plan.
            call = dataclasses.replace(call, inputs=display_inputs(dict(call.inputs), knowledge))
        upstream = {} if pure else knowledge.upstream_simulated(step)
        tainted = bool(upstream) or condition is not None or unknown_inputs is not None
        # One attempt when the answer depends on a simulated change: a retry cannot make it known.
        policy = RetryPolicy() if tainted else None
        result = await self.attempts(step, call, scope, item_index=index, policy=policy)
        because_upstream = merge_all(
            (Unknown(tuple(upstream), "what it reads may change with that step") if upstream else None,
             unknown_inputs)
        )  # fmt: skip
        parts: dict[tuple[str | int, ...], Unknown] = {}
        if result.status is StepStatus.FAILED:
            if not upstream and condition is None:
                return result  # certain: nothing simulated decides it (core.fail fails whatever it says)
            unknown = merge_all((condition, because_upstream))
            assert unknown is not None
            failed = AttemptResult(
                StepStatus.SIMULATED,
                inputs=result.inputs,
                plan=Plan(
                    summary=(
                        f"if its condition holds: fails: {result.error}"
                        if condition is not None
                        else f"fails now ({result.error}), but {unknown.text()}"
                    )
                ),
                unknown=unknown,
                outcome_unknown=True,
            )
            self._learn(step, failed, index, {("result",): unknown})
            return failed
        if result.status is StepStatus.SIMULATED:
            knowledge.simulated_write(step)
            own = Unknown((step.id,), "a simulated step does not run, so its result is not known")
            if result.plan is None or result.plan.result is None:
                parts[("result",)] = own
            else:
                for part in result.plan.unknown:
                    parts[("result", *part.path)] = Unknown((part.step,), part.why)
        else:
            outcome = self.outcomes.get((step.id, index))
            same_adapter = all(a == step.call.adapter for a in upstream.values())
            if outcome is not None and outcome.sees_simulated and same_adapter:
                for part in outcome.unknown:
                    parts[("result", *part.path)] = Unknown((part.step,), part.why)
            elif because_upstream is not None:
                parts[("result",)] = because_upstream
        if condition is not None:
            parts = {("result",): merge_all((condition, *parts.values())) or condition}
        result.unknown = merge_all(parts.values())
        # The step's success is unknown when all it returned is unknown (a read of a changed
        # world, a wait on a simulated change); a prediction with unknown parts is not.
        result.outcome_unknown = ("result",) in parts and result.status is StepStatus.COMPLETED and not pure
        if condition is not None:
            result.outcome_unknown = False
        self._learn(step, result, index, parts)
        return result

    def _learn(
        self,
        step: Step,
        result: AttemptResult,
        index: int | None,
        parts: Mapping[tuple[str | int, ...], Unknown],
    ) -> None:
        """Mark what of this step is unknown, and show unknown outputs as such."""
        knowledge = self.knowledge
        assert knowledge is not None
        if not parts:
            return
        shown, unknown_outputs = knowledge.unknown_outputs(step, result.outputs, parts)
        if result.status is StepStatus.COMPLETED and unknown_outputs and isinstance(result.outputs, dict):
            # What the read sees now is still worth showing, beside "unknown".
            result.outputs_now = {k: v for k, v in result.outputs.items() if k in unknown_outputs}
        result.outputs = shown
        info = {**knowledge.describe_parts(parts)}
        info.update({f"outputs.{name}": u.text() for name, u in unknown_outputs.items()})
        result.unknown_info = info
        condition = self.unknown_conditions.get(step.id)
        if condition is not None:
            knowledge.mark(("steps", step.id), condition)
        if index is not None:  # items: the step's lists are partly unknown, so all of them are
            unknown = merge_all(parts.values())
            assert unknown is not None
            knowledge.mark(("steps", step.id, "result"), unknown)
            knowledge.mark(("steps", step.id, "outputs"), unknown)
            return
        for path, unknown in parts.items():
            knowledge.mark(("steps", step.id, *path), unknown)
        for name, unknown in unknown_outputs.items():
            knowledge.mark(("steps", step.id, "outputs", name), unknown)

    async def attempts(
        self,
        step: Step,
        call: ActionCall,
        scope: Mapping[str, Any],
        *,
        item_index: int | None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        compensating: bool = False,
        announced: bool = False,
    ) -> AttemptResult:
        """Every attempt of one call: render, check, run under the timeout, retry with backoff.

        Each attempt holds one of the execution's `concurrency` slots. A main step's or an
        item's first attempt finds its slot already taken for it, in start order (`_held`).
        """
        policy = policy or step.retries
        timeout = timeout if timeout is not None else step.timeout
        info = registry.action_info(call.uses)
        failure = StepFailure("no attempt made", retryable=False, reason="error")
        for attempt in range(1, policy.attempts + 1):
            borrower = await self._take_slot(step, item_index, attempt == 1 and not compensating)
            try:
                if not compensating and not (announced and attempt == 1):
                    self.emit(EventType.ATTEMPT_STARTED, step.id, item_index, attempt=attempt)
                return await self._attempt(
                    step,
                    call,
                    info,
                    {
                        **scope,
                        "execution": {"id": self.execution_id, "dry_run": self.dry_run, "attempt": attempt},
                    }
                    if call.templated or step.outputs  # only templates read the scope
                    else scope,
                    item_index,
                    attempt,
                    timeout,
                    undo=compensating,
                )
            except StepFailure as exc:
                failure = exc
            finally:
                self.limiter.release_on_behalf_of(borrower)
            final = not failure.retryable or attempt == policy.attempts
            delay = None if final else policy.delay(attempt, self.rng)
            # A step's last failure is told by STEP_FAILED; an item's needs its own record.
            if not compensating and (delay is not None or item_index is not None):
                retry = {} if delay is None else {"retry_in": round(delay, 3)}
                self.emit(EventType.ATTEMPT_FAILED, step.id, item_index, attempt=attempt,
                          error=failure.message, reason=failure.reason, **retry)  # fmt: skip
            if delay is None:
                break
            await trio.sleep(delay)
        return AttemptResult(StepStatus.FAILED, error=failure.message, reason=failure.reason)

    async def _attempt(
        self,
        step: Step,
        call: ActionCall,
        info: ActionInfo | None,
        scope: Mapping[str, Any],
        item_index: int | None,
        attempt: int,
        timeout: float | None,
        *,
        undo: bool = False,
    ) -> AttemptResult:
        if info is None:
            raise StepFailure(f"unknown action {call.uses!r}", retryable=False, reason="invalid_input")
        try:
            if call.templated:
                inputs = self.render_inputs(call, scope, info, step)
                _check_inputs(call.uses, inputs)
            else:
                inputs = call.inputs  # checked when the runbook was validated
        except InputError as exc:
            raise StepFailure(exc.message, retryable=False, reason="invalid_input") from None
        read_only = info.is_read_only(inputs)
        simulate = self.dry_run and (
            step.dry_run == "simulate" or (not read_only and step.dry_run != "execute")
        )
        key = idempotency_key(self.execution_id, step.id, item_index, undo=undo)
        ctx = StepContext(
            execution_id=self.execution_id,
            step_id=step.id,
            attempt=attempt,
            idempotency_key=key,
            dry_run=self.dry_run,
            log=self.log_sink(step.id, item_index),
        )
        if not simulate and not read_only:
            # The ledger records the attempt before its side effect. Outside the adapter's error
            # handling: a store that fails here ends the run (StoreError), it is no step failure.
            await self.store.flush()
        try:
            adapter = self.adapters.get(call.adapter)
            with trio.fail_after(timeout) if timeout else _NO_LIMIT:
                if simulate:
                    plan = await adapter.plan(call.action, inputs, ctx)
                else:
                    outcome = await adapter.apply(call.action, inputs, ctx)
        except trio.TooSlowError:
            raise StepFailure(f"timed out after {timeout:g}s", retryable=True, reason="timeout") from None
        except AdapterError as exc:
            raise StepFailure(exc.message, retryable=exc.retryable, reason=exc.reason) from None
        except registry.UnknownAdapter:
            raise StepFailure(
                f"adapter {call.adapter!r} is not installed", retryable=False, reason="invalid_input"
            ) from None
        except Exception as exc:  # the adapter boundary: nothing unexpected escapes as a traceback
            raise StepFailure(
                f"{call.uses}: unexpected {type(exc).__name__}: {exc}", retryable=False, reason="internal"
            ) from None
        if simulate:
            outputs = self._outputs(step, plan.result, scope, simulated=True)
            self._check_output(plan.result, outputs)
            return AttemptResult(
                StepStatus.SIMULATED, result=plan.result, outputs=outputs, inputs=inputs, plan=plan
            )
        self.applied_inputs[(step.id, item_index)] = inputs
        self.outcomes[(step.id, item_index)] = outcome
        outputs = self._outputs(step, outcome.result, scope, simulated=False) if step.outputs else {}
        self._check_output(outcome.result, outputs)
        return AttemptResult(
            StepStatus.COMPLETED,
            result=outcome.result,
            outputs=outputs,
            undo=outcome.undo,
            inputs=inputs,
            read_only=read_only,
        )

    def _check_output(self, result: Any, outputs: Any) -> None:
        try:
            self.budget.check_output(result, outputs)
        except LimitExceeded as exc:
            raise StepFailure(str(exc), retryable=False, reason="limit") from None

    def render_inputs(
        self, call: ActionCall, scope: Mapping[str, Any], info: ActionInfo, step: Step | None = None
    ) -> Any:
        """Render a call's templated inputs; a template that cannot render fails the attempt."""
        from .expressions import RenderError, render_value

        quoted = SHELL_QUOTED_FIELDS.get(call.uses, ())
        properties = info.input_schema.get("properties", {})
        rendered = {}
        for name, value in call.inputs.items():
            try:
                rendered[name] = as_text_where_expected(
                    render_value(value, scope, shell=name in quoted), properties.get(name, {})
                )
            except RenderError as exc:
                where = self._where(step, f"with.{name}") if step is not None and call is step.call else ""
                raise StepFailure(
                    f"{where}inputs: {name}: {exc.message}", retryable=False, reason="render"
                ) from None
        return rendered

    def _outputs(self, step: Step, result: Any, scope: Mapping[str, Any], *, simulated: bool) -> Any:
        if not step.outputs:
            return {}
        from .expressions import RenderError, render_value

        outputs = {}
        for name, template in step.outputs.items():
            try:
                outputs[name] = render_value(template, {**scope, "result": result})
            except RenderError as exc:
                if simulated:
                    continue
                where = self._where(step, f"outputs.{name}")
                raise StepFailure(
                    f"{where}outputs.{name}: {exc.message}", retryable=False, reason="render"
                ) from None
        return outputs

    # -- rollback ------------------------------------------------------------------------------
    def rollback_plan(self, *, dry_run: bool = False) -> list[Undo]:
        """What rollback does, in order: the same list for `rollback()` and the dry-run's plan."""
        statuses = (
            (StepStatus.COMPLETED, StepStatus.SIMULATED)
            if dry_run
            else (StepStatus.COMPLETED, StepStatus.COMPENSATING)  # a resumed rollback's step under way
        )
        return plan_rollback(
            self.workflow,
            self.state,
            self._describe_undo,
            statuses=statuses,
            note=self._dry_undo_note if dry_run else None,
        )

    def _undo_scope(self, step: Step, index: int | None) -> dict[str, Any]:
        if index is None:
            scope = self.scope()
        else:
            items = self._recorded_items(step)
            scope = self.scope(item=items[index] if index < len(items) else None, index=index)
        if self.dry_run:  # a rollback only follows writes that completed: so they read in its plan
            simulated = str(StepStatus.SIMULATED)
            scope["steps"] = {
                k: {**v, "status": str(StepStatus.COMPLETED)} if v.get("status") == simulated else v
                for k, v in self.step_scope.items()
            }
        return scope

    def _recorded_items(self, step: Step) -> list[Any]:
        """A `for_each` step's items: as this agent rendered them, or, in a resumed or manual
        rollback, rendered again from the recorded scope (the same params and outputs)."""
        items = self.items_of.get(step.id)
        if items is None:
            from .expressions import RenderError, render_value

            try:
                rendered = render_value(step.for_each, self.scope())
            except RenderError:
                rendered = None
            items = self.items_of[step.id] = rendered if isinstance(rendered, list) else []
        return items

    def _describe_undo(self, step: Step, kind: UndoKind, index: int | None) -> str:
        """Concrete words for one compensation: the rendered body, or the adapter's inverse."""
        if kind is UndoKind.INVERSE:
            outcome = self.outcomes.get((step.id, index))
            words = outcome.inverse if outcome is not None else self.dry_inverse.get((step.id, index))
            return words or f"undo {step.call.uses} (automatic inverse)"
        call = step.rollback_body if kind is UndoKind.BODY else step.call
        assert call is not None
        info = registry.action_info(call.uses)
        if info is None or not call.templated:
            return self.redactor.text(describe_call(call.uses, dict(call.inputs)))
        if self.knowledge is not None:
            unknown = self.knowledge.unknown_in(call.inputs)
            if unknown is not None:
                return f"run {call.uses} ({unknown.text()})"
        try:
            inputs = self.render_inputs(call, self._undo_scope(step, index), info)
        except StepFailure as exc:
            return f"run {call.uses} (its inputs cannot be rendered now: {exc.message})"
        return self.redactor.text(describe_call(call.uses, mask_secret_objects(inputs)))

    def _dry_undo_note(self, step: Step, kind: UndoKind, index: int | None) -> str | None:
        if kind is UndoKind.INVERSE and (step.id, index) in self.dry_inverse:
            return "read now; the rollback uses what the step records when it runs"
        return None

    async def rollback(self) -> ExecutionStatus:
        """Compensate completed steps (reverse completion order), then `spec.rollback.steps`."""
        wf = self.workflow
        plan = self.rollback_plan()
        problems: list[str] = []
        if not self.resume.rollback_started:
            self.emit(EventType.ROLLBACK_STARTED, plan=[u.as_dict() for u in plan])
        else:  # resumed: what was compensated stays so; what was under way, `_compensate` decides
            for record in list(self.state.steps.values()):
                if record.status is StepStatus.COMPENSATION_FAILED:
                    problems.append(f"{record.id}: {record.compensation_error}")
        acting = [u for u in plan if u.acts]
        order = list(dict.fromkeys(u.step for u in acting))
        # Resumed: a `for_each` step whose items were all settled when its agent was lost (only
        # the step's own end is missing) is in no plan entry; it ends first.
        ends = [r.id for r in self.state.steps.values() if r.status is StepStatus.COMPENSATING]
        with self._shield() as scope:
            scope.deadline = trio.current_time() + wf.rollback_timeout
            for step_id in [*(s for s in ends if s not in order), *order]:
                error = await self._compensate(wf.step(step_id), [u for u in acting if u.step == step_id])
                if error:
                    problems.append(f"{step_id}: {error}")
            for step in wf.rollback_steps:
                if not await self._resumed_run(step):
                    continue
                await self.run_step(step)
                record = self.state.step(step.id)
                if record.status is StepStatus.FAILED and not step.continue_on_error:
                    problems.append(f"rollback step {step.id}: {record.error}")
        if scope.cancelled_caught:
            problems.append(f"rollback timed out after {wf.rollback_timeout:g}s")
            for step_id in dict.fromkeys(u.step for u in acting):
                if self.state.step(step_id).status is StepStatus.COMPENSATING:
                    self.emit(EventType.COMPENSATION_FAILED, step_id, error="rollback timed out")
        status = ExecutionStatus.ROLLBACK_FAILED if problems else ExecutionStatus.ROLLED_BACK
        self.emit(
            EventType.ROLLBACK_FINISHED,
            status=str(status),
            **({"error": "rollback incomplete: " + "; ".join(problems)} if problems else {}),
        )
        return status

    async def _compensate(self, step: Step, undos: list[Undo]) -> str | None:
        """Carry out one step's entries of the plan (one, or one per `for_each` item, in order);
        resumed, go on from where the lost agent stopped (`_resumed_compensation`)."""
        how = undos[0].action if len(undos) == 1 else f"{len(undos)} item(s), last first"
        how = how if undos else "nothing left to undo"
        errors: list[str] = []
        lost: set[int | None] = set()  # resumed: entries under way at the crash, not to repeat
        resumed: dict[str, str] = {}
        if self.state.step(step.id).status is StepStatus.COMPENSATING:
            errors, lost, resumed["resumed"] = self._resumed_compensation(step, undos)
            if None in lost:  # its one compensation may not run again
                self.emit(EventType.COMPENSATION_FAILED, step.id, error=LOST_COMPENSATION_ERROR)
                return LOST_COMPENSATION_ERROR
        self.emit(EventType.COMPENSATION_STARTED, step.id, how=how, **resumed)
        for undo in undos:
            index = undo.item
            if index in lost:
                error: str | None = LOST_COMPENSATION_ERROR
            else:
                if index is not None:  # so a resumed rollback knows which item was under way
                    self.emit(EventType.COMPENSATION_STARTED, step.id, index, how=undo.action)
                error = await self._compensate_one(step, undo)
            if error:
                errors.append(error if index is None else f"item {index}: {error}")
                if index is not None:
                    self.emit(EventType.COMPENSATION_FAILED, step.id, index, error=error, how=undo.action)
            elif index is not None:
                self.emit(EventType.COMPENSATION_COMPLETED, step.id, index, how=undo.action)
        if errors:
            self.emit(EventType.COMPENSATION_FAILED, step.id, error="; ".join(errors))
            return "; ".join(errors)
        self.emit(EventType.COMPENSATION_COMPLETED, step.id)
        return None

    def _resumed_compensation(self, step: Step, undos: list[Undo]) -> tuple[list[str], set[int | None], str]:
        """A step its lost agent was compensating (docs/stores.md): the item failures already
        recorded, the entries under way that may not run again (`compensation.rerun_reason`
        says which may), and what the record says about it."""
        items = self.state.step(step.id).items or {}
        errors = [f"item {i}: {it.error}" for i, it in sorted(items.items())
                  if it.status is StepStatus.COMPENSATION_FAILED]  # fmt: skip
        lost: set[int | None] = set()
        notes = []
        for undo in undos:
            if undo.item is not None and items[undo.item].status is not StepStatus.COMPENSATING:
                continue  # not started when the agent was lost: it runs
            label = "" if undo.item is None else f"item {undo.item} "
            why = self._rerun_reason(step, undo)
            if why is None:
                lost.add(undo.item)
                notes.append(f"{label}not run again (outcome unknown)")
            else:
                notes.append(f"{label}run again ({why})")
        if not notes:
            notes.append("goes on with the items not yet undone" if undos else "every item was settled")
        return errors, lost, "resumed after its agent was lost: " + "; ".join(notes)

    def _rerun_reason(self, step: Step, undo: Undo) -> str | None:
        """Why a compensation a lost agent left under way may run again (None: it may not)."""
        body, inputs = step.rollback_body, None
        if undo.kind is UndoKind.BODY and body is not None:
            info = registry.action_info(body.uses)
            try:
                if info is not None:
                    scope = self._undo_scope(step, undo.item)
                    inputs = self.render_inputs(body, scope, info) if body.templated else dict(body.inputs)
            except StepFailure:  # cannot tell: never repeat a write on a guess
                inputs = None
        return rerun_reason(step, undo.kind, inputs)

    async def _compensate_one(self, step: Step, undo: Undo) -> str | None:
        index = undo.item
        if undo.kind is UndoKind.IMPOSSIBLE:
            return (
                f"{step.call.uses} has no automatic inverse and the step has no `rollback:` body; "
                "nothing undone"
            )
        if undo.kind is UndoKind.BODY:
            assert step.rollback_body is not None
            body = step.rollback_body
            outcome = await self.attempts(
                step,
                body,
                self._undo_scope(step, index),
                item_index=index,
                compensating=True,
                policy=body.retries or step.retries,  # docs/format.md: the step's own by default
                timeout=body.timeout or step.timeout,
            )
            return None if outcome.status is StepStatus.COMPLETED else outcome.error
        key = (step.id, index)
        recorded = self.outcomes.get(key)
        if recorded is None:
            return self.unrestorable.get(key, "the outcome to undo is not known to this agent")
        ctx = StepContext(
            execution_id=self.execution_id,
            step_id=step.id,
            attempt=1,
            idempotency_key=idempotency_key(self.execution_id, step.id, index, undo=True),
            dry_run=False,
            log=self.log_sink(step.id, index),
        )
        try:
            adapter = self.adapters.get(step.call.adapter)
            with trio.fail_after(step.timeout) if step.timeout else nullcontext():
                await adapter.compensate(step.call.action, self.applied_inputs.get(key, {}), recorded, ctx)
        except trio.TooSlowError:
            return f"compensation timed out after {step.timeout:g}s"
        except AdapterError as exc:
            return self.redactor.text(exc.message)
        except Exception as exc:
            return f"unexpected {type(exc).__name__}: {exc}"
        return None

    async def _resumed_run(self, step: Step) -> bool:
        """Whether a rollback or finally step runs now: not if a resumed execution has it done."""
        status = self.state.step(step.id).status
        if status is StepStatus.PENDING:
            return True
        return status is StepStatus.RUNNING and (step.for_each is not None or self._may_run_again(step))

    # -- finally -------------------------------------------------------------------------------
    async def _finally_phase(
        self, status: ExecutionStatus, error: str | None
    ) -> tuple[ExecutionStatus, str | None]:
        if not self.workflow.finally_steps:
            return status, error
        with self._shield() as scope:
            scope.deadline = trio.current_time() + FINALLY_TIMEOUT
            for step in self.workflow.finally_steps:
                if await self._resumed_run(step):
                    await self.run_step(step)
                record = self.state.step(step.id)
                failed = record.status is StepStatus.FAILED and not step.continue_on_error
                if failed and status is ExecutionStatus.COMPLETED:
                    status = ExecutionStatus.FAILED
                    error = f"finally step {step.id!r} failed: {record.error}"
        return status, error


def creation_data(
    workflow: Workflow, execution_id: str, params: Mapping[str, Any], dry_run: bool, priority: int | None
) -> dict[str, Any]:
    """The payload of an execution's first event, whoever records it (a run or a submission)."""
    return {
        "execution_id": execution_id,
        "workflow_id": workflow.workflow_id,
        "dry_run": dry_run,
        "priority": workflow.priority if priority is None else priority,
        "params": dict(params),
        "steps": [s.id for s in workflow.steps],
    }


def _holds_masked_secret(undo: Any) -> bool:
    """An undo record whose Secret values were masked for the store cannot restore them."""
    return mask_secret_objects(undo) is not undo


def _unknown_entry(unknown: Unknown | None, outcome: bool) -> dict[str, Any]:
    if unknown is None:
        return {}
    return {"unknown": {**unknown.as_dict(), "outcome": outcome}}


def _plan_dict(plan: Plan | None, inputs: Any, unknown: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"inputs": inputs}
    if unknown:
        out["unknown_parts"] = unknown
    if plan is None:
        return out
    out["summary"] = plan.summary
    if plan.details:
        out["details"] = plan.details
    if plan.diff:
        out["diff"] = plan.diff
    if plan.inverse:
        out["inverse"] = plan.inverse
    return out


__all__ = ["AdapterPool", "RunOptions", "Runner", "creation_data"]
