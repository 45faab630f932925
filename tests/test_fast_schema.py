"""The shipped compiled checker and the direct step check agree with jsonschema.

`runbook_validator()` answers "valid" from (1) a direct check of the common step shape plus the
compiled checker on the rest, or (2) the compiled checker shipped as `engine/_runbook_check.py`.
Both may only ever say "valid" where jsonschema does; these tests keep them equal, and keep the
shipped code in step with wpk.schema.json.
"""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastjsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpk import schemas
from wpk.engine import _action_checks, _runbook_check, schema
from wpk.engine.loader import load_file
from wpk.engine.schema import RunbookSchema, make_validator, runbook_validator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [load_file(p).data for p in sorted(ROOT.glob("examples/*/wpk.yaml"))]
JSONSCHEMA = make_validator(schemas.runbook_schema(), formats=False, trusted=True)


def jsonschema_valid(doc: Any) -> bool:
    return next(JSONSCHEMA.iter_errors(doc), None) is None


def test_shipped_checker_is_up_to_date_with_the_schema() -> None:
    assert schema.schema_file_digest() == _runbook_check.SCHEMA_SHA256, (
        "wpk.schema.json changed: run `python -m wpk.engine.schema` to regenerate engine/_runbook_check.py"
    )
    if fastjsonschema.VERSION == _runbook_check.VERSION:  # same generator: the very same code
        shipped = (ROOT / "engine" / schema.SHIPPED_CHECK_MODULE).read_text(encoding="utf-8")
        assert shipped == schema.generate_runbook_check()


def test_shipped_action_checkers_are_up_to_date_and_used() -> None:
    actions = schemas.action_schemas()
    assert set(_action_checks.FACTORIES) == set(actions)
    for uses, action_schema in actions.items():
        digest, factory = _action_checks.FACTORIES[uses]
        assert digest == schema.schema_digest(action_schema), (
            f"{uses}: run `python -m wpk.engine.schema` to regenerate engine/_action_checks.py"
        )
        assert callable(factory())
        assert schema._builtin_action_validator(uses).compiled() is not None
    if fastjsonschema.VERSION == _runbook_check.VERSION:
        shipped = (ROOT / "engine" / schema.SHIPPED_ACTION_MODULE).read_text(encoding="utf-8")
        assert shipped == schema.generate_action_checks()
    noop = schema._builtin_action_validator("core.noop")
    assert noop.accepts({}) and not noop.accepts({"x": 1})
    assert [e.validator for e in noop.iter_errors({"x": 1})] == ["additionalProperties"]


def test_the_compiled_checker_is_used_from_the_first_call() -> None:
    checker = runbook_validator()
    assert checker.compiled() is _runbook_check.CHECK
    fresh = RunbookSchema(schemas.runbook_schema(), shipped=schema.shipped_runbook_check())
    assert fresh.accepts(EXAMPLES[0])
    assert fresh._validator is None, "a valid document never builds the jsonschema validator"
    bad = copy.deepcopy(EXAMPLES[0])
    bad["spec"]["steps"][0]["need"] = ["x"]
    messages = [e.message for e in fresh.iter_errors(bad)]
    assert any("need" in m for m in messages)


def test_the_shipped_param_schema_checker_agrees_with_jsonschema() -> None:
    checker = schema.param_schema_validator()
    assert checker.compiled() is not None and checker.compiled() is not False
    plain = make_validator(checker.schema, formats=False, trusted=True)
    cases: list[Any] = [
        {"type": "string"},
        {"type": "strin"},
        {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
        {"type": "string", "bogus": 1},
        {"type": "array", "items": {"type": "string", "pattern": "^a"}},
        {"type": "string", "enum": []},
        {"$ref": "#/x"},
        [],
        None,
    ]
    for example in EXAMPLES:
        cases += list(example["spec"].get("params", {}).values())
    for case in cases:
        expected = next(plain.iter_errors(case), None) is None
        if checker.accepts(case):
            assert expected, case
        assert (schema.check_param_schema(case) is None) is expected, case


def test_the_direct_step_check_is_on_for_the_shipped_schema() -> None:
    """If the step schema changes shape, the fast path turns off; this says it is on today."""
    assert runbook_validator()._common is not None


def test_the_direct_step_check_turns_off_for_a_step_schema_it_does_not_know() -> None:
    changed = copy.deepcopy(schemas.runbook_schema())
    changed["$defs"]["step"]["properties"]["with"]["maxProperties"] = 3
    assert RunbookSchema(changed)._common is None


def test_examples_agree() -> None:
    for example in EXAMPLES:
        assert runbook_validator().accepts(example) is jsonschema_valid(example) is True


# Values that are valid for a field, and values that are wrong in the ways that matter; valid
# ones are drawn more often, so that many documents are valid and the fast path is exercised.
def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 4).flatmap(lambda k: valid if k else invalid)


