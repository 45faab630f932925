"""One thread that owns a database connection and runs every call on it, in batches.

Under the server, blocking database calls must not run on the trio loop. A thread hop per call
(`trio.to_thread`) costs a GIL hand-off each way, and with dozens of executions flushing at once
those hand-offs, not SQLite, become the cost. Here callers put their operation on the thread's
queue and wait; the thread takes everything queued, runs it in order inside one `BEGIN
IMMEDIATE` transaction (with several writes, each under its own SAVEPOINT, so one failing write
fails alone; a lone write that fails is rolled back whole), commits once (group commit), and
wakes every caller with one call into the trio loop. A caller is answered only after the
commit, so "flushed" still means "written where a crash of wpk cannot take it back".

Also here: `Checkpointer`, the WAL checkpoints of a store that writes on the loop thread.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    task: trio.lowlevel.Task
    result: outcome.Outcome[Any] | None = None


class DatabaseThread:
    def __init__(
        self, db: sqlite3.Connection, name: str = "wpk-store", *, patient_ms: int | None = None
    ) -> None:
        self.db = db
        # Set: the connection is shared with the loop thread, which runs calls on it between this
        # thread's batches with busy_timeout 0; a batch here waits for locks up to patient_ms.
        self._patient_ms = patient_ms
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.batches = 0  # for the benchmark: how much group commit merged
        self.ops = 0

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        op = _Op(fn, write, trio.lowlevel.current_trio_token(), trio.lowlevel.current_task())
        # Straight onto the thread's queue: only a put onto an empty queue wakes the thread, and
        # the woken thread needs the GIL, which the loop keeps until its pass ends, so everything
        # queued in one pass of the trio scheduler still goes to SQLite together.
        self._queue.put(op)
        # Parked until the thread reschedules this task with the outcome. Not cancellable: once
        # queued the call runs anyway, so the caller waits for the truth (a shielded wait on an
        # Event did the same at twice the cost).
        return await trio.lowlevel.wait_task_rescheduled(_not_abortable)  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._queue.put(None)
        await trio.to_thread.run_sync(self._thread.join)

    # -- the thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self.db.close()
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
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
            if self._patient_ms is not None:
                db.execute(f"PRAGMA busy_timeout={self._patient_ms}")
            if writing:
                db.execute("BEGIN IMMEDIATE")
            alone = sum(op.write for op in batch) == 1  # its failure is the transaction's
            for op in batch:
                if op.write and not alone:
                    db.execute("SAVEPOINT op")
                    op.result = outcome.capture(op.fn, db)
                    if isinstance(op.result, outcome.Error):
                        db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                else:
                    op.result = outcome.capture(op.fn, db)
                    if alone and op.write and isinstance(op.result, outcome.Error):
                        if db.in_transaction:  # (a full disk ends it itself)
                            db.execute("ROLLBACK")  # nothing of a failed write is kept
                        writing = False
            if writing:
                db.execute("COMMIT")
        except BaseException as exc:  # the transaction itself failed (locked, disk full): all fail
            with contextlib.suppress(sqlite3.Error):  # the callers must be answered whatever happens
                if db.in_transaction:
                    db.execute("ROLLBACK")
            for op in batch:
                if isinstance(op.result, outcome.Error):
                    continue  # its own failure (a full disk ends the transaction too): the real cause
                if op.write or op.result is None:
                    op.result = outcome.Error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
        if self._patient_ms is not None:  # before the loop thread may use the connection again
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA busy_timeout=0")
        by_token: dict[trio.lowlevel.TrioToken, list[_Op]] = {}
        for op in batch:
            by_token.setdefault(op.token, []).append(op)
        for token, ops in by_token.items():
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(_wake, ops)


def _wake(ops: list[_Op]) -> None:
    for op in ops:
        assert op.result is not None
        trio.lowlevel.reschedule(op.task, op.result)


def _not_abortable(_: Callable[[], object]) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


class Checkpointer:
    """WAL checkpoints on a thread and connection of their own, for a store written on the loop.

    A checkpoint copies the WAL into the database file and syncs both (`synchronous=NORMAL`
    syncs only there): milliseconds the trio loop must not wait for. The loop thread's
    connection has `wal_autocheckpoint=0` and asks for one every so often. It is a RESTART
    checkpoint: it holds the write lock while it copies, so that it copies everything and the
    next write starts the WAL file over (a PASSIVE one runs beside the writes, never catches up
    with them, and the WAL grows without end: 100 MB after 10,000 steps). A write that comes
    meanwhile finds the lock taken and waits on the database thread, not on the loop. It waits
    for readers of the old WAL at most `READERS_MS`, then gives up until the next time. One that
    fails (a full disk) is left for the next: the writes themselves report the problem.
    """

    READERS_MS = 100

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.done = 0  # for the tests: checkpoints made

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="wpk-checkpoint", daemon=True)
            self._thread.start()
        self._wanted.set()

    async def aclose(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wanted.set()
            await trio.to_thread.run_sync(self._thread.join)

    def _loop(self) -> None:
        db: sqlite3.Connection | None = None
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stop:
                break
            with contextlib.suppress(sqlite3.Error):
                if db is None:
                    db = sqlite3.connect(
                        self._path,
                        isolation_level=None,
                        check_same_thread=False,
                        timeout=self.READERS_MS / 1000,
                    )
                db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                self.done += 1
        if db is not None:
            db.close()
