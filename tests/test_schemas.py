"""The published JSON Schemas: well-formed, self-contained, documented, and strict where it matters.

These files are a public contract (editors, CI, the validator and every adapter read them), so
the tests check the contract itself with a plain 2020-12 validator that resolves nothing outside
the schema, independent of the engine's own validation code.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry

from wpk.adapters.base import Inverse, infos_from_schemas
from wpk.schemas import action_schemas, runbook_schema, schema_dir, schema_path

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://wpk.dev/schemas/v1/"

ACTIONS = {
    # uses: (read_only, inverse), per DESIGN.md section 4
    "core.noop": (True, "not-needed"),
    "core.echo": (True, "not-needed"),
    "core.sleep": (True, "not-needed"),
    "core.fail": (True, "not-needed"),
    "shell.run": (False, "none"),
    "api.request": (False, "none"),
    "k8s.get": (True, "not-needed"),
    "k8s.logs": (True, "not-needed"),
    "k8s.events": (True, "not-needed"),
    "k8s.wait": (True, "not-needed"),
    "k8s.scale": (False, "auto"),
    "k8s.restart": (False, "none"),
    "k8s.apply": (False, "auto"),
    "k8s.patch": (False, "auto"),
    "k8s.delete": (False, "none"),
}

# The full example of DESIGN.md section 3, verbatim.
DESIGN_EXAMPLE = """\
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: restart-unhealthy        # DNS label: ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, max 63
  version: 1.2.0                 # semantic version
  description: Restart a deployment whose pods are not ready
  owner: team-sre                # optional
  labels: {service: payments}    # optional, string -> string
spec:
  params:                        # optional; name -> a JSON Schema subset
    namespace: {type: string, default: default, pattern: "^[a-z0-9-]+$"}
    deployment: {type: string, description: Deployment to restart}   # no default = required
    min_ready: {type: integer, default: 1, minimum: 0}
  secrets: [slack_token]         # optional; names only, values are resolved on the agent
  priority: 50                   # optional, 0..100, higher runs first; a submission may override
  placement: {labels: {cluster: prod-eu}}   # optional; an agent must carry all these labels
  concurrency: 4                 # optional, max steps running at once in one execution (default 8)
  timeout: 15m                   # optional, whole execution
  defaults:                      # optional, applied to every step that does not say otherwise
    timeout: 60s
    retries: {attempts: 1, backoff: 1s, factor: 2.0, max_backoff: 30s}
  steps:
    - id: check                  # ^[a-z][a-z0-9_]*$, unique; usable in expressions
      uses: k8s.get              # adapter.action
      with: {kind: Deployment, name: "{{ params.deployment }}", namespace: "{{ params.namespace }}"}
      outputs:
        ready: "{{ result.object.status.readyReplicas | default(0) }}"
    - id: restart
      needs: [check]             # DAG edges; a step with no needs starts at once
      when: "{{ steps.check.outputs.ready < params.min_ready }}"   # false -> skipped
      uses: k8s.restart
      with: {kind: Deployment, name: "{{ params.deployment }}", namespace: "{{ params.namespace }}"}
    - id: wait
      needs: [restart]
      uses: k8s.wait
      with: {kind: Deployment, name: "{{ params.deployment }}", namespace: "{{ params.namespace }}",
             condition: rollout-complete}
      timeout: 5m
      retries: {attempts: 2, backoff: 5s}
    - id: notify
      needs: [wait]
      uses: api.request
      with:
        method: POST
        url: https://hooks.example.com/services/T000
        headers: {Authorization: "Bearer {{ secrets.slack_token }}"}
        json: {text: "restarted {{ params.deployment }}"}
      continue_on_error: true
  rollback:
    enabled: true                # automatic rollback when the execution fails (default true)
    steps: []                    # extra rollback steps, run after the per-step compensations
  finally: []                    # steps that always run last (notifications, cleanup)
"""

# Every other field of the format, so that the schema is shown to accept all of it.
FULL_FEATURED = """\
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: drain-and-scale
  version: 2.0.0-rc.1+build.7
  labels: {app.kubernetes.io/name: web, tier: frontend}
