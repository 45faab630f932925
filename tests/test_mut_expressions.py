"""Expressions behaviour found unpinned by mutation testing (tests/mutation/run.sh expressions).

Table tests through the public entry points (`render_template`, `render_value`,
`compile_template`), with exact values and exact wpk error messages."""

from __future__ import annotations

from typing import Any

import pytest

from wpk.engine.expressions import (
    ExpressionError,
    RenderError,
    compile_template,
    render_template,
    render_value,
)


def render(text: str, scope: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return render_template(text, scope if scope is not None else {}, **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 1 + 2 }}", 3),
        ("a{{ 1 + 2 }}b", "a3b"),
    ],
)
def test_renders(text: str, expected: Any) -> None:
    assert render(text) == expected
