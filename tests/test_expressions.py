"""The sandboxed expression language: what compiles, what renders, and what is refused."""

from __future__ import annotations

import re
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpk.engine.expressions import (
    ALLOWED_FILTERS,
    ALLOWED_TESTS,
    MAX_TEMPLATE_LENGTH,
    SCOPE_NAMES,
    CompiledTemplate,
    ExpressionError,
    Reference,
    RenderError,
    compile_template,
    is_template,
    render_template,
    render_value,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "expressions.md"


def make_scope() -> dict[str, Any]:
    return {
        "params": {
            "flag": True,
            "n": 3,
            "name": "web",
            "namespace_list": ["a", "b"],
            "evil": "x; touch f; $(touch g)",
            "looks_like_template": "{{ 7*7 }}",
            "items": "the param named items",
            "empty": "",
            "nested": {"a": {"b": [10, 20, 30]}},
            "pods": [
                {"name": "p1", "ready": True, "restarts": 3},
                {"name": "p2", "ready": False, "restarts": 0},
                {"name": "p3", "ready": True, "restarts": 1},
            ],
        },
        "secrets": {"token": "hunter2"},
        "steps": {"check": {"status": "completed", "outputs": {"ready": 1, "text": "{{ 1 + 1 }}"}}},
        "execution": {"id": "ex-1", "dry_run": False, "attempt": 1},
        "item": {"host": "db-1"},
        "index": 2,
    }


def render(text: str, **kwargs: Any) -> Any:
    return render_template(text, make_scope(), **kwargs)


# -- native values and text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 3 }}", 3),
        ("{{ params.flag }}", True),
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'a': 1, 'b': [true, none]} }}", {"a": 1, "b": [True, None]}),
        ("{{ none }}", None),
        ("{{ 2.5 }}", 2.5),
        ("{{ params.name }}", "web"),
        ("  {{ params.n + 1 }}\n", 4),  # surrounding whitespace still counts as "whole"
        ("{{- params.n -}}", 3),
        ("{{ (1, 2) }}", [1, 2]),  # tuples become lists: results are JSON-like data
        ("{{ params.pods | map(attribute='name') }}", ["p1", "p2", "p3"]),
        ("{{ steps.check.outputs.ready < params.n }}", True),
        ("{{ execution.dry_run }}", False),
        ("{{ index * 2 }}", 4),
        ("{{ params.nested.a.b[1] }}", 20),
        ("{{ params.nested.a.b.2 }}", 30),
    ],
)
def test_whole_template_keeps_native_type(text: str, expected: Any) -> None:
    assert compile_template(text).whole
    result = render(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("replicas: {{ params.n }}", "replicas: 3"),
        ("{{ params.n }}{{ params.n }}", "33"),
        ("flag={{ params.flag }} none={{ none }}", "flag=true none=null"),
        ("list={{ [1, 'a'] }}", 'list=[1, "a"]'),
        ("map={{ {'k': false} }}", 'map={"k": false}'),
        ("{{ 'a' ~ true ~ none ~ 1 }}x", "atruenull1x"),
        ("no template at all", "no template at all"),
        ("", ""),
        ("a\nb {{ params.name }}\n", "a\nb web\n"),  # the trailing newline is kept
    ],
)
def test_mixed_text_renders_a_string(text: str, expected: str) -> None:
    assert not compile_template(text).whole
    assert render(text) == expected


def test_concat_and_text_render_values_the_same_way() -> None:
    assert render("{{ 'x' ~ params.flag ~ [1] }}") == render("x{{ params.flag }}{{ [1] }}") == "xtrue[1]"


def test_attribute_access_reads_data_keys_not_python_attributes() -> None:
    assert render("{{ params.items }}") == "the param named items"  # not dict.items
    with pytest.raises(RenderError, match="has no key 'upper'"):
        render("{{ params.name.upper }}")
    with pytest.raises(RenderError, match=r"undefined: params\.keys"):
        render("{{ params.keys }}")


