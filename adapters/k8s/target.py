"""The object a step names, resolved once: which server, which resource, which name and namespace.

Also the typed accessors for rendered step inputs. The engine validates inputs against the action
schemas, but an adapter can be driven directly (tests, embedding), so every value is checked again
here and a bad one is an `InputError`, never a TypeError deep inside the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..base import AdapterError, InputError
from .client import KubeClient
from .diff import strip_managed_fields
from .resources import Resource

FIELD_MANAGER = "wpk"
DRY_RUN = ("dryRun", "All")


def text(inputs: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = inputs.get(key, default)
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"k8s: `{key}` must be a string, not {type(value).__name__}")


def required_text(inputs: Mapping[str, Any], key: str) -> str:
    value = text(inputs, key)
    if not value:
        raise InputError(f"k8s: `{key}` is required")
    return value


def integer(inputs: Mapping[str, Any], key: str, *, minimum: int = 0) -> int | None:
    value = inputs.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"k8s: `{key}` must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise InputError(f"k8s: `{key}` must be at least {minimum}")
    return value


def boolean(inputs: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = inputs.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"k8s: `{key}` must be true or false")
    return value


def dry_run_query(dry_run: bool) -> list[tuple[str, str]]:
    return [DRY_RUN] if dry_run else []


@dataclass(frozen=True, slots=True)
class Target:
    client: KubeClient
    resource: Resource
    name: str
    namespace: str | None  # None for cluster-scoped kinds

    @property
    def path(self) -> str:
        return self.resource.path(self.name, self.namespace)

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def label(self) -> str:
        """`Deployment default/web`: how plans and logs name the object."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.resource.kind} {where}{self.name}"

    @property
    def short(self) -> str:
        """`deployment.apps/web`, as kubectl prints it after a change."""
        group = f".{self.resource.group}" if self.resource.group else ""
        return f"{self.resource.kind.lower()}{group}/{self.name}"

    def undo_base(self) -> dict[str, Any]:
        """What a compensation needs to find this object again (JSON-serialisable)."""
        return {
            "kind": self.resource.kind,
            "api_version": self.resource.api_version,
            "name": self.name,
            "namespace": self.namespace,
            "context": self.client.context,
        }

    async def read(self, subresource: str | None = None) -> dict[str, Any]:
        return await self.client.request("GET", self.resource.path(self.name, self.namespace, subresource))

    async def read_or_none(self) -> dict[str, Any] | None:
        try:
            return await self.read()
        except AdapterError as error:
            if error.details.get("status") == 404:
                return None
            raise


async def resolve_target(
    client: KubeClient,
    inputs: Mapping[str, Any],
    *,
    kind: str | None = None,
    api_version: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Target:
    """Resolve the object named by the inputs (or by explicit values, e.g. from an undo record)."""
    resource = await client.resolve(
        kind or required_text(inputs, "kind"),
        api_version if api_version is not None else text(inputs, "api_version"),
    )
    namespace = namespace or text(inputs, "namespace", "default") or "default"
    return Target(
        client=client,
        resource=resource,
        name=name or required_text(inputs, "name"),
        namespace=namespace if resource.namespaced else None,
    )


def with_type(obj: Mapping[str, Any], resource: Resource) -> dict[str, Any]:
    """A list item as a self-describing object (the API omits kind/apiVersion in items)."""
    typed = {"apiVersion": resource.api_version, "kind": resource.kind}
    typed.update(strip_managed_fields(obj))
    return typed
