"""The embedded default store: an append-only event log in SQLite (stdlib `sqlite3`).

WAL mode, `synchronous=NORMAL`, and one short transaction per `flush`: the runner flushes
before every side effect, so the ledger says a step started before the step does anything
(SECURITY.md rule 5). Writes are small and local, so they run on the calling thread; the queue,
leases and agents of DESIGN §6 build on this table.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from ..events import Event

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
"""


_ENCODE = json.JSONEncoder(default=str, allow_nan=False).encode
"""One encoder for every event: `json.dumps` with options builds a new one per call."""


def default_path() -> Path:
    """`$XDG_STATE_HOME/wpk/wpk.db`, else `~/.local/state/wpk/wpk.db`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wpk" / "wpk.db"


class SQLiteStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # The store holds undo records and step outputs: a directory of our own (0700, when we
        # create it) and a file only its owner reads (0600; SQLite gives -wal/-shm the same mode).
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self._pending: list[tuple[str, int, str, float, str | None, int | None, str]] = []

    def append(self, execution_id: str, event: Event) -> None:
        self._pending.append(
            (
                execution_id,
                event.seq,
                str(event.type),
                event.time,
                event.step,
                event.item,
                _ENCODE(event.data),
            )
        )

    async def flush(self) -> None:
        self.flush_sync()

    def flush_sync(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]:
        self.flush_sync()
        rows = self._db.execute(
            "SELECT seq, type, time, step, item, data FROM events"
            " WHERE execution_id = ? AND seq > ? ORDER BY seq",
            (execution_id, after_seq),
        ).fetchall()
        return [
            Event.from_dict(
                {
                    "seq": r[0],
                    "type": r[1],
                    "time": r[2],
                    "step": r[3],
                    "item": r[4],
                    "data": json.loads(r[5]),
                }
            )
            for r in rows
        ]

    async def execution_ids(self) -> list[str]:
        self.flush_sync()
        return [r[0] for r in self._db.execute("SELECT DISTINCT execution_id FROM events")]

    async def aclose(self) -> None:
        self.flush_sync()
        self._db.close()
