"""The Kubernetes adapter, against the Kubernetes API double (a real HTTP server on 127.0.0.1).

The adapter talks to the double through the official client exactly as it would to a cluster
(kubeconfig, bearer token, REST paths, content types, dryRun=All), so what these tests see on the
double's side (`k8s.requests`, `k8s.get(...)`) is what a real API server would have been sent.
The pure parts (kubectl's rollout rules, the JSONPath subset, diffs, error mapping) are tested
directly first.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from k8s_double import K8sDouble  # tests/ is on sys.path under pytest
from k8s_double.api import Request

from wpk.adapters.base import Adapter, AdapterError, InputError, NotReversible, Outcome, StepContext
from wpk.adapters.k8s import KubernetesAdapter
from wpk.adapters.k8s.client import connect, is_conflict, status_error
from wpk.adapters.k8s.diff import changed_lines, clean, unified_diff
from wpk.adapters.k8s.jsonpath import JsonPathError, evaluate, holds, parse
from wpk.adapters.k8s.resources import Resolver, builtin, check_name
from wpk.adapters.k8s.rollout import (
    RolloutFailed,
    UnsupportedKind,
    available_status,
    ready_status,
    rollout_status,
)
from wpk.adapters.registry import create_adapter

# -- kubectl's rollout rules ----------------------------------------------------------------------


def _deployment(generation: int = 2, desired: int = 3, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": desired},
        "status": {"observedGeneration": 2, **status},
    }


@pytest.mark.parametrize(
    ("obj", "done", "message"),
    [
        (
            _deployment(generation=3),
            False,
            "Waiting for deployment spec update to be observed...",
        ),
        (
            _deployment(updatedReplicas=1, replicas=3, availableReplicas=3),
            False,
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        ),
        (
            _deployment(updatedReplicas=3, replicas=4, availableReplicas=3),
            False,
            'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
        ),
        (
            _deployment(updatedReplicas=3, replicas=3, availableReplicas=1),
            False,
            'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...',
        ),
        (
            _deployment(updatedReplicas=3, replicas=3, availableReplicas=3),
            True,
            'deployment "web" successfully rolled out',
        ),
    ],
)
def test_deployment_rollout_follows_kubectl(obj: dict[str, Any], done: bool, message: str) -> None:
    progress = rollout_status("Deployment", obj)
    assert (progress.done, progress.message) == (done, message)


def test_progress_deadline_exceeded_fails_at_once() -> None:
    obj = _deployment(
        updatedReplicas=1,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    )
    with pytest.raises(RolloutFailed, match='deployment "web" exceeded its progress deadline'):
        rollout_status("Deployment", obj)


def test_statefulset_and_daemonset_rollout_rules() -> None:
    sts = {
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 3,
            "updatedReplicas": 3,
            "currentReplicas": 3,
            "updateRevision": "db-2",
            "currentRevision": "db-1",
        },
    }
    assert rollout_status("StatefulSet", sts).message == (
        "waiting for statefulset rolling update to complete 3 pods at revision db-2..."
    )
    sts["status"]["currentRevision"] = "db-2"
    assert rollout_status("StatefulSet", sts).done
    sts["status"]["readyReplicas"] = 1
    assert rollout_status("StatefulSet", sts).message == "Waiting for 2 pods to be ready..."
    sts["status"]["readyReplicas"] = 3
    sts["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 1}
    sts["status"]["updatedReplicas"] = 1
    assert rollout_status("StatefulSet", sts).message == (
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
    )
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    with pytest.raises(UnsupportedKind):
        rollout_status("StatefulSet", sts)

    ds = {
        "metadata": {"name": "agent", "generation": 4},
        "spec": {},
        "status": {"observedGeneration": 4, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5},
    }
    assert rollout_status("DaemonSet", ds).message == (
        'Waiting for daemon set "agent" rollout to finish: 0 of 5 updated pods are available...'
    )
    ds["status"]["numberAvailable"] = 5
    assert rollout_status("DaemonSet", ds).done
    with pytest.raises(UnsupportedKind, match="no status viewer"):
        rollout_status("Pod", ds)


def test_ready_and_available() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
    }
    assert not ready_status("Pod", pod).done
    pod["status"]["conditions"][0]["status"] = "True"
    assert ready_status("Pod", pod).done
    deployment = _deployment(generation=2, desired=3, readyReplicas=2)
    assert ready_status("Deployment", deployment).message.endswith("2 of 3 replicas are ready...")
    deployment["status"]["readyReplicas"] = 3
    assert ready_status("Deployment", deployment).done
    deployment["status"]["conditions"] = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
    ]
    assert not available_status("Deployment", deployment).done
    deployment["status"]["conditions"][0]["status"] = "True"
    assert available_status("Deployment", deployment).done


# -- the JSONPath subset --------------------------------------------------------------------------

POD = {
    "metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "web"}, "annotations": {"a.b/c": "x"}},
    "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy"}]},
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
        "replicas": 3,
        "started": True,
    },
}


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        ("{.status.phase}", ["Running"]),
        (".status.phase", ["Running"]),
        ("$.status.replicas", [3]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type != 'Ready')].type", ["Initialized"]),
        (".metadata.labels['app.kubernetes.io/name']", ["web"]),
        (r".metadata.annotations.a\.b/c", ["x"]),
        (".spec.containers[1].image", ["envoy"]),
        (".spec.containers[-1].name", ["side"]),
        (".spec.containers[*].name", ["app", "side"]),
        (".status.missing", []),
        (".spec.containers[?(@.image)].name", ["app", "side"]),
    ],
)
def test_jsonpath_subset(expression: str, values: list[Any]) -> None:
    assert evaluate(parse(expression), POD) == values


@pytest.mark.parametrize(
    "expression", ["", "{}", "..status", ".status[", ".a[?(@.b=='x)]", ".a b", "x" * 2000]
)
def test_jsonpath_rejects_what_it_does_not_support(expression: str) -> None:
    with pytest.raises(JsonPathError):
        parse(expression)


def test_jsonpath_values_compare_as_kubectl_prints_them() -> None:
    assert holds([True], "true") and holds([True], True)
    assert holds([3], 3) and holds([3], "3")
    assert not holds([], "Running")
    assert not holds(["Running", "Pending"], "Running")
    assert holds([], None) and holds([None], None) and not holds(["x"], None)


# -- diffs, names, errors -------------------------------------------------------------------------


def test_diff_leaves_out_server_bookkeeping() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7", "uid": "u", "managedFields": [{"manager": "x"}]},
        "data": {"a": "1"},
        "status": {"x": 1},
    }
    after = json.loads(json.dumps(live))
    after["metadata"]["resourceVersion"] = "8"
    after["data"]["a"] = "2"
    diff = unified_diff(live, after, "ConfigMap default/c")
    assert "-  a: '1'" in diff and "+  a: '2'" in diff
    assert "resourceVersion" not in diff and "managedFields" not in diff and "status" not in diff
    assert changed_lines(diff) == 2
    assert clean(live) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
    }
    assert unified_diff(live, live, "x") == ""


def test_secret_values_never_appear_in_a_diff() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"same": "c2VjcmV0", "old": "b2xk"},
    }
    applied = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"same": "c2VjcmV0", "old": "bmV3"},
    }
    diff = unified_diff(live, applied, "Secret default/s")
    assert "c2VjcmV0" not in diff and "b2xk" not in diff and "bmV3" not in diff
    assert "-  old: '*** (before)'" in diff and "+  old: '*** (after)'" in diff
    created = unified_diff(None, {**applied, "stringData": {"token": "plain"}}, "Secret default/s")
    assert "plain" not in created and "token: '*** (after)'" in created
    assert live["data"]["old"] == "b2xk"  # the objects themselves are untouched


def test_names_cannot_escape_their_path_segment() -> None:
    for bad in ("..", ".", "a/b", "a%2Fb", "", "a b"):
        with pytest.raises(InputError):
            check_name(bad)
    deployments = builtin("deploy")
    assert deployments is not None and deployments.kind == "Deployment"
    assert deployments.path("web", "prod", "scale") == "/apis/apps/v1/namespaces/prod/deployments/web/scale"
    assert builtin("Deployment", "apps/v1beta1") is None


def test_status_errors_carry_the_servers_message_and_reason() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "message": 'deployments.apps "web" not found',
            "reason": "NotFound",
        }
    ).encode()
    error = status_error(404, "Not Found", body)
    assert error.message == 'k8s: deployments.apps "web" not found (NotFound)'
    assert not error.retryable
    assert status_error(503, "Service Unavailable", b"").retryable
    assert status_error(429, "Too Many Requests", b"").retryable
    assert not status_error(403, "Forbidden", b"<html>").retryable
    assert (
        status_error(502, "Bad Gateway", b"<html>oops</html>").message
        == "k8s: HTTP 502 Bad Gateway: <html>oops</html>"
    )
    ownership = status_error(
        409,
        "Conflict",
        json.dumps(
            {
                "kind": "Status",
                "reason": "Conflict",
                "message": "conflict",
                "details": {"causes": [{"reason": "FieldManagerConflict", "field": ".spec.replicas"}]},
            }
        ).encode(),
    )
    assert not is_conflict(ownership)
    assert is_conflict(status_error(409, "Conflict", b'{"kind": "Status", "reason": "Conflict"}'))


# == against the API double ======================================================================


_namespaces = iter(range(1, 10_000))


class Log:
    """A StepContext log sink that keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def step(log: Log | None = None, *, dry_run: bool = False) -> StepContext:
    return StepContext(
        execution_id="e-1",
        step_id="s",
        attempt=1,
        idempotency_key="e-1/s",
        dry_run=dry_run,
        log=log if log is not None else Log(),
    )


