"""SIGTERM hands running work over, with real `wpk serve` processes sharing one SQLite store (the
same scenario on the ArangoDB double: tests/test_agents_arango.py).

Agent A (labels cluster=prod-eu) runs two executions placed on cluster=prod-eu: one whose long
step writes (not idempotent), one whose long step says `idempotent: true`. A gets SIGTERM with
`--grace 1`: past it, A stops both as if it had vanished (no rollback, no final state) and
releases their leases at once. Agent B has no labels: it may not take them over. Agent C has
the labels and takes both over at its next poll, long before the 120 s lease would have run
out: the idempotent step runs again and completes; the writing one fails "agent lost" and the
step it completed before is compensated, by C. Each side effect writes the pid of the agent
that ran it (`$PPID` of the step's shell) to a file.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sidecar_server import Server, wait_status
from test_agents_e2e import Backing, agents, eventually, rows, serve, submit, wpk

LONG_LEASE = ("--heartbeat-seconds", "0.2", "--lease-seconds", "120")
HEADER = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: %s, version: 1.0.0}
spec:
  placement: {labels: {cluster: prod-eu}}
  params:
    dir: {type: string}
  steps:
"""
WRITES = (
    HEADER % "handover-write"
    + """\
    - id: first
      uses: shell.run
      with: {command: "echo $PPID >> {{ params.dir }}/w_first"}
      rollback:
        uses: shell.run
        with: {command: "echo $PPID >> {{ params.dir }}/w_first_undo"}
    - id: long
      needs: [first]
      uses: shell.run
      with: {command: "echo $PPID >> {{ params.dir }}/w_long; sleep 60"}
      rollback:
        uses: shell.run
        with: {command: "echo $PPID >> {{ params.dir }}/w_long_undo"}
"""
)
IDEMPOTENT = (
    HEADER % "handover-idempotent"
    + """\
    - id: work
      idempotent: true
      uses: shell.run
      with:
        command: >-
          echo $PPID >> {{ params.dir }}/i_work;
          [ "$(wc -l < {{ params.dir }}/i_work)" -gt 1 ] || sleep 60
      rollback: none
"""
)


@pytest.fixture
def backing(tmp_path: Path) -> Backing:
    return Backing(f"sqlite:///{tmp_path / 'wpk.db'}")


def pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_sigterm_hands_running_work_over_to_an_eligible_agent(tmp_path: Path, backing: Backing) -> None:
    work = tmp_path / "work"
    work.mkdir()
    a = serve(tmp_path, backing, "--agent-id", "A", "--labels", "cluster=prod-eu", "--capacity", "2",
              "--grace", "1", *LONG_LEASE)  # fmt: skip
    b = serve(tmp_path, backing, "--agent-id", "B", *LONG_LEASE)
    c = serve(tmp_path, backing, "--agent-id", "C", "--labels", "cluster=prod-eu,zone=b", *LONG_LEASE)
    servers: list[Server] = [a, b, c]
    ca, cc = a.client(), c.client()
    try:
        assert cc.post("/agents/C/pause").json()["state"] == "paused"  # so A claims both
        params = {"parameters": {"dir": str(work)}}
        write = submit(ca, WRITES, **params)
        idem = submit(ca, IDEMPOTENT, **params)
        eventually(lambda: pids(work / "w_long") and pids(work / "i_work"), what="both long steps run on A")
        assert {rows(backing)[e]["agent_id"] for e in (write, idem)} == {"A"}

        sent = time.monotonic()
        assert a.stop(signal.SIGTERM) == 0
        assert "handed over execution" in a.log and "Traceback" not in a.log
        after = rows(backing)
        for eid in (write, idem):  # still running, held by nobody: free to take over now
            assert after[eid]["status"] == "running" and after[eid]["agent_id"] is None
        # The record tells what happened to the step A left running.
        shown = wpk(backing, "executions", "show", write, "--store", backing.url, "--format", "json")
        long = {s["id"]: s for s in json.loads(shown.stdout)["steps"]}["long"]
        assert long["status"] == "running" and long["error"].startswith("handed over: agent A shut down")
        # B polls every second and is running, but lacks the labels: it takes nothing over.
        time.sleep(2.5)
        assert {rows(backing)[e]["agent_id"] for e in (write, idem)} == {None}

        assert cc.post("/agents/C/resume").json()["state"] == "running"
        done = wait_status(cc, idem, {"completed"}, timeout=60)
        rolled = wait_status(cc, write, {"rolled_back"}, timeout=60)
        assert time.monotonic() - sent < 100  # taken over at once, not when A's 120 s lease ran out
        final = rows(backing)
        assert final[write]["agent_id"] == "C" and final[idem]["agent_id"] == "C"

        steps = {s["id"]: s for s in rolled["steps"]}
        assert steps["long"]["status"] == "failed" and steps["long"]["error"].startswith("agent lost")
        assert steps["first"]["status"] == "compensated"
        assert done["steps"][0]["status"] == "completed"
        pa, pc = a.proc.pid, c.proc.pid
        assert pids(work / "w_first") == [pa]
        assert pids(work / "w_long") == [pa]  # a write whose outcome is unknown: not run again
        assert pids(work / "w_first_undo") == [pc]  # compensated once, by C: A ran no rollback
        assert pids(work / "w_long_undo") == []  # nor is the lost step itself compensated
        assert pids(work / "i_work") == [pa, pc]  # idempotent: run again by C
        assert agents(cc)["A"]["state"] == "stopped"
    finally:
        ca.close()
        cc.close()
        for server in servers:
            server.stop()
