"""Request body limits as pure ASGI middleware: size (413) and time (408).

A declared `Content-Length` over the limit is answered at once, without reading; a chunked or
lying body is counted as it arrives and reading stops (BodyTooLarge, answered 413 by the error
table) as soon as it passes the limit. The whole body must arrive within `body_seconds`
(BodyTimeout, 408): hypercorn's `read_timeout` bounds each read, not a body dripped one byte
at a time (SECURITY.md).

After an early 413 the rest of what the client is still sending is read and dropped, within a
bound (`LINGER_BYTES`, `LINGER_SECONDS`), as nginx's lingering close does: a connection closed
with unread data is reset, and a client still writing would get the reset instead of the answer.
"""

from __future__ import annotations

import trio

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .errors import BodyTimeout, BodyTooLarge, send_error

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # a 1 MiB runbook as an escaped JSON string, with room
DEFAULT_BODY_SECONDS = 30.0
LINGER_BYTES = 64 * 1024 * 1024  # at most this much of a refused body is read and dropped
LINGER_SECONDS = 5.0  # and for at most this long


async def _linger(receive: Receive) -> None:
    """Read and drop the rest of a refused body, bounded in bytes and time (see the module doc)."""
    dropped = 0
    with trio.move_on_after(LINGER_SECONDS):
        while dropped <= LINGER_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


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
                    await _linger(receive)
                    return
        seen = 0
        limit = self.max_bytes
        deadline: float | None = None
        complete = False
        seconds = self.body_seconds
        overflowed = trio.Event()

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
                    overflowed.set()  # the refused rest is dropped by _linger, after the answer
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited, send)
        if overflowed.is_set():
            await _linger(receive)
