"""Hand-over at the runner level (`Runner.abandon`, what `wpk serve` does to the executions still
running when its grace period after SIGTERM runs out): the run stops as if its agent had
vanished, cleanly. Its running steps are cancelled (their processes end), then nothing more is
recorded or done: no cancel, no rollback, no `finally`, no final state; each step left running
says why. An agent that resumes the recorded events treats such a step exactly as a lost one
(DESIGN §5). Side effects are counted in files. The real-process scenarios (two `wpk serve`
agents, SQLite and the ArangoDB double) are in tests/test_agents_handover.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio
from runbooks import workflow

from wpk.engine import MemoryStore, Runner, RunOptions
from wpk.engine.events import Event, EventType
from wpk.engine.resume import LOST_COMPENSATION_ERROR, LOST_STEP_ERROR

REASON = "handed over: agent A shut down before this step finished"

MAIN = """
    params:
      dir: {type: string}
    steps:
      - id: first
        uses: shell.run
        with: {command: "echo run >> {{ params.dir }}/first"}
        rollback:
          uses: shell.run
          with: {command: "echo undo >> {{ params.dir }}/first_undo"}
      - id: long
        needs: [first]
        uses: shell.run
        with:
          command: >-
            echo $$ > {{ params.dir }}/long_pid; echo run >> {{ params.dir }}/long;
            [ "$(wc -l < {{ params.dir }}/long)" -gt 1 ] || sleep 60
        rollback:
          uses: shell.run
          with: {command: "echo undo >> {{ params.dir }}/long_undo"}
    finally:
      - id: tidy
        uses: shell.run
        with: {command: "echo run >> {{ params.dir }}/tidy"}
"""
IDEMPOTENT = MAIN.replace("        needs: [first]\n", "        needs: [first]\n        idempotent: true\n")

IN_ROLLBACK = """
    params:
      dir: {type: string}
    steps:
      - id: a
        uses: shell.run
        with: {command: "echo run >> {{ params.dir }}/a"}
        rollback:
          uses: shell.run
          with:
            command: >-
              echo undo >> {{ params.dir }}/a_undo_started;
              [ "$(wc -l < {{ params.dir }}/a_undo_started)" -gt 1 ] || sleep 60;
              echo undo >> {{ params.dir }}/a_undone
      - id: boom
        needs: [a]
        uses: core.fail
        with: {message: on purpose}
"""


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _run_then_abandon(text: str, tmp_path: Path, started: Path) -> tuple[list[Event], str]:
    """Run `text` until the file `started` appears, then abandon it; the events it recorded."""
    store = MemoryStore()
    runner = Runner(workflow(text), params={"dir": str(tmp_path)}, secrets={}, store=store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner.run)
        while not started.exists():
            await trio.sleep(0.02)
        runner.abandon(REASON)
    return await store.events(runner.execution_id), runner.execution_id


async def _resume(text: str, tmp_path: Path, history: list[Event], eid: str) -> Runner:
    """What an agent taking the execution over does: replay the events into a new runner."""
    store = MemoryStore()
    for e in history:
        store.append(eid, e)
    runner = Runner(
        workflow(text), params={"dir": str(tmp_path)}, secrets={}, store=store,
        options=RunOptions(execution_id=eid, history=history),
    )  # fmt: skip
    await runner.run()
    return runner


async def test_an_abandoned_run_stops_as_if_its_agent_vanished(tmp_path: Path) -> None:
    events, _ = await _run_then_abandon(MAIN, tmp_path, tmp_path / "long_pid")
    types = [e.type for e in events]
    for never in (
        EventType.STEP_CANCELLED,
        EventType.EXECUTION_FINISHED,
        EventType.ROLLBACK_STARTED,
        EventType.EXECUTION_CLOSED,
    ):
        assert never not in types, never
    assert types[-1] is EventType.ATTEMPT_FAILED  # the last word: why `long` stays running
    last = events[-1]
    assert last.step == "long" and last.data["error"] == REASON and last.data["reason"] == "handed_over"
    assert not _alive(int((tmp_path / "long_pid").read_text()))  # the step's process ended
    assert _count(tmp_path / "first_undo") == 0  # no rollback
    assert _count(tmp_path / "tidy") == 0  # no finally either


async def test_a_handed_over_write_is_not_run_again_and_the_rest_is_rolled_back(tmp_path: Path) -> None:
    events, eid = await _run_then_abandon(MAIN, tmp_path, tmp_path / "long_pid")
    runner = await _resume(MAIN, tmp_path, events, eid)
    long = runner.state.step("long")
    assert long.status == "failed" and long.error == LOST_STEP_ERROR
    assert runner.state.status == "rolled_back"
    assert runner.state.step("first").status == "compensated"
    assert [_count(tmp_path / f) for f in ("first", "long", "first_undo", "long_undo", "tidy")] == [
        1,  # first ran once
        1,  # long was not run again
        1,  # first undone once, by the agent that took over
        0,  # a step whose outcome is unknown is not compensated
        1,  # finally ran once
    ]


async def test_a_handed_over_idempotent_step_runs_again_and_completes(tmp_path: Path) -> None:
    events, eid = await _run_then_abandon(IDEMPOTENT, tmp_path, tmp_path / "long_pid")
    runner = await _resume(IDEMPOTENT, tmp_path, events, eid)
    assert runner.state.status == "completed"
    assert runner.state.step("long").status == "completed"
    assert [_count(tmp_path / f) for f in ("first", "long", "first_undo", "tidy")] == [1, 2, 0, 1]


async def test_an_abandoned_rollback_stops_mid_compensation_and_resumes_as_lost(tmp_path: Path) -> None:
    events, eid = await _run_then_abandon(IN_ROLLBACK, tmp_path, tmp_path / "a_undo_started")
    types = [e.type for e in events]
    assert EventType.ROLLBACK_STARTED in types  # the rollback had begun (it is shielded from a cancel)
    assert EventType.ROLLBACK_FINISHED not in types and EventType.EXECUTION_CLOSED not in types
    assert events[-1].step == "a" and events[-1].data["reason"] == "handed_over"
    assert _count(tmp_path / "a_undone") == 0  # the compensation was cut short, not waited out
    runner = await _resume(IN_ROLLBACK, tmp_path, events, eid)
    a = runner.state.step("a")
    assert a.status == "compensation_failed" and a.compensation_error == LOST_COMPENSATION_ERROR
    assert runner.state.status == "rollback_failed"
    assert _count(tmp_path / "a_undo_started") == 1  # not run again: its outcome is unknown
