"""The dry-run plan: what a run would do, derived from the dry-run's events.

Per step: `executed-read` (a read-only action ran for real, so `when` saw real data),
`simulated` (a write the adapter planned or the target validated, e.g. `dryRun=All`),
`would-skip` (and why), `would-run` (its condition depends on a simulated change: its consequence
is shown), `unknown` (its outcome depends on a simulated change), `failed`, or `not-reached`;
the rendered inputs (secrets already `***`), what is unknown and why, and the rollback plan the
runner computed with the very code that rolls back (`engine/compensation.py`).

The verdict: `will-fail` (a step fails and nothing simulated decides it), `unknown` (some step's
outcome depends on a simulated change), or `will-pass`.
"""

from __future__ import annotations

import json
from typing import Any

from .compensation import undo_text
from .model import Step, Workflow
from .state import ExecutionState, StepStatus
from .termsafe import one_line

WILL_PASS = "will-pass"
WILL_FAIL = "will-fail"
UNKNOWN = "unknown"

_KEPT = (
    "summary", "details", "diff", "inverse", "inputs", "items", "unknown", "unknown_parts", "condition",
    "outputs_now",
)  # fmt: skip


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
    if step.description:
        entry["description"] = step.description
    plan = record.plan or {}
    unknown = plan.get("unknown") or {}
    if record.status is StepStatus.SIMULATED:
        if plan.get("condition"):
            entry["status"] = "would-run"
        else:
            entry["status"] = "unknown" if unknown.get("outcome") else "simulated"
        entry.update({k: v for k, v in plan.items() if k in _KEPT})
        entry["outputs"] = record.outputs
    elif record.status is StepStatus.COMPLETED:
        entry["status"] = "executed-read" if record.read_only else "executed"
        if unknown.get("outcome"):
            entry["status"] = "unknown"
        elif plan.get("condition"):
            entry["status"] = "would-run"
        entry["outputs"] = record.outputs
        entry.update({k: v for k, v in plan.items() if k in _KEPT})
    elif record.status is StepStatus.SKIPPED:
        entry["status"] = "would-skip"
        entry["reason"] = record.reason
    elif record.status is StepStatus.FAILED:
        entry["status"] = "failed"
        entry["error"] = record.error
    else:
        entry["status"] = "not-reached"
    if step.when is not None and step.when is not True and entry["status"] == "would-run":
        entry["condition"] = f"{step.when} ({plan.get('condition', 'unknown')})"
    if step.continue_on_error:
        entry["continue_on_error"] = True
    return entry


def verdict(workflow: Workflow, state: ExecutionState, steps: list[dict[str, Any]]) -> str:
    """will-fail if a failure is certain, unknown if a step's outcome depends on a simulation."""
    relevant = [s for s in steps if not s.get("continue_on_error")]
    if any(s["status"] == "failed" for s in relevant):
        return WILL_FAIL
    if any(s["status"] == "unknown" or (s.get("unknown") or {}).get("outcome") for s in relevant):
        return UNKNOWN
    if any(s["status"] == "would-run" and _would_fail(s) for s in relevant):
        return UNKNOWN
    return WILL_PASS


def _would_fail(entry: dict[str, Any]) -> bool:
    return str(entry.get("summary", "")).startswith("if its condition holds: fails")


