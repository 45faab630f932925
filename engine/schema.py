"""JSON Schema validation that points at the line.

The runbook schema and the adapter schemas are ours; parameter schemas come from runbook
authors. Both are validated with a validator that can never reach outside the document (an
empty `referencing.Registry`, so no `$ref` resolves to a file or URL). For authors' schemas
the `pattern` keyword runs on the `regex` engine under a time bound, so a catastrophic pattern
reports an error instead of hanging the validator (SECURITY.md, "Loader and validator"); our
own schemas' patterns are simple and run on `re` (and `regex` is never imported for them).

The time bound is per match *and* per request: a pattern that takes 0.2 s per string, applied to
an array of 100 strings, must not cost 20 s. `regex_budget()` opens one budget for a validation
or a set of parameters (`limits.regex_seconds`, 1 s by default); every match draws on it, and
once it is spent matching stops with an error naming the limit. Why a time budget rather than a
linear-time engine (RE2): authors' patterns keep the syntax they know from JSON Schema tools
(lookarounds, backreferences, possessive quantifiers, which RE2 refuses), and wpk needs no
native dependency that may lack a wheel on the agent's platform; the budget bounds the cost
either way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .durations import duration_problem

if TYPE_CHECKING:
    import regex
    from jsonschema.exceptions import ValidationError

# jsonschema (and its referencing, attrs, rpds: ~110 ms to import) is loaded only when a
# problem must be reported, or for schemas without a compiled checker: a valid runbook that
# uses only the shipped checker never imports it.

PATTERN_TIMEOUT_SECONDS = 0.25


class PatternError(ValueError):
    """A `pattern` that does not compile."""


class PatternTimeout(Exception):
    """A user-supplied `pattern` took too long on some input: it backtracks catastrophically."""


class PatternBudgetExceeded(Exception):
    """The request's total pattern-matching time (`limits.regex_seconds`) is spent."""


class _RegexBudget:
    __slots__ = ("remaining", "reported", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.remaining = seconds
        self.reported = False  # the budget error is told once per request, not once per value


_REGEX_BUDGET: contextvars.ContextVar[_RegexBudget | None] = contextvars.ContextVar(
    "wpk_regex_budget", default=None
)


@contextlib.contextmanager
def regex_budget(seconds: float | None = None) -> Iterator[None]:
    """One budget of pattern-matching time for everything inside (a validation, a params check).

    Nested calls share the outer budget. Default: `limits.regex_seconds` of the agent."""
    if _REGEX_BUDGET.get() is not None:
        yield
        return
    if seconds is None:
        from .limits import current

        seconds = current().regex_seconds
    token = _REGEX_BUDGET.set(_RegexBudget(seconds))
    try:
        yield
    finally:
        _REGEX_BUDGET.reset(token)


def regex_budget_message() -> str:
    from .limits import current, limit_message

    budget = _REGEX_BUDGET.get()
    seconds = budget.seconds if budget is not None else current().regex_seconds
    return limit_message("pattern matching took too long in total for this request", "regex_seconds", seconds)


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile with the `regex` engine; PatternError on bad syntax."""
    import regex  # only runbooks whose parameters have patterns pay for it

    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise PatternError(str(exc)) from None


def pattern_search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches `text`; bounded per match and by the request's budget, if any.

    PatternTimeout: this match alone took the per-match bound. PatternBudgetExceeded: the
    request's total ran out first."""
    compiled = compile_pattern(pattern)
    budget = _REGEX_BUDGET.get()
    if budget is None:
        try:
            return compiled.search(text, timeout=PATTERN_TIMEOUT_SECONDS) is not None
        except TimeoutError as exc:
            raise PatternTimeout(pattern) from exc
    if budget.remaining <= 0:
        raise PatternBudgetExceeded(pattern)
    timeout = min(PATTERN_TIMEOUT_SECONDS, budget.remaining)
    started = time.perf_counter()
    try:
        return compiled.search(text, timeout=timeout) is not None
    except TimeoutError as exc:
        if timeout < PATTERN_TIMEOUT_SECONDS:
            budget.remaining = 0
            raise PatternBudgetExceeded(pattern) from exc
        raise PatternTimeout(pattern) from exc
    finally:
        budget.remaining -= time.perf_counter() - started


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        matched = pattern_search(pattern, instance)
    except PatternError as exc:
        yield ValidationError(f"invalid pattern {pattern!r}: {exc}")
        return
    except PatternTimeout:
        yield ValidationError(
            f"pattern {pattern!r} took over {PATTERN_TIMEOUT_SECONDS}s to match "
            "(it backtracks catastrophically); simplify it"
        )
        return
    except PatternBudgetExceeded:
        budget = _REGEX_BUDGET.get()
        if budget is None or not budget.reported:
            if budget is not None:
                budget.reported = True
            yield ValidationError(f"pattern {pattern!r}: {regex_budget_message()}")
        return
    if not matched:
        yield ValidationError(f"{short_repr(instance)} does not match {pattern!r}")


@functools.cache
def safe_validator_class() -> Any:
    """Draft 2020-12 with a time-bounded `pattern`; used for every schema wpk evaluates."""
    import jsonschema

    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, validators={"pattern": _pattern_keyword}
    )