spec:
  params:
    replicas: {type: integer, minimum: 0, maximum: 50, multipleOf: 1, default: 3}
    hosts:
      type: array
      items: {type: string, format: hostname, minLength: 1, maxLength: 253}
      minItems: 1
      maxItems: 10
      uniqueItems: true
      default: [a.example.com]
    mode: {type: string, enum: [fast, safe], default: safe}
    limits:
      type: object
      properties:
        cpu: {type: [string, number]}
      required: [cpu]
      additionalProperties: false
      default: {cpu: 1}
    ratio: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.5}
    fixed: {const: on-call, default: on-call}
  concurrency: 1
  steps:
    - id: probe
      description: Ping every host
      uses: shell.run
      for_each: "{{ params.hosts }}"
      concurrency: 2
      with: {argv: [ping, -c, "1", "--", "{{ item }}"]}
      dry_run: execute
      idempotent: true
      timeout: 1500ms
      retries: {attempts: 3, backoff: 2, factor: 1.5, max_backoff: 1m}
    - id: scale
      needs: [probe]
      when: true
      uses: k8s.scale
      with: {name: web, replicas: "{{ params.replicas }}"}
      rollback: auto
    - id: mark
      needs: [scale]
      for_each: [a, b]
      uses: core.echo
      with: {message: "{{ item }}-{{ index }}"}
      outputs: {value: "{{ result.message }}", fixed: 3}
      rollback:
        uses: core.echo
        with: {message: undo}
        timeout: 10s
        retries: {attempts: 2}
        description: say so
    - id: note
      uses: core.noop
      rollback: none
  rollback:
    enabled: false
    timeout: 2h
    steps:
      - id: page
        uses: core.echo
        with: {message: rolled back}
  finally:
    - id: tell
      uses: core.echo
      with: {message: "{{ steps.scale.status }}"}
      continue_on_error: true
