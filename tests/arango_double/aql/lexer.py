"""AQL tokens: one pass over the query text, each token with its line and column.

Keywords are case-insensitive (`for`, `FOR`); identifiers may be quoted with backticks or
forward ticks; strings take single or double quotes with backslash escapes; comments are
`// …` and `/* … */`; bind parameters are `@name` (a value) and `@@name` (a collection).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import QUERY_PARSE, ArangoError

KEYWORDS = frozenset(
    {
        "FOR", "IN", "FILTER", "RETURN", "LET", "SORT", "LIMIT", "ASC", "DESC", "COLLECT", "INTO",
        "WITH", "COUNT", "AGGREGATE", "INSERT", "UPDATE", "REPLACE", "REMOVE", "UPSERT", "OPTIONS",
        "DISTINCT", "AND", "OR", "NOT", "LIKE", "TRUE", "FALSE", "NULL", "KEEP", "SEARCH", "PRUNE",
        "OUTBOUND", "INBOUND", "ANY", "ALL", "NONE", "GRAPH", "SHORTEST_PATH", "WINDOW", "AT", "LEAST",
    }
)  # fmt: skip
# Words that are keywords only where the grammar expects them, and identifiers elsewhere.
SOFT_KEYWORDS = frozenset(
    {"COUNT", "AGGREGATE", "KEEP", "OPTIONS", "WINDOW", "AT", "LEAST", "PRUNE", "SEARCH"}
)

PUNCT = (
    "..", "==", "!=", "<=", ">=", "&&", "||", "=~", "!~", "::",
    "(", ")", "[", "]", "{", "}", ",", ".", ":", "?", "=", "<", ">", "+", "-", "*", "/", "%", "!",
)  # fmt: skip

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"', "/": "/"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "kw", "ident", "string", "number", "bind", "bindcoll", "punct", "eof"
    value: str
    line: int
    col: int
    num: float | int | None = None

    def is_kw(self, *words: str) -> bool:
        return self.kind == "kw" and self.value in words

    def is_punct(self, *symbols: str) -> bool:
        return self.kind == "punct" and self.value in symbols


def syntax_error(query: str, message: str, line: int, col: int, offset: int | None = None) -> ArangoError:
    near = ""
    if offset is not None:
        near = f" near '{query[offset : offset + 40]}'"
    return ArangoError(
        400, QUERY_PARSE, f"AQL: syntax error, {message}{near} at position {line}:{col} (while parsing)"
    )


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, line_start, n = 0, 1, 0, len(query)

    def pos() -> tuple[int, int]:
        return line, i - line_start + 1

    while i < n:
        c = query[i]
        if c == "\n":
            i += 1
            line, line_start = line + 1, i
            continue
        if c.isspace():
            i += 1
            continue
        if query.startswith("//", i):
            while i < n and query[i] != "\n":
                i += 1
            continue
        if query.startswith("/*", i):
            end = query.find("*/", i + 2)
            if end < 0:
                raise syntax_error(query, "unterminated comment", *pos(), i)
            line += query.count("\n", i, end)
            if "\n" in query[i:end]:
                line_start = query.rfind("\n", i, end) + 1
            i = end + 2
            continue
        ln, col = pos()
        if c in "'\"":
            i, text = _string(query, i, ln, col)
            tokens.append(Token("string", text, ln, col))
            continue
        if c in "`\u00b4":  # backtick or forward tick
            end = query.find(c, i + 1)
            if end < 0:
                raise syntax_error(query, "unterminated quoted name", ln, col, i)
            tokens.append(Token("ident", query[i + 1 : end], ln, col))
            i = end + 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and query[i + 1].isdigit() and not _after_value(tokens)):
            i, tok = _number(query, i, ln, col)
            tokens.append(tok)
            continue
        if c == "@":
            kind = "bind"
            j = i + 1
            if query.startswith("@", j):
                kind, j = "bindcoll", j + 1
            k = j
            while k < n and (query[k].isalnum() or query[k] == "_"):
                k += 1
            if k == j:
                raise syntax_error(query, "bind parameter name expected", ln, col, i)
            tokens.append(Token(kind, query[j:k], ln, col))
            i = k
            continue
        if c.isalpha() or c in "_$":
            k = i
            while k < n and (query[k].isalnum() or query[k] in "_$"):
                k += 1
            word = query[i:k]
            upper = word.upper()
            if upper in KEYWORDS:
                tokens.append(Token("kw", upper, ln, col))
            else:
                tokens.append(Token("ident", word, ln, col))
            i = k
            continue
        for p in PUNCT:
            if query.startswith(p, i):
                tokens.append(Token("punct", p, ln, col))
                i += len(p)
                break
        else:
            raise syntax_error(query, f"unexpected character '{c}'", ln, col, i)
    tokens.append(Token("eof", "", *pos()))
    return tokens


def _after_value(tokens: list[Token]) -> bool:
    """`a.5` never happens in AQL, but `x[0].5`… no: a `.` after a value is member access."""
    if not tokens:
        return False
    last = tokens[-1]
    return last.kind in ("ident", "string", "number", "bind") or last.is_punct(")", "]", "}")


def _string(query: str, i: int, ln: int, col: int) -> tuple[int, str]:
    quote, j, out, n = query[i], i + 1, [], len(query)
    while j < n:
        ch = query[j]
        if ch == quote:
            return j + 1, "".join(out)
        if ch == "\\" and j + 1 < n:
            esc = query[j + 1]
            if esc == "u" and j + 5 < n:
                try:
                    out.append(chr(int(query[j + 2 : j + 6], 16)))
                except ValueError:
                    raise syntax_error(query, "invalid unicode escape", ln, col, i) from None
                j += 6
                continue
            out.append(_ESCAPES.get(esc, esc))
            j += 2
            continue
        out.append(ch)
        j += 1
    raise syntax_error(query, "unterminated string", ln, col, i)


def _number(query: str, i: int, ln: int, col: int) -> tuple[int, Token]:
    n = len(query)
    k = i
    if query.startswith(("0x", "0X"), i):
        k = i + 2
        while k < n and query[k] in "0123456789abcdefABCDEF":
            k += 1
        return k, Token("number", query[i:k], ln, col, int(query[i + 2 : k], 16))
    if query.startswith(("0b", "0B"), i):
        k = i + 2
        while k < n and query[k] in "01":
            k += 1
        return k, Token("number", query[i:k], ln, col, int(query[i + 2 : k], 2))
    while k < n and query[k].isdigit():
        k += 1
    is_float = False
    # `1..5` is a range, not the number `1.`
    if k < n and query[k] == "." and not query.startswith("..", k):
        is_float = True
        k += 1
        while k < n and query[k].isdigit():
            k += 1
    if k < n and query[k] in "eE":
        m = k + 1
        if m < n and query[m] in "+-":
            m += 1
        if m < n and query[m].isdigit():
            is_float = True
            k = m
            while k < n and query[k].isdigit():
                k += 1
    text = query[i:k]
    if k < n and (query[k].isalpha() or query[k] == "_"):
        raise syntax_error(query, "unexpected identifier after number", ln, col, i)
    return k, Token("number", text, ln, col, float(text) if is_float else int(text))
