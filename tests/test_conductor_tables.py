"""The conductor's decisions as tables: what starts, what is skipped and why, what is undone.

The conductor does no I/O (the runner carries out its commands), so its rules can be checked
directly: feed it finished steps, compare the commands; build an execution record from events,
compare the compensation plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from recording_adapter import RecordingAdapter
from runbooks import workflow

from wpk.adapters import registry
from wpk.engine.compensation import Undo, UndoKind, plan_rollback
from wpk.engine.conductor import Conductor, SkipStep, StartStep
from wpk.engine.events import Event, EventType
from wpk.engine.state import ExecutionState, StepStatus, reduce

S = StepStatus


@pytest.fixture(autouse=True)
def rec_adapter() -> Iterator[None]:
    registry.register("rec", RecordingAdapter)
    yield
    registry.unregister("rec")


DIAMOND = """
    steps:
      - {id: a, uses: rec.write}
      - {id: b, uses: rec.write, needs: [a]}
      - {id: c, uses: rec.write, needs: [a]}
      - {id: d, uses: rec.write, needs: [b, c]}
      - {id: e, uses: rec.write}
      - {id: tolerant, uses: rec.write, continue_on_error: true}
      - {id: after_tolerant, uses: rec.write, needs: [tolerant]}
"""


def test_initial_commands_start_every_step_without_needs_in_document_order() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.initial() == [StartStep("a"), StartStep("e"), StartStep("tolerant")]
    assert not conductor.done and conductor.finished == 0 and conductor.failures == []


def test_a_step_starts_only_when_every_need_is_finished() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.on_finished("a", S.COMPLETED) == [StartStep("b"), StartStep("c")]
    assert conductor.on_finished("b", S.COMPLETED) == []
    assert conductor.on_finished("c", S.SKIPPED) == [StartStep("d")]  # skipped by `when` counts as finished
    assert conductor.on_finished("d", S.COMPLETED) == []
    assert conductor.failures == [] and conductor.finished == 4 and not conductor.done
    for step in ("e", "tolerant", "after_tolerant"):
        conductor.on_finished(step, S.COMPLETED)
    assert conductor.done


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (S.FAILED, "upstream step 'a' failed"),
        (S.CANCELLED, "upstream step 'a' was cancelled"),
    ],
)
def test_a_failed_or_cancelled_need_skips_the_dependants_all_the_way_down(
    status: StepStatus, reason: str
) -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.on_finished("a", status) == [SkipStep("b", reason), SkipStep("c", reason)]
    assert conductor.on_finished("b", S.SKIPPED) == []
    assert conductor.on_finished("c", S.SKIPPED) == [SkipStep("d", reason)]
    assert conductor.failures == (["a"] if status is S.FAILED else [])
    assert conductor.on_finished("d", S.SKIPPED) == []


def test_one_failed_need_among_several_is_enough_to_skip() -> None:
    conductor = Conductor(workflow(DIAMOND))
    conductor.on_finished("a", S.COMPLETED)
    assert conductor.on_finished("b", S.FAILED) == []
    assert conductor.on_finished("c", S.COMPLETED) == [SkipStep("d", "upstream step 'b' failed")]
    assert conductor.failures == ["b"]


def test_the_first_reason_is_kept() -> None:
    wf = workflow("""
        steps:
          - {id: x, uses: rec.write}
          - {id: y, uses: rec.write}
          - {id: z, uses: rec.write, needs: [x, y]}
    """)
    conductor = Conductor(wf)
    assert conductor.on_finished("x", S.FAILED) == []
    assert conductor.on_finished("y", S.FAILED) == [SkipStep("z", "upstream step 'x' failed")]
    assert conductor.failures == ["x", "y"]


def test_continue_on_error_does_not_block_and_is_not_a_failure() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.on_finished("tolerant", S.FAILED) == [StartStep("after_tolerant")]
    assert conductor.failures == []


def test_a_skipped_step_that_was_not_blocked_does_not_block() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.on_finished("a", S.SKIPPED) == [StartStep("b"), StartStep("c")]


def test_pending_lists_the_steps_that_never_started() -> None:
    wf = workflow(DIAMOND)
    state = ExecutionState()
    for step in wf.steps:
        state.step(step.id)
    state.steps["a"].status = S.COMPLETED
    state.steps["e"].status = S.RUNNING
    assert Conductor(wf).pending(state) == ["b", "c", "d", "tolerant", "after_tolerant"]


# -- the compensation plan -----------------------------------------------------------------

PLAN_RUNBOOK = """
    steps:
      - {id: w1, uses: rec.write}
      - {id: w2, uses: rec.write}
      - {id: body, uses: rec.read, rollback: {uses: rec.write}}
      - {id: one, uses: rec.oneway}
      - {id: harmless, uses: rec.oneway, dry_run: execute}
      - {id: none, uses: rec.write, rollback: none}
      - {id: reader, uses: rec.read}
      - {id: loop, uses: rec.write, for_each: [0, 1, 2, 3]}
      - {id: never, uses: rec.write}
