"""The execution record as a pure reduction of events: every field, every allowed transition.

`ExecutionState.apply` is the only way status changes (DESIGN §5: "Status is derived from
events; nothing else is the source of truth"). These tables feed hand-written event logs to
`reduce` and compare the record field by field, so a reducer that forgets a field, applies an
event to the wrong record, or allows a transition the design does not have turns red.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from wpk.engine.events import Event, EventType
from wpk.engine.state import (
    FINISHED,
    ExecutionState,
    ExecutionStatus,
    ItemRecord,
    StepRecord,
    StepStatus,
    TransitionError,
    iso,
    reduce,
)

S = StepStatus
E = EventType

# DESIGN §5's step life cycle, written out by hand (plus `simulated` for dry-run).
ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.SKIPPED),
    (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.RUNNING),  # re-run on resume (durable store): its agent was lost while it ran
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.SKIPPED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.SIMULATED),
    (S.COMPLETED, S.COMPENSATING),
    (S.FAILED, S.COMPENSATING),
    (S.COMPENSATING, S.COMPENSATED),
    (S.COMPENSATING, S.COMPENSATION_FAILED),
    (S.COMPENSATING, S.COMPENSATING),  # resumed: its agent was lost while it compensated
}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(StepStatus, StepStatus)))
def test_every_step_transition_is_allowed_or_refused_as_designed(src: StepStatus, dst: StepStatus) -> None:
    record = StepRecord("s", status=src)
    if (src, dst) in ALLOWED:
        record.move(dst)
        assert record.status is dst
    else:
        with pytest.raises(TransitionError) as info:
            record.move(dst)
        assert str(info.value) == f"step s: {src} -> {dst} is not allowed"
        assert record.status is src


class Log:
    """Builds an event log: seq counts from 1, time is seq * 10 (so times are checkable)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, type_: EventType, step: str | None = None, item: int | None = None, **data: Any) -> Log:
        seq = len(self.events) + 1
        self.events.append(Event(seq, type_, seq * 10.0, step, item, data))
        return self


def created(log: Log, steps: list[str], **extra: Any) -> Log:
    return log.add(E.EXECUTION_CREATED, execution_id="x1", workflow_id="wf-1.0.0", steps=steps, **extra)


def test_a_successful_run_reduces_to_the_full_record() -> None:
    log = created(Log(), ["a", "b"], dry_run=False, priority=70, params={"n": 1})
    log.add(E.EXECUTION_STARTED)  # 2
    log.add(E.STEP_STARTED, "a")  # 3
    log.add(E.ATTEMPT_STARTED, "a", attempt=1)  # 4
    log.add(E.ATTEMPT_FAILED, "a", attempt=1, error="flaky")  # 5
    log.add(E.ATTEMPT_STARTED, "a", attempt=2)  # 6
    log.add(E.LOG, "a", stream="stdout", line="hello")  # 7
    log.add(E.STEP_COMPLETED, "a", outputs={"o": 1}, result={"r": 2}, undo={"u": 3}, read_only=True)  # 8
    log.add(E.STEP_STARTED, "b")  # 9
    log.add(E.STEP_SKIPPED, "b", reason="condition is false")  # 10
    log.add(E.EXECUTION_FINISHED, status="completed")  # 11
    log.add(E.EXECUTION_CLOSED, status="completed")  # 12
    state = reduce(log.events)
    a, b = state.steps["a"], state.steps["b"]
    assert (state.execution_id, state.workflow_id, state.priority, state.params) == (
        "x1",
        "wf-1.0.0",
        70,
        {"n": 1},
    )
    assert state.dry_run is False and state.closed is True
    assert (state.created_at, state.started_at, state.finished_at) == (10.0, 20.0, 120.0)
    assert (state.last_seq, state.logs, state.completed_count) == (12, 1, 1)
    assert (a.status, a.attempts, a.error, a.outputs, a.result, a.undo) == (
        S.COMPLETED,
        2,
        None,  # a later success clears the attempt's error
        {"o": 1},
        {"r": 2},
        {"u": 3},
    )
    assert (a.read_only, a.started_at, a.finished_at, a.completed_seq) == (True, 30.0, 80.0, 8)
    assert (b.status, b.reason, b.finished_at, b.completed_seq) == (
        S.SKIPPED,
        "condition is false",
        100.0,
        None,
    )
    assert state.current == set()
    assert state.as_dict() == {
        "execution_id": "x1",
        "workflow_id": "wf-1.0.0",
        "status": "completed",
        "priority": 70,
        "dry_run": False,
        "current_step": None,
        "steps_completed": 1,
        "steps": [
            {
                "id": "a",
                "status": "completed",
                "attempts": 2,
                "started_at": "1970-01-01T00:00:30Z",
                "finished_at": "1970-01-01T00:01:20Z",
                "outputs": {"o": 1},
                "error": None,
            },
            {
                "id": "b",
                "status": "skipped",
                "attempts": 0,
                "started_at": "1970-01-01T00:01:30Z",
                "finished_at": "1970-01-01T00:01:40Z",
                "outputs": None,
                "error": None,
                "reason": "condition is false",
            },
        ],
        "started_at": "1970-01-01T00:00:20Z",
        "finished_at": "1970-01-01T00:02:00Z",
        "error": None,
    }


