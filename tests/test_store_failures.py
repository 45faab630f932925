"""Stores that fail: one clear line, the run stops where the store stopped, no credential shown.

And the SQLite schema: a database from before the schema was versioned (events only, as `wpk
run` wrote it) opens, is migrated forward once, and its executions are listed.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from wpk.engine.events import EventType
from wpk.engine.executions import WorkflowCache
from wpk.engine.runner import Runner, RunOptions
from wpk.engine.store import ExecutionQuery, MemoryStore, SQLiteStore, StoreError
from wpk.engine.store.sqlite_schema import SCHEMA_VERSION, describe_error

WPK = [sys.executable, "-m", "wpk.engine.cli"]
EXAMPLES = Path(__file__).parent.parent / "examples"

# The store of `wpk run` before executions were rows (main before the sidecar), verbatim.
OLD_SCHEMA = """
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

HELLO = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: hello, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.echo, with: {message: hi}}
"""

CHATTY = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: chatty, version: 1.0.0}
spec:
  params:
    dir: {type: string}
  steps:
    - id: talk
      uses: shell.run
      with: {command: "for i in $(seq 1 3000); do echo line $i padded to take some room in the log; done"}
      rollback: none
    - id: after
      needs: [talk]
      uses: shell.run
      with: {command: "echo ran >> {{ params.dir }}/after"}
      rollback: none
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPK_")}
    env["XDG_STATE_HOME"] = str(tmp / "state")
    return env


async def _old_database(path: Path) -> list[str]:
    """A database as the old `wpk run` left it: its schema SQL, events of two real runs."""
    memory = MemoryStore()
    cache = WorkflowCache()
    wf = cache.workflow(HELLO)
    ids = []
    for _ in range(2):
        runner = Runner(wf, params={}, secrets={}, store=memory, options=RunOptions())
        await runner.run()
        ids.append(runner.execution_id)
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for eid in ids:
        for e in await memory.events(eid):
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                (eid, e.seq, str(e.type), e.time, e.step, e.item, json.dumps(e.data)),
            )
    db.commit()
    db.close()
    return ids


async def test_a_database_of_the_old_schema_is_migrated_and_listed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ids = await _old_database(path)
    store = SQLiteStore(path)
    page = await store.list_executions(ExecutionQuery())
    assert sorted(r.execution_id for r in page.rows) == sorted(ids)
    assert {r.status for r in page.rows} == {"completed"}
    assert all(r.started_at and r.finished_at and r.workflow_name == "hello" for r in page.rows)
    events = await store.events(ids[0])
    assert events[0].type is EventType.EXECUTION_CREATED and events[-1].type is EventType.EXECUTION_CLOSED
    await store.aclose()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = SQLiteStore(path)  # a second open changes nothing
    assert len((await again.list_executions(ExecutionQuery())).rows) == 2
    await again.aclose()


async def test_a_database_of_a_newer_wpk_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}").connection.close()
    with pytest.raises(StoreError) as info:
        SQLiteStore(path)
    assert "written by a newer wpk" in str(info.value) and "\n" not in str(info.value)


def test_a_corrupt_database_stops_wpk_run_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is no database at all\n" * 200)
    done = subprocess.run(
        [*WPK, "run", str(EXAMPLES / "hello"), "--store", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a wpk store, or corrupt" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_a_locked_database_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as raised:
        other.execute("INSERT INTO t VALUES (1)")
    message = str(describe_error(path, raised.value))
    assert message.startswith(f"{path}: the database is locked by another process")
    holder.execute("ROLLBACK")


async def test_a_full_database_stops_the_run_with_one_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "full.db")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 8}")  # the disk is full a few pages on
    wf = WorkflowCache().workflow(CHATTY)
    runner = Runner(wf, params={"dir": str(tmp_path)}, secrets={}, store=store, options=RunOptions())
    with pytest.raises(StoreError) as info:
        await runner.run()
    assert "is full" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "after").exists()  # the step after the failed write never ran


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_arangodb_is_one_line_and_nothing_runs(tmp_path: Path) -> None:
    url = f"arangodb://root@127.0.0.1:{_closed_port()}/wpk"
    env = {**_env(tmp_path), "WPK_ARANGO_PASSWORD": "pw-never-shown-0123"}
    done = subprocess.run(
        [*WPK, "run", str(EXAMPLES / "hello"), "--store", url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("wpk: nothing was run: the store failed: ")
        and "cannot reach ArangoDB" in lines[-1]
    )
    assert "pw-never-shown-0123" not in done.stderr + done.stdout
    assert "ExceptionGroup" not in done.stderr and "internal error" not in done.stderr


def test_a_store_that_fails_mid_run_is_not_a_step_failure(tmp_path: Path) -> None:
    """Regression: the flush before a side effect sat inside the adapter's error handling."""

    async def go() -> None:
        store = SQLiteStore(tmp_path / "mid.db")
        wf = WorkflowCache().workflow(CHATTY)
        runner = Runner(wf, params={"dir": str(tmp_path)}, secrets={}, store=store, options=RunOptions())
        store._db.execute("PRAGMA query_only = 1")  # every write from now on fails
        with pytest.raises(StoreError):
            await runner.run()
        assert runner.state.step("talk").status != "failed"  # no step failure was made up

    trio.run(go)
