"""Benchmark of the SIGTERM hand-over (not a test): how long after SIGTERM the stopping agent
exits, and how long until another agent has taken its running execution over.

Two real `wpk serve` agents on one SQLite file, `--lease-seconds 120` (so a takeover that waited
for the lease would take two minutes), `--heartbeat-seconds 0.2`; A runs a 30 s idempotent step
with `--grace 1`, B is paused until A holds it. Then SIGTERM to A: "exit" is until A's process
ends, "taken over" until B's claim is in the store (B polls the queue every second).

Goal: taken over within `--grace` plus two poll intervals (3 s here), never the lease time.
Run: `python tests/bench/handover.py [--runs 3]`; figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))

from sidecar_server import wait_status  # noqa: E402
from test_agents_e2e import RESUMABLE, Backing, eventually, rows, serve, submit  # noqa: E402

LONG_LEASE = ("--heartbeat-seconds", "0.2", "--lease-seconds", "120")


def once() -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="wpk-handover-"))
    backing = Backing(f"sqlite:///{tmp / 'wpk.db'}")
    a = serve(tmp, backing, "--agent-id", "A", "--grace", "1", *LONG_LEASE)
    b = serve(tmp, backing, "--agent-id", "B", *LONG_LEASE)
    ca, cb = a.client(), b.client()
    try:
        cb.post("/agents/B/pause")
        eid = submit(ca, RESUMABLE, parameters={"seconds": 30})
        wait_status(ca, eid, {"running"})
        cb.post("/agents/B/resume")
        sent = time.monotonic()
        a.stop(signal.SIGTERM)
        exited = time.monotonic() - sent
        eventually(lambda: rows(backing)[eid]["agent_id"] == "B", timeout=150, what="taken over")
        return exited, time.monotonic() - sent
    finally:
        ca.close()
        cb.close()
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for run in range(args.runs):
        exited, taken = once()
        print(f"run {run + 1}: SIGTERM -> A exited {exited:.2f} s, taken over by B {taken:.2f} s")


if __name__ == "__main__":
    main()
