"""Workload status as the real controllers write it: counters from the pods, zeros omitted.

Deployments also get `Available` (from `maxUnavailable`) and `Progressing`
(`NewReplicaSetAvailable`, `ReplicaSetUpdated`, `ProgressDeadlineExceeded`, `DeploymentPaused`).
"""

from __future__ import annotations

from typing import Any

from .objects import (
    DAEMONSET,
    DEPLOYMENT,
    MANAGER,
    REPLICASET,
    STATEFULSET,
    Knobs,
    condition,
    deleting,
    is_ready,
    nonzero,
    owned,
    pct_or_int,
    pods_of,
    template_hash,
)
from .selectors import match_label_selector
from .store import Store


def update_statuses(store: Store, knobs: Knobs) -> None:
    for rs in store.peek(REPLICASET):
        replicaset_status(store, knobs, rs)
    for deployment in store.peek(DEPLOYMENT):
        deployment_status(store, knobs, deployment)
    for sts in store.peek(STATEFULSET):
        statefulset_status(store, knobs, sts)
    for ds in store.peek(DAEMONSET):
        daemonset_status(store, knobs, ds)


def replicaset_status(store: Store, knobs: Knobs, rs: dict[str, Any]) -> None:
    pods = pods_of(store, rs)
    labels = (rs["spec"].get("template") or {}).get("metadata", {}).get("labels") or {}
    ready = sum(1 for p in pods if is_ready(p))
    status = nonzero(
        {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1
                for p in pods
                if match_label_selector({"matchLabels": labels}, p["metadata"].get("labels") or {})
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        },
        keep=("replicas",),
    )
    store.write_status(REPLICASET, rs, status, manager=MANAGER)


def deployment_status(store: Store, knobs: Knobs, d: dict[str, Any]) -> None:
    meta, spec = d["metadata"], d["spec"]
    ns, name = meta["namespace"], meta["name"]
    desired = int(spec.get("replicas", 1))
    sets = owned(store.peek(REPLICASET, ns), d)
    phash = template_hash(spec["template"])
    new_rs = next(
        (rs for rs in sets if rs["metadata"].get("labels", {}).get("pod-template-hash") == phash), None
    )

    def total(key: str, sets: list[dict[str, Any]]) -> int:
        return sum(int((rs.get("status") or {}).get(key, 0)) for rs in sets)

    replicas = total("replicas", sets)
    updated = total("replicas", [new_rs]) if new_rs else 0
    ready = total("readyReplicas", sets)
    available = total("availableReplicas", sets)
    new_available = total("availableReplicas", [new_rs]) if new_rs else 0
    strategy = spec.get("strategy") or {}
    max_unavailable = 0
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        max_unavailable = pct_or_int(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%"), desired, round_up=False
        )
    old_conditions = (d.get("status") or {}).get("conditions") or []
    if available >= desired - max_unavailable:
        available_cond = condition(
            old_conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            update_time=True,
        )
    else:
        available_cond = condition(
            old_conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            update_time=True,
        )
    rs_name = new_rs["metadata"]["name"] if new_rs else f"{name}-{phash}"
    complete = new_rs is not None and updated == desired and new_available == desired and replicas == desired
    if spec.get("paused"):
        progressing = condition(
            old_conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            update_time=True,
        )
    elif complete:
        progressing = condition(
            old_conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            update_time=True,
        )
    elif knobs.failing.get(("Deployment", ns, name)):
        progressing = condition(
            old_conditions,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            update_time=True,
        )
    else:
        progressing = condition(
            old_conditions,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            update_time=True,
        )
    status = nonzero(
        {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(desired - available, 0),
        }
    )
    status["conditions"] = [available_cond, progressing]
    store.write_status(DEPLOYMENT, d, status, manager=MANAGER)


def statefulset_status(store: Store, knobs: Knobs, sts: dict[str, Any]) -> None:
    if deleting(sts):
        return
    spec = sts["spec"]
    name = sts["metadata"]["name"]
    revision = f"{name}-{template_hash(spec['template'])}"
    pods = pods_of(store, sts)
    updated = [p for p in pods if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision]
    ready = sum(1 for p in pods if is_ready(p))
    old = sts.get("status") or {}
    desired = int(spec.get("replicas", 1))
    done = len(updated) == desired and all(is_ready(p) for p in updated)
    current_revision = revision if done else old.get("currentRevision", revision)
    status = nonzero(
        {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": len(updated) if current_revision == revision else len(pods) - len(updated),
            "updatedReplicas": len(updated),
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        },
        keep=("replicas", "availableReplicas", "collisionCount"),
    )
    store.write_status(STATEFULSET, sts, status, manager=MANAGER)


def daemonset_status(store: Store, knobs: Knobs, ds: dict[str, Any]) -> None:
    if deleting(ds):
        return
    revision = template_hash(ds["spec"]["template"])
    pods = pods_of(store, ds)
    ready = sum(1 for p in pods if is_ready(p))
    updated = sum(
        1 for p in pods if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision
    )
    status = nonzero(
        {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": 1,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 1),
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
            "numberUnavailable": max(1 - ready, 0),
        },
        keep=("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"),
    )
    store.write_status(DAEMONSET, ds, status, manager=MANAGER)