@pytest.fixture(scope="module")
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(token="test-token", converge_delay=0.2) as double:
        yield double


@pytest.fixture(scope="module")
def kubeconfig(k8s: K8sDouble, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = k8s.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", context="double")
    # A second context on the same cluster, for the allowed_contexts tests.
    config = yaml.safe_load(path.read_text())
    config["contexts"].append({"name": "other", "context": dict(config["contexts"][0]["context"])})
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def ns(k8s: K8sDouble) -> str:
    """A fresh namespace per test: tests share one double but never each other's objects."""
    name = f"t{next(_namespaces)}"
    k8s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
async def adapter(kubeconfig: Path) -> Any:
    adapter = KubernetesAdapter({"kubeconfig": str(kubeconfig), "context": "double", "poll_interval": 0.05})
    yield adapter
    await adapter.aclose()


def deployment(name: str, namespace: str, replicas: int = 3, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def configmap(
    name: str, namespace: str, data: dict[str, str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


async def converged(k8s: K8sDouble) -> None:
    await trio.to_thread.run_sync(k8s.wait_converged)


def spec_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    """What a restore must bring back: everything but server bookkeeping and status."""
    assert obj is not None
    cleaned = clean(obj)
    cleaned["metadata"].pop("annotations", None)  # controller-owned revision annotation
    return cleaned


# -- reads ----------------------------------------------------------------------------------------


async def test_get_by_name_and_by_label_selector(k8s: K8sDouble, ns: str, adapter: KubernetesAdapter) -> None:
    k8s.create(deployment("web", ns))
    k8s.create(configmap("a", ns, {"k": "1"}, {"tier": "x"}))
    k8s.create(configmap("b", ns, {"k": "2"}, {"tier": "x"}))
    k8s.create(configmap("c", ns, {"k": "3"}, {"tier": "y"}))

    outcome = await adapter.apply("get", {"kind": "Deployment", "name": "web", "namespace": ns}, step())
    obj = outcome.result["object"]
    assert obj["metadata"]["name"] == "web" and obj["spec"]["replicas"] == 3
    assert "managedFields" not in obj["metadata"]
    assert outcome.undo is None

    listed = await adapter.apply(
        "get", {"kind": "ConfigMap", "label_selector": "tier=x", "namespace": ns}, step()
    )
    items = listed.result["items"]
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"], i["data"]) for i in items] == [
        ("ConfigMap", "v1", "a", {"k": "1"}),
        ("ConfigMap", "v1", "b", {"k": "2"}),
    ]
    json.dumps(outcome.result), json.dumps(listed.result)
    selector_request = [r for r in k8s.requests if r.path == f"/api/v1/namespaces/{ns}/configmaps"][-1]
    assert selector_request.query["labelSelector"] == ["tier=x"]


async def test_missing_object_is_a_not_found_error_that_is_not_retried(
    ns: str, adapter: KubernetesAdapter
) -> None:
    with pytest.raises(AdapterError) as caught:
        await adapter.apply("get", {"kind": "Deployment", "name": "missing", "namespace": ns}, step())
    assert caught.value.message == 'k8s: deployments.apps "missing" not found (NotFound)'
    assert caught.value.retryable is False
    assert caught.value.details["status"] == 404


async def test_logs_by_name_and_selector_with_tail_and_cap(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(pod("p1", ns, {"app": "logger"}))
    k8s.add_pod_log("p1", "one\ntwo\nthree\n", namespace=ns)

    tail = await adapter.apply("logs", {"name": "p1", "namespace": ns, "tail_lines": 2}, step())
    assert tail.result["lines"] == ["two", "three"]
    assert tail.result["text"] == "two\nthree\n"
    assert tail.result["truncated"] is False
    log_request = [r for r in k8s.requests if r.path.endswith("/pods/p1/log")][-1]
    assert log_request.query["tailLines"] == ["2"]

    by_selector = await adapter.apply("logs", {"label_selector": "app=logger", "namespace": ns}, step())
    assert by_selector.result["pod"] == "p1"
    assert by_selector.result["lines"] == ["one", "two", "three"]

    capped = await adapter.apply("logs", {"name": "p1", "namespace": ns, "max_bytes": 6}, step())
    assert capped.result["text"] == "one\ntw"
    assert capped.result["truncated"] is True

    with pytest.raises(AdapterError, match="no pod"):
        await adapter.apply("logs", {"label_selector": "app=nobody", "namespace": ns}, step())


async def test_events_for_one_object_oldest_first(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=2))
    await converged(k8s)  # the controller records ScalingReplicaSet for the deployment

    def event(name: str, involved: str, reason: str, last: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": involved,
                "namespace": ns,
            },
            "reason": reason,
            "message": f"{reason} happened",
            "type": "Warning",
            "count": 2,
            "firstTimestamp": "2020-01-01T00:00:00Z",
            "lastTimestamp": last,
        }

    k8s.create(event("late", "web", "Late", "2020-01-01T00:10:00Z"))
    k8s.create(event("early", "web", "Early", "2020-01-01T00:05:00Z"))
    k8s.create(event("other", "api", "Elsewhere", "2020-01-01T00:01:00Z"))

    outcome = await adapter.apply("events", {"kind": "Deployment", "name": "web", "namespace": ns}, step())
    found = outcome.result["events"]
    reasons = [e["reason"] for e in found]
    assert reasons[:2] == ["Early", "Late"]
    assert "Elsewhere" not in reasons
    assert "ScalingReplicaSet" in reasons[2:]
    assert found[0] == {
        "type": "Warning",
        "reason": "Early",
        "message": "Early happened",
        "count": 2,
        "first_timestamp": "2020-01-01T00:00:00Z",
        "last_timestamp": "2020-01-01T00:05:00Z",
    }
    request = [r for r in k8s.requests if r.path == f"/api/v1/namespaces/{ns}/events"][-1]
    assert request.query["fieldSelector"] == [
        f"involvedObject.kind=Deployment,involvedObject.name=web,involvedObject.namespace={ns}"
    ]


# -- wait -----------------------------------------------------------------------------------------


async def test_wait_rollout_complete_after_a_scale(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=1))
    await converged(k8s)
    await adapter.apply(
        "scale", {"kind": "Deployment", "name": "web", "namespace": ns, "replicas": 3}, step()
    )

    log = Log()
    with trio.fail_after(10):
        outcome = await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": "web", "namespace": ns, "condition": "rollout-complete"},
            step(log),
        )
    status = outcome.result["object"]["status"]
    assert status["updatedReplicas"] == status["availableReplicas"] == status["replicas"] == 3
    assert log.lines[-1] == ("info", 'deployment "web" successfully rolled out')
    # The double converges 0.2 s after the scale: the first polls saw the old state and said so.
    assert any(line.startswith("Waiting for deployment") for _, line in log.lines[:-1])
    assert len(log.lines) == len(set(log.lines))  # each message once, as kubectl prints it


