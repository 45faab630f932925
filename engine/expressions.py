"""Sandboxed `{{ … }}` expressions: the only code a runbook may contain.

Runbook values may embed Jinja2 expressions. Everything a template may do is decided here, at
validation time, from its syntax tree: an allowlist of node types, filters and tests, and no name,
attribute or constant key beginning with `_`. Jinja's sandbox stays underneath as a second wall,
never the only one (five sandbox escapes since 2016, SECURITY.md).

Three properties the rest of the engine relies on:

- Expressions only. `{% … %}` statements and `{# … #}` comments are refused. Their Jinja
  delimiters are replaced by ones nobody types, so a lone `{%` or `{#` (bash's `${#var}`) is
  plain text, while anything shaped like a statement or a comment is reported as an error.
- Bounded work. Attribute and item access reads data only (never Python attributes);
  arithmetic refuses results that would be huge *before* computing them; filters that build
  values check their size; and each render call has a budget for everything it builds.
- Single pass. Values from the scope (params, step outputs, secrets) are data: the result of a
  render is never parsed again, so a parameter holding `{{ 7*7 }}` stays that text.

Rendering raises `RenderError` and nothing else; compiling raises `ExpressionError`.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import enum
import functools
import json
import math
import re
import shlex
import urllib.parse
import warnings
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateError, TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from jinja2.filters import (
    do_default,
    do_dictsort,
    do_float,
    do_int,
    do_last,
    do_max,
    do_min,
    do_round,
    do_sort,
    sync_do_first,
    sync_do_map,
    sync_do_reject,
    sync_do_rejectattr,
    sync_do_select,
    sync_do_selectattr,
    sync_do_unique,
)
from jinja2.lexer import TokenStream
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS as _JINJA_TESTS
from jinja2.utils import missing, pass_context, pass_environment
from jinja2.visitor import NodeTransformer

__all__ = [
    "ALLOWED_FILTERS",
    "ALLOWED_TESTS",
    "MAX_ARITHMETIC_SIZE",
    "MAX_INT_BITS",
    "MAX_LIST_ITEMS",
    "MAX_TEMPLATE_LENGTH",
    "MAX_VALUE_SIZE",
    "RENDER_BUDGET",
    "SCOPE_NAMES",
    "CompiledTemplate",
    "ExpressionError",
    "Reference",
    "RenderError",
    "ShellRaw",
    "compile_template",
    "is_template",
    "render_template",
    "render_value",
]

from .template_text import SCOPE_NAMES as SCOPE_NAMES

MAX_TEMPLATE_LENGTH = 256 * 1024
"""Longest template text accepted (characters)."""
MAX_ARITHMETIC_SIZE = 1_000_000
"""Largest string/list an arithmetic operator (`*`, `+`, `%`) may build (characters or items)."""
MAX_INT_BITS = 4096
"""Largest integer arithmetic may build."""
MAX_VALUE_SIZE = 8 * 1024 * 1024
"""Largest value a filter or `~` may build, and largest rendered string."""
RENDER_BUDGET = 32 * 1024 * 1024
"""Everything one `render_template` / `render_value` call may build or walk, in size units."""
MAX_LIST_ITEMS = 100_000
"""Most items `list` and `split` may build from one value (a list costs far more than its text)."""
MAX_DEPTH = 64
"""Deepest expression tree (and data nesting a render walks)."""
MAX_MESSAGE_VALUE = 80
"""Longest excerpt of a value an error message quotes (characters)."""
_MAX_FORMAT_WIDTH = 1000
_MAX_ROUND_DIGITS = 64


# -- public types ----------------------------------------------------------------------------------


class ExpressionError(Exception):
    """A template refused at validation: bad syntax or a construct outside the allowlist."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset  # index into the template text (0 when unknown)

    def __str__(self) -> str:
        return self.message


