"""Errors as answers, in one table at the boundary (httpx's `map_httpcore_exceptions` way).

Every error body is `{"error": {"code", "message", "details"}}`. Known refusals map to their
status here; anything else is a 500 with a fixed message: no traceback, no exception text (it
could hold a secret or a path) ever reaches a client. The pure ASGI middleware (auth, body
limit) answer with the same shape through `send_error`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wpk.engine.agent_control import AgentNotFound
from wpk.engine.execute import PackageInvalid
from wpk.engine.executions import Conflict, NotFound
from wpk.engine.params import ParamError
from wpk.engine.scheduler import IllegalTransition
from wpk.engine.secrets import MissingSecrets

from .asgi import Send
from .jsonbody import BadJson

log = logging.getLogger("wpk.sidecar")


class ApiError(Exception):
    """A refusal a route raises itself (bad query, wrong field type)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")
        self.seconds = seconds


def body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _diagnostics(exc: PackageInvalid) -> dict[str, Any]:
    return {"errors": [d.as_dict() for d in exc.diagnostics]}


# (exception type, status, code, message, details): the one place errors become answers.
Rule = tuple[type[BaseException], int, str, Callable[[Any], str], Callable[[Any], dict[str, Any]]]
TABLE: tuple[Rule, ...] = (
    (BadJson, 400, "malformed_json", lambda e: e.message, lambda e: {}),
    (BodyTooLarge, 413, "body_too_large", str, lambda e: {"limit_bytes": e.limit}),
    (BodyTimeout, 408, "request_timeout", str, lambda e: {"seconds": e.seconds}),
    (NotFound, 404, "not_found", str, lambda e: {"execution_id": e.execution_id}),
    (Conflict, 409, "conflict", lambda e: e.message, lambda e: {"status": e.status}),
    (AgentNotFound, 404, "not_found", str, lambda e: {"agent_id": e.agent_id}),
    (
        IllegalTransition,
        409,
        "illegal_transition",
        lambda e: e.message,
        lambda e: {"agent_id": e.agent_id, "state": e.state, "to": e.to},
    ),
    (PackageInvalid, 422, "invalid_package", lambda e: "the runbook is not valid", _diagnostics),
    (
        ParamError,
        422,
        "invalid_parameters",
        lambda e: "; ".join(e.problems),
        lambda e: {"problems": e.problems},
    ),
    (
        MissingSecrets,
        422,
        "missing_secrets",
        lambda e: "secrets not set on this agent: " + ", ".join(e.names),
        lambda e: {"names": e.names},
    ),
)


def to_response(exc: BaseException) -> Response:
    if isinstance(exc, ApiError):
        return JSONResponse(body(exc.code, exc.message, exc.details), status_code=exc.status)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "no such route", 405: "method not allowed on this route"}.get(
            exc.status_code, str(exc.detail)
        )
        return JSONResponse(body(code, message), status_code=exc.status_code, headers=exc.headers)
    for kind, status, code, describe, details in TABLE:
        if isinstance(exc, kind):
            return JSONResponse(body(code, describe(exc), details(exc)), status_code=status)
    log.error("internal error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse(body("internal", "internal error; the server log has the details"), status_code=500)


async def handle(request: Request, exc: Exception) -> Response:
    return to_response(exc)


def handlers() -> dict[Any, Callable[..., Any]]:
    """Starlette's `exception_handlers`: every mapped type, HTTP errors, and the 500 fallback."""
    out: dict[Any, Callable[..., Any]] = {kind: handle for kind, *_ in TABLE}
    out[ApiError] = handle
    out[HTTPException] = handle
    out[Exception] = handle
    return out


async def send_error(
    send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