def test_defaults_of_a_created_event() -> None:
    state = reduce(created(Log(), ["a"]).events)
    assert (state.status, state.dry_run, state.priority, state.params) == (
        ExecutionStatus.PENDING,
        False,
        50,
        {},
    )
    assert list(state.steps) == ["a"] and state.steps["a"].status is S.PENDING
    assert state.as_dict()["current_step"] is None and state.as_dict()["started_at"] is None


def test_running_steps_are_current_in_name_order() -> None:
    log = created(Log(), ["b", "a", "c"], dry_run=True).add(E.EXECUTION_STARTED)
    log.add(E.STEP_STARTED, "b").add(E.STEP_STARTED, "a").add(E.STEP_STARTED, "c")
    state = reduce(log.events)
    assert state.dry_run is True and state.status is ExecutionStatus.RUNNING
    assert state.current == {"a", "b", "c"} and state.as_dict()["current_step"] == "a"
    for end in (E.STEP_FAILED, E.STEP_CANCELLED, E.STEP_PLANNED):
        log.add(end, {E.STEP_FAILED: "a", E.STEP_CANCELLED: "b", E.STEP_PLANNED: "c"}[end])
        state = reduce(log.events)
    assert state.current == set()


def test_a_failed_step_keeps_error_reason_and_undo() -> None:
    log = created(Log(), ["a"]).add(E.EXECUTION_STARTED).add(E.STEP_STARTED, "a")
    log.add(E.STEP_FAILED, "a", error="boom", reason="timeout", undo={"k": 1})
    state = reduce(log.events)
    a = state.steps["a"]
    assert (a.status, a.error, a.reason, a.undo, a.finished_at, a.completed_seq) == (
        S.FAILED,
        "boom",
        "timeout",
        {"k": 1},
        40.0,
        4,
    )
    assert state.completed_count == 0
    assert a.as_dict()["reason"] == "timeout"


def test_a_failed_step_without_undo_keeps_the_one_it_had() -> None:
    log = created(Log(), ["a"]).add(E.STEP_STARTED, "a")
    state = reduce(log.events)
    state.steps["a"].undo = {"kept": True}
    state.apply(Event(9, E.STEP_FAILED, 90.0, "a", None, {"error": "e"}))
    assert state.steps["a"].undo == {"kept": True}
    assert state.steps["a"].reason is None


def test_cancelled_step_error_defaults_to_cancelled() -> None:
    log = created(Log(), ["a", "b"]).add(E.STEP_STARTED, "a").add(E.STEP_CANCELLED, "a")
    log.add(E.STEP_STARTED, "b").add(E.STEP_CANCELLED, "b", error="shutdown")
    state = reduce(log.events)
    assert (state.steps["a"].status, state.steps["a"].error, state.steps["a"].finished_at) == (
        S.CANCELLED,
        "cancelled",
        30.0,
    )
    assert state.steps["b"].error == "shutdown"


