"""Resume at the runner level: a run's recorded events cut at a crash point, replayed into a new
runner (as an agent taking the execution over does), with real adapters and side effects in files.

Covers the rules of docs/stores.md "Crash recovery" that the process-level tests
(tests/test_crash_recovery.py, tests/test_crash_faults.py) do not pin one by one: redacted
outputs read again or refused, a resumed rollback that skips what was compensated, a
compensation under way that runs again when that is safe (an idempotent step, an adapter's
idempotent inverse, an HTTP PUT) and fails as "agent lost" when not, and `for_each` items
resumed one by one. `CrashStore` stops a run the moment after a chosen event is recorded, as a
killed agent does: what it did next happened, but nothing more is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from example_services import FakeApi, Reply, TlsFiles, deployment, make_tls_files
from k8s_double import K8sDouble  # tests/ is on sys.path under pytest
from runbooks import workflow

from wpk.engine import MemoryStore, Runner, RunOptions
from wpk.engine.events import Event, EventType
from wpk.engine.resume import LOST_COMPENSATION_ERROR, LOST_STEP_ERROR, REDACTED_INPUT_ERROR
from wpk.engine.store.base import StoreError

SECRET = "s3cret-value-42"


async def _record(wf_text: str, params: dict[str, str], secrets: dict[str, str]) -> list[Event]:
    store = MemoryStore()
    runner = Runner(workflow(wf_text), params=params, secrets=secrets, store=store, options=RunOptions())
    await runner.run()
    return await store.events(runner.execution_id)


def _cut(events: list[Event], after: EventType, step: str) -> list[Event]:
    """The events up to and including the first `after` event of `step`: what a crash left."""
    for i, e in enumerate(events):
        if e.type is after and e.step == step and e.item is None:
            return events[: i + 1]
    raise AssertionError(f"no {after} for {step}")


async def _resume(
    wf_text: str,
    history: list[Event],
    params: dict[str, str],
    secrets: dict[str, str],
    config: dict[str, Any] | None = None,
) -> Runner:
    store = MemoryStore()
    for e in history:
        store.append("x", e)
    eid = str(history[0].data["execution_id"])
    runner = Runner(
        workflow(wf_text), params=params, secrets=secrets, store=store,
        options=RunOptions(execution_id=eid, history=history, adapter_config=config or {}),
    )  # fmt: skip
    await runner.run()
    return runner


READ_THEN_WRITE = """
    secrets: [token]
    params:
      file: {type: string}
    steps:
      - id: produce
        uses: %s
        with: %s
        outputs: {said: "%s"}
      - id: use
        needs: [produce]
        uses: shell.run
        with: {command: "echo {{ steps.produce.outputs.said }} >> {{ params.file }}"}
        rollback: none
"""
READ_ONLY = READ_THEN_WRITE % ("core.echo", '{message: "{{ secrets.token }}"}', "{{ result.message }}")
WRITES = (
    READ_THEN_WRITE
    % (
        "shell.run",
        '{command: "echo {{ secrets.token }}"}',
        "{{ result.stdout | trim }}",
    )
    + "        # produce writes (shell.run): it may not run again\n"
)


async def test_a_redacted_output_of_a_read_only_step_is_read_again(tmp_path: Path) -> None:
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    events = await _record(READ_ONLY, params, secrets)
    history = _cut(events, EventType.STEP_COMPLETED, "produce")
    assert SECRET not in str([e.data for e in history])  # the store never had it
    (tmp_path / "out").unlink()
    runner = await _resume(READ_ONLY, history, params, secrets)
    assert runner.state.status == "completed"
    assert (tmp_path / "out").read_text().strip() == SECRET  # the real value, not ***


async def test_a_redacted_output_of_a_writing_step_fails_its_dependent_with_the_reason(
    tmp_path: Path,
) -> None:
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    events = await _record(WRITES, params, secrets)
    history = _cut(events, EventType.STEP_COMPLETED, "produce")
    (tmp_path / "out").unlink()
    runner = await _resume(WRITES, history, params, secrets)
    use = runner.state.step("use")
    assert use.status == "failed" and use.error == REDACTED_INPUT_ERROR
    assert not (tmp_path / "out").exists()


THROUGH_A_MIDDLE_STEP = """
    secrets: [token]
    params:
      file: {type: string}
    steps:
      - id: produce
        uses: shell.run
        with: {command: "echo {{ secrets.token }}"}
        outputs: {said: "{{ result.stdout | trim }}"}
      - id: middle
        needs: [produce]
        uses: core.noop
      - id: use
        needs: [middle]
        uses: shell.run
        idempotent: %s
        with: {command: "echo {{ steps['produce'].outputs.said }} >> {{ params.file }}"}
        rollback: none
