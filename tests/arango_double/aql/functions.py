"""The AQL functions the double knows, with ArangoDB's argument counts and null-on-misuse rule.

A function given an argument of the wrong type returns null and leaves a warning (1563), as
ArangoDB does; an unknown name or a wrong argument count is a parse error (see parser.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from .values import canonical, compare, equal, number, to_number, to_string, truthy, type_rank

UNLIMITED = 1 << 30


class Context(Protocol):
    def warn(self, code: int, message: str) -> None: ...

    def document(self, handle: str) -> dict[str, Any] | None: ...


Fn = Callable[[Context, list[Any]], Any]
_FUNCS: dict[str, Fn] = {}
SPECS: dict[str, tuple[int, int]] = {}


def _fn(name: str, low: int, high: int = -1) -> Callable[[Fn], Fn]:
    def register(func: Fn) -> Fn:
        SPECS[name] = (low, high if high >= 0 else low)
        _FUNCS[name] = func
        return func

    return register


def call(ctx: Context, name: str, args: list[Any]) -> Any:
    return _FUNCS[name](ctx, args)


def _invalid(ctx: Context, name: str) -> None:
    ctx.warn(1563, f"invalid argument type in call to function '{name}()'")


@_fn("LENGTH", 1)
def _length(ctx: Context, args: list[Any]) -> Any:
    value = args[0]
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | dict | str):
        return len(value)
    return len(to_string(value))


SPECS["COUNT"] = SPECS["LENGTH"]
_FUNCS["COUNT"] = _length


@_fn("MERGE", 1, UNLIMITED)
def _merge(ctx: Context, args: list[Any]) -> Any:
    if len(args) == 1 and isinstance(args[0], list):
        args = args[0]
    out: dict[str, Any] = {}
    for value in args:
        if not isinstance(value, dict):
            _invalid(ctx, "MERGE")
            return None
        out.update(value)
    return out


@_fn("MERGE_RECURSIVE", 1, UNLIMITED)
def _merge_recursive(ctx: Context, args: list[Any]) -> Any:
    out: dict[str, Any] = {}
    for value in args:
        if not isinstance(value, dict):
            _invalid(ctx, "MERGE_RECURSIVE")
            return None
        out = merge_objects(out, value)
    return out


def merge_objects(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_objects(out[key], value)
        else:
            out[key] = value
    return out


@_fn("DATE_NOW", 0)
def _date_now(ctx: Context, args: list[Any]) -> Any:
    return int(time.time() * 1000)


@_fn("HAS", 2)
def _has(ctx: Context, args: list[Any]) -> Any:
    return isinstance(args[0], dict) and to_string(args[1]) in args[0]


@_fn("IS_NULL", 1)
def _is_null(ctx: Context, args: list[Any]) -> Any:
    return args[0] is None


for _name, _rank in (("IS_BOOL", 1), ("IS_NUMBER", 2), ("IS_STRING", 3), ("IS_ARRAY", 4), ("IS_OBJECT", 5)):
    SPECS[_name] = (1, 1)
    _FUNCS[_name] = lambda ctx, args, rank=_rank: args[0] is not None and type_rank(args[0]) == rank
SPECS["IS_LIST"], _FUNCS["IS_LIST"] = SPECS["IS_ARRAY"], _FUNCS["IS_ARRAY"]
SPECS["IS_DOCUMENT"], _FUNCS["IS_DOCUMENT"] = SPECS["IS_OBJECT"], _FUNCS["IS_OBJECT"]


@_fn("NOT_NULL", 1, UNLIMITED)
def _not_null(ctx: Context, args: list[Any]) -> Any:
    return next((a for a in args if a is not None), None)


@_fn("FIRST", 1)
def _first(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], list):
        _invalid(ctx, "FIRST")
        return None
    return args[0][0] if args[0] else None


@_fn("LAST", 1)
def _last(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], list):
        _invalid(ctx, "LAST")
        return None
    return args[0][-1] if args[0] else None


@_fn("NTH", 2)
def _nth(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], list):
        _invalid(ctx, "NTH")
        return None
    i = int(to_number(args[1]))
    return args[0][i] if 0 <= i < len(args[0]) else None


def _array_arg(ctx: Context, name: str, value: Any) -> list[Any] | None:
    if not isinstance(value, list):
        _invalid(ctx, name)
        return None
    return value


def agg_min(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    best = present[0]
    for v in present[1:]:
        if compare(v, best) < 0:
            best = v
    return best


def agg_max(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    best = present[0]
    for v in present[1:]:
        if compare(v, best) > 0:
            best = v
    return best


def agg_sum(values: list[Any]) -> Any:
    return number(sum(to_number(v) for v in values if v is not None))


def agg_average(values: list[Any]) -> Any:
    present = [to_number(v) for v in values if v is not None]
    return number(sum(present) / len(present)) if present else None


def agg_unique(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in values:
        key = canonical(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


for _name, _agg in (("MIN", agg_min), ("MAX", agg_max), ("SUM", agg_sum), ("AVERAGE", agg_average)):

    def _array_fn(
        ctx: Context, args: list[Any], name: str = _name, agg: Callable[[list[Any]], Any] = _agg
    ) -> Any:
        values = _array_arg(ctx, name, args[0])
        return None if values is None else agg(values)

    SPECS[_name] = (1, 1)
    _FUNCS[_name] = _array_fn
SPECS["AVG"], _FUNCS["AVG"] = SPECS["AVERAGE"], _FUNCS["AVERAGE"]


@_fn("UNIQUE", 1)
def _unique(ctx: Context, args: list[Any]) -> Any:
    values = _array_arg(ctx, "UNIQUE", args[0])
    return None if values is None else agg_unique(values)


def _names(args: list[Any]) -> set[str]:
    names: set[str] = set()
    for a in args:
        if isinstance(a, list):
            names.update(to_string(x) for x in a)
        else:
            names.add(to_string(a))
    return names


@_fn("UNSET", 1, UNLIMITED)
def _unset(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], dict):
        _invalid(ctx, "UNSET")
        return None
    drop = _names(args[1:])
    return {k: v for k, v in args[0].items() if k not in drop}


@_fn("KEEP", 1, UNLIMITED)
def _keep(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], dict):
        _invalid(ctx, "KEEP")
        return None
    keep = _names(args[1:])
    return {k: v for k, v in args[0].items() if k in keep}


@_fn("ATTRIBUTES", 1, 3)
def _attributes(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], dict):
        _invalid(ctx, "ATTRIBUTES")
        return None
    names = list(args[0])
    if len(args) > 1 and truthy(args[1]):
        names = [n for n in names if not n.startswith("_")]
    if len(args) > 2 and truthy(args[2]):
        names.sort()
    return names


@_fn("VALUES", 1, 2)
def _values(ctx: Context, args: list[Any]) -> Any:
    if not isinstance(args[0], dict):
        _invalid(ctx, "VALUES")
        return None
    skip = len(args) > 1 and truthy(args[1])
    return [v for k, v in args[0].items() if not (skip and k.startswith("_"))]


@_fn("POSITION", 2, 3)
def _position(ctx: Context, args: list[Any]) -> Any:
    values = _array_arg(ctx, "POSITION", args[0])
    if values is None:
        return None
    index = next((i for i, v in enumerate(values) if equal(v, args[1])), -1)
    if len(args) > 2 and truthy(args[2]):
        return index
    return index >= 0


SPECS["CONTAINS_ARRAY"], _FUNCS["CONTAINS_ARRAY"] = SPECS["POSITION"], _FUNCS["POSITION"]


@_fn("TO_NUMBER", 1)
def _to_number(ctx: Context, args: list[Any]) -> Any:
    return number(to_number(args[0]))


@_fn("TO_STRING", 1)
def _to_string(ctx: Context, args: list[Any]) -> Any:
    return to_string(args[0])


@_fn("TO_BOOL", 1)
def _to_bool(ctx: Context, args: list[Any]) -> Any:
    return truthy(args[0])


@_fn("TO_ARRAY", 1)
def _to_array(ctx: Context, args: list[Any]) -> Any:
    value = args[0]
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


@_fn("CONCAT", 1, UNLIMITED)
def _concat(ctx: Context, args: list[Any]) -> Any:
    if len(args) == 1 and isinstance(args[0], list):
        args = args[0]
    return "".join(to_string(a) for a in args if a is not None)


@_fn("CONCAT_SEPARATOR", 2, UNLIMITED)
def _concat_separator(ctx: Context, args: list[Any]) -> Any:
    parts = args[1] if len(args) == 2 and isinstance(args[1], list) else args[1:]
    return to_string(args[0]).join(to_string(a) for a in parts if a is not None)


@_fn("APPEND", 2, 3)
def _append(ctx: Context, args: list[Any]) -> Any:
    base = _array_arg(ctx, "APPEND", args[0])
    if base is None:
        return None
    extra = args[1] if isinstance(args[1], list) else [args[1]]
    out = list(base) + list(extra)
    if len(args) > 2 and truthy(args[2]):
        out = agg_unique(out)
    return out


@_fn("PUSH", 2, 3)
def _push(ctx: Context, args: list[Any]) -> Any:
    base = _array_arg(ctx, "PUSH", args[0])
    if base is None:
        return None
    if len(args) > 2 and truthy(args[2]) and any(equal(v, args[1]) for v in base):
        return list(base)
    return list(base) + [args[1]]


@_fn("FLATTEN", 1, 2)
def _flatten(ctx: Context, args: list[Any]) -> Any:
    values = _array_arg(ctx, "FLATTEN", args[0])
    if values is None:
        return None
    depth = int(to_number(args[1])) if len(args) > 1 else 1

    def flat(items: list[Any], level: int) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, list) and level > 0:
                out.extend(flat(item, level - 1))
            else:
                out.append(item)
        return out

    return flat(values, depth)


@_fn("REVERSE", 1)
def _reverse(ctx: Context, args: list[Any]) -> Any:
    if isinstance(args[0], str):
        return args[0][::-1]
    values = _array_arg(ctx, "REVERSE", args[0])
    return None if values is None else values[::-1]


@_fn("SLICE", 2, 3)
def _slice(ctx: Context, args: list[Any]) -> Any:
    values = _array_arg(ctx, "SLICE", args[0])
    if values is None:
        return None
    start = int(to_number(args[1]))
    if len(args) > 2 and args[2] is not None:
        length = int(to_number(args[2]))
        end = (start if start >= 0 else len(values) + start) + length if length >= 0 else length
        return values[start:end]
    return values[start:]


@_fn("SORTED", 1)
def _sorted(ctx: Context, args: list[Any]) -> Any:
    import functools

    values = _array_arg(ctx, "SORTED", args[0])
    return None if values is None else sorted(values, key=functools.cmp_to_key(compare))


@_fn("LOWER", 1)
def _lower(ctx: Context, args: list[Any]) -> Any:
    return to_string(args[0]).lower()


@_fn("UPPER", 1)
def _upper(ctx: Context, args: list[Any]) -> Any:
    return to_string(args[0]).upper()


@_fn("SUBSTRING", 2, 3)
def _substring(ctx: Context, args: list[Any]) -> Any:
    text = to_string(args[0])
    start = int(to_number(args[1]))
    if len(args) > 2:
        return text[start : start + int(to_number(args[2]))]
    return text[start:]


@_fn("CONTAINS", 2, 3)
def _contains(ctx: Context, args: list[Any]) -> Any:
    text, search = to_string(args[0]), to_string(args[1])
    if len(args) > 2 and truthy(args[2]):
        return text.find(search)
    return search in text


@_fn("STARTS_WITH", 2)
def _starts_with(ctx: Context, args: list[Any]) -> Any:
    return to_string(args[0]).startswith(to_string(args[1]))


def like(text: str, pattern: str, case_insensitive: bool = False) -> bool:
    """AQL LIKE: `%` any run, `_` one character, backslash escapes; the whole text must match."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.fullmatch("".join(out), text, flags) is not None


