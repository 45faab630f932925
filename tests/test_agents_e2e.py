"""Agents and the priority queue with real `wpk serve` processes sharing one SQLite store
(the same scenarios on the ArangoDB double: tests/agents_arango_enable_after_merge.py).

Pause holds the queue and resume runs the highest priority first; placement waits for an agent
with the labels; a pause or drain asked through another process is applied at the agent's
next heartbeat; an agent killed with SIGKILL is marked failed by the other; SIGTERM drains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from sidecar_server import WPK, Server, start_server, wait_status

from wpk.engine.store import ExecutionQuery, ExecutionRow, open_store

NOOP = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""
PLACED = NOOP.replace("name: noop", "name: placed").replace(
    "spec:\n", "spec:\n  placement: {labels: {cluster: prod-eu}}\n"
)
SLOW = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: slow, version: 1.0.0}
spec:
  params:
    seconds: {type: number, default: 30}
  steps:
    - id: wait
      uses: shell.run
      with: {command: "sleep {{ params.seconds }}"}
      rollback: none
"""
RESUMABLE = SLOW.replace("name: slow", "name: resumable").replace(
    "      rollback: none\n", "      rollback: none\n      idempotent: true\n"
)
FAST = ("--heartbeat-seconds", "0.2", "--lease-seconds", "2")


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def submit(client: httpx.Client, content: str, **extra: Any) -> str:
    response = client.post("/execute", json={"wpk_content": content, **extra})
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


@dataclass(frozen=True)
class Backing:
    """The store every process of a test shares: its URL and the environment it needs."""

    url: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def backing(tmp_path: Path) -> Backing:
    return Backing(f"sqlite:///{tmp_path / 'wpk.db'}")


def rows(backing: Backing) -> dict[str, dict[str, Any]]:
    """Every execution row, read through the store itself (as another process would)."""

    async def read() -> list[ExecutionRow]:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in backing.env.items():
                mp.setenv(k, v)
            store = open_store(backing.url)
            try:
                return (await store.list_executions(ExecutionQuery(limit=500))).rows
            finally:
                await store.aclose()

    return {
        r.execution_id: {
            "status": r.status,
            "agent_id": r.agent_id,
            "started_at": r.started_at,
            "lease_until": r.lease_until,
        }
        for r in trio.run(read)
    }


