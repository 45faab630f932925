"""A small, documented subset of kubectl's JSONPath, for `k8s.wait` conditions.

Supported (braces optional, `$` optional):

    {.status.phase}                                   fields
    .metadata.labels['app.kubernetes.io/name']        bracketed keys (any characters)
    .metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt   escaped dots in a field name
    .spec.containers[0].image   .items[-1]           list indices
    .spec.containers[*].name    .metadata.labels.*   every element / every value
    .status.conditions[?(@.type=="Ready")].status     filters: @-path == or != a literal
    .spec.containers[?(@.resources.limits)]           filters: the @-path exists

Literals are double- or single-quoted strings, integers, numbers, true, false and null. There are
no recursive descent (`..`), slices, unions or functions: a runbook condition should name one field.
Parsing is linear in the expression's length; evaluation never executes anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION = 1024


class JsonPathError(ValueError):
    """The expression is outside the supported subset."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclass(frozen=True, slots=True)
class Index:
    index: int


@dataclass(frozen=True, slots=True)
class Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class Filter:
    path: tuple[Field, ...]
    op: str | None  # "==", "!=", or None for "exists"
    literal: Any = None


Step = Field | Index | Wildcard | Filter

_NAME = re.compile(r"(?:[A-Za-z0-9_\-/:]|\\\.)+")
_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> JsonPathError:
        return JsonPathError(f"jsonpath {self.text!r}: {what} at offset {self.pos}")

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> None:
        if not self.peek(token):
            raise self.fail(f"expected {token!r}")
        self.pos += len(token)

    def name(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a field name")
        self.pos = match.end()
        return match.group().replace("\\.", ".")

    def quoted(self) -> str:
        quote = self.text[self.pos : self.pos + 1]
        if quote not in {"'", '"'}:
            raise self.fail("expected a quoted string")
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.fail("unterminated string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def literal(self) -> Any:
        if self.peek("'") or self.peek('"'):
            return self.quoted()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.peek(word):
                self.pos += len(word)
                return value
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a literal")
        self.pos = match.end()
        return json.loads(match.group())

    def relative_path(self) -> tuple[Field, ...]:
        fields: list[Field] = []
        while True:
            if self.peek("."):
                self.pos += 1
                fields.append(Field(self.name()))
            elif self.peek("['") or self.peek('["'):
                self.pos += 1
                fields.append(Field(self.quoted()))
                self.take("]")
            else:
                return tuple(fields)

    def filter(self) -> Filter:
        self.take("?(")
        self.skip_spaces()
        self.take("@")
        path = self.relative_path()
        if not path:
            raise self.fail("a filter needs a path after @")
        self.skip_spaces()
        op: str | None = None
        literal: Any = None
        for candidate in ("==", "!="):
            if self.peek(candidate):
                op = candidate
                self.pos += 2
                self.skip_spaces()
                literal = self.literal()
                self.skip_spaces()
                break
        self.take(")")
        return Filter(path, op, literal)

    def skip_spaces(self) -> None:
        while self.peek(" "):
            self.pos += 1

    def bracket(self) -> Step:
        self.take("[")
        step: Step
        if self.peek("*"):
            self.pos += 1
            step = Wildcard()
        elif self.peek("?"):
            step = self.filter()
        elif self.peek("'") or self.peek('"'):
            step = Field(self.quoted())
        else:
            match = _INT.match(self.text, self.pos)
            if not match:
                raise self.fail("expected an index, '*', a quoted key or a filter")
            self.pos = match.end()
            step = Index(int(match.group()))
        self.take("]")
        return step

    def parse(self) -> tuple[Step, ...]:
        if self.peek("$"):
            self.pos += 1
        steps: list[Step] = []
        while self.pos < len(self.text):
            if self.peek(".."):
                raise self.fail("recursive descent '..' is not supported")
            if self.peek(".*"):
                self.pos += 2
                steps.append(Wildcard())
            elif self.peek("."):
                self.pos += 1
                steps.append(Field(self.name()))
            elif self.peek("["):
                steps.append(self.bracket())
            else:
                raise self.fail("unexpected character")
        if not steps:
            raise self.fail("empty path")
        return tuple(steps)


def parse(expression: str) -> tuple[Step, ...]:
    """Parse a supported expression; raises JsonPathError with the offending offset."""
    text = expression.strip()
    if len(text) > MAX_EXPRESSION:
        raise JsonPathError(f"jsonpath is longer than {MAX_EXPRESSION} characters")
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    return _Parser(text).parse()


def _children(value: Any, step: Step) -> list[Any]:
    if isinstance(step, Field):
        return [value[step.name]] if isinstance(value, Mapping) and step.name in value else []
    if isinstance(step, Index):
        if (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and -len(value) <= step.index < len(value)
        ):
            return [value[step.index]]
        return []
    if isinstance(step, Wildcard):
        if isinstance(value, Mapping):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if not isinstance(value, list):
        return []
    return [item for item in value if _keep(item, step)]


def _keep(item: Any, step: Filter) -> bool:
    found: list[Any] = [item]
    for field in step.path:
        found = [child for value in found for child in _children(value, field)]
    if step.op is None:
        return bool(found)
    equal = bool(found) and render(found[0]) == render(step.literal)
    return equal if step.op == "==" else not equal


def evaluate(steps: tuple[Step, ...], document: Any) -> list[Any]:
    """Every value the path selects, in document order."""
    current = [document]
    for step in steps:
        current = [child for value in current for child in _children(value, step)]
    return current


def render(value: Any) -> str:
    """A value as kubectl prints it in a jsonpath template (booleans lower case, JSON for objects)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def holds(values: list[Any], expected: Any) -> bool:
    """Every selected value equals `expected` as text, and there is one; `None`: absent or null."""
    if expected is None:
        return all(value is None for value in values)
    wanted = render(expected)
    return bool(values) and all(render(value) == wanted for value in values)