"""


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    # An empty registry: nothing outside the schema can be resolved (SECURITY.md).
    return Draft202012Validator(
        schema, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _schema_files() -> list[Path]:
    return [schema_path(), *sorted((schema_dir() / "adapters").glob("*.json"))]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (json-pointer-ish path, value) pair below `node`, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "contains", "propertyNames", "not", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_CONSTRAINTS_ONLY = ("not", "if", "then", "else", "propertyNames")


def _named_subschemas(schema: Any, path: str = "", documented: bool = True) -> Iterator[tuple[str, Any]]:
    """Schemas that describe a field or a map value: what an editor shows hover text for.

    The walk follows the schema's structure (a parameter field that is itself called
    `properties` is a field, not a keyword); subschemas under `if`/`then`/`else`/`not` only
    constrain fields documented elsewhere, so they need no text of their own.
    """
    if not isinstance(schema, dict):
        return
    for keyword in _SCHEMA_MAPS:
        for name, sub in schema.get(keyword, {}).items():
            if documented:
                yield f"{path}/{keyword}/{name}", sub
            yield from _named_subschemas(sub, f"{path}/{keyword}/{name}", documented)
    for keyword in _SCHEMA_ONE:
        sub = schema.get(keyword)
        if isinstance(sub, dict):
            inner = documented and keyword not in _CONSTRAINTS_ONLY
            if inner and keyword == "additionalProperties":
                yield f"{path}/{keyword}", sub
            yield from _named_subschemas(sub, f"{path}/{keyword}", inner)
    for keyword in _SCHEMA_LISTS:
        for index, sub in enumerate(schema.get(keyword, [])):
            yield from _named_subschemas(sub, f"{path}/{keyword}/{index}", documented)


def _errors(schema: dict[str, Any], instance: Any) -> list[ValidationError]:
    return list(_validator(schema).iter_errors(instance))


def _all_errors(errors: list[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        yield error
        yield from _all_errors(list(error.context or []))


def _design_doc() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DESIGN_EXAMPLE)
    return data


# ------------------------------------------------------------------ shape of every file


def test_every_action_has_one_schema_file() -> None:
    assert set(action_schemas()) == set(ACTIONS)
    names = {p.name for p in (schema_dir() / "adapters").iterdir()}
    assert names == {f"{uses}.json" for uses in ACTIONS}


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_schema_is_valid_2020_12_with_stable_id(path: Path) -> None:
    schema = _load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
    expected_id = BASE_ID + "wpk.schema.json" if path == schema_path() else f"{BASE_ID}adapters/{path.name}"
    assert schema["$id"] == expected_id
    assert schema["title"].strip()
    assert schema["description"].strip()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_every_property_has_a_description(path: Path) -> None:
    schema = _load(path)
    missing = [
        where
        for where, sub in _named_subschemas(schema)
        if not (isinstance(sub, dict) and isinstance(sub.get("description"), str) and sub["description"])
    ]
    assert missing == []


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_defaults_are_documented_and_valid(path: Path) -> None:
    """A `default` must pass its own schema and be spelled out in the hover text."""
    schema = _load(path)
    defs = schema.get("$defs", {})
    checked = 0
    for where, sub in _named_subschemas(schema):
        if not isinstance(sub, dict) or "default" not in sub:
            continue
        assert "Default" in sub["description"], where
        standalone = {key: value for key, value in sub.items() if key != "default"}
        standalone["$defs"] = defs
        assert _errors(standalone, sub["default"]) == [], where
        checked += 1
    if path.name in ("wpk.schema.json", "api.request.json", "shell.run.json", "k8s.patch.json"):
        assert checked >= 2


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_no_reference_leaves_the_file(path: Path) -> None:
    schema = _load(path)
    for where, node in _walk(schema):
        if not isinstance(node, dict):
            continue
        assert "$dynamicRef" not in node and "$recursiveRef" not in node, where
        ref = node.get("$ref")
        if ref is None:
            continue
        assert isinstance(ref, str) and ref.startswith("#/$defs/"), (where, ref)
        assert ref.removeprefix("#/$defs/") in schema["$defs"], (where, ref)


def test_objects_of_the_runbook_schema_are_closed() -> None:
    """Every object with named fields rejects unknown keys, so a typo is an error, not a no-op."""
    open_objects = [
        where
        for where, node in _walk(runbook_schema())
        if isinstance(node, dict)
        and "properties" in node
        and node.get("additionalProperties") is not False
        and not where.endswith("/properties")
    ]
    assert open_objects == []
    defs = runbook_schema()["$defs"]
    for name in ("step", "finallyStep", "rollbackBody", "retries", "paramSchema"):
        assert defs[name]["additionalProperties"] is False


def test_finally_step_is_a_step_without_needs() -> None:
    defs = runbook_schema()["$defs"]
    step_fields = set(defs["step"]["properties"])
    assert set(defs["finallyStep"]["properties"]) == step_fields - {"needs"}
    for name in step_fields - {"needs"}:
        assert defs["finallyStep"]["properties"][name] == defs["step"]["properties"][name]


def test_uses_examples_name_every_builtin_action() -> None:
    assert set(runbook_schema()["$defs"]["uses"]["examples"]) == set(ACTIONS)


# ------------------------------------------------------------------ x-wpk metadata


@pytest.mark.parametrize("uses", sorted(ACTIONS))
def test_action_x_wpk_is_well_formed(uses: str) -> None:
    schema = action_schemas()[uses]
    meta = schema["x-wpk"]
    assert set(meta) <= {
        "read_only", "inverse", "read_only_when", "pure", "idempotent", "idempotent_when",
        "inverse_idempotent",
    }  # fmt: skip
    # `pure`: the action observes nothing outside the engine (a dry-run never marks it unknown).
    assert meta.get("pure", False) is uses.startswith("core.")
    assert isinstance(meta["read_only"], bool)
    assert meta["inverse"] in {member.value for member in Inverse}
    assert (meta["read_only"], meta["inverse"]) == ACTIONS[uses]
    if meta["read_only"]:
        assert meta["inverse"] == "not-needed"
    for key in ("read_only_when", "idempotent_when"):
        for field, values in meta.get(key, {}).items():
            allowed = schema["properties"][field]["enum"]
            assert values and set(values) <= set(allowed)
    # Only an automatic inverse can be declared safe to re-run (docs/stores.md, crash recovery).
    assert not meta.get("inverse_idempotent") or meta["inverse"] == "auto"


def test_action_infos_follow_the_schemas() -> None:
    schemas = action_schemas()
    infos = {}
    for adapter in ("core", "shell", "api", "k8s"):
        for action, info in infos_from_schemas(adapter, schemas).items():
            infos[f"{adapter}.{action}"] = info
    assert set(infos) == set(ACTIONS)
    assert infos["k8s.scale"].inverse is Inverse.AUTO
    assert infos["k8s.delete"].inverse is Inverse.NONE
    # What a lost agent's compensation may run again (docs/stores.md, crash recovery).
    assert {u for u, i in infos.items() if i.inverse_idempotent} == {"k8s.apply", "k8s.patch", "k8s.scale"}
    api = infos["api.request"]
    assert [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if api.is_idempotent({"method": m})] == [
        "GET", "PUT", "DELETE"
    ]  # fmt: skip
    assert api.is_idempotent({}) and not infos["shell.run"].is_idempotent({"command": "true"})
    assert infos["core.sleep"].inverse is Inverse.NOT_NEEDED
    assert infos["k8s.get"].description.startswith("Reads")
    request = infos["api.request"]
    assert request.is_read_only({"url": "https://x.test"})  # method defaults to GET
    assert request.is_read_only({"url": "https://x.test", "method": "HEAD"})
    assert not request.is_read_only({"url": "https://x.test", "method": "POST"})
    assert not infos["shell.run"].is_read_only({"command": "true"})


# ------------------------------------------------------------------ the runbook schema


def test_design_example_is_valid() -> None:
    assert _errors(runbook_schema(), _design_doc()) == []


def test_every_field_of_the_format_is_accepted() -> None:
    assert _errors(runbook_schema(), yaml.safe_load(FULL_FEATURED)) == []


def test_minimal_runbook_is_valid() -> None:
    doc = {
        "apiVersion": "wpk/v1",
        "kind": "Runbook",
        "metadata": {"name": "a", "version": "0.0.1"},
        "spec": {"steps": [{"id": "s", "uses": "core.noop"}]},
    }
    assert _errors(runbook_schema(), doc) == []


def _mutate(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_design_doc())
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _without(path: tuple[str | int, ...]) -> dict[str, Any]:
    doc = copy.deepcopy(_design_doc())
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return doc


def _renamed(path: tuple[str | int, ...], new_key: str) -> dict[str, Any]:
    doc = copy.deepcopy(_design_doc())
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[new_key] = node.pop(path[-1])
    return doc


# (name, document, path of the error, keyword that must report it)
INVALID: list[tuple[str, Any, tuple[str | int, ...], str]] = [
    (
        "typo need",
        _renamed(("spec", "steps", 1, "needs"), "need"),
        ("spec", "steps", 1),
        "additionalProperties",
    ),
    ("upper-case id", _mutate(("spec", "steps", 0, "id"), "Check"), ("spec", "steps", 0, "id"), "pattern"),
    ("id with dash", _mutate(("spec", "steps", 0, "id"), "check-it"), ("spec", "steps", 0, "id"), "pattern"),
    ("missing uses", _without(("spec", "steps", 2, "uses")), ("spec", "steps", 2), "required"),
    (
        "$ref in a param schema",
        _mutate(("spec", "params", "deployment"), {"$ref": "http://169.254.169.254/latest"}),
        ("spec", "params", "deployment"),
        "additionalProperties",
    ),
    (
        "$defs in a param schema",
        _mutate(("spec", "params", "deployment"), {"type": "string", "$defs": {}}),
        ("spec", "params", "deployment"),
        "additionalProperties",
    ),
    ("priority 101", _mutate(("spec", "priority"), 101), ("spec", "priority"), "maximum"),
    ("priority as text", _mutate(("spec", "priority"), "high"), ("spec", "priority"), "type"),
    (
        "duration in words",
        _mutate(("spec", "steps", 2, "timeout"), "5 minutes"),
        ("spec", "steps", 2, "timeout"),
        "anyOf",
    ),
    ("negative duration", _mutate(("spec", "timeout"), -1), ("spec", "timeout"), "anyOf"),
    ("fractional duration unit", _mutate(("spec", "timeout"), "1.5m"), ("spec", "timeout"), "anyOf"),
    (
        "unknown dry_run",
        _mutate(("spec", "steps", 0, "dry_run"), "maybe"),
        ("spec", "steps", 0, "dry_run"),
        "enum",
    ),
    ("two-part version", _mutate(("metadata", "version"), "1.2"), ("metadata", "version"), "pattern"),
    ("leading zero version", _mutate(("metadata", "version"), "01.2.0"), ("metadata", "version"), "pattern"),
    ("float version", _mutate(("metadata", "version"), 1.2), ("metadata", "version"), "type"),
    ("name with capital", _mutate(("metadata", "name"), "Restart"), ("metadata", "name"), "pattern"),
    ("name too long", _mutate(("metadata", "name"), "a" * 64), ("metadata", "name"), "maxLength"),
    ("missing version", _without(("metadata", "version")), ("metadata",), "required"),
    ("wrong apiVersion", _mutate(("apiVersion",), "wpk/v2"), ("apiVersion",), "const"),
    ("wrong kind", _mutate(("kind",), "Workflow"), ("kind",), "const"),
    ("unknown top-level key", _mutate(("status",), {}), (), "additionalProperties"),
    ("unknown spec key", _mutate(("spec", "step"), []), ("spec",), "additionalProperties"),
    ("no steps", _mutate(("spec", "steps"), []), ("spec", "steps"), "minItems"),
    (
        "attempts 0",
        _mutate(("spec", "steps", 2, "retries"), {"attempts": 0}),
        ("spec", "steps", 2, "retries", "attempts"),
        "minimum",
    ),
    (
        "retries typo",
        _mutate(("spec", "defaults", "retries"), {"attempt": 3}),
        ("spec", "defaults", "retries"),
        "additionalProperties",
    ),
    (
        "factor below 1",
        _mutate(("spec", "defaults", "retries", "factor"), 0.5),
        ("spec", "defaults", "retries", "factor"),
        "minimum",
    ),
    (
        "when without template",
        _mutate(("spec", "steps", 1, "when"), "yes"),
        ("spec", "steps", 1, "when"),
        "anyOf",
    ),
    (
        "for_each scalar",
        _mutate(("spec", "steps", 0, "for_each"), 3),
        ("spec", "steps", 0, "for_each"),
        "anyOf",
    ),
    (
        "rollback word",
        _mutate(("spec", "steps", 1, "rollback"), "undo"),
        ("spec", "steps", 1, "rollback"),
        "anyOf",
    ),
    (
        "rollback body without uses",
        _mutate(("spec", "steps", 1, "rollback"), {"with": {}}),
        ("spec", "steps", 1, "rollback"),
        "anyOf",
    ),
    (
        "uses without action",
        _mutate(("spec", "steps", 0, "uses"), "k8s"),
        ("spec", "steps", 0, "uses"),
        "pattern",
    ),
    (
        "needs repeated",
        _mutate(("spec", "steps", 1, "needs"), ["check", "check"]),
        ("spec", "steps", 1, "needs"),
        "uniqueItems",
    ),
    (
        "needs bad id",
        _mutate(("spec", "steps", 1, "needs"), ["Check"]),
        ("spec", "steps", 1, "needs", 0),
        "pattern",
    ),
    ("secrets repeated", _mutate(("spec", "secrets"), ["a", "a"]), ("spec", "secrets"), "uniqueItems"),
    ("secret name", _mutate(("spec", "secrets"), ["slack-token"]), ("spec", "secrets", 0), "pattern"),
    ("param name", _mutate(("spec", "params", "1st"), {"type": "string"}), ("spec", "params"), "pattern"),
    (
        "param type",
        _mutate(("spec", "params", "namespace", "type"), "str"),
        ("spec", "params", "namespace", "type"),
        "anyOf",
    ),
    (
        "param format",
        _mutate(("spec", "params", "namespace", "format"), "regex"),
        ("spec", "params", "namespace", "format"),
        "enum",
    ),
    ("concurrency 0", _mutate(("spec", "concurrency"), 0), ("spec", "concurrency"), "minimum"),
    (
        "label value number",
        _mutate(("metadata", "labels", "tier"), 1),
        ("metadata", "labels", "tier"),
        "type",
    ),
    ("label key", _mutate(("metadata", "labels", "bad key"), "x"), ("metadata", "labels"), "pattern"),
    (
        "placement typo",
        _mutate(("spec", "placement"), {"label": {}}),
        ("spec", "placement"),
        "additionalProperties",
    ),
    (
        "output name",
        _mutate(("spec", "steps", 0, "outputs", "ready-now"), 1),
        ("spec", "steps", 0, "outputs"),
        "pattern",
    ),
    (
        "finally step with needs",
        _mutate(("spec", "finally"), [{"id": "x", "uses": "core.noop", "needs": ["check"]}]),
        ("spec", "finally", 0),
        "additionalProperties",
    ),
    (
        "rollback typo",
        _mutate(("spec", "rollback", "enable"), True),
        ("spec", "rollback"),
        "additionalProperties",
    ),
    (
        "with not a mapping",
        _mutate(("spec", "steps", 0, "with"), ["x"]),
        ("spec", "steps", 0, "with"),
        "type",
    ),
]


@pytest.mark.parametrize(("name", "doc", "where", "keyword"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_runbooks_are_rejected(
    name: str, doc: Any, where: tuple[str | int, ...], keyword: str
) -> None:
    errors = _errors(runbook_schema(), doc)
    assert errors, name
    found = [(tuple(e.absolute_path), e.validator) for e in errors]
    assert (where, keyword) in found, found


def test_ref_in_param_schema_is_never_resolved() -> None:
    """A `$ref` inside a parameter schema is data to reject, not something to fetch."""
    doc = _mutate(("spec", "params", "deployment"), {"$ref": "file:///etc/passwd"})
    messages = " ".join(e.message for e in _all_errors(_errors(runbook_schema(), doc)))
    assert "$ref" in messages
    assert "root:" not in messages


@pytest.mark.parametrize("value", [0, 30, "500ms", "30s", "5m", "2h", "0s"])
def test_durations_accepted(value: Any) -> None:
    assert _errors(runbook_schema(), _mutate(("spec", "timeout"), value)) == []


@pytest.mark.parametrize("value", ["5 minutes", "5", "1d", "-1s", "5M", " 5m", "5m ", 1.5, True, None])
def test_durations_rejected(value: Any) -> None:
    assert _errors(runbook_schema(), _mutate(("spec", "timeout"), value)) != []


@pytest.mark.parametrize("version", ["0.0.0", "1.2.3-alpha.1", "1.0.0+20130313144700", "10.20.30-rc.1+b.2"])
def test_semver_accepted(version: str) -> None:
    assert _errors(runbook_schema(), _mutate(("metadata", "version"), version)) == []


@pytest.mark.parametrize("version", ["1", "v1.2.3", "1.2.3-", "1.2.3-01", "1.2.3.4", "1.2.3+"])
def test_semver_rejected(version: str) -> None:
    assert _errors(runbook_schema(), _mutate(("metadata", "version"), version)) != []


# ------------------------------------------------------------------ action schemas

# uses: (a typical valid input, the same input with a typo'd field name)
TYPICAL: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "core.noop": ({}, {"mesage": "x"}),
    "core.echo": ({"message": {"any": ["json", 1]}}, {"message": 1, "mesage": 1}),
    "core.sleep": ({"seconds": 0.5}, {"second": 1}),
    "core.fail": ({"message": "boom"}, {"mesage": "boom"}),
    "shell.run": (
        {
            "command": "echo hi",
            "env": {"A_B": "1"},
            "cwd": "/tmp",
            "stdin": "x",
            "success_codes": [0, 3],
            "parse": "lines",
        },
        {"command": "echo hi", "evn": {}},
    ),
    "api.request": (
        {
            "method": "POST",
            "url": "https://hooks.example.com/x",
            "headers": {"Authorization": "Bearer ***", "X-Trace-Id": "1"},
            "query": {"page": 2, "tag": ["a", "b"], "dry": True},
            "json": {"text": "hi"},
            "expect_status": [200, 202],
            "timeout": "10s",
            "follow_redirects": False,
            "verify_tls": True,
            "max_response_bytes": 1024,
        },
        {"url": "https://x.test", "header": {}},
    ),
    "k8s.get": (
        {"kind": "Pod", "label_selector": "app=web", "namespace": "prod"},
        {"name": "web", "namespce": "x"},
    ),
    "k8s.logs": (
        {"name": "web-0", "container": "app", "tail_lines": 100, "since_seconds": 60, "previous": True},
        {"name": "web-0", "tail": 10},
    ),
    "k8s.events": (
        {"kind": "Deployment", "name": "web", "api_version": "apps/v1"},
        {"name": "web", "knd": "Pod"},
    ),
    "k8s.wait": (
        {"kind": "Deployment", "name": "web", "condition": "rollout-complete", "poll_interval": 0.5},
        {"name": "web", "condition": "ready", "poll": 1},
    ),
    "k8s.scale": (
        {"kind": "StatefulSet", "name": "db", "replicas": 0, "context": "prod-eu"},
        {"name": "db", "replica": 2},
    ),
    "k8s.restart": ({"kind": "DaemonSet", "name": "agent"}, {"name": "agent", "kidn": "DaemonSet"}),
    "k8s.apply": (
        {
            "manifest": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cfg", "labels": {"a": "b"}},
                "data": {"k": "v"},
            },
            "force_conflicts": True,
        },
        {"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "force": True},
    ),
    "k8s.patch": (
        {
            "kind": "Deployment",
            "name": "web",
            "patch": [{"op": "replace", "path": "/spec/replicas", "value": 2}],
            "patch_type": "json",
        },
        {"name": "web", "patch": {}, "patchType": "merge"},
    ),
    "k8s.delete": (
        {"kind": "Job", "name": "migrate", "propagation": "Foreground"},
        {"name": "migrate", "propagate": "Orphan"},
    ),
}


def test_typical_inputs_cover_every_action() -> None:
    assert set(TYPICAL) == set(ACTIONS)


@pytest.mark.parametrize("uses", sorted(TYPICAL))
def test_action_accepts_typical_input(uses: str) -> None:
    assert _errors(action_schemas()[uses], TYPICAL[uses][0]) == []


@pytest.mark.parametrize("uses", sorted(TYPICAL))
def test_action_rejects_typo(uses: str) -> None:
    errors = _errors(action_schemas()[uses], TYPICAL[uses][1])
    assert [e.validator for e in errors if e.validator == "additionalProperties"], errors


def test_design_example_step_inputs_match_their_actions() -> None:
    """The DESIGN example's `with:` blocks, with templates replaced by typical rendered values."""
    rendered = {"{{ params.deployment }}": "payments", "{{ params.namespace }}": "default"}
    for step in _design_doc()["spec"]["steps"]:
        inputs = {
            key: rendered.get(value, value) if isinstance(value, str) else value
            for key, value in step["with"].items()
        }
        assert _errors(action_schemas()[step["uses"]], inputs) == [], step["id"]


