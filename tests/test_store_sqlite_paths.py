"""The SQLite store's fast paths keep their promises (docs/stores.md, "Durability and the loop").

- On the loop thread (`wpk run`) a call never waits for a lock: a write that finds another
  process holding the database moves to the database thread, which waits; the loop keeps
  running meanwhile, later writes queue behind it, and nothing is lost or reordered.
- Checkpoints (the only fsyncs under `synchronous=NORMAL`) run on a thread of their own.
- A failed write keeps nothing of itself, offloaded too (no partial commit).
- A long run of buffered events is written ahead of the next barrier, on the loop thread only
  when that cannot wait (a lock held elsewhere keeps them buffered, nothing lost or doubled).
- The plain-INSERT path is taken only for events that change no row (`_ROW_EVENTS` agrees with
  `status_after`), and the event encoder writes what `json.dumps` wrote.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from wpk.engine.events import Event, EventType
from wpk.engine.executions import WorkflowCache, submit
from wpk.engine.store import SQLiteStore, StoreError
from wpk.engine.store.base import status_after
from wpk.engine.store.sqlite import (
    _ENCODE,
    _ROW_EVENTS,
    CHECKPOINT_BYTES,
    CHECKPOINT_EVERY,
    EARLY_WRITE_EVENTS,
)

RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def _log(seq: int, line: str) -> Event:
    return Event(seq, EventType.LOG, time.time(), "a", None, {"stream": "stdout", "line": line})


def test_only_row_events_can_change_a_row() -> None:
    for kind in EventType:
        if kind in _ROW_EVENTS:
            continue
        assert kind is not EventType.EXECUTION_CREATED
        event = Event(1, kind, 0.0, "a", None, {"status": "completed"})
        assert status_after(event) is None, kind


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"attempt": 1},
        {"line": 'naïve ☃ \u2028 \x00 "quoted"', "n": [1, 2.5, None, True, {"x": {}}]},
        {"when": Path("/tmp/x"), "big": 10**30, "neg": -0.0},
    ],
)
def test_the_event_encoder_writes_what_json_dumps_wrote(data: dict[str, Any]) -> None:
    assert _ENCODE(data) == json.dumps(data, default=str, allow_nan=False)


def test_the_event_encoder_refuses_nan() -> None:
    with pytest.raises(ValueError):
        _ENCODE({"x": math.nan})


async def test_a_lock_held_elsewhere_never_stalls_the_loop_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wpk.db"
    store = SQLiteStore(path)
    store.append("e", _log(1, "before the lock"))
    await store.flush()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        done: list[int] = []

        async def write(first: int) -> None:
            store.append("e", _log(first, f"line {first}"))
            store.append("e", _log(first + 1, f"line {first + 1}"))
            await store.flush()
            done.append(first)

        ticks = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 2)
            await trio.sleep(0)
            nursery.start_soon(write, 4)  # queued behind the waiting write: order is kept
            # The loop runs while both writes wait for the other process: were they on the
            # loop thread (busy_timeout 30 s) this task would not run until they failed.
            while ticks < 5:
                await trio.sleep(0.01)
                ticks += 1
                assert done == []
            reader = sqlite3.connect(path)
            assert [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq")] == [1]
            reader.close()
            holder.stdin.write("\n")
            holder.stdin.flush()
        assert sorted(done) == [2, 4]
        assert store._worker is not None and store._worker.ops >= 2  # both waited on the thread
        assert [e.seq for e in await store.events("e")] == [1, 2, 3, 4, 5]
        store.append("e", _log(6, "after"))  # the lock is free again: back on the loop thread
        await store.flush()
        assert [e.seq for e in await store.events("e")] == [1, 2, 3, 4, 5, 6]
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes its pipes
        await store.aclose()


async def test_checkpoints_run_on_their_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "wpk.db"
    store = SQLiteStore(path)
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never on the loop
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 0
        size = path.stat().st_size
        for seq in range(1, 3 * CHECKPOINT_EVERY + 1):
            store.append("e", _log(seq, "x" * 200))
            await store.flush()
        assert store._checkpointer is not None
        with trio.fail_after(30):
            while store._checkpointer.done < 1:
                await trio.sleep(0.01)
        assert path.stat().st_size > size  # the events reached the database file itself
    finally:
        await store.aclose()
    reopened = SQLiteStore(path)
    try:
        assert len(await reopened.events("e")) == 3 * CHECKPOINT_EVERY
    finally:
        await reopened.aclose()


async def test_large_events_bring_the_checkpoint_forward(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "wpk.db")
    try:
        line = "z" * (CHECKPOINT_BYTES // 8)
        for seq in range(1, 10):  # far fewer commits than CHECKPOINT_EVERY, more bytes than enough
            store.append("e", _log(seq, line))
            await store.flush()
        assert store._checkpointer is not None
        with trio.fail_after(30):
            while store._checkpointer.done < 1:
                await trio.sleep(0.01)
    finally:
        await store.aclose()


@pytest.mark.parametrize("offload", [False, True])
async def test_a_failed_write_keeps_nothing_of_itself(tmp_path: Path, offload: bool) -> None:
    store = SQLiteStore(tmp_path / "wpk.db", offload=offload)
    try:
        eid = (await submit(store, WorkflowCache(), RUNBOOK, {})).execution_id
        # The status update succeeds, then the event collides with the recorded first event.
        with pytest.raises(StoreError):
            await store.transition(eid, ["pending"], "running", [Event(1, EventType.EXECUTION_STARTED, 0.0)])
        row = await store.get_execution(eid)
        assert row is not None and row.status == "pending"
        assert [e.type for e in await store.events(eid)] == [EventType.EXECUTION_CREATED]
    finally:
        await store.aclose()


@pytest.mark.parametrize("offload", [False, True])
async def test_a_full_disk_surfaces_at_the_flush_carrying_the_write(tmp_path: Path, offload: bool) -> None:
    store = SQLiteStore(tmp_path / "wpk.db", offload=offload)
    try:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + 2}")
        for seq in range(1, 200):
            store.append("e", _log(seq, "y" * 1000))  # buffered: no error yet
        with pytest.raises(StoreError) as info:
            await store.flush()
        assert "is full" in str(info.value) and "\n" not in str(info.value)
        assert await store.events("e") == []  # all or nothing
    finally:
        store._pending.clear()
        await store.aclose()


def _stored_seqs(path: Path) -> list[int]:
    reader = sqlite3.connect(path)
    try:
        return [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        reader.close()


async def test_a_long_run_of_buffered_events_is_written_before_the_barrier(tmp_path: Path) -> None:
    path = tmp_path / "wpk.db"
    store = SQLiteStore(path)
    try:
        eid = (await submit(store, WorkflowCache(), RUNBOOK, {})).execution_id
        # A status-changing event first: the early write applies rows as a flush does.
        store.append(eid, Event(2, EventType.EXECUTION_STARTED, time.time()))
        for seq in range(3, EARLY_WRITE_EVENTS + 1):
            store.append(eid, _log(seq, f"line {seq}"))
        assert _stored_seqs(path) == [1]  # one short of the threshold: still buffered
        store.append(eid, _log(EARLY_WRITE_EVENTS + 1, "the one that fills the buffer"))
        assert _stored_seqs(path) == list(range(1, EARLY_WRITE_EVENTS + 2))  # written, no flush
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT status FROM executions").fetchone() == ("running",)
        reader.close()
        store.append(eid, _log(EARLY_WRITE_EVENTS + 2, "after"))
        await store.flush()
        assert [e.seq for e in await store.events(eid)] == list(range(1, EARLY_WRITE_EVENTS + 3))
    finally:
        await store.aclose()


async def test_buffered_events_wait_for_a_lock_held_elsewhere_on_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "wpk.db"
    store = SQLiteStore(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        for seq in range(1, 2 * EARLY_WRITE_EVENTS + 1):
            store.append("e", _log(seq, f"line {seq}"))  # the early writes find the lock taken
        assert _stored_seqs(path) == []
        assert len(store._pending) == 2 * EARLY_WRITE_EVENTS and store._worker is None  # kept, no wait
        holder.stdin.write("\n")
        holder.stdin.flush()
        await store.flush()  # waits for the lock on the database thread, then writes them all
        assert _stored_seqs(path) == list(range(1, 2 * EARLY_WRITE_EVENTS + 1))
    finally:
        holder.kill()
        holder.communicate()
        await store.aclose()


async def test_the_server_store_buffers_until_its_flush(tmp_path: Path) -> None:
    path = tmp_path / "wpk.db"
    store = SQLiteStore(path, offload=True)  # every call on the database thread, none from append
    try:
        for seq in range(1, EARLY_WRITE_EVENTS + 2):
            store.append("e", _log(seq, f"line {seq}"))
        assert _stored_seqs(path) == []
        await store.flush()
        assert _stored_seqs(path) == list(range(1, EARLY_WRITE_EVENTS + 2))
    finally:
        await store.aclose()