def test_is_template() -> None:
    assert is_template("a {{ b }}")
    assert not is_template("plain {% text")
    assert not is_template(42)
    assert not is_template(None)


def test_compile_is_cached() -> None:
    assert compile_template("{{ params.n }} cached") is compile_template("{{ params.n }} cached")


# -- references and filters ------------------------------------------------------------------------


def test_references_with_offsets() -> None:
    text = "{{ steps.a.outputs.x + params.n }}"
    compiled = compile_template(text)
    assert compiled.references == (
        Reference("steps", ("a", "outputs", "x"), 3),
        Reference("params", ("n",), text.index("params")),
    )


def test_reference_path_stops_at_first_dynamic_subscript() -> None:
    text = "{{ steps.a.outputs[params.key].z['k'][0] }}"
    refs = compile_template(text).references
    assert refs == (
        Reference("steps", ("a", "outputs"), 3),
        Reference("params", ("key",), text.index("params")),
    )


def test_reference_path_with_constant_keys_and_indexes() -> None:
    refs = compile_template("{{ steps['a'].outputs.items.0 + item[1] }}").references
    assert refs[0] == Reference("steps", ("a", "outputs", "items", 0), 3)
    assert refs[1].root == "item" and refs[1].path == (1,)


def test_references_everywhere_in_the_expression() -> None:
    text = "{{ (item.x if params.ok else result.y) | default(secrets.z) is in steps.s.outputs.l }}"
    roots = [(r.root, r.path, r.offset) for r in compile_template(text).references]
    assert roots == [
        ("item", ("x",), text.index("item")),
        ("params", ("ok",), text.index("params")),
        ("result", ("y",), text.index("result")),
        ("secrets", ("z",), text.index("secrets")),
        ("steps", ("s", "outputs", "l"), text.index("steps")),
    ]


def test_unknown_top_level_names_are_references_for_the_validator() -> None:
    assert compile_template("{{ paramz.x }}").references == (Reference("paramz", ("x",), 3),)


def test_offsets_count_characters_of_the_original_text_with_crlf() -> None:
    text = "line one\r\nline two {{ params.x }}\r\n{{ bad( }}"
    assert compile_template(text.rsplit("\r\n", 1)[0]).references[0].offset == text.index("params")
    with pytest.raises(ExpressionError) as info:
        compile_template("a\r\nb\r\n{{ x.__class__ }}")
    assert info.value.offset == len("a\r\nb\r\n{{ x")


def test_filters_listed_with_offsets() -> None:
    text = "echo {{ params.x | shell_unquoted }} {{ params.l | map('shell_unquoted') | join(' ') }}"
    filters = compile_template(text).filters
    assert ("shell_unquoted", text.index("shell_unquoted")) in filters
    assert [name for name, _ in filters].count("shell_unquoted") == 2
    assert ("map", text.index("map")) in filters
    assert ("join", text.index("join")) in filters


