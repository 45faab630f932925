"""wpk's engine: load, validate, compile and run runbook packages.

The public API is re-exported here one name at a time (as trio does); everything else is
internal and may change. `tests/test_exports.py` checks this list.
"""

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

__all__ = [
    "Diagnostic", "Event", "EventStore", "EventType", "ExecutionState", "ExecutionStatus", "LoadError",
    "MemoryStore", "MissingSecrets", "PackageInvalid", "ParamError", "RunOptions", "Runner", "SQLiteStore",
    "Severity", "SourceDoc", "Step", "StepStatus", "ValidationResult", "Workflow", "build_plan",
    "compile_workflow", "load_bytes", "load_file", "load_package", "open_store", "reduce", "run_package",
    "run_workflow", "validate_bytes", "validate_path", "validate_text",
]  # fmt: skip
