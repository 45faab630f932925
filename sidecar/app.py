"""The Starlette app, assembled from data: routes, middleware, the error table.

Middleware order (outermost first): the body limit (a 413 before anything reads a large body),
then bearer auth (a 401 before any route runs). Both are pure ASGI. Errors become answers in
`errors.TABLE`; the app never sends a traceback.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from .auth import BearerAuth
from .context import Sidecar
from .errors import handlers
from .limits import BodyLimit
from .routes import ROUTES


def create_app(sidecar: Sidecar) -> Starlette:
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(BodyLimit, max_bytes=sidecar.max_body),
            Middleware(BearerAuth, token=sidecar.token),
        ],
        exception_handlers=handlers(),
    )
    app.state.sidecar = sidecar
    return app
