"""`wpk serve`: the agent loop and the HTTP API in one trio loop, until SIGTERM or SIGINT.

hypercorn's trio worker serves the Starlette app; the agent claims and runs executions in the
same loop. On the first SIGTERM/SIGINT the listener closes (nothing new is accepted), the agent
claims nothing more and running executions get `grace` seconds to finish; after that they are
handed over, not rolled back: stopped as if the agent had vanished and their leases released at
once, so another agent resumes them (engine/agent.py). Then the process exits 0. A second
signal hands over at once.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from wpk.adapters.registry import adapter_names
from wpk.engine.agent import Agent, AgentConfig
from wpk.engine.executions import WorkflowCache
from wpk.engine.scheduler import DEFAULT_AGING_RATE
from wpk.engine.store import open_store

from .app import create_app
from .context import Sidecar
from .metrics import Metrics, observer_for

# A client must send something every READ_TIMEOUT seconds (hypercorn's default: wait forever) and a
# whole body within 30 s (limits.py). Idle keep-alive connections close after KEEP_ALIVE_TIMEOUT,
# longer than httpx's 5 s pool expiry, so a client never reuses a connection as it is closed.
READ_TIMEOUT = 10
KEEP_ALIVE_TIMEOUT = 10
GRACEFUL_TIMEOUT = 5  # open connections (e.g. a log follower) after the listener closes


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 4000
    store_url: str = "sqlite:"
    token: bytes | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: int = 8
    agent_id: str = "agent"
    grace: float = 30.0
    past_grace: str = "handover"  # or "rollback" (engine/agent.py: Agent.run)
    adapter_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    version: str = "0+unknown"
    max_body: int = 4 * 1024 * 1024
    lease_seconds: float = 30.0  # how long a claim holds without a heartbeat (DESIGN §5)
    heartbeat_seconds: float = 10.0
    aging_rate: float = DEFAULT_AGING_RATE  # priority points per minute (engine/scheduler.py)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hypercorn_config(config: ServeConfig) -> Config:
    hc = Config()
    host = f"[{config.host}]" if ":" in config.host and not config.host.startswith("[") else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.read_timeout = READ_TIMEOUT
    hc.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    hc.graceful_timeout = GRACEFUL_TIMEOUT
    hc.accesslog = None  # request lines could carry ids; the token is never in them, but keep quiet
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.h11_max_incomplete_size = 64 * 1024
    hc.include_server_header = False
    return hc


async def serve(config: ServeConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    store = open_store(config.store_url, offload=True)
    metrics = Metrics()
    cache = WorkflowCache()
    agent = Agent(
        store,
        AgentConfig(
            agent_id=config.agent_id,
            capacity=config.capacity,
            labels=dict(config.labels),
            adapter_config=config.adapter_config,
            version=config.version,
            lease_seconds=config.lease_seconds,
            heartbeat_seconds=config.heartbeat_seconds,
            aging_rate=config.aging_rate,
            adapters=tuple(adapter_names()),
        ),
        cache=cache,
        observer=observer_for(metrics),
        on_claim=metrics.claim_latency.observe,
    )
    sidecar = Sidecar(
        store=store,
        agent=agent,
        metrics=metrics,
        cache=cache,
        version=config.version,
        store_kind=config.store_url.partition(":")[0],
        adapter_config=config.adapter_config,
        token=config.token,
        max_body=config.max_body,
    )
    app = create_app(sidecar)
    stop_http = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            sidecar.nursery = nursery
            agent_done = trio.Event()
            http_done = trio.Event()

            async def run_agent(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await agent.run(grace=config.grace, past_grace=config.past_grace, task_status=task_status)
                finally:
                    agent_done.set()

            async def run_http(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await hypercorn_serve(
                        app,  # type: ignore[arg-type]
                        hypercorn_config(config),
                        shutdown_trigger=stop_http.wait,
                        task_status=task_status,
                    )
                finally:
                    http_done.set()

            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    count = 0
                    async for signum in signals:
                        count += 1
                        if count == 1:
                            name = signal.Signals(signum).name
                            print(
                                f"wpk serve: {name}: draining ({agent.active} running, grace "
                                f"{config.grace:g}s)",
                                file=sys.stderr,
                                flush=True,
                            )
                            stop_http.set()
                            agent.stop()
                        else:
                            agent.hand_over_now()

            nursery.start_soon(watch_signals)
            await nursery.start(run_agent)
            binds = await nursery.start(run_http)
            task_status.started(binds)
            print(
                f"wpk serve: listening on {' '.join(binds)} (agent {config.agent_id}, "
                f"store {sidecar.store_kind}, capacity {config.capacity})",
                file=sys.stderr,
                flush=True,
            )
            await agent_done.wait()
            stop_http.set()
            await http_done.wait()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
    print("wpk serve: stopped", file=sys.stderr, flush=True)


def run(config: ServeConfig) -> None:
    trio.run(serve, config)
