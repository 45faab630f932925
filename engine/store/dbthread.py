"""One thread that owns a database connection and runs every call on it, in batches.

Under the server, blocking database calls must not run on the trio loop. A thread hop per call
(`trio.to_thread`) costs a GIL hand-off each way, and with dozens of executions flushing at once
those hand-offs, not SQLite, become the cost. Here callers queue their operation and wait; the
thread takes everything queued, runs it in order inside one `BEGIN IMMEDIATE` transaction (each
write under its own SAVEPOINT, so one failing write fails alone), commits once (group commit),
and wakes every caller with one call into the trio loop. A caller is answered only after the
commit, so "flushed" still means "on disk".
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import outcome
import trio

T = TypeVar("T")
MAX_BATCH = 512


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    token: trio.lowlevel.TrioToken
    done: trio.Event
    result: outcome.Outcome[Any] | None = None


class DatabaseThread:
    def __init__(self, db: sqlite3.Connection, name: str = "wpk-store") -> None:
        self.db = db
        self._queue: queue.SimpleQueue[list[_Op] | None] = queue.SimpleQueue()
        # Operations queued during one pass of the trio scheduler go to the thread together: one
        # wake-up of the thread per pass, not per operation (each wake-up is a GIL hand-off).
        self._gathered: list[_Op] = []
        self._kick_pending = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.batches = 0  # for the benchmark: how much group commit merged
        self.ops = 0

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        op = _Op(fn, write, trio.lowlevel.current_trio_token(), trio.Event())
        self._gathered.append(op)
        if not self._kick_pending:
            self._kick_pending = True
            op.token.run_sync_soon(self._kick)
        with trio.CancelScope(shield=True):  # it runs anyway once queued: wait for the truth
            await op.done.wait()
        assert op.result is not None
        return op.result.unwrap()  # type: ignore[no-any-return]

    def _kick(self) -> None:
        self._kick_pending = False
        ops, self._gathered = self._gathered, []
        if ops:
            self._queue.put(ops)

    async def close(self) -> None:
        self._kick()  # anything gathered goes before the end
        self._queue.put(None)
        await trio.to_thread.run_sync(self._thread.join)

    # -- the thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self.db.close()
                return
            batch = list(first)
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.extend(nxt)
            self._run_batch(batch)
            if stop:
                self.db.close()
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        db = self.db
        self.batches += 1
        self.ops += len(batch)
        writing = any(op.write for op in batch)
        try:
            if writing:
                db.execute("BEGIN IMMEDIATE")
            for op in batch:
                if op.write:
                    db.execute("SAVEPOINT op")
                    op.result = outcome.capture(op.fn, db)
                    if isinstance(op.result, outcome.Error):
                        db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                else:
                    op.result = outcome.capture(op.fn, db)
            if writing:
                db.execute("COMMIT")
        except BaseException as exc:  # the transaction itself failed (locked, disk full): all fail
            if db.in_transaction:
                db.execute("ROLLBACK")
            for op in batch:
                if isinstance(op.result, outcome.Error):
                    continue  # its own failure (a full disk ends the transaction too): the real cause
                if op.write or op.result is None:
                    op.result = outcome.Error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
        by_token: dict[trio.lowlevel.TrioToken, list[_Op]] = {}
        for op in batch:
            by_token.setdefault(op.token, []).append(op)
        for token, ops in by_token.items():
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(_wake, ops)


def _wake(ops: list[_Op]) -> None:
    for op in ops:
        op.done.set()
