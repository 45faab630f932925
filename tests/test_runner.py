"""The runner: DAG order, outputs, parallelism, retries, timeouts, for_each, rollback, dry-run.

Time is trio's MockClock (autojump), so backoff and timeouts are exact and instant.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from recording_adapter import JOURNAL, RecordingAdapter, reset
from runbooks import run, workflow

from wpk.adapters import registry
from wpk.engine import ExecutionStatus, MemoryStore, Runner, RunOptions, StepStatus
from wpk.engine.events import EventType
from wpk.engine.validate import validate_text


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


async def test_outputs_flow_with_native_types() -> None:
    wf = workflow("""
        params: {n: {type: integer, default: 3}}
        steps:
          - id: a
            uses: core.echo
            with: {message: {count: "{{ params.n }}", flag: true, items: [1, 2]}}
            outputs:
              count: "{{ result.message.count }}"
              doubled: "{{ result.message.count * 2 }}"
              items: "{{ result.message['items'] }}"
              text: "n={{ result.message.count }}"
          - id: b
            needs: [a]
            uses: core.echo
            with: {message: "{{ steps.a.outputs.doubled + 1 }}"}
            outputs: {got: "{{ result.message }}"}
    """)
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.COMPLETED
    a = runner.state.steps["a"].outputs
    assert a == {"count": 3, "doubled": 6, "items": [1, 2], "text": "n=3"}
    assert runner.state.steps["b"].outputs == {"got": 7}


async def test_independent_steps_overlap(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.slow, with: {seconds: 10}}
          - {id: b, uses: rec.slow, with: {seconds: 10}}
          - {id: c, uses: rec.slow, needs: [a, b], with: {seconds: 1}}
    """)
    start = trio.current_time()
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.COMPLETED
    assert trio.current_time() - start == pytest.approx(11)
    (a0, a1), (b0, b1), (c0, _) = JOURNAL.times["a"], JOURNAL.times["b"], JOURNAL.times["c"]
    assert a0 == b0 and a1 == b1  # ran side by side
    assert c0 >= max(a1, b1)  # and c waited for both


async def test_execution_concurrency_limits_parallel_steps(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        concurrency: 2
        steps:
          - {id: a, uses: rec.slow, with: {seconds: 10}}
          - {id: b, uses: rec.slow, with: {seconds: 10}}
          - {id: c, uses: rec.slow, with: {seconds: 10}}
    """)
    start = trio.current_time()
    await run(wf)
    assert trio.current_time() - start == pytest.approx(20)


async def test_retries_with_backoff_one_event_per_attempt(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: rec.flaky
            with: {fail_times: 2}
            retries: {attempts: 3, backoff: 10s, factor: 2, max_backoff: 15s}
    """)
    start = trio.current_time()
    runner, store = await run(wf)
    assert runner.state.status is ExecutionStatus.COMPLETED
    events = await store.events(runner.execution_id)
    # The first attempt begins with the step (one `step_started` event says both); each retry
    # is an `attempt_started` of its own.
    attempts = [e for e in events if e.type in (EventType.STEP_STARTED, EventType.ATTEMPT_STARTED)]
    failed = [e for e in events if e.type is EventType.ATTEMPT_FAILED]
    assert [(e.type, e.data["attempt"]) for e in attempts] == [
        (EventType.STEP_STARTED, 1),
        (EventType.ATTEMPT_STARTED, 2),
        (EventType.ATTEMPT_STARTED, 3),
    ]
    assert runner.state.step("a").attempts == 3
    assert len(failed) == 2
    delays = [e.data["retry_in"] for e in failed]
    # Full jitter under the capped exponential, exactly: the run's random source is seeded (7),
    # so the waits are uniform(0, 10) then uniform(0, min(15, 10 * 2)) drawn from Random(7).
    rng = random.Random(7)
    want = [rng.uniform(0, 10), rng.uniform(0, 15)]
    assert delays == [round(d, 3) for d in want]
    assert trio.current_time() - start == pytest.approx(sum(want), abs=1e-6)
    assert runner.state.steps["a"].attempts == 3


async def test_retries_exhausted_fail_the_step(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.flaky, with: {fail_times: 5}, retries: {attempts: 2, backoff: 1s}}
          - {id: b, uses: core.noop, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "skipped"}
    assert runner.state.steps["b"].reason == "upstream step 'a' failed"
    assert runner.state.status is ExecutionStatus.FAILED