"""


async def test_a_redacted_output_read_through_an_ancestor_further_up_is_refused(tmp_path: Path) -> None:
    """`use` reads `produce` through `middle` (not a direct `needs`): it fails with the reason,
    and never runs with `***`; `middle`, which reads nothing of `produce`, still runs."""
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    text = THROUGH_A_MIDDLE_STEP % "false"
    events = await _record(text, params, secrets)
    (tmp_path / "out").unlink()
    runner = await _resume(text, _cut(events, EventType.STEP_COMPLETED, "produce"), params, secrets)
    assert runner.state.step("middle").status == "completed"
    use = runner.state.step("use")
    assert use.status == "failed" and use.error == REDACTED_INPUT_ERROR
    assert not (tmp_path / "out").exists()


async def test_an_idempotent_step_left_running_is_not_run_again_with_a_redacted_input(tmp_path: Path) -> None:
    params, secrets = {"file": str(tmp_path / "out")}, {"token": SECRET}
    text = THROUGH_A_MIDDLE_STEP % "true"
    events = await _record(text, params, secrets)
    (tmp_path / "out").unlink()
    runner = await _resume(text, _cut(events, EventType.STEP_STARTED, "use"), params, secrets)
    use = runner.state.step("use")
    assert use.status == "failed" and use.error == REDACTED_INPUT_ERROR
    assert not (tmp_path / "out").exists()  # not run again: it would have written ***


UNDO = """
    params:
      dir: {type: string}
    steps:
%s
      - id: boom
        needs: [c]
        uses: core.fail
        with: {message: on purpose}
"""
STEPS = "".join(
    f"""      - id: {s}
        {f"needs: [{p}]" if p else ""}
        uses: shell.run
        with: {{command: "echo run >> {{{{ params.dir }}}}/{s}"}}
        rollback:
          uses: shell.run
          with: {{command: "echo undo >> {{{{ params.dir }}}}/{s}_undo"}}
