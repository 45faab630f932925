"""DESIGN §5 as tables: what each execution rule means, pinned case by case.

Each table row is one small runbook and the exact outcome the rule promises: which steps ran,
their statuses and reasons, the delays between attempts, the order of compensations. The
runbooks are chosen so that the answer does not depend on scheduling: skip propagation is shown
on a single chain, and no row relies on an independent branch continuing after a failure.
Time is trio's MockClock (autojump), so the retry delays are exact and instant.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from recording_adapter import JOURNAL, RecordingAdapter, reset
from runbooks import run, workflow

from wpk.adapters import registry
from wpk.engine import ExecutionStatus, Runner
from wpk.engine.events import EventType


@pytest.fixture(autouse=True)
def rec_adapter() -> Iterator[None]:
    registry.register("rec", RecordingAdapter)
    reset()
    yield
    registry.unregister("rec")


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def statuses(runner: Runner) -> dict[str, str]:
    return {k: str(v.status) for k, v in runner.state.steps.items()}


def applied() -> list[str]:
    return [label for kind, label, _ in JOURNAL.entries if kind == "apply"]


def undone() -> list[str]:
    return [label for kind, label, _ in JOURNAL.entries if kind in ("undo", "undo-failed")]


# -- skip propagation and continue_on_error --------------------------------------------------


async def test_a_failure_skips_the_whole_chain_below_it() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.boom, rollback: none}
          - {id: b, uses: rec.write, needs: [a]}
          - {id: c, uses: rec.write, needs: [b]}
          - {id: d, uses: rec.write, needs: [c]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "skipped", "c": "skipped", "d": "skipped"}
    for step in ("b", "c", "d"):
        reason = runner.state.steps[step].reason or ""
        assert "upstream" in reason and "failed" in reason and "'a'" in reason, (step, reason)
    assert applied() == []
    assert runner.state.status is ExecutionStatus.FAILED


async def test_a_skipped_need_of_a_skipped_need_still_counts_as_failed_upstream() -> None:
    # b is skipped because a failed; c needs both b and a success: it must still be skipped.
    wf = workflow("""
        steps:
          - {id: ok, uses: rec.read}
          - {id: a, uses: rec.boom, needs: [ok], rollback: none}
          - {id: b, uses: rec.write, needs: [a]}
          - {id: c, uses: rec.write, needs: [b]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"ok": "completed", "a": "failed", "b": "skipped", "c": "skipped"}
    assert applied() == ["ok"]


async def test_continue_on_error_lets_the_chain_run_and_the_execution_complete() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.boom, continue_on_error: true, rollback: none}
          - id: b
            uses: rec.write
            needs: [a]
            with: {value: "{{ steps.a.status }}"}
          - {id: c, uses: rec.write, needs: [b]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "completed", "c": "completed"}
    assert runner.state.status is ExecutionStatus.COMPLETED
    assert runner.state.steps["b"].outputs == {}
    assert next(e for e in JOURNAL.entries if e[0] == "apply")[2] == {"value": "failed"}
    assert undone() == []  # a completed execution is not rolled back


async def test_continue_on_error_from_defaults_applies_to_every_step() -> None:
    wf = workflow("""
        defaults: {continue_on_error: true}
        steps:
          - {id: a, uses: rec.boom, rollback: none}
          - {id: b, uses: rec.write, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "completed"}
    assert runner.state.status is ExecutionStatus.COMPLETED


async def test_a_step_override_of_continue_on_error_beats_the_default() -> None:
    wf = workflow("""
        defaults: {continue_on_error: true}
        steps:
          - {id: a, uses: rec.boom, rollback: none, continue_on_error: false}
          - {id: b, uses: rec.write, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "skipped"}
    assert runner.state.status is ExecutionStatus.FAILED


async def test_a_for_each_with_continue_on_error_lets_dependants_run() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.boom, for_each: [1, 2], continue_on_error: true, rollback: none}
          - {id: b, uses: rec.write, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "completed"}
    assert runner.state.status is ExecutionStatus.COMPLETED


async def test_a_condition_skip_does_not_propagate() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write, when: false}
          - {id: b, uses: rec.write, needs: [a]}
          - {id: c, uses: rec.write, needs: [b]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "skipped", "b": "completed", "c": "completed"}
    assert applied() == ["b", "c"]
    assert runner.state.status is ExecutionStatus.COMPLETED


# -- `when` truthiness ---------------------------------------------------------------------

