"""Aging against starvation, with a real `wpk serve`: under a continuous stream of priority-100
work, a priority-0 execution runs within the documented bound (engine/scheduler.py): nothing
submitted more than (100 - 0) / rate minutes after it is claimed before it."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

from sidecar_server import start_server, wait_status

BUSY = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: busy, version: 1.0.0}
spec:
  steps:
    - id: work
      uses: shell.run
      with: {command: "sleep 0.1"}
      rollback: none
"""
RATE = 3000.0  # priority points per minute: 50 a second, so the bound for priority 0 is 2 s
BOUND = (100 - 0) / RATE * 60.0


def test_priority_zero_runs_within_the_bound_under_a_stream_of_priority_100(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--capacity", "1", "--aging-rate", str(RATE), "--grace", "0")
    stop = threading.Event()
    submitted: list[str] = []

    def stream() -> None:
        with server.client() as c:
            while not stop.is_set():
                r = c.post("/execute", json={"wpk_content": BUSY, "priority": 100})
                submitted.append(r.json()["execution_id"])
                time.sleep(0.04)  # about 20 a second against at most 10 a second run: a growing backlog

    feeder = threading.Thread(target=stream, daemon=True)
    try:
        with server.client() as client:
            feeder.start()
            time.sleep(1.0)
            low = client.post("/execute", json={"wpk_content": BUSY, "priority": 0}).json()["execution_id"]
            wait_status(client, low, {"completed"}, timeout=60)
            time.sleep(BOUND)  # keep the stream going past the bound
            stop.set()
            feeder.join(30)
    finally:
        stop.set()
        server.stop()
    with contextlib.closing(sqlite3.connect(tmp_path / "wpk.db")) as db:
        rows = {
            r[0]: (r[1], r[2], r[3])
            for r in db.execute("SELECT execution_id, priority, created_at, started_at FROM executions")
        }
    _, low_created, low_started = rows[low]
    later = [r for r in rows.values() if r[0] == 100 and r[1] > low_created + BOUND]
    assert later, "the stream went on past the bound"
    assert all(started is None or started > low_started for _, _, started in later)
    overtaken = [
        r for r in rows.values() if r[0] == 100 and r[1] > low_created and r[2] and r[2] < low_started
    ]
    assert overtaken, "the stream kept the agent busy: younger priority-100 work ran first, as it should"
