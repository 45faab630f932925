"""After a crash of `wpk run`: its execution, left `running`, is marked failed, "agent lost".

A local run holds no lease (no agent takes its work over: it is one process, with its own
adapter settings), so the store cannot tell from time alone that it died. Instead its row names
the process that runs it: agent id `local:<host>:<pid>:<start time>` (the start time, so a
reused pid is not mistaken for it). The next `wpk run` on the same host and store looks for
such rows still `running` or `rolling_back` whose process is gone, and closes each with
`execution_finished` and `execution_closed`, status `failed`, error `agent lost` (SECURITY.md,
Faults), as one compare-and-set on the row, so two runs starting at once close it once. The
steps' leftover processes are ended by the shell adapter's sweep (`sweep_after_crash`).
Executions of `wpk serve` agents hold leases and are resumed instead (docs/stores.md).
"""

from __future__ import annotations

import os
import socket
import time

from .events import Event, EventType
from .store.base import ExecutionQuery, ExecutionStore

__all__ = ["LOST_ERROR", "local_agent_id", "mark_lost_executions"]

LOST_ERROR = "agent lost: the agent process ended while the execution was running"
_PREFIX = "local:"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def local_agent_id(pid: int | None = None) -> str:
    """The agent id a local run records in its row: host, pid and the process's start time."""
    pid = os.getpid() if pid is None else pid
    return f"{_PREFIX}{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def _dead(agent_id: str) -> bool:
    """A local run of this host whose process no longer runs (never guessed: unknown is alive)."""
    parts = agent_id.removeprefix(_PREFIX).rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another host's run, or not ours to judge
    if parts[2] == "?" or not os.path.isdir("/proc"):
        return False
    return _start_time(int(parts[1])) != parts[2]


async def mark_lost_executions(store: ExecutionStore) -> list[str]:
    """Close every local run of this host whose process died as failed ("agent lost")."""
    lost: list[str] = []
    cursor: int | None = None
    while True:
        page = await store.list_executions(
            ExecutionQuery(statuses=("running", "rolling_back"), limit=200, cursor=cursor)
        )
        for row in page.rows:
            ours = row.agent_id is not None and row.agent_id.startswith(_PREFIX) and _dead(row.agent_id)
            if ours and await _close_as_lost(store, row.execution_id, row.status):
                lost.append(row.execution_id)
        if page.next is None:
            return lost
        cursor = page.next


async def _close_as_lost(store: ExecutionStore, execution_id: str, status: str) -> bool:
    events = await store.events(execution_id)
    if not events or any(e.type is EventType.EXECUTION_CLOSED for e in events):
        return False
    seq = events[-1].seq
    data = {"status": "failed", "error": LOST_ERROR}
    closing = []
    if not any(e.type is EventType.EXECUTION_FINISHED for e in events):
        seq += 1
        closing.append(Event(seq, EventType.EXECUTION_FINISHED, time.time(), data=dict(data)))
    closing.append(Event(seq + 1, EventType.EXECUTION_CLOSED, time.time(), data=dict(data)))
    return await store.transition(execution_id, (status,), "failed", closing)
