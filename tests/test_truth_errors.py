"""Errors that say how to fix it (issue 11, finding 5): the valid forms, the likely cause.

Each case is a runbook a user could write; `validate_text` (what `wpk validate` runs) must
answer with one line that names the position, the problem and the fix.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from example_services import run_wpk, wpk_argv, wpk_env

from wpk.engine.validate import validate_text

HEAD = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"


def errors(body: str) -> list[str]:
    result = validate_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "), "t.yaml")
    return [str(d) for d in result.errors]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2 minutes", "'2 minutes' is not a duration: write 2m"),
        ("1.5m", "'1.5m' is not a duration: write 90s"),
        ("1d", "'1d' is not a duration: write 24h"),
        ("-5", "a duration cannot be negative: -5"),
        ("soon", "'soon' is not a duration"),
    ],
)
def test_bad_durations_name_the_valid_forms(value: str, expected: str) -> None:
    (line,) = errors(f"steps:\n  - {{id: a, uses: core.noop, timeout: {value}}}\n")
    assert line.startswith("t.yaml:6:")
    assert expected in line
    assert "durations look like 500ms, 30s, 5m, 2h, or a whole number of seconds" in line


def test_spec_timeout_and_retry_backoff_say_the_same() -> None:
    lines = errors(
        "timeout: 2 hours\nsteps:\n  - {id: a, uses: core.noop, retries: {attempts: 2, backoff: 1.5s}}\n"
    )
    assert any("'2 hours' is not a duration: write 2h" in line for line in lines), lines
    assert any("'1.5s' is not a duration: write 1500ms" in line for line in lines), lines


def test_rollback_never_names_what_rollback_may_be() -> None:
    (line,) = errors("steps:\n  - {id: a, uses: core.noop, rollback: never}\n")
    assert "'never' is not valid: rollback is `auto` (the adapter's inverse), `none`, or a step body" in line


def test_an_unquoted_template_says_to_quote_it() -> None:
    (line,) = errors(
        "params: {x: {type: string}}\nsteps:\n  - id: a\n    uses: core.echo\n    with:\n"
        "      message: {{ params.x }}\n"
    )
    assert "a mapping key must be a string, not a mapping" in line
    assert "quote a value that starts with {{" in line


@pytest.mark.parametrize(
    ("name", "hint"), [("equalto", "use `eq`"), ("greaterthan", "use `gt`"), ("evn", "`even`")]
)
def test_jinja_test_aliases_suggest_the_name_wpk_uses(name: str, hint: str) -> None:
    (line,) = errors(f'steps:\n  - {{id: a, uses: core.noop, when: "{{{{ 1 is {name} 1 }}}}"}}\n')
    assert f"test `{name}` is not allowed" in line and hint in line


def test_a_bad_value_in_a_params_file_names_the_file(tmp_path: Path) -> None:
    runbook = tmp_path / "wpk.yaml"
    runbook.write_text(
        HEAD + "  params: {n: {type: integer, minimum: 1}, m: {type: integer}}\n"
        "  steps:\n    - {id: a, uses: core.echo, with: {message: '{{ params.n }} {{ params.m }}'}}\n"
    )
    params = tmp_path / "prod.yaml"
    params.write_text("n: -3\nm: x\n")
    argv = wpk_argv("run", runbook, {"m": 2}, extra=["--params-file", str(params), "--store", "memory:"])
    result = run_wpk(argv, env=wpk_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    # n came from the file: the file is named; m's bad file value was overridden by -p m=2.
    assert result.stderr.splitlines() == [f"{params}: parameter 'n': -3 is less than the minimum of 1"]
