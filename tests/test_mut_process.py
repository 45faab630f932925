"""The shell adapter's process-kill code, piece by piece, against real processes (issue 15).

tests/test_shell_adapter.py shows the whole ("no process outlives its step"); these tests pin the
parts that whole leaves loose, found by mutation testing (docs/testing.md): which processes a group
scan reports and how, what counts as exited or a zombie, whose marks a sweep reads, the exact log
lines, and the order TERM, then (only after the grace period) KILL. Every process is real; the
only faults injected are the ones the kernel cannot be made to produce (no /proc, a SIGKILL that
does not take).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from wpk.adapters.shell import process

Logs = list[tuple[str, str]]
ENV = {"PATH": "/usr/bin:/bin"}

# Marks in these tests name this test process as their agent: a sweep_orphans() running meanwhile
# (another test, another suite on the machine) spares them, as it spares a live agent's steps.
LIVE = process.agent_mark_prefix()

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")


def state_of(pid: int) -> bytes | None:
    """The state letter of `pid` from /proc (b"Z" for a zombie), None when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[0]


def wait_until(predicate: object, what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def wait_zombie(pid: int) -> None:
    wait_until(lambda: state_of(pid) == b"Z", f"{pid} never became a zombie")


def wait_sleeping_children(parent: int, count: int) -> list[int]:
    """The pids of `parent`'s `count` children once each has exec'd (they are in the kernel's list)."""
    found: list[int] = []

    def ready() -> bool:
        nonlocal found
        text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
        found = [int(p) for p in text.split()]
        return len(found) == count and all(Path(f"/proc/{p}/comm").read_text() == "sleep\n" for p in found)

    wait_until(ready, f"{parent} never had {count} sleeping children")
    return found


@contextlib.contextmanager
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Popen objects started inside are SIGKILLed and reaped at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for child in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def spawn(
    started: list[subprocess.Popen[bytes]], argv: list[str], **kwargs: object
) -> subprocess.Popen[bytes]:
    kwargs.setdefault("env", ENV)
    child = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
    started.append(child)
    return child


# --------------------------------------------------------------------------------------------
# Reading the group


def test_scan_group_reports_each_member_with_its_parent_and_zombie_state() -> None:
    # sh starts `sleep` and `true` in the background and execs a sleep that never reaps: `true`
    # stays a zombie of the leader. Another session's process is not reported.
    with children() as started:
        leader = spawn(started, ["/bin/sh", "-c", "sleep 30 & true & exec sleep 30"], start_new_session=True)
        stranger = spawn(started, ["sleep", "30"], start_new_session=True)

        def settled() -> bool:
            members = process._scan_group(leader.pid) or []
            return sorted(m.zombie for m in members) == [False, False, True]

        wait_until(settled, "the group never settled to two live members and a zombie")
        members = process._scan_group(leader.pid)
        assert members is not None
        by_pid = {m.pid: m for m in members}
        assert by_pid[leader.pid] == process._Member(leader.pid, os.getpid(), False)
        others = [m for m in members if m.pid != leader.pid]
        assert {m.ppid for m in others} == {leader.pid}
        assert sorted(m.zombie for m in others) == [False, True]
        assert stranger.pid not in by_pid
        assert process._scan_group(stranger.pid) == [process._Member(stranger.pid, os.getpid(), False)]
        # a group of its own inside our session: the scan goes by group, not by session
        grouped = spawn(started, ["sleep", "30"], process_group=0)
        wait_until(lambda: os.getpgid(grouped.pid) == grouped.pid, "setpgid never happened")
        assert os.getsid(grouped.pid) != grouped.pid
        assert process._scan_group(grouped.pid) == [process._Member(grouped.pid, os.getpid(), False)]


def test_scan_group_of_no_process_is_empty_not_unknown() -> None:
    with children() as started:
        child = spawn(started, ["true"])
        child.wait()
    assert process._scan_group(child.pid) == []


def test_scan_group_without_proc_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(path: str) -> list[str]:
        raise FileNotFoundError(path)

    monkeypatch.setattr(process.os, "listdir", no_proc)
    assert process._scan_group(os.getpid()) is None


def test_scan_group_with_a_proc_that_has_no_self_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.path.exists
    monkeypatch.setattr(process.os.path, "exists", lambda path: path != "/proc/self/stat" and real(path))
    assert process._scan_group(os.getpgid(0)) is None


def test_exited_does_not_reap() -> None:
    with children() as started:
        child = spawn(started, ["sleep", "30"])
        assert process._exited(child.pid) is False
        child.kill()
        wait_zombie(child.pid)
        assert process._exited(child.pid) is True
        assert process._exited(child.pid) is True  # WNOWAIT: still there to ask again
        assert state_of(child.pid) == b"Z"
    assert process._exited(child.pid) is True  # reaped: not our child any more


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
async def test_wait_exited_returns_on_exit_and_leaves_the_child_unreaped(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pidfd:
        monkeypatch.delattr(process.os, "pidfd_open")
    with children() as started:
        child = spawn(started, ["sleep", "0.2"])
        with trio.fail_after(5):
            await process._wait_exited(child.pid)
        assert state_of(child.pid) == b"Z"
        assert child.wait() == 0


# --------------------------------------------------------------------------------------------
# The subreaper fast path


_PR_GET_CHILD_SUBREAPER = 37


@pytest.fixture
def subreaper() -> None:
    """This test process is a child subreaper (Linux always allows it), as the agent is."""
    assert process.become_subreaper() is True
    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
    assert flag.value == 1


def test_become_subreaper_says_no_off_linux_and_when_prctl_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uncached = process.become_subreaper.__wrapped__  # the function itself, past functools.cache
    monkeypatch.setattr(process.sys, "platform", "darwin")
    assert uncached() is False
    monkeypatch.setattr(process.sys, "platform", "linux")

    def no_libc(name: object, use_errno: bool = False) -> object:
        raise OSError("no libc")

    monkeypatch.setattr(process.ctypes, "CDLL", no_libc)
    assert uncached() is False


def test_fast_path_sees_a_live_member_and_ignores_other_groups(subreaper: None) -> None:
    with children() as started:
        # the leader starts a member and exits: the member, orphaned, is re-parented to us
        leader = spawn(
            started,
            ["/bin/sh", "-c", "sleep 30 >/dev/null & echo $!"],
            start_new_session=True,
            stdout=subprocess.PIPE,
        )
        assert leader.stdout is not None
        member = int(leader.stdout.read())
        wait_zombie(leader.pid)
        wait_until(lambda: member in process._our_children(), "the member was never re-parented to us")
        spawn(started, ["sleep", "30"], start_new_session=True)  # another step's process
        try:
            assert process._group_has_no_other_member(leader.pid) is False
            os.kill(member, signal.SIGKILL)
            wait_zombie(member)
            # a dead member is reaped on the way, and then the group counts as empty
            assert process._group_has_no_other_member(leader.pid) is True
            assert state_of(member) is None
            assert state_of(leader.pid) == b"Z"  # never the leader: its pid is the group id
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(member, 0)


def test_a_job_of_the_leaders_session_in_its_own_group_is_not_a_member(subreaper: None) -> None:
    # A job with its own process group inside the leader's session (as a shell's job control makes
    # one): the group scan and the fast path go by group, so it is no member (a session has it).
    with children() as started:
        leader = spawn(
            started,
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                "import subprocess\n"
                "job = subprocess.Popen(['sleep', '30'], process_group=0, stdout=subprocess.DEVNULL)\n"
                "print(job.pid)",
            ],
            start_new_session=True,
            stdout=subprocess.PIPE,
        )
        assert leader.stdout is not None
        job = int(leader.stdout.read())
        try:
            wait_zombie(leader.pid)
            wait_until(lambda: job in process._our_children(), "the job was never re-parented to us")
            assert os.getsid(job) == leader.pid and os.getpgid(job) == job
            assert process._group_has_no_other_member(leader.pid) is True
            assert process._scan_group(leader.pid) == [process._Member(leader.pid, os.getpid(), True)]
        finally:
            os.kill(job, signal.SIGKILL)
            os.waitpid(job, 0)


def test_fast_path_says_look_properly_without_the_children_list(
    subreaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open

    def no_children(path: str, *args: object, **kwargs: object) -> object:
        if str(path).endswith("/children"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", no_children)
    assert process._group_has_no_other_member(os.getpid()) is False


def test_our_children_and_reaping_orphans_spare_leaders_and_the_living(subreaper: None) -> None:
    with children() as started:
        live = spawn(started, ["sleep", "30"])
        dead = spawn(started, ["true"])
        leader = spawn(started, ["true"])
        wait_zombie(dead.pid)
        wait_zombie(leader.pid)
        assert {live.pid, dead.pid, leader.pid} <= set(process._our_children())
        process._LEADERS.add(leader.pid)
        try:
            process._reap_orphans()
        finally:
            process._LEADERS.discard(leader.pid)
        assert state_of(dead.pid) is None
        assert state_of(leader.pid) == b"Z"
        assert state_of(live.pid) not in (None, b"Z")


def test_is_zombie() -> None:
    with children() as started:
        live = spawn(started, ["sleep", "30"])
        dead = spawn(started, ["true"])
        wait_zombie(dead.pid)
        assert process._is_zombie(live.pid) is False
        assert process._is_zombie(dead.pid) is True
    assert process._is_zombie(dead.pid) is True  # gone altogether


# --------------------------------------------------------------------------------------------
# Marks


def test_start_time_is_field_22_of_stat() -> None:
    with children() as started:
        child = spawn(started, ["sleep", "30"])
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        assert process._start_time(child.pid) == stat[stat.rfind(")") + 2 :].split()[19]
    assert process._start_time(child.pid) is None


def test_marks_name_this_agent_and_are_fresh() -> None:
    prefix = process.agent_mark_prefix()
    assert prefix == f"{os.getpid()}:{process._start_time(os.getpid())}:"
    one, two = process.new_mark(), process.new_mark()
    assert one.startswith(prefix) and two.startswith(prefix) and one != two
    assert len(one) == len(prefix) + 16 and int(one[len(prefix) :], 16) >= 0


def test_mark_of_reads_only_the_mark_variable() -> None:
    with children() as started:
        marked = spawn(
            started,
            ["sleep", "30"],
            env={**ENV, "X" + process.MARK_VARIABLE: "no", process.MARK_VARIABLE: LIVE + "ab"},
        )
        lookalike = spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE + "_X": "no"})
        wait_until(lambda: process._mark_of(marked.pid) is not None, "exec never happened")
        assert process._mark_of(marked.pid) == LIVE + "ab"
        assert process._mark_of(lookalike.pid) is None
    assert process._mark_of(marked.pid) is None


def test_marked_finds_live_marked_processes_only() -> None:
    mark = process.new_mark()
    with children() as started:
        live = spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: mark})
        dead = spawn(started, ["true"], env={**ENV, process.MARK_VARIABLE: mark})
        other = spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: mark + "0"})
        wait_zombie(dead.pid)
        wait_until(lambda: process._mark_of(live.pid) == mark, "exec never happened")
        assert process._marked(mark.__eq__) == [live.pid]
        assert other.pid in process._marked(lambda m: m.startswith(mark))


