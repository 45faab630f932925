"""The three PATCH flavours of the Kubernetes API, applied to plain JSON data.

- JSON merge patch (RFC 7386): maps merge, `null` deletes, lists are replaced whole.
- Strategic merge patch: like merge patch, but lists with a merge key (containers by `name`, …)
  merge item by item, sets (finalizers) take the union, and the directives `$patch: delete`,
  `$patch: replace`, `$retainKeys`, `$deleteFromPrimitiveList/<f>` and `$setElementOrder/<f>`
  work as kubectl sends them.
- JSON patch (RFC 6902): add / remove / replace / move / copy / test on JSON pointers.

Functions raise `PatchError` for a patch that cannot apply; the API layer maps it to 400 or 422.
"""

from __future__ import annotations

from typing import Any

from .jsondata import clone
from .schema import list_strategy


class PatchError(ValueError):
    """A patch that is well-formed JSON but cannot be applied (422), or is malformed (400)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


# --- RFC 7386 ---------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge patch --------------------------------------------------------------------

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge_patch(original: Any, patch: Any, fields: tuple[str, ...] = ()) -> Any:
    """Apply a strategic merge patch; `fields` is the field-name path of `original` in its object."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object", malformed=True)
    return _merge_map(original if isinstance(original, dict) else {}, patch, fields)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    directive = patch.get(_PATCH)
    if directive == "replace":
        replaced: dict[str, Any] = _strip(patch)
        return replaced
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type: {directive!r}", malformed=True)
    result = clone(original)
    for key, value in patch.items():
        if key in (_PATCH, _RETAIN) or key.startswith(_ORDER):
            continue
        if key.startswith(_DELETE_FROM):
            field = key[len(_DELETE_FROM) :]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list", malformed=True)
            current = result.get(field)
            if isinstance(current, list):
                result[field] = [item for item in current if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get(_PATCH) == "delete":
                result.pop(key, None)
            else:
                current = result.get(key)
                result[key] = _merge_map(current if isinstance(current, dict) else {}, value, (*fields, key))
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, (*fields, key))
        else:
            result[key] = value
    retain = patch.get(_RETAIN)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], fields: tuple[str, ...]) -> list[Any]:
    strategy = list_strategy(fields)
    current = original if isinstance(original, list) else []
    if strategy.kind == "set":
        merged = clone(current)
        merged.extend(item for item in patch if item not in merged)
        return merged
    if strategy.kind == "atomic":
        return [_strip(item) if isinstance(item, dict) else clone(item) for item in patch]
    key = strategy.keys[0]
    if any(isinstance(item, dict) and item.get(_PATCH) == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and _PATCH in item)]
    merged = clone(current)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{'.'.join(fields)}: list items must be objects", malformed=True)
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None
        )
        if item.get(_PATCH) == "delete":
            merged = [old for old in merged if not (isinstance(old, dict) and old.get(key) == item[key])]
        elif index is None:
            merged.append(_merge_map({}, item, fields))
        else:
            merged[index] = _merge_map(merged[index], item, fields)
    return merged


def _strip(value: Any) -> Any:
    """Drop patch directives from data that is inserted as is."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in (_PATCH, _RETAIN) and not k.startswith((_ORDER, _DELETE_FROM))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return clone(value)


# --- RFC 6902 ---------------------------------------------------------------------------------


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's `==`, `true` is not `1` and `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (isinstance(a, str) == isinstance(b, str))


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}", malformed=True)
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(f"array index out of range: {index}")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"missing path: /{'/'.join(tokens)}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise PatchError(f"missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return clone(value)
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = clone(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), clone(value))
    else:
        raise PatchError(f"cannot add to a scalar at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise PatchError(f"missing path: /{'/'.join(tokens)}")
    return doc


def json_patch(document: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations in order, all or nothing."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", malformed=True)
    doc = clone(document)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"operation {number} is not an object with an 'op'", malformed=True)
        kind = op["op"]
        tokens = _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {number} ({kind}) has no 'value'", malformed=True)
        if kind == "add":
            doc = _add(doc, tokens, op["value"])
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            doc = _add(_remove(doc, tokens), tokens, op["value"]) if tokens else clone(op["value"])
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from"))
            value = clone(_get(doc, source))
            if kind == "move":
                if tokens[: len(source)] == source and tokens != source:
                    raise PatchError("cannot move a value into one of its children")
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if not json_equal(_get(doc, tokens), op["value"]):
                raise PatchError(f"testing value {op.get('path')} failed: test failed")
        else:
            raise PatchError(f"unexpected operation: {kind!r}", malformed=True)
    return doc