# -- refused at compile time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("{% for x in y %}{{ x }}{% endfor %}", "statements", 0),
        ("a {% if params.x %}b{% endif %}", "statements", 2),
        ("{% set x = 1 %}", "statements", 0),
        ("{% macro m() %}{% endmacro %}", "statements", 0),
        ("{% raw %}{{ x }}{% endraw %}", "statements", 0),
        ("{# comment #}", "comments", 0),
        ("x {{ 1 }} {# c #}", "comments", 10),
        ("{{ x.__class__ }}", "beginning with '_'", 4),
        ("{{ x['__globals__'] }}", "beginning with '_'", 5),
        ("{{ _private }}", "beginning with '_'", 3),
        ("{{ x|attr('__class__') }}", "filter `attr` is not allowed", 5),
        ("{{ x|map('attr', '__class__') }}", "filter `attr` is not allowed", 9),
        ("{{ x|map(attribute='a.__class__') }}", "beginning with '_'", 19),
        ("{{ x|sort(attribute='__dict__') }}", "beginning with '_'", 20),
        ("{{ x|sort(false, false, '__dict__') }}", "beginning with '_'", 24),
        ("{{ x|selectattr('_hidden') }}", "beginning with '_'", 16),
        ("{{ x|sort(attribute=params.a) }}", "must be a constant string", 20),
        ("{{ x|map(params.f) }}", "constant filter name", 5),
        ("{{ x|select(params.t) }}", "constant test name", 12),
        ("{{ x|select('callable') }}", "test `callable` is not allowed", 12),
        ("{{ x|map('format', 1) }}", "filter `format` is not allowed", 9),
        ("{{ x|map(*args) }}", "`*args`", 5),
        ("{{ range(10) }}", "function calls are not allowed", 3),
        ("{{ lipsum() }}", "function calls are not allowed", 3),
        ("{{ cycler }}", "`cycler` is not available", 3),
        ("{{ joiner }}", "`joiner` is not available", 3),
        ("{{ namespace }}", "`namespace` is not available", 3),
        ("{{ self }}", "`self` is not available", 3),
        ("{{ loop }}", "`loop` is not available", 3),
        ("{{ x.keys() }}", "method calls are not allowed", 3),
        ("{{ x|nosuchfilter }}", "filter `nosuchfilter` is not allowed", 5),
        ("{{ x is callable }}", "test `callable` is not allowed", 5),
        ("{{ x if y }}", "needs an `else`", 3),
        ("{{ x", "syntax error", 3),
        ("{{ 1 +* 2 }}", "syntax error", 6),
        ("{{ 'unterminated }}", "syntax error", 3),
    ],
)
def test_disallowed_constructs_are_refused_at_compile(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(text)
    assert message in info.value.message
    assert str(info.value) == info.value.message
    assert info.value.offset == offset


def test_lone_statement_and_comment_openers_are_plain_text() -> None:
    # bash's `${#arr[@]}` and printf's `{%s}` must not be taken for Jinja syntax.
    text = 'n=${#arr[@]}; printf "{%s}" {{ params.name }}'
    assert render(text) == 'n=${#arr[@]}; printf "{%s}" web'


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_template("{{ " + "(" * 400 + "1" + ")" * 400 + " }}")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_template("{{ 1" + " + 1" * 200 + " }}")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_template("{{ x" + ".a" * 200 + " }}")


def test_huge_literals_and_templates_are_refused() -> None:
    with pytest.raises(ExpressionError, match="number too large"):
        compile_template("{{ " + "9" * 5000 + " }}")
    with pytest.raises(ExpressionError, match="too long"):
        compile_template("x" * (MAX_TEMPLATE_LENGTH + 1) + "{{ 1 }}")


# -- caps ------------------------------------------------------------------------------------------


@pytest.mark.timing
@pytest.mark.parametrize(
    "text",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 10**9 * 'a' }}",
        "{{ 2 ** (10**9) }}",  # Jinja's ** is left-associative: 2 ** 10**9 is (2**10)**9, a small number
        "{{ 10 ** 100000 }}",
        "{{ (2 ** 4000) * (2 ** 4000) }}",
        "{{ [1] * 10**8 }}",
        "{{ ['abc'] * 999999 }}",  # few items, but large once joined
        "{{ '%999999999d' % 1 }}",
        "{{ '%.999999999f' % 1.5 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ ('%s' * 1000) % (('a' * 999999),) }}",
        "{{ ('a' * 999999) + ('a' * 999999) }}",
        "{{ ('a' * 999999) | replace('a', 'bbbbbbbbbb') }}",
        "{{ ('a' * 999999) | replace('', 'bbbbbbbbbb') }}",
        "{{ [" + ", ".join(["'x' * 999999"] * 9) + "] | join(',') }}",
        "{{ " + " ~ ".join(["('a' * 999999)"] * 9) + " }}",
        "{{ ('7' * 999999) | int }}",
        "{{ 2.5 | round(999999999) }}",
    ],
)
def test_caps_refuse_huge_results_before_building_them(text: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(RenderError, match=r"too large|too long|limit|precision"):
            render(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_results_just_under_the_caps_render() -> None:
    assert len(render("{{ 'a' * 1000000 }}")) == 1_000_000
    assert len(render("{{ [0] * 400000 }}")) == 400_000
    assert render("{{ 2 ** 4000 }}") == 2**4000
    assert render("{{ '%5d|%-3s|%.2f' % (42, 'ab', 1.5) }}") == "   42|ab |1.50"


def test_text_output_and_render_budget_are_capped() -> None:
    many = "{{ 'a' * 999999 }}" * 12
    with pytest.raises(RenderError, match="too large"):
        render(many)
    tree = {f"k{i}": "{{ 'a' * 999999 }}" for i in range(40)}
    with pytest.raises(RenderError, match="too large"):
        render_value(tree, make_scope())
    assert len(render_value({f"k{i}": "{{ 'a' * 999999 }}" for i in range(8)}, make_scope())) == 8


def test_quadratic_select_is_bounded_by_the_budget() -> None:
    with pytest.raises(RenderError, match="too large"):
        render("{{ (['a'] * 999999) | select('in', ['b'] * 999999) | list }}")


def test_string_tests_cannot_smuggle_percent_formatting() -> None:
    with pytest.raises(RenderError, match="needs a number"):
        render("{{ '%999999999d' is even }}")


# -- single pass -----------------------------------------------------------------------------------


def test_values_are_never_rendered_twice() -> None:
    assert render("{{ params.looks_like_template }}") == "{{ 7*7 }}"
    assert render("value: {{ params.looks_like_template }}") == "value: {{ 7*7 }}"
    assert render("{{ steps.check.outputs.text | upper }}") == "{{ 1 + 1 }}"
    tree = {"a": "{{ params.looks_like_template }}", "b": ["{{ params.looks_like_template }}!"]}
    assert render_value(tree, make_scope()) == {"a": "{{ 7*7 }}", "b": ["{{ 7*7 }}!"]}


# -- shell quoting ---------------------------------------------------------------------------------


def test_shell_mode_quotes_every_interpolation(tmp_path: Path) -> None:
    command = render("echo {{ params.evil }}", shell=True)
    assert command == "echo 'x; touch f; $(touch g)'"
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout == "x; touch f; $(touch g)\n"
    assert list(tmp_path.iterdir()) == []


def test_shell_unquoted_inserts_raw_text(tmp_path: Path) -> None:
    command = render("echo {{ params.evil | shell_unquoted }}", shell=True)
    assert command == "echo x; touch f; $(touch g)"
    subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "g"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kubectl get ns {{ params.name }}", "kubectl get ns web"),  # safe words stay as they are
        ("{{ params.evil }}", "'x; touch f; $(touch g)'"),  # even a whole template is a quoted string
        ("{{ params.n }}", "3"),
        ("rm -rf -- {{ params.empty }}/", "rm -rf -- ''/"),
        ("echo {{ params.namespace_list }}", 'echo \'["a", "b"]\''),
        ("echo {{ params.evil | shell_quote }}", "echo 'x; touch f; $(touch g)'"),  # not quoted twice
        ("echo {{ params.namespace_list | join(' ') }}", "echo 'a b'"),
        ("echo {{ params.namespace_list | map('shell_quote') | join(' ') | shell_unquoted }}", "echo a b"),
        ("echo {{ 'it''s' }}", "echo its"),  # adjacent literals join: 'it' 's' is "its"
        ('echo {{ "it\'s" }}', "echo 'it'\"'\"'s'"),
        ("echo {{ params.evil | shell_unquoted | upper }}", "echo 'X; TOUCH F; $(TOUCH G)'"),
        ("plain ${HOME}", "plain ${HOME}"),
    ],
)
def test_shell_quoting_cases(text: str, expected: str) -> None:
    assert render(text, shell=True) == expected