def test_a_planned_step_records_plan_and_outputs() -> None:
    log = created(Log(), ["a"]).add(E.STEP_STARTED, "a")
    log.add(E.STEP_PLANNED, "a", plan={"summary": "would"}, outputs={"o": 1})
    a = reduce(log.events).steps["a"]
    assert (a.status, a.plan, a.outputs, a.finished_at, a.completed_seq) == (
        S.SIMULATED,
        {"summary": "would"},
        {"o": 1},
        30.0,
        3,
    )


def test_items_are_reduced_on_their_own_records() -> None:
    log = created(Log(), ["w"]).add(E.STEP_STARTED, "w")
    log.add(E.ATTEMPT_STARTED, "w", 0, attempt=1)
    log.add(E.ATTEMPT_FAILED, "w", 0, error="first try")
    log.add(E.ATTEMPT_STARTED, "w", 0, attempt=2)
    log.add(E.ITEM_COMPLETED, "w", 0, outputs={"o": 0}, result={"r": 0})
    log.add(E.ATTEMPT_STARTED, "w", 1, attempt=1)
    log.add(E.ITEM_FAILED, "w", 1, error="bad item")
    log.add(E.ATTEMPT_STARTED, "w", 2)  # no attempt number: counts up
    log.add(E.ATTEMPT_STARTED, "w", 4, attempt=6)  # a number given is taken as it is
    log.add(E.STEP_PLANNED, "w", 3)
    state = reduce(log.events)
    w = state.steps["w"]
    assert w.status is S.RUNNING  # item events never move the step itself
    assert w.attempts == 6  # the most attempts of any item
    items = w.items or {}
    assert (items[0].status, items[0].attempts, items[0].outputs, items[0].result, items[0].error) == (
        S.COMPLETED,
        2,
        {"o": 0},
        {"r": 0},
        None,
    )
    assert (items[1].status, items[1].error) == (S.FAILED, "bad item")
    assert (items[2].status, items[2].attempts, items[2].error, items[2].outputs) == (
        S.RUNNING,
        1,
        None,
        None,
    )
    assert items[3].status is S.SIMULATED
    assert items[4].attempts == 6
    assert [i["index"] for i in w.as_dict()["items"]] == [0, 1, 2, 3, 4]
    assert w.as_dict()["items"][0] == {
        "index": 0,
        "status": "completed",
        "attempts": 2,
        "outputs": {"o": 0},
        "error": None,
    }
    log.add(E.STEP_FAILED, "w", error="1 of 4 items failed")
    log.add(E.ROLLBACK_STARTED)
    log.add(E.COMPENSATION_STARTED, "w")
    log.add(E.COMPENSATION_COMPLETED, "w", 0)
    log.add(E.COMPENSATION_FAILED, "w", 2, error="cannot")
    log.add(E.COMPENSATION_FAILED, "w", error="item 2: cannot")
    state = reduce(log.events)
    w = state.steps["w"]
    items = w.items or {}
    assert state.status is ExecutionStatus.ROLLING_BACK
    assert (items[0].status, items[2].status, items[2].error) == (
        S.COMPENSATED,
        S.COMPENSATION_FAILED,
        "cannot",
    )
    assert (w.status, w.compensation_error) == (S.COMPENSATION_FAILED, "item 2: cannot")
    assert w.as_dict()["compensation_error"] == "item 2: cannot"


def test_the_attempt_counter_follows_the_events() -> None:
    log = created(Log(), ["a"]).add(E.STEP_STARTED, "a")
    log.add(E.ATTEMPT_STARTED, "a").add(E.ATTEMPT_STARTED, "a").add(E.ATTEMPT_STARTED, "a", attempt=7)
    log.add(E.ATTEMPT_FAILED, "a", error="e7")
    a = reduce(log.events).steps["a"]
    assert (a.attempts, a.error) == (7, "e7")


def test_a_step_started_with_its_first_attempt_counts_it() -> None:
    """`step_started` with `attempt: 1` is the step's first attempt too (the runner records a
    plain step's start and first attempt as one event); retries then count on from it."""
    log = created(Log(), ["a", "b"]).add(E.STEP_STARTED, "a", attempt=1).add(E.STEP_STARTED, "b")
    state = reduce(log.events)
    assert (state.steps["a"].attempts, state.steps["b"].attempts) == (1, 0)
    log.add(E.ATTEMPT_FAILED, "a", attempt=1, error="flaky").add(E.ATTEMPT_STARTED, "a")
    a = reduce(log.events).steps["a"]
    assert (a.status, a.attempts, a.error) == (S.RUNNING, 2, "flaky")


