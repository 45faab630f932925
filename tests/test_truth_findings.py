"""Regression tests for the smaller findings of issue 11 (and the run-time half of its errors).

- `core.echo` messages show in the progress and are kept in the event record;
- the SQLite state file is 0600 in a 0700 directory (it holds undo records);
- `timeout` may be a template, resolved before the step starts; a bad value names the forms;
- run-time errors (`when` type errors, undefined outputs, inputs) carry the field's file:line:col.
"""

from __future__ import annotations

import re
import sqlite3
import stat
import textwrap
from pathlib import Path

import pytest
import trio.testing
from example_services import run_wpk, wpk_argv, wpk_env
from runbooks import run, workflow

from wpk.engine.store.sqlite import SQLiteStore


def package(tmp_path: Path, body: str, name: str = "t") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    text = (
        f"apiVersion: wpk/v1\nkind: Runbook\nmetadata: {{name: {name}, version: 1.0.0}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(body), "  ")
    )
    (folder / "wpk.yaml").write_text(text, encoding="utf-8")
    return folder


def test_echo_messages_show_in_the_progress_and_the_record(tmp_path: Path) -> None:
    pkg = package(tmp_path, "steps:\n  - {id: summary, uses: core.echo, with: {message: 'all 3 done'}}\n")
    db = tmp_path / "store" / "wpk.db"
    result = run_wpk(
        wpk_argv("run", pkg, extra=["--store", f"sqlite:///{db}"]), env=wpk_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "summary info: all 3 done" in result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT step, data FROM events WHERE type = 'log'").fetchall()
    assert [(step, '"all 3 done"' in data) for step, data in rows] == [("summary", True)]


def test_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "wpk.db"
    SQLiteStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_timeout_from_a_parameter_bounds_each_attempt(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        params: {limit: {type: string, default: 2s}}
        steps:
          - {id: a, uses: core.sleep, with: {seconds: 5}, timeout: "{{ params.limit }}"}
    """)
    runner, _ = await run(wf)
    assert runner.state.steps["a"].error == "timed out after 2s"
    runner, _ = await run(wf, params={"limit": "10s"})
    assert str(runner.state.status) == "completed"


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_bad_timeout_value_names_the_valid_forms() -> None:
    wf = workflow("""
        params: {limit: {type: string, default: 2 minutes}}
        steps:
          - {id: a, uses: core.noop, timeout: "{{ params.limit }}"}
    """)
    runner, _ = await run(wf)
    error = runner.state.steps["a"].error or ""
    assert re.match(r"t\.yaml:8:\d+: timeout: ", error), error
    assert "'2 minutes' is not a duration (durations look like 500ms, 30s, 5m, 2h" in error


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (
            "{id: a, uses: core.noop, when: \"{{ params.n > 'x' }}\"}",
            "when",
            "when: type error: '>' not supported",
        ),
        (
            '{id: a, uses: core.echo, with: {message: hi}, outputs: {r: "{{ result.replica }}"}}',
            "outputs",
            "outputs.r: undefined: result.replica",
        ),
        (
            '{id: a, uses: core.echo, with: {message: "{{ params.n.x }}"}}',
            "inputs",
            "inputs: message: undefined",
        ),
    ],
)
async def test_run_time_errors_name_the_field_position(step: str, field: str, message: str) -> None:
    wf = workflow(f"""
        params: {{n: {{type: integer, default: 1}}}}
        steps:
          - {step}
    """)
    runner, _ = await run(wf)
    error = runner.state.steps["a"].error or ""
    assert re.match(rf"t\.yaml:8:\d+: {field}", error), error
    assert message in error, error