def test_shell_unquoted_marker_does_not_survive_into_data() -> None:
    value = render("{{ params.evil | shell_unquoted }}")
    assert value == "x; touch f; $(touch g)"
    assert type(value) is str
    assert render_template("echo {{ v }}", {"v": value}, shell=True) == "echo 'x; touch f; $(touch g)'"


def test_render_value_in_shell_mode_quotes_templates_only() -> None:
    tree = {"command": "ls {{ params.evil }}", "plain": "a b; c"}
    assert render_value(tree, make_scope(), shell=True) == {
        "command": "ls 'x; touch f; $(touch g)'",
        "plain": "a b; c",
    }


# -- undefined values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ params.namespace }}", "undefined: params.namespace (params has no key 'namespace')"),
        ("{{ steps.check.outputs.foo }}", "steps.check.outputs has no key 'foo'"),
        ("x {{ steps.check.outputs.foo | upper }}", "steps.check.outputs has no key 'foo'"),
        ("{{ steps.nope.outputs.x }}", "undefined: steps.nope (steps has no key 'nope')"),
        ("{{ nothing }}", "undefined: nothing"),
        ("{{ params.nested.a.b[7] }}", "params.nested.a.b has no item 7 (it has 3)"),
        ("{{ params.missing + 1 }}", "undefined: params.missing"),
        ("{{ [params.missing] }}", "undefined: params.missing"),
        ("{{ 'a' ~ params.missing }}", "undefined: params.missing"),
        ("{{ params.missing is even }}", "undefined: params.missing"),
        ("{{ params.x | default(1) + params.missing }}", "undefined: params.missing"),
        ("{{ [] | first }}", "No first item"),
    ],
)
def test_undefined_names_the_missing_path(text: str, message: str) -> None:
    with pytest.raises(RenderError) as info:
        render(text)
    assert message in info.value.message