@pytest.mark.timing
async def test_wait_fails_at_once_on_progress_deadline_exceeded(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=2))
    await converged(k8s)
    k8s.fail_rollouts("web", namespace=ns)
    await adapter.apply(
        "patch",
        {
            "kind": "Deployment",
            "name": "web",
            "namespace": ns,
            "patch_type": "merge",
            "patch": {
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:broken"}]}}}
            },
        },
        step(),
    )
    await converged(k8s)
    started = time.monotonic()
    with pytest.raises(AdapterError) as caught:
        await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": "web", "namespace": ns, "condition": "rollout-complete"},
            step(),
        )
    assert time.monotonic() - started < 5
    assert caught.value.message == 'k8s: deployment "web" exceeded its progress deadline'
    assert caught.value.retryable is False


async def test_wait_on_a_jsonpath_condition(k8s: K8sDouble, ns: str, adapter: KubernetesAdapter) -> None:
    k8s.create(deployment("web", ns, replicas=2))
    log = Log()
    with trio.fail_after(10):
        outcome = await adapter.apply(
            "wait",
            {
                "kind": "Deployment",
                "name": "web",
                "namespace": ns,
                "jsonpath": '{.status.conditions[?(@.type=="Available")].status}',
                "value": "True",
            },
            step(log),
        )
    assert outcome.result["object"]["status"]["readyReplicas"] == 2
    assert "waiting for 'True'" in log.lines[0][1]

    with pytest.raises(InputError, match="jsonpath"):
        await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": "web", "namespace": ns, "jsonpath": "..x", "value": 1},
            step(),
        )


