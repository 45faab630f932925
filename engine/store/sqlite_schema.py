"""The SQLite store's schema, its version and forward migrations, and its error messages.

The schema version is SQLite's `user_version`. Version 0 is every database made before it was
kept: the first `wpk run` store (one `events` table) or the first server store (events,
executions, agents). Opening a database migrates it forward inside one `BEGIN IMMEDIATE`
transaction, so two processes opening an old file at once migrate it once; a database from a
newer wpk is refused (this wpk would not know what its columns mean).

`synchronous=NORMAL` in WAL mode: a commit is durable against a crash of wpk (the WAL is
written before COMMIT returns); a power loss may lose the last commits but never corrupts the
file. FULL would fsync every commit, a cost per step the ledger does not need: a lost last
commit after a power cut reads as "agent lost" and the resume rules apply (docs/stores.md).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..events import Event, EventType
from .base import TERMINAL, StoreError, StoreUnavailable, row_from_created, status_after

SCHEMA_VERSION = 2
SYNCHRONOUS = "NORMAL"
BUSY_TIMEOUT_MS = 30000

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    time REAL NOT NULL,
    step TEXT,
    item INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL UNIQUE,
    workflow_name TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    dry_run INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    not_before REAL,
    labels TEXT NOT NULL DEFAULT '{}',
    package TEXT,
    package_path TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    rollback INTEGER NOT NULL DEFAULT 1,
    agent_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS executions_queue ON executions (status, priority DESC, n);
CREATE INDEX IF NOT EXISTS executions_workflow ON executions (workflow_name, n);
CREATE INDEX IF NOT EXISTS executions_agent ON executions (agent_id, status);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,
    started_at REAL NOT NULL,
    adapters TEXT NOT NULL DEFAULT '[]',
    requested TEXT
);
"""


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring the database to `SCHEMA_VERSION`; return the version it had."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: this store was written by a newer wpk (schema {version}; this wpk knows up "
                f"to {SCHEMA_VERSION}): upgrade wpk, or give another --store"
            )
        if version < 1:
            tables = _tables(db)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if "events" in tables and "executions" not in tables:
                _rows_from_events(db)
            db.execute("PRAGMA user_version = 1")
        if version < 2:  # 1 -> 2: agents take control requests (pause, resume, drain)
            if "requested" not in {r[1] for r in db.execute("PRAGMA table_info(agents)")}:
                db.execute("ALTER TABLE agents ADD COLUMN requested TEXT")
            db.execute("PRAGMA user_version = 2")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite ends it itself on some errors (a full disk)
            db.execute("ROLLBACK")
        raise
    return version


def _rows_from_events(db: sqlite3.Connection) -> None:
    """0 -> 1 for a `wpk run` store of events only: a row per execution, its status from its events."""
    current: str | None = None
    for execution_id, seq, type_, time, step, item, data in db.execute(
        "SELECT execution_id, seq, type, time, step, item, data FROM events ORDER BY execution_id, seq"
    ).fetchall():
        event = Event(int(seq), EventType(type_), float(time), step, item, json.loads(data))
        if event.type is EventType.EXECUTION_CREATED and "workflow_id" in event.data:
            new = row_from_created(event)
            db.execute(
                "INSERT OR IGNORE INTO executions (execution_id, workflow_name, workflow_version,"
                " status, priority, dry_run, created_at, package_path, params)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?, '', ?)",
                (
                    execution_id,
                    new.workflow_name,
                    new.workflow_version,
                    new.priority,
                    int(new.dry_run),
                    new.created_at,
                    json.dumps(dict(new.params), default=str),
                ),
            )
            current = execution_id
        if current != execution_id:
            continue  # no creation event: nothing to summarise it from (its events stay readable)
        status = status_after(event)
        if status is None:
            continue
        started = event.time if event.type is EventType.EXECUTION_STARTED else None
        finished = event.time if status in TERMINAL else None
        db.execute(
            "UPDATE executions SET status = ?, started_at = COALESCE(?, started_at),"
            " finished_at = COALESCE(?, finished_at) WHERE execution_id = ?",
            (status, started, finished, execution_id),
        )


def describe_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """One line for a failing SQLite store: what is wrong with which file, and what to do."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        why = (
            f"the database is locked by another process (waited {BUSY_TIMEOUT_MS // 1000}s): "
            "is another wpk holding it?"
        )
    elif "full" in lowered:
        why = (
            "the disk or the database's size limit is full: "
            "free space, or prune old executions (wpk store prune --older-than 30d)"
        )
    elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        why = f"not a wpk store, or corrupt ({text}): move the file aside and wpk starts a new one"
    elif "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        why = f"cannot open or write the database ({text}): check the file and its directory are writable"
    else:
        why = f"SQLite error: {text}"
    return StoreUnavailable(f"{path}: {why}")
