"""The queue in every store (memory, SQLite, SQLite offloaded): placement, aging, not_before,
control requests and failed agents, as the agents and the API rely on them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wpk.engine import agent_control
from wpk.engine.executions import WorkflowCache, record, submit
from wpk.engine.scheduler import IllegalTransition
from wpk.engine.store import MemoryStore, SQLiteStore
from wpk.engine.store.base import AgentInfo, ExecutionStore

PLAIN = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: plain, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""
PLACED = PLAIN.replace("name: plain", "name: placed").replace(
    "spec:\n", "spec:\n  placement: {labels: {cluster: prod-eu}}\n"
)


@pytest.fixture(params=["memory", "sqlite", "sqlite-offload"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ExecutionStore]:
    s: ExecutionStore
    if request.param == "memory":
        s = MemoryStore()
    else:
        s = SQLiteStore(tmp_path / "wpk.db", offload=request.param == "sqlite-offload")
    yield s
    await s.aclose()


def _agent(
    agent_id: str, state: str = "running", labels: dict[str, str] | None = None, beat: float = 0.0
) -> AgentInfo:
    now = beat or time.time()
    return AgentInfo(
        agent_id=agent_id,
        labels=labels or {},
        capacity=4,
        version="1",
        state=state,
        heartbeat_at=now,
        started_at=now,
        adapters=("core", "shell"),
    )


async def test_placement_only_an_agent_with_the_labels_claims(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    placed = (await submit(store, cache, PLACED, {}, priority=90)).execution_id
    plain = (await submit(store, cache, PLAIN, {}, priority=10)).execution_id
    await store.register_agent(_agent("bare"))
    rec = await record(store, cache, placed)
    assert rec["waiting_reason"] == "no live agent has the labels cluster=prod-eu"
    claims = await store.claim_batch("bare", now=time.time(), limit=5, labels={})
    assert [c.row.execution_id for c in claims] == [plain]  # the placed one, though higher, is not its
    assert await store.claim_batch("us", now=time.time(), limit=5, labels={"cluster": "prod-us"}) == []
    claims = await store.claim_batch("eu", now=time.time(), limit=5, labels={"cluster": "prod-eu", "z": "a"})
    assert [c.row.execution_id for c in claims] == [placed]
    assert claims[0].row.labels == {"cluster": "prod-eu"}


async def test_aging_lets_an_old_low_priority_execution_overtake(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    old = (await submit(store, cache, PLAIN, {}, priority=0)).execution_id
    new = (await submit(store, cache, PLAIN, {}, priority=100)).execution_id
    now = time.time()
    # Without aging, strict priority; with aging and the old one waiting long enough, it goes first.
    first = await store.claim("x", now=now, aging_rate=0.0)
    assert first is not None and first.row.execution_id == new
    await store.release(new, first.attempt)
    row = await store.get_execution(old)
    assert row is not None
    # 10 points a minute: 100 points in 10 minutes; pretend the claim happens 11 minutes on.
    # Ordering does not depend on `now`, only on the gap between the submissions and the rate:
    # a gap of a few ms needs a rate of 100 / gap_minutes to overturn 100 points.
    gap_minutes = max((await store.get_execution(new)).created_at - row.created_at, 1e-6) / 60  # type: ignore[union-attr]
    first = await store.claim("x", now=now + 660, aging_rate=2 * 100 / gap_minutes)
    assert first is not None and first.row.execution_id == old


async def test_not_before_holds_an_execution_back(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    later = (await submit(store, cache, PLAIN, {}, priority=90, not_before=time.time() + 3600)).execution_id
    await store.register_agent(_agent("a"))
    assert (await record(store, cache, later))["waiting_reason"].startswith("not before ")
    assert await store.claim("a", now=time.time()) is None
    claim = await store.claim("a", now=time.time() + 3601)
    assert claim is not None and claim.row.execution_id == later
    assert claim.row.not_before is not None


async def test_control_requests_and_failed_agents(store: ExecutionStore) -> None:
    now = time.time()
    await store.register_agent(_agent("a", beat=now))
    await store.register_agent(_agent("old", beat=now - 100))
    await store.register_agent(_agent("gone", state="stopped", beat=now - 100))
    assert await store.fail_stale_agents(now=now, stale_after=30) == ["old"]
    states = {a.agent_id: a.state for a in await store.list_agents()}
    assert states == {"a": "running", "old": "failed", "gone": "stopped"}
    assert await store.fail_stale_agents(now=now, stale_after=30) == []

    answer = await agent_control.control(store, "a", "pause")
    assert answer["state"] == "running" and answer["requested"] == "pause"
    assert answer["adapters"] == ["core", "shell"]
    with pytest.raises(IllegalTransition, match="agent gone is stopped: cannot resume it"):
        await agent_control.control(store, "gone", "resume")
    with pytest.raises(agent_control.AgentNotFound):
        await agent_control.control(store, "nobody", "pause")
    # compare-and-set: a request for a state the agent is no longer in is refused by the store
    assert not await store.request_agent("gone", "resume", states=["paused"])
    await store.clear_request("a", "drain")  # not the one recorded: kept
    assert (await agent_control.get_agent(store, "a"))["requested"] == "pause"
    await store.clear_request("a", "pause")
    assert (await agent_control.get_agent(store, "a"))["requested"] is None


async def test_the_queue_listing_is_in_claim_order(store: ExecutionStore) -> None:
    cache = WorkflowCache()
    ids = [(await submit(store, cache, PLAIN, {}, priority=p)).execution_id for p in (10, 90, 50, 90)]
    await store.register_agent(dataclasses.replace(_agent("a"), state="paused"))
    listing = await agent_control.queue(store, aging_rate=0.0)
    assert [e["execution_id"] for e in listing["executions"]] == [ids[1], ids[3], ids[2], ids[0]]
    assert [e["position"] for e in listing["executions"]] == [1, 2, 3, 4]
    assert listing["total"] == 4
    assert {e["waiting_reason"] for e in listing["executions"]} == {"every agent that could run it is paused"}
    claimed = [c.row.execution_id for c in await store.claim_batch("a", now=time.time(), limit=4)]
    assert claimed == [e["execution_id"] for e in listing["executions"]]
    aged = await agent_control.queue(store, aging_rate=10.0, now=time.time() + 600)
    assert aged["executions"] == []
