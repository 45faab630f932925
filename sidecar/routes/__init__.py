"""One module per resource; `ROUTES` is the app's route table, assembled from data."""

from __future__ import annotations

from starlette.routing import Route

from . import agents, executions, health, logs, metrics, openapi, packages

ROUTES: list[Route] = [
    *health.ROUTES,
    *packages.ROUTES,
    *executions.ROUTES,
    *logs.ROUTES,
    *agents.ROUTES,
    *metrics.ROUTES,
    *openapi.ROUTES,
]
