"""Two `wpk serve` processes sharing one store run every submission exactly once.

300 submissions, half to each server; each execution appends its id to a file, so "exactly
once" is counted by side effects. Once on one SQLite file, once on one ArangoDB double (in its
own process).
"""

from __future__ import annotations

import collections
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from sidecar_server import start_server

from wpk.engine.store import ExecutionQuery, open_store

TOKEN = "test-token-0123456789"
PASSWORD = "pw-" + secrets.token_hex(8)
COUNT = 300

MARK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: mark, version: 1.0.0}
spec:
  params:
    file: {type: string}
  steps:
    - id: mark
      uses: shell.run
      with: {command: "echo {{ execution.id }} >> {{ params.file }}"}
      rollback: none
"""


@pytest.fixture
def arango_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "arango_double", "--password", PASSWORD],
        cwd=Path(__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield "arangodb://root@" + proc.stdout.readline().strip().removeprefix("http://") + "/shared"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def _rows(url: str) -> dict[str, tuple[str, str | None]]:
    store = open_store(url)
    found: dict[str, tuple[str, str | None]] = {}
    cursor = None
    while True:
        page = await store.list_executions(ExecutionQuery(limit=100, cursor=cursor))
        found.update({r.execution_id: (r.status, r.agent_id) for r in page.rows})
        if page.next is None:
            break
        cursor = page.next
    await store.aclose()
    return found


@pytest.mark.parametrize("kind", ["sqlite", "arango"])
def test_two_servers_on_one_store_run_each_submission_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else request.getfixturevalue("arango_url")
    monkeypatch.setenv("WPK_ARANGO_PASSWORD", PASSWORD)
    env = {"WPK_ARANGO_PASSWORD": PASSWORD}
    servers = []
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir()
        servers.append(
            start_server(home, "--agent-id", name, "--capacity", "8", token=TOKEN, store=url, env=env)
        )
    marks = tmp_path / "marks"
    submitted = []
    try:
        clients = [s.client() for s in servers]
        for i in range(COUNT):
            response = clients[i % 2].post(
                "/execute", json={"wpk_content": MARK, "parameters": {"file": str(marks)}}
            )
            assert response.status_code == 202, response.text
            submitted.append(response.json()["execution_id"])
        deadline = time.monotonic() + 120
        while not marks.exists() or len(marks.read_text().splitlines()) < COUNT:
            assert time.monotonic() < deadline, "not every submission ran"
            time.sleep(0.2)
        while True:
            rows = trio.run(_rows, url)
            if all(rows[e][0] == "completed" for e in submitted):
                break
            assert time.monotonic() < deadline, "not every execution completed"
            time.sleep(0.2)
        for c in clients:
            c.close()
    finally:
        for s in servers:
            s.stop()
    runs = collections.Counter(marks.read_text().split())
    assert set(runs) == set(submitted) and set(runs.values()) == {1}  # each exactly once
    by_agent = collections.Counter(agent for _, agent in rows.values())
    assert set(by_agent) == {"one", "two"}  # both servers took their share