async def test_non_retryable_error_is_not_retried(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.boom, with: {retryable: false}, retries: {attempts: 5}, rollback: none}
    """)
    runner, _ = await run(wf)
    assert runner.state.steps["a"].attempts == 1


async def test_step_timeout_counts_as_failed_attempt(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.slow, with: {seconds: 100}, timeout: 5s, retries: {attempts: 2, backoff: 1s}}
    """)
    start = trio.current_time()
    runner, _ = await run(wf)
    record = runner.state.steps["a"]
    assert record.status is StepStatus.FAILED
    assert record.error == "timed out after 5s"
    assert record.attempts == 2
    assert trio.current_time() - start < 12


async def test_execution_timeout_cancels_and_fails(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        timeout: 30s
        steps:
          - {id: a, uses: rec.slow, with: {seconds: 100}}
          - {id: b, uses: core.noop, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "cancelled", "b": "skipped"}
    assert runner.state.status is ExecutionStatus.FAILED
    assert runner.state.error == "execution timed out after 30s"


async def test_continue_on_error_lets_dependants_run() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: core.fail, with: {message: nope}, continue_on_error: true}
          - id: b
            uses: core.echo
            needs: [a]
            with: {message: "{{ steps.a.status }}"}
            outputs: {s: "{{ result.message }}"}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "failed", "b": "completed"}
    assert runner.state.steps["b"].outputs == {"s": "failed"}
    assert runner.state.status is ExecutionStatus.COMPLETED


async def test_when_false_skips_with_reason_and_dependants_still_run() -> None:
    wf = workflow("""
        params: {go: {type: boolean, default: false}}
        steps:
          - {id: a, uses: core.noop, when: "{{ params.go }}"}
          - {id: b, uses: core.noop, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert statuses(runner) == {"a": "skipped", "b": "completed"}
    assert runner.state.steps["a"].reason == "condition is false: {{ params.go }}"


async def test_for_each_gathers_outputs_in_item_order_with_step_concurrency(
    mock_clock: trio.testing.MockClock,
) -> None:
    wf = workflow("""
        params: {waits: {type: array, default: [30, 10, 20, 5]}}
        steps:
          - id: each
            uses: rec.slow
            for_each: "{{ params.waits }}"
            concurrency: 2
            with: {seconds: "{{ item }}", label: "w{{ index }}"}
            outputs: {label: "{{ result.label }}", index: "{{ index }}"}
          - {id: after, uses: core.echo, needs: [each], with: {message: "{{ steps.each.outputs | length }}"}}
    """)
    start = trio.current_time()
    runner, _ = await run(wf)
    record = runner.state.steps["each"]
    assert record.status is StepStatus.COMPLETED
    assert record.outputs == [{"label": f"w{i}", "index": i} for i in range(4)]
    spans = [JOURNAL.times[f"w{i}"] for i in range(4)]
    moments = sorted({t for span in spans for t in span})
    overlap = max(sum(1 for a, b in spans if a <= t < b) for t in moments)
    assert overlap == 2  # items overlap, but never more than the step's concurrency
    assert trio.current_time() - start < 65  # faster than one at a time
    assert runner.state.steps["after"].result == {"message": 4}
    items = runner.state.as_dict()["steps"][0]["items"]
    assert [i["status"] for i in items] == ["completed"] * 4


async def test_for_each_item_failure_fails_the_step() -> None:
    wf = workflow("""
        fail_fast: false  # every item runs; tests/test_rollouts.py covers the default
        steps:
          - id: each
            uses: core.fail
            for_each: [a, b]
            with: {message: "bad {{ item }}"}
    """)
    runner, _ = await run(wf)
    record = runner.state.steps["each"]
    assert record.status is StepStatus.FAILED
    assert record.error == "2 of 2 items failed: item 0: bad a"


async def test_diamond_compensates_in_reverse_completion_order() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.write, needs: [a]}
          - {id: c, uses: rec.slow, needs: [a], with: {seconds: 0.05}}
          - {id: c2, uses: rec.write, needs: [c]}
          - {id: d, uses: rec.boom, needs: [b, c2]}
    """)
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
    applied = [label for kind, label, _ in JOURNAL.entries if kind == "apply"]
    undone = [label for kind, label, _ in JOURNAL.entries if kind == "undo"]
    writes = [s for s in applied if s in ("a", "b", "c2")]
    assert undone == list(reversed(writes))
    assert undone[-1] == "a"  # never before b or c2, which depend on it
    assert statuses(runner)["d"] == "failed"
    assert {statuses(runner)[s] for s in ("a", "b", "c2")} == {"compensated"}
    assert statuses(runner)["c"] == "completed"  # read-only: nothing to undo


