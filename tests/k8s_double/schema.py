"""How lists merge, by where they sit in an object: the part of the OpenAPI schema patches need.

Strategic merge patch and server-side apply both need to know, for a list field, whether its
items are identified by a merge key (containers by `name`), form a set (finalizers), or are one
atomic value (args). The real server reads `x-kubernetes-list-type` / `patchMergeKey` from the
schema; the double keeps the practical subset here, keyed by the field-name path (list indices
dropped), e.g. `("spec", "template", "spec", "containers", "ports")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})

_BY_NAME = frozenset(
    {
        *_CONTAINER_LISTS,
        "volumes",
        "imagePullSecrets",
        "env",
        "resourceClaims",
        "schedulingGates",
        "readinessGates",
    }
)


@dataclass(frozen=True, slots=True)
class ListStrategy:
    kind: Literal["map", "set", "atomic"]
    keys: tuple[str, ...] = ()  # for "map": the merge key fields (the first one is the SMP merge key)


ATOMIC = ListStrategy("atomic")


def list_strategy(fields: tuple[str, ...]) -> ListStrategy:
    """The merge strategy of the list at `fields` (a path of field names, indices dropped)."""
    if not fields:
        return ATOMIC
    last = fields[-1]
    parent = fields[-2] if len(fields) > 1 else ""
    if last == "readinessGates":
        return ListStrategy("map", ("conditionType",))
    if last in _BY_NAME:
        return ListStrategy("map", ("name",))
    if last == "ports":
        if parent in _CONTAINER_LISTS:
            return ListStrategy("map", ("containerPort",))
        return ListStrategy("map", ("port",))
    if last == "volumeMounts":
        return ListStrategy("map", ("mountPath",))
    if last == "volumeDevices":
        return ListStrategy("map", ("devicePath",))
    if last == "conditions":
        return ListStrategy("map", ("type",))
    if last == "ownerReferences":
        return ListStrategy("map", ("uid",))
    if last == "hostAliases":
        return ListStrategy("map", ("ip",))
    if last == "topologySpreadConstraints":
        return ListStrategy("map", ("topologyKey", "whenUnsatisfiable"))
    if last == "finalizers":
        return ListStrategy("set")
    return ATOMIC
