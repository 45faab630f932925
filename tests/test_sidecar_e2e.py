"""End to end: a real `wpk serve` process on loopback, driven over HTTP as a client would."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sidecar_server import Server, start_server, wait_status

TOKEN = "test-token-0123456789"
SECRET = "hunter2-secret-value"

WITH_SECRET = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: secretive, version: 1.0.0}
spec:
  secrets: [api_key]
  steps:
    - id: use
      uses: shell.run
      with:
        command: "echo using {{ secrets.api_key }}"
      outputs: {said: "{{ result.stdout | trim }}"}
      rollback: none
    - id: fail
      needs: [use]
      uses: core.fail
      with: {message: "bad key {{ secrets.api_key }}"}
"""

ECHO3 = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: echo3, version: 1.0.0}
spec:
  steps:
    - id: talk
      uses: shell.run
      with: {command: "echo one; echo two; echo three"}
      rollback: none
"""

SLOW = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: slow, version: 1.0.0}
spec:
  params:
    dir: {type: string}
    seconds: {type: number, default: 60}
  steps:
    - id: wait
      uses: shell.run
      with:
        command: >-
          echo $$ > {{ params.dir }}/pgid; echo started;
          sleep {{ params.seconds }} & sleep {{ params.seconds }}; wait
      rollback: none
"""

UNDOABLE = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: undoable, version: 1.0.0}
spec:
  params:
    dir: {type: string}
  steps:
    - id: make
      uses: shell.run
      with: {command: "echo made >> {{ params.dir }}/made"}
      rollback:
        uses: shell.run
        with: {command: "echo undone >> {{ params.dir }}/undone"}
