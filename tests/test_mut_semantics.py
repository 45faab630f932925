"""Validation edges that mutation testing of engine/semantics.py found unpinned (issue 15).

Two tables, each row a runbook and its exact diagnostics:

- which steps a template may reference, on a runbook long enough (20 main steps) that the
  visibility bitsets span three bytes: a chain's ancestors, every main step from `finally` and
  rollback steps, the earlier steps of the same list, a rollback body's own step;
- the type a whole-template input gets from its parameter's declaration or its filter, checked
  against the action's input schema (one row per filter and per declared type).
"""

from __future__ import annotations

import pytest

from wpk.engine.semantics import _templates_inside_shell_quotes
from wpk.engine.validate import validate_text

HEAD = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"


def diagnostics(body: str) -> list[str]:
    result = validate_text(HEAD + body, "t.yaml")
    return [f"{d.line}:{d.col} {d.severity} {d.code}: {d.message}" for d in result.diagnostics]


# --------------------------------------------------------------------------------------------
# Visibility over many steps

# s00 <- s01 <- ... <- s18 is a chain (each needs the one before); s19 needs nothing.
CHAIN = ["  steps:"] + [
    f"    - {{id: s{i:02d}, uses: core.noop{f', needs: [s{i - 1:02d}]' if 0 < i < 19 else ''}}}"
    for i in range(20)
]


def refs(*ids: str) -> str:
    return " ".join("{{ steps.%s.status }}" % i for i in ids)  # noqa: UP031 - braces galore


def echo(step: str, *ids: str, extra: str = "") -> str:
    return f"    - {{id: {step}, uses: core.echo{extra}, with: {{message: '{refs(*ids)}'}}}}"


def runbook(main: list[str], finally_: list[str], rollback: list[str]) -> str:
    lines = [*CHAIN, *main, "  finally:", *finally_, "  rollback:", "    steps:", *rollback]
    return "\n".join(lines) + "\n"


ADD_NEED = "add it (or a step after it) to `needs`"
ALL_MAIN = ("s00", "s07", "s08", "s09", "s15", "s16", "s17", "s18", "s19")

VISIBILITY: list[tuple[str, str, list[str]]] = [
    (
        "a chain's every ancestor, across byte boundaries; finally and rollback see every main step",
        runbook(
            [echo("late", "s00", "s07", "s08", "s09", "s15", "s16", "s17", "s18", extra=", needs: [s18]")],
            [echo("f1", *ALL_MAIN, "late"), echo("f2", "f1", "s00")],
            [echo("r1", *ALL_MAIN, "late"), echo("r2", "r1", "s16")],
        ),
        [],
    ),
    (
        "a step outside the chain sees none of it, nor itself",
        runbook(
            [echo("late", "s16", "late", extra=", needs: [s19]")], [echo("f1", "s00")], [echo("r1", "s00")]
        ),
        [
            "26:69 error reference: step 's16' is not upstream of 'late': " + ADD_NEED,
            "26:92 error reference: step 'late' is not upstream of 'late': " + ADD_NEED,
        ],
    ),
    (
        "a later step of the same list, and finally steps from rollback steps, have not run yet",
        runbook([], [echo("f1", "f2"), echo("f2", "f1")], [echo("r1", "f1", "r2"), echo("r2", "r1")]),
        [
            "27:53 error reference: step 'f2' cannot be referenced here (it has not run yet)",
            "31:53 error reference: step 'f1' cannot be referenced here (it has not run yet)",
            "31:75 error reference: step 'r2' cannot be referenced here (it has not run yet)",
        ],
    ),
    (
        "a rollback body sees its own step and the step's ancestors, not the steps after it",
        runbook(
            [
                "    - {id: late, uses: core.noop, needs: [s16],"
                f" rollback: {{uses: core.echo, with: {{message: '{refs('late', 's00', 's16', 's17')}'}}}}}}"
            ],
            [echo("f1", "s00")],
            [echo("r1", "s00")],
        ),
        ["26:167 error reference: step 's17' cannot be referenced here (it has not run yet)"],
    ),
]


