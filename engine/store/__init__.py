"""Event stores: where executions live. `open_store(url)` picks one from a URL."""

from __future__ import annotations

from .base import EventStore, UnknownStore
from .memory import MemoryStore
from .sqlite import SQLiteStore, default_path

DEFAULT_STORE = "sqlite:"


def open_store(url: str = DEFAULT_STORE) -> EventStore:
    """`memory:`, `sqlite:` (the default file), or `sqlite:///abs/path.db` (DESIGN §8).

    ArangoDB (`arangodb://…`) slots in here with the store issue.
    """
    if url in ("memory:", "memory://"):
        return MemoryStore()
    if url in ("sqlite:", "sqlite://"):
        return SQLiteStore(default_path())
    if url.startswith("sqlite:///"):
        return SQLiteStore("/" + url.removeprefix("sqlite:///").lstrip("/"))
    if url.startswith("sqlite://"):
        return SQLiteStore(url.removeprefix("sqlite://"))
    scheme = url.partition(":")[0]
    raise UnknownStore(f"unsupported store {scheme!r}: use memory:, sqlite: or sqlite:///path/to/db")


__all__ = ["DEFAULT_STORE", "EventStore", "MemoryStore", "SQLiteStore", "UnknownStore", "open_store"]
