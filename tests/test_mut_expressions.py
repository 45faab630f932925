"""Expressions behaviour found unpinned by mutation testing (tests/mutation/run.sh expressions).

Table tests through the public entry points (`render_template`, `render_value`,
`compile_template`) with exact values and wpk's exact error messages: every cap at its edge (the
last value accepted, the first refused), the size estimates quoted in messages, each filter's and
test's own checks, and the public types."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from wpk.engine import expressions
from wpk.engine.expressions import (
    CompiledTemplate,
    ExpressionError,
    Reference,
    RenderError,
    compile_template,
    render_template,
    render_value,
)

SCOPE: dict[str, Any] = {
    "params": {
        "s": "abc",
        "n": 3,
        "l": [1, 2, 3],
        "m": {"a": 1, "b": 2},
        "none": None,
        "nested": {"a": {"b": [10, 20]}},
        "pods": [{"name": "p1", "r": 1}, {"name": "p2", "r": 2}],
    },
    "secrets": {"tok": "hunter2"},
}


def render(text: str, scope: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return render_template(text, SCOPE if scope is None else scope, **kwargs)


def refused(text: str, scope: dict[str, Any] | None = None, **kwargs: Any) -> str:
    with pytest.raises(RenderError) as info:
        render(text, scope, **kwargs)
    assert str(info.value) == info.value.message
    return info.value.message


def too_large(what: str) -> str:
    return f"arithmetic result too large: {what}"


# -- the caps at their edges ----------------------------------------------------------------------

CAP_ROWS = [
    # text, the value it renders (or None when refused), the exact error (or None)
    ("{{ ('x' * 1000000) | length }}", 1_000_000, None),
    ("{{ 'x' * 1000001 }}", None, too_large("repeating a str 1000001 times (limit 1000000)")),
    ("{{ 1000001 * 'x' }}", None, too_large("repeating a str 1000001 times (limit 1000000)")),
    ("{{ 'x' * 0 }}", "", None),
    ("{{ 'x' * -1 }}", "", None),
    ("{{ 'x' * true }}", "x", None),
    ("{{ 3 * 'ab' }}", "ababab", None),
    # a list counts its items plus their sizes: ['ab'] is 4 per repeat
    ("{{ (['ab'] * 250000) | length }}", 250_000, None),
    ("{{ ['ab'] * 333333 }}", None, too_large("list of size 1333332 (limit 1000000)")),
    ("{{ [1, 2] * 500001 }}", None, too_large("list of size 2000004 (limit 1000000)")),
    ("{{ 2 ** 4095 > 0 }}", True, None),
    ("{{ (-2) ** 4095 < 0 }}", True, None),
    ("{{ 2 ** 4096 }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ 2 ** 5000 }}", None, too_large("an integer of about 5000 bits (limit 4096)")),
    ("{{ 3 ** 2584 > 0 }}", True, None),
    ("{{ 3 ** 2585 }}", None, too_large("an integer of about 4098 bits (limit 4096)")),
    ("{{ 1 ** 100000 }}", 1, None),
    ("{{ (-1) ** 100001 }}", -1, None),
    ("{{ 2 ** -1 }}", 0.5, None),
    ("{{ (2 ** 2000) * (2 ** 2094) > 0 }}", True, None),
    ("{{ (2 ** 2000) * (2 ** 2095) }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ (2 ** 4094) + (2 ** 4094) > 0 }}", True, None),
    ("{{ (2 ** 4095) + 1 }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ (2 ** 4095) - 1 }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ (2 ** 4094) - (2 ** 4094) }}", 0, None),
    ("{{ (('a' * 500000) + ('a' * 499998)) | length }}", 999_998, None),
    (
        "{{ ('a' * 500000) + ('a' * 499999) }}",
        None,
        too_large("joining two values of total size 1000001 (limit 1000000)"),
    ),
    ("{{ ([1] * 10) + [2] }}", [1] * 10 + [2], None),
    ("{{ ('%1000d' % 1) | length }}", 1000, None),
    ("{{ '%1001d' % 1 }}", None, too_large("a % format width of 1001 (limit 1000)")),
    ("{{ '%099999d' % 1 }}", None, too_large("a % format width of 99999 (limit 1000)")),
    ("{{ ('%.1000f' % 1) | length }}", 1002, None),
    ("{{ '%*d' % (3, 1) }}", None, too_large("'*' widths in % formatting are not allowed")),
    ("{{ '%.*f' % (3, 1) }}", None, too_large("'*' widths in % formatting are not allowed")),
    ("{{ '%s-%s' % ('a', 'b') }}", "a-b", None),
    ("{{ '%5d|%-3s|%.2f' % (42, 'ab', 1.5) }}", "   42|ab |1.50", None),
    # the estimate: the format's length + its widths + each spec times the arguments' size
    ("{{ (('%(a)s' * 1000) % {'a': 'x' * 990}) | length }}", 990_000, None),
    (
        "{{ (('%(a)s' * 1000) ~ 'x') % {'a': 'x' * 990} }}",
        None,
        too_large("% formatting of about 1000001 characters (limit 1000000)"),
    ),
    (
        "{{ ('%1000s' * 999) % ('a',) }}",
        None,
        too_large("% formatting of about 1008990 characters (limit 1000000)"),
    ),
    ("{{ 2.5 | round(64) }}", 2.5, None),
    ("{{ 2.5 | round(-64) }}", 0.0, None),
    ("{{ 2.5 | round(65) }}", None, "round precision must be an integer between -64 and 64"),
    ("{{ 2.5 | round(-65) }}", None, "round precision must be an integer between -64 and 64"),
    ("{{ 2.5 | round(1.5) }}", None, "round precision must be an integer between -64 and 64"),
    ("{{ 2.567 | round(2) }}", 2.57, None),
    ("{{ 2.5 | round(0, 'floor') }}", 2.0, None),
    ("{{ ('x' * 100000) | list | length }}", 100_000, None),
    ("{{ ('x' * 100001) | list }}", None, "list result too large: 100001 characters or items (limit 100000)"),
    ("{{ (('a,' * 99999) ~ 'a') | split(',') | length }}", 100_000, None),
    (
        "{{ (('a,' * 100000) ~ 'a') | split(',') }}",
        None,
        "split result too large: 100001 characters or items (limit 100000)",
    ),
    ("{{ (('a ' * 99999) ~ 'a') | split | length }}", 100_000, None),
    (
        "{{ (('a ' * 100000) ~ 'a') | split }}",
        None,
        "split result too large: 100001 characters or items (limit 100000)",
    ),
    ("{{ (('a,' * 200000) ~ 'a') | split(',', 99999) | length }}", 100_000, None),
    ("{{ ('1' * 5001) | int }}", None, "text too long to convert to an integer"),
    ("{{ ('1' * 5001) | float }}", None, "text too long to convert to a number"),
    ("{{ ('0' * 5000) | int }}", 0, None),
    ("{{ ('1' * 5000) | float }}", None, "float: not a finite number"),
    ("{{ ('1' * 1233) | int > 0 }}", True, None),
    ("{{ ('1' * 1300) | int }}", None, too_large("an integer of about 4316 bits (limit 4096)")),
]


@pytest.mark.parametrize(("text", "value", "error"), CAP_ROWS)
def test_caps_at_their_edges(text: str, value: Any, error: str | None) -> None:
    if error is None:
        result = render(text)
        assert result == value
        assert type(result) is type(value)
    else:
        assert refused(text) == error


@pytest.mark.parametrize(("levels", "ok"), [(64, True), (65, False)])
def test_data_nesting_limit(levels: int, ok: bool) -> None:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    scope = {"params": {"v": value}}
    tree: Any = "{{ 1 }}"
    for _ in range(levels + 1):
        tree = [tree]
    if ok:
        assert render("{{ params.v }}", scope) == value
        assert render_value(tree[0], scope) == value
    else:
        assert refused("{{ params.v }}", scope) == "value nested deeper than 64 levels"
        with pytest.raises(RenderError) as info:
            render_value(tree, scope)
        assert info.value.message == "value nested deeper than 64 levels"


@pytest.mark.parametrize(("levels", "ok"), [(64, True), (65, False)])
def test_expression_nesting_limit(levels: int, ok: bool) -> None:
    text = "{{ " + "-" * levels + "1 }}"
    if ok:
        assert render(text) == (-1 if levels % 2 else 1)
    else:
        with pytest.raises(ExpressionError) as info:
            compile_template(text)
        assert info.value.message == "expression nested too deeply (more than 64 levels)"


@pytest.mark.parametrize(("depth", "ok"), [(63, True), (64, True), (65, False)])
def test_access_chain_nesting_limit(depth: int, ok: bool) -> None:
    text = "{{ x" + ".a" * depth + " }}"
    if ok:
        assert compile_template(text).references[0].path == ("a",) * depth
    else:
        with pytest.raises(ExpressionError) as info:
            compile_template(text)
        assert info.value.message == "expression nested too deeply (more than 64 levels)"


def test_a_long_key_is_cut_in_messages() -> None:
    key = "k" * 100
    scope = {"params": {"m": {}, "key": key}}
    shown = repr(key)[:80]
    assert refused("{{ params.m[params.key] }}", scope) == (
        f"undefined: a mapping has no key {shown}… (22 more characters)"
    )
    key81 = "k" * 78  # repr is 80 characters: not cut
    assert refused("{{ params.m[params.key] }}", {"params": {"m": {}, "key": key81}}) == (
        f"undefined: a mapping has no key {key81!r}"
    )


# -- public types ----------------------------------------------------------------------------------


def test_public_types_are_frozen_and_slotted() -> None:
    compiled = compile_template("{{ params.n }}")
    assert isinstance(compiled, CompiledTemplate)
    ref = compiled.references[0]
    assert ref == Reference("params", ("n",), 3)
    for obj in (compiled, ref):
        with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):  # TypeError: slots
            obj.source = "x"  # type: ignore[misc,union-attr]
        assert not hasattr(obj, "__dict__")


def test_expression_error_offset_defaults_to_zero() -> None:
    assert ExpressionError("x").offset == 0
    assert str(ExpressionError("boom", 4)) == "boom"
    assert str(RenderError("bang")) == "bang"


# -- filters and tests: values and their own error messages --------------------------------------

FILTER_ROWS = [
    ("{{ params.pods | join(',', attribute='name') }}", "p1,p2"),
    ("{{ params.pods | sum(attribute='r') }}", 3),
    ("{{ params.l | sum }}", 6),
    ("{{ params.l | sum(start=10) }}", 16),
    ("{{ [1.5, 2] | sum }}", 3.5),
    ("{{ params.l | join('-') }}", "1-2-3"),
    ("{{ [] | join('-') }}", ""),
    ("{{ 'aaa' | replace('a', 'bb') }}", "bbbbbb"),
    ("{{ 'aaa' | replace('a', 'bb', 2) }}", "bbbba"),
    ("{{ 'aaa' | replace('a', 'bb', -1) }}", "bbbbbb"),
    ("{{ 5 | replace('5', '6') }}", "6"),
    ("{{ 'abc' | reverse }}", "cba"),
    ("{{ params.l | reverse }}", [3, 2, 1]),
    ("{{ params.m | reverse }}", ["b", "a"]),
    ("{{ '1.5' | float }}", 1.5),
    ("{{ 'x' | float }}", 0.0),
    ("{{ 'x' | float(2.5) }}", 2.5),
    ("{{ 'x' | int }}", 0),
    ("{{ 'x' | int(7) }}", 7),
    ("{{ 'ff' | int(0, 16) }}", 255),
    ("{{ 'a/b?c#d' | urlencode }}", "a%2Fb%3Fc%23d"),
    ("{{ '.' | urlencode }}", "%2E"),
    ("{{ '..' | urlencode }}", "%2E%2E"),
    ("{{ '...' | urlencode }}", "..."),
    ("{{ {'a b': 'c&d', 'e': 1} | urlencode }}", "a%20b=c%26d&e=1"),
    ("{{ 1 | string }}", "1"),
    ("{{ [1, 'a'] | string }}", '[1, "a"]'),
    ("{{ params.m | tojson }}", '{"a": 1, "b": 2}'),
    ("{{ params.m | tojson(2) }}", '{\n  "a": 1,\n  "b": 2\n}'),
    ("{{ params.m | tojson(0) }}", '{\n"a": 1,\n"b": 2\n}'),
    ("{{ params.m | tojson(8) }}", '{\n        "a": 1,\n        "b": 2\n}'),
    ("{{ 'é' | tojson }}", '"é"'),
    ("{{ ['é'] | tojson(1) }}", '[\n "é"\n]'),
    ("{{ '{\"a\": [1, 2]}' | fromjson }}", {"a": [1, 2]}),
    ("{{ '{\"a\": 1}' | from_json }}", {"a": 1}),
    ("{{ 'héllo' | b64encode }}", "aMOpbGxv"),
    ("{{ 'aMOpbGxv' | b64decode }}", "héllo"),
    ("{{ params.m | keys }}", ["a", "b"]),
    ("{{ params.m | values }}", [1, 2]),
    ("{{ params.m | items }}", [["a", 1], ["b", 2]]),
    ('{{ "it\'s" | shell_quote }}', "'it'\"'\"'s'"),
    ("{{ 'a b' | shell_unquoted }}", "a b"),
    ("{{ 'hello world' | capitalize }}", "Hello world"),
    ("{{ 'hello world' | title }}", "Hello World"),
    ("{{ 'AbC' | lower }}", "abc"),
    ("{{ 'AbC' | upper }}", "ABC"),
    ("{{ '  x  ' | trim }}", "x"),
    ("{{ 'xxaxx' | trim('x') }}", "a"),
    ("{{ params.l | map('string') | list }}", ["1", "2", "3"]),
    ("{{ params.l | select('odd') | list }}", [1, 3]),
    ("{{ params.l | reject('odd') | list }}", [2]),
    ("{{ params.l | select('odd') | length }}", 2),
    ("{{ params.pods | selectattr('r', 'eq', 1) | map(attribute='name') | list }}", ["p1"]),
    ("{{ params.pods | rejectattr('r', 'eq', 1) | map(attribute='name') | list }}", ["p2"]),
    ("{{ ['a', 'A', 'b'] | unique }}", ["a", "b"]),
    ("{{ ['a', 'A', 'b'] | unique(true) }}", ["a", "A", "b"]),
    ("{{ 'a,b,c' | split(',', 1) }}", ["a", "b,c"]),
    ("{{ 'a,b,c' | split(',', 0) }}", ["a,b,c"]),
    ("{{ 'a b  c' | split }}", ["a", "b", "c"]),
    ("{{ 'a b c' | split(none, 1) }}", ["a", "b c"]),
    ("{{ params.m | list }}", ["a", "b"]),
    ("{{ (1, 2) | list }}", [1, 2]),
    ("{{ 'abc' | length }}", 3),
    ("{{ 'abc' | count }}", 3),
    ("{{ 4 is even }}", True),
    ("{{ 3 is even }}", False),
    ("{{ 3 is odd }}", True),
    ("{{ 4 is odd }}", False),
    ("{{ -3 is odd }}", True),
    ("{{ 9 is divisibleby 3 }}", True),
    ("{{ 9 is divisibleby 2 }}", False),
    ("{{ 'b' is in 'abc' }}", True),
    ("{{ 2 is in params.l }}", True),
    ("{{ 5 is in params.l }}", False),
    ("{{ -params.n }}", -3),
    ("{{ +params.n }}", 3),
    ("{{ params.n // 2 }}", 1),
    ("{{ params.n / 2 }}", 1.5),
    ("{{ 7 % 3 }}", 1),
    ("{{ 7 - 10 }}", -3),
]


@pytest.mark.parametrize(("text", "expected"), FILTER_ROWS)
def test_filter_and_test_values(text: str, expected: Any) -> None:
    result = render(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("true", True), ("yes", True), ("on", True), ("1", True), ("y", True), (" Yes ", True),
        ("false", False), ("no", False), ("off", False), ("0", False), ("n", False), ("", False),
    ],
)  # fmt: skip
def test_bool_words(word: str, expected: bool) -> None:
    assert render("{{ params.w | bool }}", {"params": {"w": word}}) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (None, False), (0, False), (0.0, False), (2, True), (-0.5, True),
     ([], False), ([0], True), ({}, False), ({"a": 0}, True)],
)  # fmt: skip
def test_bool_of_other_values(value: Any, expected: bool) -> None:
    assert render("{{ params.w | bool }}", {"params": {"w": value}}) is expected


ERROR_ROWS = (
    [
        ("{{ params.m.zz }}", "undefined: params.m.zz (params.m has no key 'zz')"),
        ("{{ params.l[7] }}", "undefined: params.l[7] (params.l has no item 7 (it has 3))"),
        ("{{ params.s.zz }}", "undefined: params.s.zz (params.s is a string, which has no key 'zz')"),
        ("{{ params.none.zz }}", "undefined: params.none.zz (params.none is a null, which has no key 'zz')"),
        ("{{ params.n.zz }}", "undefined: params.n.zz (params.n is a int, which has no key 'zz')"),
        (
            "{{ params.nested.a.b[5] }}",
            "undefined: params.nested.a.b[5] (params.nested.a.b has no item 5 (it has 2))",
        ),
        ("{{ params.nested['a-b'] }}", "undefined: params.nested['a-b'] (params.nested has no key 'a-b')"),
        ("{{ nosuch }}", "undefined: nosuch"),
        ("{{ nosuch.x }}", "undefined: nosuch"),
        ("{{ params.l | map(attribute='x') | list }}", "undefined: a int is a int, which has no key 'x'"),
        ("{{ params.pods | join(',', attribute='zz') }}", "an item has no key 'zz'"),
        ("{{ params.pods | sum(attribute='zz') }}", "an item has no key 'zz'"),
        ("{{ ['a'] | sum }}", "sum needs numbers, got a str"),
        ("{{ [2 ** 4095, 2 ** 4095] | sum }}", too_large("an integer of about 4097 bits (limit 4096)")),
        ("{{ params.l | join(1) }}", "join separator must be a string, not int"),
        ("{{ 'aaa' | replace('a', 'bb', 'x') }}", "replace: count must be an integer"),
        ("{{ 'aaa' | replace(1, 'bb') }}", "replace: the old text must be a string, not int"),
        ("{{ 'aaa' | replace('a', 1) }}", "replace: the new text must be a string, not int"),
        ("{{ 'inf' | float }}", "float: not a finite number"),
        ("{{ 'nan' | float }}", "float: not a finite number"),
        ("{{ params.m | tojson(9) }}", "tojson: indent must be an integer from 0 to 8"),
        ("{{ params.m | tojson(-1) }}", "tojson: indent must be an integer from 0 to 8"),
        ("{{ 'x' | tojson(true) }}", "tojson: indent must be an integer from 0 to 8"),
        ("{{ 'NaN' | fromjson }}", "fromjson: NaN is not valid JSON"),
        ("{{ 'Infinity' | fromjson }}", "fromjson: Infinity is not valid JSON"),
        ("{{ '{\"a\": ' | fromjson }}", "fromjson: invalid JSON at character 6: Expecting value"),
        ("{{ 5 | fromjson }}", "fromjson: the value must be a string, not int"),
        ("{{ 'aMOpbGxv!' | b64decode }}", "b64decode: not valid base64"),
        ("{{ 'é' | b64decode }}", "b64decode: not valid base64"),
        ("{{ '/w==' | b64decode }}", "b64decode: the decoded bytes are not UTF-8 text"),
        ("{{ params.l | keys }}", "keys needs a mapping, not a list"),
        ("{{ params.l | values }}", "values needs a mapping, not a list"),
        ("{{ params.s | items }}", "items needs a mapping, not a str"),
        ("{{ 'xxaxx' | trim(1) }}", "trim: chars must be a string, not int"),
        ("{{ 'a,b' | split(1) }}", "split: the separator must be a string, not int"),
        ("{{ 5 | split }}", "split: the value must be a string, not int"),
        ("{{ 'a,b' | split(',', 'x') }}", "split: maxsplit must be an integer"),
        ("{{ 5 | list }}", "list needs a string, list or mapping, not a int"),
        ("{{ 'a' is odd }}", "the 'odd' test needs a number, not a str"),
        ("{{ 'a' is even }}", "the 'even' test needs a number, not a str"),
        ("{{ 'a' is divisibleby 3 }}", "the 'divisibleby' test needs a number, not a str"),
        ("{{ 3 is divisibleby 'a' }}", "the 'divisibleby' test needs a number, not a str"),
        ("{{ 'x' | bool }}", "cannot read 1-character text as a boolean"),
        ("{{ 'maybe' | bool }}", "cannot read 5-character text as a boolean"),
        ("{{ 'a' - 1 }}", "type error: unsupported operand type(s) for -: 'str' and 'int'"),
        ("{{ params.n / 0 }}", "division by zero"),
        ("{{ params.n // 0 }}", "division by zero"),
    ]
    + [
        (f"{{{{ nosuch | {f} }}}}", "undefined: nosuch")
        for f in ("bool", "length", "reverse", "list", "urlencode", "keys", "fromjson", "split")
    ]
    + [
        ("{{ nosuch is even }}", "undefined: nosuch"),
        ("{{ [nosuch] | sum }}", "undefined: nosuch"),
        ("{{ [nosuch] }}", "undefined: nosuch"),
        ("{{ {'a': nosuch} }}", "undefined: nosuch"),
        ("{{ 'x' | replace(nosuch, 'y') }}", "undefined: nosuch"),
    ]
)


@pytest.mark.parametrize(("text", "message"), ERROR_ROWS)
def test_filter_and_test_errors(text: str, message: str) -> None:
    assert refused(text) == message


# -- the size estimate of each kind of value, as a repeated list quotes it -----------------------

SIZE_ROWS = [
    # [x] * n is refused with n times (the size of x plus one): each kind of value has its size
    ("{{ [none] * 1000000 }}", None, 2_000_000),
    ("{{ [true] * 1000000 }}", None, 2_000_000),
    ("{{ [2.5] * 1000000 }}", None, 9_000_000),
    ("{{ [2 ** 100] * 100000 }}", None, 3_200_000),  # 101 bits: about 31 digits
    ("{{ [{'a': 1}] * 1000000 }}", None, 6_000_000),
    ("{{ [[1, 2]] * 1000000 }}", None, 6_000_000),
    ("{{ [params.x] * 1000000 }}", {1, 2}, 2_000_000),  # anything else counts one
    # the measure goes on past the limit by whole items: 'c' is counted after the long text
    ("{{ ['c', 'a' * 999993, 'b'] * 1 }}", None, 1_000_001),
]


@pytest.mark.parametrize(("text", "x", "size"), SIZE_ROWS)
def test_size_of_each_kind_of_value(text: str, x: Any, size: int) -> None:
    assert refused(text, {"params": {"x": x}}) == too_large(f"list of size {size} (limit 1000000)")


DATA_ROWS = [
    ("{{ {none: 1, 2: 2, 1.5: 3, 'a': 4, true: 5} }}", {None: 1, 2: 2, 1.5: 3, "a": 4, True: 5}),
    ("x{{ {none: 1, 2: 2, 1.5: 3, 'a': 4} }}", 'x{"null": 1, "2": 2, "1.5": 3, "a": 4}'),
]


@pytest.mark.parametrize(("text", "expected"), DATA_ROWS)
def test_mapping_keys_as_data(text: str, expected: Any) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "x", "message"),
    [
        ("{{ 1e308 * 10 }}", None, "not a finite number: inf"),
        ("x{{ 1e308 * 10 }}", None, "not a finite number: inf"),
        ("{{ params.x }}", {1, 2}, "a set value cannot be used as data"),
        ("{{ {nosuch: 1} }}", None, "undefined: nosuch"),
        ("{{ {(1, 2): 1} }}", None, "a tuple cannot be a mapping key"),
    ],
)
def test_values_that_are_not_data(text: str, x: Any, message: str) -> None:
    assert refused(text, {"params": {"x": x}}) == message


@pytest.mark.parametrize(("levels", "ok"), [(64, True), (65, False)])
def test_mapping_nesting_limit(levels: int, ok: bool) -> None:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    scope = {"params": {"v": value}}
    if ok:
        assert render("{{ params.v }}", scope) == value
    else:
        assert refused("{{ params.v }}", scope) == "value nested deeper than 64 levels"


# -- compiling: what a template reads, and every refusal with its message and offset -------------

_HIDES = (
    " would hide a secret from redaction: a secret may only be used as it is, joined with other"
    " text, or encoded once (b64encode, shell_quote, to_json, tojson, urlencode)"
)
TEST_LIST = (
    "; the tests are boolean, defined, divisibleby, eq, even, false, float, ge, gt, in, integer, le,"
    " lt, mapping, ne, none, number, odd, sequence, string, true, undefined"
)
NAMES = "; the names in scope are execution, index, item, params, result, secrets, steps"


def hides(what: str) -> str:
    return what + _HIDES


COMPILE_OK: list[tuple[str, bool, list[tuple[str, tuple[str | int, ...], int]], list[tuple[str, int]]]] = [
    ("{{ secrets.tok | b64encode }}", True, [("secrets", ("tok",), 3)], [("b64encode", 17)]),
    ("{{ secrets.tok + 'x' }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ secrets.tok * 2 }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ not secrets.tok }}", True, [("secrets", ("tok",), 7)], []),
    ("{{ secrets.tok == 'x' }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ secrets.tok is defined }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ 'a' if secrets.tok else 'b' }}", True, [("secrets", ("tok",), 10)], []),
    ("{{ secrets.tok if true else 'b' }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ secrets.tok | length }}", True, [("secrets", ("tok",), 3)], [("length", 17)]),
    ("{{ secrets.tok | count }}", True, [("secrets", ("tok",), 3)], [("count", 17)]),
    ("{{ secrets.tok | bool }}", True, [("secrets", ("tok",), 3)], [("bool", 17)]),
    ("{{ secrets.tok | default('x') }}", True, [("secrets", ("tok",), 3)], [("default", 17)]),
    ("{{ secrets.tok | d('x') }}", True, [("secrets", ("tok",), 3)], [("d", 17)]),
    ("{{ secrets.tok | string }}", True, [("secrets", ("tok",), 3)], [("string", 17)]),
    ("{{ secrets.tok | to_json }}", True, [("secrets", ("tok",), 3)], [("to_json", 17)]),
    ("{{ secrets.tok | shell_quote }}", True, [("secrets", ("tok",), 3)], [("shell_quote", 17)]),
    ("{{ [secrets.tok] | join(',') }}", True, [("secrets", ("tok",), 4)], [("join", 19)]),
    ("{{ (secrets.tok, 'a') | join(',') }}", True, [("secrets", ("tok",), 4)], [("join", 24)]),
    ("{{ 'x' | replace('x', secrets.tok) }}", True, [("secrets", ("tok",), 22)], [("replace", 9)]),
    ("{{ {'a': secrets.tok} | tojson }}", True, [("secrets", ("tok",), 9)], [("tojson", 24)]),
    ("{{ (secrets.tok ~ 'x') | urlencode }}", True, [("secrets", ("tok",), 4)], [("urlencode", 25)]),
    ("{{ params[secrets.tok] }}", True, [("params", (), 3), ("secrets", ("tok",), 10)], []),
    (
        "{{ params[secrets.tok] | upper }}",
        True,
        [("params", (), 3), ("secrets", ("tok",), 10)],
        [("upper", 25)],
    ),
    ("{{ secrets[params.x] }}", True, [("secrets", (), 3), ("params", ("x",), 11)], []),
    ("{{ secrets }}", True, [("secrets", (), 3)], []),
    (
        "{{ secrets.tok | b64encode | length }}",
        True,
        [("secrets", ("tok",), 3)],
        [("b64encode", 17), ("length", 29)],
    ),
    (
        "{{ [secrets.tok, 1] | join(',') | b64encode }}",
        True,
        [("secrets", ("tok",), 4)],
        [("join", 22), ("b64encode", 34)],
    ),
    ("{{ (secrets.tok, 1) }}", True, [("secrets", ("tok",), 4)], []),
    ("{{ secrets.tok and 1 }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ secrets.tok or 1 }}", True, [("secrets", ("tok",), 3)], []),
    ("{{ (1 if secrets.tok else 2) | upper }}", True, [("secrets", ("tok",), 9)], [("upper", 31)]),
    ("{{ (secrets.tok is defined) | upper }}", True, [("secrets", ("tok",), 4)], [("upper", 30)]),
    ("{{ (secrets.tok == 1) | upper }}", True, [("secrets", ("tok",), 4)], [("upper", 24)]),
    ("{{ (not secrets.tok) | upper }}", True, [("secrets", ("tok",), 8)], [("upper", 23)]),
    ("{{ 'a' ~ secrets.tok }}", True, [("secrets", ("tok",), 9)], []),
    ("{{ x|sort(attribute=1) }}", True, [("x", (), 3)], [("sort", 5)]),
    ("{{ x|sort(attribute=none) }}", True, [("x", (), 3)], [("sort", 5)]),
    ("{{ x|selectattr('a', 'odd') }}", True, [("x", (), 3)], [("selectattr", 5)]),
    ("{{ x|map(attribute='a', default=1) }}", True, [("x", (), 3)], [("map", 5)]),
    ("{{ a.b[c].d }}", True, [("a", ("b",), 3), ("c", (), 7)], []),
    ("{{ a[1].b[true] }}", True, [("a", (1, "b"), 3)], []),
    ("{{ a['x'].b }}", True, [("a", ("x", "b"), 3)], []),
    ("{{ a[-1] }}", True, [("a", (), 3)], []),
    ("{{ a[1:2] }}", True, [("a", (), 3)], []),
    ("{{ a[::2] }}", True, [("a", (), 3)], []),
    ("{{ a[b:c:d] }}", True, [("a", (), 3), ("b", (), 5), ("c", (), 7), ("d", (), 9)], []),
    ("{{ [1, 2][0] }}", True, [], []),
    ("{{ {'a': 1}['a'] }}", True, [], []),
    ("{{ 1 if 2 else 3 }}", True, [], []),
    ("{{ (1, 2) }}", True, [], []),
    ("{{ 1 }} x {{ 2 }}", False, [], []),
    ("  {{ 1 }}  ", True, [], []),
    ("{{ 1 }}{{ 2 }}", False, [], []),
    ("x", False, [], []),
    ("{{ a ~ b }}", True, [("a", (), 3), ("b", (), 7)], []),
    ("{{ not a }}", True, [("a", (), 7)], []),
    ("{{ 1 < 2 < 3 }}", True, [], []),
    ("{{ a is defined }}", True, [("a", (), 3)], []),
    ("{{ a is divisibleby(3) }}", True, [("a", (), 3)], []),
    ("{{ x | map('upper') }}", True, [("x", (), 3)], [("map", 7), ("upper", 11)]),
    ("{{ x | select }}", True, [("x", (), 3)], [("select", 7)]),
    ("{{ x | reject('odd') }}", True, [("x", (), 3)], [("reject", 7)]),
    ("{{ x | join(',', 'a') }}", True, [("x", (), 3)], [("join", 7)]),
    ("{{ x | sort(false) }}", True, [("x", (), 3)], [("sort", 7)]),
    ("{{ x | sort(false, false) }}", True, [("x", (), 3)], [("sort", 7)]),
    ("{{ x | max(false) }}", True, [("x", (), 3)], [("max", 7)]),
    ("{{ x | sum }}", True, [("x", (), 3)], [("sum", 7)]),
]

COMPILE_REFUSED = [
    ("{{ secrets.tok | upper }}", hides("the filter `upper`"), 17),
    ("{{ secrets.tok | b64encode | b64encode }}", hides("a second encoding (`b64encode`)"), 29),
    ("{{ secrets.tok[0] }}", hides("indexing or slicing"), 14),
    ("{{ secrets['tok'][1:] }}", hides("indexing or slicing"), 17),
    ("{{ secrets.tok - 1 }}", hides("arithmetic or `%` formatting"), 3),
    ("{{ -secrets.tok }}", hides("arithmetic or `%` formatting"), 3),
    ("{{ 'a' if true else secrets.tok | upper }}", hides("the filter `upper`"), 34),
    ("{{ secrets.tok | join(',') }}", hides("the filter `join`"), 17),
    ("{{ 'x' | replace('x', secrets.tok) | upper }}", hides("the filter `upper`"), 37),
    ("{{ 'x' | replace('x', old=secrets.tok) | upper }}", hides("the filter `upper`"), 41),
    ("{{ {secrets.tok: 1} | tojson | b64encode }}", hides("a second encoding (`b64encode`)"), 31),
    ("{{ {'a': secrets.tok} | tojson | b64encode }}", hides("a second encoding (`b64encode`)"), 33),
    ("{{ ('x' ~ secrets.tok | b64encode) | b64encode }}", hides("a second encoding (`b64encode`)"), 37),
    ("{{ secrets[params.x][0] }}", hides("indexing or slicing"), 20),
    ("{{ {'a': secrets}['a'].tok[0] }}", hides("indexing or slicing"), 17),
    ("{{ secrets | upper }}", hides("the filter `upper`"), 13),
    ("{{ secrets.tok | b64encode | upper }}", hides("the filter `upper`"), 29),
    ("{{ [secrets.tok | b64encode] | join(',') | b64encode }}", hides("a second encoding (`b64encode`)"), 43),
    ("{{ secrets.tok % 2 }}", hides("arithmetic or `%` formatting"), 3),
    ("{{ '%s' % secrets.tok }}", hides("arithmetic or `%` formatting"), 3),
    ("{{ [secrets.tok] | upper }}", hides("the filter `upper`"), 19),
    ("{{ {'k': secrets.tok} | upper }}", hides("the filter `upper`"), 24),
    ("{{ (secrets.tok ~ 'a') | upper }}", hides("the filter `upper`"), 25),
    ("{{ (secrets.tok and 1) | upper }}", hides("the filter `upper`"), 25),
    ("{{ (secrets.tok * 2) | upper }}", hides("the filter `upper`"), 23),
    ("{{ secrets.tok is eq(secrets.tok | upper) }}", hides("the filter `upper`"), 35),
    ("{{ secrets.tok is in({'a': secrets.tok | upper}) }}", hides("the filter `upper`"), 41),
    ("{{ x.__y }}", "names and keys beginning with '_' are not allowed (`__y`)", 4),
    ("{{ x|sort(attribute='a._b') }}", "names and keys beginning with '_' are not allowed (`_b`)", 20),
    ("{{ x|sort(attribute='a, _b') }}", "names and keys beginning with '_' are not allowed (`_b`)", 20),
    ("{{ x|sort(attribute=1.5) }}", "the attribute argument of `sort` must be a constant string", 20),
    ("{{ x|selectattr }}", "`selectattr` needs an attribute name", 5),
    ("{{ x|selectattr('a', 'callable') }}", "test `callable` is not allowed" + TEST_LIST, 21),
    (
        "{{ x|select('equalto', 1) }}",
        "test `equalto` is not allowed; use `eq` (wpk keeps one name per test)",
        12,
    ),
    ("{{ x is equalto 1 }}", "test `equalto` is not allowed; use `eq` (wpk keeps one name per test)", 5),
    ("{{ x is == 1 }}", "syntax error: expected token 'name', got '=='", 8),
    (
        "{{ x is greaterthan 1 }}",
        "test `greaterthan` is not allowed; use `gt` (wpk keeps one name per test)",
        5,
    ),
    ("{{ x is sameas 1 }}", "test `sameas` is not allowed" + TEST_LIST, 5),
    ("{{ x is evn }}", "test `evn` is not allowed; did you mean `even`?", 5),
    ("{{ x is zzzqqq }}", "test `zzzqqq` is not allowed" + TEST_LIST, 5),
    ("{{ x|map(attribute='a', zz=1) }}", "`map` got an unexpected argument `zz`", 5),
    (
        "{{ x|map(attribute='a', default=_y) }}",
        "names and keys beginning with '_' are not allowed (`_y`)",
        32,
    ),
    ("{{ x|map(**y) }}", "`*args` and `**kwargs` are not allowed", 5),
    ("{{ x|map(*y) }}", "`*args` and `**kwargs` are not allowed", 5),
    ("{{ x|join(**y) }}", "`*args` and `**kwargs` are not allowed", 5),
    ("{{ x is eq(*y) }}", "`*args` and `**kwargs` are not allowed", 5),
    ("{{ x.y() }}", "method calls are not allowed (`.y()`); use a filter, e.g. `value | y`", 3),
    ("{{ x()() }}", "calls are not allowed in expressions", 3),
    ("{{ (x)() }}", "function calls are not allowed (`x()`); use filters and operators", 4),
    ("{{ x[0]() }}", "calls are not allowed in expressions", 3),
    (
        "{{ x|attr('a') }}",
        "filter `attr` is not allowed (use the `keys`/`map(attribute=…)` filters instead)",
        5,
    ),
    ("{{ a['_x'] }}", "names and keys beginning with '_' are not allowed (`_x`)", 5),
    ("{{ a[_b] }}", "names and keys beginning with '_' are not allowed (`_b`)", 5),
    ("{{ a[1:_b] }}", "names and keys beginning with '_' are not allowed (`_b`)", 7),
    ("{{ [_a][0] }}", "names and keys beginning with '_' are not allowed (`_a`)", 4),
    ("{{ {'a': _b} }}", "names and keys beginning with '_' are not allowed (`_b`)", 9),
    ("{{ {_a: 1} }}", "names and keys beginning with '_' are not allowed (`_a`)", 4),
    ("{{ (_a, 1) }}", "names and keys beginning with '_' are not allowed (`_a`)", 4),
    ("{{ 1 < _a }}", "names and keys beginning with '_' are not allowed (`_a`)", 7),
    ("{{ _a < 1 }}", "names and keys beginning with '_' are not allowed (`_a`)", 3),
    ("{{ 1 + _a }}", "names and keys beginning with '_' are not allowed (`_a`)", 7),
    ("{{ _a * 2 }}", "names and keys beginning with '_' are not allowed (`_a`)", 3),
    ("{{ not _a }}", "names and keys beginning with '_' are not allowed (`_a`)", 7),
    ("{{ -_a }}", "names and keys beginning with '_' are not allowed (`_a`)", 4),
    ("{{ 'a' ~ _b }}", "names and keys beginning with '_' are not allowed (`_b`)", 9),
    ("{{ _a if b else c }}", "names and keys beginning with '_' are not allowed (`_a`)", 3),
    ("{{ a if _b else c }}", "names and keys beginning with '_' are not allowed (`_b`)", 8),
    ("{{ a if b else _c }}", "names and keys beginning with '_' are not allowed (`_c`)", 15),
    ("{{ _a | upper }}", "names and keys beginning with '_' are not allowed (`_a`)", 3),
    ("{{ a | replace(_b, 'c') }}", "names and keys beginning with '_' are not allowed (`_b`)", 15),
    ("{{ a | replace('b', new=_c) }}", "names and keys beginning with '_' are not allowed (`_c`)", 24),
    ("{{ _a is defined }}", "names and keys beginning with '_' are not allowed (`_a`)", 3),
    ("{{ a is eq(_b) }}", "names and keys beginning with '_' are not allowed (`_b`)", 11),
    ("{{ a is eq(x=_b) }}", "names and keys beginning with '_' are not allowed (`_b`)", 13),
    ("{{ dict }}", "`dict` is not available in expressions" + NAMES, 3),
    ("{{ varargs }}", "`varargs` is not available in expressions" + NAMES, 3),
    ("{{ kwargs }}", "`kwargs` is not available in expressions" + NAMES, 3),
    ("{{ caller }}", "`caller` is not available in expressions" + NAMES, 3),
    ("{{ super }}", "`super` is not available in expressions" + NAMES, 3),
    ("{{ range }}", "`range` is not available in expressions" + NAMES, 3),
    ("{{ environment }}", "`environment` is not available in expressions" + NAMES, 3),
    ("{{ context }}", "`context` is not available in expressions" + NAMES, 3),
    ("{{ lipsum }}", "`lipsum` is not available in expressions" + NAMES, 3),
    ("{{ 1.5e999 }}", "number too large", 3),
    ("{{ x | map('nosuch') }}", "filter `nosuch` is not allowed", 11),
    ("{{ x | map() }}", "`map` needs a constant filter name or `attribute='…'`", 7),
    ("{{ x | map(1) }}", "`map` needs a constant filter name or `attribute='…'`", 7),
    ("{{ x | map('replace', _a, 'b') }}", "names and keys beginning with '_' are not allowed (`_a`)", 22),
    ("{{ x | select(1) }}", "the test argument of `select` must be a constant test name", 14),
    ("{{ x | reject('odd', _a) }}", "names and keys beginning with '_' are not allowed (`_a`)", 21),
    ("{{ x | rejectattr('a', 1) }}", "the test argument of `rejectattr` must be a constant test name", 23),
    ("{{ x | unique(attribute='_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 24),
    ("{{ x | min(attribute='_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 21),
    ("{{ x | max(attribute='_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 21),
    ("{{ x | sum('_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 11),
    ("{{ x | join(',', '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 17),
    ("{{ x | sort(false, false, '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 26),
    ("{{ x | unique(false, '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 21),
    ("{{ x | min(false, '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 18),
    ("{{ x | sum(attribute='_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 21),
    ("{{ x | join(attribute='_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 22),
]


COMPILE_OK += [
    ("{{ x | max(false, 'a') }}", True, [("x", (), 3)], [("max", 7)]),
    ("{{ x | unique(attribute='a') }}", True, [("x", (), 3)], [("unique", 7)]),
    ("{{ x | sort(attribute='a') }}", True, [("x", (), 3)], [("sort", 7)]),
    ("{{ x | sort(false, false, 'a') }}", True, [("x", (), 3)], [("sort", 7)]),
    ("{{ x | selectattr('a') }}", True, [("x", (), 3)], [("selectattr", 7)]),
    ("{{ x | reject }}", True, [("x", (), 3)], [("reject", 7)]),
    ("{{ x | map('d', 1) }}", True, [("x", (), 3)], [("map", 7), ("d", 11)]),
    ("{{ x | map('map', 'upper') }}", True, [("x", (), 3)], [("map", 7), ("map", 11), ("upper", 18)]),
    ("{{ x | map(attribute=1) }}", True, [("x", (), 3)], [("map", 7)]),
    ("{{ x.a.b.c }}", True, [("x", ("a", "b", "c"), 3)], []),
    ("{{ x['a'][0]['b'] }}", True, [("x", ("a", 0, "b"), 3)], []),
    ("{{ x[y].a }}", True, [("x", (), 3), ("y", (), 5)], []),
    ("{{ x[y][0] }}", True, [("x", (), 3), ("y", (), 5)], []),
    ("{{ x[1.5] }}", True, [("x", (), 3)], []),
    ("{{ x[none] }}", True, [("x", (), 3)], []),
    ("{{ x[(1, 2)] }}", True, [("x", (), 3)], []),
    ("{{ x[[1]] }}", True, [("x", (), 3)], []),
    ("{{ x[y.z] }}", True, [("x", (), 3), ("y", ("z",), 5)], []),
    ("{{ x[-1].a }}", True, [("x", (), 3)], []),
    ("{{ (x.a)[0] }}", True, [("x", ("a", 0), 4)], []),
    ("{{ [x.a][0].b }}", True, [("x", ("a",), 4)], []),
    ("{{ x.a | upper }}", True, [("x", ("a",), 3)], [("upper", 9)]),
    ("{{ {'a': x.b}.a }}", True, [("x", ("b",), 9)], []),
]

COMPILE_REFUSED += [
    ("{{ x | max(false, '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 18),
    ("{{ x | selectattr('_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 18),
    ("{{ x | rejectattr('_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 18),
    ("{{ x | rejectattr }}", "`rejectattr` needs an attribute name", 7),
    ("{{ x | reject(1) }}", "the test argument of `reject` must be a constant test name", 14),
    ("{{ x | select('nosuch') }}", "test `nosuch` is not allowed" + TEST_LIST, 14),
    ("{{ x | reject('nosuch') }}", "test `nosuch` is not allowed" + TEST_LIST, 14),
    ("{{ x | map(attribute='a', default=1, zz=2, aa=3) }}", "`map` got an unexpected argument `aa`", 7),
    ("{{ x | map('default', _y) }}", "names and keys beginning with '_' are not allowed (`_y`)", 22),
    ("{{ x | map('join', ',', '_a') }}", "names and keys beginning with '_' are not allowed (`_a`)", 24),
    ("{{ x | map(attribute=params.a) }}", "the attribute argument of `map` must be a constant string", 21),
    ("{{ x | default(_a) }}", "names and keys beginning with '_' are not allowed (`_a`)", 15),
    ("{{ x | default(d=_a) }}", "names and keys beginning with '_' are not allowed (`_a`)", 17),
]

# every key after a dynamic subscript is still checked
COMPILE_REFUSED += [
    ("{{ x[y]._a }}", "names and keys beginning with '_' are not allowed (`_a`)", 7),
    ("{{ x[y].a._b }}", "names and keys beginning with '_' are not allowed (`_b`)", 9),
    ("{{ x[y][0]['_c'] }}", "names and keys beginning with '_' are not allowed (`_c`)", 11),
]

# Jinja's operator-named tests get the hint too; a closer right after its opener still closes it
COMPILE_REFUSED += [
    ("{{ x | select('==', 1) }}", "test `==` is not allowed; use `eq` (wpk keeps one name per test)", 14),
    ("{{ x | select('<=', 1) }}", "test `<=` is not allowed; use `le` (wpk keeps one name per test)", 14),
    ("{%%}", "statements ({% … %}) are not allowed: templates are {{ expressions }} only", 0),
    ("{#}#}", "comments ({# … #}) are not allowed: templates are {{ expressions }} only", 0),
]


@pytest.mark.parametrize(("text", "whole", "references", "filters"), COMPILE_OK)
def test_compiled_templates(
    text: str, whole: bool, references: list[tuple[str, tuple[str | int, ...], int]], filters: list[Any]
) -> None:
    compiled = compile_template(text)
    assert compiled.source == text
    assert compiled.whole is whole
    assert [(r.root, r.path, r.offset) for r in compiled.references] == references
    assert list(compiled.filters) == filters


@pytest.mark.parametrize(("text", "message", "offset"), COMPILE_REFUSED)
def test_compile_refusals(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(text)
    assert info.value.message == message
    assert info.value.offset == offset
    with pytest.raises(RenderError) as rendered:
        render(text)
    assert rendered.value.message == f"invalid template: {message}"


# -- run-time messages: undefined paths, secrets named never shown, long values cut ---------------

SCRUB_SCOPE: dict[str, Any] = {
    "params": {"m": {}, "l": [1], "s": "abc", "pw": "hunter2", "tup": (1, 2), "big": "k" * 2000},
    "secrets": {"tok": "hunter2", "q": "it's", "e": "", "n": 5, "long": "hunter2-longer", "nl": "a\nb"},
    "steps": {"a": {"outputs": {"x": 1}}},
}

RUNTIME_ROWS = [
    ("{{ params.m[secrets.tok] }}", "undefined: a mapping has no key <secrets.tok>"),
    ("{{ params.m[secrets.q] }}", "undefined: a mapping has no key <secrets.q>"),
    ("{{ params.m[secrets.nl] }}", "undefined: a mapping has no key <secrets.nl>"),
    ("{{ params.m[params.pw] }}", "undefined: a mapping has no key <secrets.tok>"),
    ("{{ params.m[secrets.long] }}", "undefined: a mapping has no key <secrets.long>"),
    ("{{ params.m[secrets.tok ~ '-longer'] }}", "undefined: a mapping has no key <secrets.long>"),
    ("{{ params.m[secrets.e] }}", "undefined: a mapping has no key ''"),
    ("{{ params.m[[secrets.tok]] }}", "undefined: a mapping has no key [<secrets.tok>]"),
    (
        "{{ params.m[params.big] }}",
        "undefined: a mapping has no key '" + "k" * 79 + "… (1922 more characters)",
    ),
    ("{{ params.l[5] }}", "undefined: params.l[5] (params.l has no item 5 (it has 1))"),
    ("{{ params.tup[5] }}", "undefined: params.tup[5] (params.tup has no item 5 (it has 2))"),
    ("{{ params.s[5] }}", "undefined: params.s[5] (params.s is a string, which has no key 5)"),
    ("{{ params.l['x'] }}", "undefined: params.l.x (params.l is a list, which has no key 'x')"),
    ("{{ params.m[1] }}", "undefined: params.m[1] (params.m has no key 1)"),
    ("{{ steps.a.outputs.y }}", "undefined: steps.a.outputs.y (steps.a.outputs has no key 'y')"),
    ("{{ steps['a'].outputs.y }}", "undefined: steps.a.outputs.y (steps.a.outputs has no key 'y')"),
    ("{{ steps.b }}", "undefined: steps.b (steps has no key 'b')"),
    (
        "{{ steps.a.outputs.x.y }}",
        "undefined: steps.a.outputs.x.y (steps.a.outputs.x is a int, which has no key 'y')",
    ),
    ("{{ params.l[0].y }}", "undefined: params.l[0].y (params.l[0] is a int, which has no key 'y')"),
    ("{{ params.m.a.b }}", "undefined: params.m.a (params.m has no key 'a')"),
    ("{{ params.m[params.l] }}", "undefined: a mapping has no key [1]"),
    ("{{ params.m['a b'] }}", "undefined: params.m['a b'] (params.m has no key 'a b')"),
    ("{{ params['m']['1x'] }}", "undefined: params.m['1x'] (params.m has no key '1x')"),
    ("{{ (params.m).z }}", "undefined: params.m.z (params.m has no key 'z')"),
    ("{{ [params.m][0].z }}", "undefined: a mapping has no key 'z'"),
    ("x {{ params.m.z | upper }}", "undefined: params.m.z (params.m has no key 'z')"),
    ("{{ {'a': 1}['a'].b }}", "undefined: a int is a int, which has no key 'b'"),
    ("{{ nosuch.a }}", "undefined: nosuch"),
    ("{{ [] | first }}", "No first item, sequence was empty."),
    ("{{ [1, 'a'] | sort }}", "type error: '<' not supported between instances of 'str' and 'int'"),
    ("{{ {'a': 1} | dictsort(by='nope') }}", 'You can only sort by either "key" or "value"'),
    ("{{ [1][::0] }}", "invalid value: slice step cannot be zero"),
    ("{{ 2 ** 4000 * 1.0 }}", "number too large: int too large to convert to float"),
    ("{{ params.s | fromjson }}", "fromjson: invalid JSON at character 0: Expecting value"),
]


@pytest.mark.parametrize(("text", "message"), RUNTIME_ROWS)
def test_runtime_messages(text: str, message: str) -> None:
    assert refused(text, SCRUB_SCOPE) == message


NO_KEY = "undefined: a mapping has no key"


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        # a value quoted in a message is replaced by the name of the secret it equals, in any quoting
        ({"params": {"m": {}, "k": 'a"b'}, "secrets": {"x": 'a"b'}}, f"{NO_KEY} <secrets.x>"),
        ({"params": {"m": {}, "k": "a\\b"}, "secrets": {"x": "a\\b"}}, f"{NO_KEY} <secrets.x>"),
        ({"params": {"m": {}, "k": "é"}, "secrets": {"x": "é"}}, f"{NO_KEY} <secrets.x>"),
        # only string secrets, and only a mapping of them, count
        ({"params": {"m": {}, "k": "5"}, "secrets": {"x": 5}}, "undefined: a mapping has no key '5'"),
        ({"params": {"m": {}, "k": "ab"}, "secrets": "ab"}, "undefined: a mapping has no key 'ab'"),
        ({"params": {"m": {}, "k": "ab"}, "secrets": {}}, "undefined: a mapping has no key 'ab'"),
    ],
)  # fmt: skip
def test_messages_name_secrets(scope: dict[str, Any], message: str) -> None:
    assert refused("{{ params.m[params.k] }}", scope) == message


def test_long_messages_are_cut() -> None:
    key = "k" * 2000
    shown = repr(key)
    full = (
        f"undefined: params.m.{key} (params.m has no key {shown[:80]}… ({len(shown) - 80} more characters))"
    )
    expected = full[:1000] + f"… ({len(full) - 1000} more characters)"
    assert refused("{{ params.m." + key + " }}", {"params": {"m": {}}}) == expected
    short = "k" * 900
    assert refused("{{ params.m." + short + " }}", {"params": {"m": {}}}).startswith(
        f"undefined: params.m.{short} ("
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 'abc' | upper }}x", "ABCx"),
        ("{{ 'a b' }}", "'a b'"),
        ("{{ 'a b' | shell_quote }}", "'a b'"),
        ("{{ [1, 'a b'] }}", "'[1, \"a b\"]'"),
        ("{{ 3 }}", "3"),
        ("{{ none }}", "null"),
    ],
)
def test_shell_mode(text: str, expected: str) -> None:
    assert render(text, shell=True) == expected


def test_objects_that_are_not_data() -> None:
    scope = {"x": object()}
    assert refused("{{ x }}", scope) == "a object value cannot be used as data"
    assert refused("x{{ x }}", scope) == "a object value cannot be used as data"


# -- where the validator points, and what it takes for a statement or a comment -------------------


@pytest.mark.parametrize(
    ("text", "references"),
    [
        ("a\r\n\r\nb{{ x }}{{ y }}", [("x", 9), ("y", 16)]),  # \r\n counts two characters
        ("a\rb{{ x }}", [("x", 6)]),
        ("a\nb{{ x }}", [("x", 6)]),
        ("{{ x }}\r\n{{ y }}", [("x", 3), ("y", 12)]),
        ("{{ x }}\r\n{{ y }}\r\n{{ z }}", [("x", 3), ("y", 12), ("z", 21)]),
        ("{{\r\n\r\nx }}", [("x", 6)]),  # just after two line breaks inside the expression
        ("{{ x\r\n}}", [("x", 3)]),  # just before one
    ],
)
def test_offsets_with_line_breaks(text: str, references: list[tuple[str, int]]) -> None:
    assert [(r.root, r.offset) for r in compile_template(text).references] == references


STATEMENTS = "statements ({% … %}) are not allowed: templates are {{ expressions }} only"
COMMENTS = "comments ({# … #}) are not allowed: templates are {{ expressions }} only"


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("{% if %}", STATEMENTS, 0),
        ("x {# y #}", COMMENTS, 2),
        ("{{ 1 }} {% {{ 2 }} %}", STATEMENTS, 8),
        ("{{ 1 }} {# {{ 2 }} #}", COMMENTS, 8),
        ("{% {{ 1 }}%}", STATEMENTS, 0),  # the closer at the very start of a later piece of text
        ("{# {{ 1 }}#}", COMMENTS, 0),
        ("a {{ 1 }}{% b %}", STATEMENTS, 9),
        # each \r\n before the statement counts as the two characters it is
        ("a\r\nb {% x %}", STATEMENTS, 5),
        ("a\r\n\r\nb {{ 1 }} {# x #}", COMMENTS, 15),
        # Jinja's own delimiters (behind a NUL nobody types) are refused as the tokens they make
        ("\x00{% if x %}\x00", STATEMENTS, 0),
        ("x\x00{% y", STATEMENTS, 1),
        ("\x00{# c #}\x00", COMMENTS, 0),
        (
            "\x00{% raw %}\x00x\x00{% endraw %}\x00",
            "raw blocks are not allowed: templates are {{ expressions }} only",
            0,
        ),
        ("{{ x }", "syntax error: unexpected '}'", 5),
        ("{{ }}", "syntax error: Expected an expression, got 'end of print statement'", 3),
        ("{{ 1 2 }}", "syntax error: expected token 'end of print statement', got 'integer'", 5),
        ("{{ 'a' | }}", "syntax error: expected token 'name', got 'end of print statement'", 9),
        ("\n\n{{ 1 +* 2 }}", "syntax error: unexpected '*'", 8),
        ("{{ x ", "syntax error: unexpected end of template, expected 'end of print statement'.", 3),
        ("{{ " + "9" * 5000 + " }}", "syntax error: number too large", 0),
        ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "expression nested too deeply", 0),
        ("{{ 1 if 2 }}", "an inline `if` needs an `else`: `a if cond else b`", 3),
    ],
)
def test_syntax_and_statement_refusals(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(text)
    assert (info.value.message, info.value.offset) == (message, offset)


@pytest.mark.parametrize(
    "text",
    ["x {% y", "x {# y", "a %} {% b", "a #} {# b", "{{ 1 }} {% x {{ 2 }} y", "{{ 1 }}{%", "{%}", "{#}"],
)
def test_openers_without_a_closer_after_them_are_text(text: str) -> None:
    assert not compile_template(text).whole
    assert render(text.replace("{{ 1 }}", "").replace("{{ 2 }}", "")) == text.replace("{{ 1 }}", "").replace(
        "{{ 2 }}", ""
    )


# -- operators, indexing, and how each kind of run-time failure reads -----------------------------

_DEEP_A: Any = 1
_DEEP_B: Any = 1
for _ in range(100_000):
    _DEEP_A, _DEEP_B = [_DEEP_A], [_DEEP_B]
OPS_SCOPE = {"params": {"a": _DEEP_A, "b": _DEEP_B, "m": {"k": 1}, "l": [1, 2]}}

OPERATOR_ROWS: list[tuple[str, Any, str | None]] = [
    ("{{ '<a>' }}x", "<a>x", None),  # no HTML escaping
    ("{{ 'a' ~ 1.5 ~ none }}", "a1.5null", None),
    ("{{ 1.5 }}x", "1.5x", None),
    ("{{ 'ab'[1] }}", "b", None),
    ("{{ 'abc'[1:] }}", "bc", None),
    ("{{ (1, 2)[1] }}", 2, None),
    ("{{ params.l[-1] }}", 2, None),
    ("{{ params.l[5:] }}", [], None),
    ("{{ params.l.0 }}", 1, None),
    ("{{ 7 / 2 }}", 3.5, None),
    ("{{ 7 // 2 }}", 3, None),
    ("{{ 7 ** 2 }}", 49, None),
    ("{{ 2 ** 0.5 }}", 2**0.5, None),
    ("{{ [1] * 2 }}", [1, 1], None),
    ("{{ 2 * [1] }}", [1, 1], None),
    ("{{ true * 'ab' }}", "ab", None),
    ("{{ 'ab' * false }}", "", None),
    ("{{ ('%d' % (2 ** 100)) | length }}", 31, None),
    ("{{ params.m | dictsort }}", [["k", 1]], None),
    ("{{ params.l | last }}", 2, None),
    ("{{ params.l | unique }}", [1, 2], None),
    ("{{ [[1, 2], [3, 4]] | join(',', 1) }}", "2,4", None),
    ("{{ [{'a': {'b': 1}}] | join(',', 'a.b') }}", "1", None),
    ("{{ [{'a': [5, 6]}] | join(',', 'a.1') }}", "6", None),
    ("{{ [{'a': [5, 6]}] | sum(attribute='a.1') }}", 6, None),
    ("{{ [[5, 6]] | sum(attribute=1) }}", 6, None),
    ("{{ params.l | sum(start=0.5) }}", 3.5, None),
    ("{{ params.l | select('in', [1, 5]) | list }}", [1], None),
    ("{{ ['a'] | select('in', {'a': 1}) | list }}", ["a"], None),
    ("{{ params.l | map('int') | list }}", [1, 2], None),
    ("{{ [{'x': 'A'}] | map(attribute='x') | map('lower') | list }}", ["a"], None),
    ("{{ params.a < params.b }}", None, "value nested too deeply"),
    ("{{ [params.a, params.b] | sort }}", None, "value nested too deeply"),
    ("{{ 10.0 ** 400 }}", None, "number too large: (34, 'Numerical result out of range')"),
    ("{{ '%c' % 99999999 }}", None, "number too large: %c arg not in range(0x110000)"),
    ("{{ '%(a)s' % {} }}", None, "KeyError: 'a'"),
    (
        "{{ params.l | dictsort }}",
        None,
        "error while rendering: AttributeError: 'list' object has no attribute 'items'",
    ),
    ("{{ [[1], [1]] | unique }}", None, "type error: unhashable type: 'list'"),
    ("{{ [] | last }}", None, "No last item, sequence was empty."),
    ("{{ -'a' }}", None, "type error: bad operand type for unary -: 'str'"),
    ("{{ +'a' }}", None, "type error: bad operand type for unary +: 'str'"),
    ("{{ 'ab' * 2.0 }}", None, "type error: can't multiply sequence by non-int of type 'float'"),
    ("{{ 'ab' + 1 }}", None, 'type error: can only concatenate str (not "int") to str'),
    ("{{ [1] + (2,) }}", None, 'type error: can only concatenate list (not "tuple") to list'),
    ("{{ 5 - 'a' }}", None, "type error: unsupported operand type(s) for -: 'int' and 'str'"),
    ("{{ 'ab' * 'x' }}", None, "type error: can't multiply sequence by non-int of type 'str'"),
    ("{{ [1] * none }}", None, "type error: can't multiply sequence by non-int of type 'NoneType'"),
    ("x{{ ['é'] }}", 'x["é"]', None),  # text is not ASCII-escaped
    ("{{ (-2) ** 4096 }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ (0 - 2 ** 4095) - 2 ** 4095 }}", None, too_large("an integer of about 4097 bits (limit 4096)")),
    ("{{ 2 ** 4095 * 2 }}", None, too_large("an integer of about 4098 bits (limit 4096)")),
    ("{{ params.l | join(',', 0) }}", None, "an item has no key 0"),
    (
        "{{ params.l | select('in', 'x') | list }}",
        None,
        "type error: 'in <string>' requires string as left operand, not int",
    ),
    ("{{ params.l | map(attribute='0') | list }}", None, "undefined: a int is a int, which has no key 0"),
]


@pytest.mark.parametrize(("text", "value", "error"), OPERATOR_ROWS)
def test_operators_and_failures(text: str, value: Any, error: str | None) -> None:
    if error is None:
        result = render(text, OPS_SCOPE)
        assert result == value
        assert type(result) is type(value)
    else:
        assert refused(text, OPS_SCOPE) == error


# -- what select and map charge per item ---------------------------------------------------------


def _with_budget_left(left: int, last: str, items: list[Any]) -> dict[str, Any]:
    """Render `last` after text renders that leave exactly `left` units of the render budget."""
    piece = 8 * 1024 * 1024
    scope = {"params": {"s": "a" * (piece - 1), "t": "a" * (piece - left - 1), "items": items}}
    tree = {
        "k0": "{{ params.s }}-",
        "k1": "{{ params.s }}-",
        "k2": "{{ params.s }}-",
        "k3": "{{ params.t }}-",
    }
    return render_value({**tree, "last": last}, scope)


@pytest.mark.parametrize(
    ("text", "item", "fits"),
    [
        # select charges one per item it keeps; the final `true` costs one more
        ("{{ (params.items | select('true') | length) > 0 }}", True, 999),
        ("{{ (params.items | reject('false') | length) > 0 }}", True, 999),
        # map charges one per item plus the item's size ('ab' is 3): 4 per item
        ("{{ (params.items | map(attribute='x') | length) > 0 }}", {"x": "ab"}, 249),
        # selectattr and rejectattr charge one per item kept, not its size
        ("{{ (params.items | selectattr('r') | length) > 0 }}", {"r": 1}, 999),
        ("{{ (params.items | rejectattr('r', 'eq', 2) | length) > 0 }}", {"r": 1}, 999),
    ],
)
def test_select_and_map_charge_each_item(text: str, item: Any, fits: int) -> None:
    assert _with_budget_left(1000, text, [item] * fits)["last"] is True
    with pytest.raises(RenderError) as info:
        _with_budget_left(1000, text, [item] * (fits + 1))
    assert info.value.message.startswith("rendered values too large")


# -- the budget, exactly (these build 8 MiB strings: last, so a mutant caught earlier stops sooner)


def test_template_length_limit_is_exact() -> None:
    limit = 256 * 1024
    assert limit == expressions.MAX_TEMPLATE_LENGTH
    text = "x" * (limit - 7) + "{{ 1 }}"
    assert not compile_template(text).whole
    with pytest.raises(ExpressionError) as info:
        compile_template("x" + text)
    assert info.value.message == f"template too long ({limit + 1} characters, limit {limit})"
    assert info.value.offset == 0


def test_concat_and_text_limits_are_exact() -> None:
    limit = 8 * 1024 * 1024
    assert limit == expressions.MAX_VALUE_SIZE
    scope = {"params": {"s": "a" * (limit - 1)}}
    assert len(render("{{ params.s ~ 'b' }}", scope)) == limit
    assert refused("{{ params.s ~ 'bc' }}", scope) == (
        f"`~` result too large: {limit + 1} characters or items (limit {limit})"
    )
    assert len(render("{{ params.s }}b", scope)) == limit
    assert refused("{{ params.s }}bc", scope) == f"rendered text too large (over {limit} characters)"


def test_render_budget_is_exact_and_shared_by_a_tree() -> None:
    budget = 32 * 1024 * 1024
    piece = 8 * 1024 * 1024
    scope = {"params": {"s": "a" * (piece - 1)}}
    tree = {f"k{i}": "{{ params.s }}-" for i in range(4)}  # 4 x 8 MiB: exactly the budget
    assert render_value(tree, scope) == {f"k{i}": "a" * (piece - 1) + "-" for i in range(4)}
    with pytest.raises(RenderError) as info:
        render_value({**tree, "more": "{{ 1 }}-"}, scope)
    assert info.value.message == f"rendered values too large (over {budget} size units in one render)"


def test_native_values_are_charged_to_the_budget() -> None:
    budget = 32 * 1024 * 1024
    piece = 8 * 1024 * 1024
    scope = {"params": {"s": "a" * (piece - 1)}}
    tree = {f"k{i}": "{{ params.s }}" for i in range(4)}  # each costs its length plus one
    assert render_value(tree, scope) == {f"k{i}": "a" * (piece - 1) for i in range(4)}
    with pytest.raises(RenderError) as info:
        render_value({**tree, "more": "{{ 1 }}"}, scope)
    assert info.value.message == f"rendered values too large (over {budget} size units in one render)"


def test_a_value_is_measured_past_the_remaining_budget() -> None:
    """The last value's walk goes one item past what is left, so it is refused, not let through."""
    piece = 8 * 1024 * 1024
    left = piece  # after three text renders of 8 MiB each
    # [z, x, y] is walked y, x, z: 4 for the list, 2 for 'y', then x brings it to exactly `left`
    value = ["z", "x" * (left - 7), "y"]
    scope = {"params": {"s": "a" * (piece - 1), "v": value}}
    tree: dict[str, Any] = {f"k{i}": "{{ params.s }}-" for i in range(3)}
    assert render_value({**tree, "v": "{{ params.v[1:] }}"}, scope)["v"] == value[1:]
    with pytest.raises(RenderError):
        render_value({**tree, "v": "{{ params.v }}"}, scope)


