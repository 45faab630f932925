"""What the workload controllers do: Deployments, ReplicaSets, StatefulSets, DaemonSets -> Pods.

- Deployment -> ReplicaSet `<name>-<pod-template-hash>` (old ones scaled to 0, history pruned)
  -> Pods `<replicaset>-<n>`; StatefulSet -> Pods `<name>-<ordinal>`; DaemonSet -> one Pod on
  the double's single node. A template change (e.g. the `kubectl.kubernetes.io/restartedAt`
  annotation) replaces the pods.
- `converge` runs one whole step: garbage collection, the controllers, the kubelet, then status
  (see `collector.py`, `kubelet.py`, `workload_status.py`); Events go with every action.
"""

from __future__ import annotations

from typing import Any

from .collector import collect_garbage, terminate_namespaces
from .jsondata import clone
from .kubelet import run_kubelet
from .objects import (
    DAEMONSET,
    DEPLOYMENT,
    MANAGER,
    NODE,
    POD,
    REPLICASET,
    REVISION,
    STATEFULSET,
    Knobs,
    deleting,
    event,
    is_ready,
    owned,
    owner_ref,
    pods_of,
    template_hash,
)
from .store import Store
from .workload_status import update_statuses


class Workloads:
    def __init__(self, store: Store, knobs: Knobs) -> None:
        self.store = store
        self.knobs = knobs

    def converge(self) -> None:
        """One step of the whole control plane, in dependency order."""
        terminate_namespaces(self.store)
        collect_garbage(self.store)
        for deployment in self.store.peek(DEPLOYMENT):
            if not deleting(deployment):
                self._deployment(deployment)
        for rs in self.store.peek(REPLICASET):
            if not deleting(rs):
                self._replicaset(rs)
        for sts in self.store.peek(STATEFULSET):
            if not deleting(sts):
                self._statefulset(sts)
        for ds in self.store.peek(DAEMONSET):
            if not deleting(ds):
                self._daemonset(ds)
        run_kubelet(self.store, self.knobs)
        update_statuses(self.store, self.knobs)

    def _deployment(self, d: dict[str, Any]) -> None:
        meta, spec = d["metadata"], d["spec"]
        ns, name = meta["namespace"], meta["name"]
        replicas = int(spec.get("replicas", 1))
        sets = owned(self.store.peek(REPLICASET, ns), d)
        if spec.get("paused"):
            return
        phash = template_hash(spec["template"])
        new_rs = next(
            (rs for rs in sets if rs["metadata"].get("labels", {}).get("pod-template-hash") == phash), None
        )
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in sets]
        revision = str(max(revisions, default=0) + 1)
        if new_rs is None:
            template = clone(spec["template"])
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = phash
            selector = clone(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = phash
            rs_body = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{phash}",
                    "namespace": ns,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {
                        REVISION: revision,
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas),
                    },
                    "ownerReferences": [owner_ref(d)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
            new_rs = self.store.create(REPLICASET, rs_body, namespace=ns, manager=MANAGER, actor="controller")
            event(
                self.store,
                d,
                "ScalingReplicaSet",
                f"Scaled up replica set {new_rs['metadata']['name']} from 0 to {replicas}",
                "deployment-controller",
            )
        else:
            current = int(new_rs["spec"].get("replicas", 0))
            annotations = new_rs["metadata"].get("annotations", {})
            is_newest = int(annotations.get(REVISION, "0")) == max(revisions, default=0)
            if current != replicas or not is_newest:
                body = clone(new_rs)
                body["spec"]["replicas"] = replicas
                if not is_newest:
                    body["metadata"].setdefault("annotations", {})[REVISION] = revision
                new_rs = self.store.update(
                    REPLICASET,
                    body,
                    namespace=ns,
                    name=new_rs["metadata"]["name"],
                    manager=MANAGER,
                    actor="controller",
                )
                if current != replicas:
                    verb = "up" if replicas > current else "down"
                    event(
                        self.store,
                        d,
                        "ScalingReplicaSet",
                        f"Scaled {verb} replica set {new_rs['metadata']['name']} "
                        f"from {current} to {replicas}",
                        "deployment-controller",
                    )
        failing = ("Deployment", ns, name) in self.knobs.failing
        old_sets = [rs for rs in sets if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        for rs in old_sets:
            current = int(rs["spec"].get("replicas", 0))
            if current > 0 and not failing:
                body = clone(rs)
                body["spec"]["replicas"] = 0
                self.store.update(
                    REPLICASET,
                    body,
                    namespace=ns,
                    name=rs["metadata"]["name"],
                    manager=MANAGER,
                    actor="controller",
                )
                event(
                    self.store,
                    d,
                    "ScalingReplicaSet",
                    f"Scaled down replica set {rs['metadata']['name']} from {current} to 0",
                    "deployment-controller",
                )
        history = int(spec.get("revisionHistoryLimit", 10))
        idle = sorted(
            (rs for rs in old_sets if int(rs["spec"].get("replicas", 0)) == 0 or not failing),
            key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")),
        )
        for rs in idle[: max(0, len(idle) - history)]:
            self.store.delete(REPLICASET, ns, rs["metadata"]["name"], actor="controller")
        new_revision = new_rs["metadata"].get("annotations", {}).get(REVISION, revision)
        if meta.get("annotations", {}).get(REVISION) != new_revision:
            body = clone(self.store.require(DEPLOYMENT, ns, name))
            body["metadata"].setdefault("annotations", {})[REVISION] = new_revision
            self.store.update(DEPLOYMENT, body, namespace=ns, name=name, manager=MANAGER, actor="controller")

    def _new_pod(
        self,
        owner: dict[str, Any],
        name: str,
        template: dict[str, Any],
        extra_labels: dict[str, str],
        ready: bool,
    ) -> dict[str, Any]:
        ns = owner["metadata"]["namespace"]
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}), **extra_labels}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [owner_ref(owner)],
            },
            "spec": {**clone(template.get("spec") or {}), "nodeName": NODE},
        }
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        if owner["kind"] == "ReplicaSet":
            body["metadata"]["generateName"] = f"{owner['metadata']['name']}-"
        pod = self.store.create(POD, body, namespace=ns, manager=MANAGER, actor="controller")
        self.knobs.pod_ready.setdefault((ns, name), ready)
        return pod

    def _next_name(self, owner: dict[str, Any], prefix: str) -> str:
        uid = owner["metadata"]["uid"]
        ns = owner["metadata"]["namespace"]
        while True:
            number = self.knobs.counters.get(uid, 0)
            self.knobs.counters[uid] = number + 1
            name = f"{prefix}-{number}"
            if self.store.get(POD, ns, name) is None:
                return name

    def _top_owner_failing(self, obj: dict[str, Any]) -> bool:
        ns = obj["metadata"]["namespace"]
        if (obj["kind"], ns, obj["metadata"]["name"]) in self.knobs.failing:
            return True
        for ref in obj["metadata"].get("ownerReferences") or []:
            if (ref.get("kind"), ns, ref.get("name")) in self.knobs.failing:
                return True
        return False

    def _delete_pod(self, owner: dict[str, Any], pod: dict[str, Any], component: str, message: str) -> None:
        self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"], actor="controller")
        event(self.store, owner, "SuccessfulDelete", message, component)

    def _replicaset(self, rs: dict[str, Any]) -> None:
        desired = int(rs["spec"].get("replicas", 1))
        pods = pods_of(self.store, rs)
        name = rs["metadata"]["name"]
        ready_for_new = not self._top_owner_failing(rs)
        for _ in range(desired - len(pods)):
            pod = self._new_pod(rs, self._next_name(rs, name), rs["spec"]["template"], {}, ready_for_new)
            event(
                self.store,
                rs,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )
        if len(pods) > desired:
            ranked = sorted(
                pods,
                key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
            )
            for pod in ranked[: len(pods) - desired]:
                self._delete_pod(rs, pod, "replicaset-controller", f"Deleted pod: {pod['metadata']['name']}")

    def _statefulset(self, sts: dict[str, Any]) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        name = meta["name"]
        desired = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec['template'])}"
        ready_for_new = not self._top_owner_failing(sts)
        pods = {p["metadata"]["name"]: p for p in pods_of(self.store, sts)}
        for pod_name, pod in sorted(pods.items(), reverse=True):
            ordinal = int(pod_name.rsplit("-", 1)[-1]) if pod_name.rsplit("-", 1)[-1].isdigit() else desired
            outdated = pod["metadata"].get("labels", {}).get("controller-revision-hash") != revision
            if ordinal >= desired or outdated:
                self._delete_pod(
                    sts,
                    pod,
                    "statefulset-controller",
                    f"delete Pod {pod_name} in StatefulSet {name} successful",
                )
                del pods[pod_name]
        for ordinal in range(desired):
            pod_name = f"{name}-{ordinal}"
            if pod_name not in pods:
                labels = {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                }
                self._new_pod(sts, pod_name, spec["template"], labels, ready_for_new)
                event(
                    self.store,
                    sts,
                    "SuccessfulCreate",
                    f"create Pod {pod_name} in StatefulSet {name} successful",
                    "statefulset-controller",
                )

    def _daemonset(self, ds: dict[str, Any]) -> None:
        meta, spec = ds["metadata"], ds["spec"]
        revision = template_hash(spec["template"])
        ready_for_new = not self._top_owner_failing(ds)
        pods = pods_of(self.store, ds)
        current = [
            p for p in pods if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision
        ]
        for pod in pods:
            if pod not in current[:1]:
                self._delete_pod(ds, pod, "daemonset-controller", f"Deleted pod: {pod['metadata']['name']}")
        if not current:
            labels = {
                "controller-revision-hash": revision,
                "pod-template-generation": str(meta.get("generation", 1)),
            }
            pod = self._new_pod(
                ds, self._next_name(ds, meta["name"]), spec["template"], labels, ready_for_new
            )
            event(
                self.store,
                ds,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "daemonset-controller",
            )
