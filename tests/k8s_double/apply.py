"""Server-side apply: merge an applied configuration into the live object, with field ownership.

The model is simplified but honest about what matters to an SRE tool:
- the applier owns exactly the fields in its applied configuration (`Apply` entry of its manager);
- a field another manager owns (by `Apply` or `Update`) whose live value differs from the applied
  value is a conflict: 409 listing every conflicting field, unless `force=true`, which moves
  ownership to the applier;
- a field the applier owned before, drops from its configuration, and nobody else owns is removed
  from the object;
- maps merge, keyed lists (containers by name …) merge item by item, sets take the union, other
  lists are atomic (see `schema.py`).
"""

from __future__ import annotations

from typing import Any

from . import fields
from .errors import ApiError, Cause
from .fields import Entry, FieldSet, Path
from .jsondata import clone
from .patches import strategic_merge_patch


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def conflict_error(
    plural: str, group: str, name: str, conflicts: list[tuple[str, Path]], api_version: str
) -> ApiError:
    causes = [
        Cause("FieldManagerConflict", f'conflict with "{manager}" using {api_version}', fields.to_text(path))
        for manager, path in conflicts
    ]
    if len(causes) == 1:
        message = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        listed = "\n".join(f"- {c.message}: {c.field}" for c in causes)
        message = f"Apply failed with {len(causes)} conflicts: {listed}"
    details: dict[str, Any] = {"name": name, "kind": plural, "causes": [c.to_json() for c in causes]}
    if group:
        details["group"] = group
    return ApiError(409, "Conflict", message, details)


def server_side_apply(
    live: dict[str, Any],
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    now: str,
    plural: str,
    group: str,
) -> dict[str, Any]:
    """Apply `applied` onto an existing `live` object. Raises a 409 `ApiError` on conflicts."""
    config = _without_nulls({k: v for k, v in applied.items() if k != "status"})
    config.get("metadata", {}).pop("resourceVersion", None)
    mine = fields.field_set(config)
    entries = fields.read_entries(live)
    ident = (manager, "Apply", "")

    conflicts: list[tuple[str, Path]] = []
    for entry in entries:
        if entry.ident == ident:
            continue
        for path in sorted(entry.fields & mine):
            if path[-1] == ".":
                continue
            if fields.lookup(live, path) != fields.lookup(config, path):
                conflicts.append((entry.manager, path))
    if conflicts and not force:
        raise conflict_error(plural, group, str(live["metadata"]["name"]), conflicts, api_version)

    merged: dict[str, Any] = strategic_merge_patch(live, config)
    previous: FieldSet = next((e.fields for e in entries if e.ident == ident), frozenset())
    others = [e for e in entries if e.ident != ident]
    taken = {path for _, path in conflicts}
    for path in sorted(previous - mine, key=len, reverse=True):
        if not _owned_by_any(path, others):
            fields.remove(merged, path)

    updated: list[Entry] = []
    for entry in others:
        kept = entry.fields - taken if force else entry.fields
        updated.append(
            Entry(entry.manager, entry.operation, entry.api_version, entry.time, kept, entry.subresource)
        )
    time = now if mine != previous else next((e.time for e in entries if e.ident == ident), now)
    updated.append(Entry(manager, "Apply", api_version, time, mine))
    merged["metadata"]["managedFields"] = clone(live["metadata"].get("managedFields", []))
    fields.write_entries(merged, _ordered(updated, entries))
    return merged


def _owned_by_any(path: Path, entries: list[Entry]) -> bool:
    """Whether someone else still owns `path`, or (for a list item) anything inside that item."""
    if path[-1] == ".":
        item = path[:-1]
        return any(p[: len(item)] == item for e in entries for p in e.fields)
    return any(path in e.fields for e in entries)


def _ordered(updated: list[Entry], before: list[Entry]) -> list[Entry]:
    """Keep managers in their previous order, new ones last, as the server does."""
    order = {e.ident: i for i, e in enumerate(before)}
    return sorted(updated, key=lambda e: order.get(e.ident, len(order)))


def create_from_apply(applied: dict[str, Any], *, manager: str, api_version: str, now: str) -> dict[str, Any]:
    """The object an apply creates: the configuration, owned entirely by the applier."""
    obj: dict[str, Any] = _without_nulls(clone(applied))
    obj.pop("status", None)
    obj.setdefault("metadata", {}).pop("managedFields", None)
    fields.write_entries(obj, [Entry(manager, "Apply", api_version, now, fields.field_set(obj))])
    return obj
