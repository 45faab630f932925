"""`GET /health`: is this agent up, what is it doing (no auth: probes call it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .common import answer, sidecar


async def health(request: Request) -> JSONResponse:
    sc = sidecar(request)
    return answer(
        {
            "status": "ok",
            "version": sc.version,
            "agent_id": sc.agent.config.agent_id,
            "agent_state": sc.agent.state,
            "active_executions": sc.agent.active,
        }
    )


ROUTES = [Route("/health", health, methods=["GET"])]
