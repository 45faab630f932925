"""Dry-run knows what it simulated (issue 11, finding 1), against the Kubernetes API double.

A scale-then-verify runbook: reads after a simulated write see the object as the server's
dry-run returned it (the overlay), what no server can predict (readiness, pods, a wait on the
change) is reported as unknown with the step it depends on, never as a pass or a failure, and
a `when` on unknown data shows its consequence instead of deciding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from example_services import deployment
from k8s_double import K8sDouble  # tests/ is on sys.path under pytest
from runbooks import run, workflow

from wpk.engine import build_plan
from wpk.engine.events import EventType

SCALE_THEN_VERIFY = """
    params: {replicas: {type: integer, default: 4}}
    steps:
      - id: before
        uses: k8s.get
        with: {kind: Deployment, name: web}
        outputs: {replicas: "{{ result.object.spec.replicas }}"}
      - id: scale
        needs: [before]
        uses: k8s.scale
        with: {kind: Deployment, name: web, replicas: "{{ params.replicas }}"}
      - id: rollout
        needs: [scale]
        uses: k8s.wait
        with: {kind: Deployment, name: web, condition: ready}
        timeout: 60s
      - id: after
        needs: [rollout]
        uses: k8s.get
        with: {kind: Deployment, name: web}
        outputs:
          replicas: "{{ result.object.spec.replicas }}"
          ready: "{{ result.object.status.readyReplicas | default(0) }}"
      - id: pods
        needs: [after]
        uses: k8s.get
        with: {kind: Pod, label_selector: app=web}
        outputs: {count: "{{ result['items'] | length }}"}
      - id: health_gate
        needs: [pods]
        when: "{{ steps.pods.outputs.count < params.replicas }}"
        uses: core.fail
        with: {message: "pods={{ steps.pods.outputs.count }}"}
"""


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(converge_delay=0.05) as double:
        double.create(deployment("web", "registry.example.com/web:1", 2, {"app": "web"}))
        double.wait_converged()
        yield double


@pytest.fixture
def config(k8s: K8sDouble, tmp_path: Path) -> dict[str, Any]:
    kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig")
    return {"k8s": {"kubeconfig": str(kubeconfig), "poll_interval": 0.05}}


async def test_scale_then_verify_dry_runs_without_a_false_failure(
    k8s: K8sDouble, config: dict[str, Any]
) -> None:
    wf = workflow(SCALE_THEN_VERIFY)
    runner, store = await run(wf, dry_run=True, adapter_config=config)
    plan = build_plan(wf, runner.state)
    steps = {s["id"]: s for s in plan["steps"]}

    # No failure, and no pass either: the outcome depends on the simulated scale.
    events = await store.events(runner.execution_id)
    assert not [e for e in events if e.type is EventType.STEP_FAILED]
    assert plan["verdict"] == "unknown"
    assert steps["before"]["status"] == "executed-read"
    assert steps["before"]["outputs"] == {"replicas": 2}
    assert steps["scale"]["status"] == "simulated"
    # The wait on the simulated change is not waited for, and says why.
    assert steps["rollout"]["status"] == "unknown"
    assert "not waited for" in steps["rollout"]["unknown"]["text"]
    assert steps["rollout"]["unknown"]["because"] == ["scale"]
    # The read after the scale sees the overlay: spec.replicas is 4; readiness is unknown.
    assert steps["after"]["status"] == "executed-read"
    assert steps["after"]["outputs"]["replicas"] == 4
    assert "outputs.ready" in steps["after"]["unknown_parts"]
    assert "depends on the simulated change of step scale" in steps["after"]["unknown_parts"]["outputs.ready"]
    # The pods the scale would create are not predicted: unknown, not "2".
    assert steps["pods"]["status"] == "unknown"
    # The health gate's condition reads unknown data: its consequence is shown, not decided.
    assert steps["health_gate"]["status"] == "would-run"
    assert "steps.pods.outputs.count" in steps["health_gate"]["condition"]
    assert steps["health_gate"]["summary"].startswith("if its condition holds: fails: pods=<unknown - ")
    # Nothing was written for real.
    assert all("All" in w.query.get("dryRun", []) for w in k8s.writes())
    assert (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 2


async def test_the_real_run_of_the_same_runbook_completes(k8s: K8sDouble, config: dict[str, Any]) -> None:
    runner, _ = await run(workflow(SCALE_THEN_VERIFY), adapter_config=config)
    assert str(runner.state.status) == "completed", runner.state.error
    assert runner.state.steps["after"].outputs == {"replicas": 4, "ready": 4}
    assert str(runner.state.steps["health_gate"].status) == "skipped"


async def test_reads_after_a_simulated_apply_delete_and_patch(k8s: K8sDouble, config: dict[str, Any]) -> None:
    wf = workflow("""
        steps:
          - id: create
            uses: k8s.apply
            with:
              manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: extra}, data: {a: "1"}}
          - id: read_created
            needs: [create]
            uses: k8s.get
            with: {kind: ConfigMap, name: extra}
            outputs: {a: "{{ result.object.data.a }}"}
          - id: label
            uses: k8s.patch
            with: {kind: Deployment, name: web, patch_type: merge, patch: {metadata: {labels: {tier: peak}}}}
          - id: listing
            needs: [label]
            uses: k8s.get
            with: {kind: Deployment, label_selector: app=web}
            outputs:
              tier: "{{ result['items'][0].metadata.labels.tier }}"
              everything: "{{ result['items'] | length }}"
          - id: logs
            needs: [label]
            uses: k8s.logs
            with: {label_selector: app=web, tail_lines: 1}
          - id: events
            needs: [label]
            uses: k8s.events
            with: {kind: Deployment, name: web}
          - id: gone
            needs: [logs, events, listing]
            uses: k8s.delete
            with: {kind: Deployment, name: web}
          - id: after_delete
            needs: [gone]
            uses: k8s.get
            with: {kind: Deployment, name: web}
    """)
    runner, _ = await run(wf, dry_run=True, adapter_config=config)
    steps = {s["id"]: s for s in build_plan(wf, runner.state)["steps"]}
    # The created ConfigMap does not exist, yet the read after the simulated apply sees it.
    assert k8s.get("ConfigMap", "extra") is None
    assert steps["read_created"]["outputs"] == {"a": "1"}
    # A listing holds the patched object as the server's dry-run returned it.
    assert steps["listing"]["outputs"]["tier"] == "peak"
    # Reading the whole list reads the unknown status too: unknown (conservative, never wrong).
    assert steps["listing"]["outputs"]["everything"].startswith(
        "unknown - depends on the simulated change of step label"
    )
    assert "result.items.0.status" in steps["listing"]["unknown_parts"]
    # Logs and events in the namespace of the changed workload are what the change causes.
    assert steps["logs"]["status"] == "unknown" and steps["events"]["status"] == "unknown"
    # After a simulated delete the object is gone: a read fails, but only "unknown".
    assert steps["after_delete"]["status"] == "unknown"
    assert "would be deleted by the simulated step 'gone'" in steps["after_delete"]["summary"]
    assert k8s.get("Deployment", "web") is not None