class RenderError(Exception):
    """A template that failed at run time: undefined value, cap exceeded, type error…"""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Reference:
    """A name the template reads, with the static part of its access path."""

    root: str
    path: tuple[str | int, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    source: str
    whole: bool
    references: tuple[Reference, ...]
    filters: tuple[tuple[str, int], ...]


class ShellRaw(str):
    """Text already fit for a shell command (from `shell_quote` / `shell_unquoted`): not re-quoted."""

    __slots__ = ()


from .template_text import is_template as is_template  # noqa: E402 - re-exported, part of this API

# -- sizes and the per-render budget --------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any, limit: int) -> int:
    """Rough size of a value once rendered (characters, plus one per item); stops past `limit`.

    Iterative and bounded by `limit`, so measuring a huge value costs no more than the limit."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 1
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, float):
            total += 8
        elif isinstance(item, Mapping):
            total += 1 + len(item)
            for key, element in item.items():
                stack.append(key)
                stack.append(element)
        elif isinstance(item, list | tuple):
            total += 1 + len(item)
            stack.extend(item)
        else:
            total += 1
    return total


class _Budget:
    """What one render call may still build; shared by every filter through a context var."""

    __slots__ = ("remaining",)

    def __init__(self, units: int) -> None:
        self.remaining = units

    def charge(self, units: int) -> None:
        self.remaining -= units
        if self.remaining < 0:
            raise RenderError(f"rendered values too large (over {RENDER_BUDGET} size units in one render)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("wpk_render_budget", default=None)


def _charge(units: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(units)


def _charge_value(value: Any) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(_size(value, max(budget.remaining, 0) + 1))


def _check_built(length: int, what: str, limit: int = MAX_VALUE_SIZE) -> None:
    if length > limit:
        raise RenderError(f"{what} too large: {length} characters or items (limit {limit})")
    _charge(length)


# -- converting results to data and text ----------------------------------------------------------


def _fail_undefined(value: Undefined) -> NoReturn:
    value._fail_with_undefined_error()
    raise AssertionError("unreachable")  # pragma: no cover


def _to_data(value: Any, depth: int = 0) -> Any:
    """A plain JSON-like copy: generators and tuples become lists, undefined values raise."""
    if depth > MAX_DEPTH:
        raise RenderError(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RenderError(f"not a finite number: {value}")
        return value
    if isinstance(value, Mapping):
        return {_key(k): _to_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_to_data(v, depth + 1) for v in value]
    raise RenderError(f"a {type(value).__name__} value cannot be used as data")


def _key(key: Any) -> Any:
    if isinstance(key, Undefined):
        _fail_undefined(key)
    if isinstance(key, str):
        return str(key)
    if key is None or isinstance(key, bool | int | float):
        return key
    raise RenderError(f"a {type(key).__name__} cannot be a mapping key")


def _text(value: Any) -> str:
    """How a value reads inside text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return str(value)
    try:
        return json.dumps(_to_data(value), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise RenderError(f"cannot render value as text: {exc}") from None


def _text_finalize(value: Any) -> str:
    return _text(value)


def _shell_finalize(value: Any) -> str:
    if isinstance(value, ShellRaw):
        return str(value)
    return shlex.quote(_text(value))


# -- capped operators ------------------------------------------------------------------------------

_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.?)", re.DOTALL)


def _too_large(description: str) -> RenderError:
    return RenderError(f"arithmetic result too large: {description}")


def _check_repeat(seq: Any, times: Any) -> None:
    if not _is_int(times) and not isinstance(times, bool):
        return
    if times <= 0:
        return
    if times > MAX_ARITHMETIC_SIZE:
        raise _too_large(f"repeating a {type(seq).__name__} {times} times (limit {MAX_ARITHMETIC_SIZE})")
    # A string counts its characters; a list its items plus their sizes (not its own overhead).
    size = len(seq) if isinstance(seq, str | bytes) else _size(seq, MAX_ARITHMETIC_SIZE) - 1
    if size * times > MAX_ARITHMETIC_SIZE:
        raise _too_large(f"{type(seq).__name__} of size {size * times} (limit {MAX_ARITHMETIC_SIZE})")


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _too_large(f"an integer of about {bits} bits (limit {MAX_INT_BITS})")


def _check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be huge, before computing it."""
    sequences = (str, bytes, list, tuple)
    if op == "*":
        if isinstance(left, sequences):
            _check_repeat(left, right)
        elif isinstance(right, sequences):
            _check_repeat(right, left)
        elif _is_int(left) and _is_int(right):
            _check_int_bits(left.bit_length() + right.bit_length())
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right > MAX_INT_BITS:
                _check_int_bits(right)
            _check_int_bits(math.ceil(right * math.log2(abs(left))))
    elif op in ("+", "-"):
        if _is_int(left) and _is_int(right):
            _check_int_bits(max(left.bit_length(), right.bit_length()) + 1)
        elif op == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            size = _size(left, MAX_ARITHMETIC_SIZE) + _size(right, MAX_ARITHMETIC_SIZE)
            if size > MAX_ARITHMETIC_SIZE:
                raise _too_large(f"joining two values of total size {size} (limit {MAX_ARITHMETIC_SIZE})")
    elif op == "%" and isinstance(left, str | bytes):
        _check_format(left, right)


def _check_format(fmt: str | bytes, args: Any) -> None:
    """`'%5d' % n` formatting: no `*` widths, small widths, and a bounded result."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    specs = 0
    widths = 0
    for match in _FORMAT_SPEC.finditer(text):
        specs += 1
        for number in match.group(1, 2):
            if number == "*":
                raise _too_large("'*' widths in % formatting are not allowed")
            if number:
                if len(number) > 4 or int(number) > _MAX_FORMAT_WIDTH:
                    raise _too_large(f"a % format width of {number} (limit {_MAX_FORMAT_WIDTH})")
                widths += int(number)
    estimate = len(text) + widths + specs * _size(args, MAX_ARITHMETIC_SIZE)
    if estimate > MAX_ARITHMETIC_SIZE:
        raise _too_large(f"% formatting of about {estimate} characters (limit {MAX_ARITHMETIC_SIZE})")


def _check_result(value: Any) -> Any:
    if _is_int(value):
        _check_int_bits(value.bit_length())
    elif isinstance(value, str | bytes | list | tuple):
        size = _size(value, MAX_ARITHMETIC_SIZE)
        if size > MAX_ARITHMETIC_SIZE + 1:
            raise _too_large(f"a value of size {size} (limit {MAX_ARITHMETIC_SIZE})")
        _charge(size)
    return value


# -- undefined values that remember where they came from -------------------------------------------


class _UndefinedAccess(UndefinedError):
    def __init__(self, message: str | None = None, *, origin: Undefined) -> None:
        super().__init__(message)
        self.origin = origin


class _Missing(StrictUndefined):
    """StrictUndefined whose error carries the missing object and key, for a friendly message."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        super().__init__(hint, obj, name, exc)
        factory: Any = functools.partial(_UndefinedAccess, origin=self)
        self._undefined_exception = factory


# -- data-only attribute and item access ----------------------------------------------------------


def _lookup(obj: Any, key: Any) -> tuple[bool, Any]:
    """`obj.key` / `obj[key]` on data: mapping keys and sequence indexes, never Python attributes.

    So `params.items` is the param named `items`, and nothing reaches an object's internals."""
    if isinstance(obj, Mapping):
        try:
            return True, obj[key]
        except (KeyError, TypeError):
            return False, None
    if isinstance(obj, list | tuple | str) and (_is_int(key) or isinstance(key, slice)):
        try:
            return True, obj[key]
        except IndexError:
            return False, None
    return False, None


# -- the environment -------------------------------------------------------------------------------

_NEWLINE = re.compile(r"\r\n|\r|\n")
_ALLOWED_TOKENS = frozenset(
    {"data", "variable_begin", "variable_end", "whitespace", "name", "operator", "string", "integer", "float"}
)
_TOKEN_WORDS = {
    "block_begin": "statements ({% … %})",
    "block_end": "statements ({% … %})",
    "raw_begin": "raw blocks",
    "raw_end": "raw blocks",
    "comment_begin": "comments ({# … #})",
    "comment": "comments ({# … #})",
    "comment_end": "comments ({# … #})",
    "linestatement_begin": "line statements",
    "linestatement_end": "line statements",
    "linecomment_begin": "line comments",
    "linecomment": "line comments",
    "linecomment_end": "line comments",
}


def _locate_tokens(env: ImmutableSandboxedEnvironment, text: str) -> list[tuple[int, str, str]]:
    """Jinja's raw tokens, with the token's offset in `text` (+1) where Jinja keeps a line number.

    Every node the parser builds takes its first token's "line number", so the syntax tree ends up
    carrying character offsets: exactly what a validator needs to point at a column. The pass also
    refuses statements and comments, and anything shaped like one in the plain text."""
    crlf = [m.start() for m in re.finditer("\r\n", text)]
    shifts = [pos - i for i, pos in enumerate(crlf)]  # where each \r\n sits in the normalised text

    def original(pos: int) -> int:
        return pos + bisect_left(shifts, pos + 1)

    norm = _NEWLINE.sub("\n", text)
    located: list[tuple[int, str, str]] = []
    data: list[tuple[int, str]] = []
    cursor = 0
    try:
        for _lineno, kind, raw in env.lexer.tokeniter(text, None):
            pos = norm.find(raw, cursor) if raw else cursor
            pos = cursor if pos < 0 else pos
            cursor = pos + len(raw)
            offset = original(pos)
            if kind not in _ALLOWED_TOKENS:
                what = _TOKEN_WORDS.get(kind, f"{kind!r} tokens")
                raise ExpressionError(
                    f"{what} are not allowed: templates are {{{{ expressions }}}} only", offset
                )
            if kind == "data":
                data.append((pos, raw))  # normalised: `original` maps it back once found
            located.append((offset + 1, kind, raw))
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc), original(cursor)) from None
    _refuse_statement_text(data, original)
    return located


