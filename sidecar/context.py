"""What every route needs, in one object built by the server (or a test) and put on the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from wpk.engine.agent import Agent
from wpk.engine.executions import WorkflowCache
from wpk.engine.store import ExecutionStore

from .metrics import Metrics


@dataclass(slots=True, kw_only=True)
class Sidecar:
    store: ExecutionStore
    agent: Agent
    metrics: Metrics
    cache: WorkflowCache = field(default_factory=WorkflowCache)
    version: str = "0+unknown"
    store_kind: str = "sqlite"  # the store's scheme only: a URL may hold credentials
    adapter_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None
    token: bytes | None = None
    max_body: int = 4 * 1024 * 1024
    # Where background work (manual rollbacks) runs; None: the request waits for it.
    nursery: trio.Nursery | None = None
