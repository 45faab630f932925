"""Agents and the queue: list, pause, resume, drain; the pending executions in claim order.

A request for this process's own agent applies at once; one for another agent sharing the store
is recorded there and applied at that agent's next heartbeat (`requested` in the answer). An
illegal change (resume a stopped agent) is a 409 naming the states it could go to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wpk.engine import agent_control as ops

from .. import query
from .common import answer, sidecar


async def list_agents(request: Request) -> JSONResponse:
    sc = sidecar(request)
    return answer({"agents": await ops.list_agents(sc.store)})


async def get_agent(request: Request) -> JSONResponse:
    sc = sidecar(request)
    return answer(await ops.get_agent(sc.store, request.path_params["agent_id"]))


def _control(action: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handle(request: Request) -> JSONResponse:
        sc = sidecar(request)
        agent_id = request.path_params["agent_id"]
        return answer(await ops.control(sc.store, agent_id, action, local=sc.agent), 202)

    handle.__name__ = f"{action}_agent"
    return handle


async def get_queue(request: Request) -> JSONResponse:
    sc = sidecar(request)
    limit = query.integer(request, "limit", 100, 1, 1000)
    return answer(await ops.queue(sc.store, aging_rate=sc.agent.config.aging_rate, limit=limit))


ROUTES = [
    Route("/agents", list_agents, methods=["GET"]),
    Route("/agents/{agent_id}", get_agent, methods=["GET"]),
    *(
        Route(f"/agents/{{agent_id}}/{a}", _control(a), methods=["POST"])
        for a in ("pause", "resume", "drain")
    ),
    Route("/queue", get_queue, methods=["GET"]),
]
