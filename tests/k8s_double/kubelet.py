"""The kubelet part of the simulation: scheduled pods start, and report readiness.

A pod becomes `Running` with the conditions, container statuses and IPs a real node reports;
it is Ready unless a knob (`fail_rollouts`, `set_pod_unready`) says otherwise. Events:
`Scheduled`, `Pulled`, `Started`, and a Warning `Unhealthy` for a pod that is not ready.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .jsondata import clone
from .objects import NODE, POD, Knobs, condition, deleting, event
from .store import Store, now_rfc3339


def run_kubelet(store: Store, knobs: Knobs) -> None:
    for pod in store.peek(POD):
        if deleting(pod):
            continue
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        ready = knobs.pod_ready.setdefault(key, True)
        old = pod.get("status") or {}
        status = pod_status(pod, ready, old)
        if status == old:
            continue
        first_start = old.get("phase") != "Running"
        if not meta.get("ownerReferences") and "nodeName" not in pod["spec"]:
            body = clone(pod)
            body["spec"]["nodeName"] = NODE
            pod = store.update(
                POD,
                body,
                namespace=meta["namespace"],
                name=meta["name"],
                manager="kube-scheduler",
                actor="controller",
            )
        pod = store.write_status(POD, pod, status, manager="kubelet")
        if first_start:
            event(
                store,
                pod,
                "Scheduled",
                f"Successfully assigned {key[0]}/{key[1]} to {NODE}",
                "default-scheduler",
            )
            for container in pod["spec"].get("containers") or []:
                event(
                    store,
                    pod,
                    "Pulled",
                    f'Container image "{container.get("image")}" already present on machine',
                    "kubelet",
                )
                event(store, pod, "Started", f"Started container {container.get('name')}", "kubelet")
        was_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in old.get("conditions", [])
        )
        if not ready and (first_start or was_ready):
            event(
                store,
                pod,
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                "kubelet",
                "Warning",
            )


def pod_status(pod: dict[str, Any], ready: bool, old: dict[str, Any]) -> dict[str, Any]:
    now = now_rfc3339()
    started = old.get("startTime", now)
    flag = "True" if ready else "False"
    uid = pod["metadata"]["uid"]
    index = int(hashlib.sha256(uid.encode()).hexdigest()[:4], 16) % 250 + 2
    old_conditions = old.get("conditions") or []
    conditions = [
        condition(old_conditions, "PodReadyToStartContainers", "True", "", ""),
        condition(old_conditions, "Initialized", "True", "", ""),
        condition(
            old_conditions,
            "Ready",
            flag,
            "" if ready else "ContainersNotReady",
            "" if ready else "containers with unready status",
        ),
        condition(
            old_conditions,
            "ContainersReady",
            flag,
            "" if ready else "ContainersNotReady",
            "" if ready else "containers with unready status",
        ),
        condition(old_conditions, "PodScheduled", "True", "", ""),
    ]
    for cond in conditions:
        for key in ("reason", "message"):
            if not cond.get(key):
                cond.pop(key, None)
    old_statuses = {c.get("name"): c for c in old.get("containerStatuses") or []}
    statuses = []
    for container in pod["spec"].get("containers") or []:
        cname = container.get("name")
        previous = old_statuses.get(cname, {})
        running_since = ((previous.get("state") or {}).get("running") or {}).get("startedAt", started)
        statuses.append(
            {
                "name": cname,
                "image": container.get("image", ""),
                "imageID": f"docker.io/library/{container.get('image', '')}@sha256:{'0' * 64}",
                "containerID": previous.get(
                    "containerID",
                    f"containerd://{hashlib.sha256((uid + str(cname)).encode()).hexdigest()}",
                ),
                "ready": ready,
                "started": True,
                "restartCount": int(previous.get("restartCount", 0)),
                "state": {"running": {"startedAt": running_since}},
            }
        )
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.10",
        "hostIPs": [{"ip": "10.0.0.10"}],
        "podIP": f"10.244.0.{index}",
        "podIPs": [{"ip": f"10.244.0.{index}"}],
        "startTime": started,
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass", "BestEffort"),
    }
