"""Prometheus metrics on the agent's own registry (DESIGN §7), fed by the runs' events.

Names and labels are DESIGN §7's. Label values are bounded: statuses and step statuses are
enums, adapters and actions come from the installed registry, `error_type` is one of a fixed
set, and at most `MAX_WORKFLOW_NAMES` workflow names get their own series (later names are
counted as `other`): a client submitting random names cannot grow the exposition without end.
No execution id is ever a label. Dry-runs change nothing, so they are not counted as runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from wpk.engine.events import Event, EventType
from wpk.engine.model import Workflow
from wpk.engine.scheduler import AGENT_STATES
from wpk.engine.store.base import Band

MAX_WORKFLOW_NAMES = 100
# The failing step's reason, as adapters report it; anything else is counted as "other".
ERROR_TYPES = frozenset({
    "error", "internal", "invalid_input", "render", "timeout", "cancelled", "not_reversible",
    "core.fail", "shell.exit_status", "shell.invalid_json", "shell.not_found", "shell.spawn_failed",
    "shell.stuck", "http_status", "http_error", "connect_error", "network_error", "tls_error",
    "host_denied", "redirect_refused", "response_too_large", "decode_error", "unsupported_encoding",
    # Kubernetes: the adapter's own and the API server's StatusReason values
    "ClientError", "ConfigError", "ConnectionError", "ResponseTooLarge", "RolloutFailed", "TLSError",
    "Timeout", "Paused", "NotFound", "Conflict", "Forbidden", "Unauthorized", "AlreadyExists", "Invalid",
    "BadRequest", "ServiceUnavailable", "InternalError", "TooManyRequests", "Gone", "Expired",
})  # fmt: skip
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
CLAIM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300)
_STEP_END = {
    EventType.STEP_COMPLETED: "completed",
    EventType.STEP_FAILED: "failed",
    EventType.STEP_CANCELLED: "cancelled",
    EventType.STEP_PLANNED: "simulated",
}


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the observer knows about the run an event belongs to."""

    workflow: Workflow
    execution_id: str
    dry_run: bool
    manual_rollback: bool = False


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series only add noise to dashboards and alerts
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "workflow_runs",
            "Executions finished, by workflow and final status",
            ["workflow_name", "status"],
            registry=r,
        )
        self.success = Counter("workflow_success", "Executions that completed", registry=r)
        self.failure = Counter(
            "workflow_failure", "Executions that did not complete, by cause", ["error_type"], registry=r
        )
        self.duration = Histogram(
            "workflow_duration_seconds",
            "Execution wall time, start to close",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.active = Gauge("active_workflows", "Executions running on this agent now", registry=r)
        self.step_duration = Histogram(
            "workflow_step_duration_seconds",
            "Step wall time",
            ["adapter", "action", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.manual_rollbacks = Counter(
            "workflow_manual_rollbacks",
            "Rollbacks asked for by hand, by outcome",
            ["workflow_name", "status"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "workflow_queue_depth", "Pending executions in the store, by priority band", ["band"], registry=r
        )
        self.agents = Gauge(
            "workflow_agents", "Agents registered in the store, by state", ["state"], registry=r
        )
        self.claim_latency = Histogram(
            "workflow_claim_latency_seconds",
            "Time one claim from the store takes (a batch up to the free capacity)",
            buckets=CLAIM_BUCKETS,
            registry=r,
        )
        for band in Band:
            self.queue_depth.labels(str(band)).set(0)
        for state in AGENT_STATES:
            self.agents.labels(state).set(0)
        self._names: set[str] = set()
        self._started: dict[str, float] = {}
        self._steps: dict[tuple[str, str], float] = {}
        self._cause: dict[str, str] = {}

    def workflow_label(self, name: str) -> str:
        if name in self._names:
            return name
        if len(self._names) < MAX_WORKFLOW_NAMES:
            self._names.add(name)
            return name
        return "other"

    def observe(self, run: RunContext, event: Event) -> None:
        """One event of one run (the agent's runner calls this for every event it emits)."""
        t, d, key = event.type, event.data, run.execution_id
        if t is EventType.STEP_STARTED and event.item is None and event.step is not None:
            self._steps[(key, event.step)] = event.time
        elif t in _STEP_END and event.item is None and event.step is not None:
            started = self._steps.pop((key, event.step), None)
            step = run.workflow.by_id.get(event.step)
            if started is not None and step is not None:
                self.step_duration.labels(step.call.adapter, step.call.action, _STEP_END[t]).observe(
                    max(0.0, event.time - started)
                )
            if t is EventType.STEP_FAILED:
                self._cause.setdefault(key, str(d.get("reason") or "error"))
        elif t is EventType.EXECUTION_STARTED:
            self.active.inc()
            self._started[key] = event.time
        elif t is EventType.EXECUTION_FINISHED and d.get("status") == "cancelled":
            self._cause[key] = "cancelled"
        elif t is EventType.EXECUTION_FINISHED and "timed out" in str(d.get("error") or ""):
            self._cause[key] = "timeout"
        elif t is EventType.ROLLBACK_FINISHED and run.manual_rollback:
            self.manual_rollbacks.labels(self.workflow_label(run.workflow.name), str(d["status"])).inc()
        elif t is EventType.EXECUTION_CLOSED and not run.manual_rollback:  # a run ends once
            self._closed(run, event)

    def _closed(self, run: RunContext, event: Event) -> None:
        key = run.execution_id
        started = self._started.pop(key, None)
        cause = self._cause.pop(key, "error")
        for step_key in [k for k in self._steps if k[0] == key]:
            del self._steps[step_key]
        if started is not None:
            self.active.dec()
        if run.dry_run:
            return
        status = str(event.data.get("status", "completed"))
        self.runs.labels(self.workflow_label(run.workflow.name), status).inc()
        if status == "completed":
            self.success.inc()
        else:
            self.failure.labels(cause if cause in ERROR_TYPES else "other").inc()
        if started is not None:
            self.duration.observe(max(0.0, event.time - started))

    def set_store_figures(self, depth: dict[str, int], agent_states: list[str]) -> None:
        for band in Band:
            self.queue_depth.labels(str(band)).set(depth.get(str(band), 0))
        counts = dict.fromkeys(AGENT_STATES, 0)
        for state in agent_states:
            if state in counts:
                counts[state] += 1
        for state, count in counts.items():
            self.agents.labels(state).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def observer_for(
    metrics: Metrics, *, manual: bool = False
) -> Callable[[Workflow, str, bool], Callable[[Event], None]]:
    """An event callback for one run: `observer_for(m)(workflow, execution_id, dry_run)(event)`."""

    def bind(workflow: Workflow, execution_id: str, dry_run: bool) -> Callable[[Event], None]:
        run = RunContext(workflow, execution_id, dry_run, manual)
        return lambda event: metrics.observe(run, event)

    return bind


__all__ = ["Metrics", "RunContext", "observer_for"]