VISIBILITY += [
    (
        "65 main steps: the bitset of every main step holds the last one",
        "  steps:\n"
        + "".join(f"    - {{id: m{i}, uses: core.noop}}\n" for i in range(65))
        + "  finally:\n    - {id: f, uses: core.echo,"
        " with: {message: '{{ steps.m64.status }} {{ steps.m0.status }}'}}\n",
        [],
    ),
    (
        "a step without an id sees no step",
        "  steps:\n    - {uses: core.echo, with: {message: '{{ steps.a.status }}'}}\n"
        "    - {id: a, uses: core.noop}\n",
        [
            "6:7 error schema-required: missing required field 'id' in spec.steps[0]",
            "6:45 error reference: step 'a' is not upstream of None: " + ADD_NEED,
        ],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [row[1:] for row in VISIBILITY], ids=[row[0] for row in VISIBILITY]
)
def test_which_steps_a_template_may_reference(body: str, expected: list[str]) -> None:
    assert diagnostics(body) == expected


# --------------------------------------------------------------------------------------------
# Typed parameters in whole-template inputs

TARGETS = {  # an input of each JSON type, and how to write a step that sets it
    "boolean": "{uses: api.request, rollback: none, with: {url: 'https://x.test', verify_tls: %s}}",
    "integer": "{uses: k8s.scale, rollback: none, with: {kind: Deployment, name: x, replicas: %s}}",
    "string": "{uses: core.fail, with: {message: %s}}",
}
COLUMN = {"boolean": "7:92", "integer": "7:92", "string": "7:48"}
ACTION = {
    "boolean": "api.request input verify_tls",
    "integer": "k8s.scale input replicas",
    "string": "core.fail input message",
}


def typed_step(declared: str, template: str, target: str) -> str:
    return (
        f"  params: {{n: {{type: {declared}}}}}\n  steps:\n    - {{id: a, "
        + TARGETS[target][1:] % repr(template)
        + "\n"
    )


def mismatch(target: str, declared: str) -> list[str]:
    return [
        f"{COLUMN[target]} error input-type: {ACTION[target]}: expected {target}, "
        f"but parameter 'n' is declared {declared}"
    ]


# (a string parameter through a filter, or a parameter of a declared type), the input's type,
# and the type the template is taken to give (None: accepted)
FILTERED: list[tuple[str, str, str | None]] = [
    ("int", "boolean", "integer"),
    ("int", "integer", None),
    ("float", "integer", "number"),
    ("string", "integer", "string"),
    ("bool", "integer", "boolean"),
    ("bool", "boolean", None),
    ("tojson", "boolean", "string"),
    ("lower", "boolean", "string"),
    ("upper", "integer", "string"),
    ("trim", "integer", "string"),
]
DECLARED: list[tuple[str, str, str | None]] = [
    ("string", "boolean", "string"),
    ("string", "string", None),
    ("integer", "boolean", "integer"),
    ("integer", "string", None),  # numbers are rendered as text where a string is expected
    ("number", "integer", "number"),
    ("number", "string", None),
    ("boolean", "integer", "boolean"),
    ("boolean", "string", "boolean"),
    ("array", "string", "array"),
    ("object", "boolean", "object"),
]


@pytest.mark.parametrize(("filt", "target", "gives"), FILTERED)
def test_a_filter_decides_the_type_of_a_whole_template(filt: str, target: str, gives: str | None) -> None:
    body = typed_step("string", "{{ params.n | %s }}" % filt, target)  # noqa: UP031
    assert diagnostics(body) == ([] if gives is None else mismatch(target, gives))


@pytest.mark.parametrize(("declared", "target", "gives"), DECLARED)
def test_a_declared_parameter_type_is_checked_against_the_input(
    declared: str, target: str, gives: str | None
) -> None:
    body = typed_step(declared, "{{ params.n }}", target)
    assert diagnostics(body) == ([] if gives is None else mismatch(target, gives))


# --------------------------------------------------------------------------------------------
# References to fields, outputs and parameters

STEPS_AB = (
    "  steps:\n    - {id: a, uses: core.noop, outputs: {x: '{{ result }}'}}\n    - {id: c, uses: core.noop}\n"
)

REFERENCES: list[tuple[str, str, list[str]]] = [
    (
        "a step's three fields, and a near miss",
        STEPS_AB + "    - {id: b, uses: core.echo, needs: [a], with: {message: '{{ steps.a.outputs }} "
        "{{ steps.a.status }} {{ steps.a.result }} {{ steps.a.resul }} {{ steps.a }}'}}\n",
        [
            "8:128 error reference: steps.a has no field 'resul' (did you mean 'result'?) "
            "(use outputs, status or result)"
        ],
    ),
    (
        "the execution's three fields",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ execution.id }} "
        "{{ execution.dry_run }} {{ execution.attempt }} {{ execution }} {{ execution.ids }}'}}\n",
        ["6:135 error reference: execution has no field 'ids' (it has id, dry_run, attempt)"],
    ),
    (
        "declared outputs, and a step that declares none",
        STEPS_AB + "    - {id: b, uses: core.echo, needs: [a, c], with: {message: "
        "'{{ steps.a.outputs.x }} {{ steps.a.outputs.y }} {{ steps.c.outputs.z }}'}}\n",
        [
            "8:91 error reference: step 'a' has no output 'y' (its outputs: x)",
            "8:115 error reference: step 'c' has no output 'z' (its outputs: none)",
        ],
    ),
    (
        "a bad default, at the top and inside an array; unused parameters",
        "  params:\n    p: {type: integer, default: x}\n"
        "    q: {type: array, items: {type: integer}, default: [1, x]}\n    r: {type: string}\n"
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ params.p }}'}}\n",
        [
            "6:33 error param-default: default of parameter 'p': expected integer, got string",
            "7:5 warning unused-param: parameter 'q' is never used",
            "7:59 error param-default: default of parameter 'q' ([1]): expected integer, got string",
            "8:5 warning unused-param: parameter 'r' is never used",
        ],
    ),
    (
        "all of params at once uses every parameter",
        "  params:\n    p: {type: string}\n"
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ params }}'}}\n",
        [],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [row[1:] for row in REFERENCES], ids=[row[0] for row in REFERENCES]
)
def test_references_to_fields_outputs_and_parameters(body: str, expected: list[str]) -> None:
    assert diagnostics(body) == expected


