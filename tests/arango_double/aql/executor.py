"""Evaluate a parsed AQL query over rows of variable bindings.

Each operation maps a list of rows to a new list (FOR multiplies, FILTER drops, LET extends,
SORT/LIMIT reorder and cut, COLLECT groups, INSERT/UPDATE/REPLACE/REMOVE write through `Data`
and bind NEW/OLD); RETURN ends the query. Reads and writes go through `Data`, which the engine
implements per transaction, so a query sees its transaction's snapshot and own writes, and its
writes take part in conflict detection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import (
    DATA_SOURCE_NOT_FOUND,
    DOCUMENT_KEY_BAD,
    DOCUMENT_TYPE_INVALID,
    QUERY_BIND_PARAMETER_MISSING,
    QUERY_BIND_PARAMETER_TYPE,
    QUERY_BIND_PARAMETER_UNDECLARED,
    ArangoError,
)
from . import ast
from .functions import AGGREGATES, call, like
from .values import canonical, compare, equal, number, to_number, to_string, truthy

Row = dict[str, Any]


class Data(Protocol):
    """What a query reads and writes; the engine binds it to one transaction."""

    def scan(self, collection: str) -> list[dict[str, Any]]: ...

    def document(self, handle: str) -> dict[str, Any] | None: ...

    def insert(self, collection: str, doc: dict[str, Any], options: dict[str, Any]) -> tuple[Any, Any]: ...

    def update(
        self, collection: str, key: str, rev: str | None, patch: dict[str, Any], options: dict[str, Any]
    ) -> tuple[Any, Any]: ...

    def replace(
        self, collection: str, key: str, rev: str | None, doc: dict[str, Any], options: dict[str, Any]
    ) -> tuple[Any, Any]: ...

    def remove(self, collection: str, key: str, rev: str | None, options: dict[str, Any]) -> Any: ...


@dataclass
class Stats:
    writes_executed: int = 0
    writes_ignored: int = 0
    scanned_full: int = 0
    filtered: int = 0
    full_count: int | None = None  # rows before the last top-level LIMIT (`fullCount`)

    def as_json(self, execution_time: float) -> dict[str, Any]:
        return {
            "writesExecuted": self.writes_executed,
            "writesIgnored": self.writes_ignored,
            "scannedFull": self.scanned_full,
            "scannedIndex": 0,
            "cursorsCreated": 0,
            "cursorsRearmed": 0,
            "cacheHits": 0,
            "cacheMisses": 0,
            "filtered": self.filtered,
            "httpRequests": 0,
            "executionTime": execution_time,
            "peakMemoryUsage": 0,
        }


@dataclass
class Result:
    values: list[Any]
    stats: Stats
    warnings: list[dict[str, Any]] = field(default_factory=list)


def check_binds(query: ast.Query, binds: dict[str, Any]) -> None:
    for name in sorted(query.binds | {"@" + c for c in query.bind_collections}):
        if name not in binds:
            raise ArangoError(
                400,
                QUERY_BIND_PARAMETER_MISSING,
                f"AQL: no value specified for declared bind parameter '{name}' (while parsing)",
            )
    for name in binds:
        if name not in query.binds and not (name.startswith("@") and name[1:] in query.bind_collections):
            raise ArangoError(
                400,
                QUERY_BIND_PARAMETER_UNDECLARED,
                f"AQL: bind parameter '{name}' was not declared in the query (while parsing)",
            )
    for name in query.bind_collections:
        if not isinstance(binds["@" + name], str):
            raise ArangoError(
                400,
                QUERY_BIND_PARAMETER_TYPE,
                f"AQL: bind parameter '@{name}' has an invalid value or type (while parsing)",
            )


def execute(query: ast.Query, binds: dict[str, Any], data: Data) -> Result:
    check_binds(query, binds)
    run = _Run(binds, data)
    values = run.query(query, {}, top=True)
    return Result(values, run.stats, run.warnings)


class _Run:
    def __init__(self, binds: dict[str, Any], data: Data) -> None:
        self.binds = binds
        self.data = data
        self.stats = Stats()
        self.warnings: list[dict[str, Any]] = []

    # functions.Context
    def warn(self, code: int, message: str) -> None:
        if len(self.warnings) < 10:
            self.warnings.append({"code": code, "message": message})

    def document(self, handle: str) -> dict[str, Any] | None:
        return self._data(lambda: self.data.document(handle))

    def _data(self, action: Callable[[], Any]) -> Any:
        """Data-layer errors surface the way AQL reports them."""
        try:
            return action()
        except ArangoError as err:
            if err.message.startswith("AQL: "):
                raise
            phase = "while parsing" if err.num == DATA_SOURCE_NOT_FOUND else "while executing"
            raise ArangoError(err.status, err.num, f"AQL: {err.message} ({phase})") from None

    # -- queries ------------------------------------------------------------------------------

    def query(self, query: ast.Query, base: Row, *, top: bool = False) -> list[Any]:
        rows: list[Row] = [base]
        for op in query.ops:
            if top and isinstance(op, ast.Limit):
                self.stats.full_count = len(rows)
            if isinstance(op, ast.Return):
                values = [self.eval(op.expr, row) for row in rows]
                if op.distinct:
                    seen: set[str] = set()
                    unique = []
                    for v in values:
                        key = canonical(v)
                        if key not in seen:
                            seen.add(key)
                            unique.append(v)
                    values = unique
                return values
            rows = self.apply(op, rows, base)
        return []

    def apply(self, op: ast.Op, rows: list[Row], base: Row) -> list[Row]:
        if isinstance(op, ast.For):
            out: list[Row] = []
            for row in rows:
                source = self.eval(op.source, row)
                if isinstance(op.source, ast.CollectionRef):
                    self.stats.scanned_full += len(source)
                if not isinstance(source, list):
                    continue
                for item in source:
                    out.append({**row, op.var: item})
            return out
        if isinstance(op, ast.Filter):
            kept = [row for row in rows if truthy(self.eval(op.cond, row))]
            self.stats.filtered += len(rows) - len(kept)
            return kept
        if isinstance(op, ast.Let):
            return [{**row, op.var: self.eval(op.expr, row)} for row in rows]
        if isinstance(op, ast.Sort):
            return self.sort(op, rows)
        if isinstance(op, ast.Limit):
            offset = max(int(to_number(self.eval(op.offset, base))), 0)
            count = self.eval(op.count, base)
            if count is None:  # python-arango's `find` sends `LIMIT 0, null`: no limit
                return rows[offset:]
            return rows[offset : offset + max(int(to_number(count)), 0)]
        if isinstance(op, ast.Collect):
            return self.collect(op, rows, base)
        if isinstance(op, ast.Modify):
            return [r for r in (self.modify(op, row) for row in rows) if r is not None]
        raise AssertionError(f"unknown operation {op!r}")

    def sort(self, op: ast.Sort, rows: list[Row]) -> list[Row]:
        keyed = [([self.eval(e, row) for e, _ in op.keys], row) for row in rows]

        def cmp(a: tuple[list[Any], Row], b: tuple[list[Any], Row]) -> int:
            for (_, ascending), x, y in zip(op.keys, a[0], b[0], strict=True):
                c = compare(x, y)
                if c:
                    return c if ascending else -c
            return 0

        keyed.sort(key=functools.cmp_to_key(cmp))
        return [row for _, row in keyed]

    def collect(self, op: ast.Collect, rows: list[Row], base: Row) -> list[Row]:
        groups: dict[str, tuple[list[Any], list[Row]]] = {}
        for row in rows:
            values = [self.eval(e, row) for _, e in op.groups]
            key = canonical(values)
            groups.setdefault(key, (values, []))[1].append(row)
        if not op.groups and not groups:
            groups[""] = ([], [])  # COLLECT WITH COUNT INTO / AGGREGATE without groups: one row
        ordered = sorted(groups.values(), key=functools.cmp_to_key(lambda a, b: compare(a[0], b[0])))
        out: list[Row] = []
        for values, members in ordered:
            row: Row = dict(base)
            for (var, _), value in zip(op.groups, values, strict=True):
                row[var] = value
            for var, func, arg in op.aggregates:
                inputs = [self.eval(arg, m) if arg is not None else None for m in members]
                row[var] = AGGREGATES[func](inputs)
            if op.into:
                if op.into_expr is not None:
                    row[op.into] = [self.eval(op.into_expr, m) for m in members]
                else:
                    row[op.into] = [{k: m.get(k) for k in op.keep_vars} for m in members]
            if op.count_into:
                row[op.count_into] = len(members)
            out.append(row)
        return out

    def modify(self, op: ast.Modify, row: Row) -> Row | None:
        collection = self.collection(op.collection)
        options = self.eval(op.options, row) if op.options is not None else {}
        if not isinstance(options, dict):
            options = {}
        target = self.eval(op.target, row)
        try:
            if op.kind == "INSERT":
                if not isinstance(target, dict):
                    raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
                old, new = self._data(lambda: self.data.insert(collection, target, options))
            else:
                key, rev = self.selector(target, collection, options)
                if op.kind == "REMOVE":
                    old, new = self._data(lambda: self.data.remove(collection, key, rev, options)), None
                else:
                    doc = self.eval(op.with_doc, row) if op.with_doc is not None else target
                    if not isinstance(doc, dict):
                        raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
                    write = self.data.update if op.kind == "UPDATE" else self.data.replace
                    old, new = self._data(lambda: write(collection, key, rev, doc, options))
        except ArangoError as err:
            if truthy(options.get("ignoreErrors")):
                self.stats.writes_ignored += 1
                return None
            if not err.message.startswith("AQL: "):
                raise ArangoError(err.status, err.num, f"AQL: {err.message} (while executing)") from None
            raise
        self.stats.writes_executed += 1
        return {**row, "NEW": new, "OLD": old}

    def selector(self, target: Any, collection: str, options: dict[str, Any]) -> tuple[str, str | None]:
        rev = None
        if isinstance(target, dict):
            key = target.get("_key")
            if key is None and isinstance(target.get("_id"), str):
                key = target["_id"].partition("/")[2]
            if options.get("ignoreRevs", True) is False and isinstance(target.get("_rev"), str):
                rev = target["_rev"]
        elif isinstance(target, str):
            key = target.partition("/")[2] if "/" in target else target
        else:
            raise ArangoError(400, DOCUMENT_KEY_BAD, "illegal document key")
        if not isinstance(key, str) or not key:
            raise ArangoError(400, DOCUMENT_KEY_BAD, "illegal document key")
        return key, rev

    def collection(self, name: ast.CollectionName) -> str:
        if name.bind is not None:
            return str(self.binds["@" + name.bind])
        assert name.name is not None
        return name.name

    # -- expressions --------------------------------------------------------------------------

    def eval(self, expr: ast.Expr, row: Row) -> Any:
        if isinstance(expr, ast.Literal):
            return expr.value
        if isinstance(expr, ast.Var):
            return row.get(expr.name)
        if isinstance(expr, ast.Member):
            return self.member(self.eval(expr.obj, row), self.eval(expr.key, row))
        if isinstance(expr, ast.BindValue):
            return self.binds[expr.name]
        if isinstance(expr, ast.Binary):
            return self.binary(expr, row)
        if isinstance(expr, ast.ObjectLit):
            out: dict[str, Any] = {}
            for key_expr, value_expr in expr.items:
                key = self.eval(key_expr, row)
                out[key if isinstance(key, str) else to_string(key)] = self.eval(value_expr, row)
            return out
        if isinstance(expr, ast.ArrayLit):
            return [self.eval(item, row) for item in expr.items]
        if isinstance(expr, ast.Call):
            args = [self.eval(a, row) for a in expr.args]
            first = expr.args[0] if expr.args else None
            if expr.name == "DOCUMENT" and len(args) == 2 and isinstance(first, ast.CollectionRef):
                # DOCUMENT(coll, key) and DOCUMENT(@@coll, key) name the collection, not its documents
                args[0] = first.name if first.name is not None else self.binds["@" + str(first.bind)]
            return call(self, expr.name, args)
        if isinstance(expr, ast.Unary):
            value = self.eval(expr.operand, row)
            if expr.op == "!":
                return not truthy(value)
            return number(-to_number(value) if expr.op == "-" else to_number(value))
        if isinstance(expr, ast.Ternary):
            cond = self.eval(expr.cond, row)
            if truthy(cond):
                return cond if expr.then is None else self.eval(expr.then, row)
            return self.eval(expr.otherwise, row)
        if isinstance(expr, ast.CollectionRef):
            name = expr.name if expr.name is not None else str(self.binds["@" + str(expr.bind)])
            return self._data(lambda: self.data.scan(name))
        if isinstance(expr, ast.Subquery):
            return self.query(expr.query, row)
        if isinstance(expr, ast.Expand):
            items = self.eval(expr.obj, row)
            if not isinstance(items, list):
                return []
            if expr.projection is None:
                return list(items)
            return [self.eval(expr.projection, {**row, "CURRENT": item}) for item in items]
        raise AssertionError(f"unknown expression {expr!r}")

    @staticmethod
    def member(obj: Any, key: Any) -> Any:
        if isinstance(obj, dict):
            return obj.get(key if isinstance(key, str) else to_string(key))
        if isinstance(obj, list) and isinstance(key, int | float) and not isinstance(key, bool):
            i = int(key)
            if i < 0:
                i += len(obj)
            return obj[i] if 0 <= i < len(obj) else None
        return None

    def binary(self, expr: ast.Binary, row: Row) -> Any:
        op = expr.op
        left = self.eval(expr.left, row)
        if op == "AND":
            return self.eval(expr.right, row) if truthy(left) else left
        if op == "OR":
            return left if truthy(left) else self.eval(expr.right, row)
        right = self.eval(expr.right, row)
        if op == "==":
            return equal(left, right)
        if op == "!=":
            return not equal(left, right)
        if op == "<":
            return compare(left, right) < 0
        if op == "<=":
            return compare(left, right) <= 0
        if op == ">":
            return compare(left, right) > 0
        if op == ">=":
            return compare(left, right) >= 0
        if op == "IN":
            return isinstance(right, list) and any(equal(left, v) for v in right)
        if op == "NOT IN":
            return not (isinstance(right, list) and any(equal(left, v) for v in right))
        if op in ("LIKE", "NOT LIKE"):
            matched = like(to_string(left), to_string(right))
            return matched if op == "LIKE" else not matched
        if op in ("=~", "!~"):
            try:
                found = re.search(to_string(right), to_string(left)) is not None
            except re.error:
                self.warn(1575, "invalid regex value")
                return None
            return found if op == "=~" else not found
        if op == "..":
            a, b = int(to_number(left)), int(to_number(right))
            return list(range(a, b + 1)) if a <= b else list(range(a, b - 1, -1))
        a, b = to_number(left), to_number(right)
        if op == "+":
            return number(a + b)
        if op == "-":
            return number(a - b)
        if op == "*":
            return number(a * b)
        if b == 0:
            self.warn(1562, "division by zero")
            return None
        if op == "/":
            return number(a / b)
        return number(a % b if (a >= 0) == (b >= 0) else -(abs(a) % abs(b)))
