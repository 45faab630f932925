"""Resume at the runner level: a run's recorded events cut at a crash point, replayed into a new
runner (as an agent taking the execution over does), with real adapters and side effects in files.

Covers the rules of docs/stores.md "Crash recovery" that the process-level tests
(tests/test_crash_recovery.py, tests/test_crash_faults.py) do not pin one by one: redacted
outputs read again or refused, a resumed rollback that skips what was compensated, and a
compensation under way that fails as "agent lost".
"""

from __future__ import annotations

from pathlib import Path

from runbooks import workflow

from wpk.engine import MemoryStore, Runner, RunOptions
from wpk.engine.events import Event, EventType
from wpk.engine.resume import LOST_COMPENSATION_ERROR, REDACTED_INPUT_ERROR

SECRET = "s3cret-value-42"


async def _record(wf_text: str, params: dict[str, str], secrets: dict[str, str]) -> list[Event]:
    store = MemoryStore()
    runner = Runner(workflow(wf_text), params=params, secrets=secrets, store=store, options=RunOptions())
    await runner.run()
    return await store.events(runner.execution_id)


def _cut(events: list[Event], after: EventType, step: str) -> list[Event]:
    """The events up to and including the first `after` event of `step`: what a crash left."""
    for i, e in enumerate(events):
        if e.type is after and e.step == step and e.item is None:
            return events[: i + 1]
    raise AssertionError(f"no {after} for {step}")


async def _resume(
    wf_text: str, history: list[Event], params: dict[str, str], secrets: dict[str, str]
) -> Runner:
    store = MemoryStore()
    for e in history:
        store.append("x", e)
    eid = str(history[0].data["execution_id"])
    runner = Runner(
        workflow(wf_text), params=params, secrets=secrets, store=store,
        options=RunOptions(execution_id=eid, history=history),
    )  # fmt: skip
    await runner.run()
    return runner


READ_THEN_WRITE = """
    secrets: [token]
    params:
      file: {type: string}
    steps:
      - id: produce
        uses: %s
        with: %s
        outputs: {said: "%s"}
      - id: use
        needs: [produce]
        uses: shell.run
        with: {command: "echo {{ steps.produce.outputs.said }} >> {{ params.file }}"}
        rollback: none
"""
READ_ONLY = READ_THEN_WRITE % ("core.echo", '{message: "{{ secrets.token }}"}', "{{ result.message }}")
WRITES = (
    READ_THEN_WRITE
    % (
        "shell.run",
        '{command: "echo {{ secrets.token }}"}',
        "{{ result.stdout | trim }}",
    )
    + "        # produce writes (shell.run): it may not run again\n"
)


async def test_a_redacted_output_of_a_read_only_step_is_read_again(tmp_path: Path) -> None:
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    events = await _record(READ_ONLY, params, secrets)
    history = _cut(events, EventType.STEP_COMPLETED, "produce")
    assert SECRET not in str([e.data for e in history])  # the store never had it
    (tmp_path / "out").unlink()
    runner = await _resume(READ_ONLY, history, params, secrets)
    assert runner.state.status == "completed"
    assert (tmp_path / "out").read_text().strip() == SECRET  # the real value, not ***


async def test_a_redacted_output_of_a_writing_step_fails_its_dependent_with_the_reason(
    tmp_path: Path,
) -> None:
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    events = await _record(WRITES, params, secrets)
    history = _cut(events, EventType.STEP_COMPLETED, "produce")
    (tmp_path / "out").unlink()
    runner = await _resume(WRITES, history, params, secrets)
    use = runner.state.step("use")
    assert use.status == "failed" and use.error == REDACTED_INPUT_ERROR
    assert not (tmp_path / "out").exists()


UNDO = """
    params:
      dir: {type: string}
    steps:
%s
      - id: boom
        needs: [c]
        uses: core.fail
        with: {message: on purpose}
"""
STEPS = "".join(
    f"""      - id: {s}
        {f"needs: [{p}]" if p else ""}
        uses: shell.run
        with: {{command: "echo run >> {{{{ params.dir }}}}/{s}"}}
        rollback:
          uses: shell.run
          with: {{command: "echo undo >> {{{{ params.dir }}}}/{s}_undo"}}
"""
    for s, p in (("a", ""), ("b", "a"), ("c", "b"))
)


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def test_a_resumed_rollback_skips_what_was_compensated(tmp_path: Path) -> None:
    params = {"dir": str(tmp_path)}
    text = UNDO % STEPS
    events = await _record(text, params, {})
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [1, 1, 1]
    history = _cut(events, EventType.COMPENSATION_COMPLETED, "c")  # c undone, then the crash
    runner = await _resume(text, history, params, {})
    assert runner.state.status == "rolled_back"
    assert [_count(tmp_path / s) for s in "abc"] == [1, 1, 1]  # no step ran again
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [2, 2, 1]  # c was not undone twice


async def test_a_compensation_under_way_at_the_crash_fails_as_agent_lost(tmp_path: Path) -> None:
    params = {"dir": str(tmp_path)}
    text = UNDO % STEPS
    events = await _record(text, params, {})
    history = _cut(events, EventType.COMPENSATION_STARTED, "b")
    runner = await _resume(text, history, params, {})
    assert runner.state.status == "rollback_failed"
    b = runner.state.step("b")
    assert b.status == "compensation_failed" and b.compensation_error == LOST_COMPENSATION_ERROR
    # the recording undid everything once; the resume: c done before the crash, b lost, a undone
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [2, 1, 1]
