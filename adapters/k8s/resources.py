"""From a runbook's `kind` (and optional `api_version`) to a REST path on the API server.

The common kinds an SRE runbook touches are known here, so most steps need no discovery round
trip (and no discovery cache on disk, as `kubernetes.dynamic` would write under /tmp). Anything else
(custom resources, a non-default version) is looked up through the server's discovery documents
(`/api/v1`, `/apis`, `/apis/<group>/<version>`), once per client.

Names and namespaces are checked before they become path segments: urllib3 removes `..` segments,
so a name of `..` would otherwise address a different resource.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..base import AdapterError, InputError

Fetch = Callable[[str], Awaitable[dict[str, Any]]]
"""GET a discovery path and return its JSON (KubeClient.request bound to GET)."""

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_FORBIDDEN = re.compile(r"[/%\x00-\x20\x7f]")
_API_VERSION = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+(?:(alpha|beta)[0-9]+)?$")


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource: enough to build its URLs."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """`deployments.apps`, as the API server names it in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{base}/namespaces/{quote(check_namespace(namespace), safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def path(self, name: str, namespace: str | None, subresource: str | None = None) -> str:
        path = f"{self.collection_path(namespace)}/{quote(check_name(name), safe='')}"
        return f"{path}/{subresource}" if subresource else path


def check_name(name: str) -> str:
    if not name or len(name) > 253 or name in {".", ".."} or _NAME_FORBIDDEN.search(name):
        raise InputError(f"k8s: {name!r} is not a valid object name")
    return name


def check_namespace(namespace: str) -> str:
    if len(namespace) > 63 or not _NAMESPACE.match(namespace):
        raise InputError(f"k8s: {namespace!r} is not a valid namespace (a DNS label)")
    return namespace


def _r(api_version: str, kind: str, plural: str, namespaced: bool = True) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group=group, version=version, kind=kind, plural=plural, namespaced=namespaced)


BUILTIN: tuple[tuple[Resource, tuple[str, ...]], ...] = (
    (_r("v1", "Pod", "pods"), ("po",)),
    (_r("v1", "Service", "services"), ("svc",)),
    (_r("v1", "ConfigMap", "configmaps"), ("cm",)),
    (_r("v1", "Secret", "secrets"), ()),
    (_r("v1", "ServiceAccount", "serviceaccounts"), ("sa",)),
    (_r("v1", "Event", "events"), ("ev",)),
    (_r("v1", "Endpoints", "endpoints"), ("ep",)),
    (_r("v1", "PersistentVolumeClaim", "persistentvolumeclaims"), ("pvc",)),
    (_r("v1", "ReplicationController", "replicationcontrollers"), ("rc",)),
    (_r("v1", "ResourceQuota", "resourcequotas"), ("quota",)),
    (_r("v1", "LimitRange", "limitranges"), ("limits",)),
    (_r("v1", "Namespace", "namespaces", False), ("ns",)),
    (_r("v1", "Node", "nodes", False), ("no",)),
    (_r("v1", "PersistentVolume", "persistentvolumes", False), ("pv",)),
    (_r("apps/v1", "Deployment", "deployments"), ("deploy",)),
    (_r("apps/v1", "StatefulSet", "statefulsets"), ("sts",)),
    (_r("apps/v1", "DaemonSet", "daemonsets"), ("ds",)),
    (_r("apps/v1", "ReplicaSet", "replicasets"), ("rs",)),
    (_r("apps/v1", "ControllerRevision", "controllerrevisions"), ()),
    (_r("batch/v1", "Job", "jobs"), ()),
    (_r("batch/v1", "CronJob", "cronjobs"), ("cj",)),
    (_r("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"), ("hpa",)),
    (_r("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"), ("pdb",)),
    (_r("networking.k8s.io/v1", "Ingress", "ingresses"), ("ing",)),
    (_r("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"), ("netpol",)),
    (_r("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"), ()),
    (_r("coordination.k8s.io/v1", "Lease", "leases"), ()),
    (_r("rbac.authorization.k8s.io/v1", "Role", "roles"), ()),
    (_r("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"), ()),
    (_r("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False), ()),
    (_r("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False), ()),
    (_r("storage.k8s.io/v1", "StorageClass", "storageclasses", False), ("sc",)),
    (_r("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False), ("pc",)),
    (
        _r("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
        ("crd", "crds"),
    ),
)


def _builtin_index() -> dict[str, Resource]:
    index: dict[str, Resource] = {}
    for resource, short in BUILTIN:
        for alias in (resource.kind, resource.plural, *short):
            index.setdefault(alias.lower(), resource)
    return index


_BY_ALIAS = _builtin_index()


def builtin(kind: str, api_version: str | None = None) -> Resource | None:
    """The well-known resource for `kind` (Kind, plural or short name; any case), if any."""
    resource = _BY_ALIAS.get(kind.lower())
    if resource is None or (api_version is not None and api_version != resource.api_version):
        return None
    return resource


class Resolver:
    """Resolves kinds for one API server, asking its discovery documents only when needed."""

    def __init__(self, fetch: Fetch, *, use_builtin: bool = True) -> None:
        self._fetch = fetch
        self._use_builtin = use_builtin
        self._cache: dict[tuple[str, str | None], Resource] = {}
        self._group_versions: dict[str, dict[str, Resource]] = {}

    async def resolve(self, kind: str, api_version: str | None = None) -> Resource:
        if not kind:
            raise InputError("k8s: `kind` is required")
        if api_version is not None and not _API_VERSION.match(api_version):
            raise InputError(f"k8s: {api_version!r} is not a valid apiVersion")
        known = builtin(kind, api_version) if self._use_builtin else None
        if known is not None:
            return known
        key = (kind.lower(), api_version)
        if key not in self._cache:
            self._cache[key] = await self._discover(kind, api_version)
        return self._cache[key]

    async def _discover(self, kind: str, api_version: str | None) -> Resource:
        if api_version is not None:
            candidates = [api_version]
        else:
            groups = await self._fetch("/apis")
            candidates = ["v1"] + [
                str(group["preferredVersion"]["groupVersion"])
                for group in groups.get("groups", [])
                if isinstance(group, dict) and isinstance(group.get("preferredVersion"), dict)
            ]
        wanted = kind.lower()
        for group_version in candidates:
            try:
                resources = await self._resources(group_version)
            except AdapterError:
                if api_version is not None:
                    raise
                continue  # an unavailable aggregated API (metrics-server down) hides only its kinds
            resource = resources.get(wanted)
            if resource is not None:
                return resource
        where = f" in {api_version}" if api_version else ""
        raise AdapterError(f'k8s: the server has no resource of kind "{kind}"{where}', reason="NotFound")

    async def _resources(self, group_version: str) -> dict[str, Resource]:
        """Kind, plural, singular and short names (lower case) of one group version's resources."""
        if group_version not in self._group_versions:
            path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
            document = await self._fetch(path)
            group, _, version = group_version.rpartition("/")
            found: dict[str, Resource] = {}
            for entry in document.get("resources", []):
                if not isinstance(entry, dict) or "/" in str(entry.get("name", "")):
                    continue  # subresources (deployments/scale) are not kinds
                resource = Resource(
                    group=group,
                    version=version,
                    kind=str(entry.get("kind", "")),
                    plural=str(entry.get("name", "")),
                    namespaced=bool(entry.get("namespaced", True)),
                )
                aliases = [resource.kind, resource.plural, str(entry.get("singularName") or "")]
                aliases += [str(s) for s in entry.get("shortNames") or []]
                for alias in aliases:
                    if alias:
                        found.setdefault(alias.lower(), resource)
            self._group_versions[group_version] = found
        return self._group_versions[group_version]