async def test_wait_for_a_missing_object_fails_at_once(ns: str, adapter: KubernetesAdapter) -> None:
    with trio.fail_after(2), pytest.raises(AdapterError, match="NotFound"):
        await adapter.apply(
            "wait", {"kind": "Pod", "name": "ghost", "namespace": ns, "condition": "ready"}, step()
        )


@pytest.mark.timing
async def test_wait_is_bounded_by_the_callers_cancel_scope(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=1))
    await converged(k8s)
    k8s.fail_rollouts("web", namespace=ns, progress_deadline=False)  # a hung rollout
    await adapter.apply("restart", {"kind": "Deployment", "name": "web", "namespace": ns}, step())
    started = time.monotonic()
    with trio.move_on_after(0.5) as scope:
        await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": "web", "namespace": ns, "condition": "rollout-complete"},
            step(),
        )
    assert scope.cancelled_caught
    assert time.monotonic() - started < 5


# -- writes and their compensation ----------------------------------------------------------------


async def test_scale_and_compensate_back(k8s: K8sDouble, ns: str, adapter: KubernetesAdapter) -> None:
    k8s.create(deployment("web", ns, replicas=3))
    inputs = {"kind": "Deployment", "name": "web", "namespace": ns, "replicas": 5}
    log = Log()
    outcome = await adapter.apply("scale", inputs, step(log))
    assert outcome.result == {"previous_replicas": 3, "replicas": 5}
    assert outcome.undo == {
        "kind": "Deployment",
        "api_version": "apps/v1",
        "name": "web",
        "namespace": ns,
        "context": "double",
        "replicas": 3,
    }
    assert k8s.get("Deployment", "web", ns)["spec"]["replicas"] == 5  # type: ignore[index]
    assert log.lines == [("info", "deployment.apps/web scaled")]
    patch_request = k8s.writes()[-1]
    assert (patch_request.method, patch_request.path) == (
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale",
    )
    assert patch_request.content_type == "application/merge-patch+json"
    assert patch_request.body["spec"] == {"replicas": 5}

    stored = Outcome(**json.loads(json.dumps({"result": outcome.result, "undo": outcome.undo})))
    await adapter.compensate("scale", inputs, stored, step())
    assert k8s.get("Deployment", "web", ns)["spec"]["replicas"] == 3  # type: ignore[index]


