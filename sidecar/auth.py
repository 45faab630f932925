"""Bearer-token auth as pure ASGI middleware (DESIGN §7).

Every route but `/health` and `/metrics` needs `Authorization: Bearer <token>`. The comparison
is `hmac.compare_digest` on bytes: on `str` it raises TypeError for non-ASCII input, which
would be a 500 instead of a 401 (SECURITY.md). The token is never logged or echoed.
"""

from __future__ import annotations

import hmac

from .asgi import ASGIApp, Receive, Scope, Send
from .errors import send_error

PUBLIC = frozenset({"/health", "/metrics"})


class BearerAuth:
    def __init__(self, app: ASGIApp, token: bytes | None, public: frozenset[str] = PUBLIC) -> None:
        self.app = app
        self.token = token
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if not given else "invalid bearer token"
        await send_error(send, 401, "unauthorized", message, [(b"www-authenticate", b'Bearer realm="wpk"')])
