"""Property: whatever text arrives, the validator returns diagnostics and never raises.

Inputs are random text, random JSON-like documents dropped into a runbook's places, and the
example runbooks mutated line by line (deleted, duplicated, re-indented, characters swapped).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpk.engine.validate import validate_bytes, validate_data, validate_text

EXAMPLES = [p.read_text() for p in sorted(Path(__file__).resolve().parent.parent.glob("examples/*/wpk.yaml"))]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(result: object) -> None:
    from wpk.engine.validate import ValidationResult

    assert isinstance(result, ValidationResult)
    for d in result.diagnostics:
        assert d.line >= 0 and d.col >= 0 and d.message


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    _check(validate_bytes(data, "fuzz.yaml"))


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("{}[]:-,'\"!&*#|>? \n\tabc1{%}")), max_size=400))
def test_yaml_punctuation_soup(text: str) -> None:
    _check(validate_text(text, "fuzz.yaml"))


TRICKY = ["{{ params.x }}", "{{ steps.a.outputs }}", "{{ ''.__class__ }}", "{% if %}", "5m", "core.noop"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars | st.sampled_from(TRICKY),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(
    st.sampled_from(
        ["spec", "metadata", "steps", "params", "with", "needs", "when", "for_each", "outputs", "rollback"]
    ),
    json_values,
)
def test_random_values_in_a_runbook_shape(place: str, value: object) -> None:
    doc: dict[str, object] = {
        "apiVersion": "wpk/v1",
        "kind": "Runbook",
        "metadata": {"name": "f", "version": "1.0.0"},
        "spec": {"params": {"x": {"type": "string", "default": "a"}},
                 "steps": [{"id": "a", "uses": "core.echo", "with": {"message": "hi"}}]},
    }  # fmt: skip
    spec = doc["spec"]
    assert isinstance(spec, dict)
    step = spec["steps"][0]
    if place in ("spec", "metadata"):
        doc[place] = value
    elif place in ("steps", "params"):
        spec[place] = value
    else:
        step[place] = value
    _check(validate_data(json.loads(json.dumps(doc))))
    _check(validate_text(json.dumps(doc), "fuzz.json"))


@SETTINGS
@given(
    st.sampled_from(range(len(EXAMPLES))),
    st.lists(st.tuples(st.sampled_from(["delete", "dup", "indent", "dedent", "swap", "insert"]),
                       st.integers(0, 400), st.text(max_size=6)), min_size=1, max_size=6),
)  # fmt: skip
def test_mutated_examples(which: int, mutations: list[tuple[str, int, str]]) -> None:
    lines = EXAMPLES[which].splitlines()
    for op, at, text in mutations:
        if not lines:
            break
        i = at % len(lines)
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:]
        elif op == "swap" and lines[i]:
            j = at % len(lines[i])
            lines[i] = lines[i][:j] + text + lines[i][j + 1 :]
        elif op == "insert":
            lines.insert(i, text)
    _check(validate_text("\n".join(lines) + "\n", "mutated.yaml"))


def test_examples_are_fuzz_seeds() -> None:
    assert len(EXAMPLES) >= 6
    assert all(validate_text(text, "x.yaml").valid for text in EXAMPLES)