def _refuse_statement_text(data: list[tuple[int, str]], original: Callable[[int], int]) -> None:
    """`{% … %}` or `{# … #}` in the text: a statement or comment the author expects to work.

    `data` holds positions in the text with `\\r\\n` folded to `\\n`; `original` maps one back to
    the author's text, so the offset counts each `\\r\\n` as the two characters it is."""
    for opening, closing, what in (("{%", "%}", "statements ({% … %})"), ("{#", "#}", "comments ({# … #})")):
        first: int | None = None
        for offset, raw in data:
            start = 0
            if first is None:
                found = raw.find(opening)
                if found < 0:
                    continue
                first = original(offset + found)
                start = found + 2
            if raw.find(closing, start) >= 0:
                raise ExpressionError(
                    f"{what} are not allowed: templates are {{{{ expressions }}}} only", first
                )


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"syntax error: {exc.message}" if exc.message else "syntax error"


class _NoFolding(CodeGenerator):
    """Jinja's code generator without compile-time evaluation of `{{ … }}` outputs.

    Jinja folds an output whose value it can compute from literals (`'a' | replace('a', 'aaaa')`)
    while *compiling*: outside the render budget, at validation, on input nobody has run yet. A
    422-byte runbook took 26 s and 4 GB that way (issue 9). Every expression is evaluated at
    render time instead, under the budget; only the literal text between expressions is constant.
    """

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with data-only access, capped operators and located tokens."""

    code_generator_class = _NoFolding
    intercepted_binops = frozenset({"*", "**", "+", "%", "-", "/", "//"})
    intercepted_unops = frozenset({"-", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _check_result(self.binop_table[operator](left, right))

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return self.unop_table[operator](arg)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj  # chained access on a missing value stays missing: `| default` still works
        found, value = _lookup(obj, argument)
        return value if found else self.undefined(obj=obj, name=argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)

    def call(self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise RenderError("calls are not allowed in expressions")

    def _tokenize(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> TokenStream:
        tokens = _locate_tokens(self, source)
        return TokenStream(self.lexer.wrap(iter(tokens), name, filename), name, filename)


def _environment(finalize: Callable[[Any], str]) -> _Sandbox:
    env = _Sandbox(
        # Statements and comments get delimiters nobody types: `{%` and `{#` are plain text to the
        # lexer, and `_refuse_statement_text` reports the ones shaped like a statement or comment.
        block_start_string="\x00{%",
        block_end_string="%}\x00",
        comment_start_string="\x00{#",
        comment_end_string="#}\x00",
        line_statement_prefix=None,
        line_comment_prefix=None,
        undefined=_Missing,
        finalize=finalize,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
        optimized=False,  # the optimizer folds constants at compile time, outside any budget
    )
    env.globals.clear()
    env.filters = dict(_FILTERS)
    env.filters[_CONCAT] = _f_concat
    env.tests = dict(_TESTS)
    return env


# -- filters ---------------------------------------------------------------------------------------


def _require_str(value: Any, what: str) -> str:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if not isinstance(value, str):
        raise RenderError(f"{what} must be a string, not {type(value).__name__}")
    return str(value)


def _f_concat(values: list[Any]) -> str:
    texts = [_text(v) for v in values]
    _check_built(sum(len(t) for t in texts), "`~` result")
    return "".join(texts)


_TRUE_WORDS = frozenset({"true", "yes", "on", "1", "y"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", "n", ""})


def _f_bool(value: Any) -> bool:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise RenderError(f"cannot read {len(value)}-character text as a boolean")
    return bool(_to_data(value))


def _f_int(value: Any, default: int = 0, base: int = 10) -> int:
    if isinstance(value, str) and len(value) > 5000:
        raise RenderError("text too long to convert to an integer")
    result = do_int(value, default, base)
    _check_int_bits(result.bit_length())
    return result


def _f_round(value: Any, precision: int = 0, method: str = "common") -> float:
    if not _is_int(precision) or abs(precision) > _MAX_ROUND_DIGITS:
        raise RenderError(
            f"round precision must be an integer between -{_MAX_ROUND_DIGITS} and {_MAX_ROUND_DIGITS}"
        )
    return do_round(value, precision, method)  # type: ignore[arg-type]


def _f_length(value: Any) -> int:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    return len(value)


def _texts_of(value: Any, attribute: str | int | None) -> list[str]:
    items = list(value)
    if attribute is not None:
        items = [_lookup_path(item, attribute) for item in items]
    return [_text(item) for item in items]


def _lookup_path(item: Any, attribute: str | int) -> Any:
    parts: Iterable[Any] = str(attribute).split(".") if isinstance(attribute, str) else [attribute]
    for part in parts:
        key: Any = int(part) if isinstance(part, str) and part.isdigit() else part
        found, item = _lookup(item, key)
        if not found:
            raise RenderError(f"an item has no key {part!r}")
    return item


def _f_join(value: Any, d: str = "", attribute: str | int | None = None) -> str:
    sep = _require_str(d, "join separator")
    texts = _texts_of(value, attribute)
    _check_built(sum(len(t) for t in texts) + len(sep) * max(len(texts) - 1, 0), "join result")
    return sep.join(texts)


def _f_replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text = _text(value)
    old_s = _require_str(old, "replace: the old text")
    new_s = _require_str(new, "replace: the new text")
    hits = text.count(old_s)
    if count is not None:
        if not _is_int(count):
            raise RenderError("replace: count must be an integer")
        hits = min(hits, count) if count >= 0 else hits
    _check_built(len(text) + hits * (len(new_s) - len(old_s)), "replace result")
    return text.replace(old_s, new_s, -1 if count is None else count)


def _f_split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    text = _require_str(value, "split: the value")
    if sep is not None:
        sep = _require_str(sep, "split: the separator")
    if not _is_int(maxsplit):
        raise RenderError("split: maxsplit must be an integer")
    pieces = text.count(sep) + 1 if sep else len(text.split(None, MAX_LIST_ITEMS + 1))
    if maxsplit >= 0:
        pieces = min(pieces, maxsplit + 1)
    _check_built(pieces, "split result", MAX_LIST_ITEMS)
    parts = text.split(sep, maxsplit)
    _charge(len(parts))
    return parts


def _f_reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    if isinstance(value, Undefined):
        _fail_undefined(value)
    return list(value)[::-1]


def _f_list(value: Any) -> list[Any]:
    """`list`, refusing before it builds a huge list (`('x' * 10**6) | list`)."""
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if isinstance(value, str | list | tuple | Mapping):
        _check_built(len(value), "list result", MAX_LIST_ITEMS)
        return list(value)
    raise RenderError(f"list needs a string, list or mapping, not a {type(value).__name__}")


def _f_float(value: Any, default: float = 0.0) -> float:
    """`float`, refusing `inf` and `nan`: they are not JSON and compare surprisingly."""
    if isinstance(value, str) and len(value) > 5000:
        raise RenderError("text too long to convert to a number")
    result = do_float(value, default)
    if not math.isfinite(result):
        raise RenderError("float: not a finite number")
    return result


def _f_urlencode(value: Any) -> str:
    """Percent-encode for a URL: a string becomes one path segment or query value (`/`, `?`, `#`
    encoded, and a bare `.` or `..`, so `../../admin?x=1#` cannot re-route a request); a mapping
    becomes a query string."""
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if isinstance(value, Mapping):
        text = "&".join(f"{_quote(_text(k))}={_quote(_text(v))}" for k, v in value.items())
    else:
        text = _quote(_text(value))
    _check_built(len(text), "urlencode result")
    return text


def _quote(text: str) -> str:
    if text in (".", ".."):  # a dot-segment would still climb a level: encode it
        return text.replace(".", "%2E")
    return urllib.parse.quote(text, safe="")


def _f_string(value: Any) -> str:
    text = _text(value)
    _check_built(len(text), "string result")
    return text


def _f_sum(value: Any, attribute: str | int | None = None, start: int | float = 0) -> int | float:
    items = list(value)
    if attribute is not None:
        items = [_lookup_path(item, attribute) for item in items]
    total: int | float = start
    for item in items:
        if isinstance(item, Undefined):
            _fail_undefined(item)
        if not isinstance(item, int | float):
            raise RenderError(f"sum needs numbers, got a {type(item).__name__}")
        total = total + item
    if _is_int(total):
        _check_int_bits(int(total).bit_length())
    return total


def _f_tojson(value: Any, indent: int | None = None) -> str:
    if indent is not None and (not _is_int(indent) or not 0 <= indent <= 8):
        raise RenderError("tojson: indent must be an integer from 0 to 8")
    data = _to_data(value)
    try:
        if indent is None:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False)
            _check_built(len(text), "tojson result")
            return text
        chunks: list[str] = []
        length = 0
        for chunk in json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=indent).iterencode(data):
            length += len(chunk)
            if length > MAX_VALUE_SIZE:
                _check_built(length, "tojson result")
            chunks.append(chunk)
        _check_built(length, "tojson result")
        return "".join(chunks)
    except ValueError as exc:
        raise RenderError(f"tojson: {exc}") from None


def _refuse_constant(name: str) -> NoReturn:
    raise RenderError(f"fromjson: {name} is not valid JSON")


def _f_fromjson(value: Any) -> Any:
    text = _require_str(value, "fromjson: the value")
    if len(text) > MAX_VALUE_SIZE:
        raise RenderError(f"fromjson: text too long ({len(text)} characters, limit {MAX_VALUE_SIZE})")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise RenderError(f"fromjson: invalid JSON at character {exc.pos}: {exc.msg}") from None
    except RecursionError:
        raise RenderError("fromjson: JSON nested too deeply") from None
    _charge_value(data)
    return data


def _f_b64encode(value: Any) -> str:
    raw = _text(value).encode("utf-8")
    _check_built(len(raw) * 4 // 3 + 4, "b64encode result")
    return base64.b64encode(raw).decode("ascii")


def _f_b64decode(value: Any) -> str:
    text = _require_str(value, "b64decode: the value")
    if len(text) > MAX_VALUE_SIZE:
        raise RenderError("b64decode: text too long")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeEncodeError):
        raise RenderError("b64decode: not valid base64") from None
    except UnicodeDecodeError:
        raise RenderError("b64decode: the decoded bytes are not UTF-8 text") from None


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if not isinstance(value, Mapping):
        raise RenderError(f"{what} needs a mapping, not a {type(value).__name__}")
    return value


def _f_keys(value: Any) -> list[Any]:
    return list(_mapping(value, "keys"))


def _f_values(value: Any) -> list[Any]:
    return list(_mapping(value, "values").values())


def _f_items(value: Any) -> list[tuple[Any, Any]]:
    return list(_mapping(value, "items").items())


def _f_shell_quote(value: Any) -> ShellRaw:
    return ShellRaw(shlex.quote(_text(value)))


def _f_shell_unquoted(value: Any) -> ShellRaw:
    return ShellRaw(_text(value))


def _string_filter(method: Callable[[str], str]) -> Callable[[Any], str]:
    def apply(value: Any) -> str:
        return method(_text(value))

    return apply


def _f_trim(value: Any, chars: str | None = None) -> str:
    if chars is not None:
        chars = _require_str(chars, "trim: chars")
    return _text(value).strip(chars)


def _listing(jinja_filter: Callable[..., Iterable[Any]], *, charge_results: bool) -> Callable[..., list[Any]]:
    """Jinja's lazy select/map/… as a list (so `| length` works), charging what they build."""

    @pass_context
    def apply(context: Context, value: Any, *args: Any, **kwargs: Any) -> list[Any]:
        results = []
        for item in jinja_filter(context, value, *args, **kwargs):
            _charge(1)
            if charge_results:
                _charge_value(item)
            results.append(item)
        return results

    return apply


