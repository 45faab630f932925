"""The plain-parameter check in front of jsonschema (engine/semantics.py `_plainly_valid`).

It only ever says "certainly valid": every value it accepts, jsonschema accepts too (a
differential property over generated schemas and values), and it does accept what runbooks
commonly declare, so validating their defaults needs no jsonschema at all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wpk.engine.schema import make_validator
from wpk.engine.semantics import _plainly_valid

numbers = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False), st.booleans())
texts = st.text(alphabet="ab-1 ", max_size=6)
values = st.recursive(
    st.one_of(numbers, texts, st.none()), lambda inner: st.lists(inner, max_size=4), max_leaves=8
)


@st.composite
def schemas(draw: Any, depth: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "array", None]))
    if kind is not None:
        schema["type"] = kind
    for key, strategy in (
        ("minLength", st.one_of(st.integers(0, 4), st.floats(0, 4))),
        ("maxLength", st.integers(0, 4)),
        ("pattern", st.sampled_from(["^a", "b$", "[0-9]", "^(a|b)+$", "("])),
        ("minimum", numbers),
        ("maximum", numbers),
        ("minItems", st.integers(0, 3)),
        ("maxItems", st.integers(0, 3)),
        ("uniqueItems", st.booleans()),
        ("enum", st.lists(st.one_of(numbers, texts), max_size=3)),
        ("format", st.just("hostname")),
        ("description", st.just("d")),
    ):
        if draw(st.booleans()) and draw(st.booleans()):
            schema[key] = draw(strategy)
    if depth == 0 and draw(st.booleans()):
        schema["items"] = draw(schemas(depth=1))
    return schema


@settings(max_examples=600, deadline=None)
@given(schemas(), values)
def test_what_it_accepts_jsonschema_accepts(schema: dict[str, Any], value: Any) -> None:
    if _plainly_valid(schema, value):
        assert not list(make_validator(schema).iter_errors(value)), (schema, value)


def test_it_accepts_what_runbooks_commonly_declare() -> None:
    common: list[tuple[dict[str, Any], Any]] = [
        ({"type": "string", "description": "d", "pattern": "^[a-z0-9-]+$", "maxLength": 63}, "web-1"),
        ({"type": "integer", "minimum": 1, "maximum": 100, "description": "d"}, 3),
        ({"type": "number", "minimum": 0.5}, 2.5),
        ({"type": "boolean"}, False),
        ({"type": "array", "items": {"type": "string", "minLength": 2}, "uniqueItems": True, "maxItems": 4},
         ["/tmp/a", "/tmp/b"]),
    ]  # fmt: skip
    for schema, value in common:
        assert _plainly_valid(schema, value), schema


def test_doubt_goes_to_jsonschema() -> None:
    unsure: list[tuple[dict[str, Any], Any]] = [
        ({"type": "integer"}, True),  # a bool is not an integer
        ({"type": "integer"}, 2.0),  # is one for JSON Schema: jsonschema says so, not this check
        ({"type": "string", "pattern": "^[a-z]+$"}, "Prod"),
        ({"type": "string", "pattern": "("}, "x"),  # an invalid pattern is reported, not passed
        ({"type": "string", "format": "hostname"}, "-bad-"),
        ({"type": "array", "items": {"type": "number"}, "uniqueItems": True}, [1, 1.0]),
        ({"type": ["string", "null"]}, None),
    ]
    for schema, value in unsure:
        assert not _plainly_valid(schema, value), (schema, value)