def test_missing_values_with_default_and_defined() -> None:
    assert render("{{ steps.nope.outputs.x.y | default('fallback') }}") == "fallback"
    assert render("{{ params.missing is defined }}") is False
    assert render("{{ params.name is defined }}") is True
    assert render("{{ params.missing | d(none) }}") is None


def test_secrets_render_like_any_value() -> None:
    # Redaction of secret values happens where text leaves the engine (logs, events, outputs).
    assert render("Bearer {{ secrets.token }}") == "Bearer hunter2"
    assert render("{{ secrets.token }}") == "hunter2"


# -- filters and tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ -3 | abs }}", 3),
        ("{{ 'Yes' | bool }}", True),
        ("{{ 'off' | bool }}", False),
        ("{{ 0 | bool }}", False),
        ("{{ 'hello world' | capitalize }}", "Hello world"),
        ("{{ params.pods | count }}", 3),
        ("{{ {'b': 1, 'a': 2} | dictsort }}", [["a", 2], ["b", 1]]),
        ("{{ params.namespace_list | first }}", "a"),
        ("{{ params.namespace_list | last }}", "b"),
        ("{{ '2.5' | float }}", 2.5),
        ("{{ '42' | int }}", 42),
        ("{{ 'ff' | int(0, 16) }}", 255),
        ("{{ 'nope' | int }}", 0),
        ("{{ {'a': 1} | items }}", [["a", 1]]),
        ("{{ [1, 'a', true] | join(',') }}", "1,a,true"),
        ("{{ params.pods | join(' ', attribute='name') }}", "p1 p2 p3"),
        ("{{ {'a': 1, 'b': 2} | keys }}", ["a", "b"]),
        ("{{ {'a': 1, 'b': 2} | values }}", [1, 2]),
        ("{{ 'abc' | length }}", 3),
        ("{{ 'ab' | list }}", ["a", "b"]),
        ("{{ 'AbC' | lower }}", "abc"),
        ("{{ 'abc' | upper }}", "ABC"),
        ("{{ 'hello world' | title }}", "Hello World"),
        ("{{ '  x  ' | trim }}", "x"),
        ("{{ 'xxaxx' | trim('x') }}", "a"),
        ("{{ [3, 1, 2] | max }}", 3),
        ("{{ [3, 1, 2] | min }}", 1),
        (
            "{{ params.pods | max(attribute='restarts') | string }}",
            '{"name": "p1", "ready": true, "restarts": 3}',
        ),
        ("{{ 'a-b-a' | replace('a', 'x') }}", "x-b-x"),
        ("{{ 'a-b-a' | replace('a', 'x', 1) }}", "x-b-a"),
        ("{{ [1, 2, 3] | reverse }}", [3, 2, 1]),
        ("{{ 'abc' | reverse }}", "cba"),
        ("{{ 2.567 | round(2) }}", 2.57),
        ("{{ 2.5 | round(0, 'floor') }}", 2.0),
        ("{{ [3, 1, 2] | sort }}", [1, 2, 3]),
        ("{{ params.pods | sort(attribute='restarts') | map(attribute='name') }}", ["p2", "p3", "p1"]),
        ("{{ 12 | string }}", "12"),
        ("{{ true | string }}", "true"),
        ("{{ [1, 2, 3] | sum }}", 6),
        ("{{ params.pods | sum(attribute='restarts') }}", 4),
        ("{{ [1, 2, 1, 3] | unique }}", [1, 2, 3]),
        ("{{ {'a': [1, none]} | tojson }}", '{"a": [1, null]}'),
        ("{{ {'a': 1} | to_json(2) }}", '{\n  "a": 1\n}'),
        ("{{ '{\"a\": [1, 2]}' | fromjson }}", {"a": [1, 2]}),
        ("{{ '[true]' | from_json }}", [True]),
        ("{{ 'héllo' | b64encode }}", "aMOpbGxv"),
        ("{{ 'aMOpbGxv' | b64decode }}", "héllo"),
        ("{{ [1, 2, 3, 4] | select('even') }}", [2, 4]),
        ("{{ [1, 2, 3, 4] | reject('odd') }}", [2, 4]),
        ("{{ [1, 2, 3, 4] | select('divisibleby', 3) | length }}", 1),
        ("{{ params.pods | selectattr('ready') | map(attribute='name') }}", ["p1", "p3"]),
        ("{{ params.pods | rejectattr('ready') | map(attribute='name') }}", ["p2"]),
        ("{{ params.pods | selectattr('restarts', 'gt', 0) | length }}", 2),
        ("{{ ['a', 'b'] | map('upper') }}", ["A", "B"]),
        ("{{ params.pods | map(attribute='missing', default='-') }}", ["-", "-", "-"]),
        ("{{ 'a,b,,c' | split(',') }}", ["a", "b", "", "c"]),
        ("{{ 'a b  c' | split }}", ["a", "b", "c"]),
        ('{{ "it\'s" | shell_quote }}', "'it'\"'\"'s'"),
        ("{{ params.missing | default('d') }}", "d"),
        ("{{ '' | default('d', true) }}", "d"),
    ],
)
def test_filters(text: str, expected: Any) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ params.name is defined }}", True),
        ("{{ params.nope is undefined }}", True),
        ("{{ none is none }}", True),
        ("{{ true is boolean }}", True),
        ("{{ 1.5 is number }}", True),
        ("{{ 1 is integer }}", True),
        ("{{ 1.0 is float }}", True),
        ("{{ 'x' is string }}", True),
        ("{{ params is mapping }}", True),
        ("{{ params.pods is sequence }}", True),
        ("{{ 'a' is in ['a'] }}", True),
        ("{{ 2 is eq 2 }}", True),
        ("{{ 2 is ne 2 }}", False),
        ("{{ 1 is lt 2 }}", True),
        ("{{ 2 is le 2 }}", True),
        ("{{ 3 is gt 2 }}", True),
        ("{{ 2 is ge 3 }}", False),
        ("{{ 4 is even }}", True),
        ("{{ 3 is odd }}", True),
        ("{{ 9 is divisibleby 3 }}", True),
        ("{{ true is true }}", True),
        ("{{ 0 is false }}", False),
        ("{{ 'b' not in 'abc' }}", False),
        ("{{ 1 < 2 and not (3 == 4) or false }}", True),
        ("{{ 'x' if params.flag else 'y' }}", "x"),
        ("{{ params.namespace_list[-1] ~ params.name[1:] }}", "beb"),
        ("{{ 7 // 2 }}{{ 7 % 2 }}{{ 7 / 2 }}{{ -(2) }}{{ +2 }}", "313.5-22"),
    ],
)
def test_tests_and_operators(text: str, expected: Any) -> None:
    assert render(text) == expected


