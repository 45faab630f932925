"""The compiled model: durations, the backoff ceiling, defaults and the DAG, as tables.

docs/format.md gives the duration grammar, the retry fields and their defaults, and which step
fields `spec.defaults` supplies; these rows pin each of them on the compiled `Workflow`.
"""

from __future__ import annotations

from typing import Any

import pytest
from runbooks import workflow

from wpk.engine.model import (
    DEFAULT_CONCURRENCY,
    RetryPolicy,
    RollbackMode,
    StepKind,
    parse_duration,
    topological_order,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("0ms", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("90", 90.0),
        (" 7s ", 7.0),
        (90, 90.0),
        (0, 0.0),
        (1.5, 1.5),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    value = parse_duration(text)
    assert value == seconds and isinstance(value, float)


@pytest.mark.parametrize(
    "text", ["1.5m", "5 minutes", "1d", "-5s", "", "ms", "s", "m5", True, False, None, "5sm"]
)
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"not a duration: {text!r}"


class Ceiling:
    """A random source that always draws the top of its range: `delay` then shows the ceiling."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b


@pytest.mark.parametrize(
    ("policy", "ceilings"),
    [
        (RetryPolicy(), [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        (RetryPolicy(backoff=10, factor=3, max_backoff=50), [10.0, 30.0, 50.0, 50.0]),
        (RetryPolicy(backoff=0.5, factor=1, max_backoff=30), [0.5, 0.5, 0.5]),
        (RetryPolicy(backoff=120, factor=2, max_backoff=60), [60.0, 60.0]),
        (RetryPolicy(backoff=2, factor=1.5, max_backoff=100), [2.0, 3.0, 4.5, 6.75]),
    ],
)
def test_backoff_ceiling_after_each_failed_attempt(policy: RetryPolicy, ceilings: list[float]) -> None:
    rng = Ceiling()
    got = [policy.delay(attempt, rng) for attempt in range(1, len(ceilings) + 1)]  # type: ignore[arg-type]
    assert got == pytest.approx(ceilings)
    assert all(a == 0.0 for a, _ in rng.calls)  # full jitter: from zero


def test_attempt_zero_is_treated_as_the_first() -> None:
    assert RetryPolicy(backoff=3).delay(0, Ceiling()) == 3.0  # type: ignore[arg-type]


def test_retry_policy_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(attempts=1, backoff=1.0, factor=2.0, max_backoff=30.0)


def test_spec_fields_and_their_defaults() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: core.noop}
    """)
    assert (wf.name, wf.version, wf.workflow_id, wf.description) == ("t", "1.0.0", "t-1.0.0", "")
    assert (wf.priority, wf.concurrency, wf.timeout, wf.rollback_enabled) == (
        50,
        DEFAULT_CONCURRENCY,
        None,
        True,
    )
    assert DEFAULT_CONCURRENCY == 8
    assert (wf.rollback_timeout, wf.placement, wf.secrets, dict(wf.params)) == (600.0, {}, (), {})
    a = wf.step("a")
    assert (a.kind, a.needs, a.when, a.for_each, a.timeout, a.concurrency) == (
        StepKind.MAIN,
        (),
        None,
        None,
        None,
        None,
    )
    assert (a.retries, a.continue_on_error, dict(a.outputs)) == (RetryPolicy(), False, {})
    assert (a.rollback_mode, a.rollback_body, a.dry_run, a.idempotent, a.description) == (
        RollbackMode.AUTO,
        None,
        None,
        False,
        "",
    )
    assert (a.call.uses, a.call.adapter, a.call.action, dict(a.call.inputs), a.call.templated) == (
        "core.noop",
        "core",
        "noop",
        {},
        False,
    )
    assert (a.max_failures, a.timeout_template) == (None, None)
    assert a.line == 7  # the runbook's line (the body starts on line 6 with a blank line)


def test_every_spec_field_is_compiled() -> None:
    wf = workflow("""
        params: {n: {type: integer, default: 1}}
        secrets: [tok]
        priority: 90
        placement: {labels: {zone: a}}
        concurrency: 3
        timeout: 2m
        defaults:
          timeout: 5s
          continue_on_error: true
          retries: {attempts: 3, backoff: 2s, factor: 4, max_backoff: 1m}
        steps:
          - id: a
            uses: core.echo
            with: {message: "{{ params.n }}"}
            description: first
          - id: b
            needs: [a]
            uses: core.echo
            with: {message: hi}
            when: "{{ params.n > 0 }}"
            for_each: [1, 2]
            concurrency: 2
            timeout: 30s
            retries: {attempts: 5}
            continue_on_error: false
            outputs: {m: "{{ result.message }}"}
            rollback:
              uses: core.echo
              with: {message: "undo {{ item }}"}
              timeout: 1s
              retries: {attempts: 2, backoff: 3s}
            dry_run: execute
            idempotent: true
        rollback:
          enabled: false
          timeout: 90s
          steps:
            - {id: r, uses: core.noop}
        finally:
          - {id: f, uses: core.noop, timeout: 9s}
    """)
    assert (wf.priority, wf.concurrency, wf.timeout) == (90, 3, 120.0)
    assert (wf.placement, wf.secrets, dict(wf.params)) == (
        {"zone": "a"},
        ("tok",),
        {"n": {"type": "integer", "default": 1}},
    )
    assert (wf.rollback_enabled, wf.rollback_timeout) == (False, 90.0)
    assert [s.id for s in wf.rollback_steps] == ["r"] and wf.rollback_steps[0].kind is StepKind.ROLLBACK
    assert [s.id for s in wf.finally_steps] == ["f"] and wf.finally_steps[0].kind is StepKind.FINALLY
    assert wf.step("f").timeout == 9.0 and wf.step("r").timeout == 5.0  # defaults reach them too
    assert set(wf.by_id) == {"a", "b", "r", "f"}
    a, b = wf.step("a"), wf.step("b")
    assert (a.timeout, a.continue_on_error, a.description, a.call.templated) == (5.0, True, "first", True)
    assert a.retries == RetryPolicy(attempts=3, backoff=2.0, factor=4.0, max_backoff=60.0)
    # a step's own retries start from the defaults: only `attempts` is overridden here
    assert b.retries == RetryPolicy(attempts=5, backoff=2.0, factor=4.0, max_backoff=60.0)
    assert (b.needs, b.when, b.for_each, b.concurrency, b.timeout) == (
        ("a",),
        "{{ params.n > 0 }}",
        [1, 2],
        2,
        30.0,
    )
    assert (b.continue_on_error, dict(b.outputs), b.dry_run, b.idempotent) == (
        False,
        {"m": "{{ result.message }}"},
        "execute",
        True,
    )
    assert b.call.templated is False
    assert b.rollback_mode is RollbackMode.BODY and b.rollback_body is not None
    body = b.rollback_body
    assert (body.uses, dict(body.inputs), body.templated, body.timeout) == (
        "core.echo",
        {"message": "undo {{ item }}"},
        True,
        1.0,
    )
    assert body.retries == RetryPolicy(attempts=2, backoff=3.0)
    assert wf.successors == {"a": ("b",), "b": ()}


def test_rollback_modes_and_a_body_without_its_own_policy() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: core.noop, rollback: none}
          - {id: b, uses: core.noop, rollback: auto}
          - {id: c, uses: core.noop, rollback: {uses: core.noop}}
    """)
    assert [wf.step(s).rollback_mode for s in "abc"] == [
        RollbackMode.NONE,
        RollbackMode.AUTO,
        RollbackMode.BODY,
    ]
    body = wf.step("c").rollback_body
    assert body is not None and (body.timeout, body.retries, dict(body.inputs), body.templated) == (
        None,
        None,
        {},
        False,
    )


def test_the_dag_is_ordered_stably_in_document_order() -> None:
    wf = workflow("""
        steps:
          - {id: d, uses: core.noop, needs: [b, c]}
          - {id: c, uses: core.noop, needs: [a]}
          - {id: b, uses: core.noop, needs: [a]}
          - {id: a, uses: core.noop}
          - {id: e, uses: core.noop}
    """)
    assert wf.order == ("a", "e", "c", "b", "d")
    assert wf.successors == {"d": (), "c": ("d",), "b": ("d",), "a": ("c", "b"), "e": ()}
    assert [s.line for s in wf.steps] == [7, 8, 9, 10, 11]


def test_topological_order_refuses_a_cycle() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: core.noop}
          - {id: b, uses: core.noop, needs: [a]}
    """)
    from dataclasses import replace

    looped = (replace(wf.step("a"), needs=("b",)), wf.step("b"))
    with pytest.raises(ValueError) as info:
        topological_order(looped)
    assert str(info.value) == "dependency cycle"
    assert topological_order(wf.steps) == ("a", "b")


