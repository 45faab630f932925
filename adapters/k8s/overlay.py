"""The dry-run overlay: later reads see what this run's simulated writes would have changed.

A dry-run simulates each write with `dryRun=All`; nothing is persisted, so a later real read would
see the world *before* the change (finding 1 of issue 11: a scale to 4 read back as 2 and a health
gate failed that the real run passes). The overlay remembers, per object, what the server's dry-run
answered, and answers reads of that object from it: `spec.replicas` reads 4 after a simulated
scale to 4. What no server can predict is reported, not guessed (`Unpredictable`):

- the `status` of a changed object (pods becoming ready, a rollout completing);
- objects the change causes or reshapes (Pods, ReplicaSets, Events, Endpoints ... in the namespace
  of a changed workload), pod logs there, and events there;
- a `k8s.wait` on a changed object or on such caused objects: it is not waited for.

Reads of anything else run for real as usual. Every dry-run read says `sees_simulated`, so the
engine knows the adapter accounted for its own simulated writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..base import AdapterError, Outcome, Unpredictable
from .diff import strip_managed_fields
from .target import Target

# Kinds whose objects a change to a workload creates, deletes or rewrites (controllers' work).
CAUSED_KINDS = frozenset(
    {"Pod", "ReplicaSet", "ControllerRevision", "Event", "Endpoints", "EndpointSlice", "Job"}
)
STATUS_WHY = "its status after the simulated change: no server can predict it"
CAUSED_WHY = "what the simulated change causes (pods, replica sets, events) is not predicted"
WAIT_WHY = "a wait on a simulated change is not waited for"


@dataclass(frozen=True, slots=True)
class Predicted:
    step: str  # the simulated step that changed the object
    obj: dict[str, Any] | None  # as the server's dry-run answered; None: deleted


@dataclass(slots=True)
class Overlay:
    """One run's simulated writes, by object, and the namespaces they touched."""

    objects: dict[tuple[str | None, str], Predicted] = field(default_factory=dict)
    namespaces: dict[tuple[str | None, str | None], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.objects)

    def record(self, target: Target, obj: Mapping[str, Any] | None, step: str) -> None:
        key = (target.client.context, target.path)
        self.objects[key] = Predicted(step, strip_managed_fields(dict(obj)) if obj is not None else None)
        self.namespaces[(target.client.context, target.namespace)] = step

    def lookup(self, target: Target) -> Predicted | None:
        return self.objects.get((target.client.context, target.path))

    def touched(self, context: str | None, namespace: str | None, kind: str) -> str | None:
        """The simulated step whose change may reshape objects of `kind` in `namespace`, if any."""
        if kind not in CAUSED_KINDS:
            return None
        return self.namespaces.get((context, namespace))


def predicted_object(target: Target, pred: Predicted) -> dict[str, Any]:
    if pred.obj is None:
        raise AdapterError(
            f"k8s: {target.label} would be deleted by the simulated step {pred.step!r}",
            reason="NotFound",
            details={"status": 404},
        )
    return pred.obj


def seen(result: dict[str, Any], *unknown: Unpredictable) -> Outcome:
    return Outcome(result=result, sees_simulated=True, unknown=tuple(unknown))


def status_unknown(path: tuple[str | int, ...], step: str) -> Unpredictable:
    return Unpredictable(path=(*path, "status"), step=step, why=STATUS_WHY)


def with_predictions(
    items: list[dict[str, Any]], context: str | None, paths: list[str], overlay: Overlay
) -> tuple[list[dict[str, Any]], list[Unpredictable]]:
    """A listing with each changed object as predicted (and its status unknown)."""
    out: list[dict[str, Any]] = []
    unknown: list[Unpredictable] = []
    for item, path in zip(items, paths, strict=True):
        pred = overlay.objects.get((context, path))
        if pred is None:
            out.append(item)
        elif pred.obj is not None:
            unknown.append(status_unknown(("items", len(out)), pred.step))
            out.append({**item, **pred.obj})
    return out, unknown


__all__ = ["CAUSED_KINDS", "Overlay", "Predicted", "predicted_object", "seen", "status_unknown"]
