"""The compiler reads each step's positions below the step's own node (engine/model.py, one walk
from the root per list): every `line` and `where` is what `SourceDoc.mark` gives for the full path,
and a document without positions (from data) gets the same 1:1 marks as before."""

from __future__ import annotations

from typing import Any

from wpk.engine.loader import SourceDoc, load_text
from wpk.engine.model import compile_workflow
from wpk.engine.validate import validate_document

RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: marks, version: 1.0.0}
spec:
  params:
    n: {type: integer, default: 2}
  steps:
    - id: a
      uses: core.echo
      when: "{{ params.n > 1 }}"
      timeout: "{{ params.n }}s"
      with: {message: "n is {{ params.n }}"}
      outputs: {said: "{{ result.message }}"}
    - {id: b, uses: core.noop, needs: [a]}
    - id: c
      uses: core.echo
      needs: [b]
      for_each: [1, 2]
      with:
        message: "{{ item }}"
  finally:
    - {id: f, uses: core.echo, with: {message: "done {{ steps.a.status }}"}}
"""

FIELDS = ("when", "for_each", "timeout", "with")


def _expected(doc: SourceDoc, key: tuple[str, ...], i: int) -> tuple[int, dict[str, str]]:
    raw: Any = doc.data
    for part in (*key, i):
        raw = raw[part]
    rels: list[tuple[str | int, ...]] = [(f,) for f in FIELDS if f in raw]
    rels += [("outputs", name) for name in raw.get("outputs", {})]
    rels += [("with", name) for name in raw.get("with", {})]
    where = {}
    for rel in rels:
        mark = doc.mark((*key, i, *rel))
        where[".".join(str(p) for p in rel)] = f"{doc.path}:{mark.line}:{mark.col}"
    return doc.mark((*key, i)).line, where


def test_every_line_and_where_is_the_mark_of_the_full_path() -> None:
    doc = load_text(RUNBOOK, "marks.yaml")
    assert [d for d in validate_document(doc) if d.is_error] == []
    wf = compile_workflow(doc)
    lists = ((("spec", "steps"), wf.steps), (("spec", "finally"), wf.finally_steps))
    seen = 0
    for key, steps in lists:
        for i, step in enumerate(steps):
            assert (step.line, dict(step.where)) == _expected(doc, key, i)
            seen += 1
    assert seen == 4
    assert wf.step("a").where["with.message"] == "marks.yaml:12:23"
    assert wf.step("c").line == 15 and wf.step("b").where == {}


def test_a_document_without_positions_compiles_with_the_marks_it_always_had() -> None:
    doc = load_text(RUNBOOK, "marks.yaml")
    bare = type(doc).from_data(doc.data, "api")
    wf = compile_workflow(bare)
    assert {s.id: s.line for s in (*wf.steps, *wf.finally_steps)} == {"a": 1, "b": 1, "c": 1, "f": 1}
    assert dict(wf.step("a").where) == {
        "when": "api:1:1",
        "timeout": "api:1:1",
        "with": "api:1:1",
        "outputs.said": "api:1:1",
        "with.message": "api:1:1",
    }
