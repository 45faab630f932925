"""AQL cursors: a query's results handed out in batches of `batchSize`.

Results are computed when the cursor is created (ArangoDB's default, non-streaming cursors), so
later batches need no transaction. A cursor lives `ttl` seconds after its last use; the batch
just served can be fetched again by its `nextBatchId` predecessor (`allowRetry`, 3.11).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import CURSOR_NOT_FOUND, ArangoError
from .storage import next_id


@dataclass
class Cursor:
    id: str
    db: str
    pending: list[Any]
    batch_size: int
    ttl: float
    count: int | None
    extra: dict[str, Any]
    batch_id: int = 0  # the batch last served; the first batch is 1
    last_batch: list[Any] = field(default_factory=list)
    expires: float = 0.0


def cursor_not_found() -> ArangoError:
    return ArangoError(404, CURSOR_NOT_FOUND, "cursor not found")


class Cursors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursors: dict[str, Cursor] = {}

    def first_batch(
        self, db: str, results: list[Any], batch_size: int, ttl: float, count: bool, extra: dict[str, Any]
    ) -> dict[str, Any]:
        cursor = Cursor(
            next_id(), db, results, max(batch_size, 1), ttl, len(results) if count else None, extra
        )
        body = self._next(cursor)
        if body["hasMore"]:
            with self._lock:
                self._purge()
                self._cursors[cursor.id] = cursor
        return body

    def next_batch(self, db: str, cursor_id: str, batch_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._purge()
            cursor = self._cursors.get(cursor_id)
            if cursor is None or cursor.db != db:
                raise cursor_not_found()
            if batch_id is not None and batch_id == str(cursor.batch_id):
                return self._body(cursor, cursor.last_batch)  # a retry of the batch just served
            if batch_id is not None and batch_id != str(cursor.batch_id + 1):
                raise ArangoError(400, 10, "batch id not found")
            body = self._next(cursor)
            if not body["hasMore"]:
                self._cursors.pop(cursor_id, None)
            return body

    def delete(self, db: str, cursor_id: str) -> None:
        with self._lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is None or cursor.db != db:
                raise cursor_not_found()
            del self._cursors[cursor_id]

    def _next(self, cursor: Cursor) -> dict[str, Any]:
        cursor.batch_id += 1
        batch, cursor.pending = cursor.pending[: cursor.batch_size], cursor.pending[cursor.batch_size :]
        cursor.last_batch = batch
        cursor.expires = time.monotonic() + cursor.ttl
        return self._body(cursor, batch)

    def _body(self, cursor: Cursor, batch: list[Any]) -> dict[str, Any]:
        has_more = bool(cursor.pending)
        body: dict[str, Any] = {"result": batch, "hasMore": has_more, "cached": False, "extra": cursor.extra}
        if has_more:
            body["id"] = cursor.id
            body["nextBatchId"] = str(cursor.batch_id + 1)
        if cursor.count is not None:
            body["count"] = cursor.count
        return body

    def _purge(self) -> None:
        now = time.monotonic()
        for cursor_id in [c.id for c in self._cursors.values() if c.expires < now]:
            del self._cursors[cursor_id]
