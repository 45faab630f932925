"""One call from a package to a finished execution: validate, compile, resolve, run.

This is the embedding API (`wpk.engine.run_package`); the CLI and the sidecar use the same
pieces. Refusals before anything runs are raised as `PackageInvalid`, `ParamError` or
`MissingSecrets`, never half-started executions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .diagnostics import Diagnostic
from .model import Workflow, compile_workflow
from .params import resolve_params
from .runner import Runner, RunOptions
from .secrets import resolve_secrets
from .state import ExecutionState
from .store import EventStore, MemoryStore
from .validate import package_file, validate_path


class PackageInvalid(Exception):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def load_package(path: str | os.PathLike[str]) -> Workflow:
    result = validate_path(package_file(path))
    if not result.valid or result.doc is None:
        raise PackageInvalid(result.errors)
    return compile_workflow(result.doc)


async def run_workflow(
    workflow: Workflow,
    params: Mapping[str, Any] | None = None,
    *,
    store: EventStore | None = None,
    options: RunOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExecutionState:
    """Run (or, with `options.dry_run`, dry-run) a compiled workflow to the end."""
    values = resolve_params(workflow.params, params or {})
    secrets = resolve_secrets(workflow.secrets, environ)
    runner = Runner(workflow, params=values, secrets=secrets, store=store or MemoryStore(), options=options)
    return await runner.run()


async def run_package(
    path: str | os.PathLike[str], params: Mapping[str, Any] | None = None, **kwargs: Any
) -> ExecutionState:
    return await run_workflow(load_package(path), params, **kwargs)
