"""Issue 9, finding 7: every process a step starts dies with the step, and with the agent.

Children started with `setsid` survived timeout and cancel; when the agent was SIGKILLed the whole
tree stayed, and the SQLite record stayed `running`. Real processes, a real `wpk` subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import trio
from runbooks import run, workflow

from wpk.adapters.shell import process
from wpk.engine.state import StepStatus


def alive(pid: int) -> bool:
    """A live process (a zombie, or a pid that is gone, is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


ESCAPE = (
    # two escapes: one by setsid, one by setsid plus a double fork (a daemon); both record their pid
    """setsid sh -c 'echo $$ >> "$PIDS"; exec sleep 300' & """
    """setsid sh -c '(sh -c "echo \\$\\$ >> \\"$PIDS\\"; exec sleep 300" &) ; sleep 300' & """
    """while [ "$(wc -l < "$PIDS" 2>/dev/null || echo 0)" -lt 2 ]; do sleep 0.02; done; sleep 300"""
)


async def test_setsid_children_die_with_a_step_that_times_out(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    wf = workflow(f"""
        steps:
          - id: a
            uses: shell.run
            timeout: 2s
            with: {{command: {json.dumps(ESCAPE)}, env: {{PIDS: "{pids}"}}}}
    """)
    started = time.monotonic()
    runner, _ = await run(wf, adapter_config={"shell": {"grace_seconds": 0.5}})
    assert runner.state.step("a").status is StepStatus.FAILED
    assert "timed out" in (runner.state.step("a").error or "")
    escaped = pids_in(pids)
    assert len(escaped) == 2
    assert not [pid for pid in escaped if alive(pid)]
    assert time.monotonic() - started < 10


async def test_setsid_children_die_with_a_cancelled_step(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    logs: list[tuple[str, str]] = []
    limits = process.Limits(grace_seconds=0.5)
    with trio.move_on_after(1.5):
        await process.run_in_group(
            ["/bin/sh", "-c", ESCAPE],
            executable=None,
            env={"PATH": "/usr/bin:/bin", "PIDS": str(pids)},
            cwd=None,
            stdin=None,
            log=lambda stream, line: logs.append((stream, line)),
            limits=limits,
        )
    escaped = pids_in(pids)
    assert len(escaped) == 2
    assert not [pid for pid in escaped if alive(pid)]
    assert any("left its process group" in line for _, line in logs)


def test_processes_of_a_killed_agent_are_ended_and_its_execution_marked_lost(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runbook = tmp_path / "rb.json"
    runbook.write_text(
        json.dumps(
            {
                "apiVersion": "wpk/v1",
                "kind": "Runbook",
                "metadata": {"name": "victim", "version": "1.0.0"},
                "spec": {
                    "steps": [
                        {
                            "id": "a",
                            "uses": "shell.run",
                            "with": {"command": ESCAPE, "env": {"PIDS": str(pids)}},
                        }
                    ]
                },
            }
        ),
        encoding="utf-8",
    )
    ok = tmp_path / "ok.json"
    ok.write_text(
        json.dumps(
            {
                "apiVersion": "wpk/v1",
                "kind": "Runbook",
                "metadata": {"name": "next", "version": "1.0.0"},
                "spec": {"steps": [{"id": "a", "uses": "core.noop"}]},
            }
        ),
        encoding="utf-8",
    )
    db = tmp_path / "wpk.db"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "wpk.engine.cli", "run"]
    agent = subprocess.Popen(
        [*argv, str(runbook), "--store", f"sqlite://{db}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while len(pids_in(pids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        escaped = pids_in(pids)
        assert len(escaped) == 2
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    time.sleep(0.2)
    assert all(alive(pid) for pid in escaped)  # the agent died: nothing in it could clean up

    proc = subprocess.run(
        [*argv, str(ok), "--store", f"sqlite://{db}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "left by an agent that died" in proc.stderr
    assert "marked failed: its agent died" in proc.stderr
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in escaped if alive(pid)]

    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT e.type, e.data FROM events e WHERE e.execution_id = "
            "(SELECT execution_id FROM events WHERE type = 'execution_created' AND data LIKE '%victim%')"
            " ORDER BY seq"
        )
        .fetchall()
    )
    closed = [json.loads(data) for kind, data in rows if kind == "execution_closed"]
    assert closed == [
        {"status": "failed", "error": "agent lost: the agent process ended while the execution was running"}
    ]
    assert not list((tmp_path / "state" / "wpk" / "running").glob("*.json"))


def test_sweep_spares_processes_of_a_live_agent() -> None:
    # A marked process whose agent (this test process) still runs is not an orphan.
    mark = process.new_mark()
    child = subprocess.Popen(["sleep", "30"], env={"PATH": "/usr/bin:/bin", process.MARK_VARIABLE: mark})
    try:
        assert child.pid not in process.sweep_orphans()
        assert alive(child.pid)
    finally:
        child.kill()
        child.wait()


async def test_a_process_that_clears_its_environment_escapes_the_mark_but_not_the_step(
    tmp_path: Path,
) -> None:
    # The documented limit of the mark: `env -i` drops it. Such a process holding stdout cannot
    # hold the step: reading stops after `drain_seconds`, and a log line says why.
    pidfile = tmp_path / "pid"
    command = (
        """env -i setsid sh -c 'echo $$ > "$0"; exec sleep 30' "$PIDFILE" & """
        """while [ ! -s "$PIDFILE" ]; do sleep 0.01; done; echo started"""
    )
    logs: list[tuple[str, str]] = []
    started = time.monotonic()
    try:
        done = await process.run_in_group(
            ["/bin/sh", "-c", command],
            executable=None,
            env={"PATH": "/usr/bin:/bin", "PIDFILE": str(pidfile)},
            cwd=None,
            stdin=None,
            log=lambda stream, line: logs.append((stream, line)),
            limits=process.Limits(drain_seconds=0.3),
        )
        assert done.returncode == 0 and done.stdout == b"started\n"
        assert time.monotonic() - started < 3
        assert any("held by a process outside the step's group" in line for _, line in logs)
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # re-parented to us (a subreaper): reap it
                with trio.move_on_after(2):
                    while os.waitpid(pid, os.WNOHANG)[0] != pid:
                        await trio.sleep(0.02)
