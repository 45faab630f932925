"""The embedded default store: executions and their event logs in SQLite (stdlib `sqlite3`).

WAL mode, `synchronous=NORMAL` (a power loss may lose the last commits, never corrupt the file;
SECURITY.md), and one short `BEGIN IMMEDIATE` transaction per write: the runner flushes before
every side effect, so the ledger says a step started before the step does anything (SECURITY.md
rule 5). A claim is one `UPDATE … RETURNING` inside `BEGIN IMMEDIATE`, so several agent
processes can share one file without handing an execution out twice.

Where the calls run, so that the trio loop never waits for the database: under the server
(`offload=True`) one thread owns the connection and runs every call (`dbthread.py`, group
commit). For `wpk run` (one execution) a thread hop per flush would cost more than the write
(docs/performance.md), so calls run on the loop thread, but only as far as they cannot wait:
`busy_timeout=0` there, so a lock held by another process sends the call to the database
thread (which waits for it, up to 30 s), and WAL checkpoints, the only fsyncs under
`synchronous=NORMAL`, run on a thread of their own (`Checkpointer`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, TypeVar

import trio

from .. import scheduler
from ..events import Event, EventType
from .base import (
    EXPIRED,
    LEASE_SECONDS,
    TERMINAL,
    AgentInfo,
    Band,
    Claim,
    ExecutionQuery,
    ExecutionRow,
    LogLine,
    NewExecution,
    Page,
    StaleClaim,
    StoreUnavailable,
    row_from_created,
    stale_message,
    status_after,
)
from .dbthread import Checkpointer, DatabaseThread
from .sqlite_schema import BUSY_TIMEOUT_MS, SYNCHRONOUS, describe_error, migrate

T = TypeVar("T")

_ROW_COLUMNS = (
    "execution_id, workflow_name, workflow_version, status, priority, dry_run, created_at, started_at,"
    " finished_at, package, package_path, params, rollback, agent_id, attempt, lease_until,"
    " cancel_requested, not_before, labels"
)
_INSERT_ROW = (
    "INSERT OR IGNORE INTO executions (execution_id, workflow_name, workflow_version, status, priority,"
    " dry_run, created_at, package, package_path, params, rollback, not_before, labels, agent_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _event_encoder() -> Callable[[dict[str, Any]], str]:
    """`json.dumps(data, default=str, allow_nan=False)`, three times as fast on event data.

    `JSONEncoder.encode` builds a new C encoder on every call; this one is built once. No
    circular-reference check (as `check_circular=False`): event data went through the secret
    masking walk before it got here, which a cycle would not have survived.
    """
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(default=str, allow_nan=False).encode
    chunks = c_make_encoder(None, str, encode_basestring_ascii, None, ": ", ", ", False, False, False)

    def encode(data: dict[str, Any]) -> str:
        return "".join(chunks(data, 0)) if data else "{}"

    return encode


_ENCODE = _event_encoder()
"""One encoder for every event."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds the lock this call needs."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def default_path() -> Path:
    """`$XDG_STATE_HOME/wpk/wpk.db`, else `~/.local/state/wpk/wpk.db`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wpk" / "wpk.db"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False, separators=(",", ":"))


def _row(r: tuple[Any, ...]) -> ExecutionRow:
    return ExecutionRow(
        execution_id=r[0],
        workflow_name=r[1],
        workflow_version=r[2],
        status=r[3],
        priority=int(r[4]),
        dry_run=bool(r[5]),
        created_at=float(r[6]),
        started_at=r[7],
        finished_at=r[8],
        package=r[9],
        package_path=r[10],
        params=json.loads(r[11]),
        rollback=bool(r[12]),
        agent_id=r[13],
        attempt=int(r[14]),
        lease_until=r[15],
        cancel_requested=bool(r[16]),
        not_before=r[17],
        labels=json.loads(r[18]),
    )


def _new_values(new: NewExecution) -> tuple[Any, ...]:
    return (
        new.execution_id,
        new.workflow_name,
        new.workflow_version,
        new.status,
        new.priority,
        int(new.dry_run),
        new.created_at,
        new.package,
        new.package_path,
        _dumps(dict(new.params)),
        int(new.rollback),
        new.not_before,
        _dumps(dict(new.labels)),
        new.agent_id,
    )


_EventRow = tuple[str, int, str, float, str | None, int | None, str]
CHECKPOINT_EVERY = 500
CHECKPOINT_BYTES = 4 << 20
"""A checkpoint is asked for after this many commits on the loop thread or this much event data,
whichever comes first: about SQLite's default of 1,000 WAL pages (a commit of a step's events
writes one or two pages; large outputs write more)."""
_ONE_STATEMENT_ROWS = 256  # 7 values a row, well under SQLite's bound on bound parameters
EARLY_WRITE_EVENTS = 1024
"""Buffered events written ahead of a barrier once this many wait (`SQLiteStore._write_early`)."""
_INSERT_EVENTS = {
    n: "INSERT INTO events VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, _ONE_STATEMENT_ROWS + 1)
}
"""The multi-row INSERT for n events, built once (SQLite's statement cache keys on the text)."""

_ROW_EVENTS = frozenset(
    {
        EventType.EXECUTION_CREATED,
        EventType.EXECUTION_STARTED,
        EventType.ROLLBACK_STARTED,
        EventType.EXECUTION_CLOSED,
    }
)
"""The only event types that may create an execution's row or change its status (`status_after`;
tests/test_store_sqlite_paths.py checks the two agree). A batch without them is a plain INSERT."""


class SQLiteStore:
    def __init__(self, path: str | os.PathLike[str], *, offload: bool = False) -> None:
        self.path = Path(path)
        try:
            # The store holds undo records and step outputs: a directory of our own (0700, when we
            # create it) and a file only its owner reads (0600; SQLite gives -wal/-shm the same mode).
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            migrate(self._db, self.path)
            # Placement inside the claim's query (scheduler.eligible on the stored JSON).
            self._db.create_function("wpk_eligible", 2, scheduler.eligible_json, deterministic=True)
            if not offload:
                # On the loop thread a call must not wait: not for another process's lock (it goes
                # to the database thread instead, which waits: `_call`), not for a checkpoint's
                # fsync (they run on their own thread: `Checkpointer`).
                self._db.execute("PRAGMA busy_timeout=0")
                self._db.execute("PRAGMA wal_autocheckpoint=0")
        except OSError as exc:
            raise StoreUnavailable(f"{self.path}: cannot open the store: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise describe_error(self.path, exc) from None
        # (execution id, event, its row): serialised when appended, on the caller's thread, so the
        # database thread spends its time in SQLite (which releases the GIL), not in json.dumps.
        self._pending: list[tuple[str, Event, _EventRow]] = []
        self._plain = True  # nothing pending creates a row or changes a status (_ROW_EVENTS)
        self._fences: dict[str, int] = {}
        self.offload = offload
        self._worker: DatabaseThread | None = None  # the connection's own thread
        self._on_thread = 0  # calls handed to that thread and not answered yet
        self._checkpointer = None if offload else Checkpointer(self.path)
        self._commits = 0  # on the loop thread, since the last checkpoint request
        self._written = 0  # bytes of event data appended since then

    # -- plumbing ----------------------------------------------------------------------------
    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write: its own `BEGIN IMMEDIATE` transaction, or a share of a group commit."""
        return await self._call(fn, write=True)

    async def _query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(fn, write=False)

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool, inline: bool = True) -> T:
        """Run `fn` on the loop thread when that cannot wait, else on the database thread.

        Offloaded (the server): always on the thread. Otherwise (`wpk run`): on the loop thread
        with `busy_timeout=0`, so a lock held by another process answers SQLITE_BUSY at once and
        the call is made again on the thread, which waits for the lock (up to 30 s). While any
        call is on the thread, later ones queue behind it: writes stay in order.
        """
        try:
            if inline and not self.offload and not self._on_thread:
                try:
                    out = self._write(fn) if write else fn(self._db)
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                else:
                    if write:
                        self._committed()
                    return out
            self._on_thread += 1
            try:
                return await self._thread().run(fn, write=write)
            finally:
                self._on_thread -= 1
        except sqlite3.Error as exc:
            raise describe_error(self.path, exc) from None

    def _committed(self) -> None:
        """A commit on the loop thread: every so often, a checkpoint on the checkpoint thread."""
        self._commits += 1
        if self._checkpointer is not None and (
            self._commits >= CHECKPOINT_EVERY or self._written >= CHECKPOINT_BYTES
        ):
            self._commits = self._written = 0
            self._checkpointer.request()

    def _thread(self) -> DatabaseThread:
        if self._worker is None:
            # Not offloaded, the connection's busy_timeout is 0 between the thread's batches
            # (for the loop thread's calls) and 30 s during them.
            self._worker = DatabaseThread(self._db, patient_ms=None if self.offload else BUSY_TIMEOUT_MS)
        return self._worker

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One `BEGIN IMMEDIATE` transaction: the write lock is taken before anything is read."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
        except BaseException:
            if db.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    # -- events ------------------------------------------------------------------------------
    def fence(self, execution_id: str, attempt: int | None) -> None:
        if attempt is None:
            self._fences.pop(execution_id, None)
        else:
            self._fences[execution_id] = attempt

    def append(self, execution_id: str, event: Event) -> None:
        if event.type in _ROW_EVENTS:
            self._plain = False
        row = self._event_row(execution_id, event)
        self._written += len(row[6])
        self._pending.append((execution_id, event, row))
        if len(self._pending) >= EARLY_WRITE_EVENTS and not self.offload:
            self._write_early()

    def _write_early(self) -> None:
        """Write a long run of buffered events now, on the loop thread, if that cannot wait.

        Between barriers a run of read-only steps buffers every event (one flush at its end):
        10,000 steps held 20,000 encoded rows, 9 MiB of the process's peak. Written ahead, in
        one transaction per `EARLY_WRITE_EVENTS`, they cost no more, and a crash loses less.
        Only when nothing is queued for the database thread (writes stay in order) and no claim
        fences the batch; a busy lock or any error leaves the events buffered for the next
        flush, which waits for the lock or reports the error."""
        if self._on_thread or self._fences:
            return
        batch = self._pending
        try:
            self._write(lambda db: self._apply_events(db, batch))
        except sqlite3.Error:
            return
        self._pending, self._plain = [], True
        self._committed()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []  # taken on the loop thread, in order
        plain, self._plain = self._plain, True
        fences = (
            {eid: self._fences[eid] for eid, _, _ in batch if eid in self._fences} if self._fences else None
        )
        inline = not self.offload and not self._on_thread
        if not plain or fences or len(batch) > _ONE_STATEMENT_ROWS:
            await self._call(lambda db: self._apply_events(db, batch, fences), write=True, inline=inline)
            return
        # Events only, no row to change: one multi-row INSERT. On the loop thread it is its own
        # transaction, without the BEGIN and COMMIT statements (tests/bench/store.py).
        sql = _INSERT_EVENTS[len(batch)]
        rows: Sequence[Any] = batch[0][2] if len(batch) == 1 else [v for _, _, row in batch for v in row]
        if inline:
            try:
                self._db.execute(sql, rows)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise describe_error(self.path, exc) from None
                inline = False  # another process writes: wait for it on the database thread
            except sqlite3.Error as exc:
                raise describe_error(self.path, exc) from None
            else:
                self._committed()
                return
        await self._call(lambda db: db.execute(sql, rows), write=True, inline=False)

    @staticmethod
    def _event_row(execution_id: str, event: Event) -> _EventRow:
        return (
            execution_id,
            event.seq,
            str(event.type),
            event.time,
            event.step,
            event.item,
            _ENCODE(event.data),
        )

    def _apply_events(
        self,
        db: sqlite3.Connection,
        batch: Iterable[tuple[str, Event, _EventRow]],
        fences: dict[str, int] | None = None,
    ) -> None:
        for execution_id, attempt in (fences or {}).items():  # inside BEGIN IMMEDIATE: exact
            found = db.execute(
                "SELECT attempt FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            if found is not None and int(found[0]) != attempt:
                raise StaleClaim(stale_message(execution_id, attempt))
        rows: list[_EventRow] = []
        for execution_id, event, row in batch:
            if event.type is EventType.EXECUTION_CREATED:
                db.execute(_INSERT_ROW, _new_values(row_from_created(event)))
            status = status_after(event)
            if status is not None:
                if event.type is EventType.EXECUTION_STARTED:
                    db.execute(
                        "UPDATE executions SET status = ?, started_at = ? WHERE execution_id = ?",
                        (status, event.time, execution_id),
                    )
                elif status in TERMINAL:
                    db.execute(
                        "UPDATE executions SET status = ?, finished_at = ? WHERE execution_id = ?",
                        (status, event.time, execution_id),
                    )
                else:
                    db.execute(
                        "UPDATE executions SET status = ? WHERE execution_id = ?", (status, execution_id)
                    )
            rows.append(row)
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _events_sync(self, execution_id: str, after_seq: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT seq, type, time, step, item, data FROM events"
            " WHERE execution_id = ? AND seq > ? ORDER BY seq",
            (execution_id, after_seq),
        ).fetchall()
        return [Event(int(r[0]), EventType(r[1]), float(r[2]), r[3], r[4], json.loads(r[5])) for r in rows]

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]:
        await self.flush()
        return await self._query(lambda db: self._events_sync(execution_id, after_seq))

    async def execution_ids(self) -> list[str]:
        await self.flush()
        return await self._query(
            lambda db: [r[0] for r in db.execute("SELECT DISTINCT execution_id FROM events")]
        )

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            with trio.CancelScope(shield=True):  # a cancelled caller still leaves nothing open
                if self._checkpointer is not None:
                    await self._checkpointer.aclose()
                if self._worker is not None:
                    await self._worker.close()  # the thread closes the connection it owns
                else:  # the last connection's close checkpoints and syncs: not on the loop either
                    await trio.to_thread.run_sync(self._db.close)

    # -- executions --------------------------------------------------------------------------
    async def create_execution(self, new: NewExecution) -> None:
        await self.flush()

        def write(db: sqlite3.Connection) -> None:
            cur = db.execute(_INSERT_ROW.replace("OR IGNORE ", ""), _new_values(new))
            assert cur.rowcount == 1
            if new.first_event is not None:
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    self._event_row(new.execution_id, new.first_event),
                )

        await self._tx(write)

    def _get_sync(self, execution_id: str) -> ExecutionRow | None:
        r = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM executions WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return None if r is None else _row(r)

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        await self.flush()
        return await self._query(lambda db: self._get_sync(execution_id))

    def _list_sync(self, query: ExecutionQuery) -> Page:
        where: list[str] = []
        args: list[Any] = []
        if query.cursor is not None:
            where.append("n < ?")
            args.append(query.cursor)
        if query.statuses:
            where.append(f"status IN ({', '.join('?' for _ in query.statuses)})")
            args.extend(query.statuses)
        if query.workflow:
            where.append("(workflow_name = ? OR workflow_name || '-' || workflow_version = ?)")
            args.extend((query.workflow, query.workflow))
        if query.since is not None:
            where.append("created_at >= ?")
            args.append(query.since)
        sql = f"SELECT n, {_ROW_COLUMNS} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY n DESC LIMIT ?"
        args.append(query.limit + 1)
        found = self._db.execute(sql, args).fetchall()
        more = len(found) > query.limit
        found = found[: query.limit]
        return Page([_row(r[1:]) for r in found], int(found[-1][0]) if more and found else None)

    async def list_executions(self, query: ExecutionQuery) -> Page:
        await self.flush()
        return await self._query(lambda db: self._list_sync(query))

    def _logs_sync(self, execution_id: str, offset: int, limit: int) -> list[LogLine]:
        rows = self._db.execute(
            "SELECT time, step, item, data FROM events WHERE execution_id = ? AND type = 'log'"
            " ORDER BY seq LIMIT ? OFFSET ?",
            (execution_id, limit, offset),
        ).fetchall()
        out = []
        for i, (time, step, item, data) in enumerate(rows, start=offset):
            d = json.loads(data)
            out.append(
                LogLine(
                    offset=i,
                    time=float(time),
                    step=step,
                    item=item,
                    stream=str(d.get("stream", "")),
                    line=str(d.get("line", "")),
                )
            )
        return out

    async def logs(self, execution_id: str, offset: int = 0, limit: int = 1000) -> list[LogLine]:
        await self.flush()
        return await self._query(lambda db: self._logs_sync(execution_id, offset, limit))

    async def transition(
        self, execution_id: str, allowed: Iterable[str], to: str, events: Iterable[Event] = ()
    ) -> bool:
        await self.flush()
        allowed = tuple(allowed)
        batch = [(execution_id, e, self._event_row(execution_id, e)) for e in events]

        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                f"UPDATE executions SET status = ? WHERE execution_id = ?"
                f" AND status IN ({', '.join('?' for _ in allowed)})",
                (to, execution_id, *allowed),
            )
            if cur.rowcount != 1:
                return False
            self._apply_events(db, batch)
            return True

        return await self._tx(write)

    async def request_cancel(self, execution_id: str) -> None:
        await self._tx(
            lambda db: db.execute(
                "UPDATE executions SET cancel_requested = 1 WHERE execution_id = ?", (execution_id,)
            ),
        )

    async def cancel_requested(self, execution_ids: Iterable[str]) -> set[str]:
        ids = list(execution_ids)
        if not ids:
            return set()

        def read() -> set[str]:
            rows = self._db.execute(
                "SELECT execution_id FROM executions WHERE cancel_requested = 1"
                f" AND execution_id IN ({', '.join('?' for _ in ids)})",
                ids,
            )
            return {r[0] for r in rows}

        return await self._query(lambda db: read())

    # -- queue and agents --------------------------------------------------------------------
    async def claim(
        self,
        agent_id: str,
        *,
        now: float,
        lease_seconds: float = 30.0,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> Claim | None:
        claims = await self.claim_batch(
            agent_id, now=now, limit=1, lease_seconds=lease_seconds, labels=labels, aging_rate=aging_rate
        )
        return claims[0] if claims else None

    async def claim_batch(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = 30.0,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> list[Claim]:
        await self.flush()
        mine = _dumps(dict(labels or {}))
        # scheduler.order_key in SQL: without aging the queue index gives the order directly.
        order = "priority DESC, n" if aging_rate == 0 else "priority - ? * created_at DESC, n"
        order_args: tuple[float, ...] = () if aging_rate == 0 else (aging_rate / 60.0,)

        def write(db: sqlite3.Connection) -> list[Claim]:
            found = db.execute(
                "UPDATE executions SET status = 'running', agent_id = ?, attempt = attempt + 1,"
                " lease_until = ? WHERE n IN (SELECT n FROM executions WHERE status = 'pending'"
                " AND (not_before IS NULL OR not_before <= ?)"
                " AND (labels = '{}' OR wpk_eligible(labels, ?))"
                f" ORDER BY {order} LIMIT ?)"
                f" RETURNING n, {_ROW_COLUMNS}",
                (agent_id, now + lease_seconds, now, mine, *order_args, limit),
            ).fetchall()
            # RETURNING has no order: claim order
            found.sort(key=lambda r: scheduler.order_key(int(r[5]), float(r[7]), int(r[0]), aging_rate))
            claims = []
            for r in found:
                row = _row(r[1:])
                history = tuple(self._events_sync(row.execution_id, 0))
                claims.append(
                    Claim(row=row, attempt=row.attempt, lease_until=now + lease_seconds, history=history)
                )
            return claims

        return await self._tx(write)

    async def heartbeat(self, agent_id: str, *, now: float, state: str, lease_seconds: float = 30.0) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE agents SET heartbeat_at = ?, state = ? WHERE agent_id = ?", (now, state, agent_id)
            )
            db.execute(
                "UPDATE executions SET lease_until = ? WHERE agent_id = ?"
                " AND status IN ('running', 'rolling_back')",
                (now + lease_seconds, agent_id),
            )

        await self._tx(write)

    async def reclaim(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = LEASE_SECONDS,
        own: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> list[Claim]:
        await self.flush()
        mine = _dumps(dict(labels or {}))

        def write(db: sqlite3.Connection) -> list[Claim]:
            found = db.execute(
                "UPDATE executions SET agent_id = ?, attempt = attempt + 1, lease_until = ?"
                " WHERE n IN (SELECT n FROM executions WHERE status IN ('running', 'rolling_back')"
                " AND lease_until IS NOT NULL AND (lease_until < ? OR (? AND agent_id = ?))"
                " AND (labels = '{}' OR wpk_eligible(labels, ?))"  # placement, as in the claim
                f" ORDER BY priority DESC, n LIMIT ?) RETURNING n, {_ROW_COLUMNS}",
                (agent_id, now + lease_seconds, now, int(own), agent_id, mine, limit),
            ).fetchall()
            found.sort(key=lambda r: (-int(r[5]), int(r[0])))
            return [
                Claim(
                    row=(row := _row(r[1:])),
                    attempt=row.attempt,
                    lease_until=now + lease_seconds,
                    history=tuple(self._events_sync(row.execution_id, 0)),
                )
                for r in found
            ]

        return await self._tx(write)

    async def release(self, execution_id: str, attempt: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE executions SET status = 'pending', agent_id = NULL, lease_until = NULL"
                " WHERE execution_id = ? AND attempt = ? AND status = 'running'",
                (execution_id, attempt),
            )
            return cur.rowcount == 1

        return await self._tx(write)

    async def release_for_takeover(self, execution_id: str, attempt: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE executions SET agent_id = NULL, lease_until = ? WHERE execution_id = ?"
                " AND attempt = ? AND status IN ('running', 'rolling_back')",
                (EXPIRED, execution_id, attempt),
            )
            return cur.rowcount == 1

        return await self._tx(write)

    async def prune(self, *, finished_before: float) -> int:
        await self.flush()
        final = tuple(sorted(TERMINAL))

        def write(db: sqlite3.Connection) -> int:
            marks = ", ".join("?" for _ in final)
            ids = [
                r[0]
                for r in db.execute(
                    f"SELECT execution_id FROM executions WHERE status IN ({marks})"
                    " AND finished_at IS NOT NULL AND finished_at < ?",
                    (*final, finished_before),
                )
            ]
            for eid in ids:
                db.execute("DELETE FROM events WHERE execution_id = ?", (eid,))
                db.execute("DELETE FROM executions WHERE execution_id = ?", (eid,))
            return len(ids)

        return await self._tx(write)

    async def register_agent(self, agent: AgentInfo) -> None:
        await self._tx(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO agents (agent_id, labels, capacity, version, state, heartbeat_at,"
                " started_at, adapters, requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.agent_id,
                    _dumps(agent.labels),
                    agent.capacity,
                    agent.version,
                    agent.state,
                    agent.heartbeat_at,
                    agent.started_at,
                    _dumps(list(agent.adapters)),
                    agent.requested,
                ),
            ),
        )

    async def list_agents(self) -> list[AgentInfo]:
        def read() -> list[AgentInfo]:
            rows = self._db.execute(
                "SELECT agent_id, labels, capacity, version, state, heartbeat_at, started_at, adapters,"
                " requested FROM agents ORDER BY agent_id"
            ).fetchall()
            return [
                AgentInfo(
                    agent_id=r[0],
                    labels=json.loads(r[1]),
                    capacity=int(r[2]),
                    version=r[3],
                    state=r[4],
                    heartbeat_at=float(r[5]),
                    started_at=float(r[6]),
                    adapters=tuple(json.loads(r[7])),
                    requested=r[8],
                )
                for r in rows
            ]

        return await self._query(lambda db: read())

    async def request_agent(self, agent_id: str, request: str, *, states: Iterable[str]) -> bool:
        states = tuple(states)

        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE agents SET requested = ? WHERE agent_id = ?"
                f" AND state IN ({', '.join('?' for _ in states)})",
                (request, agent_id, *states),
            )
            return cur.rowcount == 1

        return await self._tx(write)

    async def clear_request(self, agent_id: str, request: str) -> None:
        await self._tx(
            lambda db: db.execute(
                "UPDATE agents SET requested = NULL WHERE agent_id = ? AND requested = ?", (agent_id, request)
            )
        )

    async def fail_stale_agents(self, *, now: float, stale_after: float) -> list[str]:
        def write(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "UPDATE agents SET state = 'failed' WHERE state IN ('created', 'running', 'paused')"
                " AND heartbeat_at < ? RETURNING agent_id",
                (now - stale_after,),
            ).fetchall()
            return sorted(r[0] for r in rows)

        return await self._tx(write)

    async def queue_depth(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            depth = {str(b): 0 for b in Band}
            rows = self._db.execute(
                "SELECT priority, COUNT(*) FROM executions WHERE status = 'pending' GROUP BY priority"
            )
            for priority, count in rows:
                depth[str(Band.of(int(priority)))] += int(count)
            return depth

        return await self._query(lambda db: read())