# --------------------------------------------------------------------------------------------
# Parameter patterns, rollback switched off, columns inside scalars

USE_ALL = "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ params }}'}}\n"
NAMES = "(names in scope: params, secrets, steps, item, index, execution, result)"

MORE: list[tuple[str, str, list[str]]] = [
    (
        "an invalid pattern, at the top, in items, in properties; its default is not checked",
        "  params:\n    p: {type: string, pattern: '(', default: 5}\n"
        "    q: {type: array, items: {type: string, pattern: '['}}\n"
        "    r: {type: object, properties: {t: {type: string, pattern: ')'}}}\n" + USE_ALL,
        [
            "6:32 error param-pattern: parameter 'p': invalid pattern: missing ) at position 1",
            "7:53 error param-pattern: parameter 'q': invalid pattern: "
            "unterminated character set at position 1",
            "8:63 error param-pattern: parameter 'r': invalid pattern: unbalanced parenthesis at position 0",
        ],
    ),
    (
        "a catastrophic pattern is named with the probe that hung it; its default is not checked",
        "  params:\n    p: {type: string, pattern: '(x|xx)*$', default: 5}\n" + USE_ALL,
        [
            "6:32 error param-pattern-redos: parameter 'p': pattern '(x|xx)*$' backtracks catastrophically "
            f"(matching '{'x' * 48}!' took too long); rewrite it without nested repetition"
        ],
    ),
    (
        "a good pattern checks the default",
        "  params:\n    p: {type: string, pattern: '^a+$', default: b}\n"
        "    q: {type: string, pattern: '^a+$', default: aa}\n" + USE_ALL,
        ["6:49 error param-default: default of parameter 'p': 'b' does not match '^a+$'"],
    ),
    (
        "a parameter that is no mapping, or a bad schema, does not stop the next one's checks",
        "  params:\n    o: 5\n    p: {type: strin}\n    q: {type: string, pattern: '('}\n" + USE_ALL,
        [
            "6:8 error schema-type: spec.params.o: expected mapping, got integer",
            "7:15 error schema-anyOf: spec.params.p.type: string value is not valid here",
            "8:32 error param-pattern: parameter 'q': invalid pattern: missing ) at position 1",
        ],
    ),
    (
        "a write without an inverse is worth a warning",
        "  steps:\n    - {id: a, uses: shell.run, with: {argv: [x]}}\n",
        [
            "6:21 warning no-inverse: step 'a' uses shell.run, which has no automatic inverse: if a later "
            "step fails, rollback cannot undo it; add a `rollback:` body, or `rollback: none` to say so"
        ],
    ),
    (
        "but not when rollback is switched off",
        "  rollback: {enabled: false}\n  steps:\n    - {id: a, uses: shell.run, with: {argv: [x]}}\n",
        [],
    ),
    (
        "the column of a template: inside quotes one more, in a block scalar the scalar's start",
        "  steps:\n"
        + "".join(
            f"    - id: {i}\n      uses: core.echo\n      with:\n        message: {m}\n"
            for i, m in [
                ("a", '"x {{ nope }}"'),
                ("b", "'x {{ nope }}'"),
                ("c", "x {{ nope }}"),
                ("e", "|\n          x {{ nope }}"),
            ]
        ),
        [
            f"9:24 error reference: unknown name 'nope' {NAMES}",
            f"13:24 error reference: unknown name 'nope' {NAMES}",
            f"17:23 error reference: unknown name 'nope' {NAMES}",
            f"21:18 error reference: unknown name 'nope' {NAMES}",
        ],
    ),
]