def make_validator(schema: Mapping[str, Any], *, formats: bool = True, trusted: bool = False) -> Any:
    """A validator that resolves nothing outside `schema` itself (an empty registry).

    `trusted` is for wpk's own published schemas: their patterns are ours and run on `re`.
    Formats: every format docs/format.md lists, checked (engine/formats.py).
    """
    from jsonschema import Draft202012Validator
    from referencing import Registry

    cls = Draft202012Validator if trusted else safe_validator_class()
    checker = None
    if formats:
        from .formats import FORMAT_CHECKER

        checker = FORMAT_CHECKER
    return cls(schema, registry=Registry(), format_checker=checker)


def iter_leaf_errors(validator: Any, instance: Any) -> Iterator[ValidationError]:
    """Errors, descending into anyOf/oneOf to the alternative that got furthest.

    jsonschema reports a failed `oneOf` as one error about the whole object; a user wants
    the one field that is wrong, so we follow `best_match` into the error's context.
    """
    for error in validator.iter_errors(instance):
        yield from _leaves(error)


def _union_kind(error: ValidationError) -> str | None:
    """The unions whose messages we write ourselves: durations, and `rollback`."""
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    refs = {b.get("$ref") for b in branches if isinstance(b, Mapping)}
    patterns = {b.get("pattern") for b in branches if isinstance(b, Mapping)}
    if "#/$defs/duration" in refs or "^[0-9]+(ms|s|m|h)$" in patterns:
        return "duration"
    if error.absolute_path and error.absolute_path[-1] == "rollback":
        return "rollback"
    return None


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if error.validator in ("anyOf", "oneOf") and _union_kind(error) is not None:
        yield error
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Prefer the branch whose schema matched the instance's type and went deepest.
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        if best is not None and len(best.absolute_path) >= len(error.absolute_path):
            if best.validator == "type" and len(best.absolute_path) == len(error.absolute_path):
                yield error
                return
            yield from _leaves(best)
            return
    yield error


MESSAGE_VALUE_CHARS = 80
"""Longest excerpt of a value a message quotes: an error never echoes a 100 KB value."""


def short_repr(value: Any) -> str:
    """`repr(value)`, cut to MESSAGE_VALUE_CHARS characters with a note of what was left out."""
    text = repr(value)
    if len(text) <= MESSAGE_VALUE_CHARS:
        return text
    return f"{text[:MESSAGE_VALUE_CHARS]}… ({len(text) - MESSAGE_VALUE_CHARS} more characters)"


