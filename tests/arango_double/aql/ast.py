"""The AQL syntax tree: expressions and the operations of a query, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Expr:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any


@dataclass(frozen=True, slots=True)
class BindValue(Expr):
    name: str


@dataclass(frozen=True, slots=True)
class Var(Expr):
    name: str


@dataclass(frozen=True, slots=True)
class CollectionRef(Expr):
    """A collection used as a value (`FOR d IN coll`, `LENGTH(coll)`): its documents."""

    name: str | None  # None: given as `@@bind`
    bind: str | None = None


@dataclass(frozen=True, slots=True)
class ArrayLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ObjectLit(Expr):
    items: tuple[tuple[Expr, Expr], ...]  # (name expression, value)


@dataclass(frozen=True, slots=True)
class Member(Expr):
    obj: Expr
    key: Expr  # a.b is Member(a, Literal("b")); a[e] is Member(a, e)


@dataclass(frozen=True, slots=True)
class Expand(Expr):
    """`a[*]…`: `projection` is evaluated for each element, bound to `CURRENT`."""

    obj: Expr
    projection: Expr | None
    filter: Expr | None = None


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # "-", "+", "!"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # arithmetic, comparison, IN, NOT IN, LIKE, NOT LIKE, "..", AND, OR
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Ternary(Expr):
    cond: Expr
    then: Expr | None  # None: `a ?: b`
    otherwise: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Subquery(Expr):
    query: Query


# -- operations -------------------------------------------------------------------------------


class Op:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CollectionName:
    name: str | None
    bind: str | None = None


@dataclass(frozen=True, slots=True)
class For(Op):
    var: str
    source: Expr


@dataclass(frozen=True, slots=True)
class Filter(Op):
    cond: Expr


@dataclass(frozen=True, slots=True)
class Let(Op):
    var: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class Sort(Op):
    keys: tuple[tuple[Expr, bool], ...]  # (expression, ascending)


@dataclass(frozen=True, slots=True)
class Limit(Op):
    offset: Expr
    count: Expr


@dataclass(frozen=True, slots=True)
class Collect(Op):
    groups: tuple[tuple[str, Expr], ...]
    aggregates: tuple[tuple[str, str, Expr | None], ...]  # (var, function, argument)
    into: str | None
    into_expr: Expr | None
    count_into: str | None
    keep_vars: tuple[str, ...]  # the variables INTO collects (those in scope before COLLECT)


@dataclass(frozen=True, slots=True)
class Modify(Op):
    kind: str  # INSERT, UPDATE, REPLACE, REMOVE
    target: Expr  # the document (INSERT, UPDATE/REPLACE without WITH) or the key selector
    with_doc: Expr | None
    collection: CollectionName
    options: Expr | None


@dataclass(frozen=True, slots=True)
class Return(Op):
    expr: Expr
    distinct: bool


@dataclass(frozen=True, slots=True)
class Query:
    ops: tuple[Op, ...]
    binds: frozenset[str] = frozenset()
    bind_collections: frozenset[str] = frozenset()
