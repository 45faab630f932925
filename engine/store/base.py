"""The store contract: an append-only event log per execution.

The runner appends without blocking the trio loop (`append` buffers) and calls `flush` before
every side effect, so a durable store can write the step ledger before the effect happens
(SECURITY.md rule 5). Reading is by replay: the execution record is `state.reduce(events)`.
SQLite and ArangoDB stores implement the same contract (DESIGN §6).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..events import Event


@runtime_checkable
class EventStore(Protocol):
    def append(self, execution_id: str, event: Event) -> None: ...

    async def flush(self) -> None: ...

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]: ...

    async def execution_ids(self) -> list[str]: ...

    async def aclose(self) -> None: ...


class UnknownStore(ValueError):
    pass
