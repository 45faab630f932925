"""The dry-run plan: what a run would do, derived from the dry-run's events.

Per step: `executed-read` (a read-only action ran for real, so `when` saw real data),
`simulated` (a write the adapter planned or the target validated, e.g. `dryRun=All`),
`would-skip` (and why), `would-run` (depends on a simulated result), `failed`, or `not-reached`;
the rendered inputs (secrets already `***`), and the rollback plan.
"""

from __future__ import annotations

from typing import Any

from .conductor import compensation_plan
from .model import Workflow
from .state import ExecutionState, StepStatus
from .termsafe import one_line


def _step_entry(workflow: Workflow, state: ExecutionState, step_id: str, phase: str) -> dict[str, Any]:
    step = workflow.step(step_id)
    record = state.step(step_id)
    entry: dict[str, Any] = {"id": step_id, "phase": phase, "uses": step.call.uses}
    if record.status is StepStatus.SIMULATED:
        plan = record.plan or {}
        entry["status"] = "would-run" if plan.get("summary", "").startswith("would decide") else "simulated"
        entry.update(
            {
                k: v
                for k, v in plan.items()
                if k in ("summary", "details", "diff", "inverse", "inputs", "items")
            }
        )
    elif record.status is StepStatus.COMPLETED:
        entry["status"] = "executed-read" if record.read_only else "executed"
        entry["outputs"] = record.outputs
    elif record.status is StepStatus.SKIPPED:
        entry["status"] = "would-skip"
        entry["reason"] = record.reason
    elif record.status is StepStatus.FAILED:
        entry["status"] = "failed"
        entry["error"] = record.error
    else:
        entry["status"] = "not-reached"
    return entry


def build_plan(
    workflow: Workflow, state: ExecutionState, inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    steps = [_step_entry(workflow, state, s.id, "main") for s in workflow.steps]
    steps += [_step_entry(workflow, state, s.id, "finally") for s in workflow.finally_steps]
    for entry in steps:
        if inputs and entry["id"] in inputs and "inputs" not in entry:
            entry["inputs"] = inputs[entry["id"]]
    rollback = []
    if workflow.rollback_enabled:
        for comp in compensation_plan(workflow, state, statuses=(StepStatus.COMPLETED, StepStatus.SIMULATED)):
            step = workflow.step(comp.step_id)
            record = state.step(comp.step_id)
            how = comp.describe(step)
            inverse = (record.plan or {}).get("inverse")
            rollback.append({"step": comp.step_id, "action": how, **({"detail": inverse} if inverse else {})})
        for step in workflow.rollback_steps:
            rollback.append({"step": step.id, "action": f"run {step.call.uses} (spec.rollback.steps)"})
    return {"workflow_id": workflow.workflow_id, "steps": steps, "rollback": rollback}


_MARK = {"executed-read": "read", "executed": "ran ", "simulated": "sim ", "would-skip": "skip",
         "would-run": "run?", "failed": "FAIL", "not-reached": "----"}  # fmt: skip


def render_plan_text(plan: dict[str, Any]) -> str:
    """The plan for a terminal. Every value from the runbook, a parameter or a target is escaped
    (`engine/termsafe.py`): one field stays on its line, and no escape sequence reaches the terminal."""
    e = one_line
    lines = [f"Dry-run plan for {e(plan['workflow_id'])}:"]
    width = max((len(e(s["id"])) for s in plan["steps"]), default=4)
    for s in plan["steps"]:
        prefix = f"  [{_MARK.get(s['status'], '?')}] {e(s['id']):<{width}}  {e(s['uses']):<14} "
        if s["status"] == "would-skip":
            detail = s.get("reason", "")
        elif s["status"] == "failed":
            detail = s.get("error", "")
        elif s["status"] in ("simulated", "would-run"):
            detail = s.get("summary", "")
        elif s["status"].startswith("executed"):
            detail = (
                "executed for real (read-only)"
                if s["status"] == "executed-read"
                else "executed (dry_run: execute)"
            )
        else:
            detail = "not reached"
        lines.append(prefix + e(detail))
        for i, item in enumerate(s.get("items") or []):
            lines.append(f"        [{i}] {e(item.get('summary', ''))}")
        if s.get("diff"):
            lines.extend("        " + e(line) for line in str(s["diff"]).splitlines())
    if plan["rollback"]:
        lines.append("Rollback plan, if a step fails:")
        for i, r in enumerate(plan["rollback"], 1):
            extra = f": {e(r['detail'])}" if r.get("detail") else ""
            lines.append(f"  {i}. {e(r['step'])}: {e(r['action'])}{extra}")
    else:
        lines.append("Rollback plan: nothing to undo")
    return "\n".join(lines)