# (the value `when` renders to, whether the step runs). The rule (docs/format.md): strings are
# false when, trimmed and lower-cased, they are "", "false", "0", "no", "none" or "null"; every
# other string is true; other values follow Python truthiness (0, 0.0, none, [], {} are false).
WHEN_TABLE: list[tuple[str, bool]] = [
    ("true", True),
    ("false", False),
    ("'false'", False),
    ("'False'", False),
    ("' FALSE '", False),
    ("'0'", False),
    ("'no'", False),
    ("'none'", False),
    ("'null'", False),
    ("''", False),
    ("'  '", False),
    ("'true'", True),
    ("'yes'", True),
    ("'1'", True),
    ("'off'", True),  # not in the list: YAML 1.2 strings are only what they say
    ("'falsey'", True),
    ("'0.0'", True),
    ("0", False),
    ("1", True),
    ("-1", True),
    ("0.0", False),
    ("0.5", True),
    ("none", False),
    ("[]", False),
    ("[0]", True),
    ("[false]", True),
    ("{}", False),
    ("{'a': 0}", True),
]


@pytest.mark.parametrize(("expression", "runs"), WHEN_TABLE)
async def test_when_truthiness_for_every_value_type(expression: str, runs: bool) -> None:
    wf = workflow(f"""
        steps:
          - id: a
            uses: rec.write
            when: "{{{{ {expression} }}}}"
          - {{id: b, uses: rec.write, needs: [a]}}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.steps["a"].status) == ("completed" if runs else "skipped")
    assert applied() == (["a", "b"] if runs else ["b"])
    if not runs:
        assert "condition" in (runner.state.steps["a"].reason or "")


@pytest.mark.parametrize(
    ("schema", "value", "runs"),
    [
        ("{type: string}", "false", False),
        ("{type: string}", "False", False),
        ("{type: string}", "true", True),
        ("{type: boolean}", False, False),
        ("{type: boolean}", True, True),
        ("{type: integer}", 0, False),
        ("{type: integer}", 3, True),
        ("{type: number}", 0.0, False),
        ("{type: array}", [], False),
        ("{type: array}", ["x"], True),
        ("{type: object}", {}, False),
        ("{type: object}", {"k": "v"}, True),
    ],
)
async def test_when_truthiness_of_parameters(schema: str, value: Any, runs: bool) -> None:
    wf = workflow(f"""
        params: {{flag: {schema}}}
        steps:
          - {{id: a, uses: rec.write, when: "{{{{ params.flag }}}}"}}
    """)
    runner, _ = await run(wf, params={"flag": value})
    assert str(runner.state.steps["a"].status) == ("completed" if runs else "skipped")


async def test_when_sees_an_upstream_output_that_says_false() -> None:
    wf = workflow("""
        steps:
          - {id: probe, uses: rec.read, with: {value: "false"}, outputs: {ok: "{{ result.value }}"}}
          - {id: act, uses: rec.write, needs: [probe], when: "{{ steps.probe.outputs.ok }}"}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"probe": "completed", "act": "skipped"}


