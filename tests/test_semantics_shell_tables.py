"""The same execution rules with real shell processes and the real clock.

tests/test_semantics_tables.py pins the rules through a recording adapter on trio's MockClock;
here the steps are `shell.run` processes, so exit codes, timeouts and backoff sleeps are real.
Each step appends to a journal file, which is what the assertions read.
"""

from __future__ import annotations

import random
from pathlib import Path

from runbooks import run, workflow

from wpk.engine import ExecutionStatus


def journal(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_a_failing_process_skips_the_chain_below_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = workflow(f"""
        steps:
          - {{id: a, uses: shell.run, rollback: none, with: {{command: "echo a >> {log}; exit 3"}}}}
          - {{id: b, uses: shell.run, rollback: none, needs: [a], with: {{command: "echo b >> {log}"}}}}
          - {{id: c, uses: shell.run, rollback: none, needs: [b], with: {{command: "echo c >> {log}"}}}}
    """)
    runner, _ = await run(wf)
    assert journal(log) == ["a"]
    assert [str(runner.state.steps[s].status) for s in "abc"] == ["failed", "skipped", "skipped"]
    assert "upstream" in (runner.state.steps["c"].reason or "")
    assert runner.state.status is ExecutionStatus.FAILED


async def test_a_process_printing_false_skips_the_step_that_reads_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = workflow(f"""
        steps:
          - id: probe
            uses: shell.run
            dry_run: execute
            rollback: none
            with: {{argv: [echo, "false"]}}
            outputs: {{healthy: "{{{{ result.stdout }}}}"}}
          - id: act
            uses: shell.run
            needs: [probe]
            rollback: none
            when: "{{{{ steps.probe.outputs.healthy }}}}"
            with: {{command: "echo act >> {log}"}}
    """)
    runner, _ = await run(wf)
    assert runner.state.steps["probe"].outputs == {"healthy": "false\n"}
    assert str(runner.state.steps["act"].status) == "skipped"
    assert journal(log) == []


async def test_retries_of_a_real_process_wait_the_seeded_delays(tmp_path: Path) -> None:
    count = tmp_path / "count"
    # fails twice, then succeeds; timeouts count as failed attempts too (the second try hangs)
    script = (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; "
        "if [ $n -eq 1 ]; then exit 1; fi; if [ $n -eq 2 ]; then sleep 30; fi; echo ok"
    )
    wf = workflow(f"""
        steps:
          - id: a
            uses: shell.run
            rollback: none
            timeout: 500ms
            retries: {{attempts: 3, backoff: 200ms, factor: 2, max_backoff: 300ms}}
            with: {{command: "{script}"}}
    """)
    runner, store = await run(wf, seed=5)
    rng = random.Random(5)
    want = [round(rng.uniform(0, 0.2), 3), round(rng.uniform(0, 0.3), 3)]
    events = await store.events(runner.execution_id)
    failed = [e.data for e in events if str(e.type) == "attempt_failed"]
    assert [d["retry_in"] for d in failed] == want
    assert [d["reason"] for d in failed] == ["shell.exit_status", "timeout"]
    assert runner.state.steps["a"].attempts == 3
    assert str(runner.state.steps["a"].status) == "completed"
    assert count.read_text().strip() == "3"


async def test_real_compensations_run_in_reverse_completion_order(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def step(name: str, needs: str = "") -> str:
        return (
            f"  - {{id: {name}, uses: shell.run, {needs}with: {{command: 'echo do-{name} >> {log}'}},"
            f" rollback: {{uses: shell.run, with: {{command: 'echo undo-{name} >> {log}'}}}}}}\n"
        )

    body = "steps:\n" + step("a") + step("b", "needs: [a], ") + step("c", "needs: [b], ")
    body += "  - {id: d, uses: shell.run, rollback: none, needs: [c], with: {command: 'exit 1'}}\n"
    body += f"finally:\n  - {{id: f, uses: shell.run, with: {{command: 'echo finally >> {log}'}}}}\n"
    runner, _ = await run(workflow(body))
    assert journal(log) == ["do-a", "do-b", "do-c", "undo-c", "undo-b", "undo-a", "finally"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK


async def test_completed_items_of_a_failed_for_each_process_are_undone_in_reverse(tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = workflow(f"""
        steps:
          - id: w
            uses: shell.run
            for_each: [one, two, three, bad]
            concurrency: 1
            with: {{command: "echo do-{{{{ item }}}} >> {log}; test {{{{ item }}}} != bad"}}
            rollback: {{uses: shell.run, with: {{command: "echo undo-{{{{ item }}}} >> {log}"}}}}
    """)
    runner, _ = await run(wf)
    done = journal(log)
    assert sorted(done[:4]) == ["do-bad", "do-one", "do-three", "do-two"]
    assert done[4:] == ["undo-three", "undo-two", "undo-one"]
    assert runner.state.status is ExecutionStatus.ROLLED_BACK