def test_a_mark_that_is_not_ascii_is_read_with_replacement_characters() -> None:
    with children() as started:
        child = spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: LIVE + "\u00e9"})
        wait_until(lambda: process._mark_of(child.pid) is not None, "exec never happened")
        assert process._mark_of(child.pid) == LIVE + "\ufffd\ufffd"  # two UTF-8 bytes, neither ASCII


def test_marked_never_lists_the_agent_itself() -> None:
    # An agent started from a step (wpk inside a step) carries a mark: it must not sweep itself.
    code = (
        "import os\nfrom wpk.adapters.shell import process\n"
        f"print(os.getpid() in process._marked(lambda mark: mark == {LIVE + 'mine'!r}))"
    )
    env = {**ENV, process.MARK_VARIABLE: LIVE + "mine"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == "False\n"


def test_marked_without_proc_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(path: str) -> list[str]:
        raise FileNotFoundError(path)

    monkeypatch.setattr(process.os, "listdir", no_proc)
    assert process._marked(lambda mark: True) == []


def test_sweep_orphans_kills_exactly_the_processes_of_agents_that_are_gone() -> None:
    me = process.agent_mark_prefix()
    with children() as started:
        dead_pid = spawn(started, ["true"])
        dead_pid.wait()  # a pid no process has now
        marks = {
            "ours": me + "aa",
            "dead agent": f"{dead_pid.pid}:1:aa",
            "reused pid": f"{os.getpid()}:1{process._start_time(os.getpid())}:aa",
            "not a pid": "x:1:aa",
        }
        procs = {
            name: spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: m})
            for name, m in marks.items()
        }
        for child in procs.values():
            wait_until(lambda c=child: process._mark_of(c.pid) is not None, "exec never happened")
        victims = process.sweep_orphans()
        assert procs["ours"].pid not in victims
        assert {procs[n].pid for n in ("dead agent", "reused pid", "not a pid")} <= set(victims)
        for name in ("dead agent", "reused pid", "not a pid"):
            assert procs[name].wait(timeout=5) == -signal.SIGKILL
        assert procs["ours"].poll() is None


