"""The dry-run plan: what a run would do, derived from the dry-run's events.

Per step: `executed-read` (a read-only action ran for real, so `when` saw real data),
`simulated` (a write the adapter planned or the target validated, e.g. `dryRun=All`),
`would-skip` (and why), `would-run` (depends on a simulated result), `failed`, or `not-reached`;
the rendered inputs (secrets already `***`), and the rollback plan.
"""

from __future__ import annotations

from typing import Any

from .conductor import compensation_plan
from .model import Step, Workflow
from .state import ExecutionState, StepStatus


def failure_policy(workflow: Workflow) -> str:
    """The run's failure policy in words, as the plan prints it."""
    if workflow.fail_fast:
        return "fail fast: after a failed step nothing new starts; running steps finish, then rollback"
    return "fail_fast: false: a failed step skips its dependants; independent branches go on"


def rollout_policy(workflow: Workflow, step: Step) -> str | None:
    """What a `for_each` step does when an item fails, in words (None: not a rollout)."""
    if step.for_each is None:
        return None
    if step.max_failures is not None:
        budget = step.max_failures
        if budget.percent is not None:
            share = budget.describe()
            return f"tolerates up to {share} of the items failing (max_failures: {share}), then stops"
        n = budget.count or 0
        return f"tolerates {n} failed item{'' if n == 1 else 's'} (max_failures: {n}), then stops"
    if workflow.fail_fast and not step.continue_on_error:
        return "stops at the first failed item"
    why = "continue_on_error" if step.continue_on_error else "fail_fast: false"
    return f"runs every item, fails if any failed ({why})"


def _step_entry(workflow: Workflow, state: ExecutionState, step_id: str, phase: str) -> dict[str, Any]:
    step = workflow.step(step_id)
    record = state.step(step_id)
    entry: dict[str, Any] = {"id": step_id, "phase": phase, "uses": step.call.uses}
    policy = rollout_policy(workflow, step) if phase == "main" else None
    if policy:
        entry["on_item_failure"] = policy
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
            entry = {"step": comp.step_id, "action": how, **({"detail": inverse} if inverse else {})}
            if comp.items:
                entry["items"] = list(comp.items)  # exactly the items that ran (or would), last first
            rollback.append(entry)
        for step in workflow.rollback_steps:
            rollback.append({"step": step.id, "action": f"run {step.call.uses} (spec.rollback.steps)"})
    return {
        "workflow_id": workflow.workflow_id,
        "failure_policy": failure_policy(workflow),
        "steps": steps,
        "rollback": rollback,
    }


_MARK = {"executed-read": "read", "executed": "ran ", "simulated": "sim ", "would-skip": "skip",
         "would-run": "run?", "failed": "FAIL", "not-reached": "----"}  # fmt: skip


def render_plan_text(plan: dict[str, Any]) -> str:
    lines = [f"Dry-run plan for {plan['workflow_id']}:"]
    if plan.get("failure_policy"):
        lines.append(f"Failure policy: {plan['failure_policy']}")
    width = max((len(s["id"]) for s in plan["steps"]), default=4)
    for s in plan["steps"]:
        prefix = f"  [{_MARK.get(s['status'], '?')}] {s['id']:<{width}}  {s['uses']:<14} "
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
        lines.append(prefix + str(detail))
        if s.get("on_item_failure"):
            lines.append(f"        rollout: {s['on_item_failure']}")
        for i, item in enumerate(s.get("items") or []):
            lines.append(f"        [{i}] {item.get('summary', '')}")
        if s.get("diff"):
            lines.extend("        " + line for line in str(s["diff"]).splitlines())
    if plan["rollback"]:
        lines.append("Rollback plan, if a step fails:")
        for i, r in enumerate(plan["rollback"], 1):
            extra = f": {r['detail']}" if r.get("detail") else ""
            items = ", ".join(f"[{n}]" for n in r.get("items", ()))
            extra += f" (items {items})" if items else ""
            lines.append(f"  {i}. {r['step']}: {r['action']}{extra}")
    else:
        lines.append("Rollback plan: nothing to undo")
    return "\n".join(lines)
