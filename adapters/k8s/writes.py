"""The writes: `k8s.scale`, `restart`, `apply`, `patch`, `delete`, and how each is undone.

Each write is one function used twice: for real, and as its own dry-run with `dryRun=All`, so the
plan is the API server's verdict on the very request `apply` would send (admission, validation,
defaulting) and nothing is persisted. The function returns a `Change`: the object before, the
server's answer, the step result, the undo record and a sentence for the plan.

Every write is a read followed by a write; a 409 Conflict (someone else changed the object in
between) repeats both, so the recorded "before" is always what the write replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..base import AdapterError, InputError, NotReversible, Plan, StepContext
from .client import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    KubeClient,
    retry_conflicts,
)
from .diff import changed_lines, clean, strip_managed_fields, unified_diff
from .target import FIELD_MANAGER, Target, boolean, dry_run_query, integer, resolve_target, text

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
PATCH_TYPES = {"merge": MERGE_PATCH, "strategic": STRATEGIC_MERGE_PATCH, "json": JSON_PATCH}
PROPAGATION = ("Foreground", "Background", "Orphan")


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What one write did (or, in a dry-run, what the server says it would do)."""

    target: Target
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    result: dict[str, Any]
    summary: str
    inverse: str
    undo: dict[str, Any] | None = None
    request: dict[str, Any] = field(default_factory=dict)

    def plan(self) -> Plan:
        return Plan(
            summary=self.summary,
            diff=unified_diff(self.before, self.after, self.target.label),
            details={
                "object": self.target.label,
                "context": self.target.client.context,
                "server_dry_run": True,
                "request": self.request,
            },
            result=self.result,
            inverse=self.inverse,
        )


def _request(
    method: str, path: str, content_type: str | None, query: list[tuple[str, str]]
) -> dict[str, Any]:
    """The request as a plan shows it (no body: the diff shows its effect)."""
    return {"method": method, "path": path, "content_type": content_type, "query": dict(query)}


def _write_query(dry_run: bool) -> list[tuple[str, str]]:
    return [("fieldManager", FIELD_MANAGER), *dry_run_query(dry_run)]


def _resource_version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value else None


# -- scale ---------------------------------------------------------------------------------------


async def scale(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, dry_run: bool) -> Change:
    replicas = integer(inputs, "replicas")
    if replicas is None:
        raise InputError("k8s: `replicas` is required")
    target = await resolve_target(client, inputs)
    return await retry_conflicts(lambda: _scale_once(target, replicas, dry_run))


async def _scale_once(target: Target, replicas: int, dry_run: bool) -> Change:
    path = target.resource.path(target.name, target.namespace, "scale")
    before = await target.read("scale")
    previous = int((before.get("spec") or {}).get("replicas") or 0)
    # The resourceVersion makes the write conditional: `previous` is exactly what it replaces.
    body = {"metadata": {"resourceVersion": _resource_version(before)}, "spec": {"replicas": replicas}}
    query = _write_query(dry_run)
    after = await target.client.request("PATCH", path, query=query, body=body, content_type=MERGE_PATCH)
    undo = target.undo_base() | {"replicas": previous}
    return Change(
        target=target,
        before=before,
        after=after,
        result={"previous_replicas": previous, "replicas": replicas},
        summary=f"scale {target.label}: replicas {previous} -> {replicas}",
        inverse=f"scale {target.label} back to {previous} replicas",
        undo=undo,
        request=_request("PATCH", path, MERGE_PATCH, query),
    )


async def compensate_scale(client: KubeClient, undo: Mapping[str, Any], ctx: StepContext) -> None:
    target = await _undo_target(client, undo)
    replicas = integer(undo, "replicas")
    if replicas is None:
        raise AdapterError("k8s: the scale's undo record has no `replicas`")
    await retry_conflicts(lambda: _scale_once(target, replicas, False))
    ctx.log("info", f"{target.short} scaled back to {replicas} replicas")


