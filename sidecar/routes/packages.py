"""`POST /validate` and `POST /init`: runbooks checked, adapters listed. Nothing is run here."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wpk.engine.executions import content_text, diagnostics_body

from ..errors import ApiError
from ..jsonbody import parse_object
from .common import answer, sidecar


def content_of(payload: dict[str, Any]) -> str:
    """`wpk_content` as runbook text: YAML text, or a JSON object written out as JSON text."""
    content = payload.get("wpk_content")
    if not isinstance(content, str | dict):
        raise ApiError(
            400,
            "bad_request",
            "wpk_content must be the runbook: YAML text or a JSON object",
            {"field": "wpk_content"},
        )
    return content_text(content)


async def validate(request: Request) -> JSONResponse:
    sc = sidecar(request)
    payload = parse_object(await request.body())
    result, _ = sc.cache.validate(content_of(payload))
    return answer(diagnostics_body(result))


async def init(request: Request) -> JSONResponse:
    """Load the adapters with this agent's configuration and say what each offers."""
    from wpk.adapters import registry

    sc = sidecar(request)
    adapters = []
    for name in registry.adapter_names():
        entry: dict[str, Any] = {"name": name, "ok": True, "error": None, "actions": []}
        try:
            adapter = registry.create_adapter(name, sc.adapter_config.get(name, {}))
            try:
                for action, info in sorted(adapter.actions().items()):
                    entry["actions"].append(
                        {
                            "uses": f"{name}.{action}",
                            "read_only": info.read_only,
                            "inverse": str(info.inverse),
                            "description": info.description,
                            "input_schema": dict(info.input_schema),
                        }
                    )
            finally:
                await adapter.aclose()
        except Exception as exc:  # an adapter that cannot start is reported, not fatal
            entry.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        adapters.append(entry)
    try:
        await sc.store.queue_depth()
        store = {"kind": sc.store_kind, "ok": True, "error": None}
    except Exception as exc:
        store = {"kind": sc.store_kind, "ok": False, "error": type(exc).__name__}
    return answer(
        {"agent_id": sc.agent.config.agent_id, "version": sc.version, "store": store, "adapters": adapters}
    )


ROUTES = [Route("/validate", validate, methods=["POST"]), Route("/init", init, methods=["POST"])]
