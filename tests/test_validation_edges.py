"""The edges of each validation rule on `needs` and step references, with exact diagnostics.

tests/test_validate_rules.py has one failing fixture per rule; this file walks each rule's
edges: a step that needs itself (the shortest cycle), a cycle hanging off an acyclic prefix,
`needs` naming a `finally` or rollback step, references to steps that run later or never, and
the rows that must stay valid (so a rule that grows too eager turns red as well).
"""

from __future__ import annotations

import pytest

from wpk.engine.validate import validate_text

HEAD = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"  # spec body: line 5


def diagnostics(body: str) -> list[str]:
    result = validate_text(HEAD + body, "t.yaml")
    return [f"{d.line}:{d.col} {d.severity} {d.code}: {d.message}" for d in result.diagnostics]


# (case, body, the exact diagnostics)
EDGES: list[tuple[str, str, list[str]]] = [
    (
        "a step that needs itself is a cycle",
        "  steps:\n    - {id: a, uses: core.noop, needs: [a]}\n",
        ["6:40 error cycle: dependency cycle: a -> a"],
    ),
    (
        "a self-need among other needs is still a cycle",
        "  steps:\n    - {id: b, uses: core.noop}\n    - {id: a, uses: core.noop, needs: [b, a]}\n",
        ["7:43 error cycle: dependency cycle: a -> a"],
    ),
    (
        "a step needing itself twice: one duplicate, one cycle",
        "  steps:\n    - {id: a, uses: core.noop, needs: [a, a]}\n",
        [
            "6:39 error schema-uniqueItems: step 'a' needs: items must be unique",
            "6:40 error cycle: dependency cycle: a -> a",
        ],
    ),
    (
        "a two-step cycle",
        "  steps:\n    - {id: a, uses: core.noop, needs: [b]}\n    - {id: b, uses: core.noop, needs: [a]}\n",
        ["6:40 error cycle: dependency cycle: a -> b -> a"],
    ),
    (
        "a cycle below an acyclic start is found",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, needs: [a, c]}\n"
        "    - {id: c, uses: core.noop, needs: [b]}\n",
        ["7:43 error cycle: dependency cycle: b -> c -> b"],
    ),
    (
        "needs naming a finally step",
        "  steps:\n    - {id: a, uses: core.noop, needs: [f]}\n  finally:\n    - {id: f, uses: core.noop}\n",
        [
            "6:40 error unknown-need: step 'a' needs unknown step 'f' "
            "(finally and rollback steps cannot be needed)"
        ],
    ),
    (
        "needs naming a rollback step",
        "  steps:\n    - {id: a, uses: core.noop, needs: [r]}\n"
        "  rollback:\n    steps:\n      - {id: r, uses: core.noop}\n",
        [
            "6:40 error unknown-need: step 'a' needs unknown step 'r' "
            "(finally and rollback steps cannot be needed)"
        ],
    ),
    (
        "a finally step may not have needs",
        "  steps:\n    - {id: a, uses: core.noop}\n  finally:\n    - {id: f, uses: core.noop, needs: [a]}\n",
        ["8:32 error schema-additionalProperties: unknown field 'needs' in step 'f'"],
    ),
    (
        "a rollback step may not have needs",
        "  steps:\n    - {id: a, uses: core.noop}\n"
        "  rollback:\n    steps:\n      - {id: r, uses: core.noop, needs: [a]}\n",
        ["9:34 error schema-additionalProperties: unknown field 'needs' in spec.rollback.steps[0]"],
    ),
    (
        "a finally id may not repeat a main id",
        "  steps:\n    - {id: a, uses: core.noop}\n  finally:\n    - {id: a, uses: core.noop}\n",
        ["8:12 error duplicate-step: duplicate step id 'a' (first defined at line 6)"],
    ),
    (
        "a step may not reference its own outputs",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ steps.a.outputs }}'}}\n",
        ["6:52 error reference: step 'a' is not upstream of 'a': add it (or a step after it) to `needs`"],
    ),
    (
        "a main step may not reference a finally step",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ steps.f.status }}'}}\n"
        "  finally:\n    - {id: f, uses: core.noop}\n",
        ["6:52 error reference: step 'f' is not upstream of 'a': add it (or a step after it) to `needs`"],
    ),
    (
        "a finally step may not reference a later finally step",
        "  steps:\n    - {id: a, uses: core.noop}\n  finally:\n"
        "    - {id: f, uses: core.echo, with: {message: '{{ steps.g.status }}'}}\n"
        "    - {id: g, uses: core.noop}\n",
        ["8:52 error reference: step 'g' cannot be referenced here (it has not run yet)"],
    ),
    (
        "`item` outside for_each",
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ item }}'}}\n",
        ["6:52 error reference: `item` is only defined inside a step with `for_each`"],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in EDGES], ids=[c for c, _, _ in EDGES])
def test_rule_edges(body: str, expected: list[str]) -> None:
    assert diagnostics(body) == expected


VALID: list[tuple[str, str]] = [
    ("empty needs", "  steps:\n    - {id: a, uses: core.noop, needs: []}\n"),
    (
        "a diamond is not a cycle",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, needs: [a]}\n"
        "    - {id: c, uses: core.noop, needs: [a]}\n    - {id: d, uses: core.noop, needs: [b, c]}\n",
    ),
    (
        "needs listed before the step they name",
        "  steps:\n    - {id: b, uses: core.noop, needs: [a]}\n    - {id: a, uses: core.noop}\n",
    ),
    (
        "a transitive ancestor may be referenced",
        "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, needs: [a]}\n"
        "    - {id: c, uses: core.echo, needs: [b], with: {message: '{{ steps.a.outputs }}'}}\n",
    ),
    (
        "finally and rollback steps may reference any main step",
        "  steps:\n    - {id: a, uses: core.noop}\n"
        "  finally:\n    - {id: f, uses: core.echo, with: {message: '{{ steps.a.status }}'}}\n"
        "  rollback:\n    steps:\n"
        "      - {id: r, uses: core.echo, with: {message: '{{ steps.a.status }}'}}\n",
    ),
    (
        "`item` and `index` inside for_each",
        "  steps:\n    - {id: a, uses: core.echo, for_each: [1],"
        " with: {message: '{{ item }} {{ index }}'}}\n",
    ),
]


@pytest.mark.parametrize("body", [b for _, b in VALID], ids=[c for c, _ in VALID])
def test_rule_edges_that_are_valid(body: str) -> None:
    assert diagnostics(body) == []
