"""The Kubernetes API double, exercised through the OFFICIAL `kubernetes` client over real HTTP.

If the typed client (`AppsV1Api`, `CoreV1Api`), `DynamicClient` and the kubeconfig loader work
against the double unchanged, adapter tests built on it exercise the same code path they would
against a cluster.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from k8s_double import ApiError, K8sDouble
from k8s_double.patches import PatchError, json_patch, merge_patch, strategic_merge_patch
from k8s_double.selectors import parse_label_selector
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

TOKEN = "test-token"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(token=TOKEN, converge_delay=0.05) as double:
        yield double


# The client's models make every field Optional; the tests read them as `Any` and let the
# assertions say what must be there.
@pytest.fixture
def apps(k8s: K8sDouble) -> Any:
    return client.AppsV1Api(k8s.api_client())


@pytest.fixture
def core(k8s: K8sDouble) -> Any:
    return client.CoreV1Api(k8s.api_client())


def stored(k8s: K8sDouble, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
    obj = k8s.get(kind, name, namespace)
    assert obj is not None, f"{kind} {namespace}/{name} is not stored"
    return obj


def deployment(
    name: str = "web", replicas: int = 2, labels: dict[str, str] | None = None, image: str = "nginx:1.25"
) -> dict[str, Any]:
    pod_labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def status_body(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    return body


def restart(apps: Any, name: str, stamp: str) -> None:
    """What `kubectl rollout restart` sends."""
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    apps.patch_namespaced_deployment(name, "default", patch)


# -- auth, discovery, kubeconfig ---------------------------------------------------------------


def test_requests_without_the_bearer_token_get_401_status(k8s: K8sDouble) -> None:
    anonymous: Any = client.ApiClient(client.Configuration(host=k8s.url))
    wrong = client.Configuration(host=k8s.url)
    wrong.api_key = {"authorization": "Bearer not-the-token"}
    wrong_client: Any = client.ApiClient(wrong)
    try:
        for api_client in (anonymous, wrong_client):
            with pytest.raises(ApiException) as caught:
                client.CoreV1Api(api_client).list_namespace()
            assert caught.value.status == 401
            body = status_body(caught.value)
            assert body["reason"] == "Unauthorized" and body["code"] == 401
    finally:
        anonymous.close()
        wrong_client.close()
    assert [r.status for r in k8s.requests] == [401, 401]


def test_dynamic_client_discovers_resources_and_subresources(k8s: K8sDouble) -> None:
    dyn = k8s.dynamic_client()
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and deployments.name == "deployments"
    assert {"get", "list", "patch", "update", "create", "delete"} <= set(deployments.verbs)
    assert deployments.subresources["scale"].kind == "Scale"
    assert dyn.resources.get(api_version="v1", kind="Pod").subresources["log"].verbs == ["get"]
    assert not dyn.resources.get(api_version="v1", kind="Namespace").namespaced
    for kind in ("StatefulSet", "ReplicaSet", "DaemonSet"):
        assert dyn.resources.get(api_version="apps/v1", kind=kind).group == "apps"
    for kind in ("Service", "ConfigMap", "Event"):
        assert dyn.resources.get(api_version="v1", kind=kind).group == ""
    assert dyn.version["kubernetes"]["major"] == "1"
    paths = {r.path for r in k8s.requests}
    assert {"/version", "/apis", "/apis/apps/v1", "/api/v1"} <= paths


def test_kubeconfig_works_with_the_official_loader(k8s: K8sDouble, tmp_path: Path) -> None:
    path = k8s.write_kubeconfig(tmp_path / "kube" / "config", context="double", namespace="default")
    load: Any = config.new_client_from_config  # untyped in the client
    api_client = load(config_file=str(path), context="double")
    try:
        core: Any = client.CoreV1Api(api_client)
        names = {n.metadata.name for n in core.list_namespace().items}
    finally:
        api_client.close()
    assert "default" in names and "kube-system" in names
    assert k8s.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_stop_is_idempotent_and_safe_before_start() -> None:
    unstarted = K8sDouble()
    assert unstarted.url.startswith("http://127.0.0.1:")
    unstarted.stop()
    unstarted.stop()
    with K8sDouble() as double:
        url = double.url
    double.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/version", headers={"Authorization": f"Bearer {TOKEN}"})


# -- CRUD ----------------------------------------------------------------------------------------


def test_create_sets_server_metadata_and_get_list_filter_by_labels(k8s: K8sDouble, apps: Any) -> None:
    created = apps.create_namespaced_deployment("default", deployment("web", labels={"tier": "front"}))
    apps.create_namespaced_deployment("default", deployment("api", labels={"tier": "back", "canary": "yes"}))
    apps.create_namespaced_deployment("default", deployment("batch", labels={"tier": "jobs"}))
    meta = created.metadata
    assert meta.uid and meta.generation == 1 and meta.creation_timestamp is not None
    assert int(meta.resource_version) > 0
    assert meta.managed_fields[0].manager == "OpenAPI-Generator"
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted by the server

    def names(selector: str) -> list[str]:
        return [
            d.metadata.name for d in apps.list_namespaced_deployment("default", label_selector=selector).items
        ]

    assert names("app=web") == ["web"]
    assert names("tier in (front,back)") == ["api", "web"]
    assert names("tier notin (front),!canary") == ["batch"]
    assert names("tier!=jobs,canary") == ["api"]
    assert apps.read_namespaced_deployment("web", "default").metadata.uid == meta.uid
    assert len(apps.list_deployment_for_all_namespaces().items) == 3
    with pytest.raises(ApiException) as caught:
        apps.list_namespaced_deployment("default", label_selector="tier in ()")
    assert caught.value.status == 400


def test_list_pages_with_limit_and_continue(k8s: K8sDouble, core: Any) -> None:
    for i in range(5):
        k8s.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}
        )
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map("default", limit=2, _continue=second.metadata._continue)
    assert [c.metadata.name for c in second.items + third.items] == ["cm-2", "cm-3", "cm-4"]
    assert third.metadata._continue is None


def test_create_existing_is_409_already_exists(apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", deployment())
    assert caught.value.status == 409
    body = status_body(caught.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'deployments.apps "web" already exists'
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


def test_replace_with_stale_resource_version_is_409_conflict(k8s: K8sDouble, apps: Any) -> None:
    # The controller would bump resourceVersion (status) between the read and the replace on a
    # loaded machine, as a real cluster's would: this test is about the API server's check alone.
    k8s.pause_controller()
    stale = apps.read_namespaced_deployment("web", "default") if k8s.get("Deployment", "web") else None
    assert stale is None
    original = apps.create_namespaced_deployment("default", deployment())
    fresh = apps.read_namespaced_deployment("web", "default")
    fresh.spec.replicas = 4
    replaced = apps.replace_namespaced_deployment("web", "default", fresh)
    assert replaced.spec.replicas == 4 and replaced.metadata.generation == 2
    assert int(replaced.metadata.resource_version) > int(original.metadata.resource_version)
    original.spec.replicas = 1
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", original)
    assert caught.value.status == 409
    body = status_body(caught.value)
    assert body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    assert stored(k8s, "Deployment", "web")["spec"]["replicas"] == 4


def test_generation_counts_spec_changes_only(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"team": "sre"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    unchanged = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert unchanged.metadata.resource_version == scaled.metadata.resource_version


def test_the_three_patch_types(k8s: K8sDouble, apps: Any) -> None:
    k8s.pause_controller()  # patch semantics alone: no rollout annotation racing the reads
    manifest = deployment()
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    apps.create_namespaced_deployment("default", manifest)

    # strategic merge: containers merge by name, the sidecar survives
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
    )
    containers = stored(k8s, "Deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:2"), ("sidecar", "envoy:1")]

    # merge patch: lists are replaced whole, null deletes a key
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "metadata": {"labels": {"app": None, "team": "sre"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox"}]}}},
        },
        _content_type="application/merge-patch+json",
    )
    obj = stored(k8s, "Deployment", "web")
    assert obj["metadata"]["labels"] == {"team": "sre"}
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["only"]

    # JSON patch: test + replace + add, all or nothing
    apps.patch_namespaced_deployment(
        "web",
        "default",
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}},
        ],
    )
    obj = stored(k8s, "Deployment", "web")
    assert obj["spec"]["replicas"] == 5 and obj["metadata"]["annotations"] == {"a": "b"}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            "web",
            "default",
            [
                {"op": "replace", "path": "/spec/replicas", "value": 1},
                {"op": "test", "path": "/spec/replicas", "value": 99},
            ],
        )
    assert caught.value.status == 422 and status_body(caught.value)["reason"] == "Invalid"
    assert stored(k8s, "Deployment", "web")["spec"]["replicas"] == 5
    kinds = [r.content_type for r in k8s.writes() if r.method == "PATCH"]
    assert kinds == [
        "application/strategic-merge-patch+json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/json-patch+json",
    ]


def test_strategic_merge_directives_and_unknown_patch_type(k8s: K8sDouble, apps: Any) -> None:
    manifest = deployment()
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    apps.create_namespaced_deployment("default", manifest)
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    names = [c["name"] for c in stored(k8s, "Deployment", "web")["spec"]["template"]["spec"]["containers"]]
    assert names == ["app"]
    # the typed client refuses unknown media types itself, so speak HTTP directly
    answer = httpx.patch(
        f"{k8s.url}/apis/apps/v1/namespaces/default/deployments/web",
        content=b"<spec/>",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
    )
    assert answer.status_code == 415 and answer.json()["reason"] == "UnsupportedMediaType"


def test_delete_returns_status_then_404(k8s: K8sDouble, apps: Any, core: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    assert len(k8s.list("Pod")) == 2
    result = apps.delete_namespaced_deployment("web", "default", propagation_policy="Background")
    assert result["status"] == "Success" and result["details"]["name"] == "web"
    assert k8s.get("Deployment", "web") is None
    k8s.wait_converged()
    assert k8s.list("ReplicaSet") == [] and k8s.list("Pod") == []  # the garbage collector ran
    with pytest.raises(ApiException) as caught:
        apps.delete_namespaced_deployment("web", "default")
    assert caught.value.status == 404
    assert status_body(caught.value)["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solo"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    deleted_pod = core.delete_namespaced_pod("solo", "default")
    assert deleted_pod.metadata.name == "solo"  # pods answer with the object, as the real server does


def test_delete_orphan_and_foreground(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment("keep"))
    apps.create_namespaced_deployment("default", deployment("fg"))
    k8s.wait_converged()
    apps.delete_namespaced_deployment(
        "keep", "default", body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    k8s.wait_converged()
    orphans = k8s.list("ReplicaSet")
    assert [rs["metadata"]["name"].startswith("keep-") for rs in orphans].count(True) == 1
    assert all(
        "ownerReferences" not in rs["metadata"] for rs in orphans if rs["metadata"]["name"].startswith("keep")
    )
    k8s.pause_controller()
    pending = apps.delete_namespaced_deployment("fg", "default", propagation_policy="Foreground")
    assert pending["kind"] == "Deployment" and "deletionTimestamp" in pending["metadata"]
    assert "foregroundDeletion" in pending["metadata"]["finalizers"]
    assert k8s.get("Deployment", "fg") is not None
    k8s.resume_controller()
    k8s.wait_converged()
    assert k8s.get("Deployment", "fg") is None
    assert not [p for p in k8s.list("Pod") if p["metadata"]["name"].startswith("fg-")]


# -- server-side apply -------------------------------------------------------------------------


def test_server_side_apply_creates_updates_prunes_and_reports_conflicts(k8s: K8sDouble, apps: Any) -> None:
    dyn = k8s.dynamic_client()
    resource = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    manifest = deployment(labels={"team": "sre"})
    manifest["metadata"]["namespace"] = "default"
    created = resource.server_side_apply(body=manifest, field_manager="wpk")
    assert created.metadata.managedFields[0].manager == "wpk"
    assert created.metadata.managedFields[0].operation == "Apply"
    assert k8s.writes()[-1].status == 201

    # re-apply without the label: the applier owned it alone, so it is removed
    del manifest["metadata"]["labels"]["team"]
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    updated = resource.server_side_apply(body=manifest, field_manager="wpk")
    assert updated.metadata.labels.to_dict() == {"app": "web"}
    assert updated.spec.template.spec.containers[0].image == "nginx:2"
    assert updated.metadata.generation == 2

    # someone scales through the scale subresource: they now own .spec.replicas
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    with pytest.raises(ApiException) as caught:
        resource.server_side_apply(body=manifest, field_manager="wpk")  # still says replicas: 2
    assert caught.value.status == 409
    body = status_body(caught.value)
    assert body["reason"] == "Conflict"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "field": ".spec.replicas",
            "message": 'conflict with "OpenAPI-Generator" using apps/v1',
        }
    ]
    assert stored(k8s, "Deployment", "web")["spec"]["replicas"] == 5

    forced = resource.server_side_apply(body=manifest, field_manager="wpk", force_conflicts=True)
    assert forced.spec.replicas == 2
    owners = {e.manager: e.fieldsV1.to_dict() for e in forced.metadata.managedFields}
    assert "f:replicas" in owners["wpk"]["f:spec"]
    assert "f:replicas" not in owners.get("OpenAPI-Generator", {}).get("f:spec", {})


def test_apply_via_typed_client_and_raw_yaml(k8s: K8sDouble, apps: Any) -> None:
    k8s.create(deployment())
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"x": "1"}},
    }
    apps.patch_namespaced_deployment(
        "web", "default", applied, field_manager="wpk", _content_type="application/apply-patch+yaml"
    )
    assert stored(k8s, "Deployment", "web")["metadata"]["labels"] == {"app": "web", "x": "1"}
    with pytest.raises(ApiException) as caught:  # apply needs a field manager
        apps.patch_namespaced_deployment(
            "web", "default", applied, _content_type="application/apply-patch+yaml"
        )
    assert caught.value.status == 400
    yaml_body = (
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    note: hi\n"
    )
    answer = httpx.patch(
        f"{k8s.url}/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl",
        content=yaml_body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/apply-patch+yaml"},
    )
    assert answer.status_code == 200
    assert stored(k8s, "Deployment", "web")["metadata"]["annotations"]["note"] == "hi"
    assert k8s.requests[-1].body == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"note": "hi"}},
    }


# -- scale subresource -------------------------------------------------------------------------


def test_scale_subresource_read_patch_replace(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    k8s.wait_converged()
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web")
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    patched = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert stored(k8s, "Deployment", "web")["metadata"]["generation"] == 2
    patched.spec.replicas = 4
    apps.replace_namespaced_deployment_scale("web", "default", patched)
    patched.spec.replicas = 1
    with pytest.raises(ApiException) as caught:  # the resourceVersion in `patched` is now stale
        apps.replace_namespaced_deployment_scale("web", "default", patched)
    assert caught.value.status == 409
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    assert caught.value.status == 422 and status_body(caught.value)["reason"] == "Invalid"
    k8s.wait_converged()
    assert len(k8s.list("Pod")) == 4


# -- dry run -------------------------------------------------------------------------------------


def test_dry_run_writes_validate_and_answer_but_change_nothing(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    before = {kind: k8s.list(kind) for kind in ("Deployment", "ReplicaSet", "Pod", "Event")}
    rv = k8s.resource_version
    k8s.clear_requests()

    made = apps.create_namespaced_deployment("default", deployment("other"), dry_run="All")
    assert made.metadata.uid and made.metadata.resource_version is None
    live = apps.read_namespaced_deployment("web", "default")
    live.spec.replicas = 7
    replaced = apps.replace_namespaced_deployment("web", "default", live, dry_run="All")
    assert replaced.spec.replicas == 7 and replaced.metadata.generation == 2
    assert replaced.metadata.resource_version == live.metadata.resource_version
    assert (
        apps.patch_namespaced_deployment(
            "web", "default", {"spec": {"replicas": 8}}, dry_run="All"
        ).spec.replicas
        == 8
    )
    assert (
        apps.patch_namespaced_deployment(
            "web",
            "default",
            {"spec": {"replicas": 9}},
            dry_run="All",
            _content_type="application/merge-patch+json",
        ).spec.replicas
        == 9
    )
    assert (
        apps.patch_namespaced_deployment(
            "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 6}], dry_run="All"
        ).spec.replicas
        == 6
    )
    restart_patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "now"}}}}}
    apps.patch_namespaced_deployment("web", "default", restart_patch, dry_run="All")
    applied = (
        k8s.dynamic_client()
        .resources.get(api_version="apps/v1", kind="Deployment")
        .server_side_apply(
            body={**deployment("web", replicas=1), "metadata": {"name": "web", "namespace": "default"}},
            field_manager="wpk",
            force_conflicts=True,
            dry_run="All",
        )
    )
    assert applied.spec.replicas == 1
    scaled = apps.patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 0}}, dry_run="All"
    )
    assert scaled.spec.replicas == 0
    apps.delete_namespaced_deployment("web", "default", dry_run="All")
    with pytest.raises(ApiException) as caught:  # dry-run still validates
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": -3}}, dry_run="All")
    assert caught.value.status == 422

    k8s.wait_converged()  # a write that armed the controller would be carried out by now
    assert k8s.resource_version == rv
    assert {kind: k8s.list(kind) for kind in before} == before
    writes = [r for r in k8s.writes() if r.status < 300]
    assert len(writes) == 9 and all(r.dry_run for r in writes)
    assert all(r.query["dryRun"] == ["All"] for r in writes)


# -- errors --------------------------------------------------------------------------------------


def test_errors_are_status_bodies_the_client_parses(k8s: K8sDouble, apps: Any) -> None:
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("missing", "default")
    assert caught.value.status == 404 and caught.value.reason == "Not Found"
    assert status_body(caught.value)["message"] == 'deployments.apps "missing" not found'

    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", deployment(replicas=-1))
    body = status_body(caught.value)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Deployment"
    assert body["details"]["causes"][0]["field"] == "spec.replicas"

    nameless = deployment()
    del nameless["metadata"]["name"]
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", nameless)
    assert (
        caught.value.status == 422 and "metadata.name: Required value" in status_body(caught.value)["message"]
    )

    mismatched = deployment()
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", mismatched)
    assert caught.value.status == 422 and "does not match template" in status_body(caught.value)["message"]

    configmaps = k8s.dynamic_client().resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(ApiException) as caught:  # a Deployment body posted to configmaps
        configmaps.create(body=deployment(), namespace="default")
    assert caught.value.status == 400 and status_body(caught.value)["reason"] == "BadRequest"

    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("nowhere", deployment())
    assert (
        caught.value.status == 404
        and status_body(caught.value)["message"] == 'namespaces "nowhere" not found'
    )


def test_direct_create_validates_like_the_server(k8s: K8sDouble) -> None:
    with pytest.raises(ApiError) as caught:
        k8s.create(deployment(replicas=-2))
    assert caught.value.code == 422 and caught.value.reason == "Invalid"
    assert k8s.list("Deployment") == [] and k8s.requests == []


# -- the simulated controller ------------------------------------------------------------------


def test_controller_converges_status_pods_and_events(k8s: K8sDouble, apps: Any, core: Any) -> None:
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    k8s.wait_converged()
    d = apps.read_namespaced_deployment("web", "default")
    assert d.status.observed_generation == 1
    assert (
        d.status.replicas,
        d.status.updated_replicas,
        d.status.ready_replicas,
        d.status.available_replicas,
    ) == (3, 3, 3, 3)
    conditions = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conditions == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    [rs] = k8s.list("ReplicaSet")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert sorted(p.metadata.name for p in pods) == [f"web-{pod_hash}-{n}" for n in range(3)]
    for pod in pods:
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.metadata.owner_references[0].name == rs["metadata"]["name"]

    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    k8s.wait_converged()
    assert len(core.list_namespaced_pod("default").items) == 1
    assert apps.read_namespaced_deployment("web", "default").status.ready_replicas == 1
    messages = [
        e.message
        for e in core.list_namespaced_event(
            "default", field_selector="involvedObject.kind=Deployment,involvedObject.name=web"
        ).items
    ]
    assert messages == [
        f"Scaled up replica set web-{pod_hash} from 0 to 3",
        f"Scaled down replica set web-{pod_hash} from 3 to 1",
    ]


def test_status_lags_until_the_controller_acts(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    k8s.pause_controller()
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    lagging = apps.read_namespaced_deployment("web", "default")
    assert lagging.metadata.generation == 2 and lagging.status.observed_generation == 1
    with pytest.raises(TimeoutError):
        k8s.wait_converged(timeout=0.1)
    k8s.resume_controller()
    k8s.wait_converged()
    settled = apps.read_namespaced_deployment("web", "default")
    assert settled.status.observed_generation == 2 and settled.status.ready_replicas == 4


def test_restarted_at_annotation_rolls_the_pods(k8s: K8sDouble, apps: Any, core: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    old_pods = {p["metadata"]["name"] for p in k8s.list("Pod")}
    restart(apps, "web", "2024-05-01T10:00:00Z")
    k8s.wait_converged()
    new_pods = {p["metadata"]["name"] for p in k8s.list("Pod")}
    assert len(new_pods) == 2 and not new_pods & old_pods
    for pod in k8s.list("Pod"):
        assert pod["metadata"]["annotations"][RESTARTED_AT] == "2024-05-01T10:00:00Z"
    sets = {rs["metadata"]["name"]: rs for rs in k8s.list("ReplicaSet")}
    assert sorted(rs["spec"]["replicas"] for rs in sets.values()) == [0, 2]
    d = apps.read_namespaced_deployment("web", "default")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert (d.status.observed_generation, d.status.updated_replicas) == (2, 2)
    reasons = [
        e.reason
        for e in core.list_namespaced_event("default", field_selector="involvedObject.name=web").items
    ]
    assert reasons == ["ScalingReplicaSet"] * 3  # up old, up new, down old


def test_fail_rollouts_reports_progress_deadline_exceeded_then_heals(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    k8s.fail_rollouts("web")
    restart(apps, "web", "t1")
    k8s.wait_converged()
    d = apps.read_namespaced_deployment("web", "default")
    progressing = {c.type: c for c in d.status.conditions}["Progressing"]
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert d.status.updated_replicas == 2 and d.status.ready_replicas == 2  # the old pods still serve
    assert d.status.replicas == 4
    unready = [p for p in k8s.list("Pod") if p["metadata"].get("annotations", {}).get(RESTARTED_AT) == "t1"]
    assert len(unready) == 2
    assert all(
        c["status"] == "False" for p in unready for c in p["status"]["conditions"] if c["type"] == "Ready"
    )
    warnings = [e for e in k8s.list("Event") if e["type"] == "Warning"]
    assert {e["reason"] for e in warnings} == {"Unhealthy"}

    k8s.heal_rollouts("web")
    k8s.wait_converged()
    d = apps.read_namespaced_deployment("web", "default")
    assert {c.type: c.reason for c in d.status.conditions}["Progressing"] == "NewReplicaSetAvailable"
    assert (d.status.replicas, d.status.ready_replicas) == (2, 2)


def test_hung_rollout_and_unready_pod(k8s: K8sDouble, apps: Any) -> None:
    k8s.fail_rollouts("web", progress_deadline=False)
    apps.create_namespaced_deployment("default", deployment())
    k8s.wait_converged()
    d = apps.read_namespaced_deployment("web", "default")
    conditions = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conditions["Progressing"] == ("True", "ReplicaSetUpdated")
    assert conditions["Available"] == ("False", "MinimumReplicasUnavailable")
    assert d.status.ready_replicas is None and d.status.unavailable_replicas == 2  # zeros are omitted
    k8s.heal_rollouts("web")
    k8s.wait_converged()
    pod = k8s.list("Pod")[0]["metadata"]["name"]
    k8s.set_pod_unready(pod)
    k8s.wait_converged()
    assert apps.read_namespaced_deployment("web", "default").status.ready_replicas == 1
    k8s.set_pod_ready(pod)
    k8s.wait_converged()
    assert apps.read_namespaced_deployment("web", "default").status.ready_replicas == 2


def test_statefulset_and_daemonset_pods(k8s: K8sDouble, apps: Any) -> None:
    template = {
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "pg:16"}]},
    }
    apps.create_namespaced_stateful_set(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template,
            },
        },
    )
    apps.create_namespaced_daemon_set(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {**template, "metadata": {"labels": {"app": "agent"}}},
            },
        },
    )
    k8s.wait_converged()
    names = sorted(p["metadata"]["name"] for p in k8s.list("Pod"))
    assert names == ["agent-0", "db-0", "db-1", "db-2"]
    sts = apps.read_namespaced_stateful_set("db", "default").status
    assert (sts.ready_replicas, sts.current_revision) == (3, sts.update_revision)
    assert apps.read_namespaced_daemon_set("agent", "default").status.number_ready == 1
    apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 1}})
    k8s.wait_converged()
    assert sorted(p["metadata"]["name"] for p in k8s.list("Pod")) == ["agent-0", "db-0"]


def test_namespace_termination_removes_its_content(k8s: K8sDouble, core: Any) -> None:
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "settings"}, "data": {"k": "v"}})
    k8s.pause_controller()
    terminating = core.delete_namespace("team-a")
    assert terminating["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("team-a", {"metadata": {"name": "late"}})
    assert caught.value.status == 403 and status_body(caught.value)["reason"] == "Forbidden"
    assert k8s.get("ConfigMap", "settings", "team-a") is not None
    k8s.resume_controller()
    k8s.wait_converged()
    assert k8s.get("Namespace", "team-a") is None and k8s.list("ConfigMap", "team-a") == []


# -- events and logs ---------------------------------------------------------------------------


def test_events_field_selectors(k8s: K8sDouble, core: Any, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment("web", replicas=1))
    apps.create_namespaced_deployment("default", deployment("api", replicas=1))
    k8s.wait_converged()
    events = core.list_namespaced_event(
        "default",
        field_selector="involvedObject.name=api,involvedObject.kind=Deployment,"
        "involvedObject.namespace=default",
    ).items
    assert [e.reason for e in events] == ["ScalingReplicaSet"]
    assert events[0].involved_object.uid == stored(k8s, "Deployment", "api")["metadata"]["uid"]
    pod = next(p for p in k8s.list("Pod") if p["metadata"]["name"].startswith("web-"))
    pod_events = core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod['metadata']['name']}"
    )
    assert [e.reason for e in pod_events.items] == ["Scheduled", "Pulled", "Started"]
    not_normal = core.list_namespaced_event("default", field_selector="type!=Normal").items
    assert not_normal == []
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_event("default", field_selector="spec.bogus=1")
    assert caught.value.status == 400 and "field label not supported" in status_body(caught.value)["message"]


def test_pod_logs_tail_since_container_previous(k8s: K8sDouble, core: Any) -> None:
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "two"},
            "spec": {"containers": [{"name": "app", "image": "a"}, {"name": "proxy", "image": "b"}]},
        }
    )
    old = datetime.now(UTC) - timedelta(hours=1)
    k8s.add_pod_log("two", "boot 1\nboot 2\n", container="app", at=old)
    k8s.add_pod_log("two", "ready\nserving\nslow request\n", container="app")
    k8s.add_pod_log("two", "proxy up\n", container="proxy")
    k8s.add_pod_log("two", "panic: out of memory\n", container="app", previous=True)

    assert (
        core.read_namespaced_pod_log("two", "default", container="app", tail_lines=2)
        == "serving\nslow request\n"
    )
    assert (
        core.read_namespaced_pod_log("two", "default", container="app", since_seconds=60)
        == "ready\nserving\nslow request\n"
    )
    assert core.read_namespaced_pod_log("two", "default", container="app").startswith("boot 1\n")
    assert core.read_namespaced_pod_log("two", "default", container="proxy") == "proxy up\n"
    assert (
        core.read_namespaced_pod_log("two", "default", container="app", previous=True)
        == "panic: out of memory\n"
    )
    stamped = core.read_namespaced_pod_log("two", "default", container="proxy", timestamps=True)
    assert stamped.endswith(" proxy up\n") and stamped[:4].isdigit()
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log("two", "default")
    assert caught.value.status == 400 and "choose one of: [app proxy]" in status_body(caught.value)["message"]
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log("two", "default", container="proxy", previous=True)
    assert caught.value.status == 400
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log("gone", "default")
    assert caught.value.status == 404
    log_request = next(r for r in k8s.requests if r.path.endswith("/log"))
    assert log_request.query["tailLines"] == ["2"]


# -- watch and the request record --------------------------------------------------------------


def test_watch_streams_added_and_modified(k8s: K8sDouble, core: Any) -> None:
    k8s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}, "data": {}})

    def change_later() -> None:
        time.sleep(0.1)
        k8s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}, "data": {}})
        core.patch_namespaced_config_map("second", "default", {"data": {"k": "v"}})

    writer = threading.Thread(target=change_later)
    writer.start()
    seen = []
    make_watch: Any = watch.Watch  # untyped in the client
    watcher = make_watch()
    for event in watcher.stream(core.list_namespaced_config_map, "default", timeout_seconds=3):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            watcher.stop()
    writer.join()
    assert seen == [("ADDED", "first"), ("ADDED", "second"), ("MODIFIED", "second")]


def test_requests_are_recorded_with_query_content_type_and_body(k8s: K8sDouble, apps: Any) -> None:
    apps.create_namespaced_deployment("default", deployment())
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}}, field_manager="wpk")
    apps.read_namespaced_deployment("web", "default")
    assert [(r.method, r.status) for r in k8s.requests] == [("POST", 201), ("PATCH", 200), ("GET", 200)]
    patch = k8s.writes()[-1]
    assert patch.path == "/apis/apps/v1/namespaces/default/deployments/web"
    assert patch.query == {"fieldManager": ["wpk"]}
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == {"spec": {"replicas": 3}}
    assert not patch.dry_run
    assert [r.method for r in k8s.writes()] == ["POST", "PATCH"]


# -- the pure parts, directly ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_json_patch_operations_and_failures() -> None:
    doc = {"a": {"b": [1, 2]}, "x~y": 1, "s/t": 2}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "remove", "path": "/x~0y"},
            {"op": "move", "from": "/s~1t", "path": "/moved"},
            {"op": "copy", "from": "/a/b", "path": "/c"},
            {"op": "test", "path": "/moved", "value": 2},
        ],
    )
    assert result == {"a": {"b": [0, 1, 2, 3]}, "moved": 2, "c": [0, 1, 2, 3]}
    assert doc == {"a": {"b": [1, 2]}, "x~y": 1, "s/t": 2}  # the input is untouched
    for bad in (
        [{"op": "remove", "path": "/nope"}],
        [{"op": "test", "path": "/x~0y", "value": True}],
        [{"op": "replace", "path": "/a/b/5", "value": 1}],
    ):
        with pytest.raises(PatchError) as caught:
            json_patch(doc, bad)
        assert not caught.value.malformed
    with pytest.raises(PatchError) as caught:
        json_patch(doc, {"op": "add"})
    assert caught.value.malformed


def test_strategic_merge_patch_lists_by_merge_key() -> None:
    spec = {
        "containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}, {"name": "b"}],
        "volumes": [{"name": "v"}],
    }
    patched = strategic_merge_patch(
        spec,
        {
            "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "c", "image": "3"}],
            "volumes": [{"$patch": "replace"}, {"name": "w"}],
        },
        ("spec",),
    )
    assert patched["containers"][0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert [c["name"] for c in patched["containers"]] == ["a", "b", "c"]
    assert patched["volumes"] == [{"name": "w"}]
    fin = strategic_merge_patch({"metadata": {"finalizers": ["x"]}}, {"metadata": {"finalizers": ["y", "x"]}})
    assert fin["metadata"]["finalizers"] == ["x", "y"]


def test_label_selector_parser() -> None:
    matches = parse_label_selector("env in (prod, staging),tier!=db,!legacy,team")
    assert matches({"env": "prod", "tier": "web", "team": "sre"})
    assert not matches({"env": "prod", "tier": "db", "team": "sre"})
    assert not matches({"env": "prod", "team": "sre", "legacy": "1"})
    assert not matches({"env": "dev", "team": "sre"})
    assert not matches({"env": "prod"})
    with pytest.raises(ApiError):
        parse_label_selector("a in b")
