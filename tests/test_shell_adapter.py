"""The `shell` adapter, against real processes: outputs, refusals, environment, process groups.

Every process-lifetime test finds the pids through a file the command writes and then checks,
with `os.kill(pid, 0)`, that the kernel no longer knows them: "no process outlives its step".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time
import tracemalloc
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import trio

from wpk.adapters.base import Adapter, AdapterError, InputError, Inverse, NotReversible, Outcome, StepContext
from wpk.adapters.shell import FORBIDDEN_ENV, MAX_ARG_BYTES, ShellAdapter, forbidden_env_key, process

Logs = list[tuple[str, str]]


def make_ctx(
    logs: Logs | None = None,
    *,
    on_log: Callable[[str, str], None] | None = None,
    dry_run: bool = False,
) -> StepContext:
    sink: Logs = logs if logs is not None else []

    def log(stream: str, line: str) -> None:
        sink.append((stream, line))
        if on_log is not None:
            on_log(stream, line)

    return StepContext(
        execution_id="exec-42",
        step_id="restart",
        attempt=2,
        idempotency_key="exec-42/restart/0",
        dry_run=dry_run,
        log=log,
    )


@pytest.fixture
def shell() -> ShellAdapter:
    return ShellAdapter()


async def run(adapter: ShellAdapter, inputs: Mapping[str, Any], logs: Logs | None = None) -> dict[str, Any]:
    outcome = await adapter.apply("run", inputs, make_ctx(logs))
    assert outcome.undo is None
    return outcome.result


def read_pids(path: Path, count: int) -> list[int]:
    pids = [int(word) for word in path.read_text().split()]
    assert len(pids) == count, pids
    return pids


async def assert_gone(pids: list[int], within: float = 5.0) -> None:
    """Each pid must be unknown to the kernel (not even a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"process {pid} still exists: {Path(f'/proc/{pid}/stat').read_text()}")
            await trio.sleep(0.02)


def is_dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (dead, holding no resources but its pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(b")") + 2 :].startswith(b"Z")


# --------------------------------------------------------------------------------------------
# Contract


def test_is_an_adapter_and_registered_as_entry_point(shell: ShellAdapter) -> None:
    assert isinstance(shell, Adapter)
    assert shell.name == "shell"
    (entry,) = [ep for ep in metadata.entry_points(group="wpk.adapters") if ep.name == "shell"]
    assert entry.load() is ShellAdapter