def test_allowed_names_match_the_documented_contract() -> None:
    required_filters = {
        "abs", "bool", "capitalize", "default", "d", "dictsort", "first", "float", "int", "items",
        "join", "last", "length", "count", "list", "lower", "upper", "max", "min", "replace",
        "reverse", "round", "sort", "string", "sum", "title", "trim", "unique", "tojson", "fromjson",
        "b64encode", "b64decode", "keys", "values", "select", "reject", "selectattr", "rejectattr",
        "map", "shell_quote", "shell_unquoted",
    }  # fmt: skip
    assert required_filters <= ALLOWED_FILTERS
    assert {
        "defined", "undefined", "none", "boolean", "number", "integer", "float", "string", "mapping",
        "sequence", "in", "eq", "ne", "lt", "le", "gt", "ge", "even", "odd", "divisibleby", "true",
        "false",
    } == ALLOWED_TESTS  # fmt: skip
    assert {"params", "secrets", "steps", "item", "index", "execution", "result"} == SCOPE_NAMES
    assert "attr" not in ALLOWED_FILTERS and "format" not in ALLOWED_FILTERS


def test_every_filter_and_test_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for name in sorted(ALLOWED_FILTERS | ALLOWED_TESTS):
        assert re.search(rf"`{name}[`(]", docs), name


