"""`wpk executions …` and `wpk submit`, on the local store and against a real `wpk serve`.

The same commands, the same shapes and the same exit codes as `wpk run`, whichever side runs
the operation. Runs made with `--no-rollback` can be rolled back later, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sidecar_server import Server, start_server, wait_status

TOKEN = "cli-token-abcdef"

UNDOABLE = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: undoable, version: 1.0.0}
spec:
  params:
    dir: {type: string}
    fail: {type: boolean, default: true}
  steps:
    - id: make
      uses: shell.run
      with: {command: "echo made >> {{ params.dir }}/made; echo line1; echo line2"}
      rollback:
        uses: shell.run
        with: {command: "echo undone >> {{ params.dir }}/undone"}
    - id: gate
      needs: [make]
      when: "{{ params.fail }}"
      uses: core.fail
      with: {message: boom}
"""


def wpk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("WPK_")}
    out["XDG_STATE_HOME"] = str(tmp_path / "state")
    return out


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "undoable.yaml"
    path.write_text(UNDOABLE)
    return path


def test_local_history_and_manual_rollback_of_a_no_rollback_run(
    tmp_path: Path, env: dict[str, str], package: Path
) -> None:
    run = wpk("run", str(package), "-p", f"dir={tmp_path}", "--no-rollback", "--format", "json", env=env)
    assert run.returncode == 1
    ran = json.loads(run.stdout)
    assert ran["status"] == "failed" and not (tmp_path / "undone").exists()
    listed = json.loads(wpk("executions", "list", "--format", "json", env=env).stdout)
    assert [e["execution_id"] for e in listed["executions"]] == [ran["execution_id"]]
    assert listed["executions"][0]["status"] == "failed"
    shown = wpk("executions", "show", ran["execution_id"], "--format", "json", env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout) == ran  # the same record as wpk run
    logs = wpk("executions", "logs", ran["execution_id"], "--offset", "1", env=env)
    assert logs.stdout.splitlines() == ["make stdout: line2"]
    done = wpk("executions", "rollback", ran["execution_id"], env=env)
    assert done.returncode == 0, done.stderr
    assert "rolled_back" in done.stdout and "compensated          make" in done.stdout
    assert (tmp_path / "undone").read_text() == "undone\n"
    again = wpk("executions", "rollback", ran["execution_id"], env=env)
    assert again.returncode == 0 and (tmp_path / "undone").read_text() == "undone\n"  # idempotent
    text = wpk("executions", "list", env=env).stdout
    assert "rolled_back" in text and ran["execution_id"] in text
    missing = wpk("executions", "show", "nope", env=env)
    assert missing.returncode == 1 and missing.stderr.strip() == "wpk: no execution 'nope'"
    refused = wpk("executions", "cancel", ran["execution_id"], env=env)
    assert refused.returncode == 1 and "nothing to cancel" in refused.stderr


def test_submit_into_a_local_store_queues_for_an_agent(
    tmp_path: Path, env: dict[str, str], package: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'queue.db'}"
    queued = wpk(
        "submit",
        str(package),
        "-p",
        f"dir={tmp_path}",
        "--priority",
        "70",
        "--store",
        store,
        "--format",
        "json",
        env=env,
    )
    assert queued.returncode == 0, queued.stderr
    eid = json.loads(queued.stdout)["execution_id"]
    listed = json.loads(wpk("executions", "list", "--store", store, "--format", "json", env=env).stdout)
    [entry] = listed["executions"]
    assert (entry["execution_id"], entry["status"], entry["priority"]) == (eid, "pending", 70)
    cancelled = wpk("executions", "cancel", eid, "--store", store, env=env)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert not (tmp_path / "made").exists()


def test_a_completed_run_rolls_back_and_a_dry_run_does_not(
    tmp_path: Path, env: dict[str, str], package: Path
) -> None:
    run = wpk("run", str(package), "-p", f"dir={tmp_path}", "-p", "fail=false", "--format", "json", env=env)
    assert run.returncode == 0
    eid = json.loads(run.stdout)["execution_id"]
    rolled = wpk("executions", "rollback", eid, "--format", "json", env=env)
    assert rolled.returncode == 0 and json.loads(rolled.stdout)["status"] == "rolled_back"
    dry = wpk("dry-run", str(package), "-p", f"dir={tmp_path}", "--format", "json", env=env)
    refused = wpk("executions", "rollback", json.loads(dry.stdout)["execution_id"], env=env)
    assert refused.returncode == 1 and "dry-run" in refused.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("cli-serve"), token=TOKEN)
    yield s
    assert s.stop() == 0


