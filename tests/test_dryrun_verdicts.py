"""Dry-run verdicts: will pass, will fail (certain), unknown (depends on a simulated change).

Shell and core steps only (real subprocesses), so the rules are seen without a cluster: a read
after a simulated write is unknown, a failure after one is "unknown" and not retried, a `when` on
unknown data shows its consequence, a certain failure stays a failure, and `wpk dry-run` exits
0 / 1 / 3 accordingly (docs/running.md, "Dry-run").
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from example_services import WpkResult, run_wpk, wpk_argv, wpk_env
from runbooks import run, workflow

from wpk.engine import build_plan
from wpk.engine.plan import render_plan_text

WRITE_THEN_CHECK = """
    steps:
      - id: write
        uses: shell.run
        with: {argv: [sh, -c, "echo changed > /dev/null"]}
        rollback: none
      - id: check
        needs: [write]
        uses: shell.run
        dry_run: execute
        rollback: none
        with: {argv: [sh, -c, "exit 1"]}
        retries: {attempts: 5, backoff: 1s}
"""


async def test_a_failure_after_a_simulated_write_is_unknown_and_not_retried() -> None:
    wf = workflow(WRITE_THEN_CHECK)
    runner, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, runner.state)
    check = {s["id"]: s for s in plan["steps"]}["check"]
    assert check["status"] == "unknown"
    assert check["summary"].startswith("fails now (command exited with status 1)")
    assert check["unknown"]["because"] == ["write"]
    assert runner.state.steps["check"].attempts == 1
    assert plan["verdict"] == "unknown"


async def test_a_failure_nothing_simulated_decides_is_certain() -> None:
    wf = workflow("""
        steps:
          - {id: check, uses: shell.run, dry_run: execute, rollback: none, with: {argv: [sh, -c, "exit 1"]}}
    """)
    runner, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, runner.state)
    assert plan["steps"][0]["status"] == "failed"
    assert plan["verdict"] == "will-fail"


async def test_when_on_unknown_data_shows_the_consequence_of_both_branches() -> None:
    wf = workflow("""
        steps:
          - id: write
            uses: shell.run
            with: {argv: [echo, "3"]}
            rollback: none
            outputs: {n: "{{ result.stdout | trim | int }}"}
          - id: gate
            needs: [write]
            when: "{{ steps.write.outputs.n > 2 }}"
            uses: core.fail
            with: {message: "n is {{ steps.write.outputs.n }}"}
          - {id: after, needs: [gate], uses: core.echo, with: {message: "{{ steps.gate.status }}"}}
    """)
    runner, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, runner.state)
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["gate"]["status"] == "would-run"
    assert steps["gate"]["summary"].startswith("if its condition holds: fails: n is <unknown - depends on")
    assert "steps.write.outputs.n > 2" in steps["gate"]["condition"]
    text = render_plan_text(plan)
    assert "otherwise skipped" in text
    # The step after it runs in both branches, and what it reads of the gate is unknown.
    assert steps["after"]["status"] == "executed-read"
    assert plan["verdict"] == "unknown"


async def test_core_steps_after_a_simulated_write_stay_known() -> None:
    wf = workflow("""
        params: {who: {type: string, default: ops}}
        steps:
          - {id: write, uses: shell.run, with: {argv: ["true"]}, rollback: none}
          - {id: say, needs: [write], uses: core.echo, with: {message: "hi {{ params.who }}"},
             outputs: {m: "{{ result.message }}"}}
    """)
    runner, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, runner.state)
    assert {s["id"]: s for s in plan["steps"]}["say"]["outputs"] == {"m": "hi ops"}
    assert plan["verdict"] == "will-pass"


def dry_run(package: Path, home: Path) -> WpkResult:
    return run_wpk(wpk_argv("dry-run", package, extra=["--store", "memory:"]), env=wpk_env(home), cwd=home)


def _package(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    text = (
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: "
        + name
        + ", version: 1.0.0}\nspec:\n"
        + textwrap.indent(textwrap.dedent(body), "  ")
    )
    (folder / "wpk.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("body", "code", "verdict"),
    [
        ("steps:\n  - {id: a, uses: core.echo, with: {message: hi}}\n", 0, "will pass"),
        ("steps:\n  - {id: a, uses: core.fail, with: {message: no}}\n", 1, "will fail"),
        (WRITE_THEN_CHECK, 3, "unknown"),
    ],
)
def test_dry_run_exit_code_tells_the_verdict(tmp_path: Path, body: str, code: int, verdict: str) -> None:
    package = _package(tmp_path, "verdict", body)
    result = run_wpk(
        ["wpk", "dry-run", str(package), "--store", "memory:"], env=wpk_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == code, result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"Verdict: {verdict}")


def test_text_plan_shows_request_bodies_and_stdin(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        "inputs",
        """
        steps:
          - id: feed
            uses: shell.run
            with: {argv: [cat], stdin: "line for stdin"}
            rollback: none
          - id: post
            uses: api.request
            with: {method: POST, url: "https://hooks.example.com/x", json: {text: "body text"}}
            rollback: none
        """,
    )
    result = run_wpk(
        ["wpk", "dry-run", str(package), "--store", "memory:"], env=wpk_env(tmp_path), cwd=tmp_path
    )
    assert "with stdin: line for stdin" in result.stdout, result.stdout
    assert 'with json: {"text": "body text"}' in result.stdout, result.stdout


async def test_an_unknown_read_still_shows_what_it_sees_now() -> None:
    wf = workflow("""
        steps:
          - {id: write, uses: shell.run, with: {argv: ["true"]}, rollback: none}
          - id: look
            needs: [write]
            uses: shell.run
            dry_run: execute
            rollback: none
            with: {argv: [echo, "3 files"]}
            outputs: {seen: "{{ result.stdout | trim }}"}
    """)
    runner, _ = await run(wf, dry_run=True)
    look = {s["id"]: s for s in build_plan(wf, runner.state)["steps"]}["look"]
    assert look["status"] == "unknown"
    assert look["outputs"]["seen"].startswith("unknown - depends on the simulated change of step write")
    assert look["outputs_now"] == {"seen": "3 files"}
    assert 'seen now (may change with the simulated change): {"seen": "3 files"}' in render_plan_text(
        build_plan(wf, runner.state)
    )