@pytest.mark.parametrize(
    ("inputs", "templated"),
    [
        ('{message: "{{ params.x }}"}', True),
        ('{message: {a: {b: ["x", "{{ params.x }}"]}}}', True),
        ('{message: [1, ["{{ params.x }}"]]}', True),
        ('{message: {a: [1, {b: "plain {x}"}], c: 2}}', False),
        ('{message: "${#arr[@]} {x}"}', False),
    ],
)
def test_a_call_is_templated_when_any_nested_value_is(inputs: str, templated: bool) -> None:
    wf = workflow(f"""
        params: {{x: {{type: string, default: v}}}}
        steps:
          - {{id: a, uses: core.echo, with: {inputs}, rollback: {{uses: core.echo, with: {inputs}}}}}
    """)
    step = wf.step("a")
    assert step.call.templated is templated
    assert step.rollback_body is not None and step.rollback_body.templated is templated


def test_enum_values_are_the_runbook_words() -> None:
    assert [k.value for k in StepKind] == ["main", "finally", "rollback"]
    assert [m.value for m in RollbackMode] == ["auto", "none", "body"]


def test_defaults_of_the_model_classes() -> None:
    from wpk.engine.model import ActionCall, Step

    call = ActionCall(uses="core.noop", inputs={})
    assert (call.timeout, call.retries, call.templated) == (None, None, True)
    step = Step(id="x", kind=StepKind.MAIN, call=call)
    assert (step.needs, step.when, step.for_each, step.concurrency, step.timeout) == (
        (),
        None,
        None,
        None,
        None,
    )
    assert (step.retries, step.continue_on_error, dict(step.outputs)) == (RetryPolicy(), False, {})
    assert (step.rollback_mode, step.rollback_body, step.dry_run, step.idempotent) == (
        RollbackMode.AUTO,
        None,
        None,
        False,
    )
    assert (step.description, step.line, step.max_failures, step.timeout_template, dict(step.where)) == (
        "",
        0,
        None,
        None,
        {},
    )
    wf = workflow("""
        steps:
          - {id: a, uses: core.noop}
    """)
    assert wf.source == "t.yaml"


