"""The Kubernetes adapter (`k8s.*`): the `Adapter` protocol over the official `kubernetes` client.

This module is the front door only: it reads the agent's configuration, keeps one client per
kubeconfig context, enforces which contexts a step may name, and dispatches each action to
`k8s_reads` or `k8s_writes`. Importing it does not import `kubernetes` (about half a second);
the first step that talks to a cluster pays for that.

Configuration (the agent's, never a runbook's; SECURITY.md: a kubeconfig can run commands):

    kubeconfig        path of the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
    context           the default context (default: the kubeconfig's current-context)
    in_cluster        use the pod's service account for the default context
    allowed_contexts  other contexts a step's `context` may name
    request_timeout   seconds per API request (default 30)
    poll_interval     seconds between `k8s.wait` polls when the step does not say (default 2)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import trio

from ..base import (
    ActionInfo,
    AdapterError,
    InputError,
    Outcome,
    Plan,
    StepContext,
    Unpredictable,
    infos_from_schemas,
)
from .client import KubeClient, connect
from .diff import strip_managed_fields
from .overlay import CAUSED_WHY, WAIT_WHY, Overlay, predicted_object, seen, status_unknown, with_predictions
from .reads import events, get, logs, wait
from .target import resolve_target, text
from .writes import (
    Change,
    apply,
    compensate_scale,
    delete,
    not_reversible,
    patch,
    restart,
    restore,
    scale,
)

_NO_CONFIG: Mapping[str, Any] = MappingProxyType({})

Read = Callable[[KubeClient, Mapping[str, Any], StepContext], Awaitable[dict[str, Any]]]
Write = Callable[..., Awaitable[Change]]

WRITES: dict[str, tuple[Write, str]] = {
    "scale": (scale, "scaled"),
    "restart": (restart, "restarted"),
    "apply": (apply, "serverside-applied"),
    "patch": (patch, "patched"),
    "delete": (delete, "deleted"),
}
NOT_REVERSIBLE = frozenset({"restart", "delete"})


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sConfig:
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    allowed_contexts: tuple[str, ...] = ()
    request_timeout: float = 30.0
    poll_interval: float = 2.0

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> K8sConfig:
        """Validate the agent's `k8s` section; a mistake here is a startup error (ValueError)."""
        unknown = set(config) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"k8s configuration: unknown keys {sorted(unknown)}")
        for key in ("kubeconfig", "context"):
            if config.get(key) is not None and not isinstance(config[key], str):
                raise ValueError(f"k8s configuration: `{key}` must be a string")
        if not isinstance(config.get("in_cluster", False), bool):
            raise ValueError("k8s configuration: `in_cluster` must be true or false")
        allowed = config.get("allowed_contexts") or ()
        if isinstance(allowed, str) or not all(isinstance(c, str) for c in allowed):
            raise ValueError("k8s configuration: `allowed_contexts` must be a list of context names")
        numbers = {}
        for key in ("request_timeout", "poll_interval"):
            value = config.get(key, cls.__dataclass_fields__[key].default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"k8s configuration: `{key}` must be a positive number of seconds")
            numbers[key] = float(value)
        return cls(
            kubeconfig=config.get("kubeconfig"),
            context=config.get("context"),
            in_cluster=bool(config.get("in_cluster", False)),
            allowed_contexts=tuple(allowed),
            **numbers,
        )


