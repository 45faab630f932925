"""`GET /metrics`: the Prometheus text exposition (no auth: scrapers call it)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .common import sidecar


async def metrics(request: Request) -> Response:
    sc = sidecar(request)
    depth = await sc.store.queue_depth()
    agents = await sc.store.list_agents()
    sc.metrics.set_store_figures(depth, [a.state for a in agents])
    return Response(sc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