# -- errors are RenderError only -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ 1 + 'a' }}", "type error"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ 1 // 0 }}", "division by zero"),
        ("{{ 'x' | fromjson }}", "invalid JSON"),
        ("{{ 'NaN' | fromjson }}", "not valid JSON"),
        ("{{ ('[' * 5000) | fromjson }}", "JSON"),
        ("{{ '!!' | b64decode }}", "not valid base64"),
        ("{{ '//79' | b64decode }}", "not UTF-8"),
        ("{{ 'maybe' | bool }}", "boolean"),
        ("{{ 1e308 * 10 }}", "finite"),
        ("{{ (1e308 * 10) | tojson }}", "finite"),
        ("{{ ['a', 1] | sum }}", "sum needs numbers"),
        ("{{ 3 | items }}", "needs a mapping"),
        ("{{ 3 | length }}", "type error"),
        ("{{ [1][::0] }}", "invalid value"),
        ("{{ 2 ** 4000 * 1.0 }}", "too large"),
        ("{{ {'a': 1} | dictsort(by='nope') }}", "key"),
        ("{{ 1.5 | round(2, 'sideways') }}", "method"),
        ("{{ 'a' | split('') }}", "empty separator"),
        ("{{ [1] | join(none) }}", "separator must be a string"),
    ],
)
def test_runtime_failures_are_render_errors(text: str, message: str) -> None:
    with pytest.raises(RenderError) as info:
        render(text)
    assert message in info.value.message


def test_render_of_invalid_text_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="invalid template"):
        render_template("{{ x.__class__ }}", {})


# -- render_value ----------------------------------------------------------------------------------


def test_render_value_walks_the_tree_without_rendering_keys() -> None:
    tree = {
        "{{ params.name }}": "{{ params.n }}",
        "list": ["{{ params.flag }}", "n={{ params.n }}", 5, None, {"deep": "{{ item.host }}"}],
        "plain": "no template",
        "number": 1.5,
    }
    original = repr(tree)
    result = render_value(tree, make_scope())
    assert result == {
        "{{ params.name }}": 3,
        "list": [True, "n=3", 5, None, {"deep": "db-1"}],
        "plain": "no template",
        "number": 1.5,
    }
    assert repr(tree) == original  # the input tree is left as it was
    assert result["list"] is not tree["list"]