MORE += [
    (
        "a step without an id in the middle: the steps after it are still known",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {uses: core.noop}\n"
        "    - {id: b, uses: core.noop, outputs: {x: '{{ result }}'}}\n"
        "    - {id: c, uses: core.echo, needs: [b], with: {message: '{{ steps.b.outputs.x }}'}}\n",
        ["7:7 error schema-required: missing required field 'id' in spec.steps[1]"],
    ),
    (
        "a duplicate id names the line of the first `id`, not of its step",
        "  steps:\n    - uses: core.noop\n      id: a\n    - uses: core.noop\n      id: a\n",
        ["9:11 error duplicate-step: duplicate step id 'a' (first defined at line 7)"],
    ),
    (
        "`item` and `index` in a rollback body: only when its step has `for_each`",
        "  steps:\n    - id: a\n      uses: core.echo\n      for_each: [1, 2]\n"
        "      with: {message: '{{ item }}'}\n"
        "      rollback: {uses: core.echo, with: {message: '{{ item }} {{ index }}'}}\n"
        "    - id: b\n      uses: core.echo\n      with: {message: x}\n"
        "      rollback: {uses: core.echo, with: {message: '{{ item }}'}}\n",
        ["14:55 error reference: `item` is only defined inside a step with `for_each`"],
    ),
]


MORE += [
    (
        "`item` and `index` in finally steps: only with their own `for_each`",
        "  steps:\n    - {id: a, uses: core.noop}\n  finally:\n"
        "    - {id: f, uses: core.echo, for_each: [1], with: {message: '{{ item }}'}}\n"
        "    - {id: g, uses: core.echo, with: {message: '{{ index }}'}}\n",
        ["9:52 error reference: `index` is only defined inside a step with `for_each`"],
    ),
    (
        "a step without an id, `needs` that is no list, a need that is no string: the rest is checked",
        "  steps:\n    - {uses: core.noop}\n    - {id: a, uses: core.noop, needs: x}\n"
        "    - {id: b, uses: core.noop, needs: [5, zz]}\n    - {id: c, uses: core.noop, needs: [yy]}\n",
        [
            "6:7 error schema-required: missing required field 'id' in spec.steps[0]",
            "7:39 error schema-type: step 'a' needs: expected list, got string",
            "8:40 error schema-type: step 'b' needs[0]: expected string, got integer",
            "8:43 error unknown-need: step 'b' needs unknown step 'zz'",
            "9:40 error unknown-need: step 'c' needs unknown step 'yy'",
        ],
    ),
    (
        "`max_failures` only with `for_each`",
        "  steps:\n    - {id: a, uses: core.noop, max_failures: 1}\n"
        "    - {id: b, uses: core.noop, for_each: [1], max_failures: 1}\n",
        [
            "6:32 error max-failures-without-for-each: `max_failures` counts failed `for_each` items, "
            "and this step has no `for_each`: remove it "
            "(a single step's failure is tolerated with `continue_on_error`)"
        ],
    ),
]