def test_rollback_errors_are_joined_to_the_execution_error() -> None:
    log = created(Log(), ["a"]).add(E.EXECUTION_STARTED).add(E.STEP_STARTED, "a")
    log.add(E.STEP_COMPLETED, "a")
    log.add(E.EXECUTION_FINISHED, status="failed", error="step 'b' failed")
    log.add(E.ROLLBACK_STARTED)
    log.add(E.COMPENSATION_STARTED, "a").add(E.COMPENSATION_COMPLETED, "a")
    log.add(E.ROLLBACK_FINISHED, status="rollback_failed", error="rollback incomplete: x")
    log.add(E.EXECUTION_CLOSED, status="rollback_failed", error="ignored: already has one")
    state = reduce(log.events)
    assert state.status is ExecutionStatus.ROLLBACK_FAILED
    assert state.error == "step 'b' failed; rollback incomplete: x"
    assert state.steps["a"].status is S.COMPENSATED
    assert state.finished_at == 100.0  # the closing event (seq 10)


def test_rollback_error_alone_and_closing_error() -> None:
    log = created(Log(), []).add(E.EXECUTION_FINISHED, status="cancelled")
    log.add(E.ROLLBACK_FINISHED, status="rolled_back")
    state = reduce(log.events)
    assert (state.status, state.error, state.finished_at) == (ExecutionStatus.ROLLED_BACK, None, 30.0)
    log.add(E.ROLLBACK_FINISHED, status="rollback_failed", error="r")
    assert reduce(log.events).error == "r"
    closing = created(Log(), []).add(E.EXECUTION_FINISHED, status="completed")
    closing.add(E.EXECUTION_CLOSED, status="failed", error="finally step 'f' failed")
    state = reduce(closing.events)
    assert (state.status, state.error, state.closed, state.finished_at) == (
        ExecutionStatus.FAILED,
        "finally step 'f' failed",
        True,
        30.0,
    )
    bare = created(Log(), []).add(E.EXECUTION_FINISHED, status="failed", error="e").add(E.EXECUTION_CLOSED)
    state = reduce(bare.events)
    assert (state.status, state.error, state.closed) == (ExecutionStatus.FAILED, "e", True)


def test_a_step_unknown_to_the_created_event_gets_a_record() -> None:
    log = created(Log(), []).add(E.STEP_STARTED, "finally_step").add(E.STEP_COMPLETED, "finally_step")
    state = reduce(log.events)
    assert state.steps["finally_step"].status is S.COMPLETED


def test_iso_times() -> None:
    assert iso(None) is None
    assert iso(0.0) == "1970-01-01T00:00:00Z"
    assert iso(1.5) == "1970-01-01T00:00:01.500000Z"


def test_status_names_are_the_wire_format() -> None:
    # These strings are what the API, `wpk run --format json` and the store carry.
    assert [s.value for s in ExecutionStatus] == [
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "rolling_back",
        "rolled_back",
        "rollback_failed",
    ]
    assert [s.value for s in StepStatus] == [
        "pending",
        "running",
        "completed",
        "failed",
        "skipped",
        "cancelled",
        "simulated",
        "compensating",
        "compensated",
        "compensation_failed",
    ]
    assert set(StepStatus) - {S.PENDING, S.RUNNING, S.COMPENSATING} == FINISHED


def test_an_item_seen_first_through_a_failed_attempt_starts_pending_and_empty() -> None:
    log = created(Log(), ["w"]).add(E.STEP_STARTED, "w").add(E.ATTEMPT_FAILED, "w", 4, error="e")
    item = (reduce(log.events).steps["w"].items or {})[4]
    assert (item.index, item.status, item.attempts, item.outputs, item.result, item.error) == (
        4,
        S.PENDING,
        0,
        None,
        None,
        "e",
    )
    assert StepRecord("x").as_dict() == {
        "id": "x",
        "status": "pending",
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "outputs": None,
        "error": None,
    }