def describe_path(path: tuple[str | int, ...] | list[str | int]) -> str:
    """`("spec", "steps", 2, "with")` -> `spec.steps[2].with`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def did_you_mean(word: str, choices: Any) -> str:
    """` (did you mean 'needs'?)` or ``."""
    import difflib  # only a misspelt name needs it: 2 ms of start-up

    names = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def friendly_message(error: ValidationError, where: str) -> tuple[str, str | None]:
    """A one-line message for a schema error, and the unknown key it concerns, if any.

    The message names what is wrong in the author's terms (fields, lists, mappings) rather
    than jsonschema's; `where` is a short description of the enclosing object.
    """
    keyword = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = set(schema.get("properties", {}))
        extras = [k for k in instance if k not in allowed]
        pattern_props = schema.get("patternProperties", {})
        extras = [k for k in extras if not any(re.search(p, k) for p in pattern_props)]
        if extras:
            key = extras[0]
            hint = did_you_mean(key, allowed)
            if key.startswith("$"):
                return f"{key!r} is not allowed in {where}: schemas are self-contained", key
            return f"unknown field {key!r} in {where}{hint}", key
    if keyword == "required" and isinstance(instance, Mapping):
        missing = [k for k in value if k not in instance]
        if missing:
            return f"missing required field {missing[0]!r} in {where}", None
    if keyword == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        expected = expected.replace("object", "mapping").replace("array", "list")
        return f"{where}: expected {expected}, got {_type_name(instance)}", None
    if keyword == "enum":
        hint = did_you_mean(instance, value) if isinstance(instance, str) else ""
        choices = ", ".join(repr(v) for v in value)
        return f"{where}: {short_repr(instance)} is not one of {choices}{hint}", None
    if keyword == "const":
        return f"{where}: must be {value!r}, got {short_repr(instance)}", None
    if keyword == "pattern":
        hint = schema.get("description", "")
        if error.message.startswith(("pattern ", "invalid pattern")):
            return f"{where}: {error.message}", None
        if hint and len(str(value)) > 60:  # a long regex (SemVer's) says less than its description
            return f"{where}: {short_repr(instance)} is not valid here: {hint}", None
        said = f"{where}: {short_repr(instance)} does not match {value!r}"
        return said + (f" ({hint})" if hint else ""), None
    if keyword == "format":
        return f"{where}: {short_repr(instance)} is not a valid {value} (format: {value})", None
    if keyword == "minItems" and isinstance(instance, list) and not instance:
        return f"{where}: must not be empty", None
    if keyword in ("oneOf", "anyOf"):
        kind = _union_kind(error)
        if kind == "duration":
            return f"{where}: {duration_problem(instance)}", None
        if kind == "rollback":
            hint = did_you_mean(instance, ("auto", "none")) if isinstance(instance, str) else ""
            return (
                f"{where}: {instance!r} is not valid: rollback is `auto` (the adapter's inverse), "
                f"`none`, or a step body {{uses, with}}{hint}",
                None,
            )
        return f"{where}: {_type_name(instance)} value is not valid here", None
    if keyword == "not":
        return f"{where}: this combination is not allowed", None
    if keyword == "propertyNames":
        return f"{where}: invalid name: {error.message}", None
    if keyword == "uniqueItems":
        return f"{where}: items must be unique", None
    if keyword == "maxProperties" and isinstance(value, int) and value == 1:
        return f"{where}: give only one of {', '.join(sorted(str(k) for k in instance))}", None
    return f"{where}: {_clip(error.message)}", None


def _clip(message: str) -> str:
    limit = 4 * MESSAGE_VALUE_CHARS
    return (
        message if len(message) <= limit else f"{message[:limit]}… ({len(message) - limit} more characters)"
    )


def check_param_schema(schema: Mapping[str, Any]) -> str | None:
    """Is a runbook's parameter schema one wpk can evaluate? Returns the problem.

    Checked against the published `paramSchema` subset (closed, every keyword typed), which is
    stricter than the 2020-12 metaschema for the keywords it allows and ~20x cheaper to apply.
    """
    error = next(param_schema_validator().iter_errors(schema), None)  # compiled check first
    return None if error is None else error.message


class TrustedSchema:
    """One of wpk's own schemas: a compiled checker for speed, jsonschema for the messages.

    jsonschema interprets a schema on every call (about 2 ms for a runbook); fastjsonschema
    compiles it into Python once (87 ms) and then checks a runbook in about 0.2 ms. The runbook
    schema's compiled checker ships as generated code (`_runbook_check.py`, kept up to date by a
    test), so it is used from the first call and no process compiles it. Other schemas compile
    on their second use: a process that validates once should not pay the compile. Whenever the
    compiled check finds a problem, jsonschema runs to report every problem with its path. Our
    own schemas use only draft-07 keywords plus `$defs` and `dependentRequired` (translated
    below); tests keep the two engines in agreement.
    """

    def __init__(self, schema: Mapping[str, Any], *, formats: bool = False, shipped: Any = None) -> None:
        self.schema = schema
        self._validator: Any = None
        self._formats = formats
        self._uses = 0
        self._fast: Any = shipped

    @property
    def validator(self) -> Any:
        """The jsonschema validator, built when a message is needed (building it costs ~1 ms)."""
        if self._validator is None:
            self._validator = make_validator(self.schema, formats=self._formats, trusted=True)
        return self._validator

    def compiled(self) -> Any:
        if self._fast is None:
            import fastjsonschema

            draft7 = _as_draft7(self.schema)
            try:
                self._fast = fastjsonschema.compile(draft7, use_default=False, use_formats=False)
            except Exception:  # a construct it does not support: stay on jsonschema
                self._fast = False
        return self._fast

    def accepts(self, instance: Any) -> bool:
        """True when the compiled checker is sure `instance` is valid (False: ask jsonschema)."""
        fast = self.compiled()
        if not fast:
            return False
        try:
            fast(instance)
        except Exception:  # invalid (or unsure): jsonschema tells what and where
            return False
        return True

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        self._uses += 1
        if (self._fast is not None or self._uses > 1) and self.accepts(instance):
            return iter(())
        return self.validator.iter_errors(instance)  # type: ignore[no-any-return]


class RunbookSchema(TrustedSchema):
    """The runbook schema, with a direct check of the common step shape in front.

    Most steps are `{id, uses, needs?, with?, description?}`; checking those fields directly
    costs about a tenth of the compiled checker's walk through the step schema. When every step
    has that shape and passes, the rest of the document is checked by the compiled checker with
    the step list cut to its first step; a step of any other shape (or any doubt) sends the whole
    document through the compiled checker and, on a problem, jsonschema. The fast path only ever
    says "valid"; a differential test (tests/test_fast_schema.py) keeps it equal to jsonschema.
    The field rules (patterns, lengths) are read from the schema, and the fast path turns itself
    off if the step schema no longer has the shape it knows.
    """

    def __init__(self, schema: Mapping[str, Any], *, shipped: Any = None) -> None:
        super().__init__(schema, shipped=shipped)
        self._common = _common_step_rules(schema)

    def accepts(self, instance: Any) -> bool:
        rules = self._common
        if rules is not None and type(instance) is dict:
            spec = instance.get("spec")
            steps = spec.get("steps") if type(spec) is dict else None
            if type(spec) is dict and type(steps) is list and steps and _all_common(steps, rules):
                head = {**instance, "spec": {**spec, "steps": steps[:1]}}
                return super().accepts(head)
        return super().accepts(instance)


_COMMON_KEYS = frozenset({"id", "uses", "needs", "with", "description"})


def _common_step_rules(schema: Mapping[str, Any]) -> tuple[re.Pattern[str], int, re.Pattern[str], int] | None:
    """(id pattern, id max length, uses pattern, uses max length) if the schema is as expected."""
    try:
        defs = schema["$defs"]
        spec_steps = schema["properties"]["spec"]["properties"]["steps"]
        step = defs["step"]
        props = step["properties"]
        ident, uses = defs["identifier"], defs["uses"]

        def bare(s: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in s.items() if k not in ("description", "default", "examples")}

        expected: dict[str, dict[str, Any]] = {
            "id": {"$ref": "#/$defs/identifier"},
            "uses": {"$ref": "#/$defs/uses"},
            "with": {"type": "object"},
            "description": {"type": "string"},
            "needs": {"type": "array", "items": {"$ref": "#/$defs/identifier"}, "uniqueItems": True},
        }
        shapes_known = (
            {**bare(spec_steps), "items": bare(spec_steps["items"])}
            == {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 1}
            and {k: v for k, v in step.items() if k not in ("description", "properties")}
            == {"type": "object", "additionalProperties": False, "required": ["id", "uses"]}
            and all(
                {**bare(props[key]), "items": bare(props[key]["items"])} == want
                if key == "needs"
                else bare(props[key]) == want
                for key, want in expected.items()
            )
            and set(bare(ident)) == {"type", "pattern", "maxLength"}
            and set(bare(uses)) <= {"type", "pattern", "maxLength"}
            and ident["type"] == "string"
            and uses["type"] == "string"
        )
    except (KeyError, TypeError):
        return None
    if not shapes_known:
        return None
    return (
        re.compile(ident["pattern"]),
        int(ident["maxLength"]),
        re.compile(uses["pattern"]),
        int(uses.get("maxLength", 1 << 62)),
    )


def _all_common(steps: list[Any], rules: tuple[re.Pattern[str], int, re.Pattern[str], int]) -> bool:
    """Whether every step has the common shape and its fields are valid (same rules as the schema)."""
    id_re, id_max, uses_re, uses_max = rules
    id_search, uses_search = id_re.search, uses_re.search
    keys = _COMMON_KEYS
    for step in steps:
        if type(step) is not dict or not keys.issuperset(step):
            return False
        sid = step.get("id")
        uses = step.get("uses")
        if type(sid) is not str or len(sid) > id_max or id_search(sid) is None:
            return False
        if type(uses) is not str or len(uses) > uses_max or uses_search(uses) is None:
            return False
        if "needs" in step:
            needs = step["needs"]
            if type(needs) is not list:
                return False
            for need in needs:
                if type(need) is not str or len(need) > id_max or id_search(need) is None:
                    return False
            if len(set(needs)) != len(needs):
                return False
        if "with" in step and type(step["with"]) is not dict:
            return False
        if "description" in step and type(step["description"]) is not str:
            return False
    return True


def _as_draft7(schema: Any) -> Any:
    """The same schema for a draft-07 engine: `$defs` pointers work as they are."""
    if isinstance(schema, list):
        return [_as_draft7(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: _as_draft7(value) for key, value in schema.items() if key != "$schema"}
    if "dependentRequired" in out:
        out["dependencies"] = out.pop("dependentRequired")
    return out


@functools.cache
def runbook_validator() -> RunbookSchema:
    """The checker of wpk.schema.json, built once per process (with the shipped compiled code)."""
    from wpk import schemas

    return RunbookSchema(schemas.runbook_schema(), shipped=shipped_runbook_check())


SHIPPED_CHECK_MODULE = "_runbook_check.py"
SHIPPED_ACTION_MODULE = "_action_checks.py"
"""The runbook schema's compiled checker, generated by `python -m wpk.engine.schema`."""