@pytest.mark.parametrize(
    "text",
    [
        "x{{ 'ab' | replace('a', 'b') }}",  # 'x' and 'bb' as text (3), and replace's result (2)
        "{{ 'ab' | replace('a', 'b') }}",  # 'bb' as a value (3), and replace's result (2)
    ],
)
def test_constant_expressions_are_computed_at_render_under_the_budget(text: str) -> None:
    """Jinja would fold `'ab' | replace(…)` while compiling, outside the budget (issue 9)."""
    assert _with_budget_left(5, text, [])["last"] == text.replace("{{ 'ab' | replace('a', 'b') }}", "bb")
    with pytest.raises(RenderError) as info:
        _with_budget_left(4, text, [])
    assert info.value.message.startswith("rendered values too large")


def test_huge_integers_from_the_scope() -> None:
    """Scope values are not built by arithmetic, so they can exceed the caps; they are still refused."""
    assert refused("{{ params.n ** 1 }}", {"params": {"n": 2**5000}}) == too_large(
        "an integer of about 5000 bits (limit 4096)"
    )
    message = refused("x{{ params.n }}", {"params": {"n": 10**5000}})
    assert message.startswith("cannot render value as text: Exceeds the limit (4300 digits)")


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        # the power's estimate, not its result, is what is refused: 4 ** 2049 would have 4099 bits
        ("{{ 4 ** 2049 }}", {}, too_large("an integer of about 4098 bits (limit 4096)")),
        # only `+` joins sequences: `-` on two long strings is a type error, not a size error
        (
            "{{ ('a' * 600000) - ('a' * 600000) }}",
            {},
            "type error: unsupported operand type(s) for -: 'str' and 'str'",
        ),
        # `%` of bytes from the scope is read as Latin-1 text to find its specs
        ("{{ (params.b % 1) | length }}", {"b": b"%d"}, 1),
        # '%f' of 1e308 is 316 characters, far past its estimate: the result itself is measured
        (
            "{{ (((params.f * 3164) ~ params.pad) % {'a': 1e308}) | length }}",
            {"f": "%(a)f", "pad": "p" * 176},
            1_000_000,
        ),
        (
            "{{ ((params.f * 3164) ~ params.pad) % {'a': 1e308} }}",
            {"f": "%(a)f", "pad": "p" * 177},
            too_large("a value of size 1000002 (limit 1000000)"),
        ),
    ],
)
def test_arithmetic_estimates_and_results(text: str, params: dict[str, Any], expected: Any) -> None:
    if isinstance(expected, str):
        assert refused(text, {"params": params}) == expected
    else:
        assert render(text, {"params": params}) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the path named is the reference that reached the missing key, not the first one read
        ("{{ (nosuch | default('')) ~ params.m.z }}", "undefined: params.m.z (params.m has no key 'z')"),
        (
            "{{ params.l[5] | default('d') ~ params.l[7] }}",
            "undefined: params.l[7] (params.l has no item 7 (it has 1))",
        ),
        ("{{ params.m.k.z ~ params.m.q }}", "undefined: params.m.k.z (params.m.k has no key 'z')"),
        ("{{ params.l[0][3] }}", "undefined: params.l[0][3] (params.l[0] has no item 3 (it has 1))"),
        ("{{ params.l[0].x }}", "undefined: params.l[0].x (params.l[0] is a list, which has no key 'x')"),
        ("{{ params.m['k'].z }}", "undefined: params.m.k.z (params.m.k has no key 'z')"),
        ("{{ params.m.k[0] }}", "undefined: params.m.k[0] (params.m.k has no key 0)"),
        ("{{ [params.m.k][0].z }}", "undefined: a mapping has no key 'z'"),
        ("{{ params.m[params.s].z }}", "undefined: a mapping has no key 'abc'"),
    ],
)
def test_which_path_an_undefined_names(text: str, message: str) -> None:
    scope = {"params": {"m": {"k": {}}, "l": [[1]], "s": "abc"}, "steps": {}}
    assert refused(text, scope) == message


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("{{ (params.s | b64encode) | length }}", {"s": "x" * 6291453}, 8388604),  # estimate 8388608
        (
            "{{ params.s | b64encode }}",
            {"s": "x" * 6291454},
            "b64encode result too large: 8388609 characters or items (limit 8388608)",
        ),
        (
            "{{ params.s | urlencode }}",
            {"s": "/" * 3000000},
            "urlencode result too large: 9000000 characters or items (limit 8388608)",
        ),
        (
            "{{ params.s | fromjson }}",
            {"s": "x" * (8388608 + 1)},
            "fromjson: text too long (8388609 characters, limit 8388608)",
        ),
        (
            "{{ params.s | fromjson }}",
            {"s": "x" * 8388608},
            "fromjson: invalid JSON at character 0: Expecting value",
        ),
        ("{{ params.s | b64decode }}", {"s": "!" * (8388608 + 1)}, "b64decode: text too long"),
        ("{{ params.s | b64decode }}", {"s": "!" * 8388608}, "b64decode: not valid base64"),
        (
            "{{ params.l | tojson }}",
            {"l": ["x" * 1000000] * 9},
            "tojson result too large: 9000036 characters or items (limit 8388608)",
        ),
        ("{{ (params.l | tojson(1)) | length }}", {"l": ["x" * 1000000] * 8}, 8000042),
        (
            "{{ params.l | string }}",
            {"l": ["x" * 1000000] * 9},
            "string result too large: 9000036 characters or items (limit 8388608)",
        ),
        (
            "{{ params.l | join(',') }}",
            {"l": ["x" * 999999] * 9},
            "join result too large: 8999999 characters or items (limit 8388608)",
        ),
        (
            "{{ params.s | replace('a', 'bbbbbbbbbb') }}",
            {"s": "a" * 999999},
            "replace result too large: 9999990 characters or items (limit 8388608)",
        ),
        (
            "{{ params.s | replace('a', 'bbbbbbbbbb', 900000) }}",
            {"s": "a" * 999999},
            "replace result too large: 9099999 characters or items (limit 8388608)",
        ),
        ("{{ (params.s | replace('a', 'bbbbbbbbbb', 10)) | length }}", {"s": "a" * 999999}, 1000089),
        (
            "{{ (params.s | replace('aa', 'b')) | length }}",
            {"s": "a" * 9000000},
            4500000,
        ),  # shrinking is fine
    ],
)
def test_filter_results_at_the_value_cap(text: str, params: dict[str, Any], expected: Any) -> None:
    if isinstance(expected, str):
        assert refused(text, {"params": params}) == expected
    else:
        assert render(text, {"params": params}) == expected


