"""`/metrics` after completed, failed and rolled-back runs: `promtool check metrics` passes and the
counters match the runs. promtool comes from Debian's `prometheus` package; under CI it must be
installed (the test fails without it), elsewhere it is skipped when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sidecar_server import start_server, wait_status

OK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: ok, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.echo, with: {message: hi}}
    - {id: b, needs: [a], uses: shell.run, with: {argv: ["true"]}, rollback: none}
"""

FAILS = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: fails, version: 1.0.0}
spec:
  steps:
    - {id: check, uses: core.fail, with: {message: not healthy}}
"""

UNDO = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: undo, version: 1.0.0}
spec:
  steps:
    - id: change
      uses: shell.run
      with: {argv: ["true"]}
      rollback: {uses: shell.run, with: {argv: ["true"]}}
    - {id: gate, needs: [change], uses: shell.run, with: {argv: ["false"]}, rollback: none}
"""


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI"):
        pytest.fail("promtool is not installed (apt-get install prometheus); CI must run this test")
    return found


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_pass_promtool_and_count_the_runs(tmp_path: Path) -> None:
    promtool = _promtool()
    server = start_server(tmp_path)
    try:
        with server.client() as client:
            ids = {}
            for name, content, dry in (("ok", OK, False), ("fails", FAILS, False), ("undo", UNDO, False),
                                       ("dry", OK, True)):  # fmt: skip
                r = client.post("/execute", json={"wpk_content": content, "dry_run": dry})
                ids[name] = r.json()["execution_id"]
            final = {"completed", "failed", "rolled_back", "rollback_failed", "cancelled"}
            statuses = {name: wait_status(client, eid, final)["status"] for name, eid in ids.items()}
            assert statuses == {
                "ok": "completed",
                "fails": "failed",
                "undo": "rolled_back",
                "dry": "completed",
            }
            client.post(f"/rollback/{ids['ok']}")  # a manual rollback is counted on its own
            wait_status(client, ids["ok"], {"rolled_back", "rollback_failed"})
            text = client.get("/metrics").text
    finally:
        assert server.stop() == 0
    if promtool is not None:
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    s = _samples(text)
    assert s[("workflow_runs_total", (("status", "completed"), ("workflow_name", "ok")))] == 1
    assert s[("workflow_runs_total", (("status", "failed"), ("workflow_name", "fails")))] == 1
    assert s[("workflow_runs_total", (("status", "rolled_back"), ("workflow_name", "undo")))] == 1
    assert sum(v for (n, _), v in s.items() if n == "workflow_runs_total") == 3  # the dry-run is not a run
    assert s[("workflow_success_total", ())] == 1
    assert s[("workflow_failure_total", (("error_type", "core.fail"),))] == 1
    assert s[("workflow_failure_total", (("error_type", "shell.exit_status"),))] == 1
    assert s[("workflow_duration_seconds_count", ())] == 3
    assert s[("active_workflows", ())] == 0
    assert s[("workflow_manual_rollbacks_total", (("status", "rolled_back"), ("workflow_name", "ok")))] == 1
    step = (("action", "run"), ("adapter", "shell"), ("status", "completed"))
    assert s[("workflow_step_duration_seconds_count", step)] >= 2
    assert s[("workflow_step_duration_seconds_count", (("action", "fail"), ("adapter", "core"),
                                                       ("status", "failed")))] == 1  # fmt: skip
    assert s[("workflow_queue_depth", (("band", "normal"),))] == 0
    assert s[("workflow_agents", (("state", "running"),))] == 1
    assert not any("execution_id" in dict(labels) for _, labels in s)
    assert not any(n.endswith("_created") for n, _ in s)


def test_workflow_names_are_bounded() -> None:
    from wpk.sidecar.metrics import MAX_WORKFLOW_NAMES, Metrics

    m = Metrics()
    names = {m.workflow_label(f"wf{i}") for i in range(MAX_WORKFLOW_NAMES + 50)}
    assert len(names) == MAX_WORKFLOW_NAMES + 1 and "other" in names
    assert m.workflow_label("wf0") == "wf0"