ITEM_ONLY = "is only defined inside a step with `for_each`"
MORE += [
    (
        "`when` and `for_each` as text around a template, and as one template",
        "  steps:\n    - {id: a, uses: core.noop, when: 'x {{ true }}'}\n"
        "    - {id: b, uses: core.noop, for_each: 'x {{ [1] }}'}\n"
        "    - {id: c, uses: core.noop, when: '{{ true }}', for_each: '{{ [1] }}'}\n",
        [
            "6:38 error when-shape: `when` must be true, false or a single {{ expression }}",
            "7:42 error for-each-shape: `for_each` must be a list or a single {{ expression }} "
            "that gives a list",
        ],
    ),
    (
        "a template that does not compile",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: 'x {{ 1 + }}'}}\n",
        ["6:58 error template: invalid template: syntax error: unexpected 'end of print statement'"],
    ),
    (
        "`item` and `index` are not in scope in `for_each`, `when` and `timeout` of their own step",
        "  steps:\n    - {id: a, uses: core.echo, for_each: '{{ [item] }}', when: '{{ index }}', "
        "timeout: '{{ item }}s', with: {message: '{{ item }} {{ index }}'}}\n",
        [
            f"6:47 error reference: `item` {ITEM_ONLY}",
            f"6:68 error reference: `index` {ITEM_ONLY}",
            f"6:92 error reference: `item` {ITEM_ONLY}",
        ],
    ),
    (
        "shell warnings: quotes around a template in a shell.run command only, and shell_unquoted",
        "  params: {p: {type: string}}\n  steps:\n"
        "    - {id: a, uses: shell.run, rollback: none,"
        " with: {command: \"echo '{{ params.p }}' {{ params.p | shell_unquoted }}\"}}\n"
        "    - {id: b, uses: core.echo, with: {message: \"echo '{{ params.p }}'\"}}\n"
        "    - {id: c, uses: shell.run, rollback: none, with: {argv: [\"'{{ params.p }}'\"]}}\n",
        [
            "7:71 warning shell-quoted-template: template inside shell quotes: wpk already quotes "
            "interpolations in `command`, so these quotes become part of the value; remove them",
            "7:101 warning shell-unquoted: `shell_unquoted` inserts the value into the shell command "
            "unquoted: make sure it can never come from untrusted input",
        ],
    ),
]


MORE += [
    (
        "secrets: none declared, a near miss, all of them at once",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ secrets.x }} {{ secrets }}'}}\n",
        [
            "6:52 error reference: secret 'x' is not declared in spec.secrets",
            "6:68 error reference: use one secret at a time: secrets.<name>",
        ],
    ),
    (
        "a declared secret, and one misspelt",
        "  secrets: [token, 5]\n  steps:\n"
        "    - {id: a, uses: core.echo, with: {message: '{{ secrets.token }} {{ secrets.tokn }}'}}\n",
        [
            "5:20 error schema-type: spec.secrets[1]: expected string, got integer",
            "7:72 error reference: secret 'tokn' is not declared in spec.secrets (did you mean 'token'?)",
        ],
    ),
    (
        "a bad pattern does not stop the next parameter's default from being checked",
        "  params:\n    q: {type: string, pattern: '('}\n    r: {type: integer, default: x}\n" + USE_ALL,
        [
            "6:32 error param-pattern: parameter 'q': invalid pattern: missing ) at position 1",
            "7:33 error param-default: default of parameter 'r': expected integer, got string",
        ],
    ),
]


MORE += [
    (
        "`result` outside outputs, unknown names, a bare `steps`, an unknown step",
        "  steps:\n    - {id: a, uses: core.echo, outputs: {x: '{{ result }}'},"
        " with: {message: '{{ result }} {{ parms }} {{ steps }} {{ steps.b }} {{ stepz }}'}}\n",
        [
            "6:82 error reference: `result` is only defined inside `outputs`",
            f"6:95 error reference: unknown name 'parms' (did you mean 'params'?) {NAMES}",
            "6:107 error reference: refer to one step: steps.<id>.outputs|status|result",
            "6:119 error reference: unknown step 'b'",
            f"6:133 error reference: unknown name 'stepz' (did you mean 'steps'?) {NAMES}",
        ],
    ),
    (
        "an unknown adapter, an unknown action",
        "  steps:\n    - {id: a, uses: shel.run}\n    - {id: b, uses: shell.rn}\n",
        [
            "6:21 error unknown-adapter: unknown adapter 'shel' in 'shel.run' (did you mean 'shell'?)",
            "7:21 error unknown-action: unknown action 'shell.rn' (did you mean 'shell.run'?)",
        ],
    ),
    (
        "`env` of shell.run: each forbidden key once, with the reason",
        "  steps:\n    - {id: a, uses: shell.run, rollback: none,"
        " with: {argv: [x], env: {LD_PRELOAD: x, BASH_ENV: y, OK: z}}}\n",
        [
            "6:72 error forbidden-env: `env` may not set 'LD_PRELOAD': it changes how programs start "
            "(loader or shell start-up hook)",
            "6:87 error forbidden-env: `env` may not set 'BASH_ENV': it changes how programs start "
            "(loader or shell start-up hook)",
        ],
    ),
    (
        "inputs: text around a template is a string, unknown and missing fields",
        "  params: {n: {type: string}}\n  steps:\n"
        "    - {id: a, uses: core.sleep, with: {seconds: 'x{{ params.n }}', extra: 1}}\n"
        "    - {id: b, uses: core.sleep, with: {}}\n"
        "    - {id: c, uses: core.fail, with: {message: '{{ params.n }}'}}\n"
        "    - {id: e, uses: k8s.scale, rollback: none,"
        " with: {kind: Deployment, name: '{{ params.n }}', replicas: '{{ params.n | int }}'}}\n",
        [
            "7:49 error input: core.sleep input seconds: expected number, got string",
            "7:68 error input: unknown field 'extra' in core.sleep inputs",
            "8:39 error input: missing required field 'seconds' in core.sleep inputs",
        ],
    ),
]