# (uses, inputs, why it is wrong)
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("core.echo", {}, "message is required"),
    ("core.sleep", {"seconds": 86401}, "more than a day"),
    ("core.sleep", {"seconds": -1}, "negative"),
    ("shell.run", {}, "neither command nor argv"),
    ("shell.run", {"command": "ls", "argv": ["ls"]}, "both command and argv"),
    ("shell.run", {"command": ""}, "empty command"),
    ("shell.run", {"argv": []}, "empty argv"),
    ("shell.run", {"argv": ["ls", 1]}, "argv element not a string"),
    ("shell.run", {"command": "ls", "env": {"LD_PRELOAD": "/x.so"}}, "LD_PRELOAD"),
    ("shell.run", {"command": "ls", "env": {"LD_AUDIT": "/x.so"}}, "LD_ prefix"),
    ("shell.run", {"command": "ls", "env": {"BASH_ENV": "/x"}}, "BASH_ENV"),
    ("shell.run", {"command": "ls", "env": {"IFS": "x"}}, "IFS"),
    ("shell.run", {"command": "ls", "env": {"WPK_SECRET_TOKEN": "x"}}, "WPK_SECRET_ prefix"),
    ("shell.run", {"command": "ls", "env": {"WPK_IDEMPOTENCY_KEY": "x"}}, "reserved by wpk"),
    ("shell.run", {"command": "ls", "env": {"A-B": "x"}}, "bad variable name"),
    ("shell.run", {"command": "ls", "env": {"A": 1}}, "env value not a string"),
    ("shell.run", {"command": "ls", "success_codes": [256]}, "exit code out of range"),
    ("shell.run", {"command": "ls", "parse": "yaml"}, "unknown parse mode"),
    ("api.request", {}, "url is required"),
    ("api.request", {"url": "ftp://x.test"}, "not http(s)"),
    ("api.request", {"url": "file:///etc/passwd"}, "file URL"),
    ("api.request", {"url": "https://x.test", "method": "TRACE"}, "unknown method"),
    ("api.request", {"url": "https://x.test", "method": "POST", "json": {}, "body": "x"}, "json and body"),
    ("api.request", {"url": "https://x.test", "expect_status": 600}, "status out of range"),
    ("api.request", {"url": "https://x.test", "expect_status": "2XX"}, "status class spelling"),
    ("api.request", {"url": "https://x.test", "timeout": 0}, "zero timeout"),
    ("api.request", {"url": "https://x.test", "headers": {"Bad Header": "x"}}, "header name with space"),
    ("api.request", {"url": "https://x.test", "query": {"a": {"b": 1}}}, "nested query value"),
    ("k8s.get", {}, "neither name nor selector"),
    ("k8s.get", {"name": "a", "label_selector": "app=a"}, "both name and selector"),
    ("k8s.get", {"name": "a", "kind": "Secret"}, "kind outside the list"),
    ("k8s.get", {"name": "../secrets"}, "name with a path"),
    ("k8s.get", {"name": "a", "namespace": "Prod"}, "namespace not a DNS label"),
    ("k8s.get", {"name": "a", "kubeconfig": "/root/.kube/config"}, "a kubeconfig from the runbook"),
    ("k8s.logs", {"name": "a", "tail_lines": -1}, "negative tail"),
    ("k8s.logs", {"name": "a", "since_seconds": 0}, "since 0"),
    ("k8s.events", {"kind": "Pod"}, "name is required"),
    ("k8s.wait", {"name": "a"}, "no condition"),
    ("k8s.wait", {"name": "a", "condition": "healthy"}, "unknown condition"),
    (
        "k8s.wait",
        {"name": "a", "condition": "ready", "jsonpath": "{.x}", "value": 1},
        "condition and jsonpath",
    ),
    ("k8s.wait", {"name": "a", "jsonpath": "{.status.phase}"}, "jsonpath without value"),
    ("k8s.wait", {"name": "a", "condition": "ready", "poll_interval": 0}, "zero poll interval"),
    ("k8s.scale", {"name": "a", "replicas": "3"}, "replicas as text"),
    ("k8s.scale", {"name": "a", "replicas": -1}, "negative replicas"),
    ("k8s.scale", {"name": "a", "replicas": 1, "kind": "DaemonSet"}, "DaemonSet has no scale"),
    ("k8s.restart", {"name": "a", "kind": "Pod"}, "Pod cannot be restarted"),
    (
        "k8s.apply",
        {"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}},
        "manifest without name",
    ),
    (
        "k8s.apply",
        {"manifest": {"kind": "ConfigMap", "metadata": {"name": "a"}}},
        "manifest without apiVersion",
    ),
    ("k8s.apply", {}, "manifest is required"),
    ("k8s.patch", {"name": "a", "patch": {"spec": {}}, "patch_type": "json"}, "json patch as a mapping"),
    (
        "k8s.patch",
        {"name": "a", "patch": [{"op": "add", "path": "/x", "value": 1}]},
        "list for strategic patch",
    ),
    (
        "k8s.patch",
        {"name": "a", "patch": [{"op": "frobnicate", "path": "/x"}], "patch_type": "json"},
        "unknown op",
    ),
    ("k8s.patch", {"name": "a", "patch": {}, "patch_type": "apply"}, "unknown patch type"),
    ("k8s.delete", {"name": "a", "propagation": "background"}, "propagation spelling"),
]


