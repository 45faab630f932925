"""Crash recovery end to end (DESIGN §5): a real `wpk serve` is SIGKILLed while the middle step of
a three-step runbook runs, then started again on the same store.

Side effects are counted in files (one line per run of a command), so "exactly once" is what the
files say, not what the events claim. An idempotent middle step is run again and the execution
completes; a non-idempotent one fails as "agent lost, outcome unknown", the step after it never
runs and the completed first step is compensated. Once on SQLite, once on the ArangoDB double
running in its own process. Then (SQLite) the same kill during a compensation, and during a
`for_each` step running two items at a time.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from sidecar_server import Server, start_server, wait_status

from wpk.engine import cli
from wpk.engine.store import SQLiteStore

TOKEN = "test-token-0123456789"
PASSWORD = "pw-" + secrets.token_hex(8)
FAST = ["--lease-seconds", "2", "--heartbeat-seconds", "0.4"]

THREE_STEPS = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: three, version: 1.0.0}}
spec:
  params:
    dir: {{type: string}}
  steps:
    - id: first
      uses: shell.run
      with: {{command: "echo run >> {{{{ params.dir }}}}/first"}}
      rollback:
        uses: shell.run
        with: {{command: "echo undo >> {{{{ params.dir }}}}/first_undone"}}
    - id: middle
      needs: [first]
      idempotent: {idempotent}
      uses: shell.run
      with:
        command: >-
          echo run >> {{{{ params.dir }}}}/middle;
          if [ ! -e {{{{ params.dir }}}}/release ]; then sleep 60; fi
      rollback: none
    - id: last
      needs: [middle]
      uses: shell.run
      with: {{command: "echo run >> {{{{ params.dir }}}}/last"}}
      rollback: none
"""


