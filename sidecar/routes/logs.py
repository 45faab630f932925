"""`GET /logs/{id}`: log lines from an offset; with `follow=true`, NDJSON until the run is over."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from wpk.engine import executions as ops

from .. import query
from .common import answer, sidecar


async def logs(request: Request) -> Response:
    sc = sidecar(request)
    execution_id = request.path_params["execution_id"]
    offset = query.integer(request, "offset", 0, 0, 10**9)
    limit = query.integer(request, "limit", 1000, 1, 10_000)
    if not query.boolean(request, "follow"):
        lines = await ops.read_logs(sc.store, execution_id, offset, limit)
        return answer(
            {
                "execution_id": execution_id,
                "lines": [line.as_dict() for line in lines],
                "next_offset": offset + len(lines),
            }
        )
    if await sc.store.get_execution(execution_id) is None:
        raise ops.NotFound(execution_id)  # before the 200 and its headers are sent

    async def ndjson() -> AsyncIterator[bytes]:
        async for line in ops.follow_logs(sc.store, execution_id, offset):
            yield (json.dumps(line.as_dict()) + "\n").encode()

    return StreamingResponse(ndjson(), media_type="application/x-ndjson")


ROUTES = [Route("/logs/{execution_id}", logs, methods=["GET"])]
