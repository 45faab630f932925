"""The resource types the double serves, and the discovery documents built from them.

One table drives routing, storage keys, discovery (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`)
and error texts, so what `DynamicClient` discovers is exactly what the server answers.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

WRITE_VERBS = ("create", "delete", "deletecollection", "patch", "update")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = False  # a `/status` subresource; writes to the main resource keep status
    has_generation: bool = False  # metadata.generation counts spec changes
    scalable: bool = False  # a `/scale` subresource (autoscaling/v1 Scale)
    has_log: bool = False  # pods/log
    has_token: bool = False  # serviceaccounts/token (TokenRequest)
    # Field selectors the real server accepts for this type (besides metadata.name/namespace).
    field_labels: tuple[str, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def base_path(self, namespace: str | None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


def _workload(plural: str, kind: str, short: str, *, scalable: bool) -> ResourceType:
    return ResourceType(
        "apps",
        "v1",
        plural,
        kind.lower(),
        kind,
        short_names=(short,),
        categories=("all",),
        has_status=True,
        has_generation=True,
        scalable=scalable,
    )


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    _workload("deployments", "Deployment", "deploy", scalable=True),
    _workload("statefulsets", "StatefulSet", "sts", scalable=True),
    _workload("replicasets", "ReplicaSet", "rs", scalable=True),
    _workload("daemonsets", "DaemonSet", "ds", scalable=False),
    ResourceType(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        short_names=("po",),
        categories=("all",),
        has_status=True,
        has_log=True,
        field_labels=("spec.nodeName", "status.phase", "spec.restartPolicy", "status.podIP"),
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "service",
        "Service",
        short_names=("svc",),
        categories=("all",),
        has_status=True,
        field_labels=("spec.clusterIP", "spec.type"),
    ),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", short_names=("cm",)),
    ResourceType(
        "",
        "v1",
        "events",
        "event",
        "Event",
        short_names=("ev",),
        field_labels=(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    ResourceType(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        has_status=True,
        field_labels=("status.phase",),
    ),
    ResourceType(
        "", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", short_names=("sa",), has_token=True
    ),
    ResourceType("", "v1", "secrets", "secret", "Secret", field_labels=("type",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding"),
)

GROUP_VERSIONS: tuple[tuple[str, str], ...] = (
    ("", "v1"),
    ("apps", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
)


class UnknownKind(LookupError):
    pass


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def by_kind(kind: str) -> ResourceType:
    """Accept what a test would write: `Deployment`, `deployment`, `deploy`, `deployments.apps`, …"""
    wanted = kind.strip().lower()
    for rt in RESOURCE_TYPES:
        names = {rt.kind.lower(), rt.plural, rt.singular, rt.qualified, *rt.short_names}
        if wanted in names:
            return rt
    raise UnknownKind(f"the double does not serve kind {kind!r}")


def by_api_version_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.api_version == api_version and rt.kind == kind:
            return rt
    return None


def _storage_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.api_version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": _storage_hash(rt),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _subresource_entries(rt: ResourceType) -> Iterable[dict[str, Any]]:
    if rt.has_status:
        yield {
            "name": f"{rt.plural}/status",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["get", "patch", "update"],
        }
    if rt.scalable:
        yield {
            "name": f"{rt.plural}/scale",
            "singularName": "",
            "namespaced": rt.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }
    if rt.has_log:
        yield {
            "name": f"{rt.plural}/log",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["get"],
        }
    if rt.has_token:
        yield {
            "name": f"{rt.plural}/token",
            "singularName": "",
            "namespaced": rt.namespaced,
            "group": "authentication.k8s.io",
            "version": "v1",
            "kind": "TokenRequest",
            "verbs": ["create"],
        }


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` or `/apis/<group>/<version>`: an APIResourceList, or None when not served."""
    if (group, version) not in GROUP_VERSIONS:
        return None
    resources: list[dict[str, Any]] = []
    for rt in sorted(
        (r for r in RESOURCE_TYPES if (r.group, r.version) == (group, version)), key=lambda r: r.plural
    ):
        resources.append(_resource_entry(rt))
        resources.extend(_subresource_entries(rt))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """`GET /api`: the legacy core group."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    """`GET /apis`: every named group (the core group is not listed here, as on a real server)."""
    groups = []
    for group in sorted({g for g, _ in GROUP_VERSIONS if g}):
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
        groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    """`GET /apis/<group>`: one APIGroup."""
    for entry in api_group_list()["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-wpk-double",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
