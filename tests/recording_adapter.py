"""A real adapter for engine tests, registered through the public registry API.

It keeps a journal of what it did (apply, plan, compensate) so tests can assert order and
effects; `write` has an automatic inverse (and waits `seconds`, or fails when `fail` is true),
`read` is read-only, `flaky` fails a set number of times, `slow` waits (on trio's clock, so
MockClock makes it instant), `boom` always fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio

from wpk.adapters.base import ActionInfo, AdapterError, Inverse, Outcome, Plan, StepContext

_ANY_INPUTS: dict[str, Any] = {"type": "object"}


def _info(action: str, *, read_only: bool, inverse: Inverse) -> ActionInfo:
    return ActionInfo(
        adapter="rec", action=action, read_only=read_only, inverse=inverse, input_schema=_ANY_INPUTS
    )


@dataclass
class Journal:
    entries: list[tuple[str, str, Any]] = field(default_factory=list)
    times: dict[str, tuple[float, float]] = field(default_factory=dict)
    failures_left: dict[str, int] = field(default_factory=dict)
    seen_keys: list[str] = field(default_factory=list)


JOURNAL = Journal()


class RecordingAdapter:
    name: ClassVar[str] = "rec"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    def actions(self) -> Mapping[str, ActionInfo]:
        return {
            "write": _info("write", read_only=False, inverse=Inverse.AUTO),
            "oneway": _info("oneway", read_only=False, inverse=Inverse.NONE),
            "read": _info("read", read_only=True, inverse=Inverse.NOT_NEEDED),
            "flaky": _info("flaky", read_only=True, inverse=Inverse.NOT_NEEDED),
            "slow": _info("slow", read_only=True, inverse=Inverse.NOT_NEEDED),
            "boom": _info("boom", read_only=False, inverse=Inverse.AUTO),
        }

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome:
        label = str(inputs.get("label", ctx.step_id))
        JOURNAL.seen_keys.append(ctx.idempotency_key)
        start = trio.current_time()
        if action == "slow":
            await trio.sleep(float(inputs.get("seconds", 1)))
        elif action == "write" and inputs.get("seconds"):
            await trio.sleep(float(inputs["seconds"]))
        if action == "write" and inputs.get("fail") is True:  # one item of a rollout failing
            JOURNAL.entries.append(("fail", label, ctx.attempt))
            raise AdapterError(f"cannot write {label}")
        if action == "flaky":
            left = JOURNAL.failures_left.get(label, int(inputs.get("fail_times", 0)))
            JOURNAL.failures_left[label] = left - 1
            if left > 0:
                JOURNAL.entries.append(("fail", label, ctx.attempt))
                raise AdapterError(f"flaky failure {left}", retryable=True)
        if action == "boom" or (action == "write" and inputs.get("fail")):
            JOURNAL.entries.append(("fail", label, ctx.attempt))
            raise AdapterError(
                str(inputs.get("message", "boom")), retryable=bool(inputs.get("retryable", False))
            )
        JOURNAL.times[label] = (start, trio.current_time())
        JOURNAL.entries.append(("apply", label, dict(inputs)))
        ctx.log("info", f"{action} {label}")
        return Outcome(result={"label": label, "value": inputs.get("value")}, undo={"label": label})

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan:
        label = str(inputs.get("label", ctx.step_id))
        JOURNAL.entries.append(("plan", label, dict(inputs)))
        return Plan(summary=f"would {action} {label}", details={"label": label}, inverse=f"unwrite {label}")

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None:
        label = outcome.undo["label"] if outcome.undo else "?"
        if inputs.get("fail_undo"):
            JOURNAL.entries.append(("undo-failed", label, None))
            raise AdapterError(f"cannot undo {label}")
        JOURNAL.entries.append(("undo", label, None))

    async def aclose(self) -> None:
        return None


def reset() -> Journal:
    JOURNAL.entries.clear()
    JOURNAL.times.clear()
    JOURNAL.failures_left.clear()
    JOURNAL.seen_keys.clear()
    return JOURNAL
