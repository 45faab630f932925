"""Request body limits as pure ASGI middleware: size (413) and time (408).

A declared `Content-Length` over the limit is answered at once, without reading; a chunked or
lying body is counted as it arrives and reading stops (BodyTooLarge, answered 413 by the error
table) as soon as it passes the limit. The whole body must arrive within `body_seconds`
(BodyTimeout, 408): hypercorn's `read_timeout` bounds each read, not a body dripped one byte
at a time (SECURITY.md).
"""

from __future__ import annotations

import trio

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .errors import BodyTimeout, BodyTooLarge, send_error

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # a 1 MiB runbook as an escaped JSON string, with room
DEFAULT_BODY_SECONDS = 30.0


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY, body_seconds: float = DEFAULT_BODY_SECONDS
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_seconds = body_seconds

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
        deadline: float | None = None
        complete = False
        seconds = self.body_seconds

        async def limited() -> Message:
            nonlocal seen, deadline, complete
            if complete:  # after the body only a disconnect can come (a log follower waits for it)
                return await receive()
            if deadline is None:
                deadline = trio.current_time() + seconds
            try:
                with trio.fail_at(deadline):
                    message = await receive()
            except trio.TooSlowError:
                raise BodyTimeout(seconds) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited, send)
