"""Request body size limit as pure ASGI middleware: 413 before a large body is read whole.

A declared `Content-Length` over the limit is answered at once, without reading; a chunked or
lying body is counted as it arrives and reading stops (BodyTooLarge, answered 413 by the error
table) as soon as it passes the limit.
"""

from __future__ import annotations

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .errors import BodyTooLarge, send_error

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # a 1 MiB runbook as an escaped JSON string, with room


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await send_error(
                        send, 413, "body_too_large", f"the request body is larger than {self.max_bytes} bytes"
                    )
                    return
        seen = 0
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