def build_plan(
    workflow: Workflow, state: ExecutionState, inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    steps = [_step_entry(workflow, state, s.id, "main") for s in workflow.steps]
    steps += [_step_entry(workflow, state, s.id, "finally") for s in workflow.finally_steps]
    for entry in steps:
        if inputs and entry["id"] in inputs and "inputs" not in entry:
            entry["inputs"] = inputs[entry["id"]]
    rollback = list(state.rollback_plan or []) if workflow.rollback_enabled else []
    # A step's `inverse` is what its rollback does, in the rollback plan's words (an explicit
    # `rollback:` body, not the adapter's "no automatic inverse"), so the two never disagree.
    undo_of: dict[str, list[str]] = {}
    for undo in rollback:
        undo_of.setdefault(undo["step"], []).append(undo["action"])
    for entry in steps:
        if entry["id"] in undo_of:
            actions = list(dict.fromkeys(undo_of[entry["id"]]))
            entry["inverse"] = actions[0] if len(actions) == 1 else "; ".join(actions)
    return {
        "workflow_id": workflow.workflow_id,
        "verdict": verdict(workflow, state, steps),
        "failure_policy": failure_policy(workflow),
        "steps": steps,
        "rollback_enabled": workflow.rollback_enabled,
        "rollback": rollback,
    }


_MARK = {"executed-read": "read", "executed": "ran ", "simulated": "sim ", "would-skip": "skip",
         "would-run": "run?", "unknown": " ?? ", "failed": "FAIL", "not-reached": "----"}  # fmt: skip
_VERDICT_TEXT = {
    WILL_PASS: "will pass: no step fails (reads ran for real, writes were simulated)",
    WILL_FAIL: "will fail: a step fails, and nothing simulated decides it",
    UNKNOWN: "unknown: some outcomes depend on simulated changes (marked ??); no server can predict them",
}


def _compact(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _input_lines(s: dict[str, Any]) -> list[str]:
    """The rendered inputs a user must see before a write: request bodies, stdin, commands."""
    inputs = s.get("inputs")
    if not isinstance(inputs, dict) or s["status"] not in ("simulated", "would-run", "unknown"):
        return []
    return [f"        with {key}: {_compact(value)}" for key, value in inputs.items()]


def render_plan_text(plan: dict[str, Any]) -> str:
    """The plan for a terminal. Every value from the runbook, a parameter or a target is escaped
    (`engine/termsafe.py`): one field stays on its line, and no escape sequence reaches the terminal."""
    e = one_line
    lines = [f"Dry-run plan for {e(plan['workflow_id'])}:"]
    if plan.get("failure_policy"):
        lines.append(f"Failure policy: {plan['failure_policy']}")
    width = max((len(e(s["id"])) for s in plan["steps"]), default=4)
    for s in plan["steps"]:
        prefix = f"  [{_MARK.get(s['status'], '?')}] {e(s['id']):<{width}}  {e(s['uses']):<14} "
        if s["status"] == "would-skip":
            detail = s.get("reason", "")
        elif s["status"] == "failed":
            detail = s.get("error", "")
        elif s["status"] in ("simulated", "would-run", "unknown"):
            detail = s.get("summary", "")
            if s["status"] == "unknown" and not detail:
                detail = (s.get("unknown") or {}).get("text", "unknown")
        elif s["status"].startswith("executed"):
            detail = (
                "executed for real (read-only)"
                if s["status"] == "executed-read"
                else "executed (dry_run: execute)"
            )
        else:
            detail = "not reached"
        lines.append(prefix + e(detail))
        if s.get("on_item_failure"):
            lines.append(f"        rollout: {s['on_item_failure']}")
        if s.get("description"):
            lines.append(f"        ({e(_compact(s['description'], 160))})")
        if s.get("condition"):
            lines.append(f"        only if {e(s['condition'])}; otherwise skipped")
        elif s["status"] == "unknown" and s.get("unknown") and s.get("summary"):
            lines.append(f"        {e(s['unknown']['text'])}")
        lines.extend(e(line) for line in _input_lines(s))
        for i, item in enumerate(s.get("items") or []):
            seen = f"seen now: {_compact(item['outputs_now'])}" if item.get("outputs_now") else ""
            lines.append(f"        [{i}] {e(item.get('summary', '') or seen)}".rstrip())
        said = {(s.get("unknown") or {}).get("text")} if s["status"] in ("unknown", "would-run") else set()
        for part, why in (s.get("unknown_parts") or {}).items():
            if why not in said:
                lines.append(f"        {e(part)}: {e(why)}")
        if isinstance(s.get("outputs"), dict) and s["status"] != "would-skip":
            known = {
                k: v for k, v in s["outputs"].items() if f"outputs.{k}" not in (s.get("unknown_parts") or {})
            }
            if known:
                lines.append(f"        outputs: {e(_compact(known))}")
        if s.get("outputs_now"):
            lines.append(
                f"        seen now (may change with the simulated change): {e(_compact(s['outputs_now']))}"
            )
        if s.get("diff"):
            lines.extend("        " + e(line) for line in str(s["diff"]).splitlines())
    if not plan.get("rollback_enabled", True):
        lines.append("Rollback plan: none (spec.rollback.enabled is false)")
    elif any(r.get("kind") != "nothing" for r in plan["rollback"]):
        lines.append("Rollback plan, if a step fails (completed steps, in reverse completion order):")
        for i, r in enumerate(plan["rollback"], 1):
            lines.append(f"  {i}. {e(undo_text(r))}")
    else:
        lines.append("Rollback plan: nothing to undo")
        lines.extend(f"  - {e(undo_text(r))}" for r in plan["rollback"])
    lines.append(f"Verdict: {_VERDICT_TEXT[plan['verdict']]}")
    return "\n".join(lines)