def test_model_objects_are_immutable_keyword_only_values() -> None:
    import dataclasses

    from wpk.engine.model import ActionCall, Step, Workflow

    wf = workflow("""
        steps:
          - {id: a, uses: core.noop}
    """)
    call = ActionCall(uses="core.noop", inputs={})
    objects = [
        (RetryPolicy(), "attempts"),
        (call, "uses"),
        (Step(id="x", kind=StepKind.MAIN, call=call), "id"),
        (wf, "name"),
    ]
    for obj, name in objects:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, "y")
        assert not hasattr(obj, "__dict__")
    assert len({RetryPolicy(), RetryPolicy(attempts=1)}) == 1
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ActionCall("core.noop", {})  # type: ignore[misc]
    with pytest.raises(TypeError):
        Step("x", StepKind.MAIN, call)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Workflow("t", "1.0.0")  # type: ignore[misc]
    assert {f.name: f.default for f in dataclasses.fields(Workflow)}["source"] == ""


def test_every_template_is_parsed_when_the_workflow_is_compiled() -> None:
    from wpk.engine import compile_workflow
    from wpk.engine.expressions import compile_template
    from wpk.engine.validate import validate_text

    text = (
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"
        "  params: {x: {type: string, default: a}}\n  steps:\n"
        "    - id: a\n      uses: core.echo\n"
        "      with: {message: {k: ['{{ params.x ~ \"m1\" }}']}}\n"
        "      when: '{{ params.x ~ \"m2\" }}'\n"
        "      rollback: {uses: core.echo, with: {message: '{{ params.x ~ \"m3\" }}'}}\n"
    )
    doc = validate_text(text, "t.yaml").doc
    assert doc is not None
    compile_template.cache_clear()
    compile_workflow(doc)
    assert compile_template.cache_info().currsize == 3  # parsed now, never during a run


def test_line_numbers_and_description_of_every_kind_of_step() -> None:
    from wpk.engine import compile_workflow
    from wpk.engine.validate import validate_text

    text = (
        "apiVersion: wpk/v1\nkind: Runbook\n"
        "metadata: {name: t, version: 1.0.0, description: Restart things}\n"
        "spec:\n  steps:\n    - {id: a, uses: core.noop}\n"
        "  rollback:\n    steps:\n      - {id: r, uses: core.noop}\n"
        "  finally:\n    - {id: f, uses: core.noop}\n"
    )
    doc = validate_text(text, "t.yaml").doc
    assert doc is not None
    wf = compile_workflow(doc)
    assert wf.description == "Restart things"
    assert [(s.id, s.line) for s in (*wf.steps, *wf.rollback_steps, *wf.finally_steps)] == [
        ("a", 6),
        ("r", 9),
        ("f", 11),
    ]