def test_run_is_a_write_without_inverse(shell: ShellAdapter) -> None:
    info = shell.actions()["run"]
    assert set(shell.actions()) == {"run"}
    assert info.uses == "shell.run"
    assert info.read_only is False
    assert info.is_read_only({"argv": ["ls"]}) is False
    assert info.is_read_only({"command": "cat /etc/hostname"}) is False
    assert info.inverse is Inverse.NONE


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"grace_second": 1}, "unknown config key"),
        ({"grace_seconds": 0}, "grace_seconds"),
        ({"grace_seconds": "5"}, "grace_seconds"),
        ({"max_output_bytes": 1.5}, "max_output_bytes"),
        ({"max_output_bytes": True}, "max_output_bytes"),
        ({"path": ""}, "path"),
        ({"path": "/bin\x00"}, "path"),
        ({"subreaper": "yes"}, "subreaper"),
    ],
)
def test_bad_config_stops_the_agent(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShellAdapter(config)


async def test_unknown_action_is_an_input_error(shell: ShellAdapter) -> None:
    with pytest.raises(InputError, match=r"unknown action shell\.exec"):
        await shell.apply("exec", {"argv": ["true"]}, make_ctx())


@pytest.mark.parametrize(
    "inputs",
    [{}, {"command": "true", "argv": ["true"]}, {"command": ""}, {"argv": []}, {"argv": "true"}],
)
async def test_needs_exactly_one_of_command_or_argv(shell: ShellAdapter, inputs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        await shell.apply("run", inputs, make_ctx())


async def test_compensate_is_not_reversible(shell: ShellAdapter) -> None:
    with pytest.raises(NotReversible) as caught:
        await shell.compensate("run", {"argv": ["true"]}, Outcome(result={}), make_ctx())
    assert caught.value.retryable is False
    assert caught.value.reason == "not_reversible"
    await shell.aclose()


# --------------------------------------------------------------------------------------------
# Results and parse modes


async def test_command_runs_through_sh_and_captures_both_streams(shell: ShellAdapter) -> None:
    result = await run(shell, {"command": "echo out; echo err >&2; echo $((6 * 7))"})
    assert result == {
        "exit_code": 0,
        "stdout": "out\n42\n",
        "stderr": "err\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
    }


async def test_argv_runs_without_a_shell(shell: ShellAdapter) -> None:
    result = await run(shell, {"argv": ["printf", "%s|", "a b", "$HOME", "*", "`id`"]})
    assert result["stdout"] == "a b|$HOME|*|`id`|"


async def test_numbers_in_argv_are_passed_as_text(shell: ShellAdapter) -> None:
    result = await run(shell, {"argv": ["printf", "%s,", 3, 2.5]})
    assert result["stdout"] == "3,2.5,"


async def test_injection_looking_argv_is_passed_literally(shell: ShellAdapter, tmp_path: Path) -> None:
    hostile = "x; touch f; $(touch g) `touch h` && touch i"
    result = await run(shell, {"argv": ["echo", hostile], "cwd": str(tmp_path)})
    assert result["stdout"] == hostile + "\n"
    assert list(tmp_path.iterdir()) == []


async def test_quoted_value_in_command_stays_data(shell: ShellAdapter, tmp_path: Path) -> None:
    # The engine shell-quotes every interpolation in `command`; the adapter must run it unchanged.
    hostile = "x; touch f; $(touch g)"
    result = await run(shell, {"command": f"echo {shlex.quote(hostile)}", "cwd": str(tmp_path)})
    assert result["stdout"] == hostile + "\n"
    assert list(tmp_path.iterdir()) == []


async def test_parse_json(shell: ShellAdapter) -> None:
    result = await run(shell, {"command": """printf '{"ready": 3, "pods": ["a", "b"]}'""", "parse": "json"})
    assert result["json"] == {"ready": 3, "pods": ["a", "b"]}
    assert "lines" not in result


@pytest.mark.parametrize("output", ["{not json", "NaN", "[Infinity]", "", "[" * 100_000])
async def test_parse_json_invalid_is_a_final_error(shell: ShellAdapter, output: str) -> None:
    with pytest.raises(AdapterError) as caught:
        await shell.apply("run", {"argv": ["printf", "%s", output], "parse": "json"}, make_ctx())
    assert caught.value.retryable is False
    assert caught.value.reason == "shell.invalid_json"


async def test_parse_json_of_truncated_output_is_refused() -> None:
    adapter = ShellAdapter({"max_output_bytes": 10})
    with pytest.raises(AdapterError, match="truncated"):
        await adapter.apply("run", {"argv": ["printf", '["0123456789abcdef"]'], "parse": "json"}, make_ctx())


async def test_parse_lines(shell: ShellAdapter) -> None:
    result = await run(shell, {"argv": ["printf", "a\nb\r\n\nc\n"], "parse": "lines"})
    assert result["lines"] == ["a", "b", "", "c"]
    assert "json" not in result
    without_newline = await run(shell, {"argv": ["printf", "x\ny"], "parse": "lines"})
    assert without_newline["lines"] == ["x", "y"]
    empty = await run(shell, {"argv": ["true"], "parse": "lines"})
    assert empty["lines"] == []


async def test_success_codes(shell: ShellAdapter) -> None:
    result = await run(shell, {"command": "echo partial; exit 3", "success_codes": [0, 3]})
    assert result["exit_code"] == 3
    assert result["stdout"] == "partial\n"
    with pytest.raises(AdapterError, match="status 0"):
        await shell.apply("run", {"argv": ["true"], "success_codes": [1]}, make_ctx())


@pytest.mark.parametrize("codes", [[], [256], [-1], ["0"], [True], 0])
async def test_bad_success_codes_are_refused(shell: ShellAdapter, codes: Any) -> None:
    with pytest.raises(InputError, match="success_codes"):
        await shell.apply("run", {"argv": ["true"], "success_codes": codes}, make_ctx())


async def test_non_zero_exit_is_a_retryable_error_with_stderr_tail(shell: ShellAdapter) -> None:
    command = "for i in $(seq 1 30); do echo line$i >&2; done; exit 7"
    with pytest.raises(AdapterError) as caught:
        await shell.apply("run", {"command": command}, make_ctx())
    error = caught.value
    assert error.message == "command exited with status 7"
    assert error.retryable is True
    assert error.reason == "shell.exit_status"
    assert error.details["exit_code"] == 7
    assert error.details["stderr_tail"] == "\n".join(f"line{i}" for i in range(11, 31))


async def test_killed_by_signal_reports_negative_exit_code(shell: ShellAdapter) -> None:
    with pytest.raises(AdapterError) as caught:
        await shell.apply("run", {"command": "kill -KILL $$"}, make_ctx())
    assert caught.value.details["exit_code"] == -signal.SIGKILL
    assert "SIGKILL" in caught.value.message
    assert caught.value.retryable is True


async def test_program_not_on_path(shell: ShellAdapter) -> None:
    with pytest.raises(AdapterError) as caught:
        await shell.apply("run", {"argv": ["no-such-program-wpk"]}, make_ctx())
    assert caught.value.reason == "shell.not_found"
    assert caught.value.retryable is False


async def test_argv0_is_resolved_through_the_configured_path(tmp_path: Path) -> None:
    tool = tmp_path / "wpk-tool"
    tool.write_text('#!/bin/sh\necho "tool:$1"\n')
    tool.chmod(0o755)
    adapter = ShellAdapter({"path": f"{tmp_path}:/usr/bin:/bin"})
    result = await run(adapter, {"argv": ["wpk-tool", "ok"]})
    assert result["stdout"] == "tool:ok\n"
    # The agent's PATH does not count: the default PATH does not hold tmp_path.
    with pytest.raises(AdapterError, match="command not found"):
        await ShellAdapter().apply("run", {"argv": ["wpk-tool"]}, make_ctx())


# --------------------------------------------------------------------------------------------
# Refused before spawning


MARKER_NAME = "spawned"


def marker_command(tmp_path: Path) -> str:
    return f"touch {shlex.quote(str(tmp_path / MARKER_NAME))}"


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda m: {"argv": ["touch", m, "a\x00b"]}, "argv[2]"),
        (lambda m: {"argv": ["touch\x00", m]}, "argv[0]"),
        (lambda m: {"command": f"touch {m}\x00"}, "command"),
        (lambda m: {"argv": ["touch", m], "env": {"X": "a\x00b"}}, "env X"),
        (lambda m: {"argv": ["touch", m], "env": {"X\x00Y": "a"}}, "env name"),
        (lambda m: {"argv": ["touch", m], "cwd": "/tmp\x00/x"}, "cwd"),
    ],
)
async def test_nul_is_refused_before_spawning(
    shell: ShellAdapter, tmp_path: Path, build: Callable[[str], dict[str, Any]], named: str
) -> None:
    inputs = build(str(tmp_path / MARKER_NAME))
    with pytest.raises(InputError) as caught:
        await shell.apply("run", inputs, make_ctx())
    assert named in caught.value.message
    assert caught.value.retryable is False
    await trio.sleep(0.05)
    assert not (tmp_path / MARKER_NAME).exists()


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda c: {"argv": ["sh", "-c", c, "x" * (129 * 1024)]}, "argv[3]"),
        (lambda c: {"command": c + "; : " + "x" * (129 * 1024)}, "command"),
        (lambda c: {"command": c, "env": {"BIG": "x" * (129 * 1024)}}, "env BIG"),
    ],
)
async def test_argument_over_128_kib_is_refused_before_spawning(
    shell: ShellAdapter, tmp_path: Path, build: Callable[[str], dict[str, Any]], named: str
) -> None:
    with pytest.raises(InputError) as caught:
        await shell.apply("run", build(marker_command(tmp_path)), make_ctx())
    assert named in caught.value.message
    assert "131071" in caught.value.message
    await trio.sleep(0.05)
    assert not (tmp_path / MARKER_NAME).exists()


