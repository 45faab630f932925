"""`GET /openapi.json`: the API described as data (sidecar/openapi.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..openapi import document
from .common import answer, sidecar


async def openapi(request: Request) -> JSONResponse:
    return answer(document(sidecar(request).version))


ROUTES = [Route("/openapi.json", openapi, methods=["GET"])]
