"""Manual rollback from the store: what it cannot restore, it says so and writes nothing; what
it needs (secrets) must be there again; it begins only from a status that allows it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from runbooks import workflow

from wpk.engine.events import Event, EventType
from wpk.engine.execute import rollback_recorded, run_workflow
from wpk.engine.executions import Conflict, WorkflowCache, begin_rollback, rollback, submit
from wpk.engine.runner import RunOptions, creation_data
from wpk.engine.secrets import MissingSecrets
from wpk.engine.store import MemoryStore, NewExecution

SECRET_APPLY = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: put-secret, version: 1.0.0}
spec:
  secrets: [api_key]
  steps:
    - id: put
      uses: k8s.apply
      with:
        manifest:
          apiVersion: v1
          kind: Secret
          metadata: {name: creds, namespace: default}
          stringData: {key: "{{ secrets.api_key }}"}
"""


async def _recorded_run(store: MemoryStore, cache: WorkflowCache) -> str:
    """A finished run of SECRET_APPLY as the store holds it: the previous Secret masked."""
    workflow = cache.workflow(SECRET_APPLY)
    eid = "run-1"
    now = time.time()
    first = Event(1, EventType.EXECUTION_CREATED, now, data=creation_data(workflow, eid, {}, False, None))
    await store.create_execution(
        NewExecution(
            execution_id=eid,
            workflow_name=workflow.name,
            workflow_version=workflow.version,
            package=SECRET_APPLY,
            package_path="<request>",
            params={},
            priority=50,
            dry_run=False,
            created_at=now,
            status="running",
            first_event=first,
        )
    )
    previous = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"key": "***"},
    }
    for seq, (kind, step, data) in enumerate(
        [
            (EventType.EXECUTION_STARTED, None, {}),
            (EventType.STEP_STARTED, "put", {}),
            (
                EventType.STEP_COMPLETED,
                "put",
                {"outputs": {}, "result": {"created": False}, "undo": {"previous": previous}},
            ),
            (EventType.EXECUTION_FINISHED, None, {"status": "completed"}),
            (EventType.EXECUTION_CLOSED, None, {"status": "completed"}),
        ],
        start=2,
    ):
        store.append(eid, Event(seq, kind, now, step, None, data))
    return eid


async def test_a_masked_secret_is_not_restored_and_the_rollback_says_why() -> None:
    store, cache = MemoryStore(), WorkflowCache()
    eid = await _recorded_run(store, cache)
    record = await rollback(store, cache, eid, environ={"WPK_SECRET_API_KEY": "s3cret"})
    assert record["status"] == "rollback_failed"
    [step] = record["steps"]
    assert step["status"] == "compensation_failed"
    assert "Kubernetes Secret" in step["compensation_error"] and "masked" in step["compensation_error"]
    again = await rollback(store, cache, eid, environ={"WPK_SECRET_API_KEY": "s3cret"})
    assert again["status"] == "rollback_failed"  # repeating it changes nothing
    assert len([e for e in await store.events(eid) if e.type is EventType.ROLLBACK_STARTED]) == 1


async def test_rollback_needs_the_runbooks_secrets_again_and_leaves_the_run_as_it_was() -> None:
    store, cache = MemoryStore(), WorkflowCache()
    eid = await _recorded_run(store, cache)
    with pytest.raises(MissingSecrets):
        await begin_rollback(store, cache, eid, environ={})
    row = await store.get_execution(eid)
    assert row is not None and row.status == "completed"


async def test_rollback_is_refused_for_a_pending_execution() -> None:
    store, cache = MemoryStore(), WorkflowCache()
    text = SECRET_APPLY.replace("  secrets: [api_key]\n", "").replace("{{ secrets.api_key }}", "x")
    eid = (await submit(store, cache, text, {})).execution_id
    with pytest.raises(Conflict) as refused:
        await begin_rollback(store, cache, eid)
    assert refused.value.status == "pending"


async def test_a_manual_rollback_undoes_each_item_with_its_own_value(tmp_path: Path) -> None:
    """The items of a `for_each` step are not stored; a rollback from the store renders them
    again from the recorded params, so `{{ item }}` in the body is the item it undoes."""
    wf = workflow(
        """
        params:
          names: {type: array}
          dir: {type: string}
        steps:
          - id: each
            for_each: "{{ params.names }}"
            uses: shell.run
            with: {command: "echo {{ item }} >> {{ params.dir }}/done"}
            rollback:
              uses: shell.run
              with: {command: "echo {{ item }} >> {{ params.dir }}/undone"}
        """
    )
    params = {"names": ["web", "api", "db"], "dir": str(tmp_path)}
    store = MemoryStore()
    state = await run_workflow(wf, params, store=store, options=RunOptions(execution_id="run-2"))
    assert state.status == "completed"
    history = await store.events("run-2")
    after = await rollback_recorded(wf, history, params=params, secrets={}, store=store, execution_id="run-2")
    assert after.status == "rolled_back"
    assert (tmp_path / "undone").read_text().split() == ["db", "api", "web"]