async def test_a_conflicting_write_is_retried_from_a_fresh_read(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else scales the deployment between our read and our write: 409, read again, write."""
    k8s.create(deployment("web", ns, replicas=3))
    scale_path = f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale"
    real_handle = k8s.api.handle
    interfered = []

    def handle_with_a_concurrent_writer(request: Any) -> Any:
        if request.method == "PATCH" and request.path == scale_path and not interfered:
            interfered.append(True)
            other = Request(
                "PATCH",
                scale_path,
                {},
                {"content-type": "application/merge-patch+json"},
                b'{"spec": {"replicas": 4}}',
            )
            assert real_handle(other).status == 200
        return real_handle(request)

    monkeypatch.setattr(k8s.api, "handle", handle_with_a_concurrent_writer)
    k8s.clear_requests()
    outcome = await adapter.apply(
        "scale", {"kind": "Deployment", "name": "web", "namespace": ns, "replicas": 6}, step()
    )
    assert outcome.result == {"previous_replicas": 4, "replicas": 6}  # what the write really replaced
    writes = [(r.method, r.status) for r in k8s.requests if r.path == scale_path]
    assert writes == [("GET", 200), ("PATCH", 409), ("GET", 200), ("PATCH", 200)]
    assert k8s.get("Deployment", "web", ns)["spec"]["replicas"] == 6  # type: ignore[index]


async def test_restart_sets_the_annotation_and_rolls_the_pods(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=2))
    await converged(k8s)
    pods_before = {p["metadata"]["name"] for p in k8s.list("Pod", ns)}
    assert len(pods_before) == 2

    outcome = await adapter.apply("restart", {"kind": "Deployment", "name": "web", "namespace": ns}, step())
    stamp = outcome.result["restarted_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)  # RFC 3339, as kubectl writes it
    assert abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=1)
    template = k8s.get("Deployment", "web", ns)["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": stamp}
    assert k8s.writes()[-1].content_type == "application/strategic-merge-patch+json"

    with trio.fail_after(10):
        await adapter.apply(
            "wait",
            {"kind": "Deployment", "name": "web", "namespace": ns, "condition": "rollout-complete"},
            step(),
        )
    await converged(k8s)
    pods_after = {p["metadata"]["name"] for p in k8s.list("Pod", ns)}
    assert len(pods_after) == 2 and not pods_after & pods_before

    with pytest.raises(NotReversible):
        await adapter.compensate("restart", {"name": "web"}, outcome, step())


async def test_apply_creates_then_compensation_deletes(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    manifest = configmap("flags", ns, {"checkout_v2": "false"})
    outcome = await adapter.apply("apply", {"manifest": manifest}, step())
    assert outcome.result["created"] is True
    assert outcome.result["object"]["data"] == {"checkout_v2": "false"}
    assert outcome.undo is not None and outcome.undo["created"] is True and outcome.undo["previous"] is None
    request = k8s.writes()[-1]
    assert (request.method, request.content_type) == ("PATCH", "application/apply-patch+yaml")
    assert request.query["fieldManager"] == ["wpk"] and request.query["force"] == ["false"]
    assert k8s.get("ConfigMap", "flags", ns) is not None

    await adapter.compensate("apply", {"manifest": manifest}, outcome, step())
    assert k8s.get("ConfigMap", "flags", ns) is None
    # Compensating twice finds nothing to delete and is fine.
    await adapter.compensate("apply", {"manifest": manifest}, outcome, step())


async def test_a_field_ownership_conflict_fails_without_retries(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    """`kubectl create` owns data.a; applying another value without force_conflicts is refused."""
    k8s.create(configmap("flags", ns, {"a": "1"}))
    k8s.clear_requests()
    with pytest.raises(AdapterError) as caught:
        await adapter.apply("apply", {"manifest": configmap("flags", ns, {"a": "2"})}, step())
    assert 'conflict with "kubectl-create"' in caught.value.message and "(Conflict)" in caught.value.message
    assert caught.value.retryable is False
    assert [r.method for r in k8s.writes()] == ["PATCH"]  # retrying cannot help: not retried
    assert k8s.get("ConfigMap", "flags", ns)["data"] == {"a": "1"}  # type: ignore[index]


async def test_apply_changes_then_compensation_restores(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(configmap("flags", ns, {"a": "1"}))
    before = k8s.get("ConfigMap", "flags", ns)
    manifest = configmap("flags", ns, {"a": "2", "b": "3"})
    outcome = await adapter.apply("apply", {"manifest": manifest, "force_conflicts": True}, step())
    assert outcome.result["created"] is False
    assert k8s.get("ConfigMap", "flags", ns)["data"] == {"a": "2", "b": "3"}  # type: ignore[index]
    assert outcome.undo is not None and outcome.undo["previous"]["data"] == {"a": "1"}

    await adapter.compensate("apply", {"manifest": manifest}, outcome, step())
    after = k8s.get("ConfigMap", "flags", ns)
    assert after is not None and after["data"] == {"a": "1"}
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # type: ignore[index]
    restore = k8s.writes()[-1]
    assert restore.method == "PUT" and restore.body["metadata"]["resourceVersion"]


@pytest.mark.parametrize(
    ("patch_type", "content_type", "patch", "check"),
    [
        (
            "merge",
            "application/merge-patch+json",
            {"metadata": {"labels": {"team": "sre"}}},
            lambda d: d["metadata"]["labels"]["team"] == "sre",
        ),
        (
            "strategic",
            "application/strategic-merge-patch+json",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}},
            # Strategic: the container list merges by name (a merge patch would replace the list).
            lambda d: (
                [(c["name"], c["image"]) for c in d["spec"]["template"]["spec"]["containers"]]
                == [("app", "nginx:1.28")]
            ),
        ),
        (
            "json",
            "application/json-patch+json",
            [{"op": "replace", "path": "/spec/replicas", "value": 1}],
            lambda d: d["spec"]["replicas"] == 1,
        ),
    ],
)
async def test_patch_each_type_then_compensation_restores(
    k8s: K8sDouble,
    ns: str,
    adapter: KubernetesAdapter,
    patch_type: str,
    content_type: str,
    patch: Any,
    check: Any,
) -> None:
    k8s.create(deployment("web", ns, replicas=3))
    before = k8s.get("Deployment", "web", ns)
    inputs = {"kind": "Deployment", "name": "web", "namespace": ns, "patch_type": patch_type, "patch": patch}
    outcome = await adapter.apply("patch", inputs, step())
    request = k8s.writes()[-1]
    assert (request.method, request.content_type) == ("PATCH", content_type)
    assert check(outcome.result["object"]) and check(k8s.get("Deployment", "web", ns))
    json.dumps(outcome.undo)

    await adapter.compensate("patch", inputs, outcome, step())
    assert spec_of(k8s.get("Deployment", "web", ns)) == spec_of(before)


async def test_delete_with_propagation(k8s: K8sDouble, ns: str, adapter: KubernetesAdapter) -> None:
    k8s.create(configmap("gone", ns, {"x": "1"}))
    inputs = {"kind": "ConfigMap", "name": "gone", "namespace": ns, "propagation": "Foreground"}
    outcome = await adapter.apply("delete", inputs, step())
    assert outcome.result == {} and outcome.undo is None
    # Foreground: the API marks the object and the garbage collector removes it once its
    # dependents are gone, as on a real cluster.
    assert (
        "deletionTimestamp"
        in (k8s.get("ConfigMap", "gone", ns) or {"metadata": {"deletionTimestamp": 1}})["metadata"]
    )
    await converged(k8s)
    assert k8s.get("ConfigMap", "gone", ns) is None
    request = k8s.writes()[-1]
    assert request.method == "DELETE" and request.query["propagationPolicy"] == ["Foreground"]
    with pytest.raises(NotReversible):
        await adapter.compensate("delete", inputs, outcome, step())
    with pytest.raises(AdapterError, match="NotFound"):
        await adapter.apply("delete", inputs, step())


# -- dry-run: server-side, nothing persisted ------------------------------------------------------


async def _plan_changes_nothing(
    k8s: K8sDouble, adapter: KubernetesAdapter, action: str, inputs: dict[str, Any]
) -> Any:
    k8s.clear_requests()
    version = k8s.resource_version
    plan = await adapter.plan(action, inputs, step(dry_run=True))
    writes = k8s.writes()
    assert writes, "a server-side dry-run sends the write"
    assert all(r.query.get("dryRun") == ["All"] for r in writes), [
        (r.method, r.path, r.query) for r in writes
    ]
    assert all(r.status < 300 for r in writes)
    assert k8s.resource_version == version  # nothing stored, nothing changed
    return plan


async def test_every_write_plans_with_dry_run_all_and_changes_nothing(
    k8s: K8sDouble, ns: str, adapter: KubernetesAdapter
) -> None:
    k8s.create(deployment("web", ns, replicas=3))
    k8s.create(configmap("flags", ns, {"a": "1"}))
    await converged(k8s)
    before = {kind: k8s.get(kind, name, ns) for kind, name in (("Deployment", "web"), ("ConfigMap", "flags"))}
    target = {"kind": "Deployment", "name": "web", "namespace": ns}

    scale = await _plan_changes_nothing(k8s, adapter, "scale", {**target, "replicas": 5})
    assert scale.summary == f"scale Deployment {ns}/web: replicas 3 -> 5"
    assert scale.result == {"previous_replicas": 3, "replicas": 5}
    assert scale.inverse == f"scale Deployment {ns}/web back to 3 replicas"
    assert "-  replicas: 3" in (scale.diff or "") and "+  replicas: 5" in (scale.diff or "")

    restart = await _plan_changes_nothing(k8s, adapter, "restart", target)
    assert "kubectl.kubernetes.io/restartedAt" in (restart.diff or "")
    assert restart.inverse.startswith("none")

    apply_update = await _plan_changes_nothing(
        k8s, adapter, "apply", {"manifest": configmap("flags", ns, {"a": "2"}), "force_conflicts": True}
    )
    assert "-  a: '1'" in (apply_update.diff or "") and "+  a: '2'" in (apply_update.diff or "")
    assert apply_update.summary.startswith(f"update ConfigMap {ns}/flags")
    assert apply_update.details["request"]["content_type"] == "application/apply-patch+yaml"

    apply_create = await _plan_changes_nothing(
        k8s, adapter, "apply", {"manifest": configmap("new", ns, {"n": "1"})}
    )
    assert apply_create.summary == f"create ConfigMap {ns}/new (server-side apply)"
    assert (apply_create.diff or "").startswith("--- /dev/null")
    assert apply_create.inverse == f"delete ConfigMap {ns}/new"

    for patch_type, patch in (
        ("merge", {"metadata": {"labels": {"x": "y"}}}),
        ("strategic", {"spec": {"replicas": 4}}),
        ("json", [{"op": "replace", "path": "/spec/replicas", "value": 2}]),
    ):
        planned = await _plan_changes_nothing(
            k8s, adapter, "patch", {**target, "patch_type": patch_type, "patch": patch}
        )
        assert planned.diff and planned.summary.startswith(f"patch Deployment {ns}/web ({patch_type}")

    delete = await _plan_changes_nothing(k8s, adapter, "delete", target)
    assert delete.summary == f"delete Deployment {ns}/web (propagation Background)"
    assert "-kind: Deployment" in (delete.diff or "")

    assert k8s.get("ConfigMap", "new", ns) is None
    for (kind, name), obj in zip(
        (("Deployment", "web"), ("ConfigMap", "flags")), before.values(), strict=True
    ):
        assert k8s.get(kind, name, ns) == obj


async def test_plan_of_a_read_sends_nothing(k8s: K8sDouble, adapter: KubernetesAdapter) -> None:
    k8s.clear_requests()
    plan = await adapter.plan("get", {"kind": "Deployment", "name": "web"}, step(dry_run=True))
    assert "read-only" in plan.summary
    assert k8s.requests == []


async def test_a_plan_the_server_rejects_fails_with_its_message(ns: str, adapter: KubernetesAdapter) -> None:
    with pytest.raises(AdapterError, match="NotFound"):
        await adapter.plan(
            "scale", {"kind": "Deployment", "name": "nope", "namespace": ns, "replicas": 1}, step()
        )


# -- configuration, contexts, transport -----------------------------------------------------------


async def test_a_step_may_only_use_allowed_contexts(k8s: K8sDouble, kubeconfig: Path, ns: str) -> None:
    k8s.create(configmap("c", ns, {"a": "1"}))
    inputs = {"kind": "ConfigMap", "name": "c", "namespace": ns}
    strict = KubernetesAdapter({"kubeconfig": str(kubeconfig), "context": "double"})
    allowing = KubernetesAdapter(
        {"kubeconfig": str(kubeconfig), "context": "double", "allowed_contexts": ["other"]}
    )
    try:
        k8s.clear_requests()
        with pytest.raises(InputError, match="'other' is not allowed"):
            await strict.apply("get", {**inputs, "context": "other"}, step())
        assert k8s.requests == []  # refused before anything was sent
        outcome = await allowing.apply("get", {**inputs, "context": "other"}, step())
        assert outcome.result["object"]["data"] == {"a": "1"}
        assert (await strict.apply("get", {**inputs, "context": "double"}, step())).result["object"]
    finally:
        await strict.aclose()
        await allowing.aclose()


def test_configuration_is_checked_when_the_agent_starts() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        KubernetesAdapter({"kubeconfig": "/x", "token": "smuggled"})
    with pytest.raises(ValueError, match="request_timeout"):
        KubernetesAdapter({"request_timeout": 0})
    with pytest.raises(ValueError, match="allowed_contexts"):
        KubernetesAdapter({"allowed_contexts": "prod"})
    built = create_adapter("k8s", {"context": "prod", "allowed_contexts": ["staging"]})
    assert isinstance(built, KubernetesAdapter) and isinstance(built, Adapter)
    assert built.select_context(None) == "prod" and built.select_context("staging") == "staging"
    assert set(KubernetesAdapter().actions()) == {
        "get",
        "logs",
        "events",
        "wait",
        "scale",
        "restart",
        "apply",
        "patch",
        "delete",
    }


def _kubeconfig_for(
    kubeconfig: Path, tmp_path: Path, *, server: str | None = None, token: str | None = None
) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        config["users"][0]["user"]["token"] = token
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.timing
async def test_a_closed_port_fails_fast_and_is_retryable(kubeconfig: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = _kubeconfig_for(kubeconfig, tmp_path, server=f"http://127.0.0.1:{port}")
    adapter = KubernetesAdapter({"kubeconfig": str(dead), "context": "double"})
    started = time.monotonic()
    with pytest.raises(AdapterError) as caught:
        await adapter.apply("get", {"kind": "Deployment", "name": "web"}, step())
    assert time.monotonic() - started < 10
    assert caught.value.retryable is True
    assert caught.value.message.startswith(f"k8s: cannot reach the API server at http://127.0.0.1:{port}")
    await adapter.aclose()


@pytest.mark.timing
async def test_request_timeout_bounds_a_silent_server(kubeconfig: Path, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    silent = _kubeconfig_for(kubeconfig, tmp_path, server=f"http://127.0.0.1:{listener.getsockname()[1]}")
    adapter = KubernetesAdapter({"kubeconfig": str(silent), "context": "double", "request_timeout": 0.3})
    try:
        started = time.monotonic()
        with pytest.raises(AdapterError) as caught:
            await adapter.apply("get", {"kind": "Deployment", "name": "web"}, step())
        elapsed = time.monotonic() - started
        assert 0.25 < elapsed < 3, elapsed  # one attempt: a timed-out request is never re-sent
        assert caught.value.retryable is True and caught.value.reason == "Timeout"
        assert "timed out after 0.3s" in caught.value.message
    finally:
        await adapter.aclose()
        stop.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()


async def test_a_wrong_token_is_unauthorized_and_not_retried(kubeconfig: Path, tmp_path: Path) -> None:
    wrong = _kubeconfig_for(kubeconfig, tmp_path, token="not-the-token")
    adapter = KubernetesAdapter({"kubeconfig": str(wrong), "context": "double"})
    with pytest.raises(AdapterError) as caught:
        await adapter.apply("get", {"kind": "Deployment", "name": "web"}, step())
    assert caught.value.message == "k8s: Unauthorized (Unauthorized)"
    assert caught.value.retryable is False
    await adapter.aclose()


async def test_a_broken_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    missing = KubernetesAdapter({"kubeconfig": str(tmp_path / "absent"), "context": "double"})
    with pytest.raises(AdapterError) as caught:
        await missing.apply("get", {"kind": "Deployment", "name": "web"}, step())
    assert caught.value.reason == "ConfigError" and not caught.value.retryable


async def test_unknown_kinds_are_found_through_discovery(k8s: K8sDouble, kubeconfig: Path) -> None:
    client = await trio.to_thread.run_sync(
        lambda: connect(kubeconfig=str(kubeconfig), context="double", in_cluster=False, request_timeout=5)
    )
    try:
        resolver = Resolver(lambda path: client.request("GET", path), use_builtin=False)
        k8s.clear_requests()
        deploy = await resolver.resolve("deploy")
        assert (deploy.group, deploy.version, deploy.plural, deploy.namespaced) == (
            "apps",
            "v1",
            "deployments",
            True,
        )
        namespaces = await resolver.resolve("Namespace", "v1")
        assert namespaces.plural == "namespaces" and not namespaces.namespaced
        assert {r.path for r in k8s.requests} >= {"/apis", "/api/v1", "/apis/apps/v1"}
        with pytest.raises(AdapterError, match='no resource of kind "Widget"'):
            await resolver.resolve("Widget")
    finally:
        client.close()


async def test_names_that_would_leave_their_path_are_refused(
    k8s: K8sDouble, adapter: KubernetesAdapter
) -> None:
    k8s.clear_requests()
    for name in ("..", "a/b"):
        with pytest.raises(InputError):
            await adapter.apply("get", {"kind": "Deployment", "name": name}, step())
    assert k8s.requests == []
