"""Operations on recorded executions, shared by the sidecar and `wpk executions`.

Validate submitted content, submit (a `pending` execution in the store), read a record, list,
read or follow logs, cancel, roll back by hand. The HTTP routes and the local CLI both call
these, so the API and the command line give the same shapes and refuse the same things.
Refusals are exceptions (`NotFound`, `Conflict`, `PackageInvalid`, `ParamError`,
`MissingSecrets`), mapped to answers once, at each boundary.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .events import Event, EventType
from .execute import PackageInvalid
from .model import Workflow, compile_workflow
from .state import ExecutionState, reduce
from .store.base import (
    ROLLBACK_ALLOWED,
    TERMINAL,
    ExecutionQuery,
    ExecutionStore,
    LogLine,
    NewExecution,
    Page,
)
from .validate import ValidationResult, validate_text

REQUEST_PATH = "<request>"
_IDS = random.Random()  # seeded from the OS once; ids need to be unique, not secret (auth guards)


def new_execution_id() -> str:
    """A random (version 4) UUID without a system call per id."""
    return str(uuid.UUID(int=_IDS.getrandbits(128), version=4))


FOLLOW_POLL_SECONDS = 0.1


class NotFound(LookupError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id!r}")
        self.execution_id = execution_id


class Conflict(Exception):
    """The operation does not apply to the execution in its current status."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- content ---------------------------------------------------------------------------------


def content_text(content: str | Mapping[str, Any]) -> str:
    """Runbook text from YAML text or a JSON object.

    An object is written out as indented JSON (which is YAML), so it goes through the same
    loader and every diagnostic has a line and column: those of `json.dumps(obj, indent=2)`.
    """
    if isinstance(content, str):
        return content
    return json.dumps(content, indent=2, ensure_ascii=False)


def pointer_map(result: ValidationResult) -> dict[tuple[int, int], str]:
    """Line:col -> the field there (`spec.steps[0].uses`), for diagnostics of a loaded document."""
    from .schema import describe_path

    doc = result.doc
    out: dict[tuple[int, int], str] = {}
    if doc is None or doc.positions is None:
        return out
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc.positions, ())]
    while stack:
        node, path = stack.pop()
        name = describe_path(path) if path else ""
        out.setdefault((node.line, node.col), name)
        if node.key_line:
            out.setdefault((node.key_line, node.key_col), name)
        children = node.children
        if isinstance(children, dict):
            stack.extend((child, (*path, key)) for key, child in children.items())
        elif isinstance(children, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(children))
    return out


def diagnostics_body(result: ValidationResult) -> dict[str, Any]:
    """`{valid, errors[], warnings[]}` of `POST /validate`, each with path, line, column, pointer."""
    pointers = pointer_map(result) if result.diagnostics else {}

    def one(d: Any) -> dict[str, Any]:
        out: dict[str, Any] = d.as_dict()
        out["pointer"] = pointers.get((d.line, d.col), "")
        return out

    return {
        "valid": result.valid,
        "errors": [one(d) for d in result.errors],
        "warnings": [one(d) for d in result.warnings],
    }


