"""Run one child process in its own process group, stream its output, and leave nothing behind.

Why this is not `trio.run_process`: trio's default cancel signals only the direct child, so
`sh -c 'a & b & wait'` leaves `a` and `b` running (SECURITY.md, "Shell"), and a background child
that inherited the stdout pipe keeps a reader waiting for EOF forever. Here:

- the child starts a new session (`start_new_session=True`), so it and everything it forks share
  one process group whose id is the child's pid;
- the child is *not reaped* until the group is dealt with: while it is an unreaped zombie its pid,
  and so the group id, cannot be reused, so signalling the group can never hit a stranger;
- when the child exits, or the caller is cancelled, the whole group gets SIGTERM (and SIGCONT, so a
  stopped process can act on it), then SIGKILL after a grace period; the cleanup is shielded so a
  second cancel cannot cut it short;
- stdout and stderr are read concurrently while the child runs (a full pipe would block it), split
  into lines for the log as they arrive, and captured with a cap that keeps the *last* bytes;
- on Linux the agent becomes a child subreaper, so orphaned members of a step's group are
  re-parented to the agent and reaped here: a killed process is gone, not left as a zombie under an
  init that does not reap (as in some containers).

Group membership is read from `/proc`. Without `/proc` the group still gets TERM, then KILL once
the main process has exited or the grace period has passed, but leftover processes get no grace.

A process that leaves the group on purpose (`setsid`, a daemon's double fork) is still the step's:
every process a step starts carries a mark in its environment, `WPK_STEP_PROCESS=<agent pid>:
<agent start time>:<step token>`, which children inherit across `setsid`. After the group is
ended, a *sweep* finds the step's escaped descendants: as a subreaper the agent inherits every
orphan, so it reads its own children's marks (cheap), and only when one carries the step's token
does it scan `/proc` for the whole marked tree; those get TERM, then KILL after the grace period.
Why not a cgroup: creating one needs a delegated, writable cgroup v2 subtree, which an agent in a
container or under a user session usually lacks; the mark works unprivileged everywhere `/proc`
does. (A process that clears its environment and daemonises escapes the mark; a cgroup is the
answer there, where one is available.)

When the agent itself dies (SIGKILL, OOM), nothing in it runs. The parent-death signal
(`PR_SET_PDEATHSIG`) is not used: steps start through `posix_spawn`, which has no hook between
fork and exec to call `prctl`, and the signal would reach only the direct child (it is cleared
on fork) and fire when the spawning *thread* exits. Instead `sweep_orphans()` runs when the next
agent starts: every process whose mark names an agent that no longer runs is ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

LogSink = Callable[[str, str], None]

LOG_LINE_BYTES = 64 * 1024
"""A line longer than this is logged in pieces of at most this many bytes."""

_READ_BYTES = 64 * 1024
_POLL_SECONDS = 0.02
_KILL_WAIT_SECONDS = 5.0  # after SIGKILL; only a process stuck in the kernel takes this long
_PR_SET_CHILD_SUBREAPER = 36
MARK_VARIABLE = "WPK_STEP_PROCESS"
"""The environment variable that marks a step's processes (and their descendants) as ours."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How long to wait and how much to keep; all per stream where it says bytes or lines."""

    grace_seconds: float = 5.0
    max_output_bytes: int = 1024 * 1024
    max_log_bytes: int = 4 * 1024 * 1024
    max_log_lines: int = 20_000
    drain_seconds: float = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """What a finished process left: its status (negative: killed by that signal) and output."""

    returncode: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool


class SpawnError(Exception):
    """The process could not be started (missing program or directory, E2BIG, ...)."""


class StuckProcess(Exception):
    """The process did not exit even after SIGKILL (stuck in the kernel, e.g. on a dead NFS mount)."""


# --------------------------------------------------------------------------------------------
# Output: line splitting for the log, bounded capture for the result


