"""Every user-visible promise in docs/ is a test; this module holds those no other module did.

The promise -> test table is docs/testing.md (read docs/*.md sentence by sentence; secret
redaction belongs to the hardening work, the sidecar to its own page).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import trio.testing
from example_services import run_wpk, wpk_argv, wpk_env
from recording_adapter import JOURNAL, RecordingAdapter, reset
from runbooks import run, workflow

from wpk.adapters import registry
from wpk.engine import build_plan
from wpk.engine.loader import LoadError, load_bytes
from wpk.engine.model import parse_duration
from wpk.engine.params import ParamError, resolve_params
from wpk.engine.plan import render_plan_text
from wpk.engine.validate import validate_text

JSON_MEMORY = ["--format", "json", "--store", "memory:"]
HEAD = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"


@pytest.fixture(autouse=True)
def rec_adapter() -> object:
    registry.register("rec", RecordingAdapter)
    reset()
    yield None
    registry.unregister("rec")


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- docs/format.md: parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("hostname", ["db-1.example.com", "web", "a.b.c."], ["-bad-..host", "exa mple.com", "a" * 64, ""]),
        ("ipv4", ["10.0.0.1"], ["10.0.0.256", "::1"]),
        ("ipv6", ["::1", "fe80::1"], ["10.0.0.1", "g::1"]),
        (
            "uri",
            ["https://hooks.example.com/x?y=1", "mailto:ops@example.com"],
            ["notaurl", "http:///nohost", "https://a b"],
        ),
        ("email", ["ops@example.com"], ["ops.example.com"]),
        (
            "date-time",
            ["2026-12-02T09:30:00Z", "2026-12-02T09:30:00+01:00"],
            ["2026-13-02T09:30:00Z", "yesterday"],
        ),
        ("date", ["2026-12-02"], ["2026-02-30", "12/02/2026"]),
    ],
)
def test_every_documented_format_is_checked(fmt: str, good: list[str], bad: list[str]) -> None:
    declared = {"v": {"type": "string", "format": fmt}}
    for value in good:
        assert resolve_params(declared, {"v": value}) == {"v": value}
    for value in bad:
        with pytest.raises(ParamError) as caught:
            resolve_params(declared, {"v": value})
        assert caught.value.problems == [f"parameter 'v': {value!r} is not a valid {fmt} (format: {fmt})"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), (90, 90)]
)
def test_documented_durations_are_accepted(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    result = validate_text(HEAD + f"  steps:\n    - {{id: a, uses: core.noop, timeout: {text}}}\n", "t.yaml")
    assert result.valid, [str(d) for d in result.errors]


# -- docs/running.md: parameters -----------------------------------------------------------------


def _package(tmp_path: Path, body: str) -> Path:
    (tmp_path / "wpk.yaml").write_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "), encoding="utf-8")
    return tmp_path / "wpk.yaml"


PARAMS_BODY = """
    params:
      replicas: {type: integer}
      name: {type: string}
    steps:
      - id: a
        uses: core.echo
        with: {message: {replicas: "{{ params.replicas }}", name: "{{ params.name }}"}}
        outputs: {replicas: "{{ result.message.replicas }}", name: "{{ result.message.name }}"}
"""


def test_cli_parameters_are_typed_by_their_declaration(tmp_path: Path) -> None:
    pkg = _package(tmp_path, PARAMS_BODY)
    result = run_wpk(
        wpk_argv(
            "run", pkg, {"replicas": 5, "name": "007"}, extra=["--format", "json", "--store", "memory:"]
        ),
        env=wpk_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.step("a")["outputs"] == {"replicas": 5, "name": "007"}  # int 5; the string stays "007"


def test_cli_parameter_wins_over_the_params_file(tmp_path: Path) -> None:
    pkg = _package(tmp_path, PARAMS_BODY)
    params = tmp_path / "prod.yaml"
    params.write_text("replicas: 3\nname: from-file\n")
    result = run_wpk(
        wpk_argv(
            "run",
            pkg,
            {"replicas": 7},
            extra=["--params-file", str(params), "--format", "json", "--store", "memory:"],
        ),
        env=wpk_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.step("a")["outputs"] == {"replicas": 7, "name": "from-file"}


def test_item_is_not_in_scope_in_when() -> None:
    body = '  steps:\n    - {id: a, uses: core.noop, for_each: [1, 2], when: "{{ item > 1 }}"}\n'
    errors = [str(d) for d in validate_text(HEAD + body, "t.yaml").errors]
    assert errors and "`item` is only defined inside a step with `for_each`" in errors[0], errors


# -- docs/running.md: steps, finally, rollback ---------------------------------------------------


async def test_idempotency_keys_name_the_item() -> None:
    wf = workflow("""
        steps:
          - {id: each, uses: rec.write, for_each: [x, y], with: {label: "{{ item }}"}}
    """)
    runner, _ = await run(wf)
    assert sorted(JOURNAL.seen_keys) == [f"{runner.execution_id}:each:0", f"{runner.execution_id}:each:1"]


async def test_a_failing_finally_step_fails_the_run_without_rollback() -> None:
    wf = workflow("""
        steps:
          - {id: change, uses: rec.write}
        finally:
          - {id: notify, uses: rec.boom}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.status) == "failed"
    assert "finally step 'notify' failed" in (runner.state.error or "")
    assert [kind for kind, *_ in JOURNAL.entries if kind == "undo"] == []  # no rollback
    assert runner.state.rollback_plan is None


