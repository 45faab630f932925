"""The store contract, run against every store: memory, SQLite on the loop, SQLite offloaded, the
ArangoDB store on the wire-level double (tests/arango_double), and on a real ArangoDB when
`WPK_ARANGO_URL` is set (a throwaway database, dropped afterwards; docs/stores.md).

Executions are rows created with their first event; the row status follows the events; the
queue hands out the highest priority first, FIFO within a priority, each execution once.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from arango import ArangoClient
from arango_double import ArangoDouble

from wpk.engine.events import Event, EventType
from wpk.engine.execute import run_workflow
from wpk.engine.executions import WorkflowCache, cancel, record, submit
from wpk.engine.runner import RunOptions
from wpk.engine.store import ExecutionQuery, MemoryStore, SQLiteStore
from wpk.engine.store.arangodb import ArangoStore, ArangoTarget, parse_url
from wpk.engine.store.base import AgentInfo, ExecutionStore, StaleClaim

RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  params:
    n: {type: integer, default: 1}
  steps:
    - id: a
      uses: core.echo
      with: {message: "n is {{ params.n }}"}
"""


LIVE_URL = os.environ.get("WPK_ARANGO_URL", "")
LIVE_PASSWORD = os.environ.get("WPK_ARANGO_PASSWORD", "")
DOUBLE_PASSWORD = "pw-" + secrets.token_hex(8)
KINDS = [
    "memory",
    "sqlite",
    "sqlite-offload",
    "arango-double",
    pytest.param(
        "arango-live",
        marks=[
            pytest.mark.arango_live,
            pytest.mark.skipif(not LIVE_URL, reason="WPK_ARANGO_URL is not set: no ArangoDB to test against"),
        ],
    ),
]

Opener = Callable[[], ExecutionStore]


@pytest.fixture(params=KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener | None]:
    """Opens a store of one kind on the same backing each time; None for memory (nothing kept)."""
    kind = request.param
    if kind == "memory":
        yield None
    elif kind.startswith("sqlite"):
        yield lambda: SQLiteStore(tmp_path / "wpk.db", offload=kind == "sqlite-offload")
    elif kind == "arango-double":
        with ArangoDouble(password=DOUBLE_PASSWORD) as double:
            target = parse_url(f"arangodb://root@{double.host}:{double.port}/wpk")
            yield lambda: ArangoStore(target, DOUBLE_PASSWORD)
    else:
        base = parse_url(LIVE_URL)
        target = ArangoTarget(base.endpoint, f"wpk_live_{secrets.token_hex(4)}", base.username)
        ca_file = os.environ.get("WPK_ARANGO_CA_FILE") or None
        yield lambda: ArangoStore(target, LIVE_PASSWORD, ca_file=ca_file)
        client = ArangoClient(hosts=target.endpoint, verify_override=ca_file)
        try:
            system = client.db("_system", username=target.username, password=LIVE_PASSWORD)
            system.delete_database(target.database, ignore_missing=True)
        finally:
            client.close()


@pytest.fixture
async def store(opener: Opener | None) -> AsyncIterator[ExecutionStore]:
    s: ExecutionStore = MemoryStore() if opener is None else opener()
    yield s
    await s.aclose()


async def _submit(store: ExecutionStore, cache: WorkflowCache, priority: int, n: int = 1) -> str:
    return (await submit(store, cache, RUNBOOK, {"n": n}, priority=priority)).execution_id


async def test_a_submission_is_a_pending_row_with_its_first_event(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 40, n=7)
    row = await store.get_execution(eid)
    assert row is not None and row.status == "pending" and row.priority == 40
    assert row.params == {"n": 7} and row.package == RUNBOOK and row.workflow_id == "noop-1.0.0"
    events = await store.events(eid)
    assert [e.type for e in events] == [EventType.EXECUTION_CREATED]
    rec = await record(store, cache, eid)
    assert rec["status"] == "pending" and rec["priority"] == 40 and rec["steps"][0]["status"] == "pending"
    assert await store.get_execution("nope") is None