@_fn("LIKE", 2, 3)
def _like(ctx: Context, args: list[Any]) -> Any:
    return like(to_string(args[0]), to_string(args[1]), len(args) > 2 and truthy(args[2]))


@_fn("ABS", 1)
def _abs(ctx: Context, args: list[Any]) -> Any:
    return number(abs(to_number(args[0])))


@_fn("FLOOR", 1)
def _floor(ctx: Context, args: list[Any]) -> Any:
    import math

    return math.floor(to_number(args[0]))


@_fn("CEIL", 1)
def _ceil(ctx: Context, args: list[Any]) -> Any:
    import math

    return math.ceil(to_number(args[0]))


@_fn("ZIP", 2)
def _zip(ctx: Context, args: list[Any]) -> Any:
    if not (isinstance(args[0], list) and isinstance(args[1], list)) or len(args[0]) != len(args[1]):
        _invalid(ctx, "ZIP")
        return None
    return {to_string(k): v for k, v in zip(args[0], args[1], strict=True)}


@_fn("DOCUMENT", 1, 2)
def _document(ctx: Context, args: list[Any]) -> Any:
    if len(args) == 2:
        coll = to_string(args[0])
        keys = args[1]
        if isinstance(keys, list):
            return [d for d in (ctx.document(_handle(coll, k)) for k in keys) if d is not None]
        return ctx.document(_handle(coll, keys))
    if isinstance(args[0], list):
        return [d for d in (ctx.document(to_string(h)) for h in args[0]) if d is not None]
    return ctx.document(to_string(args[0]))


def _handle(coll: str, key: Any) -> str:
    key = to_string(key)
    return key if "/" in key else f"{coll}/{key}"


AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {
    "COUNT": len,
    "LENGTH": len,
    "MIN": agg_min,
    "MAX": agg_max,
    "SUM": agg_sum,
    "AVERAGE": agg_average,
    "AVG": agg_average,
    "UNIQUE": agg_unique,
    "SORTED_UNIQUE": lambda values: sorted(
        agg_unique(values), key=__import__("functools").cmp_to_key(compare)
    ),
    "COUNT_DISTINCT": lambda values: len(agg_unique(values)),
    "COUNT_UNIQUE": lambda values: len(agg_unique(values)),
    "PUSH": list,
}
