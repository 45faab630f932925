"""Fault injection: `wpk serve` is SIGKILLed again and again over executions' lives, rollback
included, and restarted on the same store each time.

After the last restart: every execution reaches a final state, no event is lost or duplicated
(each execution's events are numbered 1..n without a gap), and no non-idempotent step or
compensation ran twice (counted by side effects in files). Kill points are random (seeded),
and some are aimed at a compensation under way, so rollback is hit on every run of the test.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

import trio
from sidecar_server import Server, start_server, wait_status

from wpk.engine.store import SQLiteStore

TOKEN = "test-token-0123456789"
KILLS = 20
FAST = ["--lease-seconds", "2", "--heartbeat-seconds", "0.4", "--agent-id", "faulty"]
FINAL = {"completed", "failed", "rolled_back", "rollback_failed", "cancelled"}

RUNBOOK = (
    """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: faulty, version: 1.0.0}
spec:
  params:
    dir: {type: string}
  steps:
"""
    + "".join(
        f"""\
    - id: s{i}
      {f"needs: [s{i - 1}]" if i > 1 else ""}
      idempotent: {"true" if i == 2 else "false"}
      uses: shell.run
      with: {{command: "echo {{{{ execution.id }}}} >> {{{{ params.dir }}}}/s{i}; sleep 0.15"}}
      rollback:
        uses: shell.run
        with: {{command: "echo {{{{ execution.id }}}} >> {{{{ params.dir }}}}/s{i}_undo; sleep 0.25"}}
"""
        for i in range(1, 5)
    )
    + """\
    - id: boom
      needs: [s4]
      uses: core.fail
      with: {message: "fails on purpose, so the rollback runs"}
"""
)


def _events(db: Path) -> dict[str, list[tuple[int, str]]]:
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT execution_id, seq, type FROM events ORDER BY execution_id, seq"
        ).fetchall()
    out: dict[str, list[tuple[int, str]]] = {}
    for eid, seq, kind in rows:
        out.setdefault(eid, []).append((int(seq), str(kind)))
    return out


def _in_rollback(events: list[tuple[int, str]]) -> bool:
    kinds = [k for _, k in events]
    return "compensation_started" in kinds and "rollback_finished" not in kinds


def _serve(tmp: Path, db: Path) -> Server:
    return start_server(tmp, *FAST, token=TOKEN, store=f"sqlite:///{db}")


def test_random_kills_lose_nothing_and_repeat_no_write(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    db, work = tmp_path / "wpk.db", tmp_path / "work"
    work.mkdir()
    executions: list[str] = []
    kills_in_rollback = 0
    for kill in range(KILLS):
        server = _serve(tmp_path, db)
        try:
            active = [e for e, ev in _events(db).items() if not any(k == "execution_closed" for _, k in ev)]
            if not active:
                with server.client() as client:
                    response = client.post(
                        "/execute", json={"wpk_content": RUNBOOK, "parameters": {"dir": str(work)}}
                    )
                    assert response.status_code == 202, response.text
                    executions.append(response.json()["execution_id"])
            if kill % 3 == 2:  # aimed: kill while a compensation runs
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    current = _events(db).get(executions[-1], [])
                    if _in_rollback(current) or any(k == "execution_closed" for _, k in current):
                        break
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.15))
            else:
                time.sleep(rng.uniform(0.05, 0.7))
        finally:
            server.stop(signal.SIGKILL)
        if _in_rollback(_events(db).get(executions[-1], [])):
            kills_in_rollback += 1
    final = _serve(tmp_path, db)
    try:
        with final.client() as client:
            records = {e: wait_status(client, e, FINAL, timeout=60) for e in executions}
    finally:
        assert final.stop() == 0
    assert kills_in_rollback >= 1
    events = _events(db)
    for eid in executions:
        assert records[eid]["status"] in FINAL
        seqs = [seq for seq, _ in events[eid]]
        assert seqs == list(range(1, len(seqs) + 1)), f"{eid}: events lost or repeated"
        assert [k for _, k in events[eid]].count("execution_closed") == 1
    # s2 says `idempotent: true`: it, and a compensation of it cut short, may run again
    for name in ("s1", "s3", "s4", "s1_undo", "s3_undo", "s4_undo"):
        path = work / name
        runs = path.read_text().split() if path.exists() else []
        assert len(runs) == len(set(runs)), f"{name}: a non-idempotent command ran twice"

    async def check_store() -> None:  # the store agrees: each execution's row is final too
        store = SQLiteStore(db)
        for eid in executions:
            row = await store.get_execution(eid)
            assert row is not None and row.status in FINAL
        await store.aclose()

    trio.run(check_store)
