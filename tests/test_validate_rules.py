"""Every validation rule has a failing fixture whose line:col and message are asserted.

Each case is a small runbook with exactly the mistake under test; the expected diagnostics are
`line:col: severity: message fragment`. The positions were checked by hand against the YAML
text: they point at the node an author has to change.
"""

from __future__ import annotations

import pytest

from wpk.engine.validate import validate_text

HEAD = """\
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: demo
  version: 1.0.0
spec:
"""  # lines 1-6; the spec body starts on line 7


def run(body: str) -> list[str]:
    text = HEAD + body
    result = validate_text(text, "rb.yaml")
    return [f"{d.line}:{d.col}: {d.severity}: {d.message}" for d in result.diagnostics]


def assert_found(found: list[str], expected: list[str]) -> None:
    """Every expected `line:col: severity: fragment` matches one diagnostic, and no error is extra."""
    remaining = list(found)
    for want in expected:
        pos, _, fragment = want.partition(" ~ ")
        match = next((f for f in remaining if f.startswith(pos) and fragment in f), None)
        assert match is not None, f"expected {want!r} in {found!r}"
        remaining.remove(match)
    extra_errors = [f for f in remaining if ": error: " in f]
    assert not extra_errors, f"unexpected errors: {extra_errors}"


CASES: dict[str, tuple[str, list[str]]] = {
    "unknown step field with did-you-mean": (
        """\
  steps:
    - id: a
      uses: core.noop
    - id: b
      uses: core.noop
      need: [a]
""",
        ["12:7: error: ~ unknown field 'need' in step 'b' (did you mean 'needs'?)"],
    ),
    "missing uses": (
        """\
  steps:
    - id: a
      with: {message: hi}
""",
        ["8:7: error: ~ missing required field 'uses' in step 'a'"],
    ),
    "wrong type": (
        """\
  priority: high
  steps:
    - id: a
      uses: core.noop
""",
        ["7:13: error: ~ spec.priority: expected integer, got string"],
    ),
    "unknown apiVersion": (
        "",
        [],  # replaced below: needs its own head
    ),
    "duplicate step id": (
        """\
  steps:
    - id: a
      uses: core.noop
    - id: a
      uses: core.noop
""",
        ["10:11: error: ~ duplicate step id 'a' (first defined at line 8)"],
    ),
    "needs unknown step": (
        """\
  steps:
    - id: fetch
      uses: core.noop
    - id: use
      uses: core.noop
      needs: [fecth]
""",
        ["12:15: error: ~ step 'use' needs unknown step 'fecth' (did you mean 'fetch'?)"],
    ),
    "cycle": (
        """\
  steps:
    - id: a
      uses: core.noop
      needs: [b]
    - id: b
      uses: core.noop
      needs: [c]
    - id: c
      uses: core.noop
      needs: [a]
""",
        ["10:15: error: ~ dependency cycle: a -> c -> b -> a"],
    ),
    "template syntax": (
        """\
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ 1 + }}"}
""",
        ["10:31: error: ~ invalid template: syntax error"],
    ),
    "undeclared param": (
        """\
  params:
    target: {type: string, default: web}
  steps:
    - id: a
      uses: core.echo
      with:
        message: "{{ params.traget }}"
""",
        [
            "13:22: error: ~ unknown parameter 'traget' (did you mean 'target'?)",
            "8:5: warning: ~ parameter 'target' is never used",
        ],
    ),
    "undeclared secret": (
        """\
  secrets: [api_token]
  steps:
    - id: a
      uses: core.echo
      with:
        message: "{{ secrets.api_tokn }}"
""",
        ["12:22: error: ~ secret 'api_tokn' is not declared in spec.secrets (did you mean 'api_token'?)"],
    ),
    "unknown step reference": (
        """\
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ steps.zzz.outputs.x }}"}
""",
        ["10:27: error: ~ unknown step 'zzz'"],
    ),
    "reference to a step that is not upstream": (
        """\
  steps:
    - id: a
      uses: core.echo
      with: {message: hi}
      outputs: {said: "{{ result.message }}"}
    - id: b
      uses: core.echo
      with: {message: "{{ steps.a.outputs.said }}"}
""",
        ["14:27: error: ~ step 'a' is not upstream of 'b': add it (or a step after it) to `needs`"],
    ),
    "unknown output of an upstream step": (
        """\
  steps:
    - id: a
      uses: core.echo
      with: {message: hi}
      outputs: {said: "{{ result.message }}"}
    - id: b
      needs: [a]
      uses: core.echo
      with: {message: "{{ steps.a.outputs.sad }}"}
""",
        ["15:27: error: ~ step 'a' has no output 'sad' (did you mean 'said'?)"],
    ),
    "for_each that is neither a list nor an expression": (
        """\
  steps:
    - id: a
      uses: core.echo
      for_each: "one, two"
      with: {message: "{{ item }}"}
""",
        ["10:17: error: ~ `for_each` must be a list or a single {{ expression }}"],
    ),
    "item outside for_each": (
        """\
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ item }}"}
""",
        ["10:27: error: ~ `item` is only defined inside a step with `for_each`"],
    ),
    "bad duration": (
        """\
  steps:
    - id: a
      uses: core.noop
      timeout: 5 minutes
""",
        ["10:16: error: ~ step 'a' timeout"],
    ),
    "statement in a template": (
        """\
  steps:
    - id: a
      uses: core.echo
      with:
        message: "{% for x in [1] %}x{% endfor %}"
""",
        ["11:19: error: ~ statements ({% … %}) are not allowed"],
    ),
    "sandbox escape attempt": (
        """\
  steps:
    - id: a
      uses: core.echo
      with:
        message: "{{ params.__class__ }}"
""",
        ["11:28: error: ~ names and keys beginning with '_' are not allowed"],
    ),
    "param schema with $ref": (
        """\
  params:
    target: {$ref: "file:///etc/passwd"}
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ params.target }}"}
""",
        ["8:14: error: ~ '$ref' is not allowed"],
    ),
    "catastrophic pattern": (
        """\
  params:
    target: {type: string, pattern: "^(a|aa)+$", default: aaaa}
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ params.target }}"}
""",
        ["8:37: error: ~ backtracks catastrophically"],
    ),
    "default that breaks its own schema": (
        """\
  params:
    replicas: {type: integer, minimum: 1, default: 0}
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ params.replicas }}"}
""",
        ["8:52: error: ~ default of parameter 'replicas'"],
    ),
    "forbidden env key": (
        """\
  steps:
    - id: a
      uses: shell.run
      rollback: none
      with:
        command: "true"
        env: {LD_PRELOAD: /tmp/x.so}
""",
        ["13:15: error: ~ `env` may not set 'LD_PRELOAD'"],
    ),
    "unknown action with did-you-mean": (
        """\
  steps:
    - id: a
      uses: k8s.scael
      with: {name: web, replicas: 2}
""",
        ["9:13: error: ~ unknown action 'k8s.scael' (did you mean 'k8s.scale'?)"],
    ),
    "adapter input typo": (
        """\
  steps:
    - id: a
      uses: k8s.scale
      with: {name: web, replica: 2}
""",
        ["10:25: error: ~ unknown field 'replica'", "10:13: error: ~ missing required field 'replicas'"],
    ),
    "templated input whose param type is wrong": (
        """\
  params:
    count: {type: string, default: "3"}
  steps:
    - id: a
      uses: k8s.scale
      with: {name: web, replicas: "{{ params.count }}"}
""",
        ["12:35: error: ~ expected integer, but parameter 'count' is declared string"],
    ),
    "rollback body checked like a step": (
        """\
  steps:
    - id: a
      uses: shell.run
      with: {argv: ["true"]}
      rollback:
        uses: shell.rnu
        with: {argv: ["{{ params.nope }}"]}
""",
        ["12:15: error: ~ unknown action 'shell.rnu'", "13:27: error: ~ unknown parameter 'nope'"],
    ),
    "finally step checked like a step": (
        """\
  steps:
    - id: a
      uses: core.noop
  finally:
    - id: tell
      uses: core.echo
      with: {message: "{{ params.missing }}"}
""",
        ["13:27: error: ~ unknown parameter 'missing'"],
    ),
    "shell_unquoted warns": (
        """\
  params:
    flags: {type: string, default: "-l"}
  steps:
    - id: a
      uses: shell.run
      rollback: none
      with: {command: "ls {{ params.flags | shell_unquoted }}"}
""",
        ["13:45: warning: ~ `shell_unquoted`"],
    ),
    "when must be a whole expression": (
        """\
  steps:
    - id: a
      uses: core.noop
      when: "yes {{ true }}"
""",
        ["10:13: error: ~ `when` must be true, false or a single {{ expression }}"],
    ),
    "write without inverse warns when rollback is on": (
        """\
  steps:
    - id: a
      uses: k8s.restart
      with: {name: web}
""",
        ["9:13: warning: ~ has no automatic inverse"],
    ),
}


