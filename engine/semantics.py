"""Semantic rules of WPK v1 that JSON Schema cannot express (DESIGN §3).

Unique step ids, `needs` naming real steps, dependency cycles (printed as a path), template
syntax and the expression allowlist, references to undeclared params/secrets/steps or to steps
that are not upstream, `for_each`/`when` shapes, adapter inputs checked against their action's
schema (with templated fields checked as far as their type is known), parameter schemas and
their defaults, forbidden shell `env` keys, `max_failures` only beside `for_each`, and the
warnings an author wants before an incident.

The checker is defensive: it runs even when the schema found errors, and skips whatever has
the wrong shape rather than raising, so one run reports every problem it can see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeGuard

from wpk.adapters import registry
from wpk.adapters.base import Inverse
from wpk.adapters.guards.envpolicy import forbidden_env_key

from .diagnostics import Diagnostic, error, warning
from .loader import PathT, SourceDoc
from .schema import (
    PatternBudgetExceeded,
    PatternError,
    PatternTimeout,
    TrustedSchema,
    action_validator,
    check_param_schema,
    compile_pattern,
    describe_path,
    did_you_mean,
    friendly_message,
    iter_leaf_errors,
    make_validator,
    pattern_search,
    regex_budget_message,
)
from .template_text import SCOPE_NAMES, is_template

STEP_FIELDS = ("outputs", "status", "result")
EXECUTION_FIELDS = ("id", "dry_run", "attempt")
_WHOLE_PARAM = re.compile(r"^\s*\{\{\s*params\.([A-Za-z][A-Za-z0-9_]*)\s*(?:\|\s*(\w+)\s*)?\}\}\s*$")
_FILTER_TYPES = {"int": "integer", "float": "number", "string": "string", "bool": "boolean",
                 "tojson": "string", "lower": "string", "upper": "string", "trim": "string"}  # fmt: skip
_SAMPLES: dict[str, Any] = {"string": "x", "integer": 0, "number": 0.5, "boolean": False,
                            "array": [], "object": {}, "null": None}  # fmt: skip


SiteKind = Literal["step", "finally", "rollback_step", "rollback_body"]


class _Ancestry:
    """Every main step's transitive `needs` as bitsets, computed on the first question only.

    On a chain the bitsets add up to O(N^2) bits (95 MiB at 40,000 steps), and most runbooks
    never ask: only a template that refers to another step does. So nothing is computed until
    then, and a runbook without such templates stays linear."""

    __slots__ = ("_all_main", "_memo", "graph", "index", "main_ids")

    def __init__(
        self, graph: Mapping[str, Sequence[str]], index: Mapping[str, int], main_ids: set[str]
    ) -> None:
        self.graph = graph
        self.index = index
        self.main_ids = main_ids
        self._memo: dict[str, int] | None = None
        self._all_main: int | None = None

    def of(self, step_id: str) -> int:
        if self._memo is None:
            self._memo = _ancestor_bits(self.graph, self.index)
        return self._memo.get(step_id, 0)

    def all_main(self) -> int:
        """Every main step, built in one pass (summing N shifted integers is quadratic)."""
        if self._all_main is None:
            positions = bytearray((len(self.index) + 8) // 8)
            for step_id in self.main_ids:
                position = self.index[step_id]
                positions[position >> 3] |= 1 << (position & 7)
            self._all_main = int.from_bytes(positions, "little")
        return self._all_main


class Visibility:
    """The steps a site may reference: a step's ancestors (or every main step) plus some more.

    A bitset over step positions, resolved on first use: ancestor sets of a long chain are
    O(N^2) as Python sets (10,000 steps took 5 GB); as integers shared through one index they
    are a few kilobytes each, and a site nobody asks about costs nothing.
    """

    __slots__ = ("_ancestry", "_base", "_bits", "_parent", "_step")

    def __init__(
        self, ancestry: _Ancestry, base: str | None, parent: Visibility | None = None, step: str = ""
    ) -> None:
        self._ancestry = ancestry
        self._base = base  # a step id (its ancestors), "" (every main step) or None (nothing)
        self._parent = parent  # `parent`'s steps plus `step` (a list of steps that run in order)
        self._step = step
        self._bits: int | None = None

    @property
    def bits(self) -> int:
        if self._bits is None:
            chain: list[Visibility] = []
            node = self
            while node._bits is None and node._parent is not None:
                chain.append(node)
                node = node._parent
            if node._bits is None:
                ancestry, base = self._ancestry, node._base
                node._bits = 0 if base is None else ancestry.all_main() if base == "" else ancestry.of(base)
            bits = node._bits
            for later in reversed(chain):
                bits |= 1 << self._ancestry.index[later._step]
                later._bits = bits
        return self._bits  # type: ignore[return-value]

    def __contains__(self, step_id: object) -> bool:
        position = self._ancestry.index.get(step_id) if isinstance(step_id, str) else None
        return position is not None and bool((self.bits >> position) & 1)

    def with_step(self, step_id: str | None) -> Visibility:
        if step_id is None or step_id not in self._ancestry.index:
            return self
        return Visibility(self._ancestry, self._base, self, step_id)


@dataclass(slots=True)
class StepSite:
    """A step-like body somewhere in the document, with what its templates may see."""

    path: PathT
    kind: SiteKind
    body: Mapping[str, Any]
    step_id: str | None
    visible_steps: Visibility
    has_items: bool = False


@dataclass(slots=True)
class _TemplatedField:
    kind: Literal["unknown", "typed", "text"]
    param: str | None = None
    declared: str | None = None


@dataclass(slots=True)
class Checker:
    doc: SourceDoc
    diagnostics: list[Diagnostic] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    used_params: set[str] = field(default_factory=set)
    uses_whole_params: bool = False
    outputs_of: dict[str, set[str] | None] = field(default_factory=dict)

    # -- reporting -------------------------------------------------------------------------
    def error(self, path: PathT, code: str, message: str, *, key: bool = False, col_offset: int = 0) -> None:
        mark = self.doc.key_mark(path) if key else self.doc.mark(path)
        self.diagnostics.append(error(self.doc.path, mark.line, mark.col + col_offset, code, message))

    def warn(self, path: PathT, code: str, message: str, *, key: bool = False, col_offset: int = 0) -> None:
        mark = self.doc.key_mark(path) if key else self.doc.mark(path)
        self.diagnostics.append(warning(self.doc.path, mark.line, mark.col + col_offset, code, message))

    def template_col(self, path: PathT, offset: int) -> int:
        """Column offset of a character inside a scalar string (0 where it cannot be known)."""
        style = self.doc.scalar_style(path)
        if style in (None, "'", '"'):
            return offset + (1 if style else 0)
        return 0

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        data = self.doc.data
        spec = data.get("spec") if isinstance(data, Mapping) else None
        if not isinstance(spec, Mapping):
            return self.diagnostics
        self.check_params(spec.get("params"))
        secrets = spec.get("secrets")
        if isinstance(secrets, list):
            self.secrets = {s for s in secrets if isinstance(s, str)}
        sites = self.collect_sites(spec)
        rollback_enabled = not (
            isinstance(spec.get("rollback"), Mapping) and spec["rollback"].get("enabled") is False
        )
        for site in sites:
            self.check_site(site, rollback_enabled=rollback_enabled)
        self.check_unused_params(spec.get("params"))
        return self.diagnostics

    # -- parameters --------------------------------------------------------------------------
    def check_params(self, params: Any) -> None:
        if not isinstance(params, Mapping):
            return
        for name, schema in params.items():
            if not isinstance(schema, Mapping):
                continue
            self.params[name] = schema
            path: PathT = ("spec", "params", name)
            if check_param_schema(schema):
                continue  # the schema pass has reported it, at the offending keyword
            if not self.check_patterns(schema, path, name):
                continue
            if "default" in schema:
                self.check_param_value(schema, schema["default"], path + ("default",), name)

    def check_patterns(self, schema: Mapping[str, Any], path: PathT, name: str) -> bool:
        """Compile each `pattern`, and probe it for catastrophic backtracking."""
        ok = True
        for sub_path, pattern in _patterns(schema, path):
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                self.error(sub_path, "param-pattern", f"parameter {name!r}: invalid pattern: {exc}")
                ok = False
                continue
            try:
                probe = _PROBES.get(pattern, _UNSEEN)
                if probe is _UNSEEN:
                    probe = _PROBES.put(pattern, _catastrophe_probe(pattern))
            except PatternBudgetExceeded:
                self.error(sub_path, "param-pattern-budget", f"parameter {name!r}: {regex_budget_message()}")
                return False
            if probe is not None:
                self.error(
                    sub_path,
                    "param-pattern-redos",
                    f"parameter {name!r}: pattern {pattern!r} backtracks catastrophically "
                    f"(matching {probe!r} took too long); rewrite it without nested repetition",
                )
                ok = False
        return ok

    def check_param_value(self, schema: Mapping[str, Any], value: Any, path: PathT, name: str) -> None:
        if _plainly_valid(schema, value):
            return  # no jsonschema (nor its 90 ms import) for the common parameter
        for err in iter_leaf_errors(_param_validator(schema), value):
            inside = f" ({describe_path(list(err.absolute_path))})" if err.absolute_path else ""
            where = f"default of parameter {name!r}{inside}"
            message, _ = friendly_message(err, where)
            self.error(path + tuple(err.absolute_path), "param-default", message)

    def check_unused_params(self, params: Any) -> None:
        if not isinstance(params, Mapping) or self.uses_whole_params:
            return
        for name in params:
            if name not in self.used_params:
                self.warn(
                    ("spec", "params", name), "unused-param", f"parameter {name!r} is never used", key=True
                )

    # -- steps ----------------------------------------------------------------------------------
    def collect_sites(self, spec: Mapping[str, Any]) -> list[StepSite]:
        main = _step_list(spec.get("steps"), ("spec", "steps"))
        finally_ = _step_list(spec.get("finally"), ("spec", "finally"))
        rollback = spec.get("rollback")
        rollback_steps = _step_list(
            rollback.get("steps") if isinstance(rollback, Mapping) else None, ("spec", "rollback", "steps")
        )
        seen: dict[str, PathT] = {}
        for path, body in main + finally_ + rollback_steps:
            step_id = body.get("id")
            if not isinstance(step_id, str):
                continue
            if step_id in seen:
                first = self.doc.mark(seen[step_id] + ("id",))
                self.error(
                    path + ("id",),
                    "duplicate-step",
                    f"duplicate step id {step_id!r} (first defined at line {first.line})",
                )
            else:
                seen[step_id] = path
            outputs = body.get("outputs")
            self.outputs_of[step_id] = set(outputs) if _is_mapping(outputs) else set()
        main_ids = {b["id"] for _, b in main if isinstance(b.get("id"), str)}
        graph = self.check_needs(main, main_ids, set(seen))
        index = {step_id: i for i, step_id in enumerate(seen)}
        ancestry = _Ancestry(graph, index, main_ids)
        nothing = Visibility(ancestry, None)
        sites: list[StepSite] = []
        for path, body in main:
            step_id = body.get("id") if isinstance(body.get("id"), str) else None
            visible = Visibility(ancestry, step_id) if step_id else nothing
            sites.append(StepSite(path, "step", body, step_id, visible, "for_each" in body))
            if _is_mapping(body.get("rollback")):
                sites.append(
                    StepSite(path + ("rollback",), "rollback_body", body["rollback"], step_id,
                             visible.with_step(step_id), "for_each" in body)
                )  # fmt: skip
        all_main = Visibility(ancestry, "")
        for later in (finally_, rollback_steps):
            kind: SiteKind = "finally" if later is finally_ else "rollback_step"
            visible = all_main  # and every earlier step of the same list: they run in order
            for path, body in later:
                step_id = body.get("id") if isinstance(body.get("id"), str) else None
                sites.append(StepSite(path, kind, body, step_id, visible, "for_each" in body))
                visible = visible.with_step(step_id)
        return sites

    def check_needs(
        self, main: list[tuple[PathT, Mapping[str, Any]]], main_ids: set[str], all_ids: set[str]
    ) -> dict[str, list[str]]:
        graph: dict[str, list[str]] = {}
        for path, body in main:
            step_id = body.get("id")
            needs = body.get("needs")
            if not isinstance(step_id, str):
                continue
            graph[step_id] = []
            if not isinstance(needs, list):
                continue
            for j, need in enumerate(needs):
                if not isinstance(need, str):
                    continue
                if need not in main_ids:
                    where = " (finally and rollback steps cannot be needed)" if need in all_ids else ""
                    self.error(
                        path + ("needs", j),
                        "unknown-need",
                        f"step {step_id!r} needs unknown step {need!r}"
                        f"{where or did_you_mean(need, sorted(main_ids))}",
                    )
                    continue
                graph[step_id].append(need)
        for cycle in _cycles(graph):
            start = cycle[0]
            path = next(p for p, b in main if b.get("id") == start)
            j = next((i for i, n in enumerate(main_needs(main, start)) if n == cycle[1]), 0)
            self.error(path + ("needs", j), "cycle", "dependency cycle: " + " -> ".join(reversed(cycle)))
        return graph

    def check_site(self, site: StepSite, *, rollback_enabled: bool) -> None:
        body = site.body
        uses = body.get("uses")
        for key in ("when", "for_each"):
            if key in body:
                self.check_shape(site, key)
        if "max_failures" in body and "for_each" not in body:
            self.error(
                site.path + ("max_failures",),
                "max-failures-without-for-each",
                "`max_failures` counts failed `for_each` items, and this step has no `for_each`: "
                "remove it (a single step's failure is tolerated with `continue_on_error`)",
                key=True,
            )
        for value_path, text in _template_strings(body, site.path):
            relative = value_path[len(site.path) :]
            self.check_template(site, value_path, text, relative)
        if isinstance(uses, str):
            self.check_inputs(site, uses)
            if site.kind == "step":
                self.check_inverse(site, uses, rollback_enabled=rollback_enabled)

    def check_shape(self, site: StepSite, key: str) -> None:
        value = site.body[key]
        path = site.path + (key,)
        if key == "when" and isinstance(value, str) and not _is_whole_template(value):
            self.error(path, "when-shape", "`when` must be true, false or a single {{ expression }}")
        if key == "for_each" and isinstance(value, str) and not _is_whole_template(value):
            self.error(
                path,
                "for-each-shape",
                "`for_each` must be a list or a single {{ expression }} that gives a list",
            )

    # -- templates -------------------------------------------------------------------------------
    def check_template(self, site: StepSite, path: PathT, text: str, relative: PathT) -> None:
        try:
            template = expressions().compile_template(text)
        except expressions().ExpressionError as exc:
            self.error(
                path,
                "template",
                f"invalid template: {exc.message}",
                col_offset=self.template_col(path, exc.offset),
            )
            return
        in_outputs = relative[:1] == ("outputs",)
        in_item_scope = site.has_items and relative[:1] not in (("when",), ("for_each",), ("timeout",))
        for ref in template.references:
            problem = self.check_reference(site, ref.root, ref.path, in_outputs, in_item_scope)
            if problem:  # the column only for a problem: finding it walks the position tree
                self.error(path, "reference", problem, col_offset=self.template_col(path, ref.offset))
        for name, offset in template.filters:
            if name == "shell_unquoted":
                self.warn(
                    path,
                    "shell-unquoted",
                    "`shell_unquoted` inserts the value into the shell command unquoted: "
                    "make sure it can never come from untrusted input",
                    col_offset=self.template_col(path, offset),
                )
        if relative == ("with", "command") and site.body.get("uses") == "shell.run":
            for offset in _templates_inside_shell_quotes(text):
                self.warn(
                    path,
                    "shell-quoted-template",
                    "template inside shell quotes: wpk already quotes interpolations in "
                    "`command`, so these quotes become part of the value; remove them",
                    col_offset=self.template_col(path, offset),
                )

    def check_reference(
        self, site: StepSite, root: str, path: tuple[str | int, ...], in_outputs: bool, in_item_scope: bool
    ) -> str | None:
        first = path[0] if path else None
        if root == "params":
            if first is None:
                self.uses_whole_params = True
                return None
            if first not in self.params:
                return f"unknown parameter {first!r}{did_you_mean(str(first), self.params)}"
            self.used_params.add(str(first))
            return None
        if root == "secrets":
            if first is None:
                return "use one secret at a time: secrets.<name>"
            if first not in self.secrets:
                return (
                    f"secret {first!r} is not declared in spec.secrets"
                    f"{did_you_mean(str(first), self.secrets)}"
                )
            return None
        if root == "steps":
            return self.check_step_reference(site, path)
        if root in ("item", "index"):
            return None if in_item_scope else f"`{root}` is only defined inside a step with `for_each`"
        if root == "execution":
            if first is not None and first not in EXECUTION_FIELDS:
                return f"execution has no field {first!r} (it has {', '.join(EXECUTION_FIELDS)})"
            return None
        if root == "result":
            return None if in_outputs else "`result` is only defined inside `outputs`"
        return (
            f"unknown name {root!r}{did_you_mean(root, sorted(SCOPE_NAMES))}"
            " (names in scope: params, secrets, steps, item, index, execution, result)"
        )

    def check_step_reference(self, site: StepSite, path: tuple[str | int, ...]) -> str | None:
        if not path:
            return "refer to one step: steps.<id>.outputs|status|result"
        target = str(path[0])
        if target not in self.outputs_of:
            return f"unknown step {target!r}{did_you_mean(target, self.outputs_of)}"
        if target not in site.visible_steps:
            if site.kind == "step":
                return (
                    f"step {target!r} is not upstream of {site.step_id!r}: "
                    f"add it (or a step after it) to `needs`"
                )
            return f"step {target!r} cannot be referenced here (it has not run yet)"
        if len(path) < 2:
            return None
        part = path[1]
        if part not in STEP_FIELDS:
            hint = did_you_mean(str(part), STEP_FIELDS)
            return f"steps.{target} has no field {part!r}{hint} (use outputs, status or result)"
        declared = self.outputs_of.get(target)
        if part == "outputs" and len(path) > 2 and declared is not None and path[2] not in declared:
            known = ", ".join(sorted(declared)) or "none"
            return (
                f"step {target!r} has no output {path[2]!r}{did_you_mean(str(path[2]), declared)}"
                f" (its outputs: {known})"
            )
        return None

    # -- adapter inputs ----------------------------------------------------------------------------
    def check_inputs(self, site: StepSite, uses: str) -> None:
        info = registry.action_info(uses)
        path = site.path + ("uses",)
        if info is None:
            adapter = uses.partition(".")[0]
            if adapter not in registry.adapter_names():
                self.error(
                    path,
                    "unknown-adapter",
                    f"unknown adapter {adapter!r} in {uses!r}"
                    f"{did_you_mean(adapter, registry.adapter_names())}",
                )
            else:
                self.error(
                    path,
                    "unknown-action",
                    f"unknown action {uses!r}{did_you_mean(uses, registry.known_actions(adapter))}",
                )
            return
        inputs = site.body.get("with", {})
        if not _is_mapping(inputs):
            return
        with_path = site.path + ("with",)
        templated: dict[tuple[str | int, ...], _TemplatedField] = {}
        probe = self.probe_value(inputs, (), templated)
        where_base = f"{uses} input"
        for err in _input_errors(uses, probe):
            rel = tuple(err.absolute_path)
            if uses == "shell.run" and rel[:1] == ("env",) and err.validator == "not":
                continue  # reported below with the reason (forbidden_env_key)
            hit = _templated_at(templated, rel)
            if hit is not None:
                if err.validator != "type" or hit.kind == "unknown":
                    continue
                if (
                    hit.kind == "typed"
                    and _schema_type(err.validator_value) == "string"
                    and (hit.declared in ("integer", "number"))
                ):
                    continue  # numbers are rendered as text where a string is expected
                if hit.kind == "typed":
                    self.error(
                        with_path + rel,
                        "input-type",
                        f"{where_base} {describe_path(rel)}: expected "
                        f"{_schema_type(err.validator_value)}, but parameter {hit.param!r} "
                        f"is declared {hit.declared}",
                    )
                    continue
            where = f"{where_base} {describe_path(rel)}" if rel else f"{uses} inputs"
            message, unknown_key = friendly_message(err, where)
            if unknown_key is not None:
                self.error(with_path + rel + (unknown_key,), "input", message, key=True)
            else:
                self.error(with_path + rel, "input", message)
        if uses == "shell.run" and isinstance(inputs.get("env"), Mapping):
            for key in inputs["env"]:
                if isinstance(key, str) and forbidden_env_key(key):
                    self.error(
                        with_path + ("env", key),
                        "forbidden-env",
                        f"`env` may not set {key!r}: it changes how programs start "
                        "(loader or shell start-up hook)",
                        key=True,
                    )

    def probe_value(
        self, value: Any, rel: tuple[str | int, ...], templated: dict[tuple[str | int, ...], _TemplatedField]
    ) -> Any:
        """A copy of `with` where each template is replaced by a value of its known type."""
        if _is_mapping(value):
            return {k: self.probe_value(v, rel + (k,), templated) for k, v in value.items()}
        if isinstance(value, list):
            return [self.probe_value(v, rel + (i,), templated) for i, v in enumerate(value)]
        if not is_template(value):
            return value
        if not _is_whole_template(value):
            templated[rel] = _TemplatedField("text")
            return value
        match = _WHOLE_PARAM.match(value)
        if match:
            name, filt = match.group(1), match.group(2)
            schema = self.params.get(name)
            declared = _FILTER_TYPES.get(filt) if filt else None
            if declared is None and filt is None and isinstance(schema, Mapping):
                declared = schema.get("type") if isinstance(schema.get("type"), str) else None
            if declared in _SAMPLES:
                templated[rel] = _TemplatedField("typed", name, declared)
                if filt is None and isinstance(schema, Mapping) and "default" in schema:
                    return schema["default"]
                return _SAMPLES[declared]
        templated[rel] = _TemplatedField("unknown")
        return value

    def check_inverse(self, site: StepSite, uses: str, *, rollback_enabled: bool) -> None:
        info = registry.action_info(uses)
        if info is None or not rollback_enabled or info.inverse is not Inverse.NONE:
            return
        body = site.body
        if body.get("rollback", "auto") != "auto" or body.get("dry_run") == "execute":
            return
        inputs = body.get("with")
        if info.read_only_when and isinstance(inputs, Mapping):
            if any(is_template(inputs.get(name)) for name in info.read_only_when):
                return  # read or write is only known at run time
            if info.is_read_only(inputs):
                return
        self.warn(
            site.path + ("uses",),
            "no-inverse",
            f"step {site.step_id!r} uses {uses}, which has no automatic inverse: if a later step "
            "fails, rollback cannot undo it; add a `rollback:` body, or `rollback: none` to say so",
        )


# -- caches across documents ---------------------------------------------------------------------
# One process validates many packages (`wpk validate DIR`, the sidecar): they share actions,
# parameter schemas and patterns. What is a pure function of its key is kept, bounded: the
# schema errors of an action's (probed) inputs, an author's compiled parameter schema, the
# backtracking probe of a pattern. Keys are JSON text, so `1`, `1.0` and `true` stay apart.
_MEMO_LIMIT = 4096
_UNSEEN: Any = object()


class _Memo(dict[str, Any]):
    """A bounded cache: cleared when full, so a server validating all day stays small."""

    def put(self, key: str, value: Any) -> Any:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        self[key] = value
        return value


_INPUT_ERRORS = _Memo()
_PARAM_VALIDATORS = _Memo()
_PROBES = _Memo()


_PLAIN_KEYS = frozenset({"type", "description", "title", "default", "examples", "minLength",
                         "maxLength", "pattern", "minimum", "maximum", "items", "minItems",
                         "maxItems", "uniqueItems"})  # fmt: skip
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
}  # fmt: skip


def _plainly_valid(schema: Mapping[str, Any], value: Any) -> bool:
    """True only when `value` certainly satisfies a plain parameter schema (a single `type`,
    lengths, bounds, a `pattern`, items): what most parameters declare. Anything else, and any
    doubt (a pattern that fails, times out or runs out of budget), is False: jsonschema decides
    and says what is wrong. tests/test_param_fast_check.py checks it against jsonschema."""
    if not _PLAIN_KEYS.issuperset(schema):
        return False
    kind = schema.get("type")
    kinds = _PLAIN_TYPES.get(kind) if isinstance(kind, str) else None
    if kinds is None or type(value) not in kinds:  # bool is never an integer or a number here
        return False
    if isinstance(value, str):
        low, high = schema.get("minLength", 0), schema.get("maxLength", len(value))
        if type(low) is not int or type(high) is not int or not low <= len(value) <= high:
            return False
        pattern = schema.get("pattern")
        if pattern is not None:
            try:
                return isinstance(pattern, str) and pattern_search(pattern, value)
            except Exception:  # invalid, too slow, over budget: jsonschema reports it
                return False
    elif isinstance(value, list):
        items = schema.get("items")
        low, high = schema.get("minItems", 0), schema.get("maxItems", len(value))
        if type(low) is not int or type(high) is not int or not low <= len(value) <= high:
            return False
        if items is not None and not (
            isinstance(items, Mapping) and all(_plainly_valid(items, v) for v in value)
        ):
            return False
        unique = schema.get("uniqueItems", False)
        if unique is True:  # decided here for text only (JSON Schema has 1 == 1.0)
            if not all(type(v) is str for v in value) or len(set(value)) != len(value):
                return False
        elif unique is not False:
            return False
    elif type(value) is not bool:
        low, high = schema.get("minimum"), schema.get("maximum")
        for limit in (low, high):
            if limit is not None and type(limit) not in (int, float):
                return False
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _json_key(value: Any) -> str | None:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _input_errors(uses: str, probe: Any) -> list[Any]:
    """The schema's leaf errors for an action's probed inputs. Kept for built-in actions only:
    their schemas are ours (no time-bounded pattern, so the answer is a function of the input);
    an installed adapter's patterns run under each document's own budget."""
    validator = action_validator(uses)
    if not isinstance(validator, TrustedSchema):
        return list(iter_leaf_errors(validator, probe))
    key = "{}" if not probe and type(probe) is dict else _json_key(probe)  # no `with`: no encoding
    found = None if key is None else _INPUT_ERRORS.get(f"{uses}\0{key}")
    if found is None:
        found = list(iter_leaf_errors(validator, probe))
        if key is not None:
            _INPUT_ERRORS.put(f"{uses}\0{key}", found)
    return found


def _param_validator(schema: Mapping[str, Any]) -> Any:
    """An author's parameter schema, compiled once per process (its patterns stay time-bounded:
    the budget is read when a pattern runs, not when the validator is made)."""
    key = _json_key(schema)
    validator = None if key is None else _PARAM_VALIDATORS.get(key)
    if validator is None:
        validator = make_validator(schema)
        if key is not None:
            _PARAM_VALIDATORS.put(key, validator)
    return validator


# -- helpers -----------------------------------------------------------------------------------
def main_needs(main: list[tuple[PathT, Mapping[str, Any]]], step_id: str) -> list[Any]:
    for _, body in main:
        if body.get("id") == step_id and isinstance(body.get("needs"), list):
            needs: list[Any] = body["needs"]
            return needs
    return []


_NOT_MAPPINGS = frozenset({str, list, int, float, bool, type(None)})


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """`isinstance(value, Mapping)` without the ABC machinery (0.3-0.5 µs a call) for what a
    document is made of: dicts, lists and scalars. Asked several times per step."""
    kind = type(value)
    if kind is dict:
        return True
    return kind not in _NOT_MAPPINGS and isinstance(value, Mapping)


def _step_list(value: Any, path: PathT) -> list[tuple[PathT, Mapping[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(path + (i,), body) for i, body in enumerate(value) if _is_mapping(body)]


def _ancestor_bits(graph: Mapping[str, Sequence[str]], index: Mapping[str, int]) -> dict[str, int]:
    """Transitive `needs` of every step as a bitset (cycles tolerated: reported elsewhere)."""
    memo: dict[str, int] = {}
    for root in graph:
        if root in memo:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        open_nodes: set[str] = set()
        while stack:
            node, expanded = stack.pop()
            if expanded:
                bits = 0
                for need in graph.get(node, ()):
                    bits |= memo.get(need, 0) | (1 << index[need])
                memo[node] = bits
                open_nodes.discard(node)
                continue
            if node in memo or node in open_nodes:
                continue
            open_nodes.add(node)
            stack.append((node, True))
            stack.extend((need, False) for need in graph.get(node, ()) if need not in memo)
    return memo


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each elementary cycle found by DFS, once, as [a, x, y, a] along `needs` edges."""
    color: dict[str, int] = {}
    found: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    for root in graph:
        if color.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        trail = [root]
        color[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = 2
                stack.pop()
                trail.pop()
                continue
            if color.get(child) == 1:
                cycle = trail[trail.index(child) :] + [child]
                key = frozenset(cycle)
                if key not in seen_sets:
                    seen_sets.add(key)
                    found.append(cycle)
            elif not color.get(child) and child in graph:
                color[child] = 1
                trail.append(child)
                stack.append((child, iter(graph[child])))
    return found


def _template_strings(body: Mapping[str, Any], path: PathT) -> Iterator[tuple[PathT, str]]:
    """Every template string of a step body, except the nested rollback body (its own site).

    A step's own strings (`id`, `uses`, `when` …) are looked at here, without a generator or a
    path per value: most steps have few templates, and this ran once per step (_walk_strings
    recursed into every value of a 10,000-step runbook)."""
    for key, value in body.items():
        if isinstance(value, str):
            if "{" in value and (is_template(value) or "{%" in value or "{#" in value):
                yield path + (key,), value
        elif key == "rollback" and isinstance(value, Mapping):
            continue
        elif type(value) is list or _is_mapping(value):
            yield from _walk_strings(value, path + (key,))


def _walk_strings(value: Any, path: PathT) -> Iterator[tuple[PathT, str]]:
    if isinstance(value, str):
        if "{" in value and (is_template(value) or "{%" in value or "{#" in value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_strings(item, path + (i,))


def _is_whole_template(text: str) -> bool:
    try:
        template = expressions().compile_template(text)
    except expressions().ExpressionError:
        return True  # reported as a template error instead
    return bool(template.whole)


def _templated_at(
    templated: Mapping[tuple[str | int, ...], _TemplatedField], rel: tuple[str | int, ...]
) -> _TemplatedField | None:
    for i in range(len(rel), -1, -1):
        hit = templated.get(rel[:i])
        if hit is not None:
            return hit
    return None


def _schema_type(value: Any) -> str:
    return value if isinstance(value, str) else " or ".join(value)


def _patterns(schema: Mapping[str, Any], path: PathT) -> Iterator[tuple[PathT, str]]:
    if isinstance(schema.get("pattern"), str):
        yield path + ("pattern",), schema["pattern"]
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _patterns(items, path + ("items",))
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, sub in props.items():
            if isinstance(sub, Mapping):
                yield from _patterns(sub, path + ("properties", name))


def _catastrophe_probe(pattern: str) -> str | None:
    """Try the pattern on strings built to make backtracking explode; return one that hangs.

    Repeating each literal character of the pattern and ending on a character that cannot
    match drives nested quantifiers such as `(a+)+$` or `(a|aa)*$` into exponential work. The
    `regex` engine gives up after the time bound, so probing costs at most a few tenths of a
    second for a bad pattern and microseconds for a good one.
    """
    classes = {"d": "1", "w": "a", "s": " ", "S": "a", "W": " ", "D": "a"}
    escaped = [classes[c] for c in re.findall(r"\\(.)", pattern) if c in classes]
    literal = [c for c in re.sub(r"\\.", "", pattern) if c.isalnum()]
    chars = list(dict.fromkeys(escaped + literal))[:4] or ["a"]
    probes = [c * 48 + "!" for c in chars] + ["".join(chars) * 16 + "!", "a1 " * 16 + "!"]
    for probe in probes:
        try:
            pattern_search(pattern, probe)
        except PatternTimeout:
            return probe
        except PatternError:
            return None
    return None


def _templates_inside_shell_quotes(text: str) -> list[int]:
    """Offsets of `{{` that sit inside '…' or "…" in a shell command.

    A small POSIX sh lexer, enough to know the quoting context at each `{{`: a command
    substitution, `$(…)` or `` `…` ``, opens a fresh context even inside double quotes, so
    `test "$(grep -c x {{ p }})"` is correctly quoted (the added quotes belong to the inner
    command) and is not reported.
    """
    offsets: list[int] = []
    stack: list[str] = []  # "'", '"', "$(" (with `depth` parentheses open), "`"
    depths: list[int] = []
    i = 0
    while i < len(text):
        context = stack[-1] if stack else ""
        if text.startswith("{{", i):
            if context in ("'", '"'):
                offsets.append(i)
            end = text.find("}}", i)
            i = end + 2 if end != -1 else len(text)
            continue
        ch = text[i]
        if context == "'":
            if ch == "'":
                stack.pop()
        elif ch == "\\":
            i += 1  # the next character is taken literally (or is a line continuation)
        elif text.startswith("$(", i):
            stack.append("$(")
            depths.append(0)
            i += 1
        elif ch == "`":
            if context == "`":
                stack.pop()
            else:
                stack.append("`")
        elif context == '"':
            if ch == '"':
                stack.pop()
        elif ch in ("'", '"'):
            stack.append(ch)
        elif context == "$(" and ch == "(":
            depths[-1] += 1
        elif context == "$(" and ch == ")":
            if depths[-1]:
                depths[-1] -= 1
            else:
                stack.pop()
                depths.pop()
        i += 1
    return offsets


def expressions() -> ModuleType:
    """The template engine, imported the first time a runbook actually holds a template."""
    from . import expressions as module

    return module


def check_semantics(doc: SourceDoc) -> list[Diagnostic]:
    return Checker(doc).run()
