"""Recording core/v1 Events the way controllers and the kubelet do."""

from __future__ import annotations

import itertools
import time
from typing import Any

from .resources import by_kind
from .store import Store, now_rfc3339

_EVENT = by_kind("Event")
_SEQUENCE = itertools.count(1)


def record_event(
    store: Store,
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    component: str,
    type_: str = "Normal",
) -> dict[str, Any]:
    """Create an Event about `involved` (named `<object>.<hex>`, like the real recorder)."""
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = now_rfc3339()
    suffix = f"{time.time_ns() + next(_SEQUENCE):x}"
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", ""),
            "kind": involved.get("kind", ""),
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    return store.create(_EVENT, event, namespace=namespace, manager=component, actor="controller")
