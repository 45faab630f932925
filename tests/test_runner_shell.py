"""The engine with real shell processes: timeouts, dry-run truthfulness, injection, secrets."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import trio
from runbooks import run, workflow

from wpk.engine import build_plan


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timing
async def test_step_timeout_leaves_no_process_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    wf = workflow(f"""
        steps:
          - id: hang
            uses: shell.run
            timeout: 1s
            rollback: none
            with:
              command: "sleep 300 & echo $! >> {pidfile}; sleep 300 & echo $! >> {pidfile}; wait"
    """)
    start = time.monotonic()
    runner, _ = await run(wf)
    assert time.monotonic() - start < 30
    record = runner.state.steps["hang"]
    assert str(record.status) == "failed" and record.error == "timed out after 1s"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        await trio.sleep(0.05)
    assert not any(alive(p) for p in pids)


async def test_dry_run_writes_nothing_while_reads_feed_when(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    wf = workflow(f"""
        steps:
          - id: measure
            uses: shell.run
            dry_run: execute
            rollback: none
            with: {{argv: ["echo", "42"]}}
            outputs: {{value: "{{{{ result.stdout | trim | int }}}}"}}
          - id: write
            needs: [measure]
            uses: shell.run
            when: "{{{{ steps.measure.outputs.value > 40 }}}}"
            rollback: none
            with: {{argv: ["touch", "{marker}"]}}
          - id: not_needed
            needs: [measure]
            uses: shell.run
            when: "{{{{ steps.measure.outputs.value > 100 }}}}"
            rollback: none
            with: {{argv: ["touch", "{marker}.2"]}}
    """)
    runner, _ = await run(wf, dry_run=True)
    assert not marker.exists() and not Path(f"{marker}.2").exists()
    plan = {s["id"]: s for s in build_plan(wf, runner.state)["steps"]}
    assert plan["measure"]["status"] == "executed"  # a write action the step marked dry_run: execute
    assert plan["measure"]["outputs"] == {"value": 42}
    assert plan["write"]["status"] == "simulated"
    assert plan["write"]["inputs"] == {"argv": ["touch", str(marker)]}
    assert plan["write"]["summary"].startswith("would run: touch")
    assert plan["not_needed"]["status"] == "would-skip"
    # and the same runbook for real does write
    runner, _ = await run(wf)
    assert marker.exists()


async def test_injection_looking_parameters_are_echoed_literally(tmp_path: Path) -> None:
    value = "x; touch f; $(touch g) `touch h` && touch i"
    wf = workflow(
        """
        params: {name: {type: string}}
        steps:
          - id: greet
            uses: shell.run
            rollback: none
            with: {command: "echo hello {{ params.name }}", cwd: "{{ params.dir }}"}
            outputs: {said: "{{ result.stdout }}"}
          - id: argv
            uses: shell.run
            rollback: none
            with: {argv: ["echo", "{{ params.name }}"], cwd: "{{ params.dir }}"}
            outputs: {said: "{{ result.stdout }}"}
    """.replace("params: {name: {type: string}}", "params: {name: {type: string}, dir: {type: string}}")
    )
    runner, _ = await run(wf, params={"name": value, "dir": str(tmp_path)})
    assert runner.state.steps["greet"].outputs == {"said": f"hello {value}\n"}
    assert runner.state.steps["argv"].outputs == {"said": f"{value}\n"}
    assert sorted(os.listdir(tmp_path)) == []


async def test_secret_values_absent_from_every_output(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    wf = workflow("""
        secrets: [db_password]
        steps:
          - id: use
            uses: shell.run
            rollback: none
            with:
              command: "echo connecting with {{ secrets.db_password }}; echo {{ secrets.db_password }} >&2"
            outputs: {out: "{{ result.stdout }}"}
          - id: fail
            needs: [use]
            uses: shell.run
            rollback: none
            with: {command: "echo bad {{ secrets.db_password }} >&2; exit 3"}
    """)
    runner, store = await run(wf, secrets={"db_password": secret})
    events = json.dumps([e.as_dict() for e in await store.events(runner.execution_id)])
    record = json.dumps(runner.state.as_dict())
    assert secret not in events and secret not in record
    assert "connecting with ***" in events  # the log line, redacted
    assert str(runner.state.steps["fail"].status) == "failed"


async def test_dry_run_plan_text_shows_each_simulated_item(tmp_path: Path) -> None:
    from wpk.engine.plan import render_plan_text

    wf = workflow(f"""
        steps:
          - id: clean
            uses: shell.run
            for_each: ["{tmp_path}/a", "{tmp_path}/b c"]
            rollback: none
            with: {{argv: ["rm", "-rf", "--", "{{{{ item }}}}"]}}
    """)
    runner, _ = await run(wf, dry_run=True)
    text = render_plan_text(build_plan(wf, runner.state))
    assert f"[0] would run: rm -rf -- {tmp_path}/a" in text
    assert f"[1] would run: rm -rf -- '{tmp_path}/b c'" in text
    assert "Rollback plan: nothing to undo" in text
