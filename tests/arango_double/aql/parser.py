"""AQL text -> `Query`: a recursive-descent parser with ArangoDB's operator precedence.

Precedence, loosest first: `?:`, `||`/OR, `&&`/AND, `==` `!=` LIKE `=~` `!~`, IN / NOT IN,
`<` `<=` `>` `>=`, `..`, `+` `-`, `*` `/` `%`, unary `!`/NOT `-` `+`, then postfix access
(`.name`, `[expr]`, `[*]`) and calls. Variables are resolved while parsing: a name that is not a
declared variable is a collection, as in ArangoDB (`LENGTH(coll)` reads the collection).
Errors are ArangoDB's: 1501 for syntax, 1540 for an unknown function, 1541 for a wrong number
of arguments, 1579 for reading a collection after modifying it in the same query.
"""

from __future__ import annotations

from ..errors import (
    QUERY_ACCESS_AFTER_MODIFICATION,
    QUERY_EMPTY,
    QUERY_FUNCTION_ARGUMENT_NUMBER_MISMATCH,
    QUERY_FUNCTION_NAME_UNKNOWN,
    ArangoError,
)
from . import ast
from .functions import AGGREGATES, SPECS
from .lexer import SOFT_KEYWORDS, Token, syntax_error, tokenize

_STATEMENT_WORDS = (
    "FOR",
    "FILTER",
    "LET",
    "SORT",
    "LIMIT",
    "COLLECT",
    "INSERT",
    "UPDATE",
    "REPLACE",
    "REMOVE",
)
_MODIFY = ("INSERT", "UPDATE", "REPLACE", "REMOVE")


def parse(query: str) -> ast.Query:
    if not query.strip():
        raise ArangoError(400, QUERY_EMPTY, "query is empty")
    return _Parser(query).parse_top()


def _access_after_modification(operation: str) -> ArangoError:
    return ArangoError(
        400,
        QUERY_ACCESS_AFTER_MODIFICATION,
        f"AQL: access after data-modification by {operation} (while parsing)",
    )