def test_submit_and_executions_against_a_sidecar(
    server: Server, tmp_path: Path, env: dict[str, str], package: Path
) -> None:
    remote = ["--url", server.url]
    env = {**env, "WPK_TOKEN": TOKEN}
    ok = wpk(
        "submit",
        str(package),
        "-p",
        f"dir={tmp_path}",
        "-p",
        "fail=false",
        "--wait",
        "--format",
        "json",
        *remote,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout)
    assert record["status"] == "completed"
    failed = wpk("submit", str(package), "-p", f"dir={tmp_path}", "--wait", *remote, env=env)
    assert failed.returncode == 1 and "rolled_back" in failed.stdout  # as wpk run: 1 when not completed
    queued = wpk(
        "submit",
        str(package),
        "-p",
        f"dir={tmp_path}",
        "-p",
        "fail=false",
        "--priority",
        "80",
        *remote,
        env=env,
    )
    assert queued.returncode == 0 and queued.stdout.startswith("execution ")
    listed = json.loads(wpk("executions", "list", "--format", "json", *remote, env=env).stdout)
    assert record["execution_id"] in [e["execution_id"] for e in listed["executions"]]
    follow = wpk("executions", "logs", record["execution_id"], "--follow", *remote, env=env)
    assert follow.returncode == 0 and follow.stdout.splitlines() == [
        "make stdout: line1",
        "make stdout: line2",
    ]
    rolled = wpk("executions", "rollback", record["execution_id"], *remote, env=env)
    assert rolled.returncode == 0 and "rolled_back" in rolled.stdout
    shown = json.loads(
        wpk("executions", "show", record["execution_id"], "--format", "json", *remote, env=env).stdout
    )
    assert shown["status"] == "rolled_back" and shown["steps"][0]["status"] == "compensated"
    assert TOKEN not in server.log


def test_client_refusals_and_exit_codes(
    server: Server, tmp_path: Path, env: dict[str, str], package: Path
) -> None:
    remote = ["--url", server.url]
    bad_token = wpk("executions", "list", *remote, "--token", "wrong", env=env)
    assert bad_token.returncode == 2 and bad_token.stderr.strip() == "wpk: invalid bearer token"
    assert "wrong" not in bad_token.stderr.replace("wpk: invalid bearer token", "")
    env = {**env, "WPK_TOKEN": TOKEN}
    missing = wpk("submit", str(package), *remote, env=env)
    assert missing.returncode == 2 and "parameter 'dir' is required" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(UNDOABLE.replace("core.fail", "core.nothing"))
    invalid = wpk("submit", str(broken), "-p", "dir=x", *remote, env=env)
    assert invalid.returncode == 2 and f"{broken}:18:13:" in invalid.stderr  # file:line:col, nothing queued
    unknown = wpk("executions", "show", "nope", *remote, env=env)
    assert unknown.returncode == 1 and "no execution 'nope'" in unknown.stderr
    down = wpk("executions", "list", "--url", "http://127.0.0.1:9", env=env)
    assert down.returncode == 2 and "cannot reach" in down.stderr and "Traceback" not in down.stderr


SLOW = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: slow, version: 1.0.0}
spec:
  steps:
    - {id: wait, uses: core.sleep, with: {seconds: 60}}
"""


def test_a_local_cancel_reaches_the_server_sharing_the_store(tmp_path: Path, env: dict[str, str]) -> None:
    server = start_server(tmp_path, token=None)
    try:
        with server.client() as client:
            eid = client.post("/execute", json={"wpk_content": SLOW}).json()["execution_id"]
            wait_status(client, eid, {"running"})
            store = f"sqlite:///{tmp_path / 'wpk.db'}"
            asked = wpk("executions", "cancel", eid, "--store", store, env=env)
            assert asked.returncode == 0 and "asked to stop" in asked.stdout
            assert wait_status(client, eid, {"cancelled"}, timeout=10)["status"] == "cancelled"
    finally:
        assert server.stop() == 0