"""


class Log:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, type_: EventType, step: str | None = None, item: int | None = None, **data: Any) -> Log:
        self.events.append(Event(len(self.events) + 1, type_, 0.0, step, item, data))
        return self

    def completed(self, step: str, **data: Any) -> Log:
        return self.add(EventType.STEP_STARTED, step).add(EventType.STEP_COMPLETED, step, **data)


def _words(step: Any, kind: UndoKind, item: int | None) -> str:
    call = step.rollback_body if kind is UndoKind.BODY else step.call
    return f"{kind} {call.uses}"


def undo_plan(wf: Any, state: ExecutionState, **kw: Any) -> list[tuple[str, str, int | None]]:
    """The acting entries of the rollback plan: (step, kind, item), in the order they are done."""
    return [(u.step, str(u.kind), u.item) for u in plan_rollback(wf, state, _words, **kw) if u.acts]


INV, BODY, IMP = "inverse", "body", "impossible"


def test_the_plan_undoes_in_reverse_completion_order_with_the_right_kind() -> None:
    wf = workflow(PLAN_RUNBOOK)
    log = Log()
    for step in ("w2", "one", "harmless", "none", "body", "w1"):
        log.completed(step)
    log.completed("reader", read_only=True)
    state = reduce(log.events)
    assert undo_plan(wf, state) == [
        ("w1", INV, None),
        ("body", BODY, None),
        ("one", IMP, None),
        ("w2", INV, None),
    ]  # harmless (dry_run: execute), none, reader (a read) and never (not run) do nothing
    nothing = {u.step: u.action for u in plan_rollback(wf, state, _words) if not u.acts}
    assert nothing == {
        "harmless": "nothing to undo: `dry_run: execute` declares it harmless",
        "none": "nothing to undo: the step says `rollback: none`",
        "reader": "nothing to undo: read-only",
    }


def test_a_write_that_turned_out_read_only_is_not_undone() -> None:
    wf = workflow(PLAN_RUNBOOK)
    state = reduce(Log().completed("w1", read_only=True).completed("w2").events)
    assert undo_plan(wf, state) == [("w2", INV, None)]


def test_items_to_undo_are_the_completed_ones_last_index_first() -> None:
    wf = workflow(PLAN_RUNBOOK)
    log = Log().add(EventType.STEP_STARTED, "loop")
    for item in (2, 0, 3):
        log.add(EventType.ITEM_COMPLETED, "loop", item)
    log.add(EventType.ITEM_FAILED, "loop", 1, error="x")
    log.add(EventType.STEP_FAILED, "loop", error="1 of 4 items failed")
    assert undo_plan(wf, reduce(log.events)) == [("loop", INV, 3), ("loop", INV, 2), ("loop", INV, 0)]


def test_a_failed_step_without_completed_items_is_not_undone() -> None:
    wf = workflow(PLAN_RUNBOOK)
    log = Log().add(EventType.STEP_STARTED, "w1").add(EventType.STEP_FAILED, "w1", error="x")
    log.add(EventType.STEP_STARTED, "loop").add(EventType.ITEM_FAILED, "loop", 0, error="x")
    log.add(EventType.STEP_FAILED, "loop", error="all failed")
    assert undo_plan(wf, reduce(log.events)) == []


def test_compensated_steps_are_left_out_and_other_statuses_can_be_asked_for() -> None:
    wf = workflow(PLAN_RUNBOOK)
    log = Log().completed("w1").completed("w2")
    log.add(EventType.COMPENSATION_STARTED, "w2").add(EventType.COMPENSATION_COMPLETED, "w2")
    log.add(EventType.STEP_STARTED, "body").add(EventType.STEP_PLANNED, "body", plan={})
    state = reduce(log.events)
    assert undo_plan(wf, state) == [("w1", INV, None)]
    assert undo_plan(wf, state, statuses=(S.COMPLETED, S.SIMULATED)) == [
        ("body", BODY, None),
        ("w1", INV, None),
    ]


def test_each_undo_says_what_it_does() -> None:
    wf = workflow(PLAN_RUNBOOK)
    state = reduce(Log().completed("w1").completed("body").completed("one").events)
    texts = [u.text() for u in plan_rollback(wf, state, _words)]
    assert texts == [
        "one: cannot undo rec.oneway: it has no automatic inverse and the step has no `rollback:` body "
        "(the execution ends rollback_failed)",
        "body: body rec.write",
        "w1: inverse rec.write",
    ]
    assert [k.value for k in UndoKind] == ["body", "inverse", "impossible", "nothing", "rollback-step"]


def test_commands_and_compensations_are_immutable_values() -> None:
    import dataclasses

    values = [StartStep("a"), SkipStep("b", "why")]
    assert len(set(values + [StartStep("a")])) == 2  # hashable, equal by value
    for value in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.step_id = "other"  # type: ignore[misc]
        assert not hasattr(value, "__dict__")
    undo = Undo(step="c", kind=UndoKind.BODY, action="run x", item=1)
    assert undo == Undo(step="c", kind=UndoKind.BODY, action="run x", item=1) and hash(undo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        undo.step = "other"  # type: ignore[misc]
    assert not hasattr(undo, "__dict__")
    assert not hasattr(Conductor(workflow(DIAMOND)), "__dict__")


# fail_fast: (the default) the first failure halts new work; `fail_fast: false` lets it go on
HALTED = "not started: the run failed at step 'e' (fail_fast)"


def test_fail_fast_halts_new_work_at_the_first_failure_and_names_it() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.stop_reason() is None
    assert conductor.on_finished("a", S.COMPLETED) == [StartStep("b"), StartStep("c")]
    assert conductor.on_finished("e", S.FAILED) == []
    assert conductor.stop_reason() == HALTED
    assert conductor.on_finished("b", S.FAILED) == []  # a later failure does not take over
    assert conductor.stop_reason() == HALTED
    assert conductor.on_finished("c", S.COMPLETED) == [SkipStep("d", "upstream step 'b' failed")]
    assert conductor.on_finished("tolerant", S.COMPLETED) == [SkipStep("after_tolerant", HALTED)]
    assert conductor.failures == ["e", "b"]


def test_a_tolerated_failure_does_not_halt_and_a_failure_is_counted_once() -> None:
    conductor = Conductor(workflow(DIAMOND))
    assert conductor.on_finished("tolerant", S.FAILED) == [StartStep("after_tolerant")]
    assert conductor.stop_reason() is None
    conductor.failed("e")
    conductor.failed("e")  # a rollout past max_failures, then the step's own end
    assert conductor.failures == ["e"] and conductor.stop_reason() == HALTED


def test_without_fail_fast_the_run_goes_on_after_a_failure() -> None:
    conductor = Conductor(workflow("\n    fail_fast: false" + DIAMOND))
    conductor.on_finished("a", S.COMPLETED)
    assert conductor.on_finished("e", S.FAILED) == []
    assert conductor.stop_reason() is None
    assert conductor.on_finished("tolerant", S.COMPLETED) == [StartStep("after_tolerant")]
    assert conductor.failures == ["e"]
