"""Shared vocabulary of the simulated control plane: object helpers, status helpers, knobs."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .events import record_event
from .jsondata import clone
from .resources import by_kind
from .store import Store, now_rfc3339

DEPLOYMENT = by_kind("Deployment")
REPLICASET = by_kind("ReplicaSet")
STATEFULSET = by_kind("StatefulSet")
DAEMONSET = by_kind("DaemonSet")
POD = by_kind("Pod")
NAMESPACE = by_kind("Namespace")

NODE = "double-node-1"
MANAGER = "kube-controller-manager"
REVISION = "deployment.kubernetes.io/revision"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Knobs:
    """Test-controlled faults, keyed by (kind, namespace, name) or (namespace, pod)."""

    failing: dict[tuple[str, str, str], bool] = field(default_factory=dict)  # value: progress deadline hit
    pod_ready: dict[tuple[str, str], bool] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # pod name suffixes per owner uid


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        number, rest = divmod(number, len(_HASH_ALPHABET))
        out.append(_HASH_ALPHABET[rest])
    return "".join(out)


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(
        r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or []
    )


def deleting(obj: dict[str, Any]) -> bool:
    return "deletionTimestamp" in obj["metadata"]


def nonzero(status: dict[str, Any], *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Drop zero-valued counters, as the API's `omitempty` does (required fields are kept)."""
    return {k: v for k, v in status.items() if k in keep or v not in (0, None, "", [])}


def condition(
    old: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    update_time: bool = False,
) -> dict[str, Any]:
    """A condition that keeps its timestamps when nothing about it changed."""
    previous = next((c for c in old if c.get("type") == type_), None)
    now = now_rfc3339()
    if previous and (previous.get("status"), previous.get("reason"), previous.get("message")) == (
        status,
        reason,
        message,
    ):
        return clone(previous)
    cond = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if previous and previous.get("status") == status:
        cond["lastTransitionTime"] = previous.get("lastTransitionTime", now)
    if update_time:
        cond = {
            "type": type_,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": cond["lastTransitionTime"],
            "reason": reason,
            "message": message,
        }
    return cond


def pct_or_int(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        fraction = total * int(value[:-1]) / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return 0


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def owned(objects: list[dict[str, Any]], owner: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj for obj in objects if controlled_by(obj, owner)]


def pods_of(store: Store, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """The live (not terminating) pods `owner` controls."""
    return [p for p in owned(store.peek(POD, owner["metadata"]["namespace"]), owner) if not deleting(p)]


def event(
    store: Store, obj: dict[str, Any], reason: str, message: str, component: str, type_: str = "Normal"
) -> None:
    record_event(store, obj, reason, message, component=component, type_=type_)