@pytest.mark.parametrize("name", [n for n in CASES if n != "unknown apiVersion"])
def test_rule(name: str) -> None:
    body, expected = CASES[name]
    assert_found(run(body), expected)


def test_unknown_api_version_and_kind() -> None:
    text = (
        "apiVersion: wpk/v2\nkind: Runbok\nmetadata: {name: demo, version: 1.0.0}\n"
        "spec:\n  steps: [{id: a, uses: core.noop}]\n"
    )
    found = [f"{d.line}:{d.col}: {d.message}" for d in validate_text(text, "x.yaml").diagnostics]
    assert any(f.startswith("1:13: apiVersion: must be 'wpk/v1'") for f in found), found
    assert any(f.startswith("2:7: kind: must be 'Runbook'") for f in found), found


def test_every_problem_reported_at_once() -> None:
    found = run("""\
  steps:
    - id: a
      uses: core.nop
    - id: a
      uses: core.noop
      needs: [zz]
""")
    assert len([f for f in found if ": error: " in f]) == 3, found


def test_valid_document_has_no_diagnostics() -> None:
    found = run("""\
  params:
    target: {type: string, default: web}
  steps:
    - id: a
      uses: core.echo
      with: {message: "{{ params.target }}"}
      outputs: {said: "{{ result.message }}"}
    - id: b
      needs: [a]
      uses: core.echo
      with: {message: "{{ steps.a.outputs.said }} {{ execution.id }}"}
""")
    assert found == []


def test_documents_validated_in_one_process_each_get_their_own_diagnostics() -> None:
    """Validation keeps input errors, parameter schemas and pattern probes across the documents
    of one process (engine/semantics.py): the same mistake in another document is reported at
    that document's own position, and the same step without the mistake gets nothing."""
    body = """\
  params:
    env: {type: string, pattern: "^[a-z]+$", default: "Prod"}
  steps:
    - id: call
      uses: api.request
      with: {url: "{{ params.env }}/x", method: GET, bogus: 1}
"""
    first = run(body)
    assert_found(first, ["8:55 ~ does not match", "12:54 ~ unknown field 'bogus'"])
    shifted = run("  # a comment moves everything one line down\n" + body)
    assert_found(shifted, ["9:55 ~ does not match", "13:54 ~ unknown field 'bogus'"])
    fixed = run(body.replace(", bogus: 1", "").replace('"Prod"', '"prod"'))
    assert not [f for f in fixed if ": error: " in f], fixed