@pytest.fixture(scope="module")
def arango_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "arango_double", "--password", PASSWORD],
        cwd=Path(__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        yield "arangodb://root@" + url.removeprefix("http://") + "/crash"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _serve(tmp: Path, store: str) -> Server:
    return start_server(
        tmp,
        "--agent-id",
        "crash-agent",
        *FAST,
        token=TOKEN,
        store=store,
        env={"WPK_ARANGO_PASSWORD": PASSWORD},
    )


def _store(kind: str, tmp: Path, arango_url: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'wpk.db'}"
    return arango_url.replace("/crash", f"/crash_{secrets.token_hex(4)}")


@pytest.mark.parametrize("kind", ["sqlite", "arango"])
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
def test_a_killed_server_resumes_its_execution_after_restart(
    kind: str, idempotent: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _store(kind, tmp_path, request.getfixturevalue("arango_url") if kind == "arango" else "")
    work = tmp_path / "work"
    work.mkdir()
    server = _serve(tmp_path, url)
    try:
        with server.client() as client:
            response = client.post(
                "/execute",
                json={
                    "wpk_content": THREE_STEPS.format(idempotent=str(idempotent).lower()),
                    "parameters": {"dir": str(work)},
                },
            )
            assert response.status_code == 202, response.text
            eid = response.json()["execution_id"]
            _wait_for(work / "middle")
    finally:
        server.stop(signal.SIGKILL)
    (work / "release").touch()  # a re-run of the middle step does not wait
    assert (_lines(work / "first"), _lines(work / "middle"), _lines(work / "last")) == (1, 1, 0)
    again = _serve(tmp_path, url)
    try:
        with again.client() as client:
            record = wait_status(client, eid, {"completed", "failed", "rolled_back", "rollback_failed"})
    finally:
        assert again.stop() == 0
    steps = {s["id"]: s for s in record["steps"]}
    if idempotent:
        assert record["status"] == "completed", record
        assert (_lines(work / "first"), _lines(work / "middle"), _lines(work / "last")) == (1, 2, 1)
        assert _lines(work / "first_undone") == 0
    else:
        assert record["status"] == "rolled_back", record
        assert steps["middle"]["status"] == "failed" and "agent lost" in steps["middle"]["error"]
        assert steps["last"]["status"] == "skipped"
        assert (_lines(work / "first"), _lines(work / "middle"), _lines(work / "last")) == (1, 1, 0)
        assert _lines(work / "first_undone") == 1


def test_another_server_takes_over_once_the_lease_runs_out(tmp_path: Path) -> None:
    """No restart: a second server on the same store (another agent id) resumes the execution
    once the dead agent's lease (2 s) ran out; the idempotent middle step runs again there."""
    url = f"sqlite:///{tmp_path / 'wpk.db'}"
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "a").mkdir()
    dying = start_server(tmp_path / "a", "--agent-id", "a", *FAST, token=TOKEN, store=url)
    try:
        with dying.client() as client:
            response = client.post(
                "/execute",
                json={"wpk_content": THREE_STEPS.format(idempotent="true"), "parameters": {"dir": str(work)}},
            )
            assert response.status_code == 202, response.text
            eid = response.json()["execution_id"]
            _wait_for(work / "middle")
    finally:
        dying.stop(signal.SIGKILL)
    (work / "release").touch()
    (tmp_path / "b").mkdir()
    other = start_server(tmp_path / "b", "--agent-id", "b", *FAST, token=TOKEN, store=url)
    try:
        with other.client() as client:
            record = wait_status(client, eid, {"completed", "failed", "rolled_back", "rollback_failed"})
    finally:
        assert other.stop() == 0
    assert record["status"] == "completed", record

    async def holder() -> tuple[str | None, int]:
        store = SQLiteStore(tmp_path / "wpk.db")
        row = await store.get_execution(eid)
        await store.aclose()
        assert row is not None
        return row.agent_id, row.attempt

    assert trio.run(holder) == ("b", 2)  # taken over under a new fencing token
    assert (_lines(work / "first"), _lines(work / "middle"), _lines(work / "last")) == (1, 2, 1)


UNDO_UNDER_WAY = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: undo, version: 1.0.0}}
spec:
  params:
    dir: {{type: string}}
  steps:
    - id: first
      uses: shell.run
      with: {{command: "echo run >> {{{{ params.dir }}}}/first"}}
      rollback:
        uses: shell.run
        with: {{command: "echo undo >> {{{{ params.dir }}}}/first_undone"}}
    - id: second
      needs: [first]
      idempotent: {idempotent}
      uses: shell.run
      with: {{command: "echo run >> {{{{ params.dir }}}}/second"}}
      rollback:
        uses: shell.run
        with:
          command: >-
            echo undo >> {{{{ params.dir }}}}/second_undone;
            if [ ! -e {{{{ params.dir }}}}/release ]; then sleep 60; fi
    - id: boom
      needs: [second]
      uses: core.fail
      with: {{message: "fails on purpose, so the rollback runs"}}
