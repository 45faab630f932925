"""Benchmark of the queue (not a test): no-op executions submitted, claimed and completed per
second by real `wpk serve` agents sharing one SQLite store, and claim latency.

For each case (1 and 2 agents; an empty store and one holding 100,000 finished executions):
N no-op executions are submitted into the store (`executions.submit`, as `wpk submit --store`
does: submitted/s), then the agents start (`--capacity 64`) and run them. Completed/s is counted
from the first claim to the last finish, from the store's own timestamps, so process start-up is
not measured. Claim latency p50/p99 comes from the agents' `workflow_claim_latency_seconds`
histogram (bucket upper bounds). Every execution must end `completed`, claimed exactly once.

Goal on 2 cores: >= 500 no-op executions/s completed with one agent, not falling by more than
10% with 100,000 finished executions in the store. Run: `python tests/bench/queue_throughput.py [--n 3000]
[--quick]`; figures go to docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named after the stdlib's `queue`, which trio imports: run as a script, its own
# folder must not come first on the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
# ruff: noqa: E402

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from typing import Any

import trio

sys.path.insert(0, str(_HERE.parent))
from sidecar_server import start_server

from wpk.engine.executions import WorkflowCache, submit
from wpk.engine.store import SQLiteStore

NOOP = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""


def prefill(db: Path, count: int) -> None:
    """`count` finished executions (a row and two events each), written in bulk."""
    store = SQLiteStore(db)
    trio.run(store.aclose)  # the schema
    now = time.time() - 86400
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("BEGIN")
        rows, events = [], []
        for i in range(count):
            eid = str(uuid.uuid4())
            rows.append(
                (eid, "noop", "1.0.0", "completed", i % 101, 0, now + i * 0.001, now, now, NOOP, "", "{}")
            )
            events.append((eid, 1, "execution_created", now, None, None, "{}"))
            events.append((eid, 2, "execution_closed", now, None, None, '{"status":"completed"}'))
        conn.executemany(
            "INSERT INTO executions (execution_id, workflow_name, workflow_version, status, priority,"
            " dry_run, created_at, started_at, finished_at, package, package_path, params) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", events)
        conn.execute("COMMIT")


def submit_all(db: Path, n: int, not_before: float) -> float:
    """Submit n pending no-op executions, due at `not_before` (when every agent is up); returns
    submissions per second."""

    async def go() -> float:
        store = SQLiteStore(db, offload=True)
        cache = WorkflowCache()
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:  # 32 submitters: group commit as under load
            per = n // 32

            async def worker(count: int) -> None:
                for _ in range(count):
                    await submit(store, cache, NOOP, {}, priority=(_ * 7) % 101, not_before=not_before)

            for w in range(32):
                nursery.start_soon(worker, per + (1 if w < n % 32 else 0))
        rate = n / (time.perf_counter() - began)
        await store.aclose()
        return rate

    return trio.run(go)


def histogram_quantiles(texts: list[str], name: str) -> tuple[float, float]:
    buckets: dict[float, float] = {}
    for text in texts:
        for line in text.splitlines():
            if line.startswith(f"{name}_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return (float("nan"), float("nan"))

    def q(p: float) -> float:
        return next(b for b in sorted(buckets) if buckets[b] >= p * total)

    return q(0.5), q(0.99)


def run_case(n: int, agents: int, finished: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wpk-bench-queue-") as tmp:
        root = Path(tmp)
        db = root / "wpk.db"
        prefill(db, finished)
        submitted = submit_all(db, n, time.time() + 1e6)
        servers = []
        try:
            for i in range(agents):
                sub = root / f"agent{i}"
                sub.mkdir()
                servers.append(
                    start_server(sub, "--capacity", "64", "--agent-id", f"bench-{i}", store=f"sqlite:///{db}")
                )
            with contextlib.closing(sqlite3.connect(db)) as conn:  # every agent is up: due now
                conn.execute("UPDATE executions SET not_before = ? WHERE status = 'pending'", (time.time(),))
                conn.commit()
            deadline = time.monotonic() + 600
            while True:
                with contextlib.closing(sqlite3.connect(db)) as conn:
                    left = conn.execute(
                        "SELECT COUNT(*) FROM executions WHERE status IN ('pending', 'running')"
                    ).fetchone()[0]
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            metrics = []
            for server in servers:
                with server.client() as c:
                    metrics.append(c.get("/metrics").text)
        finally:
            for server in servers:
                server.stop()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            first, last, done, attempts = conn.execute(
                "SELECT MIN(started_at), MAX(finished_at), COUNT(*), MAX(attempt) FROM executions"
                " WHERE package_path != '' AND status = 'completed'"
            ).fetchone()
            per_agent = dict(
                conn.execute(
                    "SELECT agent_id, COUNT(*) FROM executions WHERE package_path != '' GROUP BY agent_id"
                ).fetchall()
            )
        p50, p99 = histogram_quantiles(metrics, "workflow_claim_latency_seconds")
        return {
            "agents": agents,
            "finished_in_store": finished,
            "executions": n,
            "completed": done,
            "claimed_once": attempts == 1,
            "per_agent": per_agent,
            "submitted_per_s": round(submitted, 1),
            "completed_per_s": round(done / (last - first), 1) if done else 0.0,
            "claim_p50_ms_le": round(p50 * 1000, 2),
            "claim_p99_ms_le": round(p99 * 1000, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="500 executions, 10,000 finished")
    parser.add_argument("--agents", type=int, nargs="*", default=[1, 2], help="agent counts (default 1 2)")
    parser.add_argument("--repeat", type=int, default=1, help="run every case this many times")
    args = parser.parse_args()
    n, finished = (500, 10_000) if args.quick else (args.n, args.finished)
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"# {machine}, load {os.getloadavg()}")
    for _ in range(args.repeat):
        for agents in args.agents:
            for filled in (0, finished):
                print(json.dumps(run_case(n, agents, filled)), flush=True)


if __name__ == "__main__":
    main()
