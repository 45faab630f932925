"""Validate runbook packages: load safely, check the schema, check the semantics.

Every problem is returned as a `Diagnostic`; nothing is executed and nothing outside the
document is read. This is what `wpk validate`, the sidecar's `POST /validate` and every run
call first.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, error, has_errors, sort_key
from .loader import DEFAULT_MAX_BYTES, LoadError, PathT, SourceDoc, load_bytes, load_file, load_text
from .schema import describe_path, friendly_message, iter_leaf_errors, regex_budget, runbook_validator
from .semantics import check_semantics

PACKAGE_FILE = "wpk.yaml"
PACKAGE_SUFFIX = ".wpk.yaml"


@dataclass(slots=True)
class ValidationResult:
    path: str
    doc: SourceDoc | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    cached: bool = False  # replayed from the compiled-package cache (engine/cache.py): no doc
    loaded: bool = False  # loaded in a worker process (engine/validate_parallel.py): no doc here

    @property
    def valid(self) -> bool:
        return (self.doc is not None or self.cached or self.loaded) and not has_errors(self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def validate_document(doc: SourceDoc) -> list[Diagnostic]:
    """Schema and semantic diagnostics of a loaded document, sorted by position.

    One pattern-matching budget covers the whole document (`limits.regex_seconds`)."""
    with regex_budget():
        return _validate_document(doc)


def _validate_document(doc: SourceDoc) -> list[Diagnostic]:
    found = check_schema(doc)
    if isinstance(doc.data, Mapping):
        semantic = check_semantics(doc)
        # Where a semantic rule explains a shape problem, the schema's vaguer "not valid here" goes.
        explained = {(d.line, d.col) for d in semantic if d.is_error}
        found = [
            d
            for d in found
            if not (d.code in ("schema-anyOf", "schema-oneOf") and (d.line, d.col) in explained)
        ]
        found += semantic
    unique = {(d.line, d.col, d.message): d for d in found}
    return sorted(unique.values(), key=sort_key)


def check_schema(doc: SourceDoc) -> list[Diagnostic]:
    validator = runbook_validator()
    found: list[Diagnostic] = []
    for err in iter_leaf_errors(validator, doc.data):
        path: PathT = tuple(err.absolute_path)
        message, unknown_key = friendly_message(err, where_of(doc.data, path))
        mark = doc.key_mark(path + (unknown_key,)) if unknown_key is not None else doc.mark(path)
        found.append(error(doc.path, mark.line, mark.col, f"schema-{err.validator}", message))
    return found


def where_of(data: Any, path: PathT) -> str:
    """Name a place the way an author thinks of it: `step 'restart' with.replicas`."""
    if len(path) >= 3 and path[0] == "spec" and path[1] in ("steps", "finally") and isinstance(path[2], int):
        try:
            step_id = data["spec"][path[1]][path[2]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            step_id = None
        label = f"step {step_id!r}" if isinstance(step_id, str) else describe_path(path[:3])
        rest = describe_path(path[3:]) if len(path) > 3 else ""
        return f"{label} {rest}".strip()
    return describe_path(path)


def _validated(path: str, load: Callable[[], SourceDoc]) -> ValidationResult:
    """Load, then validate; a document the loader refuses has its one diagnostic."""
    try:
        doc = load()
    except LoadError as exc:
        return ValidationResult(path, None, [exc.diagnostic])
    return ValidationResult(path, doc, validate_document(doc))


def validate_bytes(data: bytes, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ValidationResult:
    return _validated(path, lambda: load_bytes(data, path, max_bytes=max_bytes))


def validate_text(text: str, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ValidationResult:
    return _validated(path, lambda: load_text(text, path, max_bytes=max_bytes))


def validate_data(data: Any, path: str = "<request>") -> ValidationResult:
    """Validate an already-parsed document (e.g. JSON from the API); positions are unknown."""
    doc = SourceDoc.from_data(data, path)
    return ValidationResult(path, doc, validate_document(doc))


def validate_path(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> ValidationResult:
    shown = str(path)
    return _validated(shown, lambda: load_file(path, display_path=shown, max_bytes=max_bytes))


@contextlib.contextmanager
def gc_held(*, freeze: bool = False) -> Iterator[None]:
    """No garbage collection inside: loading, validating and compiling allocate many objects
    and free none in cycles, so a collection there is pure cost (it grew super-linearly with
    the runbook, up to 36 µs a step). `freeze` then moves everything alive into the permanent
    generation, so later collections (during the run) never scan the compiled workflow again;
    it is for a process that loads once (the CLI), not a server that loads all day."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def package_file(path: str | os.PathLike[str]) -> Path:
    """A package folder's `wpk.yaml`, or the file itself."""
    p = Path(path)
    return p / PACKAGE_FILE if p.is_dir() else p


def _missing(p: Path) -> str:
    """Why `p` is neither a file nor a folder to validate: absent, or something else (a FIFO…)."""
    from .loader import file_kind

    try:
        mode = p.stat().st_mode
    except OSError:
        return "no such file or folder"
    return f"is {file_kind(mode)}, not a runbook file or folder"


def discover(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, str | None]]:
    """Files to validate: (file, problem). Folders are searched recursively for packages."""
    for given in paths:
        p = Path(given)
        if p.is_file():
            yield p, None
        elif p.is_dir():
            found = False
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(
                    d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")
                )
                for name in sorted(files):
                    if name == PACKAGE_FILE or name.endswith(PACKAGE_SUFFIX):
                        found = True
                        yield Path(root) / name, None
            if not found:
                yield p, f"no {PACKAGE_FILE} or *{PACKAGE_SUFFIX} found under this folder"
        else:
            yield p, _missing(p)