def test_sweep_orphans_without_proc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process.os.path, "isdir", lambda path: False)
    monkeypatch.setattr(process, "_marked", lambda predicate: pytest.fail("scanned"))
    assert process.sweep_orphans() == []


# --------------------------------------------------------------------------------------------
# Ending a group: TERM, grace, KILL, and what is logged

# One process that notes "up", then notes each SIGTERM and carries on: the file holds the order.
STUBBORN = [
    sys.executable, "-I", "-S", "-c",
    "import signal, sys\n"
    "def note(text):\n"
    "    with open(sys.argv[1], 'a') as f: f.write(text + '\\n')\n"
    "signal.signal(signal.SIGTERM, lambda *_: note('TERM'))\n"
    "note('up')\n"
    "while True: signal.pause()\n",
]  # fmt: skip


async def wait_file(path: Path, text: str) -> None:
    with trio.fail_after(5):
        while not path.exists() or text not in path.read_text():
            await trio.sleep(0.01)


def test_group_end_without_subreaper_finds_a_member_orphaned_elsewhere() -> None:
    # In a process that is no subreaper the step's orphans go to another process, where the
    # subreaper fast path (our own children) cannot see them: a group is scanned by default.
    code = """
import functools, os, subprocess, trio
from wpk.adapters.shell import process
leader = subprocess.Popen(["/bin/sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE,
                          start_new_session=True)
member = int(leader.stdout.read())
print(member, flush=True)
os.waitid(os.P_PID, leader.pid, os.WEXITED | os.WNOWAIT)
logs = []
group = process._Group(leader.pid, lambda s, line: logs.append(line))
trio.run(functools.partial(group.end, 5.0, reason="r"))
leader.wait()
print(len(logs))
"""
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)
    member = int(out.stdout.split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(member, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # it was re-parented to us, the nearest subreaper
        os.waitpid(member, 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "1"  # the member got SIGTERM: "r: sending SIGTERM to process group ..."


async def test_group_end_of_a_group_that_obeys_term(tmp_path: Path) -> None:
    logs: Logs = []
    with children() as started:
        leader = spawn(started, ["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
        kids = wait_sleeping_children(leader.pid, 2)
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)), subreaper=True)
        with trio.fail_after(5):
            await group.end(30, reason="test")
        assert logs == [("info", f"test: sending SIGTERM to process group {leader.pid} (3 process(es))")]
        assert leader.wait() == -signal.SIGTERM
        assert all(state_of(pid) is None for pid in kids)  # reaped by us, the subreaper


async def test_group_end_escalates_to_kill_only_after_the_grace_period(tmp_path: Path) -> None:
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        leader = spawn(started, [*STUBBORN, str(order)], start_new_session=True)
        await wait_file(order, "up")
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)))
        before = trio.current_time()
        with trio.fail_after(10):
            await group.end(1, reason="step cancelled")  # time enough for the TERM handler, loaded or not
        assert trio.current_time() - before >= 1  # never KILL before the grace period is over
        assert order.read_text() == "up\nTERM\n"  # TERM arrived, and was survived until KILL
        assert leader.wait() == -signal.SIGKILL
        assert logs == [
            ("info", f"step cancelled: sending SIGTERM to process group {leader.pid} (1 process(es))"),
            ("info", f"process group {leader.pid} still running after 1s: sending SIGKILL"),
        ]