IDS = mostly(
    st.one_of(
        st.sampled_from(["a", "s1", "restart_pod", "x" * 63]),
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    ),
    st.one_of(
        st.sampled_from(["", "A", "1a", "a-b", "x" * 64, "a\n", "é", "a b"]),
        st.integers(),
        st.none(),
        st.booleans(),
    ),
)
USES = mostly(
    st.sampled_from(["core.noop", "shell.run", "k8s.get", "a.b"]),
    st.one_of(
        st.sampled_from(["core", "core.", ".noop", "Core.noop", "core.noop\n", "core.no-op", "a.b.c"]),
        st.integers(),
        st.lists(st.just("core.noop"), max_size=1),
    ),
)
NEEDS = mostly(
    st.lists(IDS, max_size=3), st.one_of(st.just("a"), st.none(), st.dictionaries(st.just("a"), IDS))
)
WITH = mostly(
    st.one_of(st.just({}), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    st.lists(st.integers()),
)
DESCRIPTION = mostly(st.text(max_size=5), st.one_of(st.integers(), st.none()))
OTHER = st.sampled_from(
    [("when", True), ("when", "{{ x }}"), ("when", 3), ("timeout", "5s"), ("timeout", "5 s"), ("bogus", 1)]
)


@st.composite
def steps(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2)))
    step: dict[str, Any] = {}
    fields = (("id", IDS), ("uses", USES), ("needs", NEEDS), ("with", WITH), ("description", DESCRIPTION))
    for key, values in fields:
        if (key in ("id", "uses") and draw(st.integers(0, 15)) != 0) or draw(st.booleans()):
            step[key] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        for key, value in draw(st.lists(OTHER, max_size=2)):
            step[key] = value
    return step


def document(step_list: Any, spec_extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "wpk/v1",
        "kind": "Runbook",
        "metadata": {"name": "diff", "version": "1.0.0"},
        "spec": {"steps": step_list, **spec_extra},
    }


SPEC_EXTRA = st.sampled_from(
    [{}, {"concurrency": 4}, {"concurrency": 0}, {"bogus": 1}, {"finally": [{"id": "f"}]}]
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps(), max_size=5), SPEC_EXTRA)
def test_fast_paths_agree_with_jsonschema(step_list: Any, spec_extra: dict[str, Any]) -> None:
    doc = document(step_list, spec_extra)
    expected = jsonschema_valid(doc)
    checker = RunbookSchema(schemas.runbook_schema(), shipped=schema.shipped_runbook_check())
    if checker.accepts(doc):  # the fast answer is only ever "valid", and then rightly
        assert expected, doc
    # and the full answer (fast path, then jsonschema on doubt) is exactly jsonschema's
    assert (next(checker.iter_errors(doc), None) is None) is expected, doc
    if expected and all(
        isinstance(s, dict) and set(s) <= {"id", "uses", "needs", "with", "description"} for s in step_list
    ):
        assert schema._all_common(step_list, checker._common)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.lists(steps(), min_size=1, max_size=4))
def test_direct_step_check_never_accepts_an_invalid_step(step_list: Any) -> None:
    rules = runbook_validator()._common
    assert rules is not None
    if schema._all_common(step_list, rules):
        assert jsonschema_valid(document(step_list, {})), step_list


def _imported_after(args: list[str], tmp: Path) -> set[str]:
    code = (
        "import sys\n"
        "from wpk.engine.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg")}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    status, _, modules = out.stdout.strip().splitlines()[-1].partition(" ")
    assert status == "0", out.stderr
    return set(ast.literal_eval(modules))


ADAPTER_CLIENTS = {"kubernetes", "httpx", "httpcore", "anyio", "urllib3", "requests", "arango"}


def test_validate_imports_no_adapter_client_nor_trio(tmp_path: Path) -> None:
    """`wpk validate` of every example (k8s and api ones included) loads no adapter's client."""
    for args in (["validate", "--no-cache", str(ROOT / "examples")], ["validate", str(ROOT / "examples")]):
        imported = _imported_after(args, tmp_path)
        assert not imported & (ADAPTER_CLIENTS | {"trio"}), imported & (ADAPTER_CLIENTS | {"trio"})


def test_a_valid_template_free_run_never_imports_a_schema_engine(tmp_path: Path) -> None:
    """The shipped checkers answer "valid": jsonschema and fastjsonschema stay unloaded."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "wpk.yaml").write_text(
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: one, version: 1.0.0}\n"
        "spec:\n  steps:\n    - {id: a, uses: core.noop}\n"
        "    - {id: b, uses: core.echo, with: {message: hi}}\n"
    )
    for args in (
        ["run", "--no-cache", "--store", "memory:", str(package)],
        ["run", "--store", "memory:", str(package)],
    ):
        imported = _imported_after(args, tmp_path)
        unwanted = {"jsonschema", "referencing", "fastjsonschema", "jinja2", "regex"} | ADAPTER_CLIENTS
        assert not imported & unwanted, imported & unwanted