def test_render_value_of_a_scalar() -> None:
    assert render_value("{{ params.n * 2 }}", make_scope()) == 6
    assert render_value(7, make_scope()) == 7


# -- properties --------------------------------------------------------------------------------------

_ATOMS = [
    "1", "0", "-3", "2.5", "'ab'", "'%d%s'", "''", "true", "none", "[1, 'x', none]", "{'k': [1]}",
    "params", "params.n", "params.name", "params.pods", "params.nested", "params.missing", "steps",
    "item", "x", "'a' * 999999", "10 ** 1000", "[0] * 999999", "params.pods[0]",
]  # fmt: skip
_OPERATORS = [
    " + ",
    " - ",
    " * ",
    " / ",
    " // ",
    " % ",
    " ** ",
    " ~ ",
    " and ",
    " or ",
    " == ",
    " < ",
    " in ",
]
_FILTER_USES = sorted(ALLOWED_FILTERS - {"map", "select", "reject", "selectattr", "rejectattr"}) + [
    "map('string')", "map(attribute='name')", "select('odd')", "reject('in', [1])",
    "selectattr('ready', 'eq', 1)", "join(',')", "replace('a', 'bb')", "default(1)", "round(2)",
    "tojson(2)", "sort(attribute='name')", "int(0, 16)", "split(',')", "trim('x')",
]  # fmt: skip
_TEST_USES = sorted(ALLOWED_TESTS - {"in", "divisibleby", "eq", "ne", "lt", "le", "gt", "ge"}) + [
    "in [1]", "divisibleby 3", "eq 1", "lt 'a'",
]  # fmt: skip


def _extend(sub: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(sub, st.sampled_from(_OPERATORS), sub).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(sub, st.sampled_from(_FILTER_USES)).map(lambda t: f"{t[0]} | {t[1]}"),
        st.tuples(sub, st.sampled_from(_TEST_USES)).map(lambda t: f"({t[0]} is {t[1]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(sub, sub).map(lambda t: f"[{t[0]}, {t[1]}]"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]})[{t[1]}]"),
        sub.map(lambda s: f"(not {s})"),
        sub.map(lambda s: f"(-{s})"),
        sub.map(lambda s: f"({s})[1:]"),
    )


_EXPRESSIONS = st.recursive(st.sampled_from(_ATOMS), _extend, max_leaves=6)
_FRAGMENTS = st.sampled_from(
    list("{}%#()[]'\"|.~+-*/<>=!,: _ax0129\n\r\t\\")
    + ["{{", "}}", "{%", "%}", "{#", "#}", "params", "|upper", "**", " if ", " else ", " is ", "map("]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.lists(_FRAGMENTS, max_size=30).map("".join)))
def test_compile_arbitrary_text_raises_only_expression_error(text: str) -> None:
    try:
        compiled = compile_template(text)
    except ExpressionError as exc:
        assert 0 <= exc.offset <= len(text)
        assert exc.message
        return
    assert isinstance(compiled, CompiledTemplate)
    for ref in compiled.references:
        assert text[ref.offset :].startswith(ref.root)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EXPRESSIONS, st.sampled_from(["{{ %s }}", "a {{ %s }} b"]), st.booleans())
def test_rendering_compiled_templates_raises_only_render_error(
    expression: str, shape: str, shell: bool
) -> None:
    text = shape % expression
    try:
        compiled = compile_template(text)
    except ExpressionError:
        return  # e.g. a constant expression Jinja already knows will fail
    try:
        result = render_template(compiled, make_scope(), shell=shell)
    except RenderError as exc:
        assert exc.message
        return
    if shell or not compiled.whole:
        assert isinstance(result, str)
