"""Rollouts with real shell steps: item order, stopping at a failure, max_failures, fail-fast.

Each step appends to files under tmp_path, so what ran (and in which order) is read back from
what the processes wrote, not from the engine's own account. tests/test_conformance.py holds
the wider table of cases on the recording adapter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runbooks import run, workflow

from wpk.engine import build_plan
from wpk.engine.events import EventType
from wpk.engine.plan import render_plan_text
from wpk.engine.validate import validate_text

ITEMS = ["a", "b", "c", "d"]
RUNS = 30


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_items_start_in_list_order_over_many_runs(tmp_path: Path, concurrency: int) -> None:
    # Each item writes its name, then waits until the items allowed to run beside it have
    # written theirs (at most 1 s): at concurrency 2, `a` cannot finish, and so free a slot for
    # `c`, before `b` has written. So `c` and `d` can only follow `a` and `b`, and in that order,
    # if the engine starts items in list order; the wait also makes a wrong order visible at
    # once. (Before this was fixed, concurrency 1 wrote `d c b a` in about 4 runs of 10.)
    log = tmp_path / "log"
    written_before_me = f"{{{{ [index + {concurrency}, {len(ITEMS)}] | min }}}}"
    wf = workflow(f"""
        params: {{log: {{type: string}}}}
        steps:
          - id: rollout
            uses: shell.run
            for_each: {ITEMS}
            concurrency: {concurrency}
            rollback: none
            timeout: 10s
            with:
              command: >-
                echo {{{{ item }}}} >> {{{{ params.log }}}}; n=0;
                while [ "$(wc -l < {{{{ params.log }}}})" -lt {written_before_me} ] && [ $n -lt 100 ];
                do sleep 0.01; n=$((n+1)); done
    """)
    for _ in range(RUNS):
        log.write_text("")
        runner, store = await run(wf, params={"log": str(log)})
        assert str(runner.state.status) == "completed"
        written = lines(log)
        if concurrency == 1:
            assert written == ITEMS
        else:
            assert sorted(written[:2]) == ["a", "b"] and written[2:] == ["c", "d"], written
        events = await store.events(runner.execution_id)
        started = [e.item for e in events if e.type is EventType.ATTEMPT_STARTED]
        assert started == [0, 1, 2, 3]


ROLLOUT = """
    params: {{dir: {{type: string}}}}
    steps:
      - id: rollout
        uses: shell.run
        for_each: {items}
        concurrency: 1
        {extra}
        with:
          command: "echo {{{{ item }}}} >> {{{{ params.dir }}}}/applied; test {{{{ item }}}} != {bad}"
        rollback:
          uses: shell.run
          with: {{command: "echo {{{{ item }}}} >> {{{{ params.dir }}}}/undone"}}
