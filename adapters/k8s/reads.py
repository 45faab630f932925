"""The read-only actions: `k8s.get`, `k8s.logs`, `k8s.events`, `k8s.wait`.

They run for real in a dry-run too (so `when` sees real data), so each is bounded: responses are
size-capped by the client, logs by `max_bytes`, and `wait` by the step's cancel scope (it polls
and sleeps; it never blocks the loop).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import trio

from ..base import AdapterError, InputError, StepContext
from .client import KubeClient
from .diff import strip_managed_fields
from .jsonpath import JsonPathError, evaluate, holds, parse, render
from .rollout import (
    Progress,
    RolloutFailed,
    UnsupportedKind,
    available_status,
    ready_status,
    rollout_status,
)
from .target import Target, boolean, integer, resolve_target, text, with_type

DEFAULT_MAX_LOG_BYTES = 1024 * 1024
CONDITIONS: dict[str, Callable[[str, Mapping[str, Any]], Progress]] = {
    "ready": ready_status,
    "available": available_status,
    "rollout-complete": rollout_status,
}


async def get(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """`{object}` for a name; `{items}` for a label selector (or every object without one)."""
    name = text(inputs, "name")
    if name:
        target = await resolve_target(client, inputs)
        return {"object": strip_managed_fields(await target.read())}
    resource = await client.resolve(text(inputs, "kind") or "", text(inputs, "api_version"))
    namespace = text(inputs, "namespace", "default")
    query = []
    selector = text(inputs, "label_selector")
    if selector:
        query.append(("labelSelector", selector))
    listing = await client.request("GET", resource.collection_path(namespace), query=query)
    items = [with_type(item, resource) for item in listing.get("items") or [] if isinstance(item, dict)]
    return {"items": items}


async def logs(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Logs of the pod `name`, or of the first pod matching `label_selector` (running pods first)."""
    namespace = text(inputs, "namespace", "default") or "default"
    pods = await client.resolve("Pod", "v1")
    pod = text(inputs, "name") or await _first_pod(client, namespace, text(inputs, "label_selector"))
    max_bytes = integer(inputs, "max_bytes", minimum=1) or DEFAULT_MAX_LOG_BYTES
    # One byte over the cap, so a cut is visible to the client's own (exact) cap.
    query: list[tuple[str, str]] = [("limitBytes", str(max_bytes + 1))]
    container = text(inputs, "container")
    if container:
        query.append(("container", container))
    tail_lines = integer(inputs, "tail_lines")
    if tail_lines is not None:
        query.append(("tailLines", str(tail_lines)))
    since_seconds = integer(inputs, "since_seconds", minimum=1)
    if since_seconds is not None:
        query.append(("sinceSeconds", str(since_seconds)))
    if boolean(inputs, "previous"):
        query.append(("previous", "true"))
    data, truncated = await client.read_bytes(
        pods.path(pod, namespace, "log"), query=query, max_bytes=max_bytes
    )
    # Drop a multi-byte character cut in half by the cap rather than invent a replacement for it.
    body = codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=not truncated)
    return {"text": body, "lines": body.splitlines(), "pod": pod, "truncated": truncated}


async def _first_pod(client: KubeClient, namespace: str, selector: str | None) -> str:
    if not selector:
        raise InputError("k8s: `name` or `label_selector` is required")
    pods = await client.resolve("Pod", "v1")
    listing = await client.request(
        "GET", pods.collection_path(namespace), query=[("labelSelector", selector)]
    )
    candidates = [item for item in listing.get("items") or [] if isinstance(item, dict)]
    if not candidates:
        raise AdapterError(
            f'k8s: no pod in namespace "{namespace}" matches "{selector}"',
            reason="NotFound",
            details={"status": 404},
        )

    def rank(pod: Mapping[str, Any]) -> tuple[bool, str]:
        phase = (pod.get("status") or {}).get("phase")
        return (phase != "Running", str((pod.get("metadata") or {}).get("name", "")))

    return str(min(candidates, key=rank)["metadata"]["name"])


async def events(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Events whose involvedObject is this object, oldest first (as `kubectl describe` lists them)."""
    target = await resolve_target(client, inputs)
    selector = [f"involvedObject.kind={target.kind}", f"involvedObject.name={target.name}"]
    if target.namespace:
        selector.append(f"involvedObject.namespace={target.namespace}")
    event_resource = await client.resolve("Event", "v1")
    path = event_resource.collection_path(target.namespace)
    listing = await client.request("GET", path, query=[("fieldSelector", ",".join(selector))])
    items = [item for item in listing.get("items") or [] if isinstance(item, dict)]
    items.sort(key=_event_time)
    return {"events": [_event_summary(item) for item in items]}


def _event_time(event: Mapping[str, Any]) -> datetime:
    metadata = event.get("metadata") or {}
    for stamp in (
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        if isinstance(stamp, str) and stamp:
            try:
                parsed = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _event_summary(event: Mapping[str, Any]) -> dict[str, Any]:
    series = event.get("series") or {}
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "count": event.get("count") or series.get("count") or 1,
        "first_timestamp": event.get("firstTimestamp") or event.get("eventTime"),
        "last_timestamp": event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime"),
    }


async def wait(
    client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, poll_interval: float
) -> dict[str, Any]:
    """Poll until the condition holds; log each new waiting message once, as kubectl does."""
    target = await resolve_target(client, inputs)
    check = _condition(target, inputs)
    interval = inputs.get("poll_interval", poll_interval)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise InputError("k8s: `poll_interval` must be a positive number of seconds")
    last_message = ""
    while True:
        obj = await target.read()
        try:
            progress = check(obj)
        except RolloutFailed as failure:
            raise AdapterError(f"k8s: {failure}", reason="RolloutFailed") from failure
        except UnsupportedKind as unsupported:
            raise InputError(f"k8s: {target.kind}: {unsupported}") from unsupported
        if progress.message != last_message:
            ctx.log("info", progress.message)
            last_message = progress.message
        if progress.done:
            return {"object": strip_managed_fields(obj)}
        await trio.sleep(float(interval))


def _condition(target: Target, inputs: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Progress]:
    condition = text(inputs, "condition")
    expression = text(inputs, "jsonpath")
    if condition:
        evaluator = CONDITIONS.get(condition)
        if evaluator is None:
            raise InputError(f"k8s: unknown condition {condition!r} (ready, available, rollout-complete)")
        return lambda obj: evaluator(target.kind, obj)
    if not expression:
        raise InputError("k8s: `condition` or `jsonpath` + `value` is required")
    try:
        steps = parse(expression)
    except JsonPathError as error:
        raise InputError(f"k8s: {error}") from error
    expected = inputs.get("value")

    def check(obj: Mapping[str, Any]) -> Progress:
        values = evaluate(steps, obj)
        done = holds(values, expected)
        shown = ", ".join(render(v) for v in values[:3]) if values else "nothing"
        return Progress(
            done,
            f"{target.label}: {expression} is {shown}" + ("" if done else f", waiting for {expected!r}..."),
        )

    return check
