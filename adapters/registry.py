"""Where adapters come from: the `wpk.adapters` entry-point group, plus an explicit API.

A third-party package adds an adapter by declaring, in its own pyproject,

    [project.entry-points."wpk.adapters"]
    pagerduty = "wpk_pagerduty:PagerDutyAdapter"

or, in-process (tests, embedding), with `register("pagerduty", factory)`.

Nothing here imports an adapter module until a runbook uses it: the built-in actions'
metadata comes from their schema files, so `wpk validate` and a `core`-only run never pay for
importing `kubernetes` or `httpx`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wpk import schemas

from .base import ActionInfo, Adapter, AdapterFactory, infos_from_schemas

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "wpk.adapters"
BUILTIN_FACTORIES = {
    "core": "wpk.adapters.core:CoreAdapter",
    "shell": "wpk.adapters.shell:ShellAdapter",
    "api": "wpk.adapters.api:ApiAdapter",
    "k8s": "wpk.adapters.k8s:KubernetesAdapter",
}
"""Built-ins are imported directly: scanning every installed distribution's entry points costs
start-up time a core-only run should not pay. They are also declared as entry points, so tools
that list the group see them."""
BUILTIN = tuple(BUILTIN_FACTORIES)

_registered: dict[str, AdapterFactory] = {}
_infos: dict[str, ActionInfo | None] = {}
"""`action_info` by `uses`: asked four times a step (validation, compile, run, compensation)."""


class UnknownAdapter(LookupError):
    pass


def register(name: str, factory: AdapterFactory) -> None:
    """Make an adapter available under `name` (overrides an entry point of the same name)."""
    _registered[name] = factory
    _third_party_infos.cache_clear()
    _infos.clear()


def unregister(name: str) -> None:
    _registered.pop(name, None)
    _third_party_infos.cache_clear()
    _infos.clear()


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    from importlib import metadata  # only when a third-party adapter is looked up

    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def adapter_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_entry_points()) | set(_registered))


def load_factory(name: str) -> AdapterFactory:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_FACTORIES:
        module, _, attr = BUILTIN_FACTORIES[name].partition(":")
        builtin: AdapterFactory = getattr(importlib.import_module(module), attr)
        return builtin
    entry = _entry_points().get(name)
    if entry is None:
        raise UnknownAdapter(name)
    factory: AdapterFactory = entry.load()
    return factory


def create_adapter(name: str, config: Mapping[str, Any] | None = None) -> Adapter:
    """Build the adapter `name` from its section of the agent configuration."""
    return load_factory(name)(dict(config or {}))


def sweep_after_crash() -> list[int]:
    """At agent start: end the processes of steps whose agent died (adapters/shell/process.py).

    Returns the pids that were ended. The engine calls this once, before running anything."""
    from .shell.process import sweep_orphans

    return sweep_orphans()


@functools.cache
def _builtin_infos() -> dict[str, ActionInfo]:
    found: dict[str, ActionInfo] = {}
    all_schemas = schemas.action_schemas()
    for adapter in BUILTIN:
        for info in infos_from_schemas(adapter, all_schemas).values():
            found[info.uses] = info
    return found


@functools.cache
def _third_party_infos(name: str) -> dict[str, ActionInfo]:
    try:
        adapter = create_adapter(name, {})
    except UnknownAdapter:
        return {}
    return {info.uses: info for info in adapter.actions().values()}


def action_info(uses: str) -> ActionInfo | None:
    """Metadata of `adapter.action`, or None when no such action exists."""
    try:
        return _infos[uses]
    except KeyError:
        pass
    adapter, _, _ = uses.partition(".")
    if adapter in BUILTIN and adapter not in _registered:
        info = _builtin_infos().get(uses)
    else:
        info = _third_party_infos(adapter).get(uses)
    if len(_infos) < 4096:  # `uses` comes from runbooks: a bound, as for every cache of theirs
        _infos[uses] = info
    return info


def known_actions(adapter: str | None = None) -> list[str]:
    """Every known `adapter.action` (of one adapter, if given), for did-you-mean hints."""
    names = set(_builtin_infos())
    if adapter is not None and adapter not in BUILTIN:
        names |= set(_third_party_infos(adapter))
    return sorted(n for n in names if adapter is None or n.startswith(adapter + "."))