NO_INVERSE = (
    "which has no automatic inverse: if a later step fails, rollback cannot undo it; "
    "add a `rollback:` body, or `rollback: none` to say so"
)
MORE += [
    (
        "a whole template of unknown type is not checked against the input's type",
        "  steps:\n    - {id: a, uses: core.noop, outputs: {x: '{{ result }}'}}\n"
        "    - {id: b, uses: core.sleep, needs: [a], with: {seconds: '{{ steps.a.outputs.x }}'}}\n",
        [],
    ),
    (
        "no-inverse: not with `rollback: none`, `dry_run: execute`, a rollback body, a read, "
        "or a method only known at run time",
        "  params: {m: {type: string}}\n  steps:\n"
        "    - {id: a, uses: shell.run, with: {argv: [x]}}\n"
        "    - {id: b, uses: shell.run, rollback: none, with: {argv: [x]}}\n"
        "    - {id: c, uses: shell.run, dry_run: execute, with: {argv: [x]}}\n"
        "    - {id: e, uses: shell.run, rollback: {uses: core.noop}, with: {argv: [x]}}\n"
        "    - {id: f, uses: api.request, with: {url: 'https://x.test', method: GET}}\n"
        "    - {id: g, uses: api.request, with: {url: 'https://x.test', method: POST}}\n"
        "    - {id: h, uses: api.request, with: {url: 'https://x.test', method: '{{ params.m }}'}}\n"
        "    - {id: i, uses: core.noop, dry_run: simulate}\n",
        [
            f"7:21 warning no-inverse: step 'a' uses shell.run, {NO_INVERSE}",
            f"12:21 warning no-inverse: step 'g' uses api.request, {NO_INVERSE}",
        ],
    ),
]


MORE += [
    (
        "a diamond: the shared ancestor is upstream through both sides, a sibling is not",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, needs: [a]}\n"
        "    - {id: c, uses: core.noop, needs: [a]}\n    - {id: d, uses: core.noop, needs: [b, c]}\n"
        "    - {id: e, uses: core.echo, needs: [d],"
        " with: {message: '{{ steps.a.status }} {{ steps.c.status }}'}}\n"
        "    - {id: x, uses: core.echo, needs: [b],"
        " with: {message: '{{ steps.a.status }} {{ steps.c.status }}'}}\n",
        ["11:85 error reference: step 'c' is not upstream of 'x': " + ADD_NEED],
    ),
    (
        "two cycles, each reported once; references still checked around them",
        "  steps:\n    - {id: a, uses: core.noop, needs: [b]}\n    - {id: b, uses: core.noop, needs: [a]}\n"
        "    - {id: c, uses: core.noop, needs: [d, a]}\n    - {id: d, uses: core.noop, needs: [c]}\n"
        "    - {id: e, uses: core.echo, needs: [a],"
        " with: {message: '{{ steps.b.status }} {{ steps.e.status }}'}}\n",
        [
            "6:40 error cycle: dependency cycle: a -> b -> a",
            "8:40 error cycle: dependency cycle: c -> d -> c",
            "10:85 error reference: step 'e' is not upstream of 'e': " + ADD_NEED,
        ],
    ),
    (
        "a string of statements only is still checked; a `when` that does not compile is no shape error",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{% if nope %}x{% endif %}'}}\n"
        "    - {id: c, uses: core.noop, when: '{{ 1 + }}'}\n",
        [
            "6:49 error template: invalid template: statements ({% … %}) are not allowed: "
            "templates are {{ expressions }} only",
            "7:46 error template: invalid template: syntax error: unexpected 'end of print statement'",
        ],
    ),
    (
        "an input of several types names them all",
        "  params: {v: {type: array}}\n  steps:\n    - {id: a, uses: k8s.wait,"
        " with: {kind: Deployment, name: x, jsonpath: '{.x}', value: '{{ params.v }}'}}\n",
        [
            "7:90 error input-type: k8s.wait input value: expected string or number or boolean or null, "
            "but parameter 'v' is declared array"
        ],
    ),
]