def test_indented_tojson_stops_past_the_cap() -> None:
    message = refused("{{ params.l | tojson(1) }}", {"params": {"l": ["x" * 1000000] * 9}})
    assert message.startswith("tojson result too large: ")


@pytest.mark.parametrize(
    ("shape", "deepest"),
    [
        ("{{ x[%s1] }}", 63),  # a dynamic subscript is one level down
        ("{{ [%s1][0] }}", 62),  # the object of a subscript that is not a name, then its items
        ("{{ 1 | default(%s1) }}", 63),  # a filter's argument
        ("{{ 1 | default(d=%s1) }}", 63),  # a filter's keyword argument
        ("{{ 1 is eq(%s1) }}", 63),  # a test's argument
        ("{{ [%s1] }}", 63),
        ("{{ (%s1) + 1 }}", 63),
        ("{{ 1 if (%s1) else 2 }}", 63),
        ("{{ x[1:%s1] }}", 62),  # a slice, then its bounds
        ("{{ (%s1) | abs }}", 63),  # a filter's value
        ("{{ (%s1) is odd }}", 63),  # a test's value
    ],
)
def test_nesting_limit_everywhere(shape: str, deepest: int) -> None:
    assert compile_template(shape % ("-" * deepest))
    with pytest.raises(ExpressionError) as info:
        compile_template(shape % ("-" * (deepest + 1)))
    assert info.value.message == "expression nested too deeply (more than 64 levels)"