@pytest.mark.parametrize(("uses", "inputs", "why"), BAD_INPUTS, ids=[f"{c[0]}: {c[2]}" for c in BAD_INPUTS])
def test_action_rejects_bad_input(uses: str, inputs: dict[str, Any], why: str) -> None:
    assert _errors(action_schemas()[uses], inputs) != [], why


@pytest.mark.parametrize(
    ("uses", "inputs"),
    [
        ("shell.run", {"argv": ["ls", "-l", "--", "x"]}),
        ("shell.run", {"command": "ls", "env": {"PATH": "/bin", "_X": "1"}}),
        ("api.request", {"url": "http://127.0.0.1:8080/h", "method": "GET", "expect_status": "3xx"}),
        ("api.request", {"url": "https://x.test", "method": "PUT", "body": "raw", "timeout": 2.5}),
        ("api.request", {"url": "https://x.test", "expect_status": 204}),
        ("k8s.get", {"name": "kube-system", "kind": "Namespace"}),
        ("k8s.logs", {"label_selector": "app=web", "max_bytes": 4096}),
        ("k8s.wait", {"name": "a", "jsonpath": "{.status.phase}", "value": "Running"}),
        ("k8s.patch", {"name": "a", "patch": {"spec": {"replicas": 2}}, "patch_type": "merge"}),
        ("k8s.patch", {"name": "a", "patch": {"spec": {"replicas": 2}}}),
        (
            "k8s.apply",
            {
                "manifest": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "a", "namespace": "x"},
                }
            },
        ),
    ],
)
def test_action_accepts_variants(uses: str, inputs: dict[str, Any]) -> None:
    assert _errors(action_schemas()[uses], inputs) == []


