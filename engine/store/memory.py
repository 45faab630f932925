"""The in-memory store (`--store memory:`): nothing is kept after the process ends."""

from __future__ import annotations

from ..events import Event


class MemoryStore:
    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}

    def append(self, execution_id: str, event: Event) -> None:
        self._events.setdefault(execution_id, []).append(event)

    async def flush(self) -> None:
        return None

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]:
        return [e for e in self._events.get(execution_id, ()) if e.seq > after_seq]

    async def execution_ids(self) -> list[str]:
        return list(self._events)

    async def aclose(self) -> None:
        return None