@pass_environment
def _f_unique(environment: Any, value: Any, case_sensitive: bool = False, attribute: Any = None) -> list[Any]:
    return list(sync_do_unique(environment, value, case_sensitive, attribute))


_FILTERS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "b64decode": _f_b64decode,
    "b64encode": _f_b64encode,
    "bool": _f_bool,
    "capitalize": _string_filter(str.capitalize),
    "count": _f_length,
    "d": do_default,
    "default": do_default,
    "dictsort": do_dictsort,
    "first": sync_do_first,
    "float": _f_float,
    "from_json": _f_fromjson,
    "fromjson": _f_fromjson,
    "int": _f_int,
    "items": _f_items,
    "join": _f_join,
    "keys": _f_keys,
    "last": do_last,
    "length": _f_length,
    "list": _f_list,
    "lower": _string_filter(str.lower),
    "map": _listing(sync_do_map, charge_results=True),
    "max": do_max,
    "min": do_min,
    "reject": _listing(sync_do_reject, charge_results=False),
    "rejectattr": _listing(sync_do_rejectattr, charge_results=False),
    "replace": _f_replace,
    "reverse": _f_reverse,
    "round": _f_round,
    "select": _listing(sync_do_select, charge_results=False),
    "selectattr": _listing(sync_do_selectattr, charge_results=False),
    "shell_quote": _f_shell_quote,
    "shell_unquoted": _f_shell_unquoted,
    "sort": do_sort,
    "split": _f_split,
    "string": _f_string,
    "sum": _f_sum,
    "title": _string_filter(str.title),
    "to_json": _f_tojson,
    "tojson": _f_tojson,
    "trim": _f_trim,
    "unique": _f_unique,
    "upper": _string_filter(str.upper),
    "urlencode": _f_urlencode,
    "values": _f_values,
}
ALLOWED_FILTERS = frozenset(_FILTERS)
_CONCAT = "wpk:concat"  # `~`, rewritten into a filter no template can name


