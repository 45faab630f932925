"""Render validation results for people and machines: text, JSON, GitHub annotations, SARIF."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from wpk import schemas

from .diagnostics import Diagnostic, Severity
from .termsafe import one_line
from .validate import ValidationResult

FORMATS = ("text", "json", "github", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render(results: Sequence[ValidationResult], fmt: str, *, version: str) -> str:
    if fmt == "json":
        return render_json(results)
    if fmt == "github":
        return render_github(results)
    if fmt == "sarif":
        return render_sarif(results, version=version)
    return render_text(results)


def render_text(results: Sequence[ValidationResult]) -> str:
    lines = [one_line(d) for r in results for d in r.diagnostics]
    files = len(results)
    invalid = sum(1 for r in results if not r.valid)
    warnings = sum(len(r.warnings) for r in results)
    errors = sum(len(r.errors) for r in results)
    noun = "file" if files == 1 else "files"
    if invalid:
        lines.append(f"{invalid} of {files} {noun} invalid: {errors} error(s), {warnings} warning(s)")
    else:
        lines.append(f"{files} {noun} valid" + (f", {warnings} warning(s)" if warnings else ""))
    return "\n".join(lines)


def render_json(results: Sequence[ValidationResult]) -> str:
    body = {
        "valid": all(r.valid for r in results),
        "files": [
            {
                "path": r.path,
                "valid": r.valid,
                "errors": [d.as_dict() for d in r.errors],
                "warnings": [d.as_dict() for d in r.warnings],
            }
            for r in results
        ],
    }
    return json.dumps(body, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(results: Sequence[ValidationResult]) -> str:
    """GitHub Actions workflow commands: one `::error file=…,line=…,col=…::…` per problem."""
    lines = []
    for r in results:
        for d in r.diagnostics:
            level = "error" if d.severity is Severity.ERROR else "warning"
            lines.append(
                f"::{level} file={_escape_property(d.path)},line={max(d.line, 1)},"
                f"col={max(d.col, 1)},title={_escape_property('wpk ' + d.code)}::{_escape_data(d.message)}"
            )
    return "\n".join(lines)


def render_sarif(results: Sequence[ValidationResult], *, version: str) -> str:
    """SARIF 2.1.0, as GitHub code scanning ingests it."""
    diagnostics: list[Diagnostic] = [d for r in results for d in r.diagnostics]
    codes = sorted({d.code for d in diagnostics})
    rules = [{"id": code, "name": code, "shortDescription": {"text": code}} for code in codes]
    sarif_results: list[dict[str, Any]] = []
    for d in diagnostics:
        sarif_results.append(
            {
                "ruleId": d.code,
                "ruleIndex": codes.index(d.code),
                "level": "error" if d.severity is Severity.ERROR else "warning",
                "message": {"text": d.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": d.path.replace("\\", "/")},
                            "region": {"startLine": max(d.line, 1), "startColumn": max(d.col, 1)},
                        }
                    }
                ],
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "wpk",
                        "version": version,
                        "informationUri": schemas.runbook_schema().get("$id", ""),
                        "rules": rules,
                    }
                },
                "results": sarif_results,
            }
        ],
    }
    return json.dumps(log, indent=2)