class _Scope:
    def __init__(self, outer: _Scope | None) -> None:
        self.outer = outer
        self.names: set[str] = set()
        self.base: set[str] = set()  # declared before the first FOR of this level
        self.in_loop = False
        self.modified: dict[str, str] = {}  # collection -> the operation that modified it

    def has(self, name: str) -> bool:
        return name in self.names or (self.outer is not None and self.outer.has(name))


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.scope = _Scope(None)
        self.binds: set[str] = set()
        self.bind_collections: set[str] = set()
        # In `UPDATE doc IN coll` the IN ends the document expression; nested brackets lift this.
        self.no_in = False

    # -- token helpers ----------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, tok: Token | None = None) -> ArangoError:
        tok = tok or self.tok
        if tok.kind == "eof":
            return syntax_error(self.query, "unexpected end of query string", tok.line, tok.col)
        what = {
            "ident": "identifier",
            "string": "quoted string",
            "number": "number",
            "bind": "bind parameter",
            "bindcoll": "bind data source parameter",
        }.get(tok.kind, f"{tok.value} keyword" if tok.kind == "kw" else f"'{tok.value}'")
        offset = self._offset(tok)
        return syntax_error(self.query, f"unexpected {what}", tok.line, tok.col, offset)

    def _offset(self, tok: Token) -> int:
        lines = self.query.split("\n")
        return sum(len(line) + 1 for line in lines[: tok.line - 1]) + tok.col - 1

    def expect_punct(self, symbol: str) -> Token:
        if not self.tok.is_punct(symbol):
            raise self.error()
        return self.advance()

    def expect_kw(self, *words: str) -> Token:
        if not self.tok.is_kw(*words):
            raise self.error()
        return self.advance()

    def name(self) -> str:
        """A variable name being declared."""
        tok = self.tok
        if tok.kind == "ident":
            self.advance()
            return tok.value
        if tok.kind == "kw" and tok.value in SOFT_KEYWORDS:
            self.advance()
            return self._kw_spelling(tok)
        raise self.error()

    def declare(self, name: str) -> None:
        self.scope.names.add(name)
        if not self.scope.in_loop:
            self.scope.base.add(name)

    # -- queries ----------------------------------------------------------------------------

    def parse_top(self) -> ast.Query:
        query = self.parse_query()
        if self.tok.kind != "eof":
            raise self.error()
        return ast.Query(query.ops, frozenset(self.binds), frozenset(self.bind_collections))

    def parse_query(self) -> ast.Query:
        ops: list[ast.Op] = []
        terminal = False
        while True:
            tok = self.tok
            if tok.is_kw("RETURN"):
                self.advance()
                distinct = False
                if self.tok.is_kw("DISTINCT"):
                    self.advance()
                    distinct = True
                ops.append(ast.Return(self.expr(), distinct))
                terminal = True
                break
            if tok.is_kw(*_STATEMENT_WORDS):
                op = self.statement()
                ops.append(op)
                if isinstance(op, ast.Modify):
                    terminal = True
                continue
            break
        if not terminal:
            raise self.error()
        return ast.Query(tuple(ops))

    def statement(self) -> ast.Op:
        word = self.advance().value
        if word == "FOR":
            var = self.name()
            self.expect_kw("IN")
            source = self.expr()
            if self.tok.is_kw("OPTIONS"):
                self.advance()
                self.expr()
            if isinstance(source, ast.CollectionRef) and source.name in self.scope.modified:
                raise _access_after_modification(self.scope.modified[source.name])
            self.scope.in_loop = True
            self.declare(var)
            return ast.For(var, source)
        if word == "FILTER":
            return ast.Filter(self.expr())
        if word == "LET":
            var = self.name()
            self.expect_punct("=")
            value = self.expr()
            self.declare(var)
            return ast.Let(var, value)
        if word == "SORT":
            keys = [self.sort_key()]
            while self.tok.is_punct(","):
                self.advance()
                keys.append(self.sort_key())
            return ast.Sort(tuple(keys))
        if word == "LIMIT":
            first = self.expr()
            if self.tok.is_punct(","):
                self.advance()
                return ast.Limit(first, self.expr())
            return ast.Limit(ast.Literal(0), first)
        if word == "COLLECT":
            return self.collect()
        return self.modify(word)

    def sort_key(self) -> tuple[ast.Expr, bool]:
        expr = self.expr()
        if self.tok.is_kw("ASC"):
            self.advance()
            return expr, True
        if self.tok.is_kw("DESC"):
            self.advance()
            return expr, False
        return expr, True

    def collect(self) -> ast.Collect:
        groups: list[tuple[str, ast.Expr]] = []
        aggregates: list[tuple[str, str, ast.Expr | None]] = []
        into: str | None = None
        into_expr: ast.Expr | None = None
        count_into: str | None = None
        named = self.tok.kind == "ident" or (self.tok.kind == "kw" and self.tok.value in SOFT_KEYWORDS)
        if named and not self.tok.is_kw("AGGREGATE") and self.peek().is_punct("="):
            groups.append(self.assignment())
            while self.tok.is_punct(","):
                self.advance()
                groups.append(self.assignment())
        if self.tok.is_kw("AGGREGATE"):
            self.advance()
            aggregates.append(self.aggregate())
            while self.tok.is_punct(","):
                self.advance()
                aggregates.append(self.aggregate())
        if self.tok.is_kw("INTO"):
            self.advance()
            into = self.name()
            if self.tok.is_punct("="):
                self.advance()
                into_expr = self.expr()
            elif self.tok.is_kw("KEEP"):
                self.advance()
                self.name()
                while self.tok.is_punct(","):
                    self.advance()
                    self.name()
        if self.tok.is_kw("WITH"):
            self.advance()
            self.expect_kw("COUNT")
            self.expect_kw("INTO")
            count_into = self.name()
        if self.tok.is_kw("OPTIONS"):
            self.advance()
            self.expr()
        if not (groups or aggregates or into or count_into):
            raise self.error()
        keep = tuple(sorted(self.scope.names - self.scope.base))
        self.scope.names = set(self.scope.base)
        for var in [g[0] for g in groups] + [a[0] for a in aggregates] + [v for v in (into, count_into) if v]:
            self.scope.names.add(var)
        return ast.Collect(tuple(groups), tuple(aggregates), into, into_expr, count_into, keep)

    def assignment(self) -> tuple[str, ast.Expr]:
        var = self.name()
        self.expect_punct("=")
        return var, self.expr()

    def aggregate(self) -> tuple[str, str, ast.Expr | None]:
        var = self.name()
        self.expect_punct("=")
        tok = self.tok
        if tok.kind not in ("ident", "kw"):
            raise self.error()
        func = tok.value.upper()
        self.advance()
        self.expect_punct("(")
        arg: ast.Expr | None = None
        if not self.tok.is_punct(")"):
            arg = self.expr()
        self.expect_punct(")")
        if func not in AGGREGATES:
            raise ArangoError(
                400,
                QUERY_FUNCTION_NAME_UNKNOWN,
                f"AQL: usage of unknown aggregate function '{func}()' (while parsing)",
            )
        return var, func, arg

    def modify(self, kind: str) -> ast.Modify:
        self.no_in = True
        try:
            target = self.expr()
            with_doc: ast.Expr | None = None
            if kind in ("UPDATE", "REPLACE") and self.tok.is_kw("WITH"):
                self.advance()
                with_doc = self.expr()
        finally:
            self.no_in = False
        if kind == "INSERT":
            self.expect_kw("INTO", "IN")
        else:
            self.expect_kw("IN", "INTO")
        collection = self.collection_name()
        options: ast.Expr | None = None
        if self.tok.is_kw("OPTIONS"):
            self.advance()
            options = self.expr()
        if collection.name is not None:
            self.scope.modified.setdefault(collection.name, kind)
        for pseudo in ("NEW", "OLD"):
            self.scope.names.add(pseudo)
        return ast.Modify(kind, target, with_doc, collection, options)

    def collection_name(self) -> ast.CollectionName:
        tok = self.tok
        if tok.kind == "bindcoll":
            self.advance()
            self.bind_collections.add(tok.value)
            return ast.CollectionName(None, tok.value)
        if tok.kind in ("ident", "string") or tok.kind == "kw":
            self.advance()
            return ast.CollectionName(tok.value)
        raise self.error()

    # -- expressions --------------------------------------------------------------------------

    def expr(self) -> ast.Expr:
        cond = self.logical_or()
        if self.tok.is_punct("?"):
            self.advance()
            then: ast.Expr | None = None
            if not self.tok.is_punct(":"):
                then = self.expr()
            self.expect_punct(":")
            return ast.Ternary(cond, then, self.expr())
        return cond

    def nested_expr(self) -> ast.Expr:
        saved, self.no_in = self.no_in, False
        try:
            return self.expr()
        finally:
            self.no_in = saved

    def logical_or(self) -> ast.Expr:
        left = self.logical_and()
        while self.tok.is_punct("||") or self.tok.is_kw("OR"):
            self.advance()
            left = ast.Binary("OR", left, self.logical_and())
        return left

    def logical_and(self) -> ast.Expr:
        left = self.equality()
        while self.tok.is_punct("&&") or self.tok.is_kw("AND"):
            self.advance()
            left = ast.Binary("AND", left, self.equality())
        return left

    def equality(self) -> ast.Expr:
        left = self.membership()
        while True:
            tok = self.tok
            if tok.is_punct("==", "!=", "=~", "!~"):
                self.advance()
                left = ast.Binary(tok.value, left, self.membership())
            elif tok.is_kw("LIKE"):
                self.advance()
                left = ast.Binary("LIKE", left, self.membership())
            elif tok.is_kw("NOT") and self.peek().is_kw("LIKE"):
                self.advance()
                self.advance()
                left = ast.Binary("NOT LIKE", left, self.membership())
            else:
                return left

    def membership(self) -> ast.Expr:
        left = self.comparison()
        while True:
            if self.tok.is_kw("IN") and not self.no_in:
                self.advance()
                left = ast.Binary("IN", left, self.comparison())
            elif self.tok.is_kw("NOT") and self.peek().is_kw("IN"):
                self.advance()
                self.advance()
                left = ast.Binary("NOT IN", left, self.comparison())
            else:
                return left

    def comparison(self) -> ast.Expr:
        left = self.range_()
        while self.tok.is_punct("<", "<=", ">", ">="):
            op = self.advance().value
            left = ast.Binary(op, left, self.range_())
        return left

    def range_(self) -> ast.Expr:
        left = self.additive()
        if self.tok.is_punct(".."):
            self.advance()
            return ast.Binary("..", left, self.additive())
        return left

    def additive(self) -> ast.Expr:
        left = self.multiplicative()
        while self.tok.is_punct("+", "-"):
            op = self.advance().value
            left = ast.Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> ast.Expr:
        left = self.unary()
        while self.tok.is_punct("*", "/", "%"):
            op = self.advance().value
            left = ast.Binary(op, left, self.unary())
        return left

    def unary(self) -> ast.Expr:
        tok = self.tok
        if tok.is_punct("!") or tok.is_kw("NOT"):
            self.advance()
            return ast.Unary("!", self.unary())
        if tok.is_punct("-", "+"):
            self.advance()
            operand = self.unary()
            if isinstance(operand, ast.Literal) and isinstance(operand.value, int | float):
                return ast.Literal(-operand.value if tok.value == "-" else operand.value)
            return ast.Unary(tok.value, operand)
        return self.postfix(self.primary())

    def postfix(self, base: ast.Expr) -> ast.Expr:
        while True:
            tok = self.tok
            if tok.is_punct("."):
                self.advance()
                base = ast.Member(base, self.attribute_name())
            elif tok.is_punct("[") and self.peek().is_punct("*") and self.peek(2).is_punct("]"):
                self.advance()
                self.advance()
                self.advance()
                return self.expansion(base)
            elif tok.is_punct("["):
                self.advance()
                index = self.nested_expr()
                self.expect_punct("]")
                base = ast.Member(base, index)
            else:
                return base

    def expansion(self, base: ast.Expr) -> ast.Expr:
        outer = self.scope
        self.scope = _Scope(outer)
        self.scope.names.add("CURRENT")
        try:
            start = self.i
            projection = self.postfix(ast.Var("CURRENT"))
            return ast.Expand(base, projection if self.i != start else None)
        finally:
            self.scope = outer

    def attribute_name(self) -> ast.Expr:
        tok = self.tok
        if tok.kind in ("ident", "kw", "string"):
            self.advance()
            return ast.Literal(tok.value if tok.kind != "kw" else self._kw_spelling(tok))
        if tok.kind == "bind":
            self.advance()
            self.binds.add(tok.value)
            return ast.BindValue(tok.value)
        raise self.error()

    def _kw_spelling(self, tok: Token) -> str:
        """Keywords used as attribute names keep the case they were written in."""
        offset = self._offset(tok)
        return self.query[offset : offset + len(tok.value)]

    def primary(self) -> ast.Expr:
        if self.no_in and self.tok.is_punct("(", "[", "{"):
            self.no_in = False
            try:
                return self.primary()
            finally:
                self.no_in = True
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            return ast.Literal(tok.num)
        if tok.kind == "string":
            self.advance()
            return ast.Literal(tok.value)
        if tok.kind == "bind":
            self.advance()
            self.binds.add(tok.value)
            return ast.BindValue(tok.value)
        if tok.kind == "bindcoll":
            self.advance()
            self.bind_collections.add(tok.value)
            return ast.CollectionRef(None, tok.value)
        if tok.is_kw("TRUE", "FALSE", "NULL"):
            self.advance()
            return ast.Literal({"TRUE": True, "FALSE": False, "NULL": None}[tok.value])
        if tok.is_punct("("):
            self.advance()
            if self.tok.is_kw("FOR", "LET", "RETURN", "INSERT", "UPDATE", "REPLACE", "REMOVE", "COLLECT"):
                outer = self.scope
                self.scope = _Scope(outer)
                try:
                    sub = self.parse_query()
                finally:
                    self.scope = outer
                self.expect_punct(")")
                return ast.Subquery(sub)
            inner = self.expr()
            self.expect_punct(")")
            return inner
        if tok.is_punct("["):
            return self.array()
        if tok.is_punct("{"):
            return self.object()
        if tok.kind == "ident" or (tok.kind == "kw" and self.peek().is_punct("(")):
            if self.peek().is_punct("(") or self.peek().is_punct("::"):
                return self.call()
            if tok.kind == "ident":
                self.advance()
                if self.scope.has(tok.value):
                    return ast.Var(tok.value)
                if tok.value in self.scope.modified:
                    raise _access_after_modification(self.scope.modified[tok.value])
                return ast.CollectionRef(tok.value)
        if tok.kind == "kw" and tok.value in SOFT_KEYWORDS and self.scope.has(self._kw_spelling(tok)):
            self.advance()
            return ast.Var(self._kw_spelling(tok))  # e.g. `COLLECT … WITH COUNT INTO count`
        raise self.error()

    def call(self) -> ast.Expr:
        parts = [self.advance().value]
        while self.tok.is_punct("::"):
            self.advance()
            if self.tok.kind not in ("ident", "kw"):
                raise self.error()
            parts.append(self.advance().value)
        name = "::".join(parts).upper()
        self.expect_punct("(")
        args: list[ast.Expr] = []
        if not self.tok.is_punct(")"):
            args.append(self.nested_expr())
            while self.tok.is_punct(","):
                self.advance()
                args.append(self.nested_expr())
        self.expect_punct(")")
        spec = SPECS.get(name)
        if spec is None:
            raise ArangoError(
                400, QUERY_FUNCTION_NAME_UNKNOWN, f"AQL: usage of unknown function '{name}()' (while parsing)"
            )
        low, high = spec
        if not (low <= len(args) <= high):
            maximum = high if high < 1000 else "unlimited"
            raise ArangoError(
                400,
                QUERY_FUNCTION_ARGUMENT_NUMBER_MISMATCH,
                f"AQL: invalid number of arguments for function '{name}()', expected number of "
                f"arguments: minimum: {low}, maximum: {maximum} (while parsing)",
            )
        return ast.Call(name, tuple(args))

    def array(self) -> ast.Expr:
        self.expect_punct("[")
        items: list[ast.Expr] = []
        while not self.tok.is_punct("]"):
            items.append(self.expr())
            if not self.tok.is_punct(","):
                break
            self.advance()
        self.expect_punct("]")
        return ast.ArrayLit(tuple(items))

    def object(self) -> ast.Expr:
        self.expect_punct("{")
        items: list[tuple[ast.Expr, ast.Expr]] = []
        while not self.tok.is_punct("}"):
            tok = self.tok
            key: ast.Expr
            if tok.is_punct("["):
                self.advance()
                key = self.expr()
                self.expect_punct("]")
            elif tok.kind == "bind":
                self.advance()
                self.binds.add(tok.value)
                key = ast.BindValue(tok.value)
            elif tok.kind in ("ident", "string", "kw"):
                self.advance()
                spelled = tok.value if tok.kind != "kw" else self._kw_spelling(tok)
                key = ast.Literal(spelled)
                shorthand = tok.kind == "ident" or (tok.kind == "kw" and self.scope.has(spelled))
                if shorthand and (self.tok.is_punct(",") or self.tok.is_punct("}")):
                    # shorthand {a} means {a: a}
                    value: ast.Expr = (
                        ast.Var(spelled) if self.scope.has(spelled) else ast.CollectionRef(spelled)
                    )
                    items.append((key, value))
                    if self.tok.is_punct(","):
                        self.advance()
                    continue
            elif tok.kind == "number":
                self.advance()
                key = ast.Literal(tok.value)
            else:
                raise self.error()
            self.expect_punct(":")
            items.append((key, self.expr()))
            if not self.tok.is_punct(","):
                break
            self.advance()
        self.expect_punct("}")
        return ast.ObjectLit(tuple(items))