class KubernetesAdapter:
    """`k8s.get|logs|events|wait|scale|restart|apply|patch|delete`."""

    name: ClassVar[str] = "k8s"

    def __init__(self, config: Mapping[str, Any] = _NO_CONFIG) -> None:
        self.config = K8sConfig.from_mapping(config)
        self._clients: dict[str | None, KubeClient] = {}
        self._connect_lock = trio.Lock()
        self.overlay = Overlay()  # this run's simulated writes, for a dry-run's later reads
        self._reads: dict[str, Read] = {
            "get": get,
            "logs": logs,
            "events": events,
            "wait": functools.partial(wait, poll_interval=self.config.poll_interval),
        }

    # -- Adapter protocol ------------------------------------------------------------------------

    def actions(self) -> Mapping[str, ActionInfo]:
        return _action_infos()

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome:
        inputs = self._with_defaults(action, inputs)
        client = await self._client(text(inputs, "context"))
        if action in self._reads:
            if ctx.dry_run:
                return await self._dry_read(action, client, inputs, ctx)
            return Outcome(result=await self._reads[action](client, inputs, ctx))
        write, done = WRITES[action]
        change = await write(client, inputs, ctx, dry_run=False)
        ctx.log("info", f"{change.target.short} {done}")
        return Outcome(result=change.result, undo=change.undo, inverse=change.inverse)

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan:
        inputs = self._with_defaults(action, inputs)
        if action in self._reads:
            what = " ".join(
                str(inputs[k]) for k in ("kind", "namespace", "name", "label_selector") if k in inputs
            )
            return Plan(
                summary=f"k8s.{action} {what}: read-only, runs for real in a dry-run",
                details={"context": text(inputs, "context")},
                inverse="none needed",
            )
        client = await self._client(text(inputs, "context"))
        write, _ = WRITES[action]
        change: Change = await write(client, inputs, ctx, dry_run=True)
        predicted = change.after
        if action == "scale":  # the answer is a Scale; later reads want the workload itself
            live = await change.target.read()
            predicted = {**live, "spec": {**(live.get("spec") or {}), "replicas": change.result["replicas"]}}
        elif action == "delete":
            predicted = None
        self.overlay.record(change.target, predicted, ctx.step_id)
        plan = change.plan()
        if action in ("apply", "patch"):
            plan = dataclasses.replace(plan, unknown=(status_unknown(("object",), ctx.step_id),))
        return plan

    async def _dry_read(
        self, action: str, client: KubeClient, inputs: Mapping[str, Any], ctx: StepContext
    ) -> Outcome:
        """A read in a dry-run, through the overlay of this run's simulated writes (overlay.py)."""
        overlay, context = self.overlay, client.context
        if not overlay:
            return seen(await self._reads[action](client, inputs, ctx))
        if action in ("get", "wait", "events") and text(inputs, "name"):
            target = await resolve_target(client, inputs)
            pred = overlay.lookup(target)
            caused = overlay.touched(
                context, target.namespace, "Event" if action == "events" else target.kind
            )
            if action == "wait" and (pred is not None or caused is not None):
                step = pred.step if pred is not None else str(caused)
                obj = predicted_object(target, pred) if pred is not None else await target.read()
                ctx.log("info", f"{target.label}: not waited for ({WAIT_WHY}: step {step})")
                return seen({"object": strip_managed_fields(obj)}, Unpredictable(step=step, why=WAIT_WHY))
            if action == "get" and pred is not None:
                return seen(
                    {"object": predicted_object(target, pred)}, status_unknown(("object",), pred.step)
                )
            result = await self._reads[action](client, inputs, ctx)
            return seen(result, Unpredictable(step=caused, why=CAUSED_WHY)) if caused else seen(result)
        if action == "get":
            resource = await client.resolve(text(inputs, "kind") or "", text(inputs, "api_version"))
            namespace = (text(inputs, "namespace", "default") or "default") if resource.namespaced else None
            result = await get(client, inputs, ctx)
            caused = overlay.touched(context, namespace, resource.kind)
            if caused:
                return seen(result, Unpredictable(step=caused, why=CAUSED_WHY))
            paths = [
                resource.path(str((i.get("metadata") or {}).get("name")), namespace) for i in result["items"]
            ]
            items, unknown = with_predictions(result["items"], context, paths, overlay)
            return seen({"items": items}, *unknown)
        if action == "logs":
            caused = overlay.touched(context, text(inputs, "namespace", "default") or "default", "Pod")
            result = await logs(client, inputs, ctx)
            return seen(result, Unpredictable(step=caused, why=CAUSED_WHY)) if caused else seen(result)
        return seen(await self._reads[action](client, inputs, ctx))

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None:
        self._check_action(action)
        if action in NOT_REVERSIBLE:
            raise not_reversible(action)
        if action in self._reads:
            return
        undo = outcome.undo
        if not undo:
            raise AdapterError(f"k8s.{action}: no undo record; nothing to compensate from")
        client = await self._client(text(undo, "context"))
        if action == "scale":
            await compensate_scale(client, undo, ctx)
        else:
            await restore(client, undo, ctx)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _check_action(self, action: str) -> None:
        if action not in self._reads and action not in WRITES:
            raise InputError(f"k8s: unknown action {action!r}")

    def _with_defaults(self, action: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs with the schema's defaults filled in (the engine may pass them sparse)."""
        self._check_action(action)
        info = _action_infos().get(action)
        properties = info.input_schema.get("properties", {}) if info else {}
        merged = {
            key: schema["default"]
            for key, schema in properties.items()
            # poll_interval: the agent's configured default applies when a step does not say.
            if isinstance(schema, dict) and "default" in schema and key != "poll_interval"
        }
        merged.update(inputs)
        return merged

    def select_context(self, requested: str | None) -> str | None:
        """The context a step may use: the default, or one the agent's configuration allows."""
        default = self.config.context
        if requested is None or requested == default:
            return default
        if requested in self.config.allowed_contexts:
            return requested
        allowed = ", ".join(repr(c) for c in (default, *self.config.allowed_contexts) if c) or "none"
        raise InputError(f"k8s: context {requested!r} is not allowed on this agent (allowed: {allowed})")

    async def _client(self, requested: str | None) -> KubeClient:
        context = self.select_context(requested)
        async with self._connect_lock:
            if context not in self._clients:
                build = functools.partial(
                    connect,
                    kubeconfig=self.config.kubeconfig,
                    context=context,
                    in_cluster=self.config.in_cluster,
                    request_timeout=self.config.request_timeout,
                )
                self._clients[context] = await trio.to_thread.run_sync(build, abandon_on_cancel=True)
            return self._clients[context]


@functools.cache
def _action_infos() -> dict[str, ActionInfo]:
    from wpk import schemas

    return infos_from_schemas("k8s", schemas.action_schemas())
