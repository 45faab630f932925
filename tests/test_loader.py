"""The loader's rules and positions, run against both event sources (libyaml and pure Python).

Every refusal is asserted as the exact one-line diagnostic an SRE would see, so a message or a
column that drifts is a failing test, not a silent change.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from wpk.engine import loader
from wpk.engine.loader import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    LoadError,
    Mark,
    SourceDoc,
    load_bytes,
    load_file,
    load_text,
)

BACKENDS = ["libyaml", "pure"] if loader._c_parser_factory() is not None else ["pure"]


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every test with the C parser (when PyYAML has it) and with the pure-Python fallback."""
    if request.param == "pure":
        monkeypatch.setattr(loader, "_make_parser", loader._PurePythonParser)
    else:
        factory = loader._c_parser_factory()
        assert factory is not None
        monkeypatch.setattr(loader, "_make_parser", factory)
    yield request.param


def refusal(text: str | bytes, **limits: Any) -> LoadError:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(LoadError) as info:
        load_bytes(data, "t.yaml", **limits)
    return info.value


def refused(text: str | bytes, **limits: Any) -> str:
    return str(refusal(text, **limits))


def load(text: str) -> Any:
    return load_text(text, "t.yaml").data


# ---------------------------------------------------------------------------------------------
# Positions

RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: restart-unhealthy
  labels: {service: payments, tier: "web"}
spec:
  steps:
    - id: check
      with: {kind: Deployment, name: "{{ params.deployment }}"}
    - id: restart
      needs: [check, 'other']
      description: |
        line one
        line two
      when: >-
        folded
      outputs:
        ready: plain multi
          line scalar
      empty:
