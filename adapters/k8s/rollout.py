"""When is a workload ready, available, rolled out? Pure functions over one object's JSON.

`rollout_status` follows kubectl's status viewers (k8s.io/kubectl/pkg/polymorphichelpers/
rollout_status.go) rule for rule and message for message, so a runbook's `k8s.wait` with
`condition: rollout-complete` agrees with `kubectl rollout status` that SREs already trust. A
Deployment whose Progressing condition says ProgressDeadlineExceeded fails at once instead of
waiting out the step timeout.

Each function returns a `Progress` (done, and a kubectl-style line to log while waiting) or raises
`RolloutFailed` (waiting cannot help) or `UnsupportedKind`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TIMED_OUT_REASON = "ProgressDeadlineExceeded"


@dataclass(frozen=True, slots=True)
class Progress:
    done: bool
    message: str


class RolloutFailed(Exception):
    """The rollout cannot complete by waiting longer (e.g. its progress deadline passed)."""


class UnsupportedKind(ValueError):
    """The condition is not defined for this kind of object."""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _parts(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    metadata = _dict(obj.get("metadata"))
    return str(metadata.get("name", "")), metadata, _dict(obj.get("spec")), _dict(obj.get("status"))


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The status condition of this type, if the object reports one."""
    for item in _dict(obj.get("status")).get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == type_:
            return item
    return None


def _observed(metadata: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return _int(metadata.get("generation")) <= _int(status.get("observedGeneration"))


# -- rollout-complete -----------------------------------------------------------------------------


def deployment_rollout(obj: Mapping[str, Any]) -> Progress:
    name, metadata, spec, status = _parts(obj)
    if not _observed(metadata, status):
        return Progress(False, "Waiting for deployment spec update to be observed...")
    progressing = condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == TIMED_OUT_REASON:
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    updated = _int(status.get("updatedReplicas"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and updated < replicas:
        return Progress(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{updated} out of {replicas} new replicas have been updated...",
        )
    current = _int(status.get("replicas"))
    if current > updated:
        return Progress(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{current - updated} old replicas are pending termination...",
        )
    available = _int(status.get("availableReplicas"))
    if available < updated:
        return Progress(
            False,
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{available} of {updated} updated replicas are available...",
        )
    return Progress(True, f'deployment "{name}" successfully rolled out')


def daemonset_rollout(obj: Mapping[str, Any]) -> Progress:
    name, metadata, spec, status = _parts(obj)
    strategy = _dict(spec.get("updateStrategy")).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        raise UnsupportedKind("rollout status is only available for RollingUpdate strategy type")
    if not _observed(metadata, status):
        return Progress(False, "Waiting for daemon set spec update to be observed...")
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    if updated < desired:
        return Progress(
            False,
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{updated} out of {desired} new pods have been updated...",
        )
    available = _int(status.get("numberAvailable"))
    if available < desired:
        return Progress(
            False,
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{available} of {desired} updated pods are available...",
        )
    return Progress(True, f'daemon set "{name}" successfully rolled out')


def statefulset_rollout(obj: Mapping[str, Any]) -> Progress:
    _, metadata, spec, status = _parts(obj)
    strategy = _dict(spec.get("updateStrategy"))
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise UnsupportedKind("rollout status is only available for RollingUpdate strategy type")
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int(metadata.get("generation")) > observed:
        return Progress(False, "Waiting for statefulset spec update to be observed...")
    replicas = spec.get("replicas")
    ready = _int(status.get("readyReplicas"))
    if isinstance(replicas, int) and ready < replicas:
        return Progress(False, f"Waiting for {replicas - ready} pods to be ready...")
    updated = _int(status.get("updatedReplicas"))
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, Mapping):
        partition = rolling.get("partition")
        if isinstance(replicas, int) and isinstance(partition, int) and updated < replicas - partition:
            return Progress(
                False,
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {replicas - partition} new pods have been updated...",
            )
        return Progress(True, f"partitioned roll out complete: {updated} new pods have been updated...")
    update_revision = status.get("updateRevision")
    if update_revision != status.get("currentRevision"):
        return Progress(
            False,
            f"waiting for statefulset rolling update to complete {updated} pods "
            f"at revision {update_revision}...",
        )
    return Progress(
        True,
        f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods "
        f"at revision {status.get('currentRevision')}...",
    )


ROLLOUT_VIEWERS: dict[str, Callable[[Mapping[str, Any]], Progress]] = {
    "Deployment": deployment_rollout,
    "DaemonSet": daemonset_rollout,
    "StatefulSet": statefulset_rollout,
}


def rollout_status(kind: str, obj: Mapping[str, Any]) -> Progress:
    viewer = ROLLOUT_VIEWERS.get(kind)
    if viewer is None:
        raise UnsupportedKind(f"no status viewer has been implemented for {kind}")
    return viewer(obj)


# -- ready / available ----------------------------------------------------------------------------


def _condition_true(obj: Mapping[str, Any], kind: str, type_: str) -> Progress:
    name = _parts(obj)[0]
    found = condition(obj, type_)
    if found is not None and found.get("status") == "True":
        return Progress(True, f'{kind} "{name}" is {type_.lower()}')
    detail = f"{type_}={found.get('status')}" if found is not None else f"no {type_} condition yet"
    if found is not None and found.get("reason"):
        detail += f" ({found.get('reason')})"
    phase = _dict(obj.get("status")).get("phase")
    if phase:
        detail += f", phase {phase}"
    return Progress(False, f'Waiting for {kind} "{name}" to be {type_.lower()}: {detail}...')


def _replicas_at_least(obj: Mapping[str, Any], kind: str, word: str) -> Progress:
    """`word` ("ready" or "available") replicas >= the desired count, once the spec is observed."""
    name, metadata, spec, status = _parts(obj)
    if not _observed(metadata, status):
        return Progress(False, f'Waiting for {kind} "{name}" spec update to be observed...')
    if kind == "DaemonSet":
        have = _int(status.get("numberReady" if word == "ready" else "numberAvailable"))
        wanted = _int(status.get("desiredNumberScheduled"))
    else:
        have = _int(status.get(f"{word}Replicas"))
        wanted = _int(spec.get("replicas"), 1)
    if have >= wanted:
        return Progress(True, f'{kind} "{name}" is {word}: {have} of {wanted} replicas')
    return Progress(
        False, f'Waiting for {kind} "{name}" to be {word}: {have} of {wanted} replicas are {word}...'
    )


_REPLICATED = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "DaemonSet")


def ready_status(kind: str, obj: Mapping[str, Any]) -> Progress:
    """Workloads: every desired replica ready. Anything else (Pod, Node, ...): Ready condition True."""
    if kind in _REPLICATED:
        return _replicas_at_least(obj, kind, "ready")
    return _condition_true(obj, kind, "Ready")


def available_status(kind: str, obj: Mapping[str, Any]) -> Progress:
    """The Available condition where the kind reports one (Deployment, APIService); else replicas."""
    if condition(obj, "Available") is not None or kind not in _REPLICATED:
        return _condition_true(obj, kind, "Available")
    return _replicas_at_least(obj, kind, "available")
