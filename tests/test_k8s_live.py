"""The Kubernetes adapter against a real cluster: the scenarios of test_k8s_adapter.py, live.

Runs when `KUBECONFIG` is set (the adapter then loads it the way the client does by default, so a
colon-separated list works; `WPK_K8S_CONTEXT` picks a context other than the current one).
Each test works in a throwaway namespace that it deletes afterwards, and only reads what the
adapter itself can read, so it needs no kubectl. Images: `registry.k8s.io/pause:3.9` and
`busybox:1.36` (set `WPK_K8S_BUSYBOX` to use a mirror).

These are the only tests in the suite allowed to skip: without a cluster there is nothing to run.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import pytest
import trio

from wpk.adapters.base import AdapterError, NotReversible, Outcome, StepContext
from wpk.adapters.k8s import KubernetesAdapter

pytestmark = [
    pytest.mark.k8s_live,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no cluster to test against"
    ),
]

PAUSE = "registry.k8s.io/pause:3.9"
BUSYBOX = os.environ.get("WPK_K8S_BUSYBOX", "busybox:1.36")
ROLLOUT_TIMEOUT = 180


def step(lines: list[str] | None = None, *, dry_run: bool = False) -> StepContext:
    sink = lines if lines is not None else []
    return StepContext(
        execution_id="live",
        step_id="s",
        attempt=1,
        idempotency_key="live/s",
        dry_run=dry_run,
        log=lambda _stream, line: sink.append(line),
    )


@pytest.fixture
async def adapter() -> Any:
    context = os.environ.get("WPK_K8S_CONTEXT")
    adapter = KubernetesAdapter({"context": context, "poll_interval": 1} if context else {"poll_interval": 1})
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def ns(adapter: KubernetesAdapter) -> Any:
    name = f"wpk-live-{secrets.token_hex(4)}"
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await adapter.apply("apply", {"manifest": manifest}, step())
    yield name
    with trio.move_on_after(30, shield=True):
        await adapter.apply("delete", {"kind": "Namespace", "name": name}, step())


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": PAUSE}]},
            },
        },
    }


async def get(adapter: KubernetesAdapter, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    try:
        outcome = await adapter.apply("get", {"kind": kind, "name": name, "namespace": ns}, step())
    except AdapterError as error:
        if error.details.get("status") == 404:
            return None
        raise
    obj: dict[str, Any] = outcome.result["object"]
    return obj


async def rollout(adapter: KubernetesAdapter, name: str, ns: str) -> dict[str, Any]:
    with trio.fail_after(ROLLOUT_TIMEOUT):
        outcome = await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": name, "namespace": ns, "condition": "rollout-complete"},
            step(),
        )
    obj: dict[str, Any] = outcome.result["object"]
    return obj


async def test_live_configmap_apply_and_compensation(adapter: KubernetesAdapter, ns: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": ns},
        "data": {"a": "1"},
    }
    created = await adapter.apply("apply", {"manifest": manifest}, step())
    assert created.result["created"] is True

    changed_manifest = {**manifest, "data": {"a": "2", "b": "3"}}
    plan = await adapter.plan("apply", {"manifest": changed_manifest}, step(dry_run=True))
    assert "+  a: '2'" in (plan.diff or "")
    assert (await get(adapter, "ConfigMap", "flags", ns) or {})["data"] == {
        "a": "1"
    }  # dry-run stored nothing

    changed = await adapter.apply("apply", {"manifest": changed_manifest}, step())
    assert changed.result["created"] is False
    assert (await get(adapter, "ConfigMap", "flags", ns) or {})["data"] == {"a": "2", "b": "3"}
    await adapter.compensate("apply", {"manifest": changed_manifest}, changed, step())
    assert (await get(adapter, "ConfigMap", "flags", ns) or {})["data"] == {"a": "1"}
    await adapter.compensate("apply", {"manifest": manifest}, created, step())
    assert await get(adapter, "ConfigMap", "flags", ns) is None


async def test_live_deployment_scale_restart_patch_delete(adapter: KubernetesAdapter, ns: str) -> None:
    await adapter.apply("apply", {"manifest": deployment("web", ns, 1)}, step())
    await rollout(adapter, "web", ns)
    target = {"kind": "Deployment", "name": "web", "namespace": ns}

    live_before = await get(adapter, "Deployment", "web", ns)
    plan = await adapter.plan("scale", {**target, "replicas": 2}, step(dry_run=True))
    assert plan.summary == f"scale Deployment {ns}/web: replicas 1 -> 2"
    live_after = await get(adapter, "Deployment", "web", ns)
    assert live_before and live_after
    assert live_after["metadata"]["resourceVersion"] == live_before["metadata"]["resourceVersion"]

    scaled = await adapter.apply("scale", {**target, "replicas": 2}, step())
    assert scaled.result == {"previous_replicas": 1, "replicas": 2}
    assert (await rollout(adapter, "web", ns))["status"]["availableReplicas"] == 2
    await adapter.compensate("scale", target, Outcome(result=scaled.result, undo=scaled.undo), step())
    assert (await get(adapter, "Deployment", "web", ns) or {})["spec"]["replicas"] == 1

    lines: list[str] = []
    restarted = await adapter.apply("restart", target, step())
    with trio.fail_after(ROLLOUT_TIMEOUT):
        await adapter.apply("wait", {**target, "condition": "rollout-complete"}, step(lines))
    assert lines[-1] == 'deployment "web" successfully rolled out'
    template = (await get(adapter, "Deployment", "web", ns) or {})["spec"]["template"]
    assert (
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        == restarted.result["restarted_at"]
    )
    with pytest.raises(NotReversible):
        await adapter.compensate("restart", target, restarted, step())

    events = await adapter.apply("events", target, step())
    assert any(e["reason"] == "ScalingReplicaSet" for e in events.result["events"])

    for patch_type, patch in (
        ("merge", {"metadata": {"labels": {"team": "sre"}}}),
        ("strategic", {"spec": {"minReadySeconds": 1}}),
        ("json", [{"op": "add", "path": "/metadata/annotations/wpk-live", "value": "yes"}]),
    ):
        before = await get(adapter, "Deployment", "web", ns)
        inputs = {**target, "patch_type": patch_type, "patch": patch}
        patched = await adapter.apply("patch", inputs, step())
        assert patched.result["object"] != before
        await adapter.compensate("patch", inputs, patched, step())
        restored = await get(adapter, "Deployment", "web", ns)
        assert restored and before
        assert restored["metadata"].get("labels") == before["metadata"].get("labels")
        assert restored["spec"] == before["spec"]

    planned_delete = await adapter.plan("delete", target, step(dry_run=True))
    assert planned_delete.summary.startswith(f"delete Deployment {ns}/web")
    assert await get(adapter, "Deployment", "web", ns) is not None
    await adapter.apply("delete", target, step())
    with pytest.raises(AdapterError) as caught:
        await adapter.apply("get", target, step())
    assert "NotFound" in caught.value.message and not caught.value.retryable


async def test_live_pod_logs_and_jsonpath_wait(adapter: KubernetesAdapter, ns: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker", "namespace": ns, "labels": {"app": "talker"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": BUSYBOX,
                    "command": ["sh", "-c", "echo one; echo two; echo three; sleep 3600"],
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
    await adapter.apply("apply", {"manifest": pod}, step())
    with trio.fail_after(ROLLOUT_TIMEOUT):
        await adapter.apply(
            "wait",
            {
                "kind": "Pod",
                "name": "talker",
                "namespace": ns,
                "jsonpath": "{.status.phase}",
                "value": "Running",
            },
            step(),
        )
    deadline = time.monotonic() + 30
    while True:
        logs = await adapter.apply(
            "logs", {"label_selector": "app=talker", "namespace": ns, "tail_lines": 2}, step()
        )
        if logs.result["lines"] == ["two", "three"] or time.monotonic() > deadline:
            break
        await trio.sleep(1)
    assert logs.result["pod"] == "talker"
    assert logs.result["lines"] == ["two", "three"]
