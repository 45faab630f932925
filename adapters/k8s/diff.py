"""Objects as a reviewer wants to read them: without server bookkeeping, as YAML, as a diff.

A dry-run plan shows the live object against the API server's dry-run answer. Both carry fields
that change on every write or that nobody wrote (`status`, `managedFields`, `resourceVersion`,
`uid`, `generation`, `creationTimestamp`); left in, they would make every diff noisy. The same
stripped form is what compensation writes back when it restores a previous object.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

import yaml

NOISY_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink")


def strip_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without `metadata.managedFields` (hidden by kubectl too; large and noisy)."""
    result = dict(obj)
    metadata = result.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        result["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return result


def clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy without `status` and the server-owned metadata fields listed above."""
    result = copy.deepcopy(dict(obj))
    result.pop("status", None)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        for key in NOISY_METADATA:
            metadata.pop(key, None)
        if not metadata.get("annotations"):
            metadata.pop("annotations", None)
    return result


def to_yaml(obj: Mapping[str, Any] | None) -> str:
    if obj is None:
        return ""
    return yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False, allow_unicode=True)


def mask_secret_values(before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Hide a Secret's values in place, as `kubectl diff` does: `***`, or `*** (before)` and
    `*** (after)` where a value changes. A plan is shown in logs and CI; a value never is."""
    objects = [obj for obj in (before, after) if obj is not None]
    if not any(obj.get("kind") == "Secret" for obj in objects):
        return
    for field in ("data", "stringData"):
        old = before.get(field) if before is not None else None
        new = after.get(field) if after is not None else None
        old = old if isinstance(old, dict) else {}
        new = new if isinstance(new, dict) else {}
        for key in set(old) | set(new):
            same = key in old and key in new and old[key] == new[key]
            if key in old:
                old[key] = "***" if same else "*** (before)"
            if key in new:
                new[key] = "***" if same else "*** (after)"


def unified_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, label: str) -> str:
    """`diff -u` of the two objects' clean YAML (Secret values masked); empty when nothing changes."""
    old_obj = clean(before) if before is not None else None
    new_obj = clean(after) if after is not None else None
    mask_secret_values(old_obj, new_obj)
    old = to_yaml(old_obj).splitlines(keepends=True)
    new = to_yaml(new_obj).splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=f"live/{label}" if before is not None else "/dev/null",
        tofile=f"dry-run/{label}" if after is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def changed_lines(diff: str) -> int:
    """How many lines a diff adds or removes (its headers excluded)."""
    return sum(
        1 for line in diff.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    )
