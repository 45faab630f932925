"""What one execution may still spend: events, log bytes, output bytes, `for_each` items.

The runner asks this object at a few points (each event, each log line, each step's output,
each `for_each`), so the checks stay out of its control flow. Limits come from
`engine/limits.py` (the agent configuration); each refusal names the limit and where to raise it.
"""

from __future__ import annotations

from typing import Any

from .limits import LimitExceeded, Limits, current, json_size, limit_message

LOG_RESERVE = 1000
"""Events kept for steps, attempts and items once log lines have used up the rest."""


_EMPTY_SIZES: dict[type, int] = {dict: 2, list: 2, type(None): 5}


def _size(value: Any, limit: int) -> int:
    """`json_size`, without its walk for the common empty result (`{}`) or no outputs."""
    known = _EMPTY_SIZES.get(type(value))
    if known is not None and not value:
        return known
    return json_size(value, limit)


class ExecutionBudget:
    """Counters for one execution, checked against its limits."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or current()
        self.events = 0
        self.log_bytes = 0
        self.output_bytes = 0
        self._log_notice_sent = False

    def count_event(self) -> bool:
        """Count one event; False once the execution has recorded `execution_events`."""
        self.events += 1
        return self.events <= self.limits.execution_events

    def events_message(self) -> str:
        return limit_message(
            f"execution stopped: more than {self.limits.execution_events:,} events",
            "execution_events",
            self.limits.execution_events,
        )

    def allow_log(self, line: str) -> tuple[bool, str | None]:
        """Whether a log line may be recorded; past the budget, one notice (then nothing).

        A flood of output only ever costs log lines, never the execution: lines stop once the log
        bytes are spent (each line counts its newline, so empty lines are not free) or once the
        events are nearly spent (the last `LOG_RESERVE` events are kept for the steps' own)."""
        size = (len(line) if line.isascii() else len(line.encode("utf-8", errors="replace"))) + 1
        events_left = self.limits.execution_events - self.events
        if self.log_bytes + size <= self.limits.execution_log_bytes and events_left > LOG_RESERVE:
            self.log_bytes += size
            return True, None
        if self._log_notice_sent:
            return False, None
        self._log_notice_sent = True
        if events_left <= LOG_RESERVE:
            return False, limit_message(
                "execution event limit nearly reached; further output of this execution is not logged",
                "execution_events",
                self.limits.execution_events,
            )
        return False, limit_message(
            "execution log limit reached; further output of this execution is not logged",
            "execution_log_bytes",
            self.limits.execution_log_bytes,
        )

    def check_items(self, count: int) -> None:
        if count > self.limits.for_each_items:
            raise LimitExceeded(
                limit_message(f"{count:,} items", "for_each_items", self.limits.for_each_items)
            )

    def check_output(self, result: Any, outputs: Any) -> None:
        """Refuse a step (or item) whose result and outputs are too large, alone or in total."""
        step_limit = self.limits.step_output_bytes
        size = _size(result, step_limit)
        if size <= step_limit:
            size += _size(outputs, step_limit - size)
        if size > step_limit:
            raise LimitExceeded(
                limit_message("step result and outputs too large", "step_output_bytes", step_limit)
            )
        self.output_bytes += size
        if self.output_bytes > self.limits.execution_output_bytes:
            raise LimitExceeded(
                limit_message(
                    "results and outputs of this execution too large in total",
                    "execution_output_bytes",
                    self.limits.execution_output_bytes,
                )
            )
