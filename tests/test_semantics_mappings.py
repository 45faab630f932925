"""The semantic rules read any Mapping, not only dict: a document built of other mapping types (as
an embedding caller may pass to `validate_data`) gets exactly the diagnostics its dict twin gets.
(engine/semantics.py answers `dict` from the type and asks the Mapping ABC for anything else.)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from wpk.engine.loader import SourceDoc
from wpk.engine.semantics import check_semantics

RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: maps, version: 1.0.0}
spec:
  params:
    n: {type: integer, default: 2}
    unused: {type: string, default: x}
  steps:
    - id: a
      uses: shell.run
      with: {command: "echo '{{ params.n }}'", env: {LD_PRELOAD: x}}
      outputs: {said: "{{ result.stdout }}"}
    - id: b
      uses: core.echo
      needs: [a, ghost]
      with: {message: "{{ steps.a.outputs.nope }} {{ params.missing }}"}
      rollback: {uses: core.echo, with: {message: "undo {{ steps.b.result }}"}}
    - {id: c, uses: core.noop, max_failures: 1}
"""


class Frozen(Mapping[str, Any]):
    """A read-only mapping that is not a dict."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return Frozen({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return value


def _found(data: Any) -> list[tuple[str, str]]:
    return sorted((d.code, d.message) for d in check_semantics(SourceDoc.from_data(data, "doc")))


def test_a_document_of_other_mappings_gets_the_same_diagnostics() -> None:
    plain = yaml.safe_load(RUNBOOK)
    expected = _found(plain)
    assert {code for code, _ in expected} >= {
        "unused-param",
        "forbidden-env",
        "shell-quoted-template",
        "unknown-need",
        "reference",
        "max-failures-without-for-each",
    }
    assert _found(_frozen(plain)) == expected
