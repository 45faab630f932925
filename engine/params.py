"""Parameters: from `-p k=v`, a params file or an API body to validated, typed values.

Parameters are checked against their declared schema before anything runs; each problem is
one line naming the parameter. Values given as text on a command line are typed by the
parameter's declared type (`-p replicas=5` is the integer 5), parsed with the same safe loader
as runbooks, never with a YAML 1.1 resolver.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .loader import LoadError, load_text
from .schema import (
    describe_path,
    friendly_message,
    iter_leaf_errors,
    make_validator,
    regex_budget,
    short_repr,
)


class ParamError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_assignments(pairs: Sequence[str], declared: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`["replicas=5", "name=web"]` -> `{"replicas": 5, "name": "web"}` typed per declaration."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            problems.append(f"parameter {short_repr(pair)}: expected NAME=VALUE")
            continue
        schema = declared.get(name, {})
        try:
            values[name] = coerce(text, schema)
        except ValueError as exc:
            problems.append(f"parameter {name!r}: {exc}")
    if problems:
        raise ParamError(problems)
    return values


def coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """Type a command-line string by the declared type; strings stay strings."""
    declared = schema.get("type")
    if declared == "string" or declared is None or (isinstance(declared, list) and "string" in declared):
        return text
    try:
        doc = load_text(text, "<parameter>", max_bytes=64 * 1024)
    except LoadError as exc:
        raise ValueError(f"cannot read {short_repr(text)} as {declared}: {exc.diagnostic.message}") from None
    return doc.data


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def shown_name(name: object) -> str:
    """A parameter name as a message shows it; anything not shaped like a name is not echoed.

    A params file given by mistake (`--params-file /etc/shadow`) must not have its lines
    printed back as "undeclared parameters"."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return repr(name)
    return "(a name that is not a valid parameter name, not shown)"


def load_params_file(path: str) -> dict[str, Any]:
    from .loader import load_file

    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise ParamError([f"{path}: a params file holds a mapping of name: value"])
    return dict(doc.data)


def resolve_params(declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply defaults, refuse unknown and missing parameters, validate every value.

    All the parameters share one pattern-matching budget (`limits.regex_seconds`)."""
    with regex_budget():
        return _resolve(declared, given)


def _resolve(declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]) -> dict[str, Any]:
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            from .schema import did_you_mean

            problems.append(
                f"parameter {shown_name(name)} is not declared by this runbook{did_you_mean(name, declared)}"
            )
    for name, schema in declared.items():
        if name in given:
            value = given[name]
        elif "default" in schema:
            value = copy.deepcopy(schema["default"])
        else:
            problems.append(
                f"parameter {name!r} is required"
                + (f" ({schema['description']})" if schema.get("description") else "")
            )
            continue
        for err in iter_leaf_errors(make_validator(schema), value):
            where = f"parameter {name!r}" + (
                f" {describe_path(list(err.absolute_path))}" if err.absolute_path else ""
            )
            problems.append(friendly_message(err, where)[0])
            if len(problems) >= 20:
                problems.append("(more problems not shown)")
                raise ParamError(problems)
        values[name] = value
    if problems:
        raise ParamError(problems)
    return values