"""
    for s, p in (("a", ""), ("b", "a"), ("c", "b"))
)


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def test_a_resumed_rollback_skips_what_was_compensated(tmp_path: Path) -> None:
    params = {"dir": str(tmp_path)}
    text = UNDO % STEPS
    events = await _record(text, params, {})
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [1, 1, 1]
    history = _cut(events, EventType.COMPENSATION_COMPLETED, "c")  # c undone, then the crash
    runner = await _resume(text, history, params, {})
    assert runner.state.status == "rolled_back"
    assert [_count(tmp_path / s) for s in "abc"] == [1, 1, 1]  # no step ran again
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [2, 2, 1]  # c was not undone twice


async def test_a_compensation_under_way_at_the_crash_fails_as_agent_lost(tmp_path: Path) -> None:
    params = {"dir": str(tmp_path)}
    text = UNDO % STEPS
    events = await _record(text, params, {})
    history = _cut(events, EventType.COMPENSATION_STARTED, "b")
    runner = await _resume(text, history, params, {})
    assert runner.state.status == "rollback_failed"
    b = runner.state.step("b")
    assert b.status == "compensation_failed" and b.compensation_error == LOST_COMPENSATION_ERROR
    assert b.compensation_resumed is None  # it was not run again
    # the recording undid everything once; the resume: c done before the crash, b lost, a undone
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [2, 1, 1]


# -- a crash at a chosen event, then the resume ---------------------------------------------------


class Crash(StoreError):
    """The agent died (as far as the store can tell)."""


class CrashStore(MemoryStore):
    """Records events until `at` matches one; the next event is never recorded: the run stops
    there (StoreError), as an agent killed right after its last write would. What the runner
    did in between (a command, a request) did happen."""

    def __init__(self, at: Callable[[Event], bool]) -> None:
        super().__init__()
        self.at, self.armed, self.dead = at, False, False

    def append(self, execution_id: str, event: Event) -> None:
        if self.armed or self.dead:  # dead: whatever would come next is never recorded or done
            self.dead = True
            raise Crash("the agent died")
        super().append(execution_id, event)
        self.armed = self.at(event)


def at(kind: EventType, step: str, item: int | None = None, nth: int = 1) -> Callable[[Event], bool]:
    """The `nth` event of this kind for this step (and item, if given)."""
    seen = 0

    def match(e: Event) -> bool:
        nonlocal seen
        if e.type is kind and e.step == step and (item is None or e.item == item):
            seen += 1
        return seen == nth

    return match


async def _crash(
    wf_text: str, params: dict[str, str], crash: Callable[[Event], bool], config: dict[str, Any] | None = None
) -> list[Event]:
    store = CrashStore(crash)
    options = RunOptions(adapter_config=config or {})
    runner = Runner(workflow(wf_text), params=params, secrets={}, store=store, options=options)
    with pytest.raises(Crash):
        await runner.run()
    assert store.dead
    return await store.events(runner.execution_id)


def _undo_text(step: str, idempotent: bool) -> str:
    mark = f"      - id: {step}\n"
    return (UNDO % STEPS).replace(mark, f"{mark}        idempotent: {str(idempotent).lower()}\n")


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
async def test_a_shell_compensation_under_way_runs_again_only_if_the_step_is_idempotent(
    tmp_path: Path, idempotent: bool
) -> None:
    params = {"dir": str(tmp_path)}
    text = _undo_text("b", idempotent)
    history = await _crash(text, params, at(EventType.COMPENSATION_STARTED, "b"))
    assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [0, 1, 1]  # b's undo ran, unrecorded
    runner = await _resume(text, history, params, {})
    b = runner.state.step("b")
    assert [_count(tmp_path / s) for s in "abc"] == [1, 1, 1]
    if idempotent:
        assert runner.state.status == "rolled_back"
        assert b.status == "compensated"
        assert b.compensation_resumed == (
            "resumed after its agent was lost: run again (the step says `idempotent: true`)"
        )
        assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [1, 2, 1]
    else:
        assert runner.state.status == "rollback_failed"
        assert b.status == "compensation_failed" and b.compensation_error == LOST_COMPENSATION_ERROR
        assert [_count(tmp_path / f"{s}_undo") for s in "abc"] == [1, 1, 1]  # the rest still ran
    assert runner.state.step("a").status == "compensated"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApi]:
    with FakeApi(tls) as server:
        for path in ("/change", "/undo"):
            server.route("*", path, Reply(200, {"ok": True}))
        yield server


HTTP_UNDO = """
    params:
      url: {type: string}
    steps:
      - id: change
        uses: api.request
        with: {method: POST, url: "{{ params.url }}/change"}
        rollback:
          uses: api.request
          with: {method: %s, url: "{{ params.url }}/undo"}
      - id: boom
        needs: [change]
        uses: core.fail
        with: {message: on purpose}