class WorkflowCache:
    """Validated and compiled packages by content digest: a resubmitted runbook costs a lookup."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[ValidationResult, Workflow | None]] = OrderedDict()

    def validate(self, text: str, path: str = REQUEST_PATH) -> tuple[ValidationResult, Workflow | None]:
        key = hashlib.sha256(f"{path}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        result = validate_text(text, path)
        workflow = compile_workflow(result.doc) if result.valid and result.doc is not None else None
        self._entries[key] = (result, workflow)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return result, workflow

    def workflow(self, text: str, path: str = REQUEST_PATH) -> Workflow:
        result, workflow = self.validate(text, path)
        if workflow is None:
            raise PackageInvalid(result.errors)
        return workflow


# -- submit ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    execution_id: str
    status: str


async def submit(
    store: ExecutionStore,
    cache: WorkflowCache,
    text: str,
    params: Mapping[str, Any],
    *,
    path: str = REQUEST_PATH,
    priority: int | None = None,
    dry_run: bool = False,
    rollback: bool = True,
    environ: Mapping[str, str] | None = None,
    status: str = "pending",
    not_before: float | None = None,
) -> Submitted:
    """Check everything a run would refuse, then record a `pending` execution (nothing runs here)."""
    from .params import resolve_params
    from .runner import creation_data
    from .secrets import resolve_secrets

    workflow = cache.workflow(text, path)
    values = resolve_params(workflow.params, params)
    resolve_secrets(workflow.secrets, environ)  # refuse now, not when an agent picks it up
    execution_id = new_execution_id()
    now = time.time()
    chosen = workflow.priority if priority is None else priority
    first = Event(
        1,
        EventType.EXECUTION_CREATED,
        now,
        data=creation_data(workflow, execution_id, values, dry_run, chosen),
    )
    await store.create_execution(
        NewExecution(
            execution_id=execution_id,
            workflow_name=workflow.name,
            workflow_version=workflow.version,
            package=text,
            package_path=path,
            params=values,
            priority=chosen,
            dry_run=dry_run,
            created_at=now,
            status=status,
            rollback=rollback,
            not_before=not_before,
            labels=dict(workflow.placement),
            first_event=first,
        )
    )
    return Submitted(execution_id, status)


def local_execution(
    workflow: Workflow,
    package: str,
    params: Mapping[str, Any],
    *,
    dry_run: bool,
    rollback: bool,
    priority: int | None = None,
) -> NewExecution:
    """The row of a `wpk run` / `wpk dry-run`: created running (no agent may claim it), with
    the runbook text so that a later manual rollback can compile it again."""
    from .runner import creation_data
    from .validate import package_file

    path = package_file(package)
    try:
        text: str | None = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    execution_id = str(uuid.uuid4())
    now = time.time()
    chosen = workflow.priority if priority is None else priority
    data = creation_data(workflow, execution_id, params, dry_run, chosen)
    return NewExecution(
        execution_id=execution_id,
        workflow_name=workflow.name,
        workflow_version=workflow.version,
        package=text,
        package_path=str(path),
        params=dict(params),
        priority=chosen,
        dry_run=dry_run,
        created_at=now,
        status="running",
        rollback=rollback,
        labels=dict(workflow.placement),
        first_event=Event(1, EventType.EXECUTION_CREATED, now, data=data),
    )


# -- read ------------------------------------------------------------------------------------


async def load_state(store: ExecutionStore, execution_id: str) -> tuple[Any, list[Event], ExecutionState]:
    row = await store.get_execution(execution_id)
    if row is None:
        raise NotFound(execution_id)
    events = await store.events(execution_id)
    return row, events, reduce(events)


async def record(store: ExecutionStore, cache: WorkflowCache, execution_id: str) -> dict[str, Any]:
    """The execution record: `GET /execute/{id}`, `wpk executions show`, `wpk run --format json`."""
    row, _, state = await load_state(store, execution_id)
    out = state.as_dict()
    if not out["execution_id"]:  # a row whose first event is not stored yet (never the case today)
        out.update(execution_id=row.execution_id, workflow_id=row.workflow_id)
    if row.status not in TERMINAL and out["status"] in TERMINAL:
        # Between phases (main phase over, rollback or `finally` still to come) the execution
        # is not over: say what the row says, so nobody polling takes this for the end.
        out["status"] = row.status
    if row.status == "pending":  # why it waits, when that can be said (placement, not_before)
        from .agent_control import waiting_reason_of

        out["waiting_reason"] = await waiting_reason_of(store, row)
    if row.dry_run and row.package is not None:
        from .plan import build_plan

        try:
            out["plan"] = build_plan(cache.workflow(row.package, row.package_path), state)
        except PackageInvalid:
            out["plan"] = None
    return out


async def list_executions(store: ExecutionStore, query: ExecutionQuery) -> Page:
    return await store.list_executions(query)


async def read_logs(
    store: ExecutionStore, execution_id: str, offset: int = 0, limit: int = 1000
) -> list[LogLine]:
    if await store.get_execution(execution_id) is None:
        raise NotFound(execution_id)
    return await store.logs(execution_id, offset, limit)


def is_over(status: str) -> bool:
    return status in TERMINAL


async def follow_logs(
    store: ExecutionStore,
    execution_id: str,
    offset: int = 0,
    *,
    poll: float = FOLLOW_POLL_SECONDS,
    wake: Callable[[], Any] | None = None,
) -> AsyncIterator[LogLine]:
    """Log lines from `offset` on, as they are written, until the execution is over."""
    import trio

    row = await store.get_execution(execution_id)
    if row is None:
        raise NotFound(execution_id)
    while True:
        over = is_over(row.status) if row is not None else True
        batch = await store.logs(execution_id, offset, 1000)
        for line in batch:
            yield line
        offset += len(batch)
        if len(batch) == 1000:
            continue
        if over:
            return
        await trio.sleep(poll)
        row = await store.get_execution(execution_id)


# -- cancel and rollback ---------------------------------------------------------------------


async def cancel(
    store: ExecutionStore, execution_id: str, *, local: Callable[[str], bool] | None = None
) -> str:
    """Cancel: a pending execution is cancelled at once; a running one is asked to stop (its
    agent cancels the running steps, then the rollback policy applies). Returns the status now."""
    row = await store.get_execution(execution_id)
    if row is None:
        raise NotFound(execution_id)
    if row.status == "pending":
        events = await store.events(execution_id)
        seq = events[-1].seq if events else 0
        now = time.time()
        closing = [
            Event(
                seq + 1,
                EventType.EXECUTION_FINISHED,
                now,
                data={"status": "cancelled", "error": "cancelled before it started"},
            ),
            Event(seq + 2, EventType.EXECUTION_CLOSED, now, data={"status": "cancelled"}),
        ]
        if await store.transition(execution_id, ("pending",), "cancelled", closing):
            return "cancelled"
        row = await store.get_execution(execution_id)  # claimed meanwhile: cancel it running
        assert row is not None
    if row.status == "running":
        await store.request_cancel(execution_id)
        if local is not None:
            local(execution_id)
        return "running"
    if row.status == "cancelled":
        return "cancelled"
    raise Conflict(f"execution {execution_id} is {row.status}: there is nothing to cancel", row.status)


@dataclass(frozen=True, slots=True)
class RollbackJob:
    """A rollback that has begun (the row says `rolling_back`) and must now be carried out."""

    execution_id: str
    workflow: Workflow
    params: dict[str, Any]
    secrets: dict[str, str]


async def begin_rollback(
    store: ExecutionStore,
    cache: WorkflowCache,
    execution_id: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> RollbackJob | str:
    """Manual rollback (DESIGN §5), first half: check and mark the execution `rolling_back`.

    Allowed for completed, failed and cancelled runs (also those run with `--no-rollback`). On a
    run that is rolling back or was rolled back already it does nothing and returns the status
    (so repeating a rollback is harmless); on anything else it raises Conflict.
    """
    from .secrets import resolve_secrets

    while True:
        row = await store.get_execution(execution_id)
        if row is None:
            raise NotFound(execution_id)
        if row.dry_run:
            raise Conflict(
                f"execution {execution_id} is a dry-run: it changed nothing to roll back", row.status
            )
        if row.status in ("rolling_back", "rolled_back", "rollback_failed"):
            return row.status
        if row.status not in ROLLBACK_ALLOWED:
            raise Conflict(
                f"execution {execution_id} is {row.status}: "
                "rollback is for completed, failed or cancelled runs",
                row.status,
            )
        if row.package is None:
            raise Conflict(
                f"execution {execution_id} has no recorded runbook (it predates this store): "
                "cannot roll back",
                row.status,
            )
        workflow = cache.workflow(row.package, row.package_path)
        secrets = resolve_secrets(workflow.secrets, environ)
        if await store.transition(execution_id, ROLLBACK_ALLOWED, "rolling_back"):
            return RollbackJob(execution_id, workflow, dict(row.params), secrets)
        # the status changed under us (another rollback began): look again


async def finish_rollback(
    store: ExecutionStore,
    job: RollbackJob,
    *,
    adapter_config: Mapping[str, Mapping[str, Any]] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Second half: compensate from the recorded events; ends `rolled_back` or `rollback_failed`."""
    from .execute import rollback_recorded

    history = await store.events(job.execution_id)
    await rollback_recorded(
        job.workflow,
        history,
        params=job.params,
        secrets=job.secrets,
        store=store,
        execution_id=job.execution_id,
        adapter_config=adapter_config or {},
        on_event=on_event,
    )


async def rollback(
    store: ExecutionStore,
    cache: WorkflowCache,
    execution_id: str,
    *,
    environ: Mapping[str, str] | None = None,
    adapter_config: Mapping[str, Mapping[str, Any]] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Both halves, then the record (what `wpk executions rollback` does on the local store)."""
    job = await begin_rollback(store, cache, execution_id, environ=environ)
    if isinstance(job, RollbackJob):
        await finish_rollback(store, job, adapter_config=adapter_config, on_event=on_event)
    return await record(store, cache, execution_id)