async def test_skipped_steps_are_not_compensated() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.write, when: "{{ false }}"}
          - {id: c, uses: rec.boom, needs: [a, b]}
    """)
    runner, _ = await run(wf)
    undone = [label for kind, label, _ in JOURNAL.entries if kind == "undo"]
    assert undone == ["a"]
    assert statuses(runner)["b"] == "skipped"


async def test_explicit_rollback_body_and_rollback_steps_run() -> None:
    wf = workflow("""
        rollback:
          steps:
            - {id: tidy, uses: rec.write, with: {label: tidy}}
        steps:
          - id: a
            uses: rec.oneway
            with: {value: 5}
            outputs: {v: "{{ result.value }}"}
            rollback: {uses: rec.write, with: {label: "undo-a-{{ steps.a.outputs.v }}"}}
          - {id: b, uses: rec.boom, needs: [a]}
    """)
    runner, _ = await run(wf)
    applied = [label for kind, label, _ in JOURNAL.entries if kind == "apply"]
    assert applied == ["a", "undo-a-5", "tidy"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK


async def test_failed_compensation_is_recorded_and_others_still_run() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.write, needs: [a], with: {fail_undo: true}}
          - {id: c, uses: rec.boom, needs: [b]}
    """)
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.ROLLBACK_FAILED
    assert statuses(runner)["b"] == "compensation_failed"
    assert statuses(runner)["a"] == "compensated"
    assert runner.state.error is not None and "cannot undo b" in runner.state.error


async def test_write_without_inverse_makes_rollback_failed_not_rolled_back() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.oneway}
          - {id: b, uses: rec.boom, needs: [a]}
    """)
    runner, _ = await run(wf)
    assert runner.state.status is ExecutionStatus.ROLLBACK_FAILED
    assert "no automatic inverse" in (runner.state.steps["a"].compensation_error or "")


async def test_no_rollback_option_leaves_changes() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.boom, needs: [a]}
    """)
    runner, _ = await run(wf, rollback=False)
    assert runner.state.status is ExecutionStatus.FAILED
    assert not [e for e in JOURNAL.entries if e[0] == "undo"]


async def test_cancel_cancels_running_steps_then_rolls_back(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.slow, needs: [a], with: {seconds: 1000}}
          - {id: c, uses: core.noop, needs: [b]}
        finally:
          - {id: bye, uses: rec.write, with: {label: bye}}
    """)
    store = MemoryStore()
    runner = Runner(wf, params={}, secrets={}, store=store, options=RunOptions())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner.run)
        await trio.sleep(10)
        runner.cancel()
    assert statuses(runner)["b"] == "cancelled"
    assert statuses(runner)["c"] == "skipped"
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
    assert [label for kind, label, _ in JOURNAL.entries if kind == "undo"] == ["a"]
    assert ("apply", "bye", {"label": "bye"}) in JOURNAL.entries  # finally still ran


async def test_finally_runs_after_compensation_and_sees_statuses() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.write}
          - {id: b, uses: rec.boom, needs: [a]}
        finally:
          - id: report
            uses: rec.write
            with: {label: "report-{{ steps.a.status }}-{{ steps.b.status }}"}
    """)
    await run(wf)
    kinds = [(kind, label) for kind, label, _ in JOURNAL.entries]
    assert kinds.index(("undo", "a")) < kinds.index(("apply", "report-compensated-failed"))


