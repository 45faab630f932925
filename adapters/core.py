"""The `core` adapter: actions that touch nothing outside the engine.

`core.noop` (a join point), `core.echo` (publish a computed value), `core.sleep` (wait, and stay
cancellable) and `core.fail` (exercise failure handling). They let a runbook, and the engine's own
tests, drive retries, timeouts, cancellation and rollback without any external system.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import trio

from wpk import schemas

from .base import ActionInfo, AdapterError, InputError, Outcome, Plan, StepContext, infos_from_schemas

__all__ = ["CoreAdapter"]

_NO_CONFIG: Mapping[str, Any] = MappingProxyType({})
_DEFAULT_FAIL_MESSAGE = "failed by core.fail"
_MAX_SLEEP_SECONDS = 86_400


def _message(inputs: Mapping[str, Any]) -> str:
    message = inputs.get("message", _DEFAULT_FAIL_MESSAGE)
    if not isinstance(message, str):
        raise InputError("core.fail: message must be a string")
    return message


def _seconds(inputs: Mapping[str, Any]) -> float:
    seconds = inputs.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InputError("core.sleep: seconds must be a number")
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_SLEEP_SECONDS:
        raise InputError(f"core.sleep: seconds must be between 0 and {_MAX_SLEEP_SECONDS}")
    return float(seconds)


def _echo_message(inputs: Mapping[str, Any]) -> Any:
    if "message" not in inputs:
        raise InputError("core.echo: message is required")
    return inputs["message"]


class CoreAdapter:
    """Actions with no side effects outside the engine; none of them needs an inverse."""

    name: ClassVar[str] = "core"

    def __init__(self, config: Mapping[str, Any] = _NO_CONFIG) -> None:
        if config:
            raise ValueError(f"core adapter takes no configuration, got: {', '.join(map(str, config))}")

    def actions(self) -> Mapping[str, ActionInfo]:
        return infos_from_schemas(self.name, schemas.action_schemas())

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome:
        if action == "noop":
            return Outcome(result={})
        if action == "echo":
            message = _echo_message(inputs)
            # Text goes into the log stream: the progress shows it, the record keeps it (a summary
            # step's message is what it is for). Structured data stays in the result, where the
            # engine masks Kubernetes Secret objects; a log line would not be.
            if isinstance(message, str):
                for line in message.splitlines() or [""]:
                    ctx.log("info", line)
            return Outcome(result={"message": message})
        if action == "sleep":
            await trio.sleep(_seconds(inputs))
            return Outcome(result={})
        if action == "fail":
            raise AdapterError(_message(inputs), retryable=True, reason="core.fail")
        raise InputError(f"unknown action core.{action}")

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan:
        """Describe the call; core actions are read-only, so the engine executes them anyway."""
        if action == "noop":
            return Plan(summary="core.noop: would do nothing", result={})
        if action == "echo":
            message = _echo_message(inputs)
            return Plan(summary="core.echo: would return its message", result={"message": message})
        if action == "sleep":
            seconds = _seconds(inputs)
            return Plan(
                summary=f"core.sleep: would wait {seconds:g}s", details={"seconds": seconds}, result={}
            )
        if action == "fail":
            message = _message(inputs)
            return Plan(summary=f"core.fail: would fail with: {message}", details={"message": message})
        raise InputError(f"unknown action core.{action}")

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None:
        """Nothing to undo: core actions leave no trace outside the engine."""
        return None

    async def aclose(self) -> None:
        return None