async def test_completed_items_of_a_failed_for_each_are_undone() -> None:
    wf = workflow("""
        steps:
          - id: each
            uses: rec.write
            for_each: [ok-0, ok-1, bad]
            concurrency: 1
            with: {label: "{{ item }}", fail: "{{ item == 'bad' }}"}
          - {id: never, uses: rec.write, needs: [each]}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.steps["each"].status) in ("failed", "compensated")
    undone = [label for kind, label, _ in JOURNAL.entries if kind == "undo"]
    assert undone == ["ok-1", "ok-0"], JOURNAL.entries
    assert str(runner.state.steps["never"].status) == "skipped"


async def test_rollback_has_its_own_deadline(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        rollback: {timeout: 5s}
        steps:
          - id: change
            uses: rec.write
            rollback: {uses: rec.slow, with: {seconds: 60}}
          - {id: fail, uses: rec.boom, needs: [change]}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.status) == "rollback_failed"
    assert "rollback timed out after 5s" in (runner.state.error or "")


def test_result_is_not_in_scope_in_a_rollback_body() -> None:
    step = (
        "{id: a, uses: core.echo, with: {message: hi}, "
        'rollback: {uses: core.echo, with: {message: "{{ result.message }}"}}}'
    )
    errors = [str(d) for d in validate_text(HEAD + f"  steps:\n    - {step}\n", "t.yaml").errors]
    assert len(errors) == 1 and "`result` is only defined inside `outputs`" in errors[0], errors
    own = step.replace("result.message", "steps.a.result.message")
    assert validate_text(HEAD + f"  steps:\n    - {own}\n", "t.yaml").valid


async def test_a_rollback_body_retries_like_its_step(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - id: change
            uses: rec.write
            retries: {attempts: 3, backoff: 1s}
            rollback: {uses: rec.flaky, with: {label: undo, fail_times: 2}}
          - {id: fail, uses: rec.boom, needs: [change]}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.status) == "rolled_back", runner.state.error
    assert [kind for kind, label, _ in JOURNAL.entries if label == "undo"] == ["fail", "fail", "apply"]


async def test_skip_reasons_and_descriptions_read_as_documented() -> None:
    wf = workflow("""
        params: {go: {type: boolean, default: false}}
        steps:
          - {id: boom, uses: rec.boom, description: Breaks on purpose}
          - {id: after, uses: core.noop, needs: [boom]}
          - {id: maybe, uses: core.noop, when: "{{ params.go }}"}
    """)
    runner, _ = await run(wf)
    assert runner.state.steps["after"].reason == "upstream step 'boom' failed"
    assert runner.state.steps["maybe"].reason == "condition is false: {{ params.go }}"
    dry, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, dry.state)
    assert plan["steps"][0]["description"] == "Breaks on purpose"
    assert "        (Breaks on purpose)" in render_plan_text(plan).splitlines()


@pytest.mark.parametrize(
    ("text", "value"),
    [(b"a: 0755", 755), (b"a: 1:30", "1:30"), (b"a: yes", "yes"), (b"a: off", "off"), (b"a: true", True)],
)
def test_yaml_promises_of_the_format_page(text: bytes, value: object) -> None:
    assert load_bytes(text, "x.yaml").data == {"a": value}


@pytest.mark.parametrize(
    "text", [b"a: .nan", b"a: .inf", b"a: !!int 5", b"a: !!str [1]", b"a: &x 1\nb: *x", b"a: 1\na: 2"]
)
def test_yaml_the_format_page_refuses(text: bytes) -> None:
    with pytest.raises(LoadError):
        load_bytes(text, "x.yaml")


def test_a_version_that_is_not_semver_says_what_a_version_is() -> None:
    result = validate_text(
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: '1.2'}\nspec:\n"
        "  steps:\n    - {id: a, uses: core.noop}\n",
        "t.yaml",
    )
    (error,) = [str(d) for d in result.errors]
    assert "metadata.version: '1.2' is not valid here: Semantic version of the runbook (SemVer 2.0" in error