async def test_a_when_that_cannot_render_fails_the_step_and_skips_its_chain() -> None:
    wf = workflow("""
        steps:
          - {id: probe, uses: rec.read, outputs: {v: "{{ result.value }}"}}
          - {id: act, uses: rec.write, needs: [probe], when: "{{ steps.probe.outputs.v.missing }}"}
          - {id: after, uses: rec.write, needs: [act]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"probe": "completed", "act": "failed", "after": "skipped"}
    # the error names the field, after its file:line:col (docs/running.md)
    assert (runner.state.steps["act"].error or "").startswith("t.yaml:8:56: when: undefined: ")


# -- retries: exact delays under the seeded random source ------------------------------------


def expected_delays(seed: int, backoff: float, factor: float, max_backoff: float, n: int) -> list[float]:
    """docs/format.md: the i-th wait (i from 0) is uniform in [0, min(max_backoff, backoff * factor**i)]."""
    rng = random.Random(seed)
    return [rng.uniform(0.0, min(max_backoff, backoff * factor**i)) for i in range(n)]


RETRY_TABLE = [
    # attempts, backoff, factor, max_backoff (as written), ceilings in seconds for reference
    ("{attempts: 4, backoff: 10s, factor: 3, max_backoff: 50s}", 10.0, 3.0, 50.0, 3),  # 10, 30, 50
    ("{attempts: 5, backoff: 1s, factor: 2, max_backoff: 4s}", 1.0, 2.0, 4.0, 4),  # 1, 2, 4, 4
    ("{attempts: 3, backoff: 500ms, factor: 1}", 0.5, 1.0, 30.0, 2),  # 0.5, 0.5
    ("{attempts: 4, backoff: 20s}", 20.0, 2.0, 30.0, 3),  # defaults: factor 2, cap 30s: 20, 30, 30
    ("{attempts: 3, backoff: 2m, factor: 2, max_backoff: 1m}", 120.0, 2.0, 60.0, 2),  # cap below backoff
]


@pytest.mark.parametrize(("retries", "backoff", "factor", "cap", "waits"), RETRY_TABLE)
@pytest.mark.parametrize("seed", [7, 1234])
async def test_retry_delays_are_exactly_the_documented_full_jitter(
    mock_clock: trio.testing.MockClock,
    retries: str,
    backoff: float,
    factor: float,
    cap: float,
    waits: int,
    seed: int,
) -> None:
    wf = workflow(f"""
        steps:
          - {{id: a, uses: rec.flaky, with: {{fail_times: 99}}, retries: {retries}, rollback: none}}
    """)
    start = trio.current_time()
    runner, store = await run(wf, seed=seed)
    want = expected_delays(seed, backoff, factor, cap, waits)
    events = await store.events(runner.execution_id)
    got = [e.data["retry_in"] for e in events if e.type is EventType.ATTEMPT_FAILED]
    assert got == [round(d, 3) for d in want]
    assert trio.current_time() - start == pytest.approx(sum(want), abs=1e-6)
    assert runner.state.steps["a"].attempts == waits + 1
    assert str(runner.state.steps["a"].status) == "failed"


async def test_defaults_retries_apply_and_a_step_may_override_them(
    mock_clock: trio.testing.MockClock,
) -> None:
    wf = workflow("""
        defaults: {retries: {attempts: 3, backoff: 4s, factor: 5, max_backoff: 100s}}
        steps:
          - {id: a, uses: rec.flaky, with: {fail_times: 99}, rollback: none}
          - {id: b, uses: rec.flaky, with: {fail_times: 99}, rollback: none, retries: {attempts: 1}}
    """)
    runner, store = await run(wf, seed=3)
    events = await store.events(runner.execution_id)
    got = [e.data["retry_in"] for e in events if e.type is EventType.ATTEMPT_FAILED and e.step == "a"]
    assert got == [round(d, 3) for d in expected_delays(3, 4.0, 5.0, 100.0, 2)]
    assert runner.state.steps["b"].attempts == 1


async def test_a_retry_that_succeeds_completes_after_exactly_the_failed_attempts(
    mock_clock: trio.testing.MockClock,
) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.flaky, with: {fail_times: 2}, retries: {attempts: 5, backoff: 8s}}
    """)
    start = trio.current_time()
    runner, _ = await run(wf, seed=11)
    want = expected_delays(11, 8.0, 2.0, 30.0, 2)
    assert trio.current_time() - start == pytest.approx(sum(want), abs=1e-6)
    assert runner.state.steps["a"].attempts == 3
    assert [e[0] for e in JOURNAL.entries] == ["fail", "fail", "apply"]


# -- compensation order --------------------------------------------------------------------