class _LineSplitter:
    """Turns a byte stream into lines (without the newline), cutting lines over `max_line` bytes.

    A cut never splits a UTF-8 sequence when it can avoid it, so each logged piece decodes cleanly.
    """

    def __init__(self, max_line: int = LOG_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line
        self._after_cut = False  # a newline right after a cut ends that piece, not an empty line

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        self._buf += data
        lines: list[bytes] = []
        start = 0
        buf = self._buf
        while start < len(buf):
            if self._after_cut and buf[start] == 0x0A:
                start += 1
                self._after_cut = False
                continue
            newline = buf.find(b"\n", start, start + self._max + 1)
            if newline != -1:
                lines.append(bytes(buf[start:newline]))
                start = newline + 1
                self._after_cut = False
            elif len(buf) - start > self._max:
                cut = _utf8_cut(buf, start + self._max, start)
                lines.append(bytes(buf[start:cut]))
                start = cut
                self._after_cut = True
            else:
                break
        del buf[:start]
        return lines

    def flush(self) -> list[bytes]:
        rest = bytes(self._buf)
        self._buf.clear()
        return [rest] if rest else []


def _utf8_cut(buf: bytearray, cut: int, floor: int) -> int:
    """Move `cut` back (at most 3 bytes) so it does not land inside a UTF-8 sequence."""
    for candidate in range(cut, max(floor + 1, cut - 3) - 1, -1):
        if buf[candidate] & 0xC0 != 0x80:
            return candidate
    return cut


class _Capture:
    """Keeps the last `limit` bytes of a stream; remembers whether anything was dropped."""

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit
        self.truncated = False

    def add(self, data: bytes | bytearray) -> None:
        self._buf += data
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]  # bytearray deletes from the front without copying the rest
            self.truncated = True

    def value(self) -> bytes:
        return bytes(self._buf)


def decode_output(data: bytes, *, truncated: bool) -> str:
    """Decode captured output; a truncated head may start inside a UTF-8 sequence: drop that part."""
    if truncated:
        skip = 0
        while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
            skip += 1
        data = data[skip:]
    return data.decode("utf-8", errors="replace")


