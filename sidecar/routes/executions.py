"""Executions: submit, read, list, cancel, roll back (DESIGN §7).

Each handler checks the request, calls the shared operation in `wpk.engine.executions` (the
same one `wpk executions` uses on a local store) and shapes the answer; refusals are raised
and answered by the error table.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wpk.engine import executions as ops
from wpk.engine.store import ExecutionQuery

from .. import query
from ..errors import ApiError
from ..jsonbody import parse_object
from ..metrics import observer_for
from .common import answer, sidecar
from .packages import content_of

STATUSES = (
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
    "rolling_back",
    "rolled_back",
    "rollback_failed",
)


def _field(payload: dict[str, Any], name: str, kind: type | tuple[type, ...], expected: str) -> Any:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ApiError(400, "bad_request", f"{name} must be {expected}", {"field": name})
    return value


def _not_before(payload: dict[str, Any]) -> float | None:
    """`not_before`: an ISO 8601 time or seconds since the epoch; the execution waits until then."""
    from wpk.engine.scheduler import parse_at

    value = _field(payload, "not_before", (str, int, float), "an ISO 8601 time or seconds since the epoch")
    if value is None:
        return None
    try:
        when = parse_at(str(value)) if isinstance(value, str) else float(value)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"not_before: {exc}", {"field": "not_before"}) from None
    if not 0 <= when < 1e11:
        raise ApiError(400, "bad_request", "not_before: out of range", {"field": "not_before"})
    return when


async def execute(request: Request) -> JSONResponse:
    sc = sidecar(request)
    payload = parse_object(await request.body())
    text = content_of(payload)
    params = _field(payload, "parameters", dict, "an object of parameter values") or {}
    dry_run = bool(_field(payload, "dry_run", bool, "true or false"))
    priority = _field(payload, "priority", int, "an integer from 0 to 100")
    if priority is not None and not 0 <= priority <= 100:
        raise ApiError(400, "bad_request", "priority must be an integer from 0 to 100", {"field": "priority"})
    not_before = _not_before(payload)
    submitted = await ops.submit(
        sc.store,
        sc.cache,
        text,
        params,
        priority=priority,
        dry_run=dry_run,
        environ=sc.environ,
        not_before=not_before,
    )
    sc.agent.wake()
    return answer({"execution_id": submitted.execution_id, "status": submitted.status}, 202)


async def get_execution(request: Request) -> JSONResponse:
    sc = sidecar(request)
    return answer(await ops.record(sc.store, sc.cache, request.path_params["execution_id"]))


async def cancel(request: Request) -> JSONResponse:
    sc = sidecar(request)
    execution_id = request.path_params["execution_id"]
    status = await ops.cancel(sc.store, execution_id, local=sc.agent.cancel)
    return answer({"execution_id": execution_id, "status": status}, 202)


async def rollback(request: Request) -> JSONResponse:
    sc = sidecar(request)
    execution_id = request.path_params["execution_id"]
    job = await ops.begin_rollback(sc.store, sc.cache, execution_id, environ=sc.environ)
    if not isinstance(job, ops.RollbackJob):
        return answer({"execution_id": execution_id, "status": job}, 200)  # nothing to do (again)
    on_event = observer_for(sc.metrics, manual=True)(job.workflow, execution_id, False)

    async def carry_out() -> None:
        await ops.finish_rollback(sc.store, job, adapter_config=sc.adapter_config, on_event=on_event)

    if sc.nursery is not None:
        sc.nursery.start_soon(carry_out)
    else:
        await carry_out()
    return answer({"execution_id": execution_id, "status": "rolling_back"}, 202)


async def list_executions(request: Request) -> JSONResponse:
    sc = sidecar(request)
    raw = request.query_params.get("status", "")
    statuses = tuple(s for s in raw.split(",") if s)
    for s in statuses:
        if s not in STATUSES:
            raise query.bad("status", "a comma-separated list of " + ", ".join(STATUSES))
    cursor_raw = request.query_params.get("cursor")
    cursor = None
    if cursor_raw:
        if not cursor_raw.isascii() or not cursor_raw.isdigit() or len(cursor_raw) > 18:
            raise query.bad("cursor", "the next_cursor of the previous page")
        cursor = int(cursor_raw)
    workflow = request.query_params.get("workflow") or None
    if workflow is not None and len(workflow) > 200:
        raise query.bad("workflow", "a workflow name or name-version")
    q = ExecutionQuery(
        statuses=statuses,
        workflow=workflow,
        since=query.timestamp(request, "since"),
        limit=query.integer(request, "limit", 50, 1, 500),
        cursor=cursor,
    )
    page = await ops.list_executions(sc.store, q)
    return answer(
        {
            "executions": [r.summary() for r in page.rows],
            "next_cursor": None if page.next is None else str(page.next),
        }
    )


ROUTES = [
    Route("/execute", execute, methods=["POST"]),
    Route("/execute/{execution_id}", get_execution, methods=["GET"]),
    Route("/cancel/{execution_id}", cancel, methods=["POST"]),
    Route("/rollback/{execution_id}", rollback, methods=["POST"]),
    Route("/executions", list_executions, methods=["GET"]),
]