# -- tests -----------------------------------------------------------------------------------------


def _number(value: Any, test: str) -> int | float:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    if not isinstance(value, int | float):
        raise RenderError(f"the {test!r} test needs a number, not a {type(value).__name__}")
    return value


def _t_even(value: Any) -> bool:
    return _number(value, "even") % 2 == 0


def _t_odd(value: Any) -> bool:
    return _number(value, "odd") % 2 == 1


def _t_divisibleby(value: Any, num: Any) -> bool:
    return _number(value, "divisibleby") % _number(num, "divisibleby") == 0


def _t_in(value: Any, seq: Any) -> bool:
    if isinstance(seq, str | list | tuple):
        _charge(len(seq))  # linear: `select('in', big)` must not be quadratic for free
    return value in seq


_TESTS: dict[str, Callable[..., bool]] = {
    name: cast(Callable[..., bool], _JINJA_TESTS[name])
    for name in (
        "defined",
        "undefined",
        "none",
        "boolean",
        "number",
        "integer",
        "float",
        "string",
        "mapping",
        "sequence",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "true",
        "false",
    )
}
_TESTS.update({"in": _t_in, "even": _t_even, "odd": _t_odd, "divisibleby": _t_divisibleby})
ALLOWED_TESTS = frozenset(_TESTS)


# -- validation of the syntax tree -----------------------------------------------------------------

_RESERVED_NAMES = frozenset(
    {
        "self",
        "range",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "dict",
        "loop",
        "caller",
        "varargs",
        "kwargs",
        "super",
        "environment",
        "context",
    }
)
_BINARY = (
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
    nodes.And,
    nodes.Or,
)
# Filters with an argument naming an attribute path: (its position after the value, its keyword).
_ATTRIBUTE_ARGS = {
    "sort": (2, "attribute"),
    "unique": (1, "attribute"),
    "min": (1, "attribute"),
    "max": (1, "attribute"),
    "sum": (0, "attribute"),
    "join": (1, "attribute"),
}


def _offset(node: nodes.Node) -> int:
    return max(int(node.lineno) - 1, 0)


def _start(node: nodes.Node) -> int:
    return min([_offset(node)] + [_offset(n) for n in node.find_all(nodes.Node)])


