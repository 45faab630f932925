"""Stores: where executions live. `open_store(url)` picks one from a URL."""

from __future__ import annotations

from .base import (
    AgentInfo,
    Claim,
    EventStore,
    ExecutionQuery,
    ExecutionRow,
    ExecutionStore,
    LogLine,
    NewExecution,
    Page,
    StoreError,
    UnknownStore,
)
from .memory import MemoryStore
from .sqlite import SQLiteStore, default_path

DEFAULT_STORE = "sqlite:"


def open_store(url: str = DEFAULT_STORE, *, offload: bool = False) -> ExecutionStore:
    """`memory:`, `sqlite:` (the default file), `sqlite:///abs/path.db`, or
    `arangodb[s]://user@host:8529/db` (password from WPK_ARANGO_PASSWORD; DESIGN §6, §8).

    `offload=True` (the server) runs every SQLite call on the store's database thread, merging
    concurrent executions' writes into one commit. Without it, SQLite calls run on the loop
    thread only as far as they cannot wait (a busy lock or a checkpoint goes to a thread:
    docs/stores.md). The ArangoDB store always uses threads.
    """
    if url in ("memory:", "memory://"):
        return MemoryStore()
    if url in ("sqlite:", "sqlite://"):
        return SQLiteStore(default_path(), offload=offload)
    if url.startswith("sqlite:///"):
        return SQLiteStore("/" + url.removeprefix("sqlite:///").lstrip("/"), offload=offload)
    if url.startswith("sqlite://"):
        return SQLiteStore(url.removeprefix("sqlite://"), offload=offload)
    if url.startswith(("arangodb://", "arangodbs://")):
        from .arangodb import open_arango  # python-arango loads only when an ArangoDB store is used

        return open_arango(url)
    scheme = url.partition(":")[0]
    raise UnknownStore(
        f"unsupported store {scheme!r}: use memory:, sqlite:, sqlite:///path/to/db or arangodb://user@host:8529/db"
    )


__all__ = [
    "DEFAULT_STORE",
    "AgentInfo",
    "Claim",
    "EventStore",
    "ExecutionQuery",
    "ExecutionRow",
    "ExecutionStore",
    "LogLine",
    "MemoryStore",
    "NewExecution",
    "Page",
    "SQLiteStore",
    "StoreError",
    "UnknownStore",
    "open_store",
]