async def test_claims_go_by_priority_then_submission_order(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    low1 = await _submit(store, cache, 10)
    high1 = await _submit(store, cache, 90)
    low2 = await _submit(store, cache, 10)
    high2 = await _submit(store, cache, 90)
    mid = await _submit(store, cache, 50)
    assert await store.queue_depth() == {"low": 2, "normal": 1, "high": 2}
    order = []
    while (claim := await store.claim("a1", now=time.time())) is not None:
        order.append(claim.row.execution_id)
        assert claim.attempt == 1 and claim.row.agent_id == "a1" and claim.row.status == "running"
    assert order == [high1, high2, mid, low1, low2]
    assert await store.queue_depth() == {"low": 0, "normal": 0, "high": 0}


async def test_a_batch_claim_takes_the_same_order_in_one_go(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    ids = [await _submit(store, cache, p) for p in (10, 90, 50, 90, 10)]
    first = await store.claim_batch("a1", now=time.time(), limit=3)
    assert [c.row.execution_id for c in first] == [ids[1], ids[3], ids[2]]
    assert all(c.history and c.history[0].type is EventType.EXECUTION_CREATED for c in first)
    rest = await store.claim_batch("a1", now=time.time(), limit=10)
    assert [c.row.execution_id for c in rest] == [ids[0], ids[4]]
    assert await store.queue_depth() == {"low": 0, "normal": 0, "high": 0}


async def test_a_release_needs_the_current_fencing_token(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    first = await store.claim("a1", now=time.time())
    assert first is not None and first.attempt == 1
    assert not await store.release(eid, attempt=7)  # a stale or foreign token changes nothing
    assert await store.release(eid, attempt=1)
    row = await store.get_execution(eid)
    assert row is not None and row.status == "pending" and row.agent_id is None
    second = await store.claim("a2", now=time.time())
    assert second is not None and second.attempt == 2 and second.row.agent_id == "a2"
    assert not await store.release(eid, attempt=1)  # the first claim's token is stale now


async def test_status_follows_the_events_of_a_run(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    claim = await store.claim("a1", now=time.time())
    assert claim is not None
    history = await store.events(eid)
    state = await run_workflow(
        cache.workflow(RUNBOOK), {"n": 1}, store=store, options=RunOptions(execution_id=eid, history=history)
    )
    assert state.status == "completed"
    row = await store.get_execution(eid)
    assert row is not None and row.status == "completed" and row.started_at and row.finished_at
    events = await store.events(eid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # one log, no duplicate
    assert sum(e.type is EventType.EXECUTION_CREATED for e in events) == 1


async def test_a_bare_run_gets_a_row_from_its_creation_event(store: ExecutionStore) -> None:
    state = await run_workflow(WorkflowCache().workflow(RUNBOOK), {}, store=store)
    await store.flush()
    row = await store.get_execution(state.execution_id)
    assert row is not None and row.status == "completed" and row.package is None


async def test_list_filters_and_pages(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    ids = [await _submit(store, cache, 50) for _ in range(5)]
    before = time.time()
    await trio.sleep(0.01)
    later = await _submit(store, cache, 50)
    assert await cancel(store, ids[0]) == "cancelled"
    page = await store.list_executions(ExecutionQuery(limit=4))
    assert [r.execution_id for r in page.rows] == [later, *reversed(ids[2:])]
    assert page.next is not None
    rest = await store.list_executions(ExecutionQuery(limit=4, cursor=page.next))
    assert [r.execution_id for r in rest.rows] == [ids[1], ids[0]] and rest.next is None
    cancelled = await store.list_executions(ExecutionQuery(statuses=("cancelled",)))
    assert [r.execution_id for r in cancelled.rows] == [ids[0]]
    recent = await store.list_executions(ExecutionQuery(since=before))
    assert [r.execution_id for r in recent.rows] == [later]
    by_id = await store.list_executions(ExecutionQuery(workflow="noop-1.0.0", limit=100))
    assert len(by_id.rows) == 6
    assert (await store.list_executions(ExecutionQuery(workflow="other"))).rows == []


async def test_transition_is_compare_and_set_with_its_events(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    closing = [Event(2, EventType.EXECUTION_FINISHED, time.time(), data={"status": "cancelled"})]
    assert await store.transition(eid, ("pending",), "cancelled", closing)
    assert not await store.transition(eid, ("pending",), "cancelled", closing)  # no second time
    assert [e.seq for e in await store.events(eid)] == [1, 2]
    assert await store.claim("a1", now=time.time()) is None  # a cancelled one is never claimed


async def test_logs_have_offsets(store: ExecutionStore) -> None:
    for seq in range(1, 6):
        store.append(
            "x", Event(seq, EventType.LOG, float(seq), "s", None, {"stream": "stdout", "line": f"l{seq}"})
        )
    await store.flush()
    lines = await store.logs("x", offset=2, limit=2)
    assert [(line.offset, line.line) for line in lines] == [(2, "l3"), (3, "l4")]
    assert [line.offset for line in await store.logs("x", offset=4)] == [4]


async def test_cancel_requests_and_agents(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    assert await store.cancel_requested([eid]) == set()
    await store.request_cancel(eid)
    assert await store.cancel_requested([eid, "other"]) == {eid}
    now = time.time()
    await store.register_agent(
        AgentInfo(
            agent_id="a1",
            labels={"zone": "x"},
            capacity=2,
            version="1",
            state="running",
            heartbeat_at=now,
            started_at=now,
        )
    )
    claim = await store.claim("a1", now=now, lease_seconds=5)
    assert claim is not None and claim.lease_until == pytest.approx(now + 5)
    await store.heartbeat("a1", now=now + 3, state="paused", lease_seconds=5)
    agents = await store.list_agents()
    assert [(a.agent_id, a.state, a.labels) for a in agents] == [("a1", "paused", {"zone": "x"})]
    row = await store.get_execution(eid)
    assert row is not None and row.lease_until == pytest.approx(now + 8)


def test_two_connections_on_one_file_never_claim_the_same_execution(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    cache = WorkflowCache()

    async def fill() -> None:
        s = SQLiteStore(path)
        for i in range(200):
            await _submit(s, cache, i % 100)
        await s.aclose()

    trio.run(fill)
    claimed: list[list[str]] = [[], []]

    def worker(index: int) -> None:
        async def go() -> None:
            s = SQLiteStore(path)
            while (claim := await s.claim(f"a{index}", now=time.time())) is not None:
                claimed[index].append(claim.row.execution_id)
            await s.aclose()

        trio.run(go)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = claimed[0] + claimed[1]
    assert len(both) == 200 and len(set(both)) == 200


def test_the_store_file_is_private(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    assert (tmp_path / "new.db").stat().st_mode & 0o777 == 0o600
    trio.run(store.aclose)


# -- the event log: append (buffered), flush, replay, reopen ------------------------------------


def ev(seq: int, type_: EventType = EventType.LOG, **data: Any) -> Event:
    if type_ is EventType.EXECUTION_CREATED:
        data = {"workflow_id": "w-1.0.0", **data}
    return Event(seq=seq, type=type_, time=1_700_000_000.0 + seq, step="s" if seq % 2 else None, data=data)


async def test_events_round_trip(store: ExecutionStore) -> None:
    events = [
        ev(
            1, EventType.EXECUTION_CREATED, execution_id="exec-1", params={"n": 1, "nested": [1, {"a": None}]}
        ),
        ev(2, EventType.STEP_STARTED),
        Event(
            seq=3, type=EventType.LOG, time=1.5, step="s", item=4, data={"line": "héllo ✓", "stream": "out"}
        ),
        ev(4, EventType.EXECUTION_FINISHED, status="completed"),
    ]
    for event in events:
        store.append("exec-1", event)
    await store.flush()
    assert await store.events("exec-1") == events
    assert await store.events("exec-1", after_seq=2) == events[2:]
    assert await store.events("missing") == []


async def test_unflushed_events_are_read(store: ExecutionStore) -> None:
    store.append("e", ev(1))
    store.append("e", ev(2))
    assert [e.seq for e in await store.events("e")] == [1, 2]


async def test_execution_ids(store: ExecutionStore) -> None:
    for execution in ("b", "a", "c"):
        store.append(execution, ev(1))
    store.append("a", ev(2))
    await store.flush()
    assert sorted(await store.execution_ids()) == ["a", "b", "c"]


async def test_events_interleave_by_seq(store: ExecutionStore) -> None:
    store.append("x", ev(1))
    await store.flush()
    store.append("y", ev(1))
    store.append("x", ev(2))
    await store.flush()
    store.append("x", ev(3))
    assert [e.seq for e in await store.events("x")] == [1, 2, 3]
    assert [e.seq for e in await store.events("y")] == [1]


async def test_close_flushes_and_reopen_reads(opener: Opener | None) -> None:
    if opener is None:
        return  # the memory store keeps nothing after close
    store = opener()
    store.append("durable", ev(1, EventType.EXECUTION_CREATED, execution_id="durable"))
    store.append("durable", ev(2, EventType.LOG, line="kept"))
    await store.aclose()
    again = opener()
    try:
        assert [e.data.get("line") for e in await again.events("durable")] == [None, "kept"]
        assert "durable" in await again.execution_ids()
        row = await again.get_execution("durable")
        assert row is not None and row.workflow_id == "w-1.0.0"
    finally:
        await again.aclose()


# -- leases, takeover, fencing (DESIGN §5) ---------------------------------------------------------


async def test_an_expired_lease_is_taken_over_and_the_old_claim_is_fenced_off(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    now = time.time()
    first = await store.claim("a1", now=now, lease_seconds=5)
    assert first is not None and first.attempt == 1
    assert await store.reclaim("a2", now=now + 1, limit=10, lease_seconds=5) == []  # lease still held
    await store.heartbeat("a1", now=now + 3, state="running", lease_seconds=5)  # renewed: until now + 8
    assert await store.reclaim("a2", now=now + 6, limit=10, lease_seconds=5) == []
    store.fence(eid, first.attempt)
    store.append(eid, Event(2, EventType.EXECUTION_STARTED, now + 6))
    await store.flush()  # the current claim writes
    taken = await store.reclaim("a2", now=now + 9, limit=10, lease_seconds=5)
    assert [c.row.execution_id for c in taken] == [eid]
    assert taken[0].attempt == 2 and taken[0].row.agent_id == "a2" and taken[0].row.status == "running"
    assert [e.type for e in taken[0].history] == [EventType.EXECUTION_CREATED, EventType.EXECUTION_STARTED]
    store.append(eid, Event(3, EventType.LOG, now + 9, "a", None, {"stream": "stdout", "line": "late"}))
    with pytest.raises(StaleClaim):
        await store.flush()  # the old claim's write is refused, and not kept for a later flush
    assert [e.seq for e in await store.events(eid)] == [1, 2]
    store.fence(eid, taken[0].attempt)
    store.append(eid, Event(3, EventType.LOG, now + 9, "a", None, {"stream": "stdout", "line": "new"}))
    await store.flush()
    assert [line.line for line in await store.logs(eid)] == ["new"]
    # an agent restarting under the same id resumes what it held at once, lease or not
    assert await store.reclaim("a3", now=now + 10, limit=10) == []
    mine = await store.reclaim("a2", now=now + 10, limit=10, own=True)
    assert [(c.row.execution_id, c.attempt) for c in mine] == [(eid, 3)]


async def test_a_local_run_holds_no_lease_and_is_never_taken_over(store: ExecutionStore) -> None:
    state = await run_workflow(WorkflowCache().workflow(RUNBOOK), {}, store=store)
    await store.flush()
    assert state.status == "completed"
    cache = WorkflowCache()
    await _submit(store, cache, 50)
    assert await store.reclaim("a9", now=time.time() + 3600, limit=10) == []


async def test_prune_deletes_only_executions_that_ended_before_the_cut(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    ended = [await _submit(store, cache, 50) for _ in range(2)]
    waiting = await _submit(store, cache, 50)
    running = await _submit(store, cache, 50)
    for eid in ended:
        assert await cancel(store, eid) == "cancelled"
    assert (await store.claim("a1", now=time.time())) is not None  # `waiting` or `running`: one runs
    assert await store.prune(finished_before=time.time() - 3600) == 0  # they ended just now
    assert await store.prune(finished_before=time.time() + 1) == 2
    assert [await store.get_execution(e) for e in ended] == [None, None]
    assert await store.events(ended[0]) == []
    for eid in (waiting, running):
        assert await store.get_execution(eid) is not None and await store.events(eid) != []


PLACED = RUNBOOK.replace("spec:\n", "spec:\n  placement: {labels: {cluster: prod-eu}}\n")


async def test_a_takeover_needs_the_labels_a_claim_needs(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    placed = (await submit(store, cache, PLACED, {}, priority=90)).execution_id
    plain = await _submit(store, cache, 10)
    now = time.time()
    eu = {"cluster": "prod-eu"}
    held = await store.claim_batch("a1", now=now, limit=5, lease_seconds=5, labels=eu)
    assert {c.row.execution_id for c in held} == {placed, plain}
    later = now + 9  # both leases ran out: the agent a1 died
    taken = await store.reclaim("bare", now=later, limit=5, labels={})
    assert [c.row.execution_id for c in taken] == [plain]  # the placed one, though higher, is not its
    assert await store.reclaim("us", now=later, limit=5, labels={"cluster": "prod-us"}) == []
    # At its restart, a1 with other labels does not take back what it held either.
    assert await store.reclaim("a1", now=now + 1, limit=5, own=True, labels={"cluster": "prod-us"}) == []
    taken = await store.reclaim("eu", now=later, limit=5, labels={**eu, "zone": "b"})
    assert [(c.row.execution_id, c.attempt, c.row.agent_id) for c in taken] == [(placed, 2, "eu")]


async def test_a_hand_over_ends_the_lease_at_once_fenced_by_the_claim(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    eid = await _submit(store, cache, 50)
    waiting = await _submit(store, cache, 40)
    now = time.time()
    first = await store.claim("a1", now=now, lease_seconds=3600)
    assert first is not None and first.row.execution_id == eid
    store.fence(eid, first.attempt)
    store.append(eid, Event(2, EventType.EXECUTION_STARTED, now))
    await store.flush()
    assert await store.reclaim("a2", now=now + 1, limit=10) == []  # the lease holds for an hour
    assert not await store.release_for_takeover(eid, attempt=7)  # a stale or foreign token: nothing
    assert not await store.release_for_takeover(waiting, attempt=0)  # pending: nothing to hand over
    assert await store.release_for_takeover(eid, attempt=first.attempt)
    row = await store.get_execution(eid)
    assert row is not None and row.status == "running" and row.agent_id is None
    await store.heartbeat("a1", now=now + 1, state="stopped", lease_seconds=3600)  # renews nothing now
    row = await store.get_execution(eid)
    assert row is not None and row.lease_until is not None and row.lease_until < now
    taken = await store.reclaim("a2", now=now + 1, limit=10)
    assert [(c.row.execution_id, c.attempt) for c in taken] == [(eid, 2)]
    assert [e.type for e in taken[0].history] == [EventType.EXECUTION_CREATED, EventType.EXECUTION_STARTED]
    assert not await store.release_for_takeover(eid, attempt=first.attempt)  # the old claim is stale
    store.append(eid, Event(3, EventType.LOG, now + 1, "a", None, {"stream": "stdout", "line": "late"}))
    with pytest.raises(StaleClaim):
        await store.flush()  # and its writes are refused
    row = await store.get_execution(eid)
    assert row is not None and row.agent_id == "a2" and row.attempt == 2
