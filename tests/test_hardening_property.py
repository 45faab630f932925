"""Issue 9: generated expressions and parameters stay within the budgets and never leak a secret.

Hypothesis builds expressions from the allowed filters, operators, literals, parameters and a
secret, nested a few levels (the shapes of the issue's attacks: chained `replace`, `list`, `*`,
concatenation, encodings). For each one:

- compiling and rendering end within a generous wall-clock bound, with a bounded peak of memory,
  and raise nothing but `ExpressionError` / `RenderError`;
- either validation refuses the expression, or what leaves the engine (the rendered value after
  the masker, as text and as JSON; or the error message) holds no form of the secret.

Example counts are modest, so the suite stays fast.
"""

from __future__ import annotations

import base64
import functools
import json
import shlex
import time
import tracemalloc
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wpk.engine.expressions import ExpressionError, RenderError, compile_template, render_template
from wpk.engine.secrets import Redactor

SECONDS = 3.0  # generous: the render caps keep real cases far below this
PEAK_BYTES = 300 * 1024 * 1024

ATOMS = [
    "params.s",
    "params.n",
    "params.l",
    "params.m",
    "'a'",
    "'ab:c'",
    "''",
    "7",
    "100000",
    "[1, 'a']",
    "{'k': 'v'}",
    "secrets.pw",
    "item",
]
REPLACE = " | replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"
POSTFIX = [
    " | upper",
    " | lower",
    " | list",
    " | reverse",
    " | first",
    " | last",
    " | length",
    " | string",
    " | trim",
    " | unique",
    " | sort",
    " | b64encode",
    " | b64decode",
    " | urlencode",
    " | tojson",
    " | fromjson",
    " | shell_quote",
    " | int",
    " | float",
    " | bool",
    " | join(',')",
    " | split('a')",
    " | default('d')",
    REPLACE,
    " | map('upper')",
    " | select",
    " | keys",
    " | items",
    " * 1000",
    " * 3",
    " ~ 'x'",
    " ~ secrets.pw",
    " + 'y'",
    " + [1]",
    "[1:]",
    "[0]",
    " == 'a'",
    " if params.n else 'e'",
]


def expression(depth: int = 5) -> st.SearchStrategy[str]:
    base = st.sampled_from(ATOMS)
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(POSTFIX)).map(lambda t: f"({t[0]}){t[1]}"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}) ~ ({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
        ),
        max_leaves=depth * 2,
    )


params_strategy = st.fixed_dictionaries(
    {
        "s": st.text(max_size=3000),
        "n": st.integers(min_value=-(10**6), max_value=10**6),
        "l": st.lists(st.text(max_size=20), max_size=60),
        "m": st.dictionaries(st.text(max_size=8), st.integers(), max_size=10),
    }
)
SECRET_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'\"\\$ -_:/+=éß")
)
secret_strategy = st.text(SECRET_ALPHABET, min_size=12, max_size=24).filter(
    lambda s: s.strip() == s and len(_letters(s)) >= 10
)
SECRET_STARTS = [
    "secrets.pw",
    "[secrets.pw, params.s]",
    "secrets.pw ~ params.s",
    "'u:' ~ secrets.pw",
    "secrets",
]


def secret_expression() -> st.SearchStrategy[str]:
    """A secret, then one to four steps of filters and operators (so every example uses it)."""
    step = st.one_of(st.sampled_from(POSTFIX), st.sampled_from(ATOMS).map(lambda a: f" ~ {a}"))
    return st.tuples(st.sampled_from(SECRET_STARTS), st.lists(step, min_size=1, max_size=4)).map(
        lambda t: functools.reduce(lambda acc, s: f"({acc}){s}", t[1], t[0])
    )


def _letters(text: str) -> str:
    """Letters and digits only, lower case: what survives any spelling of the text
    (a list of its characters, upper case, JSON or shell escaping around it)."""
    return "".join(c for c in text.lower() if c.isalnum())


def forms(secret: str) -> set[str]:
    """Forms of the secret to look for, computed independently of engine/secrets.py."""
    raw = secret.encode()
    found = {
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        shlex.quote(secret),
        raw.hex(),
    }
    found |= {secret[i : i + 10] for i in range(len(secret) - 9)}
    return found


def _render(template: str, scope: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, error): compile and render; anything but our two errors fails the test."""
    try:
        compiled = compile_template(template)
    except ExpressionError as exc:
        return None, f"refused: {exc}"
    try:
        return render_template(compiled, scope), None
    except RenderError as exc:
        return None, str(exc)


def chain_expression() -> st.SearchStrategy[str]:
    """An atom through one to six filters or operators: the shape of the issue's folding bomb."""
    step = st.one_of(st.just(REPLACE), st.sampled_from(POSTFIX))  # growth filters, often
    return st.tuples(st.sampled_from(ATOMS), st.lists(step, min_size=1, max_size=6)).map(
        lambda t: functools.reduce(lambda acc, s: f"({acc}){s}", t[1], t[0])
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(expression(), chain_expression()), params=params_strategy, item=st.text(max_size=50))
@example(
    body="'a'" + REPLACE * 4 + " | list", params={"s": "", "n": 0, "l": [], "m": {}}, item=""
)  # the issue's
def test_generated_expressions_stay_within_the_budgets(body: str, params: dict[str, Any], item: str) -> None:
    template = "{{ " + body + " }}"
    scope = {"params": params, "secrets": {"pw": "s3cr3t-value-x"}, "item": item}
    tracemalloc.start()
    started = time.perf_counter()
    try:
        _render(template, scope)
        _render("text " + template + " and " + template, scope)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < SECONDS, (template, elapsed)
    assert peak < PEAK_BYTES, (template, peak)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=secret_expression(), secret=secret_strategy, params=params_strategy)
def test_generated_expressions_never_leak_a_secret(body: str, secret: str, params: dict[str, Any]) -> None:
    template = "{{ " + body + " }}"
    scope = {"params": params, "secrets": {"pw": secret}, "item": "i"}
    value, error = _render(template, scope)
    if error is not None and error.startswith("refused: "):
        return  # validation refused it: nothing runs
    redactor = Redactor([secret])
    if error is not None:
        shown = [error]  # an error message is not masked by the runner's copy alone: check it raw
    else:
        masked = redactor.redact(value)
        shown = [str(masked), json.dumps(masked, ensure_ascii=False), json.dumps(masked)]
    letters = _letters(secret)
    windows = {letters[i : i + 8] for i in range(len(letters) - 7)}
    for text in shown:
        for form in forms(secret):
            assert form not in text, (template, secret, form, text[:300])
        spelled = _letters(text)
        for window in windows:  # the secret's text in any case, order or spacing
            assert window not in spelled and window not in spelled[::-1], (template, secret, text[:300])