async def test_dry_run_simulates_writes_and_executes_reads() -> None:
    wf = workflow("""
        steps:
          - {id: look, uses: rec.read, with: {value: 3}, outputs: {v: "{{ result.value }}"}}
          - {id: change, uses: rec.write, needs: [look], when: "{{ steps.look.outputs.v > 2 }}"}
          - {id: other, uses: rec.write, needs: [look], when: "{{ steps.look.outputs.v > 5 }}"}
    """)
    runner, _ = await run(wf, dry_run=True)
    assert [kind for kind, *_ in JOURNAL.entries] == ["apply", "plan"]
    assert statuses(runner) == {"look": "completed", "change": "simulated", "other": "skipped"}
    from wpk.engine import build_plan

    plan = build_plan(wf, runner.state)
    by_id = {s["id"]: s for s in plan["steps"]}
    assert by_id["look"]["status"] == "executed-read"
    assert by_id["change"]["status"] == "simulated" and by_id["change"]["summary"] == "would write change"
    assert by_id["other"]["status"] == "would-skip"
    assert plan["rollback"] == [
        {
            "step": "change",
            "kind": "inverse",
            "action": "unwrite change",
            "conditional": True,
            "note": "read now; the rollback uses what the step records when it runs",
        },
        {"step": "look", "kind": "nothing", "action": "nothing to undo: read-only"},
    ]


async def test_idempotency_key_is_stable_across_attempts(mock_clock: trio.testing.MockClock) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: rec.flaky, with: {fail_times: 1}, retries: {attempts: 2, backoff: 1s}}
    """)
    runner, _ = await run(wf)
    assert JOURNAL.seen_keys == [f"{runner.execution_id}:a"] * 2


async def test_secrets_are_redacted_in_every_event() -> None:
    wf = workflow("""
        secrets: [token]
        steps:
          - id: a
            uses: core.echo
            with: {message: "Bearer {{ secrets.token }}"}
            outputs: {echoed: "{{ result.message }}"}
          - {id: b, uses: core.fail, needs: [a], with: {message: "failed with {{ secrets.token }}"}}
    """)
    runner, store = await run(wf, secrets={"token": "s3cr3t-value"})
    dump = json.dumps([e.as_dict() for e in await store.events(runner.execution_id)])
    dump += json.dumps(runner.state.as_dict())
    assert "s3cr3t-value" not in dump
    assert "Bearer ***" in dump and "failed with ***" in dump


async def test_record_is_derived_from_events_only() -> None:
    from wpk.engine import reduce

    wf = workflow("""
        steps:
          - {id: a, uses: core.echo, with: {message: 1}, outputs: {m: "{{ result.message }}"}}
          - {id: b, uses: core.fail, needs: [a], with: {message: x}, continue_on_error: true}
    """)
    runner, store = await run(wf)
    replayed = reduce(await store.events(runner.execution_id))
    assert replayed.as_dict() == runner.state.as_dict()


def test_registry_api_adapter_is_validated_like_builtin() -> None:
    found = validate_text(
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\n"
        "spec:\n  steps:\n    - {id: a, uses: rec.wirte}\n",
        "t.yaml",
    )
    assert [d.message for d in found.errors] == ["unknown action 'rec.wirte' (did you mean 'rec.write'?)"]


async def test_kubernetes_secret_values_never_reach_the_event_log() -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: core.echo
            with:
              message:
                apiVersion: v1
                kind: Secret
                metadata: {name: db}
                data: {password: aHVudGVyMg==}
    """)
    runner, store = await run(wf)
    dump = json.dumps([e.as_dict() for e in await store.events(runner.execution_id)])
    assert "aHVudGVyMg==" not in dump
    assert '"password": "***"' in dump


def test_cancellation_is_recognised_inside_exception_groups() -> None:
    from wpk.engine.runner import is_cancellation

    cancelled = trio.Cancelled._create()  # type: ignore[attr-defined]
    assert is_cancellation(cancelled)
    assert is_cancellation(BaseExceptionGroup("nursery", [cancelled]))
    assert is_cancellation(BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [cancelled])]))
    assert not is_cancellation(BaseExceptionGroup("mixed", [cancelled, ValueError("x")]))
    assert not is_cancellation(ValueError("x"))


async def test_compensations_carry_their_own_idempotency_key() -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: rec.oneway
            rollback: {uses: rec.write, with: {label: undo-a}}
          - {id: b, uses: rec.write, needs: [a]}
          - {id: c, uses: rec.boom, needs: [b]}
    """)
    runner, _ = await run(wf)
    run_id = runner.execution_id
    assert JOURNAL.seen_keys == [f"{run_id}:a", f"{run_id}:b", f"{run_id}:c", f"{run_id}:a:undo"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
