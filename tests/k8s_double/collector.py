"""Garbage collection and namespace termination, as kube-controller-manager does them.

Background: an object whose owners are all gone is deleted. Foreground: an owner marked with
the `foregroundDeletion` finalizer stays until its dependents are gone. A terminating namespace
is emptied, then removed.
"""

from __future__ import annotations

from .objects import NAMESPACE, deleting
from .resources import RESOURCE_TYPES
from .store import Store


def terminate_namespaces(store: Store) -> None:
    for ns in store.peek(NAMESPACE):
        if not deleting(ns):
            continue
        name = ns["metadata"]["name"]
        remaining = 0
        for rt in RESOURCE_TYPES:
            if not rt.namespaced:
                continue
            for obj in store.peek(rt, name):
                remaining += 1
                if not deleting(obj):
                    store.delete(rt, name, obj["metadata"]["name"], actor="controller")
        if remaining == 0:
            store.purge(NAMESPACE, None, name)


def collect_garbage(store: Store) -> None:
    for rt in RESOURCE_TYPES:
        for obj in store.peek(rt):
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not deleting(obj) and not any(store.uid_exists(r.get("uid", "")) for r in refs):
                store.delete(rt, meta.get("namespace"), meta["name"], actor="controller")
            if deleting(obj) and "foregroundDeletion" in (meta.get("finalizers") or []):
                dependents = store.dependents(meta["uid"])
                for dep_rt, dep in dependents:
                    if not deleting(dep):
                        store.delete(
                            dep_rt,
                            dep["metadata"].get("namespace"),
                            dep["metadata"]["name"],
                            propagation="Foreground",
                            actor="controller",
                        )
                if not dependents:
                    store.remove_finalizer(rt, meta.get("namespace"), meta["name"], "foregroundDeletion")