MORE += [
    (
        "every unknown need of a step is reported",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {id: c, uses: core.noop, needs: [yy, a, zz]}\n",
        [
            "7:40 error unknown-need: step 'c' needs unknown step 'yy'",
            "7:47 error unknown-need: step 'c' needs unknown step 'zz'",
        ],
    ),
    (
        "unknown parameters, with and without a near miss",
        "  params: {p: {type: string}}\n  steps:\n"
        "    - {id: a, uses: core.echo, with: {message: '{{ params.p }} {{ params.q }} {{ params.pp }}'}}\n",
        [
            "7:67 error reference: unknown parameter 'q'",
            "7:82 error reference: unknown parameter 'pp' (did you mean 'p'?)",
        ],
    ),
    (
        "a step's outputs are listed when one is missing",
        "  steps:\n    - {id: a, uses: core.noop, outputs: {x: '{{ result }}', y: '{{ result }}'}}\n"
        "    - {id: b, uses: core.echo, needs: [a], with: {message: '{{ steps.a.outputs.z }}'}}\n",
        ["7:64 error reference: step 'a' has no output 'z' (its outputs: x, y)"],
    ),
    (
        "several input problems in one step: each skipped or reported on its own",
        "  params: {n: {type: integer}}\n  steps:\n"
        "    - {id: a, uses: core.noop, outputs: {x: '{{ result }}'}}\n"
        "    - {id: b, uses: api.request, rollback: none, needs: [a], with: {url: 'https://x.test',"
        " verify_tls: '{{ steps.a.outputs.x }}', follow_redirects: '{{ params.n }}', body: '{{ params.n }}',"
        " max_response_bytes: 'x{{ params.n }}', method: PUSH}}\n",
        [
            "8:149 error input-type: api.request input follow_redirects: expected boolean, "
            "but parameter 'n' is declared integer",
            "8:211 error input: api.request input max_response_bytes: expected integer, got string",
            "8:238 error input: api.request input method: "
            "'PUSH' is not one of 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'",
        ],
    ),
    (
        "an action with a read-only condition and no `with` at all",
        "  steps:\n    - {id: a, uses: api.request}\n",
        [
            "6:7 error input: missing required field 'url' in api.request inputs",
            f"6:21 warning no-inverse: step 'a' uses api.request, {NO_INVERSE}",
        ],
    ),
]


MORE += [
    (
        "a cycle that does not return to where the search began",
        "  steps:\n    - {id: x, uses: core.noop, needs: [y]}\n    - {id: y, uses: core.noop, needs: [z]}\n"
        "    - {id: z, uses: core.noop, needs: [y]}\n",
        ["7:40 error cycle: dependency cycle: y -> z -> y"],
    ),
    (
        "a cycle is reported at the need that closes it, in its own step",
        "  steps:\n    - {id: p, uses: core.noop, needs: [q]}\n    - {id: q, uses: core.noop}\n"
        "    - {id: a, uses: core.noop, needs: [q, b]}\n    - {id: b, uses: core.noop, needs: [a]}\n",
        ["8:43 error cycle: dependency cycle: a -> b -> a"],
    ),
    (
        "ancestors of a step written before its needs; the first step is not everyone's",
        "  steps:\n    - {id: w, uses: core.noop}\n"
        "    - {id: z, uses: core.echo, needs: [y],"
        " with: {message: '{{ steps.x.status }} {{ steps.w.status }}'}}\n"
        "    - {id: y, uses: core.noop, needs: [x]}\n    - {id: x, uses: core.noop}\n",
        ["7:85 error reference: step 'w' is not upstream of 'z': " + ADD_NEED],
    ),
    (
        "shell.run input errors around a forbidden env key are all reported",
        "  steps:\n    - {id: a, uses: shell.run, rollback: none,"
        " with: {argv: 5, env: {LD_PRELOAD: x}, cwd: 7}}\n",
        [
            "6:61 error input: shell.run input argv: expected list, got integer",
            "6:70 error forbidden-env: `env` may not set 'LD_PRELOAD': it changes how programs start "
            "(loader or shell start-up hook)",
            "6:91 error input: shell.run input cwd: expected string, got integer",
        ],
    ),
]


