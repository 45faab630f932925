"""The adapter contract: how wpk acts on the world.

An adapter is small on purpose (like httpx's one-method transport): it receives *rendered* inputs
and a `StepContext`, and returns plain, JSON-serialisable data. It never sees templates, secrets
by name, the DAG or the store. Three operations:

- `apply`: do the action for real; return an `Outcome` (the `result` downstream steps see, and
  the `undo` record compensation needs, e.g. the replicas before a scale).
- `plan`: the dry-run of a write: describe (or have the target validate, e.g. `dryRun=All`) what
  `apply` would do, without changing anything.
- `compensate`: undo an earlier `apply` from its `Outcome`, for actions whose inverse is `auto`.

Time limits and cancellation come from the caller's trio cancel scope; an adapter only has to
stay cancellable (await, or `trio.to_thread.run_sync(..., abandon_on_cancel=True)` with its own
client timeout). Library exceptions are translated to `AdapterError` at the adapter boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable


class Inverse(enum.StrEnum):
    """What rolling an action back means."""

    AUTO = "auto"  # the adapter compensates from the recorded Outcome.undo
    NONE = "none"  # a write with no inverse: needs an explicit `rollback` body
    NOT_NEEDED = "not-needed"  # read-only or without lasting effect


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionInfo:
    """What the engine and validator need to know about one action, without running it."""

    adapter: str
    action: str
    read_only: bool
    inverse: Inverse
    input_schema: Mapping[str, Any]
    description: str = ""
    # A write action that is a read for some inputs, e.g. api.request with method GET:
    # {"method": ["GET", "HEAD", "OPTIONS"]} (the field's schema default applies when omitted).
    read_only_when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Running the call twice leaves what running it once leaves (a rollback body cut short by a
    # lost agent is then run again): always, or for some inputs, e.g. api.request with
    # {"method": ["PUT", "DELETE", ...]}. A call that only reads is idempotent anyway.
    idempotent: bool = False
    idempotent_when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # `compensate` may run again after it was cut short (it sets a recorded state, e.g. deletes
    # what was created or puts back a recorded object), so a lost agent's inverse is re-run.
    inverse_idempotent: bool = False

    @property
    def uses(self) -> str:
        return f"{self.adapter}.{self.action}"

    def is_read_only(self, inputs: Mapping[str, Any]) -> bool:
        """Whether this call, with these rendered inputs, only reads."""
        return self.read_only or self._inputs_match(self.read_only_when, inputs)

    def is_idempotent(self, inputs: Mapping[str, Any]) -> bool:
        """Whether running this call again, after a run whose outcome is unknown, is harmless."""
        return (
            self.idempotent or self.is_read_only(inputs) or self._inputs_match(self.idempotent_when, inputs)
        )

    def _inputs_match(self, when: Mapping[str, tuple[Any, ...]], inputs: Mapping[str, Any]) -> bool:
        """Every field named in `when` has one of its values (the schema's default if omitted)."""
        if not when:
            return False
        properties = self.input_schema.get("properties", {})
        for name, values in when.items():
            value = inputs.get(name, properties.get(name, {}).get("default"))
            if isinstance(value, str):
                value = value.upper() if name == "method" else value
            if value not in values:
                return False
        return True


LogSink = Callable[[str, str], None]
"""`log(stream, line)`: stream is "stdout", "stderr" or "info". The engine redacts secrets."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContext:
    execution_id: str
    step_id: str
    attempt: int
    idempotency_key: str  # stable across attempts and agents for one step (and item)
    dry_run: bool
    log: LogSink


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpredictable:
    """Dry-run only: part of a result that no server can predict, because of a simulated write.

    `path` leads into the result (`()` is all of it); `step` is the simulated step whose change
    it depends on; `why` says what cannot be known ("readiness after the change")."""

    path: tuple[str | int, ...] = ()
    step: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    result: dict[str, Any]
    undo: dict[str, Any] | None = None
    inverse: str | None = None  # what compensating would do, in concrete words
    # Dry-run reads only: `sees_simulated` says the adapter answered through its overlay of this
    # run's simulated writes (so they need not make the whole result unknown); `unknown` lists
    # the parts it could not predict.
    sees_simulated: bool = False
    unknown: tuple[Unpredictable, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The dry-run of one write. `details` must already hide credential values."""

    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    diff: str | None = None
    result: dict[str, Any] | None = None  # a simulated result, when the target gave one
    inverse: str | None = None  # what compensation would do, in words
    unknown: tuple[Unpredictable, ...] = ()  # parts of `result` the server cannot predict


@runtime_checkable
class Adapter(Protocol):
    name: ClassVar[str]

    def actions(self) -> Mapping[str, ActionInfo]: ...

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome: ...

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan: ...

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None: ...

    async def aclose(self) -> None: ...


AdapterFactory = Callable[[Mapping[str, Any]], Adapter]
"""An adapter is built from its section of the agent configuration (never from a runbook)."""


class AdapterError(Exception):
    """An action failed. `retryable` says whether another attempt may succeed."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        reason: str = "error",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.reason = reason
        self.details = dict(details or {})


class InputError(AdapterError):
    """Rendered inputs the action cannot accept (never retryable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, reason="invalid_input")


class NotReversible(AdapterError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, reason="not_reversible")


def infos_from_schemas(adapter: str, schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, ActionInfo]:
    """Build ActionInfo for every `adapter.*` schema; the schema's `x-wpk` block holds the flags."""
    infos: dict[str, ActionInfo] = {}
    prefix = adapter + "."
    for uses, schema in schemas.items():
        if not uses.startswith(prefix):
            continue
        meta = schema.get("x-wpk", {})
        action = uses[len(prefix) :]
        infos[action] = ActionInfo(
            adapter=adapter,
            action=action,
            read_only=bool(meta.get("read_only", False)),
            inverse=Inverse(meta.get("inverse", "none")),
            input_schema=schema,
            description=str(schema.get("description", "")),
            read_only_when={k: tuple(v) for k, v in meta.get("read_only_when", {}).items()},
            idempotent=bool(meta.get("idempotent", False)),
            idempotent_when={k: tuple(v) for k, v in meta.get("idempotent_when", {}).items()},
            inverse_idempotent=bool(meta.get("inverse_idempotent", False)),
        )
    return infos