# ------------------------------------------------------------------ docs/format.md stays true

FORMAT_DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
STEP_FIELDS = set(runbook_schema()["$defs"]["step"]["properties"])


def _doc_fragments() -> list[tuple[str, Any]]:
    """Every YAML example of the format reference, split where a block lists alternatives."""
    text = FORMAT_DOC.read_text(encoding="utf-8")
    fragments: list[tuple[str, Any]] = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        top_keys = [line.split(":", 1)[0] for line in block.splitlines() if re.match(r"^[a-z_]+:", line)]
        if len(top_keys) > 1 and len(set(top_keys)) == 1:  # `timeout: 5m` / `timeout: 2h` / …
            parts = re.split(rf"(?m)^(?={top_keys[0]}:)", block)
            fragments.extend((part, yaml.safe_load(part)) for part in parts if part.strip())
        else:
            fragments.append((block, yaml.safe_load(block)))
    return [(source, data) for source, data in fragments if data is not None]  # modelines only


def _as_runbook(fragment: Any) -> dict[str, Any]:
    """Place a documentation fragment where it belongs in an otherwise minimal runbook."""
    doc: dict[str, Any] = {
        "apiVersion": "wpk/v1",
        "kind": "Runbook",
        "metadata": {"name": "doc", "version": "1.0.0"},
        "spec": {"steps": [{"id": "s", "uses": "core.noop"}]},
    }
    if isinstance(fragment, list):
        doc["spec"]["steps"] = fragment
    elif "apiVersion" in fragment:
        doc = fragment
    elif "metadata" in fragment:
        doc["metadata"] = fragment["metadata"]
    elif "spec" in fragment:
        doc["spec"] = fragment["spec"]
        for key in ("steps", "finally"):
            if doc["spec"].get(key) == ["..."]:  # the `[...]` placeholder of the overview
                doc["spec"][key] = [{"id": key[0], "uses": "core.noop"}]
    elif set(fragment) <= {"steps", "finally", "params", "secrets"}:
        doc["spec"].update(fragment)
    elif set(fragment) <= STEP_FIELDS:
        doc["spec"]["steps"] = [{"id": "s", "uses": "core.noop", **fragment}]
    elif set(fragment) <= set(action_schemas()["shell.run"]["properties"]):
        doc["spec"]["steps"] = [{"id": "s", "uses": "shell.run", "with": fragment}]
    else:
        raise AssertionError(f"no place for example {fragment!r}")
    return doc


def test_format_reference_examples_are_valid() -> None:
    fragments = _doc_fragments()
    assert len(fragments) >= 15
    for source, fragment in fragments:
        assert _errors(runbook_schema(), _as_runbook(fragment)) == [], source


def test_format_reference_shell_examples_match_shell_run() -> None:
    shell_inputs = [
        node
        for _, fragment in _doc_fragments()
        for _, node in _walk(fragment)
        if isinstance(node, dict) and ("command" in node or "argv" in node)
    ]
    assert len(shell_inputs) >= 3
    for inputs in shell_inputs:
        assert _errors(action_schemas()["shell.run"], inputs) == [], inputs


def test_format_reference_names_the_modeline_and_every_action() -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    assert "# yaml-language-server: $schema=https://wpk.dev/schemas/v1/wpk.schema.json" in text
    for uses in ACTIONS:
        assert f"`{uses}`" in text, uses
    for field in STEP_FIELDS:
        assert f"`{field}`" in text, field
