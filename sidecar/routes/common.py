"""Helpers every route shares: the Sidecar of the app, JSON answers."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..context import Sidecar


def sidecar(request: Request) -> Sidecar:
    return cast(Sidecar, request.app.state.sidecar)


def answer(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)