async def test_largest_allowed_argument_reaches_the_process(shell: ShellAdapter) -> None:
    largest = "é" * ((MAX_ARG_BYTES - 1) // 2) + "x"  # multi-byte: the limit counts UTF-8 bytes
    assert len(largest.encode()) == MAX_ARG_BYTES - 1
    result = await run(shell, {"argv": ["sh", "-c", 'printf %s "$1" | wc -c', "sh", largest]})
    assert int(result["stdout"]) == MAX_ARG_BYTES - 1
    with pytest.raises(InputError):
        await shell.apply("run", {"argv": ["true", largest + "x"]}, make_ctx())


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "LD_ANYTHING",
        "DYLD_INSERT_LIBRARIES",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PS4",
        "PROMPT_COMMAND",
        "PYTHONPATH",
        "NODE_OPTIONS",
        "GCONV_PATH",
        "WPK_SECRET_DB",
        "WPK_IDEMPOTENCY_KEY",
    ],
)
async def test_forbidden_env_is_refused_before_spawning(
    shell: ShellAdapter, tmp_path: Path, name: str
) -> None:
    assert forbidden_env_key(name)
    inputs = {"command": marker_command(tmp_path), "env": {name: "/tmp/evil.so"}}
    with pytest.raises(InputError, match=f"env may not set {name}"):
        await shell.apply("run", inputs, make_ctx())
    with pytest.raises(InputError):
        await shell.plan("run", inputs, make_ctx())
    await trio.sleep(0.05)
    assert not (tmp_path / MARKER_NAME).exists()


def test_forbidden_env_rule() -> None:
    assert {
        "LD_PRELOAD",
        "BASH_ENV",
        "IFS",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "RUBYOPT",
        "SHELLOPTS",
    } <= FORBIDDEN_ENV
    for allowed in ("PATH", "KUBECONFIG", "LANG", "WPK_FOO", "MY_LD_PRELOAD", "ld_preload"):
        assert not forbidden_env_key(allowed), allowed


@pytest.mark.parametrize("name", ["A=B", "", "1ABC", "A-B", "A B"])
async def test_invalid_env_names_are_refused(shell: ShellAdapter, name: str) -> None:
    with pytest.raises(InputError, match="not a valid variable name"):
        await shell.apply("run", {"argv": ["true"], "env": {name: "x"}}, make_ctx())


# --------------------------------------------------------------------------------------------
# Environment, cwd, stdin


async def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPK_TOKEN", "agent-token-value")
    monkeypatch.setenv("WPK_SECRET_X", "secret-x-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("HOME", "/home/agent")  # read when the adapter is built (agent start-up)
    result = await run(ShellAdapter(), {"argv": ["env"], "env": {"FOO": "bar baz", "PATH": "/usr/bin:/bin"}})
    seen = dict(line.split("=", 1) for line in result["stdout"].splitlines())
    # The mark that lets wpk find the step's processes after `setsid` (process.py): agent, step.
    assert re.fullmatch(r"\d+:\d+:[0-9a-f]{16}", seen.pop("WPK_STEP_PROCESS"))
    assert seen == {
        "PATH": "/usr/bin:/bin",  # the step's own env wins over the default
        "HOME": "/home/agent",
        "LANG": "C.UTF-8",
        "FOO": "bar baz",
        "WPK_IDEMPOTENCY_KEY": "exec-42/restart/0",
        "WPK_EXECUTION_ID": "exec-42",
        "WPK_STEP_ID": "restart",
        "WPK_ATTEMPT": "2",
        "WPK_DRY_RUN": "0",
    }
    for secret in ("agent-token-value", "secret-x-value", "aws-secret-value"):
        assert secret not in result["stdout"]


async def test_default_path_and_home_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOME", raising=False)
    adapter = ShellAdapter()
    result = await run(adapter, {"command": 'printf "%s|%s" "$PATH" "$HOME"'})
    assert result["stdout"] == "/usr/local/bin:/usr/bin:/bin|/"


async def test_idempotency_key_and_dry_run_flag_reach_the_process(shell: ShellAdapter) -> None:
    command = 'printf "%s %s" "$WPK_IDEMPOTENCY_KEY" "$WPK_DRY_RUN"'
    outcome = await shell.apply("run", {"command": command}, make_ctx(dry_run=True))
    assert outcome.result["stdout"] == "exec-42/restart/0 1"


async def test_cwd(shell: ShellAdapter, tmp_path: Path) -> None:
    result = await run(shell, {"argv": ["pwd"], "cwd": str(tmp_path)})
    assert result["stdout"] == os.path.realpath(tmp_path) + "\n"


async def test_missing_cwd_is_a_spawn_failure(shell: ShellAdapter, tmp_path: Path) -> None:
    with pytest.raises(AdapterError) as caught:
        await shell.apply("run", {"argv": ["true"], "cwd": str(tmp_path / "absent")}, make_ctx())
    assert caught.value.reason == "shell.spawn_failed"
    assert "absent" in caught.value.message


async def test_stdin_is_written_then_closed(shell: ShellAdapter) -> None:
    result = await run(shell, {"argv": ["cat"], "stdin": "hello\nwörld"})
    assert result["stdout"] == "hello\nwörld"


async def test_stdin_may_hold_nul(shell: ShellAdapter) -> None:
    result = await run(shell, {"argv": ["wc", "-c"], "stdin": "a\x00b"})
    assert int(result["stdout"]) == 3


async def test_without_stdin_reads_dev_null(shell: ShellAdapter) -> None:
    with trio.fail_after(5):
        result = await run(shell, {"argv": ["cat"]})
    assert result["stdout"] == ""


async def test_large_stdin_to_a_process_that_does_not_read_it(shell: ShellAdapter) -> None:
    with trio.fail_after(5):
        result = await run(shell, {"command": "echo ignored", "stdin": "x" * 1_000_000})
    assert result["stdout"] == "ignored\n"


# --------------------------------------------------------------------------------------------
# Streaming and output limits


async def test_lines_are_logged_while_the_process_runs(shell: ShellAdapter, tmp_path: Path) -> None:
    # The process waits (up to 5 s) for a file that only the log callback creates when it sees
    # the first line: "b" is printed only if "a" was logged before the process ended.
    seen = tmp_path / "seen"
    command = (
        f'echo a; i=0; while [ ! -e {shlex.quote(str(seen))} ] && [ "$i" -lt 100 ]; do '
        f"sleep 0.05; i=$((i + 1)); done; [ -e {shlex.quote(str(seen))} ] && echo b; echo err >&2"
    )

    def on_log(stream: str, line: str) -> None:
        if (stream, line) == ("stdout", "a"):
            seen.touch()

    logs: Logs = []
    outcome = await shell.apply("run", {"command": command}, make_ctx(logs, on_log=on_log))
    assert outcome.result["stdout"] == "a\nb\n"
    # Two pipes: order is kept within a stream, not across streams.
    assert [line for stream, line in logs if stream == "stdout"] == ["a", "b"]
    assert [line for stream, line in logs if stream == "stderr"] == ["err"]


async def test_long_lines_are_split_for_the_log(shell: ShellAdapter) -> None:
    logs: Logs = []
    result = await run(shell, {"command": "head -c 200000 /dev/zero | tr '\\0' a; echo; echo next"}, logs)
    pieces = [line for stream, line in logs if stream == "stdout"]
    assert [len(p) for p in pieces] == [65536, 65536, 65536, 200000 - 3 * 65536, 4]
    assert pieces[-1] == "next"
    assert result["stdout"] == "a" * 200000 + "\nnext\n"


def test_line_splitter_cuts_between_utf8_characters() -> None:
    splitter = process._LineSplitter(max_line=8)
    text = "ab€€€cd\n"  # € is 3 bytes: a cut at byte 8 would split the third one
    pieces = splitter.feed(text[:4].encode()) + splitter.feed(text[4:].encode())
    assert [p.decode() for p in pieces] == ["ab€€", "€cd"]
    assert splitter.flush() == []


def test_line_splitter_keeps_partial_lines_until_flush() -> None:
    splitter = process._LineSplitter(max_line=4)
    assert splitter.feed(b"abcd") == []
    assert splitter.feed(b"\nxy") == [b"abcd"]
    assert splitter.feed(b"z") == []
    assert splitter.flush() == [b"xyz"]
    assert splitter.feed(b"abcdefgh\n") == [b"abcd", b"efgh"]  # no empty line after an exact cut


def test_decode_output_drops_a_cut_character_at_the_head() -> None:
    data = "é".encode()[1:] + b"rest"
    assert process.decode_output(data, truncated=True) == "rest"
    assert process.decode_output(data, truncated=False) == "\ufffdrest"


async def test_output_is_capped_keeping_the_last_bytes() -> None:
    adapter = ShellAdapter({"max_output_bytes": 1000})
    result = await run(adapter, {"command": "head -c 5000 /dev/zero | tr '\\0' a; printf END; echo oops >&2"})
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1000
    assert result["stdout"] == "a" * 997 + "END"
    assert result["stderr_truncated"] is False
    assert result["stderr"] == "oops\n"


@pytest.mark.timing
async def test_output_flood_keeps_memory_bounded(shell: ShellAdapter) -> None:
    logs: Logs = []
    tracemalloc.start()
    try:
        started = time.monotonic()
        result = await run(shell, {"command": "yes | head -c 50000000"}, logs)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1024 * 1024
    assert result["stdout"].endswith("y\ny\n")
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak} bytes for 50 MB of output"
    stdout_lines = [line for stream, line in logs if stream == "stdout"]
    assert len(stdout_lines) == 20_000  # the default max_log_lines
    assert any(stream == "info" and "log limit reached" in line for stream, line in logs)
    assert elapsed < 60  # per-line work on 25 million lines would take minutes