async def test_group_end_sends_sigcont_so_a_stopped_group_can_die(tmp_path: Path) -> None:
    logs: Logs = []
    with children() as started:
        leader = spawn(started, ["sleep", "30"], start_new_session=True)
        os.kill(leader.pid, signal.SIGSTOP)
        with trio.fail_after(5):
            while state_of(leader.pid) != b"T":
                await trio.sleep(0.01)
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)))
        with trio.fail_after(5):
            await group.end(30, reason="r")
        assert leader.wait() == -signal.SIGTERM
        assert len(logs) == 1


async def test_group_end_of_a_finished_group_does_nothing(subreaper: None) -> None:
    logs: Logs = []
    with children() as started:
        leader = spawn(started, ["true"], start_new_session=True)
        wait_zombie(leader.pid)
        for reaping in (True, False):
            group = process._Group(leader.pid, lambda s, line: logs.append((s, line)), subreaper=reaping)
            await group.end(30, reason="r")
            await group.end(30, reason="r", leader_exited=True)
        assert logs == []
        assert leader.wait() == 0  # left for the caller to reap


async def test_group_end_unseen_members_get_kill_once_the_leader_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without /proc: TERM, and when the leader has died the rest cannot be seen, so KILL at once
    # (not after the grace period); while the leader lives, the grace period is waited out.
    monkeypatch.setattr(process, "_scan_group", lambda pgid: None)
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        leader = spawn(
            started, ["/bin/sh", "-c", '"$@" & wait', "sh", *STUBBORN, str(order)], start_new_session=True
        )
        await wait_file(order, "up")
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)))
        before = trio.current_time()
        with trio.fail_after(10):
            await group.end(20, reason="r")
        assert trio.current_time() - before < 10  # the leader died of TERM: no 20 s wait
        assert logs == [
            ("info", f"r: sending SIGTERM to process group {leader.pid}"),
            ("info", f"process group {leader.pid}: members cannot be seen; sending SIGKILL"),
        ]
        # the member may die of the KILL before its TERM handler runs: no "TERM" line is promised
        assert leader.wait() == -signal.SIGTERM


