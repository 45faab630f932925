"""Field ownership (`metadata.managedFields`, FieldsV1) as sets of paths.

A path is a tuple of FieldsV1 keys: `f:<field>` for a map field, `k:{"name":"app"}` for the item of
a keyed list, `v:"x"` for a member of a set list, `.` for "this list item itself". A field set
holds leaf paths only. This is the model server-side apply needs to tell who owns what, and it is
written back to `metadata.managedFields` in the real FieldsV1 tree format so clients can read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import list_strategy

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Identity and server-owned fields: never part of a field set.
_SKIP_TOP = frozenset({"apiVersion", "kind", "status"})
_SKIP_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    }
)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Entry:
    """One element of `metadata.managedFields`."""

    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Entry:
        return cls(
            manager=str(raw.get("manager", "")),
            operation=str(raw.get("operation", "Update")),
            api_version=str(raw.get("apiVersion", "")),
            time=str(raw.get("time", "")),
            fields=decode(raw.get("fieldsV1") or {}),
            subresource=str(raw.get("subresource", "")),
        )


def item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    present = {k: item[k] for k in keys if k in item}
    if keys and keys[0] not in present:
        return None
    return "k:" + json.dumps(dict(sorted(present.items())), separators=(",", ":"))


def _walk(value: Any, fields: tuple[str, ...], prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _walk(child, (*fields, key), (*prefix, f"f:{key}"), out)
        return
    if isinstance(value, list) and value:
        strategy = list_strategy(fields)
        if strategy.kind == "map" and all(isinstance(item, dict) for item in value):
            keys = [item_key(item, strategy.keys) for item in value]
            if all(k is not None for k in keys):
                for item, key in zip(value, keys, strict=True):
                    assert key is not None
                    item_path = (*prefix, key)
                    out.add((*item_path, "."))
                    for name, child in item.items():
                        _walk(child, (*fields, name), (*item_path, f"f:{name}"), out)
                return
        if strategy.kind == "set":
            for item in value:
                out.add((*prefix, "v:" + json.dumps(item, separators=(",", ":"))))
            return
    out.add(prefix)


def field_set(obj: Mapping[str, Any], *, subresource: str = "") -> FieldSet:
    """The leaf paths an object (or, for `status`, its status) sets."""
    out: set[Path] = set()
    if subresource == "status":
        if "status" in obj:
            _walk(obj["status"], ("status",), ("f:status",), out)
        return frozenset(out)
    for key, value in obj.items():
        if key in _SKIP_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _SKIP_META:
                    _walk(meta_value, ("metadata", meta_key), ("f:metadata", f"f:{meta_key}"), out)
            continue
        _walk(value, (key,), (f"f:{key}",), out)
    return frozenset(out)


def lookup(obj: Any, path: Path) -> Any:
    """The value at `path`, or `MISSING`. For an item's `.` path, the item itself."""
    node = obj
    for element in path:
        if element == ".":
            return node
        if element.startswith("f:"):
            if not isinstance(node, dict) or element[2:] not in node:
                return _MISSING
            node = node[element[2:]]
        elif element.startswith("k:"):
            wanted = json.loads(element[2:])
            if not isinstance(node, list):
                return _MISSING
            node = next(
                (i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())),
                _MISSING,
            )
            if node is _MISSING:
                return _MISSING
        elif element.startswith("v:"):
            wanted = json.loads(element[2:])
            if not isinstance(node, list) or wanted not in node:
                return _MISSING
            node = wanted
        else:
            return _MISSING
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


def remove(obj: Any, path: Path) -> None:
    """Remove the value at `path` (an item for `.` paths), then prune maps left empty on the way."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parents: list[tuple[Any, str]] = []
    node = obj
    for element in path[:-1]:
        child = lookup(node, (element,))
        if is_missing(child):
            return
        parents.append((node, element))
        node = child
    _remove_one(node, path[-1])
    for parent, element in reversed(parents):
        child = lookup(parent, (element,))
        if parent is obj or not isinstance(child, dict | list) or child:
            break  # keep top-level fields (spec, metadata) and anything still holding data
        _remove_one(parent, element)


def _remove_one(container: Any, element: str) -> None:
    if element.startswith("f:") and isinstance(container, dict):
        container.pop(element[2:], None)
    elif element.startswith(("k:", "v:")) and isinstance(container, list):
        target = lookup(container, (element,))
        if not is_missing(target):
            container[:] = [
                i for i in container if i is not target and not (element.startswith("v:") and i == target)
            ]


def changed_paths(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, subresource: str = ""
) -> FieldSet:
    """Leaf paths of `new` whose value is new or different from `old`."""
    paths = field_set(new, subresource=subresource)
    if old is None:
        return paths
    return frozenset(
        p
        for p in paths
        if (p[-1] == "." and is_missing(lookup(old, p)))
        or (p[-1] != "." and lookup(old, p) != lookup(new, p))
    )


def encode(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def decode(tree: Mapping[str, Any], prefix: Path = ()) -> FieldSet:
    out: set[Path] = set()
    for key, child in tree.items():
        path = (*prefix, key)
        if isinstance(child, Mapping) and child:
            out |= decode(child, path)
        else:
            out.add(path)
    return frozenset(out)


def to_text(path: Path) -> str:
    """`.spec.replicas`, `.spec.template.spec.containers[name="app"].image`, as the server prints them."""
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        elif element.startswith("k:"):
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(element[2:]).items()) + "]"
        elif element.startswith("v:"):
            text += f"[{element[2:]}]"
    return text


def read_entries(obj: Mapping[str, Any]) -> list[Entry]:
    raw = (obj.get("metadata") or {}).get("managedFields") or []
    return [Entry.from_json(e) for e in raw if isinstance(e, Mapping)]


def write_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    kept = [e.to_json() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def record_update(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> None:
    """An Update (create/replace/patch): `manager` takes the fields it changed away from everyone."""
    entries = read_entries(old) if old is not None else []
    present = field_set(new, subresource="status") | field_set(new)
    taken = changed_paths(old, new, subresource=subresource)
    updated: list[Entry] = []
    found = False
    for entry in entries:
        fields = frozenset(p for p in entry.fields if p in present or _covers(p, present)) - taken
        if entry.ident == (manager, "Update", subresource):
            fields = fields | taken
            found = True
            entry = Entry(
                manager,
                "Update",
                api_version,
                now if fields != entry.fields else entry.time,
                fields,
                subresource,
            )
        else:
            entry = Entry(
                entry.manager, entry.operation, entry.api_version, entry.time, fields, entry.subresource
            )
        updated.append(entry)
    if not found and taken:
        updated.append(Entry(manager, "Update", api_version, now, taken, subresource))
    write_entries(new, updated)


def _covers(path: Path, present: FieldSet) -> bool:
    """A path still present as a prefix of live leaves (e.g. an owned map that gained children)."""
    return any(p[: len(path)] == path for p in present)
