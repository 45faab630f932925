"""The rollback plan is the rollback (issue 11, finding 2).

Each test dry-runs a runbook, then runs it for real with a failure forced after its last step,
and checks that the real rollback did exactly what the dry-run's plan listed, in that order:
the same entries (step, item, kind, words) and the same effects, seen on real targets (files a
shell command writes, requests a local HTTPS server receives, objects in the Kubernetes API
double). Covered: explicit rollbacks (shell, api, k8s), automatic inverses (scale, apply, patch),
`rollback: none`, read-only steps, a write with no inverse, conditional steps, `for_each` items.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from example_services import FakeApi, Reply, TlsFiles, deployment, make_tls_files
from k8s_double import K8sDouble  # tests/ is on sys.path under pytest
from runbooks import run, workflow

from wpk.engine import build_plan
from wpk.engine.compensation import undo_text
from wpk.engine.events import EventType
from wpk.engine.model import Workflow
from wpk.engine.plan import render_plan_text


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApi]:
    with FakeApi(tls) as server:
        for path in ("/change", "/undo"):
            server.route("POST", path, Reply(200, {"ok": True}))
        yield server


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(converge_delay=0.05) as double:
        double.create(deployment("web", "registry.example.com/web:1", 2, {"app": "web"}))
        double.wait_converged()
        yield double


@pytest.fixture
def config(k8s: K8sDouble, tls: TlsFiles, tmp_path: Path) -> dict[str, Any]:
    kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig")
    return {
        "k8s": {"kubeconfig": str(kubeconfig), "poll_interval": 0.05},
        "api": {"ca_file": str(tls.ca_file)},
    }


def acting(plan: list[dict[str, Any]] | None) -> list[tuple[str, int | None, str, str]]:
    """The entries that do something, without the dry-run's note ("read now ...")."""
    return [(u["step"], u.get("item"), u["kind"], u["action"]) for u in plan or [] if u["kind"] != "nothing"]


def with_forced_failure(body: str, wf: Workflow) -> Workflow:
    """The same runbook, plus a last step that fails once every other step has finished."""
    needs = ", ".join(s.id for s in wf.steps)
    return workflow(
        textwrap.dedent(body)
        + f"\n  - {{id: forced_failure, needs: [{needs}], uses: core.fail, with: {{message: forced}}}}\n"
    )


async def plan_then_fail(body: str, **options: Any) -> tuple[Any, Any, list[Any]]:
    wf = workflow(body)
    dry, _ = await run(wf, dry_run=True, **options)
    plan = build_plan(wf, dry.state)
    real, store = await run(with_forced_failure(body, wf), **options)
    events = await store.events(real.execution_id)
    return plan, real, events


def compensated(events: list[Any]) -> list[tuple[str, int | None]]:
    """What the rollback carried out, in order: (step, item) per finished compensation."""
    out: list[tuple[str, int | None]] = []
    with_items = {e.step for e in events if e.type is EventType.COMPENSATION_COMPLETED and e.item is not None}
    for e in events:
        finished = e.type in (EventType.COMPENSATION_COMPLETED, EventType.COMPENSATION_FAILED)
        if finished and (e.item is not None or e.step not in with_items):
            out.append((e.step, e.item))
    return out


SHELL_BODY = """
params:
  dir: {type: string}
steps:
  - id: look
    uses: shell.run
    dry_run: execute
    rollback: none
    with: {argv: [ls, "{{ params.dir }}"]}
  - id: make
    needs: [look]
    uses: shell.run
    with: {argv: [sh, -c, 'echo make >> "$0/journal"', "{{ params.dir }}"]}
    rollback:
      uses: shell.run
      with: {argv: [sh, -c, 'echo undo-make >> "$0/journal"', "{{ params.dir }}"]}
  - id: per_item
    needs: [make]
    for_each: [a, b, c]
    uses: shell.run
    with: {argv: [sh, -c, 'echo "item $1" >> "$0/journal"', "{{ params.dir }}", "{{ item }}"]}
    rollback:
      uses: shell.run
      with: {argv: [sh, -c, 'echo "undo-item $1" >> "$0/journal"', "{{ params.dir }}", "{{ item }}"]}
  - id: maybe
    needs: [per_item]
    when: "{{ params.dir | length > 0 }}"
    uses: shell.run
    with: {argv: [sh, -c, 'echo maybe >> "$0/journal"', "{{ params.dir }}"]}
    rollback:
      uses: shell.run
      with: {argv: [sh, -c, 'echo undo-maybe >> "$0/journal"', "{{ params.dir }}"]}
  - id: skipped
    needs: [maybe]
    when: "{{ params.dir | length == 0 }}"
    uses: shell.run
    with: {argv: [sh, -c, 'echo never >> "$0/journal"', "{{ params.dir }}"]}
    rollback:
      uses: shell.run
      with: {argv: [sh, -c, 'echo undo-never >> "$0/journal"', "{{ params.dir }}"]}
  - id: kept
    needs: [skipped]
    uses: shell.run
    rollback: none
    with: {argv: [sh, -c, 'echo kept >> "$0/journal"', "{{ params.dir }}"]}
"""


