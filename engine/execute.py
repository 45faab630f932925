"""One call from a package to a finished execution: validate, compile, resolve, run.

This is the embedding API (`wpk.engine.run_package`); the CLI and the sidecar use the same
pieces. Refusals before anything runs are raised as `PackageInvalid`, `ParamError` or
`MissingSecrets`, never half-started executions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import trio

from .diagnostics import Diagnostic
from .events import Event, EventType
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


def prepare_run(
    workflow: Workflow,
    params: Mapping[str, Any],
    *,
    store: EventStore,
    options: RunOptions,
    environ: Mapping[str, str] | None = None,
) -> Runner:
    """A runner for an execution whose parameters were resolved when it was submitted.

    The caller (the agent loop) keeps the runner to cancel it; `await runner.run()` runs it.
    """
    secrets = resolve_secrets(workflow.secrets, environ)
    return Runner(workflow, params=params, secrets=secrets, store=store, options=options)


async def rollback_recorded(
    workflow: Workflow,
    history: list[Event],
    *,
    params: Mapping[str, Any],
    secrets: Mapping[str, str],
    store: EventStore,
    execution_id: str,
    adapter_config: Mapping[str, Mapping[str, Any]] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> ExecutionState:
    """Roll back a finished execution from its recorded events (manual rollback, DESIGN §5).

    The same compensation code as an automatic rollback, fed from the store: completed steps in
    reverse completion order, each with its `rollback:` body or its adapter's inverse from the
    recorded undo record. A Secret's undo record is masked in the store, so restoring it fails
    that compensation (reported, never written as `***`).
    """
    options = RunOptions(
        execution_id=execution_id, history=history, adapter_config=adapter_config or {}, on_event=on_event
    )
    runner = Runner(workflow, params=params, secrets=secrets, store=store, options=options)
    try:
        status = await runner.rollback()
        error = runner.state.error
        runner.emit(EventType.EXECUTION_CLOSED, status=str(status), **({"error": error} if error else {}))
    finally:
        with trio.CancelScope(shield=True):
            await runner.adapters.aclose()
            await store.flush()
    return runner.state
