"""Event stores: where executions live. `open_store(url)` picks one from a URL."""

from __future__ import annotations

from .base import EventStore, UnknownStore
from .memory import MemoryStore
from .sqlite import SQLiteStore, default_path

DEFAULT_STORE = "sqlite:"


def open_store(url: str = DEFAULT_STORE) -> EventStore:
    """`memory:`, `sqlite:` (the default file), `sqlite:///abs/path.db`, or
    `arangodb[s]://user@host:8529/db` (password from WPK_ARANGO_PASSWORD; DESIGN §6, §8)."""
    if url in ("memory:", "memory://"):
        return MemoryStore()
    if url in ("sqlite:", "sqlite://"):
        return SQLiteStore(default_path())
    if url.startswith("sqlite:///"):
        return SQLiteStore("/" + url.removeprefix("sqlite:///").lstrip("/"))
    if url.startswith("sqlite://"):
        return SQLiteStore(url.removeprefix("sqlite://"))
    if url.startswith(("arangodb://", "arangodbs://")):
        from .arangodb import open_arango  # python-arango loads only when an ArangoDB store is used

        return open_arango(url)
    scheme = url.partition(":")[0]
    raise UnknownStore(
        f"unsupported store {scheme!r}: use memory:, sqlite:, sqlite:///path/to/db or arangodb://user@host:8529/db"
    )


__all__ = ["DEFAULT_STORE", "EventStore", "MemoryStore", "SQLiteStore", "UnknownStore", "open_store"]
