"""Helpers for engine tests: a runbook body in, a compiled workflow or a finished run out."""

from __future__ import annotations

import textwrap
from typing import Any

from wpk.engine import MemoryStore, Runner, RunOptions, compile_workflow
from wpk.engine.model import Workflow
from wpk.engine.params import resolve_params
from wpk.engine.validate import validate_text


def workflow(body: str) -> Workflow:
    """Compile `spec:` body text (indented freely); the runbook must validate without errors."""
    text = (
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: t, version: 1.0.0}\nspec:\n"
        + textwrap.indent(textwrap.dedent(body), "  ")
    )
    result = validate_text(text, "t.yaml")
    assert result.valid, [str(d) for d in result.errors]
    assert result.doc is not None
    return compile_workflow(result.doc)


async def run(
    wf: Workflow,
    *,
    params: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    **options: Any,
) -> tuple[Runner, MemoryStore]:
    """Run to the end on an in-memory store (seeded jitter, so delays repeat)."""
    store = MemoryStore()
    options.setdefault("seed", 7)
    runner = Runner(
        wf,
        params=resolve_params(wf.params, params or {}),
        secrets=secrets or {},
        store=store,
        options=RunOptions(**options),
    )
    await runner.run()
    return runner, store
