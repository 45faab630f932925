"""After a crash: executions left `running` by an agent that died are marked failed, "agent lost".

While an execution runs, its agent keeps a small marker file naming the execution, the store and
the agent process (pid and start time, so a reused pid is not mistaken for the agent). A clean
end removes it. When the next agent starts, a marker whose agent no longer runs means the agent
was killed mid-execution: the execution gets `execution_finished` and `execution_closed` events
with status `failed` and error `agent lost`, so it no longer reads `running` forever
(SECURITY.md, Faults). The steps' leftover processes are ended by the shell adapter's own sweep
(`adapters/shell/process.py`, `sweep_orphans`). Kept minimal and apart from the store: the
durable claim layer (engine/store/) will own leases and takeovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .events import Event, EventType
from .store.base import EventStore

__all__ = ["LOST_ERROR", "mark_lost_executions", "running_marker"]

LOST_ERROR = "agent lost: the agent process ended while the execution was running"


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wpk" / "running"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def _agent_alive(pid: int, start: str | None) -> bool:
    if start is None or not os.path.isdir("/proc"):
        return True  # cannot tell: never declare a live agent lost
    return _start_time(pid) == start


@contextlib.contextmanager
def running_marker(execution_id: str, store_url: str) -> Iterator[None]:
    """Keep a marker for `execution_id` while the block runs (not for `memory:` stores)."""
    if store_url.startswith("memory:"):
        yield
        return
    folder = _state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{execution_id}.json"
    pid = os.getpid()
    marker.write_text(
        json.dumps({"execution_id": execution_id, "store": store_url, "pid": pid, "start": _start_time(pid)}),
        encoding="utf-8",
    )
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


async def mark_lost_executions(open_store: Callable[[str], EventStore]) -> list[str]:
    """Mark every execution whose agent died as failed ("agent lost"); return their ids."""
    folder = _state_dir()
    if not folder.is_dir():
        return []
    lost: list[str] = []
    for marker in sorted(folder.glob("*.json")):
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            execution_id, store_url = str(info["execution_id"]), str(info["store"])
            pid, start = int(info["pid"]), info.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            marker.unlink(missing_ok=True)  # unreadable: nothing can be done with it
            continue
        if _agent_alive(pid, start):
            continue
        store = open_store(store_url)
        try:
            if await _close_as_lost(store, execution_id):
                lost.append(execution_id)
        finally:
            await store.aclose()
        marker.unlink(missing_ok=True)
    return lost


async def _close_as_lost(store: EventStore, execution_id: str) -> bool:
    events = await store.events(execution_id)
    if not events or any(e.type is EventType.EXECUTION_CLOSED for e in events):
        return False
    seq = events[-1].seq
    data = {"status": "failed", "error": LOST_ERROR}
    if not any(e.type is EventType.EXECUTION_FINISHED for e in events):
        seq += 1
        store.append(execution_id, Event(seq, EventType.EXECUTION_FINISHED, time.time(), data=dict(data)))
    store.append(execution_id, Event(seq + 1, EventType.EXECUTION_CLOSED, time.time(), data=dict(data)))
    try:
        await store.flush()
    except Exception:  # another agent starting at the same moment closed it first (same seq)
        return False
    return True
