"""Crash recovery end to end (DESIGN §5): a real `wpk serve` is SIGKILLed while the middle step of
a three-step runbook runs, then started again on the same store.

Side effects are counted in files (one line per run of a command), so "exactly once" is what the
files say, not what the events claim. An idempotent middle step is run again and the execution
completes; a non-idempotent one fails as "agent lost, outcome unknown", the step after it never
runs and the completed first step is compensated. Once on SQLite, once on the ArangoDB double
running in its own process.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from sidecar_server import Server, start_server, wait_status

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