class _Checker:
    """Walks one parsed template against the allowlist; collects references and filters."""

    def __init__(self) -> None:
        self.references: list[Reference] = []
        self.filters: list[tuple[str, int]] = []

    def template(self, tree: nodes.Template) -> bool:
        """Check the whole template; True when it is exactly one `{{ expr }}`."""
        expressions = 0
        stray_text = False
        for statement in tree.body:
            if not isinstance(statement, nodes.Output):
                raise ExpressionError("only {{ expressions }} are allowed", _offset(statement))
            for child in statement.nodes:
                if isinstance(child, nodes.TemplateData):
                    stray_text = stray_text or bool(child.data.strip())
                else:
                    expressions += 1
                    self.expr(child, 0)
        self.references.sort(key=lambda r: r.offset)
        self.filters.sort(key=lambda f: f[1])
        return expressions == 1 and not stray_text

    def expr(self, node: nodes.Node, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)", _offset(node)
            )
        deeper = depth + 1
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            self.access(node, depth)
        elif isinstance(node, nodes.Const):
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise ExpressionError("number too large", _offset(node))
            return
        elif isinstance(node, nodes.List | nodes.Tuple):
            if isinstance(node, nodes.Tuple) and node.ctx != "load":
                raise ExpressionError("assignment is not allowed", _offset(node))
            for item in node.items:
                self.expr(item, deeper)
        elif isinstance(node, nodes.Dict):
            for pair in node.items:
                self.expr(pair.key, deeper)
                self.expr(pair.value, deeper)
        elif isinstance(node, nodes.Compare):
            self.expr(node.expr, deeper)
            for operand in node.ops:
                self.expr(operand.expr, deeper)
        elif isinstance(node, _BINARY):
            self.expr(node.left, deeper)
            self.expr(node.right, deeper)
        elif isinstance(node, nodes.Not | nodes.Neg | nodes.Pos):
            self.expr(node.node, deeper)
        elif isinstance(node, nodes.Concat):
            for item in node.nodes:
                self.expr(item, deeper)
        elif isinstance(node, nodes.CondExpr):
            if node.expr2 is None:
                raise ExpressionError("an inline `if` needs an `else`: `a if cond else b`", _offset(node))
            self.expr(node.test, deeper)
            self.expr(node.expr1, deeper)
            self.expr(node.expr2, deeper)
        elif isinstance(node, nodes.Filter):
            self.filter(node, depth)
        elif isinstance(node, nodes.Test):
            self.test(node, depth)
        elif isinstance(node, nodes.Call):
            raise ExpressionError(_call_message(node), _start(node))
        elif isinstance(node, nodes.Slice):
            for part in (node.start, node.stop, node.step):
                if part is not None:
                    self.expr(part, deeper)
        else:
            raise ExpressionError(f"{type(node).__name__} is not allowed in expressions", _offset(node))

    def access(self, node: nodes.Expr, depth: int) -> None:
        """A chain like `steps.check.outputs['x'][i]`: check every key, record the static path."""
        chain: list[nodes.Getattr | nodes.Getitem] = []
        base: nodes.Node = node
        while isinstance(base, nodes.Getattr | nodes.Getitem):
            if base.ctx != "load":
                raise ExpressionError("assignment is not allowed", _offset(base))
            chain.append(base)
            base = base.node
        chain.reverse()
        if depth + len(chain) > MAX_DEPTH:
            raise ExpressionError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)", _offset(node)
            )
        path: list[str | int] = []
        static = True
        for link in chain:
            if isinstance(link, nodes.Getattr):
                _check_key(link.attr, _offset(link))
                key: Any = link.attr
            elif isinstance(link.arg, nodes.Const) and isinstance(link.arg.value, str | int):
                key = link.arg.value
                if isinstance(key, str):
                    _check_key(key, _offset(link.arg))
                elif isinstance(key, bool):
                    static = False
            else:
                static = False
                self.expr(link.arg, depth + len(chain))
                continue
            if static:
                path.append(key)
        if isinstance(base, nodes.Name):
            self.name(base, tuple(path))
        else:
            self.expr(base, depth + len(chain))

    def name(self, node: nodes.Name, path: tuple[str | int, ...]) -> None:
        if node.ctx != "load":
            raise ExpressionError("assignment is not allowed", _offset(node))
        _check_key(node.name, _offset(node))
        if node.name in _RESERVED_NAMES:
            raise ExpressionError(
                f"`{node.name}` is not available in expressions; the names in scope are "
                + ", ".join(sorted(SCOPE_NAMES)),
                _offset(node),
            )
        self.references.append(Reference(node.name, path, _offset(node)))

    def arguments(self, node: nodes.Filter | nodes.Test, depth: int) -> None:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise ExpressionError("`*args` and `**kwargs` are not allowed", _offset(node))
        for arg in node.args:
            self.expr(arg, depth + 1)
        for keyword in node.kwargs:
            self.expr(keyword.value, depth + 1)

    def filter(self, node: nodes.Filter, depth: int) -> None:
        name = node.name
        if name not in ALLOWED_FILTERS:
            hint = " (use the `keys`/`map(attribute=…)` filters instead)" if name == "attr" else ""
            raise ExpressionError(f"filter `{name}` is not allowed{hint}", _offset(node))
        self.filters.append((name, _offset(node)))
        if node.node is not None:
            self.expr(node.node, depth + 1)
        kwargs = {cast(nodes.Keyword, k).key: cast(nodes.Keyword, k).value for k in node.kwargs}
        if name in _ATTRIBUTE_ARGS:
            position, keyword = _ATTRIBUTE_ARGS[name]
            arg = node.args[position] if len(node.args) > position else kwargs.get(keyword)
            if arg is not None:
                _check_attribute(name, arg)
        elif name in ("select", "reject") and node.args:
            _check_test_name(name, node.args[0])
        elif name in ("selectattr", "rejectattr"):
            if not node.args:
                raise ExpressionError(f"`{name}` needs an attribute name", _offset(node))
            _check_attribute(name, node.args[0])
            if len(node.args) > 1:
                _check_test_name(name, node.args[1])
        elif name == "map":
            self.map(node, kwargs, depth)
            return
        self.arguments(node, depth)

    def map(self, node: nodes.Filter, kwargs: Mapping[str, nodes.Expr], depth: int) -> None:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise ExpressionError("`*args` and `**kwargs` are not allowed", _offset(node))
        if not node.args and "attribute" in kwargs:
            _check_attribute("map", kwargs["attribute"])
            unexpected = set(kwargs) - {"attribute", "default"}
            if unexpected:
                raise ExpressionError(
                    f"`map` got an unexpected argument `{sorted(unexpected)[0]}`", _offset(node)
                )
            self.arguments(node, depth)
            return
        if (
            not node.args
            or not isinstance(node.args[0], nodes.Const)
            or not isinstance(node.args[0].value, str)
        ):
            raise ExpressionError("`map` needs a constant filter name or `attribute='…'`", _offset(node))
        # `xs | map('f', a)` applies `item | f(a)`: check it as that filter.
        inner = nodes.Filter(
            nodes.Const(None, lineno=node.lineno),
            node.args[0].value,
            node.args[1:],
            node.kwargs,
            None,
            None,
            lineno=node.args[0].lineno,
        )
        self.filter(inner, depth)

    def test(self, node: nodes.Test, depth: int) -> None:
        if node.name not in ALLOWED_TESTS:
            raise ExpressionError(f"test `{node.name}` is not allowed{_test_hint(node.name)}", _offset(node))
        self.expr(node.node, depth + 1)
        self.arguments(node, depth)


# -- where secrets flow ----------------------------------------------------------------------------

SECRET_PASS_FILTERS = frozenset({"default", "d", "string"})
"""Filters whose result holds a secret's text unchanged: the masker still finds it."""
SECRET_ENCODE_FILTERS = frozenset({"b64encode", "urlencode", "tojson", "to_json", "shell_quote"})
"""Encodings the masker also looks for (engine/secrets.py); at most one per secret."""
SECRET_SUMMARY_FILTERS = frozenset({"length", "count", "bool"})
"""Filters whose result reveals nothing readable of the secret."""


class _SecretFlow:
    """Follows every `secrets.x` through an expression; refuses what would hide it from redaction.

    The masker (engine/secrets.py) knows each secret's text and its usual encodings. A transform
    it cannot follow (`upper`, `reverse`, `list`, a slice, two encodings in a row…) would print
    the secret in a form nobody masks, so such a template is a validation error, not a run-time
    surprise. `taint` returns how many encodings a node applied to a secret, or None when the
    node's value holds no secret.
    """

    def taint(self, node: nodes.Node) -> int | None:
        if isinstance(node, nodes.Name):
            return 0 if node.name == "secrets" else None
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            return self.access(node)
        if isinstance(node, nodes.Const):
            return None
        if isinstance(node, nodes.List | nodes.Tuple):
            return self.most(node.items)
        if isinstance(node, nodes.Dict):
            return self.most([n for pair in node.items for n in (pair.key, pair.value)])
        if isinstance(node, nodes.Concat):
            return self.most(node.nodes)
        if isinstance(node, nodes.Add | nodes.Mul | nodes.And | nodes.Or):
            return self.most([node.left, node.right])
        if isinstance(node, nodes.BinExpr | nodes.UnaryExpr) and not isinstance(node, nodes.Not):
            operands = [node.left, node.right] if isinstance(node, nodes.BinExpr) else [node.node]
            if self.most(operands) is not None:
                self.refuse(node, "arithmetic or `%` formatting")
            return None
        if isinstance(node, nodes.Not):
            self.taint(node.node)
            return None
        if isinstance(node, nodes.Compare):
            self.most([node.expr, *(op.expr for op in node.ops)])
            return None
        if isinstance(node, nodes.CondExpr):
            self.taint(node.test)
            return self.most([node.expr1, *([node.expr2] if node.expr2 is not None else [])])
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Test):
            self.most([node.node, *node.args, *(k.value for k in node.kwargs)])
            return None
        return self.most(list(node.iter_child_nodes()))

    def most(self, children: Iterable[nodes.Node]) -> int | None:
        found = [t for t in (self.taint(c) for c in children) if t is not None]
        return max(found) if found else None

    def access(self, node: nodes.Getattr | nodes.Getitem) -> int | None:
        """`secrets.x` / `secrets[name]` pick a secret; anything past that (an index, a slice,
        a key of a secret) takes it apart."""
        chain: list[nodes.Getattr | nodes.Getitem] = []
        base: nodes.Node = node
        while isinstance(base, nodes.Getattr | nodes.Getitem):
            chain.append(base)
            base = base.node
        chain.reverse()
        for link in chain:
            if isinstance(link, nodes.Getitem):
                self.taint(link.arg)  # a secret used as a key only selects: the key is not shown
        origin = self.taint(base)
        if origin is None:
            return None
        picks = 1 if isinstance(base, nodes.Name) else 0
        if len(chain) > picks:
            self.refuse(chain[picks], "indexing or slicing")
        return origin

    def filter(self, node: nodes.Filter) -> int | None:
        value = self.taint(node.node) if node.node is not None else None
        args = self.most([*node.args, *(k.value for k in node.kwargs)])
        if value is None:
            return args  # a secret passed as an argument (`replace('x', secrets.y)`) is inserted as is
        name = node.name
        if name in SECRET_SUMMARY_FILTERS:
            return args
        if name in SECRET_PASS_FILTERS or (
            name == "join" and isinstance(node.node, nodes.List | nodes.Tuple)
        ):
            return max(value, args or 0)  # `join` only of a list literal: of a string it splits it
        if name in SECRET_ENCODE_FILTERS:
            if value >= 1:
                self.refuse(node, f"a second encoding (`{name}`)")
            return 1
        self.refuse(node, f"the filter `{name}`")

    def refuse(self, node: nodes.Node, what: str) -> NoReturn:
        raise ExpressionError(
            f"{what} would hide a secret from redaction: a secret may only be used as it is, "
            "joined with other text, or encoded once (" + ", ".join(sorted(SECRET_ENCODE_FILTERS)) + ")",
            _offset(node),
        )