# -- restart -------------------------------------------------------------------------------------


def restarted_at_now() -> str:
    """RFC 3339, second precision, as kubectl writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def restart(
    client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, dry_run: bool
) -> Change:
    target = await resolve_target(client, inputs)
    if target.kind not in {"Deployment", "StatefulSet", "DaemonSet"}:
        raise InputError(f"k8s: cannot restart a {target.kind} (Deployment, StatefulSet or DaemonSet)")
    return await retry_conflicts(lambda: _restart_once(target, dry_run))


async def _restart_once(target: Target, dry_run: bool) -> Change:
    before = await target.read()
    if target.kind == "Deployment" and (before.get("spec") or {}).get("paused"):
        raise AdapterError(
            f"k8s: can't restart paused deployment {target.name} (run rollout resume first)",
            reason="Paused",
        )
    stamp = restarted_at_now()
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    query = _write_query(dry_run)
    after = await target.client.request(
        "PATCH", target.path, query=query, body=body, content_type=STRATEGIC_MERGE_PATCH
    )
    return Change(
        target=target,
        before=before,
        after=after,
        result={"restarted_at": stamp},
        summary=f"restart {target.label} (rolling: pod template annotation {RESTARTED_AT}={stamp})",
        inverse="none: a restart cannot be undone",
        request=_request("PATCH", target.path, STRATEGIC_MERGE_PATCH, query),
    )


# -- apply ---------------------------------------------------------------------------------------


async def apply(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, dry_run: bool) -> Change:
    manifest = inputs.get("manifest")
    if not isinstance(manifest, Mapping):
        raise InputError("k8s: `manifest` must be a mapping (a Kubernetes object)")
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        raise InputError("k8s: `manifest.metadata.name` is required")
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise InputError("k8s: `manifest` needs `apiVersion` and `kind`")
    namespace = metadata.get("namespace")
    target = await resolve_target(
        client,
        inputs,
        kind=kind,
        api_version=api_version,
        name=metadata["name"],
        namespace=namespace if isinstance(namespace, str) else None,
    )
    body = dict(manifest)
    if target.namespace is not None:
        body["metadata"] = {**metadata, "namespace": target.namespace}
    force = boolean(inputs, "force_conflicts")
    return await retry_conflicts(lambda: _apply_once(target, body, force, dry_run))


async def _apply_once(target: Target, body: dict[str, Any], force: bool, dry_run: bool) -> Change:
    before = await target.read_or_none()
    query = [*_write_query(dry_run), ("force", "true" if force else "false")]
    after = await target.client.request(
        "PATCH", target.path, query=query, body=body, content_type=APPLY_PATCH
    )
    created = before is None
    if created:
        summary, inverse = f"create {target.label} (server-side apply)", f"delete {target.label}"
    else:
        changed = changed_lines(unified_diff(before, after, target.label))
        summary = (
            f"update {target.label} (server-side apply, {changed} changed lines)"
            if changed
            else f"{target.label} unchanged (server-side apply)"
        )
        inverse = f"restore the previous {target.label}"
    return Change(
        target=target,
        before=before,
        after=after,
        result={"object": strip_managed_fields(after), "created": created},
        summary=summary,
        inverse=inverse,
        undo=_restore_undo(target, before, after),
        request=_request("PATCH", target.path, APPLY_PATCH, query),
    )


def _restore_undo(target: Target, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """Enough to put the object back: its previous state, or that it did not exist (and its uid)."""
    uid = (after.get("metadata") or {}).get("uid")
    return target.undo_base() | {
        "created": before is None,
        "uid": uid,
        "previous": clean(before) if before is not None else None,
    }


# -- patch ---------------------------------------------------------------------------------------


async def patch(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, dry_run: bool) -> Change:
    patch_type = text(inputs, "patch_type", "strategic") or "strategic"
    content_type = PATCH_TYPES.get(patch_type)
    if content_type is None:
        raise InputError(f"k8s: unknown patch_type {patch_type!r} (merge, strategic, json)")
    body = inputs.get("patch")
    if patch_type == "json" and not isinstance(body, list):
        raise InputError("k8s: a `json` patch is a list of operations")
    if patch_type != "json" and not isinstance(body, Mapping):
        raise InputError(f"k8s: a `{patch_type}` patch is a mapping")
    target = await resolve_target(client, inputs)
    return await retry_conflicts(lambda: _patch_once(target, body, patch_type, content_type, dry_run))


async def _patch_once(target: Target, body: Any, patch_type: str, content_type: str, dry_run: bool) -> Change:
    before = await target.read()
    query = _write_query(dry_run)
    after = await target.client.request(
        "PATCH", target.path, query=query, body=body, content_type=content_type
    )
    changed = changed_lines(unified_diff(before, after, target.label))
    return Change(
        target=target,
        before=before,
        after=after,
        result={"object": strip_managed_fields(after)},
        summary=f"patch {target.label} ({patch_type}, {changed} changed lines)",
        inverse=f"restore the previous {target.label}",
        undo=_restore_undo(target, before, after),
        request=_request("PATCH", target.path, content_type, query),
    )


# -- delete --------------------------------------------------------------------------------------


async def delete(client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext, *, dry_run: bool) -> Change:
    propagation = text(inputs, "propagation", "Background") or "Background"
    if propagation not in PROPAGATION:
        raise InputError(f"k8s: unknown propagation {propagation!r} ({', '.join(PROPAGATION)})")
    target = await resolve_target(client, inputs)
    before = await target.read()
    query = [("propagationPolicy", propagation), *dry_run_query(dry_run)]
    await target.client.request("DELETE", target.path, query=query)
    return Change(
        target=target,
        before=before,
        after=None,
        result={},
        summary=f"delete {target.label} (propagation {propagation})",
        inverse="none: a deleted object is not restored (write an explicit rollback)",
        request=_request("DELETE", target.path, None, query),
    )


# -- compensation for apply and patch ------------------------------------------------------------


async def _undo_target(client: KubeClient, undo: Mapping[str, Any]) -> Target:
    return await resolve_target(
        client,
        undo,
        kind=text(undo, "kind"),
        api_version=text(undo, "api_version"),
        name=text(undo, "name"),
        namespace=text(undo, "namespace"),
    )


async def restore(client: KubeClient, undo: Mapping[str, Any], ctx: StepContext) -> None:
    """Undo an apply or a patch: delete what the step created, else put the previous object back."""
    target = await _undo_target(client, undo)
    if undo.get("created"):
        await _delete_created(target, text(undo, "uid"))
        ctx.log("info", f"{target.short} deleted (created by the step)")
        return
    previous = undo.get("previous")
    if not isinstance(previous, Mapping):
        raise AdapterError("k8s: the undo record has no previous object to restore")
    await retry_conflicts(lambda: _restore_once(target, previous))
    ctx.log("info", f"{target.short} restored")


async def _delete_created(target: Target, uid: str | None) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    if uid:  # never delete a same-named object that someone else created since
        body["preconditions"] = {"uid": uid}
    try:
        await target.client.request("DELETE", target.path, body=body)
    except AdapterError as error:
        if error.details.get("status") != 404:
            raise


async def _restore_once(target: Target, previous: Mapping[str, Any]) -> None:
    live = await target.read_or_none()
    body = clean(previous)
    query = [("fieldManager", FIELD_MANAGER)]
    if live is None:
        await target.client.request(
            "POST", target.resource.collection_path(target.namespace), query=query, body=body
        )
        return
    body.setdefault("metadata", {})["resourceVersion"] = _resource_version(live)
    await target.client.request("PUT", target.path, query=query, body=body)


def not_reversible(action: str) -> NotReversible:
    return NotReversible(f"k8s.{action} cannot be undone; write an explicit `rollback` for this step")
