"""Diagnostics: the one shape every problem found in a runbook takes.

Every stage before execution (loader, schema, semantics, parameters) reports problems as
`Diagnostic` values instead of raising, so a user sees every mistake at once, each pointing at
`file:line:col`. Nothing here knows about YAML or JSON Schema; it is the common currency.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One problem at one place. `line` and `col` are 1-based; 0 means "the whole file"."""

    path: str
    line: int
    col: int
    severity: Severity
    message: str
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.col,
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
        }


def error(path: str, line: int, col: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path=path, line=line, col=col, severity=Severity.ERROR, code=code, message=message)


def warning(path: str, line: int, col: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path=path, line=line, col=col, severity=Severity.WARNING, code=code, message=message)


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    return (diagnostic.path, diagnostic.line, diagnostic.col, diagnostic.message)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


class DiagnosticError(Exception):
    """Raised where a stage cannot go on; carries the diagnostics that explain why."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics
