"""The `shell` adapter: `shell.run`, one command or argv per step, with nothing inherited.

The engine hands over rendered inputs (every `{{ … }}` in `command` already shell-quoted). What
is left here is what a template cannot guarantee (DESIGN §3 "Shell safety", SECURITY.md "Shell"):

- refuse, before anything is spawned, what the kernel would refuse or what would change how
  programs load or shells start: NUL anywhere but stdin, an argument or environment entry beyond
  the kernel's 128 KiB per-string limit, loader and shell-startup variables in `env`;
- build the environment from scratch, so the agent's own variables (its token, `WPK_SECRET_*`,
  cloud credentials) never reach a step;
- run the process in its own process group and leave nothing behind (`process.py`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from wpk import schemas

from ..base import (
    ActionInfo,
    AdapterError,
    InputError,
    NotReversible,
    Outcome,
    Plan,
    StepContext,
    infos_from_schemas,
)
from ..guards.envpolicy import FORBIDDEN_ENV, RESERVED_ENV, forbidden_env_key
from .process import Completed, Limits, SpawnError, StuckProcess, decode_output, run_in_group

__all__ = ["FORBIDDEN_ENV", "RESERVED_ENV", "ShellAdapter", "forbidden_env_key"]


MAX_ARG_BYTES = 128 * 1024
"""Linux's limit for one argv or environment string, counting its terminating NUL (E2BIG)."""

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARSE_MODES = ("text", "json", "lines")
_STDERR_TAIL_LINES = 20
_NO_CONFIG: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One checked `shell.run` call."""

    argv: list[str]
    env: dict[str, str]  # the step's own `env` only
    cwd: str | None
    stdin: bytes | None
    success_codes: frozenset[int]
    parse: str


# --------------------------------------------------------------------------------------------
# Input checks: cheap, before anything is spawned


def _as_arg(value: Any, what: str) -> str:
    """One argv element or env value: a string (numbers are accepted and written as JSON would)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"{what} must be a string, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} must be a finite number")
    text = value if isinstance(value, str) else json.dumps(value)
    if "\x00" in text:
        raise InputError(f"{what} contains a NUL character")
    return text


def _check_size(text: str, what: str) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass")) + 1
    if size > MAX_ARG_BYTES:
        raise InputError(
            f"{what} is {size - 1} bytes; one argument or environment entry may be at most "
            f"{MAX_ARG_BYTES - 1} bytes"
        )


def _argv(inputs: Mapping[str, Any]) -> list[str]:
    command, argv = inputs.get("command"), inputs.get("argv")
    if (command is None) == (argv is None):
        raise InputError("shell.run needs exactly one of `command` or `argv`")
    if command is not None:
        if not isinstance(command, str) or not command:
            raise InputError("command must be a non-empty string")
        text = _as_arg(command, "command")
        _check_size(text, "command")
        return ["/bin/sh", "-c", text]
    if not isinstance(argv, list) or not argv:
        raise InputError("argv must be a non-empty list")
    args = [_as_arg(value, f"argv[{i}]") for i, value in enumerate(argv)]
    for i, arg in enumerate(args):
        _check_size(arg, f"argv[{i}]")
    if not args[0]:
        raise InputError("argv[0] (the program) must not be empty")
    return args


def _step_env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError("env must be a mapping of names to strings")
    env: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or "\x00" in name or not _ENV_NAME.fullmatch(name):
            raise InputError(f"env name {name!r} is not a valid variable name")
        if forbidden_env_key(name):
            raise InputError(f"env may not set {name}")
        text = _as_arg(raw, f"env {name}")
        _check_size(f"{name}={text}", f"env {name}")
        env[name] = text
    return env


def _cwd(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InputError("cwd must be a non-empty string")
    if "\x00" in value:
        raise InputError("cwd contains a NUL character")
    return value


def _stdin(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError("stdin must be a string")
    return value.encode("utf-8", errors="surrogatepass")


def _success_codes(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset({0})
    if not isinstance(value, list) or not value:
        raise InputError("success_codes must be a non-empty list of exit codes")
    for code in value:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise InputError(f"success_codes: {code!r} is not an exit code (0..255)")
    return frozenset(value)


def _parse_mode(value: Any) -> str:
    mode = "text" if value is None else value
    if mode not in _PARSE_MODES:
        raise InputError(f"parse must be one of {', '.join(_PARSE_MODES)}")
    return str(mode)


def check_inputs(inputs: Mapping[str, Any]) -> _Call:
    """Every check that can be done without spawning; raises InputError naming the input."""
    if not isinstance(inputs, Mapping):
        raise InputError("shell.run inputs must be a mapping")
    unknown = sorted(set(inputs) - {"command", "argv", "env", "cwd", "stdin", "success_codes", "parse"})
    if unknown:
        raise InputError(f"unknown shell.run input(s): {', '.join(map(str, unknown))}")
    return _Call(
        argv=_argv(inputs),
        env=_step_env(inputs.get("env")),
        cwd=_cwd(inputs.get("cwd")),
        stdin=_stdin(inputs.get("stdin")),
        success_codes=_success_codes(inputs.get("success_codes")),
        parse=_parse_mode(inputs.get("parse")),
    )


# --------------------------------------------------------------------------------------------
# Configuration (the agent's, never a runbook's)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Config:
    path: str
    limits: Limits
    home: str
    subreaper: bool


def _config(raw: Mapping[str, Any]) -> _Config:
    """Read the adapter's config section; a typo or bad value stops the agent at start-up."""
    known = {
        "path",
        "grace_seconds",
        "max_output_bytes",
        "max_log_bytes",
        "max_log_lines",
        "drain_seconds",
        "subreaper",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"shell adapter: unknown config key(s): {', '.join(map(str, unknown))}")
    path = raw.get("path", DEFAULT_PATH)
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValueError("shell adapter: `path` must be a non-empty string")
    subreaper = raw.get("subreaper", True)
    if not isinstance(subreaper, bool):
        raise ValueError("shell adapter: `subreaper` must be true or false")
    defaults = Limits()
    limits = Limits(
        grace_seconds=_positive(raw, "grace_seconds", defaults.grace_seconds),
        max_output_bytes=int(_positive(raw, "max_output_bytes", defaults.max_output_bytes, integer=True)),
        max_log_bytes=int(_positive(raw, "max_log_bytes", defaults.max_log_bytes, integer=True)),
        max_log_lines=int(_positive(raw, "max_log_lines", defaults.max_log_lines, integer=True)),
        drain_seconds=_positive(raw, "drain_seconds", defaults.drain_seconds),
    )
    return _Config(path=path, limits=limits, home=os.environ.get("HOME") or "/", subreaper=subreaper)


def _positive(raw: Mapping[str, Any], key: str, default: float, *, integer: bool = False) -> float:
    value = raw.get(key, default)
    valid = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid or not 0 < value < math.inf:
        raise ValueError(f"shell adapter: `{key}` must be a positive {'integer' if integer else 'number'}")
    return float(value)


# --------------------------------------------------------------------------------------------
# The adapter


class ShellAdapter:
    """`shell.run`: a command (via `/bin/sh -c`) or an argv, in a minimal environment.

    Agent configuration (all optional): `path` (the steps' PATH, default `/usr/local/bin:/usr/bin:
    /bin`), `grace_seconds` (SIGTERM to SIGKILL, default 5), `max_output_bytes` (kept per stream in
    the result, default 1 MiB), `max_log_bytes` / `max_log_lines` (logged per stream, default 4 MiB
    / 20,000 lines: a flood must not flood the event store), `drain_seconds` (how long to read
    after the group is gone, default 2), `subreaper` (default true; see `process.py`).
    """

    name: ClassVar[str] = "shell"

    def __init__(self, config: Mapping[str, Any] = _NO_CONFIG) -> None:
        self._config = _config(config)

    def actions(self) -> Mapping[str, ActionInfo]:
        return infos_from_schemas(self.name, schemas.action_schemas())

    def environment(self, call_env: Mapping[str, str], ctx: StepContext) -> dict[str, str]:
        """The whole environment of a step: built from scratch, nothing of the agent's own."""
        env = {"PATH": self._config.path, "HOME": self._config.home, "LANG": "C.UTF-8"}
        env.update(call_env)
        env.update(
            WPK_IDEMPOTENCY_KEY=ctx.idempotency_key,
            WPK_EXECUTION_ID=ctx.execution_id,
            WPK_STEP_ID=ctx.step_id,
            WPK_ATTEMPT=str(ctx.attempt),
            WPK_DRY_RUN="1" if ctx.dry_run else "0",
        )
        for name, value in env.items():
            if "\x00" in value:
                raise InputError(f"environment variable {name} contains a NUL character")
        return env

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan:
        _check_action(action)
        call = check_inputs(inputs)
        env = self.environment(call.env, ctx)
        details: dict[str, Any] = {"argv": list(call.argv), "env": sorted(env), "cwd": call.cwd}
        if call.stdin is not None:
            details["stdin_bytes"] = len(call.stdin)
        return Plan(
            summary=f"would run: {shlex.join(call.argv)}",
            details=details,
            inverse="none: shell commands have no automatic inverse; use an explicit rollback step",
        )

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome:
        _check_action(action)
        call = check_inputs(inputs)
        env = self.environment(call.env, ctx)
        executable = self._resolve(call.argv[0])
        try:
            done = await run_in_group(
                call.argv,
                executable=executable,
                env=env,
                cwd=call.cwd,
                stdin=call.stdin,
                log=ctx.log,
                limits=self._config.limits,
                subreaper=self._config.subreaper,
            )
        except SpawnError as exc:
            raise AdapterError(
                f"could not start {call.argv[0]}: {exc}", retryable=False, reason="shell.spawn_failed"
            ) from None
        except StuckProcess as exc:
            raise AdapterError(str(exc), retryable=False, reason="shell.stuck") from None
        return Outcome(result=_result(call, done))

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None:
        raise NotReversible("shell.run has no automatic inverse; give the step an explicit rollback")

    async def aclose(self) -> None:
        return None

    def _resolve(self, program: str) -> str:
        """argv[0] through the step's PATH (never the agent's), so `ls` means the same everywhere."""
        if "/" in program:
            return program
        found = _which(program, self._config.path)
        if found is None:
            raise AdapterError(
                f"command not found: {program!r} (PATH={self._config.path})",
                retryable=False,
                reason="shell.not_found",
                details={"exit_code": 127},
            )
        return found


_FOUND: dict[tuple[str, str], str] = {}


def _which(program: str, path: str) -> str | None:
    """`shutil.which`, remembering hits: one access() check instead of a stat per PATH entry."""
    found = _FOUND.get((program, path))
    if found is not None and os.access(found, os.X_OK):
        return found
    found = shutil.which(program, path=path)
    if found is not None:
        if len(_FOUND) > 512:
            _FOUND.clear()
        _FOUND[(program, path)] = found
    return found


def _check_action(action: str) -> None:
    if action != "run":
        raise InputError(f"unknown action shell.{action}")


def _result(call: _Call, done: Completed) -> dict[str, Any]:
    stdout = decode_output(done.stdout, truncated=done.stdout_truncated)
    stderr = decode_output(done.stderr, truncated=done.stderr_truncated)
    if done.returncode not in call.success_codes:
        raise _exit_error(done.returncode, stderr)
    result: dict[str, Any] = {
        "exit_code": done.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": done.stdout_truncated,
        "stderr_truncated": done.stderr_truncated,
    }
    if call.parse == "json":
        result["json"] = _parse_json(stdout, truncated=done.stdout_truncated)
    elif call.parse == "lines":
        lines = [line.removesuffix("\r") for line in stdout.split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
        result["lines"] = lines
    return result


def _exit_error(code: int, stderr: str) -> AdapterError:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        message = f"command killed by signal {name}"
    else:
        message = f"command exited with status {code}"
    tail = stderr.splitlines()[-_STDERR_TAIL_LINES:]
    return AdapterError(
        message,
        retryable=True,
        reason="shell.exit_status",
        details={"exit_code": code, "stderr_tail": "\n".join(tail)},
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(stdout: str, *, truncated: bool) -> Any:
    if truncated:
        raise AdapterError(
            "stdout was truncated (max_output_bytes); it cannot be parsed as JSON",
            retryable=False,
            reason="shell.invalid_json",
        )
    try:
        return json.loads(stdout, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise AdapterError(
            f"stdout is not valid JSON: {exc}", retryable=False, reason="shell.invalid_json"
        ) from None