def _check_key(key: str, offset: int) -> None:
    if key.startswith("_"):
        raise ExpressionError(f"names and keys beginning with '_' are not allowed (`{key}`)", offset)


def _check_attribute(filter_name: str, arg: nodes.Expr) -> None:
    if isinstance(arg, nodes.Const) and (arg.value is None or _is_int(arg.value)):
        return
    if not isinstance(arg, nodes.Const) or not isinstance(arg.value, str):
        raise ExpressionError(
            f"the attribute argument of `{filter_name}` must be a constant string", _start(arg)
        )
    for part in re.split(r"[.,]", arg.value):
        _check_key(part.strip(), _offset(arg))


def _check_test_name(filter_name: str, arg: nodes.Expr) -> None:
    if not isinstance(arg, nodes.Const) or not isinstance(arg.value, str):
        raise ExpressionError(
            f"the test argument of `{filter_name}` must be a constant test name", _start(arg)
        )
    if arg.value not in ALLOWED_TESTS:
        raise ExpressionError(f"test `{arg.value}` is not allowed{_test_hint(arg.value)}", _offset(arg))


# Jinja's other names for tests wpk has under one name each.
_TEST_ALIASES = {
    "equalto": "eq",
    "==": "eq",
    "!=": "ne",
    "greaterthan": "gt",
    ">": "gt",
    "lessthan": "lt",
    "<": "lt",
    ">=": "ge",
    "<=": "le",
}


def _test_hint(name: str) -> str:
    """`; use `eq`` for Jinja's aliases, else a near spelling, else the list of tests."""
    if name in _TEST_ALIASES:
        return f"; use `{_TEST_ALIASES[name]}` (wpk keeps one name per test)"
    import difflib

    close = difflib.get_close_matches(name, sorted(ALLOWED_TESTS), n=1, cutoff=0.7)
    if close:
        return f"; did you mean `{close[0]}`?"
    return "; the tests are " + ", ".join(sorted(ALLOWED_TESTS))


def _call_message(node: nodes.Call) -> str:
    callee = node.node
    if isinstance(callee, nodes.Getattr):
        return (
            f"method calls are not allowed (`.{callee.attr}()`); use a filter, e.g. `value | {callee.attr}`"
        )
    if isinstance(callee, nodes.Name):
        return f"function calls are not allowed (`{callee.name}()`); use filters and operators"
    return "calls are not allowed in expressions"


# -- compiling --------------------------------------------------------------------------------------

_TEXT_ENV = _environment(_text_finalize)
_SHELL_ENV = _environment(_shell_finalize)
_RESULT_NAME = "wpk_value"


class _Mode(enum.Enum):
    TEXT = "text"
    SHELL = "shell"
    NATIVE = "native"


def _parse(text: str) -> nodes.Template:
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise ExpressionError(f"template too long ({len(text)} characters, limit {MAX_TEMPLATE_LENGTH})")
    try:
        return _TEXT_ENV.parse(text)
    except TemplateSyntaxError as exc:
        offset = min(max((exc.lineno or 1) - 1, 0), len(text))
        raise ExpressionError(_syntax_message(exc), offset) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None
    except (ValueError, OverflowError):  # an integer literal with thousands of digits
        raise ExpressionError("syntax error: number too large") from None


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> CompiledTemplate:
    """Parse and check `text` once; raises ExpressionError. Cached by text."""
    checker = _Checker()
    tree = _parse(text)
    whole = checker.template(tree)
    if any(ref.root == "secrets" for ref in checker.references):
        flow = _SecretFlow()
        for output in tree.body:
            for child in cast(nodes.Output, output).nodes:
                flow.taint(child)
    compiled = CompiledTemplate(
        source=text, whole=whole, references=tuple(checker.references), filters=tuple(checker.filters)
    )
    # Generate the code now, so anything Jinja or Python refuse is a validation error too.
    _program(text, _Mode.NATIVE if whole else _Mode.TEXT)
    return compiled