"""

INVALID = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: broken, version: 1.0.0}
spec:
  steps:
    - id: a
      uses: core.noop
    - id: b
      uses: core.nothing
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("serve"), token=TOKEN, env={"WPK_SECRET_API_KEY": SECRET})
    yield s
    assert s.stop() == 0


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return body["error"]


def _execute(client: httpx.Client, content: object, **extra: object) -> str:
    response = client.post("/execute", json={"wpk_content": content, **extra})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return response.json()["execution_id"]


# -- auth and errors -------------------------------------------------------------------------


def test_health_and_metrics_need_no_token_everything_else_does(server: Server) -> None:
    with server.client(token="") as anonymous:
        health = anonymous.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["agent_state"] == "running"
        assert anonymous.get("/metrics").status_code == 200
        error = _error(anonymous.get("/executions"), 401, "unauthorized")
        assert "missing" in error["message"]
        _error(anonymous.post("/validate", json={"wpk_content": ECHO3}), 401, "unauthorized")
        _error(anonymous.get("/openapi.json"), 401, "unauthorized")
    with server.client(token="wrong-token") as wrong:
        _error(wrong.get("/executions"), 401, "unauthorized")
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer tök€n".encode()}) as odd:
        _error(odd.get("/executions"), 401, "unauthorized")  # non-ASCII: a 401, never a 500
    assert TOKEN not in server.log


def test_unknown_ids_are_404(client: httpx.Client) -> None:
    for method, path in (("GET", "/execute/nope"), ("GET", "/logs/nope"), ("POST", "/cancel/nope"),
                         ("POST", "/rollback/nope"), ("GET", "/logs/nope?follow=true")):  # fmt: skip
        error = _error(client.request(method, path), 404, "not_found")
        assert error["details"] == {"execution_id": "nope"}
    _error(client.get("/no/such/route"), 404, "not_found")


def test_malformed_and_hostile_json_is_400(client: httpx.Client) -> None:
    for body in (b"{not json", b"", b"[1, 2]", b'{"wpk_content": NaN}', b'{"a": 1e999}',
                 b'{"a": ' + b"9" * 5000 + b"}", b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}',
                 b"[" * 100 + b"]" * 100, b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                 b"\xff\xfe"):  # fmt: skip
        _error(client.post("/validate", content=body), 400, "malformed_json")
    _error(client.post("/validate", json={"wpk_content": 5}), 400, "bad_request")
    _error(client.post("/execute", json={"wpk_content": ECHO3, "priority": 101}), 400, "bad_request")
    _error(client.post("/execute", json={"wpk_content": ECHO3, "parameters": []}), 400, "bad_request")
    _error(client.get("/logs/x?offset=-1"), 400, "bad_request")
    _error(client.get("/executions?status=bogus"), 400, "bad_request")


def test_oversized_bodies_are_413_before_being_read(client: httpx.Client) -> None:
    big = b'{"wpk_content": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    error = _error(client.post("/validate", content=big), 413, "body_too_large")
    assert "bytes" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"wpk_content": "'
        for _ in range(80):
            yield b"a" * 65536
        yield b'"}'

    _error(client.post("/validate", content=chunks()), 413, "body_too_large")


# -- validate --------------------------------------------------------------------------------


def test_validate_yaml_text_and_json_object(client: httpx.Client) -> None:
    ok = client.post("/validate", json={"wpk_content": ECHO3}).json()
    assert ok == {"valid": True, "errors": [], "warnings": []}
    bad = client.post("/validate", json={"wpk_content": INVALID}).json()
    assert bad["valid"] is False
    [err] = bad["errors"]
    assert (err["line"], err["column"], err["pointer"]) == (9, 13, "spec.steps[1].uses")
    assert "core.nothing" in err["message"] and err["path"] == "<request>"
    as_object = {"apiVersion": "wpk/v1", "kind": "Runbook", "metadata": {"name": "x", "version": "1.0.0"},
                 "spec": {"steps": [{"id": "a", "uses": "core.noop"}]}}  # fmt: skip
    assert client.post("/validate", json={"wpk_content": as_object}).json()["valid"] is True
    as_object["spec"]["steps"][0]["uses"] = "core.nothing"  # type: ignore[index]
    bad = client.post("/validate", json={"wpk_content": as_object}).json()
    [err] = bad["errors"]
    assert err["pointer"] == "spec.steps[0].uses"
    text = json.dumps(as_object, indent=2).splitlines()
    assert "core.nothing" in text[err["line"] - 1]  # the line of json.dumps(obj, indent=2)


def test_invalid_package_or_params_is_422_and_nothing_is_queued(client: httpx.Client, tmp_path: Path) -> None:
    before = len(client.get("/executions?limit=500").json()["executions"])
    error = _error(client.post("/execute", json={"wpk_content": INVALID}), 422, "invalid_package")
    [diag] = error["details"]["errors"]
    assert diag["line"] == 9
    error = _error(client.post("/execute", json={"wpk_content": SLOW, "parameters": {"seconds": "x"}}),
                   422, "invalid_parameters")  # fmt: skip
    assert any("'dir' is required" in p for p in error["details"]["problems"])
    assert len(client.get("/executions?limit=500").json()["executions"]) == before


# -- execute, logs, cancel, rollback, dry-run ------------------------------------------------


def test_execute_poll_to_completed_and_read_logs(client: httpx.Client) -> None:
    eid = _execute(client, ECHO3)
    record = wait_status(client, eid, {"completed", "failed"})
    assert record["status"] == "completed" and record["workflow_id"] == "echo3-1.0.0"
    assert set(record) >= {"execution_id", "workflow_id", "status", "priority", "dry_run", "current_step",
                           "steps_completed", "steps", "started_at", "finished_at", "error"}  # fmt: skip
    assert record["steps"][0]["id"] == "talk" and record["steps"][0]["status"] == "completed"
    logs = client.get(f"/logs/{eid}").json()
    assert [line["line"] for line in logs["lines"]] == ["one", "two", "three"] and logs["next_offset"] == 3
    tail = client.get(f"/logs/{eid}", params={"offset": 1}).json()
    assert [(line["offset"], line["line"]) for line in tail["lines"]] == [(1, "two"), (2, "three")]
    listed = client.get("/executions", params={"workflow": "echo3", "status": "completed"}).json()
    assert eid in [e["execution_id"] for e in listed["executions"]]


def test_follow_streams_ndjson_until_the_execution_ends(client: httpx.Client, tmp_path: Path) -> None:
    eid = _execute(client, SLOW, parameters={"dir": str(tmp_path), "seconds": 1})
    started = time.monotonic()
    with client.stream("GET", f"/logs/{eid}", params={"follow": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["line"] for line in lines] == ["started"]
    assert time.monotonic() - started >= 0.9  # it waited for the run
    assert client.get(f"/execute/{eid}").json()["status"] == "completed"
    with client.stream("GET", f"/logs/{eid}", params={"follow": "true", "offset": 1}) as response:
        assert [line for line in response.iter_lines() if line] == []  # resumed past the end: ends at once


def test_cancel_of_a_running_execution_kills_its_process_group(client: httpx.Client, tmp_path: Path) -> None:
    eid = _execute(client, SLOW, parameters={"dir": str(tmp_path)})
    deadline = time.monotonic() + 20
    while not (tmp_path / "pgid").exists() or not (tmp_path / "pgid").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pgid = int((tmp_path / "pgid").read_text())
    os.killpg(pgid, 0)  # alive now
    response = client.post(f"/cancel/{eid}")
    assert response.status_code == 202 and response.json() == {"execution_id": eid, "status": "running"}
    record = wait_status(client, eid, {"cancelled", "failed", "completed", "rolled_back"})
    assert record["status"] == "cancelled" and record["steps"][0]["status"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert client.post(f"/cancel/{eid}").json()["status"] == "cancelled"  # again: harmless


def test_cancel_of_a_pending_execution_and_of_a_finished_one(client: httpx.Client, tmp_path: Path) -> None:
    eid = _execute(client, ECHO3)
    record = wait_status(client, eid, {"completed"})
    error = _error(client.post(f"/cancel/{eid}"), 409, "conflict")
    assert error["details"] == {"status": record["status"]}


def test_rollback_of_a_completed_execution(client: httpx.Client, tmp_path: Path) -> None:
    eid = _execute(client, UNDOABLE, parameters={"dir": str(tmp_path)})
    wait_status(client, eid, {"completed"})
    response = client.post(f"/rollback/{eid}")
    assert response.status_code == 202 and response.json()["status"] == "rolling_back"
    record = wait_status(client, eid, {"rolled_back", "rollback_failed"})
    assert record["status"] == "rolled_back" and record["steps"][0]["status"] == "compensated"
    assert (tmp_path / "undone").read_text() == "undone\n"
    again = client.post(f"/rollback/{eid}")  # idempotent: nothing runs twice
    assert again.status_code == 200 and again.json()["status"] == "rolled_back"
    time.sleep(0.2)
    assert (tmp_path / "undone").read_text() == "undone\n"


def test_dry_run_returns_the_plan(client: httpx.Client, tmp_path: Path) -> None:
    eid = _execute(client, UNDOABLE, parameters={"dir": str(tmp_path)}, dry_run=True)
    record = wait_status(client, eid, {"completed", "failed"})
    assert record["dry_run"] is True and record["status"] == "completed"
    plan = record["plan"]
    assert plan["workflow_id"] == "undoable-1.0.0"
    assert [(s["id"], s["status"]) for s in plan["steps"]] == [("make", "simulated")]
    assert plan["rollback"][0]["step"] == "make"
    assert not (tmp_path / "made").exists()  # nothing was done
    _error(client.post(f"/rollback/{eid}"), 409, "conflict")


def test_secrets_never_reach_records_logs_or_the_server_log(server: Server, client: httpx.Client) -> None:
    eid = _execute(client, WITH_SECRET)
    record = wait_status(client, eid, {"failed", "completed"})
    lines = client.get(f"/logs/{eid}").json()["lines"]
    assert [line["line"] for line in lines] == ["using ***"]
    assert record["steps"][0]["outputs"] == {"said": "using ***"} and "***" in record["error"]
    listed = client.get("/executions", params={"workflow": "secretive"}).text
    for text in (json.dumps(record), json.dumps(lines), listed, server.log):
        assert SECRET not in text
    missing = WITH_SECRET.replace("api_key", "other_key")
    error = _error(client.post("/execute", json={"wpk_content": missing}), 422, "missing_secrets")
    assert error["details"] == {"names": ["other_key"]}


def test_init_lists_the_adapters_and_their_actions(client: httpx.Client) -> None:
    inventory = client.post("/init").json()
    assert inventory["store"] == {"kind": "sqlite", "ok": True, "error": None}
    by_name = {a["name"]: a for a in inventory["adapters"]}
    assert {"core", "shell", "api", "k8s"} <= set(by_name)
    actions = {a["uses"]: a for a in by_name["core"]["actions"]}
    assert actions["core.noop"]["read_only"] is True and "properties" in actions["core.echo"]["input_schema"]


def test_priority_and_openapi(client: httpx.Client) -> None:
    eid = _execute(client, ECHO3, priority=90)
    assert wait_status(client, eid, {"completed"})["priority"] == 90
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/execute/{execution_id}" in doc["paths"]


# -- the process -----------------------------------------------------------------------------


def test_sigterm_during_a_run_exits_0_after_the_run_ends(tmp_path: Path) -> None:
    server = start_server(tmp_path, token=None)
    with server.client() as client:
        eid = _execute(client, SLOW, parameters={"dir": str(tmp_path), "seconds": 1.5})
        wait_status(client, eid, {"running"})
    sent = time.time()
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    with sqlite3.connect(tmp_path / "wpk.db") as db:
        status, finished = db.execute(
            "SELECT status, finished_at FROM executions WHERE execution_id = ?", (eid,)
        ).fetchone()
    assert status == "completed" and finished > sent
    assert "draining" in server.log and "Traceback" not in server.log


def _handed_over(tmp_path: Path, eid: str) -> None:
    """The execution was handed over, not cancelled: still running, held by nobody, its lease
    over, its step's processes ended and its record saying why the step stays running."""
    with sqlite3.connect(tmp_path / "wpk.db") as db:
        status, agent, lease = db.execute(
            "SELECT status, agent_id, lease_until FROM executions WHERE execution_id = ?", (eid,)
        ).fetchone()
        types = [t for (t,) in db.execute("SELECT type FROM events WHERE execution_id = ?", (eid,))]
    assert (status, agent) == ("running", None) and lease < time.time()
    assert "step_cancelled" not in types and "execution_finished" not in types
    assert types[-1] == "attempt_failed"
    pgid = int((tmp_path / "pgid").read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_sigterm_past_the_grace_period_hands_over_and_still_exits_0(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--grace", "0.5", "--lease-seconds", "120", token=None)
    with server.client() as client:
        eid = _execute(client, SLOW, parameters={"dir": str(tmp_path), "seconds": 60})
        wait_status(client, eid, {"running"})
        while not (tmp_path / "pgid").exists():
            time.sleep(0.05)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - started < 15
    _handed_over(tmp_path, eid)
    # The same agent restarted takes it over at once (not when the 120 s lease would have run
    # out): its step writes and may have run, so it fails "agent lost" (DESIGN §5).
    again = start_server(tmp_path, "--lease-seconds", "120", token=None)
    try:
        with again.client() as client:
            record = wait_status(client, eid, {"failed"}, timeout=60)
        assert record["steps"][0]["error"].startswith("agent lost, outcome unknown")
    finally:
        again.stop()


MADE_THEN_SLOW = (  # UNDOABLE's step, then one that outlives the grace period
    UNDOABLE
    + """\
    - id: wait
      uses: shell.run
      needs: [make]
      with: {command: "echo $$ > {{ params.dir }}/pgid; sleep 60 & sleep 60; wait"}
      rollback: none
"""
)


def test_past_grace_rollback_cancels_and_rolls_back_instead_of_handing_over(tmp_path: Path) -> None:
    """`--past-grace rollback` (a store no other agent reads, e.g. a pod's emptyDir): what still
    runs when the grace period ends is cancelled here and its completed steps undone."""
    server = start_server(tmp_path, "--grace", "0.5", "--past-grace", "rollback", token=None)
    with server.client() as client:
        eid = _execute(client, MADE_THEN_SLOW, parameters={"dir": str(tmp_path)})
        wait_status(client, eid, {"running"})
        while not (tmp_path / "pgid").exists():
            time.sleep(0.05)
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    with sqlite3.connect(tmp_path / "wpk.db") as db:
        (status,) = db.execute("SELECT status FROM executions WHERE execution_id = ?", (eid,)).fetchone()
        types = [t for (t,) in db.execute("SELECT type FROM events WHERE execution_id = ?", (eid,))]
    assert status in {"rolled_back", "cancelled"} and "rollback_finished" in types
    assert (tmp_path / "undone").read_text() == "undone\n"  # the completed step undone, once
    with pytest.raises(ProcessLookupError):
        os.killpg(int((tmp_path / "pgid").read_text()), 0)


def test_past_grace_refuses_an_unknown_choice(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", "serve", "--past-grace", "abandon"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--past-grace" in done.stderr and "Traceback" not in done.stderr


def test_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "WPK_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "wpk.engine.cli", "serve", "--host", "0.0.0.0", "--store",
                           "memory:"], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "without a token" in done.stderr and "Traceback" not in done.stderr


def test_a_second_signal_hands_running_executions_over_at_once(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--grace", "120", token=None)
    with server.client() as client:
        eid = _execute(client, SLOW, parameters={"dir": str(tmp_path), "seconds": 60})
        wait_status(client, eid, {"running"})
        while not (tmp_path / "pgid").exists():
            time.sleep(0.05)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.stop(signal.SIGINT, timeout=30) == 0
    assert time.monotonic() - started < 15  # not the 120 s grace
    _handed_over(tmp_path, eid)