# -- for_each failure budgets (docs/format.md, `max_failures`) --------------------------------


@pytest.mark.parametrize(
    ("raw", "items", "tolerated", "described"),
    [
        (2, 10, 2, "2"),
        (0, 10, 0, "0"),
        ("25%", 10, 2, "25%"),
        ("25%", 7, 1, "25%"),  # 1.75 items: rounded down
        ("50%", 3, 1, "50%"),
        ("1%", 100, 1, "1%"),  # exactly one item of a hundred
        ("1%", 99, 0, "1%"),
        ("100%", 4, 4, "100%"),
        ("12.5%", 8, 1, "12.5%"),
        ("0%", 5, 0, "0%"),
    ],
)
def test_a_failure_budget_as_compiled_and_as_shown(
    raw: int | str, items: int, tolerated: int, described: str
) -> None:
    from wpk.engine.model import FailureBudget

    written = raw if isinstance(raw, int) else repr(raw)
    wf = workflow(f"""
        steps:
          - {{id: a, uses: core.noop, for_each: [1], max_failures: {written}}}
    """)
    budget = wf.step("a").max_failures
    assert budget is not None
    expected = FailureBudget(percent=float(raw[:-1])) if isinstance(raw, str) else FailureBudget(count=raw)
    assert budget == expected
    assert (budget.tolerated(items), budget.describe()) == (tolerated, described)
    step = wf.step("a")
    # an explicit budget applies whatever fail_fast and continue_on_error say
    assert step.item_stop_after(items, fail_fast=True) == tolerated
    assert step.item_stop_after(items, fail_fast=False) == tolerated
    assert step.item_failures_tolerated(items) == tolerated


def test_a_failure_budget_is_an_immutable_keyword_only_value() -> None:
    import dataclasses

    from wpk.engine.model import FailureBudget

    assert (FailureBudget().count, FailureBudget().percent) == (None, None)
    assert FailureBudget().tolerated(10) == 0 and FailureBudget(count=0).tolerated(10) == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        FailureBudget(count=1).count = 2  # type: ignore[misc]
    assert not hasattr(FailureBudget(count=1), "__dict__")
    with pytest.raises(TypeError):
        FailureBudget(1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("step_fields", "fail_fast", "stop_after"),
    [
        ("", True, 0),  # fail fast: the first failed item stops the rollout
        ("", False, None),  # fail_fast: false keeps every item going
        (", continue_on_error: true", True, None),
        (", continue_on_error: true", False, None),
        (", max_failures: 3", True, 3),
        (", max_failures: 3, continue_on_error: true", False, 3),
    ],
)
def test_when_a_rollout_stops_starting_items(
    step_fields: str, fail_fast: bool, stop_after: int | None
) -> None:
    wf = workflow(f"""
        steps:
          - {{id: a, uses: core.noop, for_each: [1, 2, 3, 4, 5]{step_fields}}}
    """)
    step = wf.step("a")
    assert step.item_stop_after(5, fail_fast=fail_fast) == stop_after
    # without max_failures no failed item leaves the step completed
    assert step.item_failures_tolerated(5) == (3 if "max_failures" in step_fields else 0)


@pytest.mark.parametrize(
    ("line", "fail_fast"), [("", True), ("fail_fast: true", True), ("fail_fast: false", False)]
)
def test_fail_fast_is_on_unless_the_runbook_turns_it_off(line: str, fail_fast: bool) -> None:
    wf = workflow(f"""
        {line}
        steps:
          - {{id: a, uses: core.noop}}
    """)
    assert wf.fail_fast is fail_fast


def test_where_points_at_each_field_a_run_can_fail_on() -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: core.echo
            when: "{{ true }}"
            for_each: [1, 2]
            timeout: 5s
            with:
              message: hi
            outputs:
              m: "{{ result.message }}"
          - {id: b, uses: core.noop}
        finally:
          - {id: f, uses: core.echo, with: {message: bye}}
    """)
    assert dict(wf.step("a").where) == {
        "when": "t.yaml:9:13",
        "for_each": "t.yaml:10:17",
        "timeout": "t.yaml:11:16",
        "with": "t.yaml:13:9",
        "with.message": "t.yaml:13:18",
        "outputs.m": "t.yaml:15:12",
    }
    assert dict(wf.step("b").where) == {}
    assert dict(wf.step("f").where) == {"with": "t.yaml:18:38", "with.message": "t.yaml:18:48"}