async def test_group_end_unseen_members_and_a_stubborn_leader_wait_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_scan_group", lambda pgid: None)
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        leader = spawn(started, [*STUBBORN, str(order)], start_new_session=True)
        await wait_file(order, "up")
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)))
        before = trio.current_time()
        with trio.fail_after(10):
            await group.end(0.3, reason="r")
        assert trio.current_time() - before >= 0.3
        assert leader.wait() == -signal.SIGKILL
        assert logs[-1] == ("info", f"process group {leader.pid}: members cannot be seen; sending SIGKILL")


async def test_group_end_says_when_sigkill_did_not_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process stuck in the kernel ignores SIGKILL; no test can make one, so the KILL is dropped.
    real_signal_group = process._signal_group
    monkeypatch.setattr(
        process,
        "_signal_group",
        lambda pgid, signum: None if signum == signal.SIGKILL else real_signal_group(pgid, signum),
    )
    monkeypatch.setattr(process, "_KILL_WAIT_SECONDS", 0.2)
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        leader = spawn(started, [*STUBBORN, str(order)], start_new_session=True)
        await wait_file(order, "up")
        group = process._Group(leader.pid, lambda s, line: logs.append((s, line)))
        with trio.fail_after(10):
            await group.end(0.1, reason="r")
        assert logs[-1] == ("info", f"process group {leader.pid} survived SIGKILL for 0.2s")
        assert len(logs) == 3
        assert leader.poll() is None


# --------------------------------------------------------------------------------------------
# Sweeping the processes that left the group


async def test_sweep_terms_then_kills_escaped_processes_after_the_grace(tmp_path: Path) -> None:
    mark = process.new_mark()
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        stubborn = spawn(
            started, [*STUBBORN, str(order)], env={**ENV, process.MARK_VARIABLE: mark}, start_new_session=True
        )
        await wait_file(order, "up")
        before = trio.current_time()
        with trio.fail_after(10):
            await process._sweep(mark, 1, lambda s, line: logs.append((s, line)), subreaper=False, leader=0)
        assert trio.current_time() - before >= 1  # never KILL before the grace period is over
        assert order.read_text() == "up\nTERM\n"
        assert state_of(stubborn.pid) in (None, b"Z")
        assert logs == [("info", "1 process(es) of this step left its process group: sending SIGTERM")]