class _Pump:
    """Reads one output stream to EOF: logs it line by line and captures its tail."""

    def __init__(self, name: str, log: LogSink, limits: Limits) -> None:
        self.name = name
        self.capture = _Capture(limits.max_output_bytes)
        self._log = log
        self._splitter = _LineSplitter()
        self._log_bytes_left = limits.max_log_bytes
        self._log_lines_left = limits.max_log_lines
        self._logging = True

    async def run(self, stream: trio.abc.ReceiveStream) -> None:
        while True:
            try:
                data = await stream.receive_some(_READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                break
            self.capture.add(data)
            if self._logging:
                self._emit(self._splitter.feed(data))
        if self._logging:
            self._emit(self._splitter.flush())

    def _emit(self, lines: list[bytes]) -> None:
        for raw in lines:
            if self._log_lines_left <= 0 or self._log_bytes_left < len(raw):
                self._logging = False
                self._log(
                    "info",
                    f"{self.name}: log limit reached; further output is not logged "
                    "(the result keeps the last bytes)",
                )
                return
            self._log_lines_left -= 1
            self._log_bytes_left -= len(raw)
            text = raw.decode("utf-8", errors="replace")
            self._log(self.name, text.removesuffix("\r"))


async def _feed_stdin(stream: trio.abc.SendStream, data: bytes) -> None:
    """Write stdin, then close it; a process that stops reading early is not an error."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        if data:
            await stream.send_all(data)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.aclose()


# --------------------------------------------------------------------------------------------
# Process group bookkeeping


@functools.cache
def become_subreaper() -> bool:
    """Ask Linux to re-parent our orphaned descendants to us, so we can reap them (once)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class _Member:
    pid: int
    ppid: int
    zombie: bool


def _scan_group(pgid: int) -> list[_Member] | None:
    """Every process in group `pgid`, from /proc; None when /proc cannot tell."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    if not os.path.exists("/proc/self/stat"):
        return None
    members: list[_Member] = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 3:
            continue
        if int(fields[2]) == pgid:
            members.append(_Member(int(name), int(fields[1]), fields[0] == b"Z"))
    return members


def _group_has_no_other_member(leader: int) -> bool:
    """Subreaper fast path: True when no process but the exited `leader` is left in its group.

    As a child subreaper, every orphaned descendant of the step is re-parented to us, so a live
    member of the group is one of our own children (or below one that is). Linux hands orphans
    to the subreaper's first live thread, the main one; the threads that trio spawns processes
    from only parent the step leaders themselves. Reading the main thread's few children beats
    scanning all of /proc after every step (2.8 ms with 84 processes, measured). Zombie orphans
    of the group are reaped on the way. False means "look properly".
    """
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as handle:
            children = [int(pid) for pid in handle.read().split()]
    except (OSError, ValueError):
        return False
    for pid in children:
        if pid == leader:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 3 or int(fields[2]) != leader:
            continue  # another step's process
        if fields[0] != b"Z":
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _exited(pid: int) -> bool:
    """Whether our child `pid` has exited, without reaping it (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


async def _wait_exited(pid: int) -> None:
    """Wait until our child exits, leaving it unreaped so its pid (the group id) stays ours."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        # No pidfd (old kernel, not Linux): poll, since waiting in a thread would reap the child.
        while not _exited(pid):  # noqa: ASYNC110
            await trio.sleep(_POLL_SECONDS)
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        trio.lowlevel.notify_closing(fd)
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Marks and sweeps: processes that left the group


def _start_time(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot), which tells a pid apart from its reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


@functools.cache
def agent_mark_prefix() -> str:
    """`<pid>:<start time>:` of this agent process: the part of the mark naming the agent."""
    return f"{os.getpid()}:{_start_time(os.getpid()) or 0}:"


def new_mark() -> str:
    """A fresh mark for one step's processes."""
    return agent_mark_prefix() + secrets.token_hex(8)


def _mark_of(pid: int) -> str | None:
    """The WPK_STEP_PROCESS value in `pid`'s environment (only our own user's are readable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    needle = MARK_VARIABLE.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(needle):
            return entry[len(needle) :].decode("ascii", errors="replace")
    return None


def _marked(predicate: Callable[[str], bool]) -> list[int]:
    """Pids of live processes (not us) whose mark satisfies `predicate`, from all of /proc."""
    found = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        mark = _mark_of(int(name))
        if mark is not None and predicate(mark) and not _is_zombie(int(name)):
            found.append(int(name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return True
    fields = stat[stat.rfind(b")") + 2 :].split()
    return not fields or fields[0] in (b"Z", b"X")


def _our_children() -> list[int]:
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as handle:
            return [int(pid) for pid in handle.read().split()]
    except (OSError, ValueError):
        return []


_LEADERS: set[int] = set()
"""Step leaders still running or not yet reaped: never reaped by a sweep (their pid is a group id)."""


def _reap_orphans() -> None:
    """Reap zombie children that are not any step's leader (orphans re-parented to us)."""
    for pid in _our_children():
        if pid not in _LEADERS and _is_zombie(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _signal_pids(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def _sweep(mark: str, grace: float, log: LogSink, *, subreaper: bool, leader: int) -> None:
    """End the step's processes that left its group (`setsid`): TERM, grace, KILL. Call shielded.

    As a subreaper, an escaped process whose parent died is our child: look there first (a few
    reads), and scan all of /proc only when our children hold one, or when we are no subreaper."""
    if subreaper:
        children = [pid for pid in _our_children() if pid != leader]
        if not any(_mark_of(pid) == mark and not _is_zombie(pid) for pid in children):
            return
    escaped = await trio.to_thread.run_sync(_marked, mark.__eq__)
    if not escaped:
        return
    log("info", f"{len(escaped)} process(es) of this step left its process group: sending SIGTERM")
    _signal_pids(escaped, signal.SIGTERM)
    _signal_pids(escaped, signal.SIGCONT)
    with trio.move_on_after(grace + _KILL_WAIT_SECONDS):
        deadline = trio.current_time() + grace
        while True:
            await trio.sleep(_POLL_SECONDS)
            _reap_orphans()
            left = await trio.to_thread.run_sync(_marked, mark.__eq__)
            if not left:
                return
            if trio.current_time() >= deadline:
                _signal_pids(left, signal.SIGKILL)  # escaped ones may have forked meanwhile: all of them
    log("info", "processes of this step survived SIGKILL")


def sweep_orphans() -> list[int]:
    """At agent start: SIGKILL every marked process whose agent no longer runs; return their pids.

    An agent that was killed leaves its steps' processes behind (re-parented to init); their mark
    names the agent's pid and start time, so a process is ours to end only when that exact agent
    process is gone (a reused pid has another start time)."""
    if not os.path.isdir("/proc"):
        return []
    alive: dict[str, bool] = {}

    def orphaned(mark: str) -> bool:
        agent = mark.rsplit(":", 1)[0]
        if agent not in alive:
            pid, _, start = agent.partition(":")
            alive[agent] = pid.isdigit() and _start_time(int(pid)) == start
        return not alive[agent]

    victims = _marked(orphaned)
    _signal_pids(victims, signal.SIGKILL)
    return victims


class _Group:
    """The process group of one step, led by `leader` (our direct, not yet reaped, child)."""

    def __init__(self, leader: int, log: LogSink, *, subreaper: bool = False) -> None:
        self.leader = leader
        self.subreaper = subreaper
        self._log = log
        self._me = os.getpid()

    async def _live(self) -> list[int] | None:
        """Live members (zombies are dead), reaping the orphans we inherited; None if unknown."""
        members = await trio.to_thread.run_sync(_scan_group, self.leader)
        if members is None:
            return None
        live = [m.pid for m in members if not m.zombie]
        if not live and any(m.zombie and m.ppid != self._me for m in members if m.pid != self.leader):
            # A member may have died before its parent did, and been re-parented to us only after
            # we read it. With nothing left alive the parents are settled: read once more.
            members = await trio.to_thread.run_sync(_scan_group, self.leader) or []
        for member in members:
            if member.zombie and member.ppid == self._me and member.pid != self.leader:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(member.pid, os.WNOHANG)  # noqa: ASYNC222 - a zombie: WNOHANG never blocks
        return live

    async def _wait_gone(self, seconds: float) -> bool:
        """Poll until no live member is left; False if time ran out."""
        with trio.move_on_after(seconds):
            while True:
                live = await self._live()
                if live is None:
                    if not _exited(self.leader):
                        await trio.sleep(_POLL_SECONDS)
                        continue
                    return False  # the others cannot be seen: let the caller use SIGKILL
                if not live:
                    return True
                await trio.sleep(_POLL_SECONDS)
        return False

    async def end(self, grace: float, *, reason: str, leader_exited: bool = False) -> None:
        """TERM the group, wait up to `grace`, then KILL whatever is left. Call shielded."""
        if (
            self.subreaper
            and (leader_exited or _exited(self.leader))
            and _group_has_no_other_member(self.leader)
        ):
            return
        live = await self._live()
        if live is not None and not live:
            return
        count = "" if live is None else f" ({len(live)} process(es))"
        self._log("info", f"{reason}: sending SIGTERM to process group {self.leader}{count}")
        _signal_group(self.leader, signal.SIGTERM)
        _signal_group(self.leader, signal.SIGCONT)
        if await self._wait_gone(grace):
            return
        if live is None:
            self._log("info", f"process group {self.leader}: members cannot be seen; sending SIGKILL")
        else:
            self._log("info", f"process group {self.leader} still running after {grace:g}s: sending SIGKILL")
        _signal_group(self.leader, signal.SIGKILL)
        if not await self._wait_gone(_KILL_WAIT_SECONDS) and await self._live():
            self._log("info", f"process group {self.leader} survived SIGKILL for {_KILL_WAIT_SECONDS:g}s")


# --------------------------------------------------------------------------------------------
# The run


async def run_in_group(
    argv: Sequence[str],
    *,
    executable: str | None,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: bytes | None,
    log: LogSink,
    limits: Limits,
    subreaper: bool = True,
) -> Completed:
    """Run `argv` in a new session; return when it and its whole group are gone.

    Cancellation (the engine's timeout or cancel) ends the group the same way as a normal exit,
    TERM then KILL after `limits.grace_seconds`, shielded, and then re-raises `trio.Cancelled`.
    With `subreaper`, the agent first becomes a child subreaper (once, process-wide).
    """
    reaping = become_subreaper() if subreaper else False
    mark = new_mark()
    env = {**env, MARK_VARIABLE: mark}
    proc: trio.Process | _SpawnedProcess
    try:
        if cwd is None and _CAN_SPAWN_DIRECT:
            proc = _spawn_direct(argv, executable=executable, env=env, with_stdin=stdin is not None)
        else:
            proc = await trio.lowlevel.open_process(
                list(argv),
                executable=executable,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
    except (OSError, ValueError) as exc:
        raise SpawnError(_spawn_message(exc)) from exc

    _LEADERS.add(proc.pid)
    group = _Group(proc.pid, log, subreaper=reaping)
    swept = False
    out = _Pump("stdout", log, limits)
    err = _Pump("stderr", log, limits)
    ended = False
    try:
        async with trio.open_nursery() as nursery:
            io_done = trio.Event()
            assert proc.stdout is not None and proc.stderr is not None
            pipes: list[Callable[[], Awaitable[None]]] = [
                functools.partial(out.run, proc.stdout),
                functools.partial(err.run, proc.stderr),
            ]
            if proc.stdin is not None and stdin is not None:
                pipes.append(functools.partial(_feed_stdin, proc.stdin, stdin))
            open_pipes = [len(pipes)]
            pump_scopes: list[trio.CancelScope] = []
            stopped = False

            async def pump(job: Callable[[], Awaitable[None]]) -> None:
                # Straight in this nursery (no helper task, no inner nursery): fewer trips
                # through trio's scheduler per step, which is most of a short step's cost.
                # Shielded: the pumps stop when this function says so (below), not when the
                # caller's deadline passes while a finished command's output is still read.
                with trio.CancelScope(shield=True) as scope:
                    pump_scopes.append(scope)
                    if stopped:
                        scope.cancel()
                    await job()
                open_pipes[0] -= 1
                if not open_pipes[0]:
                    io_done.set()

            for job in pipes:
                nursery.start_soon(pump, job)
            try:
                await _wait_exited(proc.pid)
            except BaseException:  # cancelled before the command finished: stop reading too
                stopped = True
                for scope in pump_scopes:
                    scope.cancel()
                raise
            # The command has finished: what is left is cleanup, bounded by the grace and drain
            # periods. It is shielded, so a deadline that passes meanwhile does not turn a command
            # that exited 0 into "timed out" (issue 9); the exit status stands.
            with trio.CancelScope(shield=True):
                await group.end(
                    limits.grace_seconds,
                    reason="main process exited, group still running",
                    leader_exited=True,
                )
                ended = True
                await _sweep(mark, limits.grace_seconds, log, subreaper=reaping, leader=proc.pid)
                swept = True
                with trio.move_on_after(limits.drain_seconds):
                    await io_done.wait()
            if not io_done.is_set():
                log("info", "an output pipe is held by a process outside the step's group; stopped reading")
                for scope in pump_scopes:
                    scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if not ended:
                await group.end(limits.grace_seconds, reason="step cancelled")
            if not swept:
                await _sweep(mark, limits.grace_seconds, log, subreaper=reaping, leader=proc.pid)
            if proc.poll() is None:  # usually already exited: reap without a scheduler round trip
                with trio.move_on_after(_KILL_WAIT_SECONDS):
                    await proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                _close_now(stream)
            if proc.returncode is not None:
                _LEADERS.discard(proc.pid)

    returncode = proc.returncode
    if returncode is None:  # only if it survived SIGKILL for _KILL_WAIT_SECONDS
        raise StuckProcess(f"process {proc.pid} did not exit {_KILL_WAIT_SECONDS:g}s after SIGKILL")
    return Completed(
        returncode=returncode,
        stdout=out.capture.value(),
        stderr=err.capture.value(),
        stdout_truncated=out.capture.truncated,
        stderr_truncated=err.capture.truncated,
    )


class _SpawnedProcess:
    """A child started by `os.posix_spawn`: the part of trio.Process that run_in_group uses."""

    def __init__(
        self, pid: int, stdin: trio.lowlevel.FdStream | None, stdout: trio.lowlevel.FdStream,
        stderr: trio.lowlevel.FdStream,
    ) -> None:  # fmt: skip
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the child if it has exited (never blocks)."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    async def wait(self) -> int:
        while self.poll() is None:
            await _wait_exited(self.pid)
        assert self.returncode is not None
        return self.returncode


_CAN_SPAWN_DIRECT = hasattr(os, "posix_spawn") and os.path.isdir("/proc/self/fd")
"""posix_spawn exists, and /proc lists our descriptors so that none leaks into a step."""

_SPAWN_DEFAULT_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s is not None
)


def _inheritable_descriptors(*, exclude: set[int]) -> list[int]:
    """Open descriptors above 2 that a child would inherit (not close-on-exec)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in exclude:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            continue  # the listing's own descriptor, already closed
    return found


def _spawn_direct(
    argv: Sequence[str], *, executable: str | None, env: Mapping[str, str], with_stdin: bool
) -> _SpawnedProcess:
    """Start a step's process with posix_spawn, on this thread, in a new session.

    trio.lowlevel.open_process runs subprocess.Popen in a worker thread; posix_spawn (vfork
    and exec in the C library) needs no thread hop and no Python between fork and exec, which is
    most of a short step's cost. Python's descriptors are non-inheritable (PEP 446); any other
    inheritable one (inherited by the agent from its own parent, or opened by a C library) is
    closed in the child, as Popen's close_fds does, so only the three pipes reach the step. The
    signals Popen restores (SIGPIPE, SIGXFSZ) are reset to their defaults and the signal mask is
    cleared, as Popen does. Needs an absolute executable path.
    """
    program = executable or argv[0]
    if not os.path.isabs(program):
        raise ValueError(f"posix_spawn needs an absolute path, not {program!r}")
    fds: list[int] = []
    try:
        out_r, out_w = os.pipe()
        fds += [out_r, out_w]
        err_r, err_w = os.pipe()
        fds += [err_r, err_w]
        if with_stdin:
            in_r, in_w = os.pipe()
            fds += [in_r, in_w]
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
            fds.append(in_r)
        leaked = _inheritable_descriptors(exclude={in_r, out_w, err_w})
        pid = os.posix_spawn(
            program,
            list(argv),
            dict(env),
            file_actions=[
                *((os.POSIX_SPAWN_CLOSE, fd) for fd in leaked),
                (os.POSIX_SPAWN_DUP2, in_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=_SPAWN_DEFAULT_SIGNALS,
            setsigmask=(),
        )
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    return _SpawnedProcess(
        pid,
        trio.lowlevel.FdStream(in_w) if with_stdin else None,
        trio.lowlevel.FdStream(out_r),
        trio.lowlevel.FdStream(err_r),
    )


def _close_now(stream: object) -> None:
    """Close a pipe at once: trio's FdStream.close() needs no checkpoint, unlike aclose()."""
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def _spawn_message(exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)