async def test_log_byte_limit() -> None:
    adapter = ShellAdapter({"max_log_bytes": 10})
    logs: Logs = []
    await run(adapter, {"argv": ["printf", "1234\n5678\nabcd\n"]}, logs)
    assert [line for stream, line in logs if stream == "stdout"] == ["1234", "5678"]
    assert [stream for stream, _ in logs].count("info") == 1


# --------------------------------------------------------------------------------------------
# Process groups: nothing outlives its step


@pytest.mark.timing
async def test_cancel_kills_the_whole_group(shell: ShellAdapter, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    quoted = shlex.quote(str(pidfile))
    command = f"sleep 300 & echo $! >> {quoted}; sleep 300 & echo $! >> {quoted}; echo $$ >> {quoted}; wait"
    logs: Logs = []
    started = time.monotonic()
    with trio.move_on_after(0.5) as scope:
        await shell.apply("run", {"command": command}, make_ctx(logs))
    assert scope.cancelled_caught
    assert time.monotonic() - started < 4.5  # SIGTERM sufficed: no 5 s grace wait
    await assert_gone(read_pids(pidfile, 3))
    assert any("step cancelled: sending SIGTERM" in line for _, line in logs)
    assert not any("SIGKILL" in line for _, line in logs)


async def test_sigterm_ignoring_group_gets_sigkill_after_grace(tmp_path: Path) -> None:
    adapter = ShellAdapter({"grace_seconds": 0.5})
    pidfile = tmp_path / "pids"
    quoted = shlex.quote(str(pidfile))
    command = f"trap '' TERM; echo $$ > {quoted}; sleep 300 & echo $! >> {quoted}; wait"
    logs: Logs = []
    with trio.move_on_after(0.5) as scope:
        await adapter.apply("run", {"command": command}, make_ctx(logs))
    cancelled_at = scope.deadline
    returned_at = trio.current_time()
    assert scope.cancelled_caught
    assert 0.5 <= returned_at - cancelled_at < 2.5
    await assert_gone(read_pids(pidfile, 2))
    assert any("sending SIGKILL" in line for _, line in logs)


async def test_cleanup_survives_a_second_cancel(tmp_path: Path) -> None:
    # The outer scope is cancelled while the shielded cleanup waits out the grace period.
    adapter = ShellAdapter({"grace_seconds": 0.5})
    pidfile = tmp_path / "pids"
    command = f"trap '' TERM; sleep 300 & echo $! > {shlex.quote(str(pidfile))}; wait"
    with trio.move_on_after(0.7) as outer, trio.move_on_after(0.4):
        await adapter.apply("run", {"command": command}, make_ctx())
    assert outer.cancelled_caught
    await assert_gone(read_pids(pidfile, 1))


async def test_group_members_are_reaped_before_apply_returns(shell: ShellAdapter, tmp_path: Path) -> None:
    # On Linux the agent is a child subreaper: orphans of the step are re-parented to it and
    # reaped by the adapter, so not even a zombie is left, whatever the init process does.
    pidfile = tmp_path / "pids"
    quoted = shlex.quote(str(pidfile))
    await run(shell, {"command": f"(sleep 300 & echo $! >> {quoted}) ; sleep 300 & echo $! >> {quoted}"})
    await assert_gone(read_pids(pidfile, 2), within=0)
    with trio.move_on_after(0.5):
        await shell.apply("run", {"command": f"sleep 300 & echo $! > {quoted}; wait"}, make_ctx())
    await assert_gone(read_pids(pidfile, 1), within=0)


@pytest.mark.timing
async def test_without_proc_the_group_still_gets_term_then_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without /proc the adapter cannot see group members (nor reap orphans): it signals the group
    # and sends SIGKILL once the main process is gone. Nothing may keep running.
    monkeypatch.setattr(process, "_scan_group", lambda pgid: None)
    adapter = ShellAdapter({"grace_seconds": 0.5})
    pidfile = tmp_path / "pids"
    quoted = shlex.quote(str(pidfile))
    command = f"sleep 300 & echo $! >> {quoted}; (trap '' TERM; sleep 300) & echo $! >> {quoted}; wait"
    logs: Logs = []
    with trio.move_on_after(0.5) as scope:
        await adapter.apply("run", {"command": command}, make_ctx(logs))
    assert scope.cancelled_caught
    pids = read_pids(pidfile, 2)
    deadline = time.monotonic() + 5
    for pid in pids:
        while not is_dead(pid):
            assert time.monotonic() < deadline, f"process {pid} still running"
            await trio.sleep(0.02)
    assert any("members cannot be seen; sending SIGKILL" in line for _, line in logs)
    # And a normal run in that mode returns at once.
    assert (await run(adapter, {"command": "echo fine"}))["stdout"] == "fine\n"


@pytest.mark.timing
async def test_normal_exit_kills_background_children_promptly(shell: ShellAdapter, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    logs: Logs = []
    started = time.monotonic()
    result = await run(
        shell, {"command": f"sleep 300 & echo $! > {shlex.quote(str(pidfile))}; echo done"}, logs
    )
    assert time.monotonic() - started < 10
    assert result["stdout"] == "done\n"
    await assert_gone(read_pids(pidfile, 1))
    assert any("main process exited, group still running" in line for _, line in logs)


def _alive(pid: int) -> bool:
    """A live process (a zombie, or a pid that is gone, is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


@pytest.mark.timing
async def test_process_that_leaves_the_group_is_swept_with_the_step(tmp_path: Path) -> None:
    # `setsid` puts a process out of the group's reach; holding stdout it would block EOF forever.
    # The main process waits until the escape is done (else the group kill would catch it first).
    # The process still carries the step's mark, so the sweep ends it with the step (issue 9).
    adapter = ShellAdapter({"drain_seconds": 5})
    pidfile = tmp_path / "pid"
    command = (
        """setsid sh -c 'echo $$ > "$PIDFILE"; exec sleep 30' & """
        """while [ ! -s "$PIDFILE" ]; do sleep 0.01; done; echo started"""
    )
    logs: Logs = []
    started = time.monotonic()
    result = await run(adapter, {"command": command, "env": {"PIDFILE": str(pidfile)}}, logs)
    assert time.monotonic() - started < 4  # not the 5 s drain: the holder of the pipe was ended
    assert result["stdout"] == "started\n"
    assert any("left its process group" in line for _, line in logs)
    escaped = int(pidfile.read_text())
    assert not _alive(escaped)


async def test_many_steps_at_once(shell: ShellAdapter) -> None:
    results: list[str] = []

    async def one(i: int) -> None:
        result = await run(shell, {"command": f"sleep 0.1; echo {i}; sleep 300 &"})
        results.append(result["stdout"])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(one, i)
    assert sorted(results) == sorted(f"{i}\n" for i in range(10))


# --------------------------------------------------------------------------------------------
# Dry-run plan


async def test_plan_shows_argv_and_env_names_only(shell: ShellAdapter, tmp_path: Path) -> None:
    inputs = {
        "argv": ["kubectl", "rollout", "restart", "deploy/api server"],
        "env": {"API_TOKEN": "s3cr3t-value"},
        "cwd": str(tmp_path),
        "stdin": "payload",
    }
    plan = await shell.plan("run", inputs, make_ctx())
    assert plan.summary == "would run: kubectl rollout restart 'deploy/api server'"
    assert plan.details["argv"] == inputs["argv"]
    assert plan.details["env"] == sorted(
        [
            "API_TOKEN",
            "HOME",
            "LANG",
            "PATH",
            "WPK_ATTEMPT",
            "WPK_DRY_RUN",
            "WPK_EXECUTION_ID",
            "WPK_IDEMPOTENCY_KEY",
            "WPK_STEP_ID",
        ]
    )
    assert plan.details["cwd"] == str(tmp_path)
    assert plan.details["stdin_bytes"] == 7
    assert "s3cr3t-value" not in json.dumps(plan.details) + plan.summary
    assert plan.diff is None


async def test_plan_of_a_command_runs_nothing(shell: ShellAdapter, tmp_path: Path) -> None:
    command = marker_command(tmp_path)
    plan = await shell.plan("run", {"command": command}, make_ctx(dry_run=True))
    assert plan.details["argv"] == ["/bin/sh", "-c", command]
    assert plan.summary == f"would run: /bin/sh -c {shlex.quote(command)}"
    await trio.sleep(0.05)
    assert not (tmp_path / MARKER_NAME).exists()


def _proc_status_mask(stdout: str, field: str) -> int:
    line = next(line for line in stdout.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1], 16)


@pytest.mark.parametrize("cwd", [None, "/"])  # posix_spawn path, and the Popen path (cwd)
async def test_child_starts_with_default_signals_and_no_agent_descriptors(cwd: str | None) -> None:
    inputs: dict[str, Any] = {"command": "cat /proc/self/status; echo FDS; ls /proc/self/fd"}
    if cwd:
        inputs["cwd"] = cwd
    with open("/dev/null", "rb") as agent_file:  # an open descriptor of the agent's own
        result = await run(ShellAdapter(), inputs)
        agent_fd = agent_file.fileno()
    ignored = _proc_status_mask(result["stdout"], "SigIgn")
    blocked = _proc_status_mask(result["stdout"], "SigBlk")
    assert not ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE must be default, as Popen leaves it"
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
    assert blocked == 0
    fds = {int(x) for x in result["stdout"].split("FDS\n", 1)[1].split()}
    # 0-2 are the step's pipes and 3 is ls's own handle on /proc/self/fd; nothing of the agent's
    assert fds <= {0, 1, 2, 3}, fds
    assert agent_fd > 3


async def test_yes_into_head_ends_by_sigpipe() -> None:
    result = await run(ShellAdapter(), {"command": "yes | head -n 2; echo done"})
    assert result["stdout"] == "y\ny\ndone\n"
    assert "Broken pipe" not in result["stderr"]  # yes died of SIGPIPE, not of an EPIPE error
