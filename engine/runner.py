"""The trio runner: carries out what the conductor decides, and records it as events.

Structure (trio's way): one nursery for the main phase inside a cancel scope that carries the
execution timeout and `cancel()`; each step is a task; each attempt runs under its own
`fail_after`; the execution-wide `concurrency` is a `CapacityLimiter`. Rollback and `finally`
run shielded from cancellation but under their own deadlines, so Ctrl-C cannot cut an undo short
and nothing waits forever. The runner never decides what runs next; it asks the conductor.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import trio

from wpk.adapters import registry
from wpk.adapters.base import ActionInfo, Adapter, AdapterError, InputError, Outcome, Plan, StepContext

from .conductor import Compensation, CompensationKind, Conductor, SkipStep, StartStep, compensation_plan
from .events import Event, EventType
from .model import ActionCall, RetryPolicy, Step, Workflow
from .schema import action_validator, describe_path, friendly_message, iter_leaf_errors
from .secrets import Redactor, mask_secret_objects
from .state import ExecutionState, ExecutionStatus, StepStatus
from .store.base import EventStore

_RESULT_EVENTS = frozenset(
    {EventType.STEP_COMPLETED, EventType.ITEM_COMPLETED, EventType.STEP_PLANNED, EventType.STEP_FAILED}
)
SHELL_QUOTED_FIELDS: Mapping[str, tuple[str, ...]] = {"shell.run": ("command",)}
FINALLY_TIMEOUT = 600.0


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


@dataclass(slots=True, kw_only=True)
class RunOptions:
    dry_run: bool = False
    rollback: bool = True
    execution_id: str | None = None
    priority: int | None = None
    adapter_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    seed: int | None = None


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
        self.main_scope: trio.CancelScope | None = None
        self.cancel_requested = False
        self._nursery: trio.Nursery | None = None

    # -- events ------------------------------------------------------------------------------
    def emit(
        self, type_: EventType, step: str | None = None, item: int | None = None, /, **data: Any
    ) -> Event:
        self.seq += 1
        if type_ in _RESULT_EVENTS:
            data = mask_secret_objects(data)
        if self.redactor:
            data = self.redactor.redact(data)
        event = Event(self.seq, type_, time.time(), step, item, data)
        self.state.apply(event)
        if step is not None and item is None and type_ is not EventType.LOG:
            self.step_scope[step]["status"] = str(self.state.steps[step].status)
        self.store.append(self.execution_id, event)
        if self.options.on_event is not None:
            self.options.on_event(event)
        return event

    def log_sink(self, step_id: str, item: int | None) -> Callable[[str, str], None]:
        def log(stream: str, line: str) -> None:
            self.emit(EventType.LOG, step_id, item, stream=stream, line=line)

        return log

    # -- public API ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the main phase: running steps are cancelled, then the rollback policy applies."""
        self.cancel_requested = True
        if self.main_scope is not None:
            self.main_scope.cancel()

    async def run(self) -> ExecutionState:
        wf = self.workflow
        self.emit(
            EventType.EXECUTION_CREATED,
            execution_id=self.execution_id,
            workflow_id=wf.workflow_id,
            dry_run=self.dry_run,
            priority=self.options.priority if self.options.priority is not None else wf.priority,
            params=self.params,
            steps=[s.id for s in wf.steps],
        )
        self.emit(EventType.EXECUTION_STARTED)
        try:
            status, error = await self._main_phase()
            self.emit(EventType.EXECUTION_FINISHED, status=str(status), error=error)
            final = status
            if self._rollback_applies(status):
                final = await self.rollback()
            final, error = await self._finally_phase(final, self.state.error)
            self.emit(EventType.EXECUTION_CLOSED, status=str(final), **({"error": error} if error else {}))
        finally:
            with trio.CancelScope(shield=True):
                await self.adapters.aclose()
                await self.store.flush()
        return self.state

    def _rollback_applies(self, status: ExecutionStatus) -> bool:
        """Failed or cancelled, rollback on, and something to undo (else the status stays as is)."""
        wf = self.workflow
        if (
            status is ExecutionStatus.COMPLETED
            or self.dry_run
            or not (self.options.rollback and wf.rollback_enabled)
        ):
            return False
        return bool(wf.rollback_steps) or bool(compensation_plan(wf, self.state))

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
                    self._dispatch(command)
        self._nursery = None
        if scope.cancelled_caught or self.cancel_requested:
            why = (
                "execution cancelled"
                if self.cancel_requested
                else f"execution timed out after {wf.timeout:g}s"
            )
            for step_id in self.conductor.pending(self.state):
                self.emit(EventType.STEP_SKIPPED, step_id, reason=why)
            status = ExecutionStatus.CANCELLED if self.cancel_requested else ExecutionStatus.FAILED
            return status, why
        if self.conductor.failures:
            first = self.conductor.failures[0]
            return ExecutionStatus.FAILED, f"step {first!r} failed: {self.state.step(first).error}"
        return ExecutionStatus.COMPLETED, None

    def _dispatch(self, command: StartStep | SkipStep) -> None:
        assert self._nursery is not None
        if isinstance(command, StartStep):
            self._nursery.start_soon(
                self._main_step, self.workflow.step(command.step_id), name=command.step_id
            )
        else:
            self.emit(EventType.STEP_SKIPPED, command.step_id, reason=command.reason)
            self._finished(command.step_id)

    def _finished(self, step_id: str) -> None:
        record = self.state.step(step_id)
        for command in self.conductor.on_finished(step_id, record.status):
            self._dispatch(command)

    async def _main_step(self, step: Step) -> None:
        try:
            await self.run_step(step)
        finally:
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
        """Run one step (all items, all attempts); record everything as events."""
        self.emit(EventType.STEP_STARTED, step.id)
        try:
            await self._run_step_body(step)
        except BaseException as exc:
            if is_cancellation(exc):
                self.emit(EventType.STEP_CANCELLED, step.id, error="cancelled")
            raise

    async def _run_step_body(self, step: Step) -> None:
        base = self.scope()
        if step.when is not None:
            from .expressions import RenderError, render_value

            try:
                condition = render_value(step.when, base)
            except RenderError as exc:
                if self.dry_run and self._depends_on_simulated(step):
                    self.emit(
                        EventType.STEP_PLANNED,
                        step.id,
                        plan={
                            "summary": f"would decide at run time: {step.when} "
                            f"(depends on a simulated step: {exc.message})"
                        },
                    )
                    return
                self._fail(step, f"when: {exc.message}", "render")
                return
            if not _truthy(condition):
                self.emit(EventType.STEP_SKIPPED, step.id, reason=f"condition is false: {step.when}")
                return
        if step.for_each is None:
            outcome = await self.attempts(step, step.call, base, item_index=None)
            self._record(step, outcome)
            return
        await self._run_items(step, base)

    async def _run_items(self, step: Step, base: Mapping[str, Any]) -> None:
        from .expressions import RenderError, render_value

        try:
            items = render_value(step.for_each, base)
        except RenderError as exc:
            self._fail(step, f"for_each: {exc.message}", "render")
            return
        if not isinstance(items, list):
            self._fail(step, f"for_each gave {type(items).__name__}, not a list", "render")
            return
        self.items_of[step.id] = items
        results: list[AttemptResult | None] = [None] * len(items)
        limiter = trio.CapacityLimiter(step.concurrency or self.workflow.concurrency)

        async def one(index: int, item: Any) -> None:
            async with limiter:
                scope = self.scope(item=item, index=index)
                outcome = await self.attempts(step, step.call, scope, item_index=index)
            results[index] = outcome
            if outcome.status is StepStatus.FAILED:
                self.emit(EventType.ITEM_FAILED, step.id, index, error=outcome.error)
            elif outcome.status is StepStatus.COMPLETED:
                self.emit(
                    EventType.ITEM_COMPLETED, step.id, index, outputs=outcome.outputs, result=outcome.result
                )

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                nursery.start_soon(one, index, item)
        done = [r for r in results if r is not None]
        failed = [r for r in done if r.status is StepStatus.FAILED]
        outputs = [r.outputs for r in done]
        result = [r.result for r in done]
        self.step_scope[step.id].update(outputs=outputs, result=result)
        if failed:
            self.emit(
                EventType.STEP_FAILED,
                step.id,
                error=f"{len(failed)} of {len(items)} items failed: {failed[0].error}",
                reason=failed[0].reason,
                outputs=outputs,
            )
        elif done and all(r.status is StepStatus.SIMULATED for r in done):
            self.emit(
                EventType.STEP_PLANNED,
                step.id,
                outputs=outputs,
                plan={
                    "summary": f"{len(items)} item(s) simulated",
                    "items": [_plan_dict(r.plan, r.inputs) for r in done],
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
            )

    def _dry_inputs(self, inputs: Any) -> dict[str, Any]:
        return {"inputs": inputs} if self.dry_run else {}

    def _record(self, step: Step, outcome: AttemptResult) -> None:
        entry = self.step_scope[step.id]
        if outcome.status is StepStatus.COMPLETED:
            entry.update(outputs=outcome.outputs, result=outcome.result)
            self.emit(
                EventType.STEP_COMPLETED,
                step.id,
                outputs=outcome.outputs,
                result=outcome.result,
                undo=outcome.undo,
                read_only=outcome.read_only,
                **self._dry_inputs(outcome.inputs),
            )
        elif outcome.status is StepStatus.SIMULATED:
            entry.update(outputs=outcome.outputs, result=outcome.result)
            self.emit(
                EventType.STEP_PLANNED,
                step.id,
                outputs=outcome.outputs,
                plan=_plan_dict(outcome.plan, outcome.inputs),
            )
        else:
            self._fail(step, outcome.error or "failed", outcome.reason or "error")

    def _fail(self, step: Step, error: str, reason: str) -> None:
        self.emit(EventType.STEP_FAILED, step.id, error=error, reason=reason)

    def _depends_on_simulated(self, step: Step) -> bool:
        return any(self.state.step(s).status is StepStatus.SIMULATED for s in self.step_scope if s != step.id)

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
    ) -> AttemptResult:
        """Every attempt of one call: render, check, run under the timeout, retry with backoff."""
        policy = policy or step.retries
        timeout = timeout if timeout is not None else step.timeout
        info = registry.action_info(call.uses)
        failure = StepFailure("no attempt made", retryable=False, reason="error")
        for attempt in range(1, policy.attempts + 1):
            if not compensating:
                self.emit(EventType.ATTEMPT_STARTED, step.id, item_index, attempt=attempt)
            try:
                return await self._attempt(
                    step,
                    call,
                    info,
                    {
                        **scope,
                        "execution": {"id": self.execution_id, "dry_run": self.dry_run, "attempt": attempt},
                    },
                    item_index,
                    attempt,
                    timeout,
                    undo=compensating,
                )
            except StepFailure as exc:
                failure = exc
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
                inputs = self.render_inputs(call, scope, info)
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
        try:
            adapter = self.adapters.get(call.adapter)
            if not simulate and not read_only:
                await self.store.flush()  # the ledger records the attempt before its side effect
            try:
                self.limiter.acquire_nowait()  # no extra trip through the scheduler when free
            except trio.WouldBlock:
                await self.limiter.acquire()
            try:
                with trio.fail_after(timeout) if timeout else nullcontext():
                    if simulate:
                        plan = await adapter.plan(call.action, inputs, ctx)
                    else:
                        outcome = await adapter.apply(call.action, inputs, ctx)
            finally:
                self.limiter.release()
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
            return AttemptResult(
                StepStatus.SIMULATED, result=plan.result, outputs=outputs, inputs=inputs, plan=plan
            )
        self.applied_inputs[(step.id, item_index)] = inputs
        self.outcomes[(step.id, item_index)] = outcome
        outputs = self._outputs(step, outcome.result, scope, simulated=False)
        return AttemptResult(
            StepStatus.COMPLETED,
            result=outcome.result,
            outputs=outputs,
            undo=outcome.undo,
            inputs=inputs,
            read_only=read_only,
        )

    def render_inputs(self, call: ActionCall, scope: Mapping[str, Any], info: ActionInfo) -> Any:
        """Render a call's templated inputs; a template that cannot render fails the attempt."""
        from .expressions import RenderError, render_value

        quoted = SHELL_QUOTED_FIELDS.get(call.uses, ())
        properties = info.input_schema.get("properties", {})
        rendered = {}
        try:
            for name, value in call.inputs.items():
                rendered[name] = as_text_where_expected(
                    render_value(value, scope, shell=name in quoted), properties.get(name, {})
                )
        except RenderError as exc:
            raise StepFailure(f"inputs: {exc.message}", retryable=False, reason="render") from None
        return rendered

    def _outputs(self, step: Step, result: Any, scope: Mapping[str, Any], *, simulated: bool) -> Any:
        if not step.outputs:
            return {}
        from .expressions import RenderError, render_value

        try:
            return render_value(dict(step.outputs), {**scope, "result": result})
        except RenderError as exc:
            if simulated:
                return {}
            raise StepFailure(f"outputs: {exc.message}", retryable=False, reason="render") from None

    # -- rollback ------------------------------------------------------------------------------
    async def rollback(self) -> ExecutionStatus:
        """Compensate completed steps (reverse completion order), then `spec.rollback.steps`."""
        wf = self.workflow
        plan = compensation_plan(wf, self.state)
        self.emit(
            EventType.ROLLBACK_STARTED,
            plan=[{"step": c.step_id, "action": c.describe(wf.step(c.step_id))} for c in plan],
        )
        problems: list[str] = []
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + wf.rollback_timeout
            for comp in plan:
                error = await self._compensate(comp)
                if error:
                    problems.append(f"{comp.step_id}: {error}")
            for step in wf.rollback_steps:
                await self.run_step(step)
                record = self.state.step(step.id)
                if record.status is StepStatus.FAILED and not step.continue_on_error:
                    problems.append(f"rollback step {step.id}: {record.error}")
        if scope.cancelled_caught:
            problems.append(f"rollback timed out after {wf.rollback_timeout:g}s")
            for comp in plan:
                if self.state.step(comp.step_id).status is StepStatus.COMPENSATING:
                    self.emit(EventType.COMPENSATION_FAILED, comp.step_id, error="rollback timed out")
        status = ExecutionStatus.ROLLBACK_FAILED if problems else ExecutionStatus.ROLLED_BACK
        self.emit(
            EventType.ROLLBACK_FINISHED,
            status=str(status),
            **({"error": "rollback incomplete: " + "; ".join(problems)} if problems else {}),
        )
        return status

    async def _compensate(self, comp: Compensation) -> str | None:
        step = self.workflow.step(comp.step_id)
        self.emit(EventType.COMPENSATION_STARTED, step.id, how=comp.describe(step))
        errors: list[str] = []
        for index in comp.items or (None,):
            error = await self._compensate_one(step, comp.kind, index)
            if error:
                errors.append(error if index is None else f"item {index}: {error}")
                if index is not None:
                    self.emit(EventType.COMPENSATION_FAILED, step.id, index, error=error)
            elif index is not None:
                self.emit(EventType.COMPENSATION_COMPLETED, step.id, index)
        if errors:
            self.emit(EventType.COMPENSATION_FAILED, step.id, error="; ".join(errors))
            return "; ".join(errors)
        self.emit(EventType.COMPENSATION_COMPLETED, step.id)
        return None

    async def _compensate_one(self, step: Step, kind: CompensationKind, index: int | None) -> str | None:
        if kind is CompensationKind.IMPOSSIBLE:
            return (
                f"{step.call.uses} has no automatic inverse and the step has no `rollback:` body; "
                "nothing undone"
            )
        if kind is CompensationKind.BODY:
            assert step.rollback_body is not None
            if index is not None:
                scope = self.scope(item=self.items_of.get(step.id, [None] * (index + 1))[index], index=index)
            else:
                scope = self.scope()
            body = step.rollback_body
            outcome = await self.attempts(
                step,
                body,
                scope,
                item_index=index,
                compensating=True,
                policy=body.retries or step.retries,
                timeout=body.timeout or step.timeout,
            )
            return None if outcome.status is StepStatus.COMPLETED else outcome.error
        key = (step.id, index)
        recorded = self.outcomes.get(key)
        if recorded is None:
            return "the outcome to undo is not known to this agent"
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

    # -- finally -------------------------------------------------------------------------------
    async def _finally_phase(
        self, status: ExecutionStatus, error: str | None
    ) -> tuple[ExecutionStatus, str | None]:
        if not self.workflow.finally_steps:
            return status, error
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + FINALLY_TIMEOUT
            for step in self.workflow.finally_steps:
                await self.run_step(step)
                record = self.state.step(step.id)
                failed = record.status is StepStatus.FAILED and not step.continue_on_error
                if failed and status is ExecutionStatus.COMPLETED:
                    status = ExecutionStatus.FAILED
                    error = f"finally step {step.id!r} failed: {record.error}"
        return status, error


def _plan_dict(plan: Plan | None, inputs: Any) -> dict[str, Any]:
    if plan is None:
        return {"inputs": inputs}
    out: dict[str, Any] = {"summary": plan.summary, "inputs": inputs}
    if plan.details:
        out["details"] = plan.details
    if plan.diff:
        out["diff"] = plan.diff
    if plan.inverse:
        out["inverse"] = plan.inverse
    return out


__all__ = ["AdapterPool", "RunOptions", "Runner"]
