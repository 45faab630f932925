"""wpk's engine: load, validate, compile and run runbook packages.

The public API is listed here one name at a time (as trio does); everything else is internal
and may change. Names are imported on first use (PEP 562), so `wpk validate` never pays for
trio and a template-free run never pays for Jinja2. `tests/test_exports.py` checks the list.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Diagnostic": "diagnostics",
    "Severity": "diagnostics",
    "Event": "events",
    "EventType": "events",
    "PackageInvalid": "execute",
    "load_package": "execute",
    "run_package": "execute",
    "run_workflow": "execute",
    "LoadError": "loader",
    "SourceDoc": "loader",
    "load_bytes": "loader",
    "load_file": "loader",
    "Step": "model",
    "Workflow": "model",
    "compile_workflow": "model",
    "ParamError": "params",
    "build_plan": "plan",
    "Runner": "runner",
    "RunOptions": "runner",
    "MissingSecrets": "secrets",
    "ExecutionState": "state",
    "ExecutionStatus": "state",
    "StepStatus": "state",
    "reduce": "state",
    "EventStore": "store",
    "MemoryStore": "store",
    "SQLiteStore": "store",
    "open_store": "store",
    "ValidationResult": "validate",
    "validate_bytes": "validate",
    "validate_path": "validate",
    "validate_text": "validate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wpk.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .diagnostics import Diagnostic as Diagnostic
    from .diagnostics import Severity as Severity
    from .events import Event as Event
    from .events import EventType as EventType
    from .execute import PackageInvalid as PackageInvalid
    from .execute import load_package as load_package
    from .execute import run_package as run_package
    from .execute import run_workflow as run_workflow
    from .loader import LoadError as LoadError
    from .loader import SourceDoc as SourceDoc
    from .loader import load_bytes as load_bytes
    from .loader import load_file as load_file
    from .model import Step as Step
    from .model import Workflow as Workflow
    from .model import compile_workflow as compile_workflow
    from .params import ParamError as ParamError
    from .plan import build_plan as build_plan
    from .runner import Runner as Runner
    from .runner import RunOptions as RunOptions
    from .secrets import MissingSecrets as MissingSecrets
    from .state import ExecutionState as ExecutionState
    from .state import ExecutionStatus as ExecutionStatus
    from .state import StepStatus as StepStatus
    from .state import reduce as reduce
    from .store import EventStore as EventStore
    from .store import MemoryStore as MemoryStore
    from .store import SQLiteStore as SQLiteStore
    from .store import open_store as open_store
    from .validate import ValidationResult as ValidationResult
    from .validate import validate_bytes as validate_bytes
    from .validate import validate_path as validate_path
    from .validate import validate_text as validate_text