def test_a_fresh_record_and_its_defaults() -> None:
    # What `GET /execute/{id}` shows before any event, and what a reducer starts from.
    state = ExecutionState()
    assert (state.execution_id, state.workflow_id, state.status, state.dry_run, state.priority) == (
        "",
        "",
        ExecutionStatus.PENDING,
        False,
        50,
    )
    assert (state.params, state.created_at, state.started_at, state.finished_at, state.error) == (
        {},
        None,
        None,
        None,
        None,
    )
    assert (state.steps, state.current, state.completed_count, state.logs, state.last_seq, state.closed) == (
        {},
        set(),
        0,
        0,
        0,
        False,
    )
    step = StepRecord("x")
    assert (step.status, step.attempts, step.started_at, step.finished_at, step.outputs, step.result) == (
        S.PENDING,
        0,
        None,
        None,
        None,
        None,
    )
    assert (step.error, step.reason, step.completed_seq, step.read_only, step.undo, step.plan) == (
        None,
        None,
        None,
        False,
        None,
        None,
    )
    assert (step.items, step.compensation_error) == (None, None)
    assert state.rollback_plan is None  # no rollback planned or under way
    assert (
        reduce(created(Log(), []).add(E.EXECUTION_FINISHED, status="completed").events).rollback_plan is None
    )
    # slots: a 10,000-step execution holds 10,000 records
    for record in (state, step, ItemRecord(0)):
        assert not hasattr(record, "__dict__")


def test_counters_count_and_defaults_of_a_bare_completion() -> None:
    log = created(Log(), ["a", "b"]).add(E.EXECUTION_STARTED)
    log.add(E.STEP_STARTED, "a").add(E.ATTEMPT_STARTED, "a").add(E.ATTEMPT_STARTED, "a")
    log.add(E.LOG, "a", line="1").add(E.LOG, "a", line="2").add(E.LOG, "a", line="3")
    log.add(E.STEP_COMPLETED, "a").add(E.STEP_STARTED, "b").add(E.STEP_COMPLETED, "b")
    log.add(E.EXECUTION_FINISHED, status="completed")
    state = reduce(log.events)
    assert (state.steps["a"].attempts, state.logs, state.completed_count) == (2, 3, 2)
    assert state.steps["a"].read_only is False  # not said: a write
    assert (state.status, state.finished_at, state.closed) == (ExecutionStatus.COMPLETED, 120.0, False)


def test_a_resumed_compensation_says_how_and_shows_it() -> None:
    """A lost agent's compensation taken over (`compensation_started` with `resumed`) keeps the
    how on the record and in its dict; a plain compensation leaves both without it."""
    log = created(Log(), ["a", "b"]).add(E.STEP_STARTED, "a").add(E.STEP_COMPLETED, "a")
    log.add(E.STEP_STARTED, "b").add(E.STEP_FAILED, "b", error="e")
    log.add(E.ROLLBACK_STARTED, plan=[{"step": "a"}])
    log.add(E.COMPENSATION_STARTED, "a")
    log.add(E.COMPENSATION_STARTED, "a", resumed="ran again: idempotent")  # compensating again
    log.add(E.COMPENSATION_STARTED, "b", resumed="")  # said, but empty: nothing to show
    state = reduce(log.events)
    a, b = state.steps["a"], state.steps["b"]
    assert (a.status, a.compensation_resumed) == (S.COMPENSATING, "ran again: idempotent")
    assert a.as_dict()["compensation_resumed"] == "ran again: idempotent"
    assert (b.status, b.compensation_resumed) == (S.COMPENSATING, None)
    assert "compensation_resumed" not in b.as_dict()
    assert StepRecord("x").compensation_resumed is None
    assert (state.status, state.rollback_plan) == (ExecutionStatus.ROLLING_BACK, [{"step": "a"}])
    log.add(E.COMPENSATION_COMPLETED, "a").add(E.COMPENSATION_FAILED, "b", error="no inverse")
    state = reduce(log.events)
    assert (state.steps["a"].status, state.steps["a"].compensation_resumed) == (
        S.COMPENSATED,
        "ran again: idempotent",
    )
    assert (state.steps["b"].status, state.steps["b"].compensation_error) == (
        S.COMPENSATION_FAILED,
        "no inverse",
    )


