"""The agent loop: claim pending executions from the store and run them, up to a capacity.

It lives in the same trio loop as the sidecar's HTTP server (no second event loop, no thread per
execution): one task claims, one task per running execution, one task heartbeats. The queue is
the store (DESIGN §6): a submission anywhere wakes the claimer here, or the claimer finds it on
its next poll. Stopping drains: nothing new is claimed, running executions get `grace` seconds
to finish; what is still running then is handed over, not rolled back: each run stops as if the
agent had vanished (its running steps are cancelled, their outcome unknown, nothing more is
recorded: `Runner.abandon`), then its lease is released at once (`release_for_takeover`), so
another agent, or this one restarted, resumes it at its next poll under DESIGN §5's rules
instead of after the lease would have run out. A second signal hands over at once
(`hand_over_now`).

Leases and resume (DESIGN §5): every claim carries a lease that the heartbeat renews and an
attempt number that fences the store's writes. An agent that starts takes back at once what
it held before it restarted (same agent id); every poll also takes over executions whose lease
ran out (their agent died elsewhere, or handed them over) and that its labels allow. A
taken-over execution resumes from its events: the runner does not run completed steps again
(engine/resume.py).

Lifecycle (`scheduler.TRANSITIONS`): `created -> running <-> paused -> stopped`; a paused agent
claims nothing and finishes what it runs; drain is stop. A request made through the store (the
API of another process, `wpk agents pause` on the local store) is applied at the next heartbeat,
which also marks `failed` any agent whose heartbeats stopped (`stale_after`). Claims ask only for
executions this agent's labels allow, in effective-priority order (`aging_rate`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from .events import Event, EventType
from .execute import PackageInvalid, prepare_run
from .executions import WorkflowCache
from .model import Workflow
from .runner import Runner, RunOptions
from .scheduler import DEFAULT_AGING_RATE, REQUESTS, check_request, check_transition
from .secrets import MissingSecrets
from .store.base import LEASE_SECONDS, AgentInfo, Claim, ExecutionStore, StaleClaim, StoreError

log = logging.getLogger("wpk.agent")


def handed_over_error(agent_id: str) -> str:
    """What a step left running by a shutting-down agent says until another agent resumes it."""
    return (
        f"handed over: agent {agent_id} shut down before this step finished (its grace period ran "
        "out); the outcome is unknown, and the agent that takes the execution over runs the step "
        "again only if it is read-only or idempotent"
    )


# What `Agent.run` does with executions still running when the grace period ends.
PAST_GRACE = ("handover", "rollback")

# Called once per run with (workflow, execution id, dry_run); returns that run's event callback.
Observer = Callable[[Workflow, str, bool], Callable[[Event], None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    agent_id: str
    capacity: int = 8
    labels: Mapping[str, str] = field(default_factory=dict)
    adapter_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    poll_seconds: float = 1.0  # how often the queue is looked at without a wake-up
    heartbeat_seconds: float = 10.0
    lease_seconds: float = LEASE_SECONDS
    version: str = "0+unknown"
    environ: Mapping[str, str] | None = None  # where secrets come from (None: os.environ)
    aging_rate: float = DEFAULT_AGING_RATE  # priority points per minute of waiting (scheduler.py)
    stale_after: float | None = None  # no heartbeat for this long: failed (None: the lease time)
    adapters: tuple[str, ...] = ()  # the adapters this agent offers (shown in GET /agents)


class Agent:
    def __init__(
        self,
        store: ExecutionStore,
        config: AgentConfig,
        *,
        cache: WorkflowCache | None = None,
        observer: Observer | None = None,
        on_claim: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.cache = cache or WorkflowCache()
        self.observer = observer
        self.on_claim = on_claim  # called with each claim's duration in seconds (a metric)
        self.state = "created"
        self.requested: str | None = None  # drain: running work finishes, then the agent stops
        self.running: dict[str, Runner] = {}
        self._attempts: dict[str, int] = {}  # execution id -> the fencing token of this agent's claim
        self._grace: trio.CancelScope | None = None
        self._now = False  # hand over without waiting out the grace period
        self.started_at = time.time()
        self._wake = trio.Event()
        self._stopping = False
        self._stopped = trio.Event()
        self._idle = trio.Event()
        # Seeds for each run's retry jitter: seeding a Random from the OS per run costs a syscall.
        self._seeds = random.Random()
        self._resumed_own = False  # what this agent id held before a restart: taken back once

    # -- control -----------------------------------------------------------------------------
    def wake(self) -> None:
        """Something was submitted: look at the queue now rather than at the next poll."""
        self._wake.set()

    def cancel(self, execution_id: str) -> bool:
        runner = self.running.get(execution_id)
        if runner is None:
            return False
        runner.cancel()
        return True

    def stop(self) -> None:
        """Claim nothing more; `run` returns once running executions are over (see `grace`)."""
        self._stopping = True
        self.requested = "drain"
        self._wake.set()

    def hand_over_now(self) -> None:
        """Stop, and hand over what runs without waiting out the grace period (a second signal)."""
        self._now = True
        self.stop()
        if self._grace is not None:
            self._grace.cancel()

    def control(self, request: str) -> str:
        """Apply pause, resume or drain here and now; the state it leads to, or IllegalTransition."""
        to = check_request(self.config.agent_id, self.state, request)
        if request == "drain":
            self.stop()
        elif to != self.state:
            self.state = to
            log.info("agent %s: %s", self.config.agent_id, to)
            self._wake.set()
        return to

    @property
    def claiming(self) -> bool:
        return self.state == "running" and not self._stopping

    @property
    def active(self) -> int:
        return len(self.running)

    def info(self) -> AgentInfo:
        now = time.time()
        return AgentInfo(
            agent_id=self.config.agent_id,
            labels=dict(self.config.labels),
            capacity=self.config.capacity,
            version=self.config.version,
            state=self.state,
            heartbeat_at=now,
            started_at=self.started_at,
            adapters=tuple(self.config.adapters),
        )

    # -- the loop ----------------------------------------------------------------------------
    async def run(
        self,
        *,
        grace: float = 30.0,
        past_grace: str = "handover",
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register, claim and run until `stop()`; then drain within `grace` seconds.

        Past it, `past_grace` says what becomes of what still runs: "handover" (abandon it and
        release its lease for another agent, or this one restarted, to resume), or "rollback"
        (cancel it, its rollback policy applying, shielded) for a store that no other agent
        will ever read, such as SQLite on a pod's emptyDir, where handed-over work would be lost
        with the pod."""
        if past_grace not in PAST_GRACE:
            raise ValueError(f"past_grace must be one of {', '.join(PAST_GRACE)}")
        check_transition(self.config.agent_id, self.state, "running")
        self.state = "running"
        await self.store.register_agent(self.info())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat_loop)
            task_status.started()
            async with trio.open_nursery() as runs:
                await self._claim_loop(runs)
                with trio.move_on_after(0 if self._now else grace) as self._grace:
                    while self.running:
                        await self._until_idle()
                handed: dict[str, int] = {}
                if past_grace == "rollback":
                    for runner in self.running.values():  # cancelled: the rollback policy applies
                        runner.cancel()
                else:
                    handed = {eid: self._attempts[eid] for eid in self.running}
                    for runner in self.running.values():  # as if this agent had vanished
                        runner.abandon(handed_over_error(self.config.agent_id))
            await self._hand_over(handed)  # once the runs ended: nothing of theirs is written after
            check_transition(self.config.agent_id, self.state, "stopped")
            self.state = "stopped"
            try:
                await self.store.heartbeat(self.config.agent_id, now=time.time(), state=self.state)
            except Exception as exc:
                log.error("agent %s: could not record its stop: %s", self.config.agent_id, type(exc).__name__)
            nursery.cancel_scope.cancel()

    async def _hand_over(self, handed: Mapping[str, int]) -> None:
        """Release the leases of abandoned executions at once, each fenced by its claim."""
        for execution_id, attempt in handed.items():
            try:
                released = await self.store.release_for_takeover(execution_id, attempt)
            except Exception as exc:  # its lease runs out instead: taken over later, not lost
                released = False
                log.error("agent %s: could not hand over %s: %s", self.config.agent_id, execution_id, exc)
            if released:
                log.warning(
                    "agent %s: handed over execution %s (attempt %d): another agent resumes it",
                    self.config.agent_id,
                    execution_id,
                    attempt,
                )

    async def _until_idle(self) -> None:
        self._idle = trio.Event()
        if self.running:
            await self._idle.wait()

    async def _claim_loop(self, runs: trio.Nursery) -> None:
        while not self._stopping:
            self._wake = trio.Event()
            try:
                await self._fill(runs)
                if self.running:
                    for execution_id in await self.store.cancel_requested(self.running):
                        self.cancel(execution_id)
            except Exception as exc:  # a store that fails now (locked, full) may work at the next poll
                log.error("agent %s: the store failed: %s: %s", self.config.agent_id, type(exc).__name__, exc)
            with trio.move_on_after(self.config.poll_seconds):
                await self._wake.wait()

    async def _fill(self, runs: trio.Nursery) -> None:
        """Claim up to the free capacity, in claim order, and start each claimed execution.

        Executions to resume (lease run out; at start-up, this agent's own) come first: they
        were started already, and nothing else moves them on."""
        while len(self.running) < self.config.capacity and self.claiming:
            free = self.config.capacity - len(self.running)
            began = time.perf_counter()
            claims = await self.store.reclaim(
                self.config.agent_id,
                now=time.time(),
                limit=free,
                lease_seconds=self.config.lease_seconds,
                own=not self._resumed_own,
                labels=self.config.labels,
            )
            self._resumed_own = True
            for claim in claims:
                log.warning(
                    "agent %s: resuming execution %s (attempt %d)",
                    self.config.agent_id,
                    claim.row.execution_id,
                    claim.attempt,
                )
            if len(claims) < free:
                claims += await self.store.claim_batch(
                    self.config.agent_id,
                    now=time.time(),
                    limit=free - len(claims),
                    lease_seconds=self.config.lease_seconds,
                    labels=self.config.labels,
                    aging_rate=self.config.aging_rate,
                )
            if self.on_claim is not None:
                self.on_claim(time.perf_counter() - began)
            for claim in claims:
                runner = await self._prepare(claim)
                if runner is not None:
                    self.running[claim.row.execution_id] = runner
                    self._attempts[claim.row.execution_id] = claim.attempt
                    runs.start_soon(self._run_one, claim, runner)
            if len(claims) < free:
                return

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(self.config.heartbeat_seconds)
            try:
                await self.beat()
            except Exception as exc:
                log.error("agent %s: heartbeat failed: %s: %s", self.config.agent_id, type(exc).__name__, exc)

    async def beat(self) -> None:
        """One heartbeat: renew the leases, mark agents that stopped beating `failed`, and apply
        a control request another process recorded for this agent."""
        now = time.time()
        await self.store.heartbeat(
            self.config.agent_id, now=now, state=self.state, lease_seconds=self.config.lease_seconds
        )
        stale_after = self.config.stale_after or self.config.lease_seconds
        for agent_id in await self.store.fail_stale_agents(now=now, stale_after=stale_after):
            log.warning("agent %s: no heartbeat for %gs: marked failed", agent_id, stale_after)
        mine = [a for a in await self.store.list_agents() if a.agent_id == self.config.agent_id]
        request = mine[0].requested if mine else None
        if request in REQUESTS:
            assert request is not None
            try:
                self.control(request)
            except Exception as exc:  # an illegal request (stopped meanwhile): dropped, said once
                log.warning("agent %s: request %s dropped: %s", self.config.agent_id, request, exc)
            await self.store.clear_request(self.config.agent_id, request)
            if request != "drain":
                await self.store.heartbeat(
                    self.config.agent_id,
                    now=time.time(),
                    state=self.state,
                    lease_seconds=self.config.lease_seconds,
                )

    async def _prepare(self, claim: Claim) -> Runner | None:
        """A runner for a claimed execution, or the execution failed with why it cannot run."""
        row = claim.row
        self.store.fence(row.execution_id, claim.attempt)  # every write from here on carries the token
        try:
            if row.package is None:
                raise PackageInvalid([])
            workflow = self.cache.workflow(row.package, row.package_path)
            history = list(claim.history) or await self.store.events(row.execution_id)
            on_event = (
                None if self.observer is None else self.observer(workflow, row.execution_id, row.dry_run)
            )
            options = RunOptions(
                dry_run=row.dry_run,
                rollback=row.rollback,
                execution_id=row.execution_id,
                priority=row.priority,
                adapter_config=self.config.adapter_config,
                on_event=on_event,
                history=history,
                seed=self._seeds.getrandbits(64),
            )
            return prepare_run(
                workflow, row.params, store=self.store, options=options, environ=self.config.environ
            )
        except PackageInvalid as exc:
            error = "the recorded runbook no longer validates: " + "; ".join(str(d) for d in exc.diagnostics)
        except MissingSecrets as exc:
            error = "secrets not set on agent " + f"{self.config.agent_id}: {', '.join(exc.names)}"
        await self._fail_unstarted(row.execution_id, error)
        self.store.fence(row.execution_id, None)
        return None

    async def _fail_unstarted(self, execution_id: str, error: str) -> None:
        events = await self.store.events(execution_id)
        seq = events[-1].seq if events else 0
        now = time.time()
        for offset, (kind, data) in enumerate(
            (
                (EventType.EXECUTION_STARTED, {}),
                (EventType.EXECUTION_FINISHED, {"status": "failed", "error": error}),
                (EventType.EXECUTION_CLOSED, {"status": "failed", "error": error}),
            ),
            start=1,
        ):
            self.store.append(execution_id, Event(seq + offset, kind, now, data=data))
        await self.store.flush()

    async def _run_one(self, claim: Claim, runner: Runner) -> None:
        execution_id = claim.row.execution_id
        try:
            if claim.row.cancel_requested:
                runner.cancel()
            await runner.run()
        except StaleClaim as exc:  # another agent took it over: stop here, it carries on there
            log.error("agent %s: %s", self.config.agent_id, exc)
        except StoreError as exc:  # the run stopped; another agent resumes it once the lease runs out
            log.error(
                "agent %s: execution %s stopped, the store failed: %s",
                self.config.agent_id,
                execution_id,
                exc,
            )
        except Exception:  # a bug in wpk: log it here, keep the agent and the other runs alive
            log.exception("execution %s: unexpected error in the runner", execution_id)
        finally:
            self.store.fence(execution_id, None)
            del self.running[execution_id]
            self._attempts.pop(execution_id, None)
            self._wake.set()
            if not self.running:
                self._idle.set()
