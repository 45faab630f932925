"""The compiled fast path and jsonschema agree on wpk's own schemas.

`TrustedSchema` answers "valid" from fastjsonschema after its first use; these tests make sure
that answer is never "valid" where jsonschema finds a problem (or the reverse), on the examples,
on documents with one field broken, and on random documents.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpk import schemas
from wpk.engine.loader import load_file
from wpk.engine.schema import TrustedSchema, make_validator

EXAMPLES = [
    load_file(p).data for p in sorted(Path(__file__).resolve().parent.parent.glob("examples/*/wpk.yaml"))
]


_COMPILED: dict[str, Any] = {}


def both(schema: dict[str, Any], instance: Any) -> tuple[bool, bool]:
    """(fast verdict, jsonschema verdict). Only a `JsonSchemaValueException` is a refusal: any
    other exception is the fast validator crashing, and propagates so the test shows it."""
    key = json.dumps(schema, sort_keys=True)
    if key not in _COMPILED:
        _COMPILED[key] = TrustedSchema(schema).compiled()
    fast = _COMPILED[key]
    assert fast, "our schemas must compile for the fast path"
    try:
        fast(copy.deepcopy(instance))
        fast_ok = True
    except fastjsonschema.JsonSchemaValueException:
        fast_ok = False
    slow_ok = next(make_validator(schema, formats=False, trusted=True).iter_errors(instance), None) is None
    return fast_ok, slow_ok


def test_every_schema_compiles_and_examples_agree() -> None:
    for example in EXAMPLES:
        assert both(schemas.runbook_schema(), example) == (True, True)
    for schema in schemas.action_schemas().values():
        assert TrustedSchema(schema).compiled()


def test_fast_path_is_used_after_first_use_and_still_reports_errors() -> None:
    checker = TrustedSchema(schemas.runbook_schema())
    bad = copy.deepcopy(EXAMPLES[0])
    bad["spec"]["steps"][0]["need"] = ["x"]
    first = [e.message for e in checker.iter_errors(bad)]
    second = [e.message for e in checker.iter_errors(bad)]
    assert first == second and any("need" in m for m in first)
    assert list(checker.iter_errors(EXAMPLES[0])) == []
    assert checker.compiled()


def test_a_crash_of_the_fast_validator_is_not_counted_as_a_refusal() -> None:
    # A compiled validator that crashes (here: a custom format checker raising) must surface
    # as an error of `both`, not as "rejected", or a broken fast path would agree with every
    # refusal of jsonschema.
    schema = {"type": "string", "format": "boom"}

    def crash(value: str) -> bool:
        raise RuntimeError("fast path crashed")

    _COMPILED[json.dumps(schema, sort_keys=True)] = fastjsonschema.compile(schema, formats={"boom": crash})
    try:
        with pytest.raises(RuntimeError, match="fast path crashed"):
            both(schema, "x")
    finally:
        del _COMPILED[json.dumps(schema, sort_keys=True)]
    assert both({"type": "string"}, 3) == (False, False)
    assert both({"type": "string"}, "x") == (True, True)


def _broken(example: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(example)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _paths(node: Any, prefix: list[Any]) -> list[list[Any]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, [*prefix, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, [*prefix, i])
    return found


SAMPLES = ["5m", "0s", "{{ params.x }}", "core.noop", "wpk/v1", "Runbook", "simulate", "auto", [], {}, ["a"]]
values = st.none() | st.booleans() | st.integers(-5, 200) | st.text(max_size=12) | st.sampled_from(SAMPLES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1000), st.integers(0, 10_000), values)
def test_runbook_schema_engines_agree_on_broken_documents(which: int, where: int, value: Any) -> None:
    example = EXAMPLES[which % len(EXAMPLES)]
    paths = _paths(example, [])
    doc = _broken(example, paths[where % len(paths)], value)
    fast_ok, slow_ok = both(schemas.runbook_schema(), json.loads(json.dumps(doc)))
    assert fast_ok == slow_ok


FIELDS = [
    *("name", "kind", "replicas", "namespace", "command", "argv", "url", "method", "jsonpath", "value"),
    *("condition", "manifest", "patch", "patch_type", "seconds", "message", "env", "expect_status"),
    *("timeout", "headers", "query"),
]
ACTION_INPUTS = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(schemas.action_schemas())), ACTION_INPUTS)
def test_action_schema_engines_agree(uses: str, inputs: dict[str, Any]) -> None:
    fast_ok, slow_ok = both(dict(schemas.action_schemas()[uses]), inputs)
    assert fast_ok == slow_ok, (uses, inputs)