async def test_compensation_follows_reverse_completion_order_not_document_order(
    mock_clock: trio.testing.MockClock,
) -> None:
    # `late` is listed first but completes after `early` (it waits for a slow read).
    wf = workflow("""
        steps:
          - {id: late, uses: rec.write, needs: [wait]}
          - {id: wait, uses: rec.slow, with: {seconds: 5}}
          - {id: early, uses: rec.write}
          - {id: last, uses: rec.write, needs: [late]}
          - {id: fail, uses: rec.boom, needs: [last], rollback: none}
    """)
    runner, _ = await run(wf)
    assert applied() == ["early", "wait", "late", "last"]
    assert undone() == ["last", "late", "early"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
    assert {k: v for k, v in statuses(runner).items() if k != "fail"} == {
        "late": "compensated",
        "wait": "completed",  # read-only: nothing to undo
        "early": "compensated",
        "last": "compensated",
    }


async def test_for_each_items_are_undone_last_item_first() -> None:
    wf = workflow("""
        steps:
          - id: w
            uses: rec.write
            for_each: [1, 2, 3, 4]
            concurrency: 1
            with: {label: "w{{ item }}"}
          - {id: plain, uses: rec.write, needs: [w]}
          - {id: fail, uses: rec.boom, needs: [plain], rollback: none}
    """)
    runner, _ = await run(wf)
    assert sorted(applied()) == ["plain", "w1", "w2", "w3", "w4"]
    assert undone() == ["plain", "w4", "w3", "w2", "w1"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
    items = runner.state.steps["w"].items or {}
    assert [str(items[i].status) for i in sorted(items)] == ["compensated"] * 4


async def test_completed_items_of_a_failed_for_each_are_undone_in_reverse() -> None:
    # The last item fails; the three that completed are real changes and must be undone.
    wf = workflow("""
        steps:
          - {id: before, uses: rec.write}
          - id: w
            uses: rec.flaky
            needs: [before]
            for_each: [a, b, c, bad]
            concurrency: 1
            with: {label: "{{ item }}", fail_times: "{{ 9 if item == 'bad' else 0 }}"}
            rollback: {uses: rec.write, with: {label: "undo-{{ item }}"}}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.steps["w"].status) == "compensated"
    assert sorted(applied()[:4]) == ["a", "b", "before", "c"]
    assert applied()[4:] == ["undo-c", "undo-b", "undo-a"]
    assert undone() == ["before"]
    items = runner.state.steps["w"].items or {}
    assert [str(items[i].status) for i in sorted(items)] == ["compensated"] * 3 + ["failed"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK


async def test_a_failed_plain_write_is_not_itself_compensated() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.boom, needs: [a], with: {label: b}}
    """)
    runner, _ = await run(wf)
    assert undone() == ["a"]
    assert statuses(runner) == {"a": "compensated", "b": "failed"}


async def test_what_is_compensated_depends_on_the_rollback_mode() -> None:
    wf = workflow("""
        steps:
          - {id: auto, uses: rec.write}
          - {id: none, uses: rec.write, rollback: none, needs: [auto]}
          - {id: read, uses: rec.read, needs: [none]}
          - {id: harmless, uses: rec.oneway, dry_run: execute, needs: [read]}
          - id: body
            uses: rec.read
            needs: [harmless]
            rollback: {uses: rec.write, with: {label: body-undo}}
          - {id: fail, uses: rec.boom, needs: [body], rollback: none}
    """)
    runner, _ = await run(wf)
    assert undone() == ["auto"]
    assert applied()[-1] == "body-undo"
    assert statuses(runner) == {
        "auto": "compensated",
        "none": "completed",
        "read": "completed",
        "harmless": "completed",
        "body": "compensated",
        "fail": "failed",
    }
    assert runner.state.status is ExecutionStatus.ROLLED_BACK


async def test_a_failed_compensation_does_not_stop_the_others_and_rollback_steps_run_last() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.write, needs: [a], with: {fail_undo: true}}
          - {id: c, uses: rec.write, needs: [b]}
          - {id: fail, uses: rec.boom, needs: [c], rollback: none}
        rollback:
          steps:
            - {id: r1, uses: rec.write, rollback: none}
            - {id: r2, uses: rec.write, rollback: none}
    """)
    runner, _ = await run(wf)
    order = [(k, label) for k, label, _ in JOURNAL.entries if k != "fail"]
    assert order[-5:] == [
        ("undo", "c"),
        ("undo-failed", "b"),
        ("undo", "a"),
        ("apply", "r1"),
        ("apply", "r2"),
    ]
    assert runner.state.status is ExecutionStatus.ROLLBACK_FAILED
    assert "b: cannot undo b" in (runner.state.error or "")
    assert str(runner.state.steps["b"].status) == "compensation_failed"


async def test_a_write_without_inverse_ends_rollback_failed() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.oneway}
          - {id: fail, uses: rec.boom, needs: [a], rollback: none}
    """)
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.ROLLBACK_FAILED
    assert str(runner.state.steps["a"].status) == "compensation_failed"
    assert "no automatic inverse" in (runner.state.steps["a"].compensation_error or "")


async def test_a_second_rollback_undoes_nothing() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: fail, uses: rec.boom, needs: [a], rollback: none}
    """)
    runner, _ = await run(wf)
    assert undone() == ["a"]
    status = await runner.rollback()
    assert undone() == ["a"]
    assert status is ExecutionStatus.ROLLED_BACK


async def test_rollback_disabled_leaves_the_changes() -> None:
    wf = workflow("""
        rollback: {enabled: false}
        steps:
          - {id: a, uses: rec.write}
          - {id: fail, uses: rec.boom, needs: [a], rollback: none}
    """)
    runner, _ = await run(wf)
    assert undone() == []
    assert runner.state.status is ExecutionStatus.FAILED


async def test_a_rollback_body_inherits_the_steps_timeout_and_retries(
    mock_clock: trio.testing.MockClock,
) -> None:
    # docs/format.md: "In a rollback body, `timeout` and `retries` default to the step's own."
    wf = workflow("""
        steps:
          - id: a
            uses: rec.write
            retries: {attempts: 3, backoff: 1s}
            timeout: 5s
            rollback: {uses: rec.flaky, with: {label: undo-a, fail_times: 2}}
          - id: b
            uses: rec.write
            needs: [a]
            timeout: 5s
            rollback: {uses: rec.slow, with: {seconds: 10}}
          - {id: fail, uses: rec.boom, needs: [b], rollback: none}
    """)
    runner, _ = await run(wf)
    assert str(runner.state.steps["b"].status) == "compensation_failed"  # the step's 5 s timeout
    assert "timed out after 5s" in (runner.state.steps["b"].compensation_error or "")
    assert str(runner.state.steps["a"].status) == "compensated"  # third attempt of the undo
    assert [e[0] for e in JOURNAL.entries if e[1] == "undo-a"] == ["fail", "fail", "apply"]
