"""Workflow conformance cases: tests/conformance/*.yaml, each a runbook and what must come of it.

The cases pin the rules of DESIGN §5 that a runbook author relies on when a rollout goes wrong:
`for_each` order, fail-fast, `max_failures`, `continue_on_error`, which steps never start and
why, and what rollback undoes. They run on trio's MockClock with the recording adapter, so the
adapter's journal (apply, fail, undo) is exact; tests/test_rollouts.py repeats the essential
ones with real shell processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from recording_adapter import RecordingAdapter, reset
from runbooks import run, workflow

from wpk.adapters import registry
from wpk.engine.events import EventType
from wpk.engine.loader import load_file

CASES_DIR = Path(__file__).parent / "conformance"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in load_file(str(path)).data:
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


@pytest.fixture(autouse=True)
def rec_adapter() -> Iterator[None]:
    registry.register("rec", RecordingAdapter)
    reset()
    yield
    registry.unregister("rec")


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.mark.parametrize("case", _cases())
async def test_case(case: dict[str, Any], autojump_clock: trio.testing.MockClock) -> None:
    journal = reset()
    runner, store = await run(workflow(case["spec"]))
    expect = case["expect"]
    record = runner.state.as_dict()
    steps = {s["id"]: s for s in record["steps"]}
    assert record["status"] == expect["status"], record["error"]
    for step_id, status in expect.get("steps", {}).items():
        assert steps[step_id]["status"] == status, (step_id, steps[step_id])
    for step_id, fragment in expect.get("reasons", {}).items():
        assert fragment in (steps[step_id].get("reason") or ""), (step_id, steps[step_id])
    for step_id, fragment in expect.get("errors", {}).items():
        assert fragment in (steps[step_id]["error"] or ""), (step_id, steps[step_id]["error"])
    for step_id, statuses in expect.get("items", {}).items():
        assert [i["status"] for i in steps[step_id].get("items", [])] == statuses, step_id
    for step_id, outputs in expect.get("outputs", {}).items():
        assert steps[step_id]["outputs"] == outputs, step_id
    if "started" in expect:
        events = await store.events(runner.execution_id)
        started = [
            e.step if e.item is None else f"{e.step}/{e.item}"
            for e in events
            if e.type in (EventType.ATTEMPT_STARTED, EventType.STEP_STARTED) and e.data.get("attempt") == 1
        ]
        assert started == expect["started"]
    if "journal" in expect:
        assert [f"{kind} {label}" for kind, label, _ in journal.entries] == expect["journal"]