def agents(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {a["agent_id"]: a for a in client.get("/agents").json()["agents"]}


def wpk(backing: Backing, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **backing.env}
    return subprocess.run([*WPK, *args], capture_output=True, text=True, timeout=60, env=env)


def serve(tmp_path: Path, backing: Backing, *args: str) -> Server:
    return start_server(tmp_path, *args, store=backing.url, env=backing.env)


def test_pause_priority_placement_and_control_across_processes(tmp_path: Path, backing: Backing) -> None:
    store = backing.url
    a = serve(tmp_path, backing, "--agent-id", "A", "--capacity", "1", *FAST)
    b: Server | None = None
    ca = a.client()
    try:
        eventually(lambda: agents(ca).get("A", {}).get("state") == "running", what="A registered")
        # A pause recorded in the store by another process is applied at A's next heartbeat.
        out = wpk(backing, "agents", "pause", "A", "--store", store)
        assert out.returncode == 0, out.stderr
        assert "pause requested" in out.stdout
        eventually(lambda: ca.get("/health").json()["agent_state"] == "paused", what="A paused")
        assert agents(ca)["A"]["requested"] is None

        low = [submit(ca, NOOP, priority=10) for _ in range(4)]
        high = [submit(ca, NOOP, priority=90) for _ in range(4)]
        placed = submit(ca, PLACED, priority=50)
        time.sleep(0.6)  # three heartbeats and polls: nothing is claimed while paused
        assert {rows(backing)[i]["status"] for i in low + high + [placed]} == {"pending"}

        queue = ca.get("/queue").json()
        assert [e["execution_id"] for e in queue["executions"]] == [*high, placed, *low]
        reasons = {e["execution_id"]: e["waiting_reason"] for e in queue["executions"]}
        assert reasons[placed] == "no live agent has the labels cluster=prod-eu"
        assert reasons[low[0]] == "every agent that could run it is paused"
        assert ca.get(f"/execute/{placed}").json()["waiting_reason"] == reasons[placed]
        metrics = ca.get("/metrics").text
        assert 'workflow_agents{state="paused"} 1.0' in metrics
        assert 'workflow_queue_depth{band="high"} 4.0' in metrics
        assert 'workflow_queue_depth{band="low"} 4.0' in metrics
        assert "workflow_claim_latency_seconds_bucket" in metrics
        listing = wpk(backing, "queue", "--url", a.url, "--token", str(a.token))
        assert listing.returncode == 0 and "9 pending" in listing.stdout, listing.stdout

        resumed = ca.post("/agents/A/resume")
        assert resumed.status_code == 202 and resumed.json()["state"] == "running"
        for eid in high + low:
            wait_status(ca, eid, {"completed"})
        started = sorted(high + low, key=lambda i: rows(backing)[i]["started_at"])
        assert set(started[:4]) == set(high), "the four at priority 90 run first"
        assert started[:4] == high and started[4:] == low  # FIFO within a priority
        assert rows(backing)[placed]["status"] == "pending"

        # An agent with the labels joins: the placed execution runs there.
        b = serve(tmp_path, backing, "--agent-id", "B", "--labels", "cluster=prod-eu", *FAST)
        wait_status(ca, placed, {"completed"})
        assert rows(backing)[placed]["agent_id"] == "B"

        # Drain B through A's API: recorded, applied at B's heartbeat; B finishes and exits 0.
        drained = ca.post("/agents/B/drain")
        assert drained.status_code == 202 and drained.json()["requested"] == "drain"
        assert b.proc.wait(20) == 0
        assert agents(ca)["B"]["state"] == "stopped"
        refused = ca.post("/agents/B/resume")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "illegal_transition"
        assert "agent B is stopped: cannot resume it" in refused.json()["error"]["message"]
        assert ca.post("/agents/nobody/pause").status_code == 404
        out = wpk(backing, "agents", "resume", "B", "--url", a.url, "--token", str(a.token))
        assert out.returncode == 1 and "cannot resume it" in out.stderr

        later = submit(ca, NOOP, not_before="2999-01-01T00:00:00Z")
        assert ca.get(f"/execute/{later}").json()["waiting_reason"] == "not before 2999-01-01T00:00:00Z"
        bad = ca.post("/execute", json={"wpk_content": NOOP, "not_before": "tomorrow"})
        assert bad.status_code == 400 and bad.json()["error"]["details"] == {"field": "not_before"}

        listed = wpk(backing, "agents", "list", "--store", store, "--format", "json")
        states = {x["agent_id"]: x["state"] for x in json.loads(listed.stdout)["agents"]}
        assert states == {"A": "running", "B": "stopped"}
    finally:
        ca.close()
        assert a.stop() == 0
        if b is not None:
            b.stop()
    assert {
        x["agent_id"]: x["state"]
        for x in json.loads(wpk(backing, "agents", "list", "--store", store, "--format", "json").stdout)[
            "agents"
        ]
    } == {"A": "stopped", "B": "stopped"}


def test_sigkill_marks_the_agent_failed_and_sigterm_drains(tmp_path: Path, backing: Backing) -> None:
    store = backing.url
    a = serve(tmp_path, backing, "--agent-id", "A", "--capacity", "1", *FAST)
    b = serve(tmp_path, backing, "--agent-id", "B", "--capacity", "1", "--grace", "20", *FAST)
    ca, cb = a.client(), b.client()
    try:
        assert cb.post("/agents/B/pause").json()["state"] == "paused"
        slow = submit(ca, RESUMABLE, parameters={"seconds": 2})
        wait_status(ca, slow, {"running"})
        assert rows(backing)[slow]["agent_id"] == "A"
        a.proc.kill()  # SIGKILL: no goodbye, the heartbeats just stop
        a.proc.wait(10)
        assert cb.post("/agents/B/resume").json()["state"] == "running"
        eventually(lambda: agents(cb)["A"]["state"] == "failed", timeout=15, what="A marked failed")
        assert 'workflow_agents{state="failed"} 1.0' in cb.get("/metrics").text
        # A's execution is taken over by B once A's lease runs out, and finished there: its one
        # step was running when A died and says `idempotent: true`, so it runs again (DESIGN §5).
        record = wait_status(cb, slow, {"completed"}, timeout=30)
        assert rows(backing)[slow]["agent_id"] == "B"
        assert record["steps"][0]["status"] == "completed"
        # New work goes to the live agent.
        fresh = submit(cb, NOOP)
        wait_status(cb, fresh, {"completed"})
        assert rows(backing)[fresh]["agent_id"] == "B"

        # SIGTERM drains: the running execution finishes, queued ones stay queued for others.
        running = submit(cb, SLOW, parameters={"seconds": 4})
        wait_status(cb, running, {"running"})
        queued = [submit(cb, NOOP, priority=1) for _ in range(2)]
        assert b.stop(signal.SIGTERM) == 0
        assert "draining" in b.log and "stopped" in b.log
        after = rows(backing)
        assert after[running]["status"] == "completed"
        assert {after[q]["status"] for q in queued} == {"pending"}
        listing = json.loads(wpk(backing, "queue", "--store", store, "--format", "json").stdout)
        assert {e["waiting_reason"] for e in listing["executions"]} == {"no live agent"}
        states = {
            x["agent_id"]: x["state"]
            for x in json.loads(wpk(backing, "agents", "list", "--store", store, "--format", "json").stdout)[
                "agents"
            ]
        }
        assert states == {"A": "failed", "B": "stopped"}
    finally:
        ca.close()
        cb.close()
        a.stop(signal.SIGKILL)
        b.stop()
