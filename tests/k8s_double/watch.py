"""`?watch=true`: a chunked stream of `{"type": ..., "object": ...}` lines, as the real server sends.

Without `resourceVersion` (or with `0`) the stream starts with an ADDED event per existing object;
with a resourceVersion it replays the changes after it from a bounded history (410 Expired in an
ERROR event when that history no longer reaches back). It ends at `timeoutSeconds` or when the
double stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ApiError, bad_request
from .rest import Request, Response, Route
from .store import Change, Store

_DEFAULT_TIMEOUT = 300.0


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


class WatchStreams:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        with self.store.changed:
            self.store.changed.notify_all()

    def stream(self, request: Request, route: Route, matches: Callable[[dict[str, Any]], bool]) -> Response:
        raw_timeout = request.param("timeoutSeconds")
        try:
            timeout = float(raw_timeout) if raw_timeout else _DEFAULT_TIMEOUT
        except ValueError:
            raise bad_request(f"invalid timeoutSeconds {raw_timeout!r}") from None
        raw_rv = request.param("resourceVersion")
        try:
            since = int(raw_rv) if raw_rv not in (None, "", "0") else None
        except ValueError:
            raise bad_request(f"invalid resourceVersion {raw_rv!r}") from None

        def relevant(change: Change) -> bool:
            if change.rt != route.rt:
                return False
            if route.namespace is not None and change.obj["metadata"].get("namespace") != route.namespace:
                return False
            return matches(change.obj)

        with self.store.lock:
            if since is None:
                cursor = self.store.resource_version
                initial = [
                    _line("ADDED", o) for o in self.store.list(route.rt, route.namespace) if matches(o)
                ]
            else:
                cursor = since
                oldest = self.store.history[0].resource_version if self.store.history else cursor + 1
                if since < oldest - 1:
                    expired = ApiError(
                        410, "Expired", f"too old resource version: {since} ({oldest - 1})", {}
                    )
                    initial = [_line("ERROR", expired.status())]
                    return Response(200, stream=iter(initial))
                initial = []

        def events() -> Iterator[bytes]:
            nonlocal cursor
            yield from initial
            deadline = time.monotonic() + timeout
            while not self._closed.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                with self.store.changed:
                    pending = [c for c in self.store.history if c.resource_version > cursor]
                    if not pending:
                        self.store.changed.wait(min(remaining, 0.5))
                        continue
                for change in pending:
                    cursor = change.resource_version
                    if relevant(change):
                        yield _line(change.type, change.obj)

        return Response(200, stream=events())