async def test_shell_explicit_rollbacks_items_conditions_and_none(tmp_path: Path) -> None:
    plan, real, events = await plan_then_fail(SHELL_BODY, params={"dir": str(tmp_path)})
    journal = tmp_path / "journal"
    planned = acting(plan["rollback"])
    assert planned == acting(real.state.rollback_plan)
    # Concretely: reverse completion order, items last first, the rendered bodies.
    undo = f'run shell.run with {{"argv": ["sh", "-c", "echo undo-%s >> \\"$0/journal\\"", "{tmp_path}"]}}'
    item = (
        f'run shell.run with {{"argv": ["sh", "-c", "echo \\"undo-item $1\\" >> \\"$0/journal\\"", '
        f'"{tmp_path}", "%s"]}}'
    )
    assert planned == [
        ("maybe", None, "body", undo % "maybe"),
        ("per_item", 2, "body", item % "c"),
        ("per_item", 1, "body", item % "b"),
        ("per_item", 0, "body", item % "a"),
        ("make", None, "body", undo % "make"),
    ]
    # The step's own `inverse` says the same: the explicit body, not "no automatic inverse".
    assert {s["id"]: s for s in plan["steps"]}["make"]["inverse"] == undo % "make"
    kinds = {u["step"]: u for u in plan["rollback"]}
    assert kinds["maybe"]["conditional"] is True  # "if it ran"
    assert kinds["kept"]["action"] == "nothing to undo: the step says `rollback: none`"
    assert "skipped" not in kinds  # its condition was false: nothing ran, nothing to undo
    # The real rollback did exactly that, in that order.
    assert compensated(events) == [(s, i) for s, i, *_ in planned]
    lines = journal.read_text().splitlines()
    assert lines[0] == "make", "the dry-run wrote to the journal"
    assert lines[lines.index("kept") + 1 :] == [
        "undo-maybe",
        "undo-item c",
        "undo-item b",
        "undo-item a",
        "undo-make",
    ]
    assert str(real.state.status) == "rolled_back"
    # The text plan says the same as the JSON plan, line for line.
    text = render_plan_text(plan).splitlines()
    for number, entry in enumerate(plan["rollback"], 1):
        assert f"  {number}. {undo_text(entry)}" in text
    assert any(line.endswith(f". maybe: {undo % 'maybe'} (if it ran)") for line in text)


async def test_a_write_with_no_inverse_is_planned_as_impossible_and_ends_rollback_failed(
    tmp_path: Path,
) -> None:
    body = """
    steps:
      - {id: write, uses: shell.run, with: {argv: [sh, -c, "true"]}}
    """
    plan, real, _ = await plan_then_fail(body)
    assert acting(plan["rollback"]) == acting(real.state.rollback_plan)
    assert plan["rollback"][0]["kind"] == "impossible"
    assert "cannot undo shell.run" in plan["rollback"][0]["action"]
    assert str(real.state.status) == "rollback_failed"


async def test_api_explicit_rollback(api: FakeApi, config: dict[str, Any]) -> None:
    body = f"""
    steps:
      - id: change
        uses: api.request
        with: {{method: POST, url: "{api.url}/change", json: {{replicas: 3}}}}
        rollback:
          uses: api.request
          with: {{method: POST, url: "{api.url}/undo", json: {{restore: "{{{{ steps.change.status }}}}"}}}}
    """
    plan, real, _ = await plan_then_fail(body, adapter_config=config)
    planned = acting(plan["rollback"])
    assert planned == acting(real.state.rollback_plan)
    assert planned == [
        (
            "change",
            None,
            "body",
            'run api.request with {"json": {"restore": "completed"}, "method": "POST", '
            f'"url": "{api.url}/undo"}}',
        )
    ]
    assert [(r.method, r.path) for r in api.requests] == [("POST", "/change"), ("POST", "/undo")]


async def test_k8s_automatic_inverses_and_explicit_k8s_rollback(
    k8s: K8sDouble, config: dict[str, Any]
) -> None:
    body = """
    steps:
      - id: look
        uses: k8s.get
        with: {kind: Deployment, name: web}
      - id: scale
        needs: [look]
        uses: k8s.scale
        with: {kind: Deployment, name: web, replicas: 4}
      - id: create
        needs: [scale]
        uses: k8s.apply
        with:
          manifest:
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: extra, namespace: default}
            data: {a: "1"}
      - id: label
        needs: [create]
        uses: k8s.patch
        with: {kind: Deployment, name: web, patch_type: merge, patch: {metadata: {labels: {tier: peak}}}}
      - id: explicit
        needs: [label]
        uses: k8s.patch
        with: {kind: Deployment, name: web, patch_type: merge, patch: {metadata: {labels: {mode: x}}}}
        rollback:
          uses: k8s.patch
          with: {kind: Deployment, name: web, patch_type: merge, patch: {metadata: {labels: {mode: null}}}}
    """
    plan, real, events = await plan_then_fail(body, adapter_config=config)
    planned = acting(plan["rollback"])
    assert planned == acting(real.state.rollback_plan)
    assert [s for s, *_ in planned] == ["explicit", "label", "create", "scale"]
    words = {s: action for s, _, _, action in planned}
    assert words["scale"] == "scale Deployment default/web back to 2 replicas"
    assert words["create"] == "delete ConfigMap default/extra"
    assert words["label"] == "restore the previous Deployment default/web"
    assert words["explicit"].startswith('run k8s.patch with {"kind": "Deployment"')
    assert plan["rollback"][-1] == {"step": "look", "kind": "nothing", "action": "nothing to undo: read-only"}
    notes = {u["step"]: u.get("note") for u in plan["rollback"]}
    assert notes["scale"] and "read now" in notes["scale"]
    assert compensated(events) == [(s, i) for s, i, *_ in planned]
    web = k8s.get("Deployment", "web") or {}
    assert web["spec"]["replicas"] == 2
    assert "tier" not in web["metadata"].get("labels", {}) and "mode" not in web["metadata"].get("labels", {})
    assert k8s.get("ConfigMap", "extra") is None
    assert str(real.state.status) == "rolled_back"