"""


@pytest.mark.parametrize(("method", "again"), [("PUT", True), ("DELETE", True), ("POST", False)])
async def test_an_http_rollback_under_way_runs_again_only_if_its_method_is_idempotent(
    api: FakeApi, tls: TlsFiles, method: str, again: bool
) -> None:
    params, config = {"url": api.url}, {"api": {"ca_file": str(tls.ca_file)}}
    text = HTTP_UNDO % method
    history = await _crash(text, params, at(EventType.COMPENSATION_STARTED, "change"), config)
    assert len(api.to("/undo")) == 1
    runner = await _resume(text, history, params, {}, config)
    change = runner.state.step("change")
    assert len(api.to("/change")) == 1
    if again:
        assert runner.state.status == "rolled_back"
        assert change.compensation_resumed is not None
        assert "run again (api.request is idempotent with these inputs)" in change.compensation_resumed
        assert len(api.to("/undo")) == 2
    else:
        assert runner.state.status == "rollback_failed"
        assert change.compensation_error == LOST_COMPENSATION_ERROR
        assert len(api.to("/undo")) == 1


SCALE_EACH = """
    steps:
      - id: scale
        for_each: [web-a, web-b, web-c]
        uses: k8s.scale
        with: {kind: Deployment, name: "{{ item }}", namespace: default, replicas: 5}
      - id: boom
        needs: [scale]
        uses: core.fail
        with: {message: on purpose}
"""


async def test_an_idempotent_inverse_under_way_runs_again_and_only_items_not_undone_follow(
    tmp_path: Path,
) -> None:
    """k8s.scale's inverse is idempotent (its adapter says so): the item under way is scaled
    back again, the item not started is scaled back, the item done before the crash is left."""
    with K8sDouble(converge_delay=0.05) as k8s:
        for name in ("web-a", "web-b", "web-c"):
            k8s.create(deployment(name, "registry.example.com/web:1", 2, {"app": name}))
        kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig")
        config = {"k8s": {"kubeconfig": str(kubeconfig), "poll_interval": 0.05}}
        # items are undone last first: web-c done, then the agent dies undoing web-b
        history = await _crash(SCALE_EACH, {}, at(EventType.COMPENSATION_STARTED, "scale", item=1), config)
        replicas = {n: k8s.get("Deployment", n)["spec"]["replicas"] for n in ("web-a", "web-b", "web-c")}
        assert replicas == {"web-a": 5, "web-b": 2, "web-c": 2}
        assert [e.item for e in history if e.type is EventType.COMPENSATION_COMPLETED] == [2]
        k8s.clear_requests()
        runner = await _resume(SCALE_EACH, history, {}, {}, config)
        scaled = [r.path.split("/")[-2] for r in k8s.writes() if r.path.endswith("/scale")]
        replicas = {n: k8s.get("Deployment", n)["spec"]["replicas"] for n in ("web-a", "web-b", "web-c")}
    assert runner.state.status == "rolled_back", runner.state.error
    assert scaled == ["web-b", "web-a"]  # web-c was not touched again
    assert replicas == {"web-a": 2, "web-b": 2, "web-c": 2}
    step = runner.state.step("scale")
    assert step.status == "compensated"
    assert step.compensation_resumed == (
        "resumed after its agent was lost: item 1 run again (the inverse of k8s.scale is idempotent)"
    )
    assert [(i, r.status) for i, r in sorted((step.items or {}).items())] == [
        (0, "compensated"), (1, "compensated"), (2, "compensated")
    ]  # fmt: skip


FOR_EACH = """
    params:
      dir: {type: string}
    steps:
      - id: each
        idempotent: %s
        for_each: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        concurrency: 2
        uses: shell.run
        with: {command: "echo {{ index }} >> {{ params.dir }}/runs; sleep 0.02"}
        rollback:
          uses: shell.run
          with: {command: "echo {{ index }} >> {{ params.dir }}/undo"}
      - id: boom
        needs: [each]
        uses: core.fail
        with: {message: on purpose}