def schema_file_digest() -> str:
    """sha256 of wpk.schema.json as shipped: the shipped checker names the schema it was made from."""
    import hashlib

    from wpk import schemas

    return hashlib.sha256(schemas.schema_path().read_bytes()).hexdigest()


def shipped_runbook_check() -> Any:
    """The generated checker, or None if it was made from another schema (then: compile lazily)."""
    from . import _runbook_check

    if schema_file_digest() != _runbook_check.SCHEMA_SHA256:
        return None
    return _runbook_check.CHECK


_FJS_IMPORT = "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n"
_OWN_EXCEPTIONS = (
    "class JsonSchemaValueException(ValueError):\n"
    "    def __init__(self, message, value=None, name=None, definition=None, rule=None):\n"
    "        super().__init__(message)\n\n\n"
    "class JsonSchemaValuesException(ValueError):\n"
    "    def __init__(self, errors):\n"
    "        super().__init__(errors)\n"
)
_GENERATED_HEADER = (
    '"""Generated by `python -m wpk.engine.schema` from wpk-schemas/v1: do not edit.\n\n'
    "fastjsonschema's compiled checkers of wpk's own schemas, shipped so no process compiles them\n"
    "or imports fastjsonschema (tests/test_fast_schema.py fails when they are out of date). What\n"
    'they raise only has to be an exception, so the module defines its own."""\n'
    "# mypy: ignore-errors\n"
    "# ruff: noqa\n"
)