async def test_sweep_of_processes_that_obey_term_needs_no_kill() -> None:
    mark = process.new_mark()
    logs: Logs = []
    with children() as started:
        escaped = [
            spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: mark}, start_new_session=True)
            for _ in range(2)
        ]
        for child in escaped:
            wait_until(lambda c=child: process._mark_of(c.pid) == mark, "exec never happened")
        with trio.fail_after(5):  # not the 30 s grace period
            await process._sweep(mark, 30, lambda s, line: logs.append((s, line)), subreaper=False, leader=0)
        assert all(state_of(child.pid) in (None, b"Z") for child in escaped)
        assert logs == [("info", "2 process(es) of this step left its process group: sending SIGTERM")]


async def test_sweep_as_subreaper_looks_only_when_a_child_carries_the_mark(
    subreaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = process.new_mark()
    scans: list[str] = []
    real_marked = process._marked
    monkeypatch.setattr(process, "_marked", lambda predicate: scans.append("scan") or real_marked(predicate))
    logs: Logs = []
    with children() as started:
        leader = spawn(started, ["true"], env={**ENV, process.MARK_VARIABLE: mark})
        dead = spawn(started, ["true"], env={**ENV, process.MARK_VARIABLE: mark})
        wait_zombie(leader.pid)
        wait_zombie(dead.pid)
        spawn(started, ["sleep", "30"])  # a live child without the mark: no reason to scan either
        process._LEADERS.add(leader.pid)  # as run_in_group does: a leader is never reaped by a sweep
        # only dead children carry the mark: nothing to do, and no /proc scan
        await process._sweep(
            mark, 0.3, lambda s, line: logs.append((s, line)), subreaper=True, leader=leader.pid
        )
        assert scans == [] and logs == []
        escaped = spawn(started, ["sleep", "30"], env={**ENV, process.MARK_VARIABLE: mark})
        wait_until(lambda: process._mark_of(escaped.pid) == mark, "exec never happened")
        with trio.fail_after(5):
            await process._sweep(
                mark, 5, lambda s, line: logs.append((s, line)), subreaper=True, leader=leader.pid
            )
        assert state_of(escaped.pid) in (None, b"Z")
        assert scans and logs == [
            ("info", "1 process(es) of this step left its process group: sending SIGTERM")
        ]
        process._LEADERS.discard(leader.pid)
        assert state_of(leader.pid) == b"Z"  # the leader is left to the group's caller to reap


async def test_sweep_says_when_sigkill_did_not_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_signal_pids = process._signal_pids
    monkeypatch.setattr(
        process,
        "_signal_pids",
        lambda pids, signum: None if signum == signal.SIGKILL else real_signal_pids(pids, signum),
    )
    monkeypatch.setattr(process, "_KILL_WAIT_SECONDS", 0.2)
    mark = process.new_mark()
    order = tmp_path / "order"
    logs: Logs = []
    with children() as started:
        spawn(
            started, [*STUBBORN, str(order)], env={**ENV, process.MARK_VARIABLE: mark}, start_new_session=True
        )
        await wait_file(order, "up")
        with trio.fail_after(10):
            await process._sweep(mark, 0.1, lambda s, line: logs.append((s, line)), subreaper=False, leader=0)
        assert logs == [
            ("info", "1 process(es) of this step left its process group: sending SIGTERM"),
            ("info", "processes of this step survived SIGKILL"),
        ]


def test_signal_pids_ignores_processes_that_are_gone() -> None:
    with children() as started:
        gone = spawn(started, ["true"])
        gone.wait()
        live = spawn(started, ["sleep", "30"])
        process._signal_pids([gone.pid, live.pid], signal.SIGTERM)
        assert live.wait(timeout=5) == -signal.SIGTERM
        process._signal_group(gone.pid, signal.SIGTERM)  # no such group: no error