MORE += [
    (
        "every invalid pattern of one parameter is reported, not just the first",
        "  params:\n    p: {type: array, pattern: '(', items: {type: string, pattern: '['}}\n" + USE_ALL,
        [
            "6:31 error param-pattern: parameter 'p': invalid pattern: missing ) at position 1",
            "6:67 error param-pattern: parameter 'p': invalid pattern: "
            "unterminated character set at position 1",
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [row[1:] for row in MORE], ids=[row[0] for row in MORE])
def test_patterns_rollback_switch_and_columns(body: str, expected: list[str]) -> None:
    assert diagnostics(body) == expected


def test_a_spent_pattern_budget_is_reported_once_per_parameter_and_skips_its_default() -> None:
    """The request's regex budget (`limits.regex_seconds`) already spent: each parameter with a
    pattern says so once, at its first pattern, and its default is not checked (that would need
    the pattern too). Patterns unique to this test, so no cached probe answers for them."""
    from wpk.engine.schema import regex_budget

    spent = (
        "pattern matching took too long in total for this request (limit limits.regex_seconds = 0; "
        "an operator can raise it in the `limits:` section of the agent configuration, not in the runbook)"
    )
    with regex_budget(0.0):
        got = diagnostics(
            "  params:\n    p: {type: array, pattern: '^budget-a$',"
            " items: {type: string, pattern: '^budget-b$'}, default: 5}\n"
            "    q: {type: string, pattern: '^budget-c$', default: 7}\n" + USE_ALL
        )
    assert got == [
        f"6:31 error param-pattern-budget: parameter 'p': {spent}",
        f"7:32 error param-pattern-budget: parameter 'q': {spent}",
    ]


# --------------------------------------------------------------------------------------------
# The small shell lexer behind the shell-quoted-template warning

# (command, the offsets of each `{{` that sits inside shell quotes)
SHELL_QUOTES: list[tuple[str, list[int]]] = [
    ("echo {{ a }}", []),
    ("echo '{{ a }}'", [6]),
    ('echo "{{ a }}"', [6]),
    ('echo "$(grep {{ a }})"', []),  # a command substitution opens a fresh context
    ("echo \"$(grep '{{ a }}')\"", [14]),
    ('echo "`cat {{ a }}`"', []),
    ("echo `echo '{{ a }}'`", [12]),
    ("echo \\'{{ a }}", []),  # an escaped quote opens nothing
    ('echo "a\\"{{ a }}"', [9]),  # nor does it close
    ('echo "$(f (x) {{ a }})"', []),  # parentheses inside $( … ) are counted
    ('echo "$(f (x)) {{ a }}"', [15]),
    ('echo "it\'s {{ a }}"', [11]),  # a single quote inside double quotes is a character
    ("echo '{{ a }}' {{ b }}", [6]),
    ("echo '{{ a", [6]),
    ("echo '$(' {{ a }}", []),
    ('echo $(echo "{{ a }}") {{ b }}', [13]),
    ("echo 'x' {{ a }} \"{{ b }}\"", [18]),
    ("'{{ a }}'", [1]),
    ("echo 'ab {{ a }}'", [9]),  # only a quote closes a quote
    ("echo \\\\'{{ a }}'", [8]),  # an escaped backslash, then a real quote
    ('echo "`x` {{ a }}"', [10]),  # a backtick closes its backtick
    ('echo "$(f ((x)) {{ a }})"', []),  # parentheses nest inside $( … )
]


@pytest.mark.parametrize(("command", "offsets"), SHELL_QUOTES)
def test_templates_inside_shell_quotes(command: str, offsets: list[int]) -> None:
    assert _templates_inside_shell_quotes(command) == offsets