def test_items_keep_their_undo_and_reason() -> None:
    """Per-item undo (what compensating that item needs) and reason (why it failed), as a
    resumed rollback reads them; an event without a reason keeps the one the item had."""
    log = created(Log(), ["w"]).add(E.STEP_STARTED, "w")
    log.add(E.ATTEMPT_STARTED, "w", 0, attempt=1)
    log.add(E.ITEM_COMPLETED, "w", 0, outputs={"o": 0}, result={"r": 0}, undo={"delete": "x0"})
    log.add(E.ATTEMPT_STARTED, "w", 1, attempt=1)
    log.add(E.ATTEMPT_FAILED, "w", 1, error="slow", reason="timeout")
    log.add(E.ITEM_FAILED, "w", 1, error="gave up")  # no reason: keeps the attempt's
    log.add(E.ATTEMPT_STARTED, "w", 2, attempt=1)
    log.add(E.ATTEMPT_FAILED, "w", 2, error="e1", reason="first")
    log.add(E.ATTEMPT_FAILED, "w", 2, error="e2")  # no reason: keeps "first"
    log.add(E.ITEM_FAILED, "w", 2, error="e3", reason="agent lost")
    log.add(E.ITEM_COMPLETED, "w", 3)  # bare: nothing to undo
    items = reduce(log.events).steps["w"].items or {}
    assert (items[0].status, items[0].undo, items[0].reason, items[0].result) == (
        S.COMPLETED,
        {"delete": "x0"},
        None,
        {"r": 0},
    )
    assert (items[1].status, items[1].error, items[1].reason, items[1].undo) == (
        S.FAILED,
        "gave up",
        "timeout",
        None,
    )
    assert (items[2].status, items[2].error, items[2].reason) == (S.FAILED, "e3", "agent lost")
    assert (items[3].status, items[3].undo, items[3].outputs, items[3].result) == (
        S.COMPLETED,
        None,
        None,
        None,
    )
    fresh = ItemRecord(7)
    assert (fresh.index, fresh.status, fresh.attempts, fresh.undo, fresh.reason) == (
        7,
        S.PENDING,
        0,
        None,
        None,
    )
    assert fresh.as_dict() == {"index": 7, "status": "pending", "attempts": 0, "outputs": None, "error": None}


def test_a_step_run_again_on_resume_and_plans_kept() -> None:
    """A running step started again (its agent was lost) restarts its clock and takes the new
    attempt number; a completion without a plan keeps the dry-run plan it had, and a finish
    without a rollback plan keeps the one the rollback set."""
    log = created(Log(), ["a"]).add(E.STEP_STARTED, "a", attempt=1)
    log.add(E.STEP_STARTED, "a", attempt=3)  # seq 3, resumed
    state = reduce(log.events)
    a = state.steps["a"]
    assert (a.status, a.attempts, a.started_at, state.current) == (S.RUNNING, 3, 30.0, {"a"})
    a.plan = {"inputs": {"n": 1}}
    state.apply(Event(4, E.STEP_COMPLETED, 40.0, "a", None, {"outputs": {"o": 1}}))
    assert (a.plan, a.outputs, a.undo, a.result) == ({"inputs": {"n": 1}}, {"o": 1}, None, None)
    state.apply(Event(5, E.ROLLBACK_STARTED, 50.0, None, None, {"plan": [{"step": "a"}]}))
    state.apply(Event(6, E.EXECUTION_FINISHED, 60.0, None, None, {"status": "rolled_back"}))
    assert (state.rollback_plan, state.status, state.error) == (
        [{"step": "a"}],
        ExecutionStatus.ROLLED_BACK,
        None,
    )
    dry = created(Log(), ["a"], dry_run=True).add(E.STEP_STARTED, "a")
    dry.add(E.STEP_COMPLETED, "a", plan={"summary": "read"})
    dry.add(E.EXECUTION_FINISHED, status="completed", rollback_plan=[{"step": "a", "would": "undo"}])
    state = reduce(dry.events)
    assert (state.steps["a"].plan, state.rollback_plan, state.last_seq) == (
        {"summary": "read"},
        [{"step": "a", "would": "undo"}],
        4,
    )