"""


def _runs(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _items(history: list[Event], kind: EventType) -> set[int]:
    return {e.item for e in history if e.type is kind and e.step == "each" and e.item is not None}


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
async def test_for_each_items_are_resumed_one_by_one(tmp_path: Path, idempotent: bool) -> None:
    """Ten items, two at a time; the agent dies as item 5 starts. Completed items
    never run again; an item left running runs again only if the step is idempotent, else it
    fails as "agent lost" and the items done are compensated once each, last first."""
    params = {"dir": str(tmp_path)}
    text = FOR_EACH % str(idempotent).lower()
    history = await _crash(text, params, at(EventType.ATTEMPT_STARTED, "each", item=5))
    done = _items(history, EventType.ITEM_COMPLETED)
    running = _items(history, EventType.ATTEMPT_STARTED) - done
    assert len(done) >= 3 and 5 in running  # two at a time: item 5 (and maybe 4) under way
    before = _runs(tmp_path / "runs")
    runner = await _resume(text, history, params, {})
    runs = _runs(tmp_path / "runs")
    each = runner.state.step("each")
    assert all(runs.count(i) == 1 for i in done)  # never again
    if idempotent:
        assert each.status == "compensated"  # it completed; boom failed, so all ten were undone
        assert sorted(set(runs)) == list(range(10))
        assert all(runs.count(i) == 1 for i in set(range(10)) - running)  # exactly once
        assert all(runs.count(i) == before.count(i) + 1 for i in running)  # run again
        assert _runs(tmp_path / "undo") == list(range(9, -1, -1))
    else:
        assert runner.state.status == "rolled_back"
        assert each.status == "compensated" and each.error and LOST_STEP_ERROR in each.error
        assert runs == before  # nothing ran again; fail-fast: the rest never started
        lost = {i for i, r in (each.items or {}).items() if r.error == LOST_STEP_ERROR}
        assert lost == running
        assert _runs(tmp_path / "undo") == sorted(done, reverse=True)  # exactly the done, last first


UNDO_EACH = """
    params:
      dir: {type: string}
    steps:
      - id: each
        for_each: [0, 1, 2]
        uses: shell.run
        with: {command: "echo {{ index }} >> {{ params.dir }}/runs"}
        rollback:
          uses: shell.run
          with: {command: "echo {{ index }} >> {{ params.dir }}/undo"}
      - id: boom
        needs: [each]
        uses: core.fail
        with: {message: on purpose}
"""


async def test_a_for_each_compensation_resumes_item_by_item(tmp_path: Path) -> None:
    """Undone last first: item 2 done, the agent dies undoing item 1 (a shell command, not
    idempotent): item 1 fails as agent lost, item 0 is still undone, item 2 not again."""
    params = {"dir": str(tmp_path)}
    history = await _crash(UNDO_EACH, params, at(EventType.COMPENSATION_STARTED, "each", item=1))
    assert _runs(tmp_path / "undo") == [2, 1]
    runner = await _resume(UNDO_EACH, history, params, {})
    assert sorted(_runs(tmp_path / "runs")) == [0, 1, 2]  # each once (they ran side by side)
    assert _runs(tmp_path / "undo") == [2, 1, 0]
    each = runner.state.step("each")
    assert runner.state.status == "rollback_failed"
    assert each.status == "compensation_failed"
    assert each.compensation_error == f"item 1: {LOST_COMPENSATION_ERROR}"
    assert (
        each.compensation_resumed
        == "resumed after its agent was lost: item 1 not run again (outcome unknown)"
    )
    assert [(i, r.status) for i, r in sorted((each.items or {}).items())] == [
        (0, "compensated"), (1, "compensation_failed"), (2, "compensated")
    ]  # fmt: skip


async def test_a_for_each_compensation_whose_items_were_all_settled_just_ends(tmp_path: Path) -> None:
    """The agent died after the last item was undone, before the step's own end was recorded."""
    params = {"dir": str(tmp_path)}
    history = await _crash(UNDO_EACH, params, at(EventType.COMPENSATION_COMPLETED, "each", item=0))
    runner = await _resume(UNDO_EACH, history, params, {})
    assert _runs(tmp_path / "undo") == [2, 1, 0]  # nothing undone twice
    each = runner.state.step("each")
    assert runner.state.status == "rolled_back" and each.status == "compensated"
    assert each.compensation_resumed == "resumed after its agent was lost: every item was settled"