class _Concat(NodeTransformer):
    """`a ~ b` becomes a filter call, so `~` renders like the rest of wpk and is size-checked."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        items = [self.visit(child) for child in node.nodes]
        return nodes.Filter(nodes.List(items, lineno=1), _CONCAT, [], [], None, None, lineno=1)


@functools.lru_cache(maxsize=8192)
def _program(text: str, mode: _Mode) -> Any:
    """The compiled Jinja template for one mode (text, shell or native)."""
    tree = _parse(text)
    tree.set_lineno(1, override=True)  # offsets, not lines: keep them out of the generated code
    tree = _Concat().visit(tree)
    env = _SHELL_ENV if mode is _Mode.SHELL else _TEXT_ENV
    if mode is _Mode.NATIVE:
        output = tree.body[0]
        assert isinstance(output, nodes.Output)
        expression = next(n for n in output.nodes if not isinstance(n, nodes.TemplateData))
        tree = nodes.Template([nodes.Assign(nodes.Name(_RESULT_NAME, "store"), expression)], lineno=1)
    tree.set_environment(env)
    try:
        with warnings.catch_warnings():
            # Python warns about e.g. `1[1:]` in the generated code; at run time it is a RenderError.
            warnings.simplefilter("ignore", SyntaxWarning)
            return env.from_string(tree)
    except TemplateError as exc:
        raise ExpressionError(f"invalid expression: {exc}") from None
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression too complex") from None


# -- rendering --------------------------------------------------------------------------------------


def render_template(t: CompiledTemplate | str, scope: Mapping[str, Any], *, shell: bool = False) -> Any:
    """Render one template: the native value for a whole `{{ expr }}` (text mode), else a string."""
    budget = _Budget(RENDER_BUDGET)
    token = _BUDGET.set(budget)
    try:
        return _render(t, scope, shell)
    finally:
        _BUDGET.reset(token)


def render_value(value: Any, scope: Mapping[str, Any], *, shell: bool = False) -> Any:
    """Render every template string in a data tree (keys untouched); one budget for the tree."""
    budget = _Budget(RENDER_BUDGET)
    token = _BUDGET.set(budget)
    try:
        return _walk(value, scope, shell, 0)
    finally:
        _BUDGET.reset(token)


def _walk(value: Any, scope: Mapping[str, Any], shell: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise RenderError(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return _render(value, scope, shell) if is_template(value) else value
    if isinstance(value, Mapping):
        return {k: _walk(v, scope, shell, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, scope, shell, depth + 1) for v in value]
    return value


def _render(t: CompiledTemplate | str, scope: Mapping[str, Any], shell: bool) -> Any:
    try:
        return _render_unscrubbed(t, scope, shell)
    except RenderError as exc:
        raise RenderError(_scrub(exc.message, scope)) from None


def _scrub(message: str, scope: Mapping[str, Any]) -> str:
    """An error names a secret (`<secrets.db_password>`), never shows its value, in any quoting.

    Messages quote values (a missing key, a bad number); when that value is, or holds, a secret
    in scope, its text is replaced by the secret's name before the message leaves this module.
    Long messages are cut: an error never echoes a 100 KB value."""
    secrets = scope.get("secrets")
    if isinstance(secrets, Mapping) and secrets:
        pairs = [(str(v), str(k)) for k, v in secrets.items() if isinstance(v, str) and v]
        for value, name in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
            for form in _quoted_forms(value):
                if form and form in message:
                    message = message.replace(form, f"<secrets.{name}>")
    return _clip(message, 1000)


def _quoted_forms(value: str) -> tuple[str, ...]:
    return (repr(value), repr(value)[1:-1], json.dumps(value)[1:-1], value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _show(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to MAX_MESSAGE_VALUE characters."""
    return _clip(repr(value), MAX_MESSAGE_VALUE)


def _render_unscrubbed(t: CompiledTemplate | str, scope: Mapping[str, Any], shell: bool) -> Any:
    try:
        compiled = t if isinstance(t, CompiledTemplate) else compile_template(t)
    except ExpressionError as exc:
        raise RenderError(f"invalid template: {exc.message}") from None
    try:
        if compiled.whole and not shell:
            program = _program(compiled.source, _Mode.NATIVE)
            context = program.new_context(dict(scope))
            for _ in program.root_render_func(context):
                pass
            value = _to_data(context.vars[_RESULT_NAME])
            _charge_value(value)
            return value
        program = _program(compiled.source, _Mode.SHELL if shell else _Mode.TEXT)
        pieces: list[str] = []
        length = 0
        for piece in program.root_render_func(program.new_context(dict(scope))):
            length += len(piece)
            if length > MAX_VALUE_SIZE:
                raise RenderError(f"rendered text too large (over {MAX_VALUE_SIZE} characters)")
            _charge(len(piece))
            pieces.append(piece)
        return "".join(pieces)
    except RenderError:
        raise
    except ExpressionError as exc:
        raise RenderError(f"invalid template: {exc.message}") from None
    except _UndefinedAccess as exc:
        raise RenderError(_describe_undefined(compiled, scope, exc.origin)) from None
    except UndefinedError as exc:
        raise RenderError(f"undefined: {exc.message}") from None
    except ZeroDivisionError:
        raise RenderError("division by zero") from None
    except OverflowError as exc:
        raise RenderError(f"number too large: {exc}") from None
    except RecursionError:
        raise RenderError("value nested too deeply") from None
    except MemoryError:
        raise RenderError("out of memory while rendering") from None
    except TemplateError as exc:
        raise RenderError(str(exc.message or exc)) from None
    except (TypeError, ValueError, LookupError, ArithmeticError) as exc:
        raise RenderError(f"{_error_kind(exc)}: {exc}") from None
    except Exception as exc:  # the contract: rendering raises RenderError and nothing else
        raise RenderError(f"error while rendering: {type(exc).__name__}: {exc}") from None


def _error_kind(exc: Exception) -> str:
    return {TypeError: "type error", ValueError: "invalid value"}.get(type(exc), type(exc).__name__)


# -- friendly messages for undefined values --------------------------------------------------------


def _dotted(root: str, path: Iterable[str | int]) -> str:
    text = root
    for key in path:
        if isinstance(key, str) and key.isidentifier():
            text += f".{key}"
        else:
            text += f"[{_show(key)}]"
    return text


def _describe_undefined(compiled: CompiledTemplate, scope: Mapping[str, Any], origin: Undefined) -> str:
    hint: str | None = origin._undefined_hint
    obj: Any = origin._undefined_obj
    name: Any = origin._undefined_name
    if hint:
        return hint
    if obj is missing:
        return f"undefined: {name}"
    for ref in compiled.references:
        if ref.root not in scope:
            continue
        current: Any = scope[ref.root]
        for i, key in enumerate(ref.path):
            if current is obj and key == name and type(key) is type(name):
                where = _dotted(ref.root, ref.path[:i])
                return f"undefined: {_dotted(ref.root, ref.path[: i + 1])} ({where} {_lacks(obj, key)})"
            found, current = _lookup(current, key)
            if not found:
                break
    return f"undefined: a {_kind(obj)} {_lacks(obj, name)}"


def _lacks(obj: Any, key: Any) -> str:
    if isinstance(obj, Mapping):
        return f"has no key {_show(key)}"
    if isinstance(obj, list | tuple) and _is_int(key):
        return f"has no item {key} (it has {len(obj)})"
    return f"is a {_kind(obj)}, which has no key {_show(key)}"


def _kind(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "mapping"
    if isinstance(obj, list | tuple):
        return "list"
    if isinstance(obj, str):
        return "string"
    if obj is None:
        return "null"
    return type(obj).__name__
