"""The object store: what etcd plus the generic registry do for the real server.

Objects are plain JSON dicts keyed by (group, plural, namespace, name). The store owns the
server-set metadata (`uid`, `resourceVersion` from one global counter, `generation`,
`creationTimestamp`, `managedFields`), defaulting, validation, optimistic concurrency, dry-run
(compute everything, store nothing, tell nobody), finalizers and dependents on delete.

Every method takes the store lock and returns deep copies, so callers (HTTP threads, the
controller thread, test code) never share mutable state. Listeners hear about each committed change.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import fields
from .defaults import apply_defaults
from .errors import STALE, ApiError, already_exists, bad_request, conflict, not_found
from .jsondata import clone
from .resources import RESOURCE_TYPES, ResourceType, by_kind
from .validation import check_type, validate

Objects = list[dict[str, Any]]
Dependents = list[tuple[ResourceType, dict[str, Any]]]  # (aliases: `list` is also a method name)
Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name

_SERVER_META = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Change:
    """A committed write, as a watch would report it."""

    type: str  # ADDED | MODIFIED | DELETED
    rt: ResourceType
    obj: dict[str, Any]
    actor: str  # "user" (HTTP or test code) or "controller"
    resource_version: int


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _initial_status(rt: ResourceType) -> dict[str, Any] | None:
    if rt.kind == "Pod":
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if rt.kind == "Service":
        return {"loadBalancer": {}}
    if rt.kind == "Namespace":
        return {"phase": "Active"}
    if rt.kind in ("ReplicaSet", "StatefulSet"):
        return {"replicas": 0}  # a required field: the real server always sends it
    if rt.kind == "DaemonSet":
        return {
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        }
    if rt.has_status:
        return {}
    return None


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._uids: set[str] = set()
        self._rv = 0
        self._listeners: list[Callable[[Change], None]] = []
        self.history: deque[Change] = deque(maxlen=5000)
        self._next_ip = 1
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(by_kind("Namespace"), {"metadata": {"name": name}}, namespace=None, manager=None)

    # -- plumbing ---------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        with self.lock:
            self._listeners.append(listener)

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock across several operations (the controller converges in one step)."""
        with self.lock:
            yield

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> Key:
        return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    def _commit(
        self,
        change_type: str,
        rt: ResourceType,
        key: Key,
        obj: dict[str, Any] | None,
        actor: str,
        deleted: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._rv += 1
        bucket = self._objects.setdefault(key[:2], {})
        if obj is None:
            assert deleted is not None
            bucket.pop(key[2:], None)
            self._uids.discard(deleted["metadata"].get("uid", ""))
            event_obj = clone(deleted)
            event_obj["metadata"]["resourceVersion"] = str(self._rv)
        else:
            obj["metadata"]["resourceVersion"] = str(self._rv)
            bucket[key[2:]] = obj
            self._uids.add(obj["metadata"].get("uid", ""))
            event_obj = clone(obj)
        change = Change(change_type, rt, event_obj, actor, self._rv)
        self.history.append(change)
        self.changed.notify_all()
        for listener in list(self._listeners):
            listener(change)
        return clone(event_obj)

    # -- reads ------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._stored(self._key(rt, namespace, name))
            return clone(obj) if obj is not None else None

    def _stored(self, key: Key) -> dict[str, Any] | None:
        return self._objects.get(key[:2], {}).get(key[2:])

    def require(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def list(self, rt: ResourceType, namespace: str | None = None) -> Objects:
        """Copies of the objects of one type (in one namespace, or all), sorted by namespace and name."""
        with self.lock:
            return [clone(obj) for obj in self.peek(rt, namespace)]

    def peek(self, rt: ResourceType, namespace: str | None = None) -> Objects:
        """The stored objects themselves, for read-only use under the lock (the controller's hot path)."""
        with self.lock:
            bucket = self._objects.get((rt.group, rt.plural), {})
            keys = sorted(k for k in bucket if namespace is None or not rt.namespaced or k[0] == namespace)
            return [bucket[k] for k in keys]

    def dependents(self, uid: str) -> Dependents:
        """Copies of the objects with an ownerReference to `uid`, of every type."""
        with self.lock:
            out = []
            for rt in RESOURCE_TYPES:
                for obj in self.peek(rt):
                    refs = obj["metadata"].get("ownerReferences") or []
                    if any(ref.get("uid") == uid for ref in refs):
                        out.append((rt, clone(obj)))
            return out

    def uid_exists(self, uid: str) -> bool:
        with self.lock:
            return uid in self._uids

    # -- writes -----------------------------------------------------------------------------

    def _prepare_namespace(self, rt: ResourceType, meta: dict[str, Any], namespace: str | None) -> str | None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return None
        given = meta.get("namespace")
        if namespace is None:
            namespace = given or "default"
        elif given and given != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        return namespace

    def _check_namespace_open(self, namespace: str | None) -> None:
        if namespace is None:
            return
        ns = self._stored(("", "namespaces", "", namespace))
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if "deletionTimestamp" in ns["metadata"]:
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
                {"name": namespace, "kind": "namespaces"},
            )

    def create(
        self,
        rt: ResourceType,
        body: Any,
        *,
        namespace: str | None,
        manager: str | None,
        dry_run: bool = False,
        actor: str = "user",
    ) -> dict[str, Any]:
        """POST: validate, default, stamp metadata; 409 AlreadyExists; dry-run stores nothing."""
        check_type(rt, body)
        obj: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind, **clone(body)}
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        for meta_key in (*_SERVER_META, "managedFields"):
            meta.pop(meta_key, None)
        with self.lock:
            ns = self._prepare_namespace(rt, meta, namespace)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = str(meta["generateName"]) + "".join(
                    secrets.choice(_NAME_CHARS) for _ in range(5)
                )
            status = _initial_status(rt)
            if status is not None:
                obj["status"] = status
            else:
                obj.pop("status", None)
            apply_defaults(rt.kind, obj)
            validate(rt, obj)
            self._check_namespace_open(ns)
            key = self._key(rt, ns, meta["name"])
            if self._stored(key) is not None:
                raise already_exists(rt.plural, rt.group, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if rt.has_generation:
                meta["generation"] = 1
            if rt.kind == "Service" and obj["spec"].get("clusterIP") is None:
                obj["spec"]["clusterIP"] = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
                obj["spec"]["clusterIPs"] = [obj["spec"]["clusterIP"]]
                self._next_ip += 1
            if manager:
                fields.record_update(
                    None, obj, manager=manager, api_version=rt.api_version, now=meta["creationTimestamp"]
                )
            if dry_run:
                return clone(obj)
            return self._commit("ADDED", rt, key, obj, actor)

    def create_raw(self, rt: ResourceType, obj: dict[str, Any], *, actor: str = "user") -> dict[str, Any]:
        """Store an object whose metadata the caller already set (an applied creation)."""
        with self.lock:
            meta = obj["metadata"]
            key = self._key(rt, meta.get("namespace"), meta["name"])
            if self._stored(key) is not None:
                raise already_exists(rt.plural, rt.group, meta["name"])
            return self._commit("ADDED", rt, key, obj, actor)

    def update(
        self,
        rt: ResourceType,
        body: Any,
        *,
        namespace: str | None,
        name: str,
        manager: str | None,
        dry_run: bool = False,
        subresource: str = "",
        actor: str = "user",
        managed: bool = True,
    ) -> dict[str, Any]:
        """PUT (and the final write of every patch): conflict on a stale resourceVersion.

        With `managed=False` the caller has already written `metadata.managedFields` (apply).
        A write that changes nothing keeps the resourceVersion, as on a real server.
        """
        check_type(rt, body)
        with self.lock:
            old = self.require(rt, namespace, name)
            new: dict[str, Any] = clone(body)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            meta = new.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
            self._prepare_namespace(rt, meta, namespace)
            given_rv = meta.get("resourceVersion")
            if given_rv and given_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name, STALE)
            if subresource == "status":
                status = new.get("status")
                new = clone(old)
                if status is not None:
                    new["status"] = status
            else:
                for meta_key in _SERVER_META:
                    if meta_key in old["metadata"]:
                        meta[meta_key] = old["metadata"][meta_key]
                    else:
                        meta.pop(meta_key, None)
                if rt.has_status or "status" in old:
                    new["status"] = clone(old.get("status", {}))
                apply_defaults(rt.kind, new)
                validate(rt, new, old)
            if rt.has_generation and _spec_part(new) != _spec_part(old):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            given_managed = body.get("metadata", {}).get("managedFields") if isinstance(body, dict) else None
            if not managed:
                pass
            elif given_managed is not None and given_managed != old["metadata"].get("managedFields"):
                if given_managed == []:
                    new["metadata"].pop("managedFields", None)
            else:
                new["metadata"]["managedFields"] = clone(old["metadata"].get("managedFields", []))
                if manager:
                    fields.record_update(
                        old,
                        new,
                        manager=manager,
                        api_version=rt.api_version,
                        now=now_rfc3339(),
                        subresource=subresource,
                    )
                elif not new["metadata"]["managedFields"]:
                    new["metadata"].pop("managedFields", None)
            if new == old:
                return new
            if dry_run:
                return new
            key = self._key(rt, namespace, name)
            if "deletionTimestamp" in new["metadata"] and not new["metadata"].get("finalizers"):
                return self._commit("DELETED", rt, key, None, actor, deleted=new)
            return self._commit("MODIFIED", rt, key, new, actor)

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
        actor: str = "user",
    ) -> tuple[dict[str, Any], bool]:
        """DELETE: returns (the object, deleted now?). Finalizers and Foreground defer the removal."""
        with self.lock:
            old = self.require(rt, namespace, name)
            meta = old["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            key = self._key(rt, namespace, name)
            if "deletionTimestamp" in meta:
                return old, False
            finalizers = list(meta.get("finalizers") or [])
            if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            defer = bool(finalizers) or rt.kind == "Namespace"
            if dry_run:
                if defer:
                    old["metadata"]["deletionTimestamp"] = now_rfc3339()
                    old["metadata"]["deletionGracePeriodSeconds"] = 0
                    if finalizers:
                        old["metadata"]["finalizers"] = finalizers
                return old, not defer
            if propagation == "Orphan":
                self._orphan(meta["uid"])
            if defer:
                old["metadata"]["deletionTimestamp"] = now_rfc3339()
                old["metadata"]["deletionGracePeriodSeconds"] = 0
                if finalizers:
                    old["metadata"]["finalizers"] = finalizers
                if rt.kind == "Namespace":
                    old["status"] = {"phase": "Terminating"}
                return self._commit("MODIFIED", rt, key, old, actor), False
            return self._commit("DELETED", rt, key, None, actor, deleted=old), True

    def _orphan(self, uid: str) -> None:
        for dep_rt, dep in self.dependents(uid):
            refs = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if refs:
                dep["metadata"]["ownerReferences"] = refs
            else:
                dep["metadata"].pop("ownerReferences")
            key = self._key(dep_rt, dep["metadata"].get("namespace"), dep["metadata"]["name"])
            self._commit("MODIFIED", dep_rt, key, dep, "controller")

    def purge(self, rt: ResourceType, namespace: str | None, name: str, *, actor: str = "controller") -> None:
        """Remove an object outright (a finished namespace termination)."""
        with self.lock:
            obj = self.get(rt, namespace, name)
            if obj is not None:
                self._commit("DELETED", rt, self._key(rt, namespace, name), None, actor, deleted=obj)

    def remove_finalizer(
        self, rt: ResourceType, namespace: str | None, name: str, finalizer: str, *, actor: str = "controller"
    ) -> None:
        """What a controller does when its cleanup is done; removes the object if none remain."""
        with self.lock:
            obj = self.get(rt, namespace, name)
            if obj is None:
                return
            remaining = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if remaining:
                obj["metadata"]["finalizers"] = remaining
            else:
                obj["metadata"].pop("finalizers", None)
            key = self._key(rt, namespace, name)
            if "deletionTimestamp" in obj["metadata"] and not remaining:
                self._commit("DELETED", rt, key, None, actor, deleted=obj)
            else:
                self._commit("MODIFIED", rt, key, obj, actor)

    def write_status(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        status: dict[str, Any],
        *,
        manager: str,
        actor: str = "controller",
    ) -> dict[str, Any]:
        """A controller's status update: skipped when nothing changed (no resourceVersion churn)."""
        with self.lock:
            meta = obj["metadata"]
            current = self.get(rt, meta.get("namespace"), meta["name"])
            if current is None or current.get("status") == status:
                return current or obj
            body = clone(current)
            body["status"] = status
            return self.update(
                rt,
                body,
                namespace=meta.get("namespace"),
                name=meta["name"],
                manager=manager,
                subresource="status",
                actor=actor,
            )