"""


@pytest.fixture
def doc() -> SourceDoc:
    return load_text(RUNBOOK, "wpk.yaml")


def test_data_is_plain_json(doc: SourceDoc) -> None:
    assert doc.path == "wpk.yaml"
    assert doc.data == {
        "apiVersion": "wpk/v1",
        "kind": "Runbook",
        "metadata": {"name": "restart-unhealthy", "labels": {"service": "payments", "tier": "web"}},
        "spec": {
            "steps": [
                {"id": "check", "with": {"kind": "Deployment", "name": "{{ params.deployment }}"}},
                {
                    "id": "restart",
                    "needs": ["check", "other"],
                    "description": "line one\nline two\n",
                    "when": "folded",
                    "outputs": {"ready": "plain multi line scalar"},
                    "empty": None,
                },
            ]
        },
    }
    assert type(doc.data) is dict
    assert type(doc.data["spec"]["steps"]) is list


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("metadata", "name"), (4, 9), (4, 3)),  # block mapping value
        (("metadata", "labels"), (5, 11), (5, 3)),  # a flow mapping is at its "{"
        (("metadata", "labels", "tier"), (5, 37), (5, 31)),  # inside flow, quoted
        (("spec", "steps"), (8, 5), (7, 3)),  # a block sequence is at its first "-"
        (("spec", "steps", 0), (8, 7), (8, 7)),  # a block mapping is at its first key
        (("spec", "steps", 0, "with"), (9, 13), (9, 7)),
        (("spec", "steps", 0, "with", "name"), (9, 38), (9, 32)),
        (("spec", "steps", 1, "needs"), (11, 14), (11, 7)),
        (("spec", "steps", 1, "needs", 1), (11, 22), (11, 22)),  # list items have no key
        (("spec", "steps", 1, "description"), (12, 20), (12, 7)),  # a block scalar is at "|"
        (("spec", "steps", 1, "when"), (15, 13), (15, 7)),
        (("spec", "steps", 1, "outputs", "ready"), (18, 16), (18, 9)),  # multi-line plain
        (("spec", "steps", 1, "empty"), (20, 13), (20, 7)),  # empty value: just after ":"
    ],
)
def test_marks_of_values_and_keys(
    doc: SourceDoc, path: loader.PathT, value: tuple[int, int], key: tuple[int, int]
) -> None:
    assert doc.mark(path) == Mark(*value)
    assert doc.key_mark(path) == Mark(*key)


def test_missing_paths_fall_back_to_the_nearest_ancestor(doc: SourceDoc) -> None:
    assert doc.mark(()) == Mark(1, 1)
    assert doc.key_mark(()) == Mark(1, 1)
    assert doc.mark(("spec", "steps", 7)) == Mark(8, 5)
    assert doc.mark(("spec", "steps", -1)) == Mark(8, 5)  # no negative indexing
    assert doc.mark(("spec", "steps", "0")) == Mark(8, 5)  # a str is not a list index
    assert doc.mark(("spec", "steps", 0, "with", "name", "deeper")) == Mark(9, 38)
    assert doc.mark(("spec", "steps", 1, "needs", 0, 3)) == Mark(11, 15)
    assert doc.key_mark(("spec", "steps", 0, "with", "missing")) == Mark(9, 13)
    assert doc.mark(("nope",)) == Mark(1, 1)
    assert doc.mark(("spec", 0)) == Mark(7, 3)  # an int is not a mapping key


def test_scalar_style(doc: SourceDoc) -> None:
    assert doc.scalar_style(("metadata", "name")) is None
    assert doc.scalar_style(("metadata", "labels", "tier")) == '"'
    assert doc.scalar_style(("spec", "steps", 1, "needs", 0)) is None
    assert doc.scalar_style(("spec", "steps", 1, "needs", 1)) == "'"
    assert doc.scalar_style(("spec", "steps", 1, "description")) == "|"
    assert doc.scalar_style(("spec", "steps", 1, "when")) == ">"
    assert doc.scalar_style(("spec", "steps")) is None  # not a scalar
    assert doc.scalar_style(("spec", "steps", 9)) is None  # not there


def test_offset_inside_a_string_maps_to_a_column(doc: SourceDoc) -> None:
    """What the semantic checker relies on: value[i] sits at mark.col + i (+1 after a quote)."""
    path = ("spec", "steps", 0, "with", "name")
    value = doc.data["spec"]["steps"][0]["with"]["name"]
    offset = value.index("params")
    col = doc.mark(path).col + offset + (1 if doc.scalar_style(path) in ("'", '"') else 0)
    assert RUNBOOK.splitlines()[8][col - 1 : col - 1 + len("params")] == "params"


def test_columns_count_code_points_and_crlf_is_one_break() -> None:
    doc = load_text("ééé: 'ü'\r\nnext: [a, ✓, b]\r\n", "t.yaml")
    assert doc.data == {"ééé": "ü", "next": ["a", "✓", "b"]}
    assert doc.mark(("ééé",)) == Mark(1, 6)
    assert doc.mark(("next", 2)) == Mark(2, 14)
    assert doc.key_mark(("next",)) == Mark(2, 1)


def test_utf8_bom_is_skipped() -> None:
    doc = load_bytes(b"\xef\xbb\xbfname: x\n", "t.yaml")
    assert doc.data == {"name": "x"}
    assert doc.mark(("name",)) == Mark(1, 7)


def test_flow_mappings_inside_sequences_and_explicit_keys() -> None:
    doc = load_text("- [a: b]\n- ? k\n  : v\n", "t.yaml")
    assert doc.data == [[{"a": "b"}], {"k": "v"}]
    assert doc.mark((0, 0, "a")) == Mark(1, 7)
    assert doc.key_mark((1, "k")) == Mark(2, 5)
    assert doc.mark((1, "k")) == Mark(3, 5)


def test_root_may_be_any_json_value() -> None:
    assert load("[1, two]\n") == [1, "two"]
    assert load("just text\n") == "just text"
    assert load("~\n") is None
    assert load("--- |\n  block\n") == "block\n"


def test_from_data_has_no_positions() -> None:
    doc = SourceDoc.from_data({"a": [1]}, "<request>")
    assert doc.data == {"a": [1]}
    assert doc.path == "<request>"
    assert doc.mark(("a", 0)) == Mark(1, 1)
    assert doc.key_mark(("a",)) == Mark(1, 1)
    assert doc.scalar_style(("a", 0)) is None


# ---------------------------------------------------------------------------------------------
# YAML 1.2 core schema


def test_booleans_are_yaml_1_2() -> None:
    assert load("[true, True, TRUE, false, False, FALSE]") == [True, True, True, False, False, False]
    words = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF", "tRUE", "falsE"]
    assert load("[" + ", ".join(words) + "]") == words
    assert load("yes: 1\nno: 2\non: 3\noff: 4\n") == {"yes": 1, "no": 2, "on": 3, "off": 4}


def test_nulls() -> None:
    assert load("[null, Null, NULL, ~, nULL, '', 'null']") == [None, None, None, None, "nULL", "", "null"]
    assert load("a:\nb: ~\n") == {"a": None, "b": None}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-17", -17),
        ("+17", 17),
        ("0755", 755),  # YAML 1.2: decimal, not octal
        ("0o755", 0o755),
        ("0x1F", 31),
        ("0xff", 255),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("6.02E+23", 6.02e23),
        ("1:30", "1:30"),  # YAML 1.1 sexagesimal
        ("2001-12-14", "2001-12-14"),  # YAML 1.1 timestamp
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("-0x1F", "-0x1F"),
        ("0o8", "0o8"),
        ("1.2.3", "1.2.3"),
        ("1e", "1e"),
        (".", "."),
        ("-a", "-a"),
        ("+.5e-3", 0.0005),
        ("'12'", "12"),
        ('"true"', "true"),
        ("'~'", "~"),
        ('"0x1F"', "0x1F"),
        (".nAn", ".nAn"),
        ("inf", "inf"),
        ("NaN", "NaN"),
    ],
)
def test_scalar_resolution(text: str, value: Any) -> None:
    loaded = load(f"v: {text}\n")["v"]
    assert loaded == value
    assert type(loaded) is type(value)


def test_quoted_and_block_scalars_are_always_strings() -> None:
    assert load("a: '1'\nb: \"false\"\nc: |\n  12\nd: >\n  null\n") == {
        "a": "1",
        "b": "false",
        "c": "12\n",
        "d": "null\n",
    }


def test_hundred_digit_integers_are_fine() -> None:
    assert load("v: " + "9" * 100) == {"v": int("9" * 100)}
    assert load("v: -" + "1" * 100) == {"v": -int("1" * 100)}


# ---------------------------------------------------------------------------------------------
# Refusals, each one line pointing at the offending node


def test_duplicate_key_points_at_the_second_and_names_the_first() -> None:
    text = "apiVersion: wpk/v1\nsteps: 1\nkind: Runbook\nmeta:\n  a: 1\n\n  b: 2\nsteps: 3\n"
    assert refused(text) == "t.yaml:8:1: error: duplicate key 'steps' (first defined at line 2)"
    assert (
        refused("x:\n  a: 1\n  b: 2\n  a: 3\n")
        == "t.yaml:4:3: error: duplicate key 'a' (first defined at line 2)"
    )
    assert (
        refused("{a: 1, b: 2, 'a': 3}") == "t.yaml:1:14: error: duplicate key 'a' (first defined at line 1)"
    )
    assert refusal("{a: 1, a: 1}").diagnostic.code == "yaml-duplicate-key"


def test_same_key_in_different_mappings_is_fine() -> None:
    assert load("- id: a\n- id: b\n") == [{"id": "a"}, {"id": "b"}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "1: x\n",
            "1:1: error: mapping key 1 is read as a number, not a string (quote it to use it as text)",
        ),
        (
            "a: 1\n2.5: x\n",
            "2:1: error: mapping key 2.5 is read as a number, not a string (quote it to use it as text)",
        ),
        (
            "true: x\n",
            "1:1: error: mapping key true is read as a boolean, not a string (quote it to use it as text)",
        ),
        (
            "null: x\n",
            "1:1: error: mapping key null is read as null, not a string (quote it to use it as text)",
        ),
        ("~: x\n", "1:1: error: mapping key ~ is read as null, not a string (quote it to use it as text)"),
        ("a: 1\n? # c\n: x\n", "2:2: error: a mapping key is empty; keys must be strings"),
        ("[a]: x\n", "1:1: error: a mapping key must be a string, not a sequence"),
        ("? {a: b}\n: c\n", "1:3: error: a mapping key must be a string, not a mapping"),
        ("x:\n  ? - a\n  : c\n", "2:5: error: a mapping key must be a string, not a sequence"),
    ],
)
def test_non_string_keys(text: str, expected: str) -> None:
    error = refusal(text)
    assert str(error) == "t.yaml:" + expected
    assert error.diagnostic.code == "yaml-non-string-key"


def test_string_looking_keys_are_fine() -> None:
    assert load("yes: 1\n'1': 2\n\"true\": 3\nnull_value: 4\n") == {
        "yes": 1,
        "1": 2,
        "true": 3,
        "null_value": 4,
    }


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("evil: &a [x]\n", "1:7"),
        ("a: x\nb: *a\n", "2:4"),
        ("- &anchor value\n", "1:3"),
        ("{a: &x 1, b: *x}", "1:5"),
        ("&root\na: 1\n", "1:1"),
    ],
)
def test_anchors_and_aliases(text: str, where: str) -> None:
    error = refusal(text)
    assert str(error) == f"t.yaml:{where}: error: YAML anchors and aliases are not allowed in a runbook"
    assert error.diagnostic.code == "yaml-alias"


@pytest.mark.parametrize(
    ("text", "where", "tag"),
    [
        ("a: !!python/object/apply:os.system ['true']\n", "1:4", "!!python/object/apply:os.system"),
        ("a: !!binary aGk=\n", "1:4", "!!binary"),
        ("a: !!int 1\n", "1:4", "!!int"),
        ("a: !foo x\n", "1:4", "!foo"),
        ("a: ! x\n", "1:4", "!"),
        ("!!map {a: b}\n", "1:1", "!!map"),
        ("a:\n  - !!set {x}\n", "2:5", "!!set"),
        ("a: !<tag:example.com,2000:x> v\n", "1:4", "tag:example.com,2000:x"),
        ("%TAG !e! tag:example.com,2000:\n---\nk: !e!x v\n", "3:4", "tag:example.com,2000:x"),
    ],
)
def test_any_explicit_tag_is_refused(text: str, where: str, tag: str) -> None:
    # Every tag but `!!str` on a single value (tests/test_hardening_small.py).
    error = refusal(text)
    assert (
        str(error)
        == f"t.yaml:{where}: error: YAML tag '{tag}' is not allowed in a runbook (write plain data)"
    )
    assert error.diagnostic.code == "yaml-tag"


def test_multiple_documents() -> None:
    error = refusal("a: 1\n---\nb: 2\n")
    assert str(error) == (
        "t.yaml:2:1: error: a second YAML document starts here; a runbook file holds exactly one"
    )
    assert error.diagnostic.code == "yaml-multiple-documents"
    assert refused("--- a\n--- b\n").startswith("t.yaml:2:1: error: a second YAML document")
    assert refused("a: 1\n---\n").startswith("t.yaml:2:1: error: a second YAML document")


def test_explicit_single_document_markers_are_fine() -> None:
    assert load("---\na: 1\n...\n") == {"a": 1}
    assert load("%YAML 1.2\n---\na: 1\n") == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty (it holds no YAML document)"),
        ("\n\n   \n", "file is empty (it holds no YAML document)"),
        ("# only a comment\n# and another\n", "file is empty (it holds no YAML document)"),
        ("---\n", "file holds an empty YAML document"),
        ("--- # nothing\n...\n", "file holds an empty YAML document"),
    ],
)
def test_empty(text: str, message: str) -> None:
    error = refusal(text)
    assert str(error) == f"t.yaml:1:1: error: {message}"
    assert error.diagnostic.code == "yaml-empty"


@pytest.mark.parametrize(
    ("value", "where"),
    [(".nan", "1:4"), (".NaN", "1:4"), (".NAN", "1:4"), (".inf", "1:4"), ("-.Inf", "1:4"), ("+.INF", "1:4")],
)
def test_nan_and_infinity(value: str, where: str) -> None:
    error = refusal(f"v: {value}\n")
    assert str(error) == (
        f"t.yaml:{where}: error: {value} is not allowed: NaN and infinity are not data a runbook may hold"
        f" (quote it, '{value}', to keep it as text)"
    )
    assert error.diagnostic.code == "yaml-nan"


def test_float_overflow_is_infinity_and_refused() -> None:
    error = refusal("a: [1, 1e999]\n")
    assert (
        str(error) == "t.yaml:1:8: error: number 1e999 is out of range (infinity is not allowed in a runbook)"
    )
    assert error.diagnostic.code == "yaml-nan"


def test_quoted_nan_is_text() -> None:
    assert load("v: ['.nan', \".inf\"]") == {"v": [".nan", ".inf"]}


def test_long_numbers() -> None:
    error = refusal("a: 1\nb: " + "7" * 101 + "\n")
    assert str(error) == (
        "t.yaml:2:4: error: integer has 101 digits; at most 100 are allowed (quote it to keep it as text)"
    )
    assert error.diagnostic.code == "yaml-number-too-long"
    assert refused("b: 0x" + "f" * 101).startswith("t.yaml:1:4: error: integer has 101 digits")
    assert refused("b: 1." + "5" * 120) == (
        "t.yaml:1:4: error: number is 122 characters long; at most 100 are allowed"
        " (quote it to keep it as text)"
    )
    assert load("b: '" + "7" * 5000 + "'") == {"b": "7" * 5000}


def test_nesting_limit_counts_collections() -> None:
    assert load("[" * DEFAULT_MAX_DEPTH + "]" * DEFAULT_MAX_DEPTH) is not None
    error = refusal("[" * 65 + "]" * 65)
    assert str(error) == "t.yaml:1:65: error: nesting deeper than 64 levels"
    assert error.diagnostic.code == "yaml-too-deep"
    nested = "".join(" " * i + f"k{i}:\n" for i in range(5)) + "     - x\n"
    assert refused(nested, max_depth=5) == "t.yaml:6:6: error: nesting deeper than 5 levels"
    assert load_bytes(nested.encode(), "t.yaml", max_depth=6).data["k0"]["k1"]["k2"]["k3"]["k4"] == ["x"]


def test_size_limit_is_checked_first() -> None:
    data = b"\xff" * 11  # not UTF-8 either: the size wins
    error = refusal(data, max_bytes=10)
    assert str(error) == "t.yaml:1:1: error: file is 11 bytes, over the 10-byte limit"
    assert error.diagnostic.code == "yaml-too-large"
    assert load_bytes(b"a: 123456", "t.yaml", max_bytes=9).data == {"a": 123456}


def test_text_limit_is_on_utf8_length() -> None:
    text = "a: " + "é" * 4  # 7 code points, 11 bytes
    with pytest.raises(LoadError) as info:
        load_text(text, "api", max_bytes=10)
    assert str(info.value) == "api:1:1: error: content is 11 bytes, over the 10-byte limit"
    with pytest.raises(LoadError) as info:
        load_text("a: " + "x" * 20, "api", max_bytes=10)
    assert str(info.value) == "api:1:1: error: content is 23 bytes, over the 10-byte limit"
    assert load_text(text, "api", max_bytes=11).data == {"a": "éééé"}


def test_text_with_a_lone_surrogate() -> None:
    with pytest.raises(LoadError) as info:
        load_text("a: 1\nb: x\ud800\n", "api")
    assert str(info.value) == "api:2:5: error: text holds a lone surrogate U+D800"
    assert info.value.diagnostic.code == "yaml-encoding"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: \xff\n", "1:4: error: file is not valid UTF-8: invalid start byte (byte 0xff)"),
        (
            b"a: 1\nb: caf\xc3(\n",
            "2:7: error: file is not valid UTF-8: invalid continuation byte (byte 0xc3)",
        ),
        (b"a: \xc3\xa9\xc3", "1:5: error: file is not valid UTF-8: unexpected end of data (byte 0xc3)"),
        (b"a: \xed\xa0\x80\n", "1:4: error: file is not valid UTF-8: invalid continuation byte (byte 0xed)"),
        (b"a: \xc0\xaf\n", "1:4: error: file is not valid UTF-8: invalid start byte (byte 0xc0)"),
        (b"\xff\xfea\x00:\x00", "1:1: error: file is not valid UTF-8: invalid start byte (byte 0xff)"),
    ],
)
def test_not_utf8(data: bytes, expected: str) -> None:
    error = refusal(data)
    assert str(error) == "t.yaml:" + expected
    assert error.diagnostic.code == "yaml-encoding"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: 1\x00\n", "1:5: error: NUL U+0000 is not allowed in a runbook"),
        (b"a: 1\nb: '\x1b[31m'\n", "2:5: error: control character U+001B is not allowed in a runbook"),
        (b"a: x\r\nb: \x0c\n", "2:4: error: control character U+000C is not allowed in a runbook"),
        (b"a: x\rb: \x7f\n", "2:4: error: control character U+007F is not allowed in a runbook"),
        (b"a: \xc2\x85\n", "1:4: error: NEL (next line) U+0085 is not allowed in a runbook"),
        (b"a: x\xe2\x80\xa8y\n", "1:5: error: line separator U+2028 is not allowed in a runbook"),
        (b"a: \xef\xbf\xbe\n", "1:4: error: character U+FFFE is not allowed in a runbook"),
    ],
)
def test_control_characters(data: bytes, expected: str) -> None:
    error = refusal(data)
    hint = " (write it as an escape inside a double-quoted string)" if b"\x00" not in data else ""
    assert str(error) == "t.yaml:" + expected + hint
    assert error.diagnostic.code == "yaml-control-character"


def test_tabs_and_escapes_in_quoted_strings_are_fine() -> None:
    assert load('a: "x\\ty\\u0007"\nb: "\tq"\n') == {"a": "x\ty\x07", "b": "\tq"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: [1, 2\n", "2:1"),
        ("a: 'x\n", "2:1"),
        ("a: b: c\n", "1:5"),
        ("{a: 1}}\n", "1:7"),
        ("a: 1\n- b\n", "2:1"),
        ("{: x}\n", "1:2"),
        ("a: 1\n...\nb: 2\n", "3:1"),
        ("%YAML 2.0\n---\na: 1\n", "1:1"),
    ],
)
def test_syntax_errors_are_one_line_with_a_position(text: str, where: str) -> None:
    error = refusal(text)
    assert str(error).startswith(f"t.yaml:{where}: error: invalid YAML: ")
    assert "\n" not in str(error)
    assert error.diagnostic.code == "yaml-syntax"


def test_syntax_error_messages(backend: str) -> None:
    assert (
        refused("key: @x\n")
        == "t.yaml:1:6: error: invalid YAML: found character '@' that cannot start any token"
    )
    message = refused("a: [1, 2\n")
    assert message.endswith("(while parsing a flow sequence that started at line 1)")
    tab = refused("a: 1\n\tb: 2\n")
    assert tab.startswith("t.yaml:2:1: error: invalid YAML: found ")
    assert tab.endswith("; indent with spaces, YAML does not allow tabs there")


def test_load_error_is_one_diagnostic_and_pickles() -> None:
    error = refusal("a: 1\na: 2\n")
    d = error.diagnostic
    assert (d.path, d.line, d.col, d.code, str(d.severity)) == ("t.yaml", 2, 1, "yaml-duplicate-key", "error")
    assert str(error) == str(d)
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, LoadError)
    assert again.diagnostic == d


class ExplodingParser:
    """An event source that fails the way a parser might on input nobody foresaw."""

    error: BaseException = MemoryError()

    def __init__(self, text: str) -> None:
        self.text = text

    def get_event(self) -> object:
        raise self.error

    def dispose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), "1:1: error: could not parse YAML (MemoryError: )"),
        (
            RecursionError("maximum recursion depth exceeded"),
            "1:1: error: could not parse YAML (RecursionError: maximum recursion depth exceeded)",
        ),
        (ValueError("bad\nthing"), "1:1: error: could not parse YAML (ValueError: bad thing)"),
        (yaml.YAMLError("odd\n  problem"), "1:1: error: invalid YAML: odd problem"),
        (
            yaml.reader.ReaderError(
                "<unicode string>", 6, 0xFFFE, "utf-8", "special characters are not allowed"
            ),
            "2:2: error: unacceptable character: special characters are not allowed",
        ),
    ],
)
def test_unexpected_parser_failures_become_load_errors(
    exc: BaseException, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ExplodingParser, "error", exc)
    monkeypatch.setattr(loader, "_make_parser", ExplodingParser)
    assert refused("a: 1\nb: 2\n") == "t.yaml:" + expected


# ---------------------------------------------------------------------------------------------
# Files


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "wpk.yaml"
    path.write_text(RUNBOOK)
    doc = load_file(path)
    assert doc.path == str(path)
    assert doc.data["metadata"]["name"] == "restart-unhealthy"
    assert doc.mark(("metadata", "name")) == Mark(4, 9)
    shown = load_file(str(path), display_path="pkg/wpk.yaml")
    assert shown.path == "pkg/wpk.yaml"


def test_load_file_errors_use_the_display_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: 1\na: 2\n")
    with pytest.raises(LoadError) as info:
        load_file(path, display_path="bad.yaml")
    assert str(info.value) == "bad.yaml:2:1: error: duplicate key 'a' (first defined at line 1)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_file(tmp_path / "nope.yaml", display_path="nope.yaml")
    assert str(info.value) == "nope.yaml:1:1: error: cannot open file: No such file or directory"
    assert info.value.diagnostic.code == "yaml-unreadable"
    with pytest.raises(LoadError) as info:
        load_file(tmp_path, display_path="dir")
    assert str(info.value) == "dir:1:1: error: is a directory, not a file"


def test_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a: 1\n")
    with pytest.raises(LoadError) as info:
        load_file(tmp_path / "plain" / "wpk.yaml", display_path="plain/wpk.yaml")
    assert str(info.value) == "plain/wpk.yaml:1:1: error: cannot open file: Not a directory"


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * 100)
    with pytest.raises(LoadError) as info:
        load_file(path, display_path="big.yaml", max_bytes=50)
    assert str(info.value) == "big.yaml:1:1: error: file is 103 bytes, over the 50-byte limit"
    assert load_file(path, max_bytes=103).data == {"a": "x" * 100}


def test_defaults_match_the_design() -> None:
    assert DEFAULT_MAX_BYTES == 1024 * 1024
    assert DEFAULT_MAX_DEPTH == 64