def _compiled_code(schema: Mapping[str, Any]) -> tuple[str, str]:
    """fastjsonschema's code for `schema` without its import of fastjsonschema, and its entry."""
    import fastjsonschema

    code = fastjsonschema.compile_to_code(_as_draft7(schema), use_default=False, use_formats=False)
    entry = re.search(r"^def (validate_\w+)\(", code, re.M)
    assert entry is not None and _FJS_IMPORT in code
    return code.replace(_FJS_IMPORT, ""), entry.group(1)


def schema_digest(schema: Mapping[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def generate_runbook_check() -> str:
    """The source of `_runbook_check.py` for the current wpk.schema.json."""
    from wpk import schemas

    code, entry = _compiled_code(schemas.runbook_schema())
    params_code, params_entry = _compiled_code(_param_schema_schema())
    params_body = "\n".join(("    " + line) if line.strip() else "" for line in params_code.splitlines())
    return (
        f"{_GENERATED_HEADER}SCHEMA_SHA256 = {schema_file_digest()!r}\n"
        f"{_OWN_EXCEPTIONS}\n\n{code}\n\nCHECK = {entry}\n\n\n"
        f"def PARAM_SCHEMA_CHECK():\n{params_body}\n    return {params_entry}\n"
    )


def generate_action_checks() -> str:
    """The source of `_action_checks.py`: one factory per built-in action's input schema.

    Each schema's code is wrapped in a function (its module-level names become locals), so the
    fifteen checkers share one module and each is built only when its action is first checked."""
    from wpk import schemas

    out = [_GENERATED_HEADER, _OWN_EXCEPTIONS, "\n"]
    table = []
    for uses, schema in sorted(schemas.action_schemas().items()):
        code, entry = _compiled_code(schema)
        name = "_" + uses.replace(".", "_")
        body = "\n".join(("    " + line) if line.strip() else "" for line in code.splitlines())
        out.append(f"\ndef {name}():\n{body}\n    return {entry}\n\n")
        table.append(f"    {uses!r}: ({schema_digest(schema)!r}, {name}),\n")
    out.append("\nFACTORIES = {\n" + "".join(table) + "}\n")
    return "".join(out)


def shipped_action_check(uses: str, schema: Mapping[str, Any]) -> Any:
    """The shipped checker of a built-in action's inputs, or None (then: compile lazily)."""
    from . import _action_checks

    found: Any = _action_checks.FACTORIES.get(uses)
    if found is None or found[0] != schema_digest(schema) or _uses_format(schema):
        return None  # (the compiled checkers skip `format`, which jsonschema checks here)
    return found[1]()


def _uses_format(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return "format" in schema or any(_uses_format(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_uses_format(v) for v in schema)
    return False


def _param_schema_schema() -> dict[str, Any]:
    from wpk import schemas

    return {"$ref": "#/$defs/paramSchema", "$defs": schemas.runbook_schema()["$defs"]}


@functools.cache
def param_schema_validator() -> TrustedSchema:
    """The `paramSchema` subset's checker: the shipped compiled one, jsonschema for messages."""
    from . import _runbook_check

    factory: Any = _runbook_check.PARAM_SCHEMA_CHECK
    shipped = factory() if shipped_runbook_check() is not None else None
    return TrustedSchema(_param_schema_schema(), shipped=shipped)


def action_validator(uses: str) -> Any:
    """The validator of an action's inputs (built once per built-in action), or None."""
    from wpk.adapters import registry

    info = registry.action_info(uses)
    if info is None:
        return None
    if info.adapter in registry.BUILTIN:
        return _builtin_action_validator(uses)
    return make_validator(info.input_schema)


@functools.cache
def _builtin_action_validator(uses: str) -> TrustedSchema:
    from wpk.adapters import registry

    info = registry.action_info(uses)
    assert info is not None
    shipped = shipped_action_check(uses, info.input_schema)
    return TrustedSchema(info.input_schema, formats=True, shipped=shipped)


if __name__ == "__main__":  # regenerate the shipped checker after editing wpk.schema.json
    from pathlib import Path

    for module, source in (
        (SHIPPED_CHECK_MODULE, generate_runbook_check()),
        (SHIPPED_ACTION_MODULE, generate_action_checks()),
    ):
        target = Path(__file__).with_name(module)
        target.write_text(source, encoding="utf-8")
        print(f"wrote {target}")