"""

FINAL = {"completed", "failed", "rolled_back", "rollback_failed"}


def _killed_then_resumed(
    tmp: Path, runbooks: dict[str, str], ready: Callable[[Path], bool]
) -> tuple[dict[str, str], dict[str, dict], dict[str, Path]]:
    """Submit each runbook (its own work directory) to one real `wpk serve`, SIGKILL it once
    `ready(work)` holds for all, release the commands that block, start it again on the same
    SQLite store: the execution ids, the final records, the work directories. (One server for
    all the variants: a killed agent holds many executions, and the test stays fast.)"""
    url = f"sqlite:///{tmp / 'wpk.db'}"
    works = {name: tmp / name for name in runbooks}
    eids: dict[str, str] = {}
    server = _serve(tmp, url)
    try:
        with server.client() as client:
            for name, runbook in runbooks.items():
                works[name].mkdir()
                params = {"dir": str(works[name])}
                response = client.post("/execute", json={"wpk_content": runbook, "parameters": params})
                assert response.status_code == 202, response.text
                eids[name] = response.json()["execution_id"]
            deadline = time.monotonic() + 20
            while not all(ready(work) for work in works.values()):
                assert time.monotonic() < deadline, "the kill point never came"
                time.sleep(0.02)
    finally:
        server.stop(signal.SIGKILL)
    for work in works.values():
        (work / "release").touch()
    again = _serve(tmp, url)
    try:
        with again.client() as client:
            records = {name: wait_status(client, eid, FINAL) for name, eid in eids.items()}
    finally:
        assert again.stop() == 0
    return eids, records, works


def test_a_compensation_under_way_when_the_server_is_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rollback resumes: the compensation under way runs again if the step is idempotent, else
    it fails as "agent lost, outcome unknown"; either way the rest of the rollback runs, and
    `wpk executions show` says what happened."""
    runbooks = {f"idempotent-{v}": UNDO_UNDER_WAY.format(idempotent=v) for v in ("true", "false")}
    eids, records, works = _killed_then_resumed(tmp_path, runbooks, lambda w: (w / "second_undone").exists())
    for name, record in records.items():
        work, steps = works[name], {s["id"]: s for s in record["steps"]}
        assert (_lines(work / "first"), _lines(work / "second")) == (1, 1)  # no step ran again
        assert _lines(work / "first_undone") == 1  # the rest of the rollback ran, once
        assert steps["first"]["status"] == "compensated"
        assert (
            cli.main(["executions", "show", eids[name], "--store", f"sqlite:///{tmp_path / 'wpk.db'}"]) == 0
        )
        shown = capsys.readouterr().out
        if name == "idempotent-true":
            assert record["status"] == "rolled_back", record
            assert _lines(work / "second_undone") == 2
            assert steps["second"]["status"] == "compensated"
            assert "compensated          second: resumed after its agent was lost: run again" in shown
        else:
            assert record["status"] == "rollback_failed", record
            assert _lines(work / "second_undone") == 1
            assert steps["second"]["status"] == "compensation_failed"
            assert steps["second"]["compensation_error"].startswith("agent lost, outcome unknown")
            assert "compensation_failed  second: agent lost, outcome unknown" in shown


FOR_EACH = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: items, version: 1.0.0}}
spec:
  params:
    dir: {{type: string}}
  steps:
    - id: each
      idempotent: {idempotent}
      for_each: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      concurrency: 2
      uses: shell.run
      with:
        command: >-
          echo {{{{ index }}}} >> {{{{ params.dir }}}}/runs;
          if [ {{{{ index }}}} -ge 4 ] && [ ! -e {{{{ params.dir }}}}/release ]; then sleep 60; fi
      rollback:
        uses: shell.run
        with: {{command: "echo {{{{ index }}}} >> {{{{ params.dir }}}}/undone"}}
    - id: after
      needs: [each]
      uses: shell.run
      with: {{command: "echo run >> {{{{ params.dir }}}}/after"}}
      rollback: none
"""


def _numbers(path: Path) -> list[int]:
    return [int(n) for n in path.read_text().split()] if path.exists() else []


def test_a_for_each_step_killed_mid_way_resumes_item_by_item(tmp_path: Path) -> None:
    """Ten items, two at a time; killed while items 4 and 5 run (0-3 done, 6-9 not started).
    Done items never run again. Idempotent: 4 and 5 run again, 6-9 run, the execution completes.
    Not: 4 and 5 fail as agent lost, 6-9 never start, and 3, 2, 1, 0 are undone once each."""
    runbooks = {f"idempotent-{v}": FOR_EACH.format(idempotent=v) for v in ("true", "false")}
    _, records, works = _killed_then_resumed(tmp_path, runbooks, lambda w: len(_numbers(w / "runs")) >= 6)
    for name, record in records.items():
        work, runs = works[name], _numbers(works[name] / "runs")
        each = {s["id"]: s for s in record["steps"]}["each"]
        assert all(runs.count(i) == 1 for i in range(4))  # completed before the kill: never again
        if name == "idempotent-true":
            assert record["status"] == "completed", record
            assert [runs.count(i) for i in range(4, 10)] == [2, 2, 1, 1, 1, 1]
            assert _lines(work / "after") == 1 and _numbers(work / "undone") == []
        else:
            assert record["status"] == "rolled_back", record
            assert [runs.count(i) for i in range(4, 10)] == [1, 1, 0, 0, 0, 0]
            lost = [i["index"] for i in each["items"] if (i["error"] or "").startswith("agent lost")]
            assert lost == [4, 5]
            assert _numbers(work / "undone") == [3, 2, 1, 0]  # exactly the items done, last first
            assert _lines(work / "after") == 0