"""


async def test_a_failing_item_stops_the_rollout_and_completed_items_are_undone_last_first(
    tmp_path: Path,
) -> None:
    wf = workflow(ROLLOUT.format(items=["a", "b", "c", "d", "e"], bad="c", extra=""))
    runner, _ = await run(wf, params={"dir": str(tmp_path)})
    assert lines(tmp_path / "applied") == ["a", "b", "c"]  # d and e never started
    assert lines(tmp_path / "undone") == ["b", "a"]
    assert str(runner.state.status) == "rolled_back"
    record = runner.state.steps["rollout"]
    assert record.error == (
        "1 of 5 items failed: item 2: command exited with status 1; "
        "2 not started (the rollout stopped at failed item 2 (fail_fast))"
    )
    assert record.items is not None and sorted(record.items) == [0, 1, 2]


@pytest.mark.parametrize(("max_failures", "applied", "status"), [
    (2, ["a", "x", "b", "x", "c", "x"], "rolled_back"),  # the third failure stops it: d never starts
    (3, ["a", "x", "b", "x", "c", "x", "d"], "completed"),  # three tolerated: every item ran
])  # fmt: skip
async def test_max_failures_tolerates_exactly_n(
    tmp_path: Path, max_failures: int, applied: list[str], status: str
) -> None:
    items = ["a", "x", "b", "x", "c", "x", "d"]
    wf = workflow(ROLLOUT.format(items=items, bad="x", extra=f"max_failures: {max_failures}"))
    runner, _ = await run(wf, params={"dir": str(tmp_path)})
    assert lines(tmp_path / "applied") == applied
    assert str(runner.state.status) == status
    if status == "rolled_back":
        assert lines(tmp_path / "undone") == ["c", "b", "a"]
        assert "(max_failures: 2)" in (runner.state.steps["rollout"].error or "")
    else:
        assert not (tmp_path / "undone").exists()
        items_record = runner.state.as_dict()["steps"][0]["items"]
        assert [i["status"] for i in items_record].count("failed") == 3


@pytest.mark.parametrize("fail_fast", [True, False])
async def test_a_failure_in_one_branch_starts_nothing_new_in_the_others(
    tmp_path: Path, fail_fast: bool
) -> None:
    log = tmp_path / "log"
    wf = workflow(f"""
        fail_fast: {str(fail_fast).lower()}
        steps:
          - {{id: bad, uses: shell.run, rollback: none, with: {{command: "exit 1"}}}}
          - {{id: slow, uses: shell.run, rollback: none, with: {{command: "sleep 1; echo slow >> {log}"}}}}
          - id: next
            needs: [slow]
            uses: shell.run
            rollback: none
            with: {{command: "echo next >> {log}"}}
    """)
    runner, _ = await run(wf)
    steps = runner.state.steps
    assert str(steps["bad"].status) == "failed"
    assert str(runner.state.status) == "failed"  # nothing to undo: every step says rollback: none
    if fail_fast:
        assert lines(log) == ["slow"]  # the running step finished; the next one never started
        assert str(steps["next"].status) == "skipped"
        assert steps["next"].reason == "not started: the run failed at step 'bad' (fail_fast)"
        assert steps["next"].started_at is None
    else:
        assert lines(log) == ["slow", "next"]


async def test_dry_run_plan_states_the_policy_and_the_items_to_undo(tmp_path: Path) -> None:
    wf = workflow(f"""
        steps:
          - id: canary_first
            uses: shell.run
            for_each: [a, b, c]
            concurrency: 1
            with: {{argv: [touch, "{tmp_path}/{{{{ item }}}}"]}}
            rollback: {{uses: shell.run, with: {{argv: [rm, "{tmp_path}/{{{{ item }}}}"]}}}}
          - id: tolerant
            uses: shell.run
            for_each: [a, b]
            max_failures: "50%"
            rollback: none
            with: {{argv: ["true"]}}
    """)
    runner, _ = await run(wf, dry_run=True)
    assert not any(tmp_path.iterdir())
    plan = build_plan(wf, runner.state)
    text = render_plan_text(plan)
    assert "Failure policy: fail fast: after a failed step nothing new starts" in text
    assert "rollout: stops at the first failed item" in text
    assert "rollout: tolerates up to 50% of the items failing (max_failures: 50%), then stops" in text
    undo = [(r["step"], r.get("item"), r["kind"]) for r in plan["rollback"] if r["kind"] != "nothing"]
    assert undo == [("canary_first", 2, "body"), ("canary_first", 1, "body"), ("canary_first", 0, "body")]
    for n, letter in ((1, "c"), (2, "b"), (3, "a")):  # each item's own rendered rollback, last first
        rm = f'run shell.run with {{"argv": ["rm", "{tmp_path}/{letter}"]}}'
        assert f"{n}. canary_first[{3 - n}]: {rm}" in text
    items = runner.state.as_dict()["steps"][0]["items"]
    assert [i["status"] for i in items] == ["simulated"] * 3


async def test_dry_run_rollback_plan_after_a_partial_rollout_lists_only_the_items_that_ran(
    tmp_path: Path,
) -> None:
    # The third item cannot even render (its `with` is invalid), so the dry-run's rollout
    # stops there: only the first two would have run, and only they are in the rollback plan.
    wf = workflow("""
        steps:
          - id: roll
            uses: shell.run
            for_each: [["echo", "a"], ["echo", "b"], "not a list", ["echo", "d"]]
            concurrency: 1
            with: {argv: "{{ item }}"}
            rollback: {uses: core.echo, with: {message: "undo {{ index }}"}}
    """)
    runner, _ = await run(wf, dry_run=True)
    plan = build_plan(wf, runner.state)
    roll = plan["steps"][0]
    assert roll["status"] == "failed"
    assert "1 not started (the rollout stopped at failed item 2 (fail_fast))" in roll["error"]
    assert [(r["step"], r.get("item"), r["kind"]) for r in plan["rollback"]] == [
        ("roll", 1, "body"),
        ("roll", 0, "body"),
    ]
    assert [r["action"] for r in plan["rollback"]] == [
        'run core.echo with {"message": "undo 1"}',
        'run core.echo with {"message": "undo 0"}',
    ]


def _warnings(command: str) -> list[str]:
    text = (
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"
        "  params: {p: {type: string, default: x}}\n  steps:\n"
        f"    - {{id: a, uses: shell.run, rollback: none, with: {{command: '{command}'}}}}\n"
    )
    result = validate_text(text, "t.yaml")
    assert result.valid, [str(d) for d in result.errors]
    return [d.message for d in result.diagnostics if d.code == "shell-quoted-template"]


@pytest.mark.parametrize(("command", "warned"), [
    ('test "$(grep -c x {{ params.p }})" = 1', False),  # the case: inside $(…), quoted right
    ('echo "$(cat {{ params.p }})" "`cat {{ params.p }}`"', False),
    ('echo "$(( {{ params.p }} ))"', False),
    ("echo {{ params.p }}", False),
    ('echo "{{ params.p }}"', True),  # the added quotes would become part of the value
    ('echo "$(cat {{ params.p }}) {{ params.p }}"', True),  # the second one is back in "…"
    ('echo "$(echo "{{ params.p }}")"', True),  # quotes inside the substitution count again
])  # fmt: skip
def test_shell_quote_warning_knows_command_substitution(command: str, warned: bool) -> None:
    assert bool(_warnings(command)) is warned


def test_max_failures_needs_for_each_and_a_sane_value() -> None:
    head = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n  steps:\n"
    bad = validate_text(head + "    - {id: a, uses: core.noop, max_failures: 1}\n", "t.yaml")
    assert [f"{d.line}:{d.col}: {d.message}" for d in bad.errors] == [
        "6:32: `max_failures` counts failed `for_each` items, and this step has no `for_each`: "
        "remove it (a single step's failure is tolerated with `continue_on_error`)"
    ]
    for value in ('"101%"', "-1", '"x%"', "true"):
        step = f"    - {{id: a, uses: core.noop, for_each: [1], max_failures: {value}}}\n"
        assert not validate_text(head + step, "t.yaml").valid, value
    for value in ("0", "3", '"0%"', '"12.5%"', '"100%"'):
        step = f"    - {{id: a, uses: core.noop, for_each: [1], max_failures: {value}}}\n"
        assert validate_text(head + step, "t.yaml").valid, value
