"""The ArangoDB event store (`--store arangodb://user@host:8529/db`): one store for agents on many machines.

The same contract as the SQLite store: `append` buffers without I/O, `flush` writes the buffer
as one atomic AQL `INSERT` (one implicit transaction), reads replay an execution's events in
`seq` order. Every call to the server runs in `trio.to_thread`, never on the trio loop, and
carries a request timeout (SECURITY.md rule 4).

- The database, the `wpk_events` collection and its unique `(execution_id, seq)` index are
  created on first use; agents racing to create them all succeed.
- Each event has a deterministic `_key`, so a flush retried after an ambiguous failure (the
  first attempt committed, its answer was lost) finds its own events and stops; a *different*
  event under the same `seq` is refused (`EventConflict`).
- Write-write conflicts (errorNum 1200) are retried with jittered exponential backoff.
- The password comes from `WPK_ARANGO_PASSWORD`, never from the URL; `arangodbs://` talks
  HTTPS (`WPK_ARANGO_CA_FILE` names a CA bundle to trust instead of the system store). Failures
  are one line naming the server and what to check (`StoreUnavailable`), never a credential.

The AQL is plain (FOR, FILTER, SORT, COLLECT, INSERT, RETURN) so it runs on ArangoDB 3.11+.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import trio
from arango.client import ArangoClient
from arango.exceptions import AQLQueryExecuteError, ArangoServerError
from arango.http import DefaultHTTPClient
from arango.response import Response as ArangoResponse

from .. import scheduler
from ..events import Event, EventType
from .base import (
    EXPIRED,
    LEASE_SECONDS,
    TERMINAL,
    AgentInfo,
    Band,
    Claim,
    ExecutionQuery,
    ExecutionRow,
    LogLine,
    NewExecution,
    Page,
    StaleClaim,
    StoreError,
    StoreUnavailable,
    UnknownStore,
    decode_labels,
    row_from_created,
    stale_message,
    status_after,
)

EVENTS = "wpk_events"
EVENTS_INDEX: dict[str, Any] = {
    "type": "persistent",
    "name": "wpk_events_by_execution_seq",
    "fields": ["execution_id", "seq"],
    "unique": True,
}
DEFAULT_PORT = 8529
REQUEST_TIMEOUT = 30.0  # seconds, every request
CONFLICT_ATTEMPTS = 8
READ_BATCH = 1000
_FIELDS = ("execution_id", "seq", "type", "time", "step", "item", "data")
_KEY_SAFE = re.compile(r"^[A-Za-z0-9_\-.@()+,=;$!*'%]{1,200}$")
_CONFLICT = 1200
_UNIQUE = 1210
_DUPLICATE_NAME = 1207
_DATABASE_NOT_FOUND = 1228

INSERT_EVENTS = "FOR e IN @events INSERT e INTO @@events"
STORED_EVENTS = "FOR e IN @@events FILTER e._key IN @keys RETURN e"
READ_EVENTS = (
    "FOR e IN @@events FILTER e.execution_id == @execution AND e.seq > @after SORT e.seq ASC "
    "RETURN KEEP(e, 'seq', 'type', 'time', 'step', 'item', 'data')"
)
EXECUTION_IDS = (
    "FOR e IN @@events COLLECT execution = e.execution_id AGGREGATE first = MIN(e.time) "
    "SORT first ASC, execution ASC RETURN execution"
)


class _StoreHTTPClient(DefaultHTTPClient):
    """python-arango's HTTP client with two fixes for the store.

    It passes `verify` on every request: a session-level CA file loses to `REQUESTS_CA_BUNDLE`
    in requests' environment merge, so `WPK_ARANGO_CA_FILE` would be ignored where that is set.
    And it keeps the last transport error: python-arango reports every one as "can't connect".
    """

    def __init__(self, timeout: float, ca_file: str | None) -> None:
        super().__init__(request_timeout=timeout)
        self.verify: str | bool = ca_file or True
        self.last_error: Exception | None = None

    def create_session(self, host: str) -> requests.Session:
        """No urllib3 retries: they log a warning per try, and they would turn a read timeout into
        a "connection error" that python-arango resends; python-arango's own 3 tries are enough."""
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def send_request(
        self,
        session: requests.Session,
        method: str,
        url: str,
        headers: Any = None,
        params: Any = None,
        data: Any = None,
        auth: Any = None,
    ) -> ArangoResponse:
        try:
            response = session.request(
                method=method,
                url=url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=self.request_timeout,
                verify=self.verify,
            )
        except Exception as exc:
            self.last_error = exc
            raise
        return ArangoResponse(
            method=method,
            url=response.url,
            headers=response.headers,
            status_code=response.status_code,
            status_text=response.reason,
            raw_body=response.text,
        )


class EventConflict(StoreError):
    """An event with this execution and seq is already stored with different content."""


@dataclass(frozen=True, slots=True)
class ArangoTarget:
    """Where the store lives, parsed from `arangodb[s]://user@host:port/database`."""

    endpoint: str  # http(s)://host:port
    database: str
    username: str

    @property
    def display(self) -> str:
        """The target as users wrote it, minus any secret: safe in messages."""
        scheme = "arangodbs" if self.endpoint.startswith("https:") else "arangodb"
        return f"{scheme}://{self.username}@{self.endpoint.split('://', 1)[1]}/{self.database}"


def parse_url(url: str) -> ArangoTarget:
    """`arangodb://user@host:8529/db` (HTTP) or `arangodbs://…` (HTTPS); the user defaults to root."""
    split = urllib.parse.urlsplit(url)
    if split.scheme not in ("arangodb", "arangodbs"):
        raise UnknownStore(f"unsupported store {split.scheme!r}: use arangodb://user@host:8529/db")
    if split.password is not None:
        raise UnknownStore(
            "arangodb store URL: put the password in WPK_ARANGO_PASSWORD, not in the URL "
            "(URLs end up in process lists and logs)"
        )
    if not split.hostname:
        raise UnknownStore("arangodb store URL needs a host: arangodb://user@host:8529/db")
    try:
        port = split.port or DEFAULT_PORT
    except ValueError:
        raise UnknownStore("arangodb store URL has an invalid port: arangodb://user@host:8529/db") from None
    database = urllib.parse.unquote(split.path.strip("/"))
    if not database or "/" in database:
        raise UnknownStore("arangodb store URL needs one database name: arangodb://user@host:8529/db")
    if split.query or split.fragment:
        raise UnknownStore("arangodb store URL takes no query or fragment: arangodb://user@host:8529/db")
    host = f"[{split.hostname}]" if ":" in split.hostname else split.hostname
    http = "https" if split.scheme == "arangodbs" else "http"
    username = urllib.parse.unquote(split.username) if split.username else "root"
    return ArangoTarget(f"{http}://{host}:{port}", database, username)


def open_arango(url: str) -> ArangoStore:
    """The `open_store` entry for `arangodb://` and `arangodbs://` URLs; no I/O until first use."""
    return ArangoStore(
        parse_url(url),
        os.environ.get("WPK_ARANGO_PASSWORD", ""),
        ca_file=os.environ.get("WPK_ARANGO_CA_FILE") or None,
    )


def event_key(execution_id: str, seq: int) -> str:
    """A deterministic document key: the same event always lands on the same key."""
    if _KEY_SAFE.match(execution_id):
        return f"{execution_id}:{seq}"
    return f"h{hashlib.sha256(execution_id.encode()).hexdigest()}:{seq}"


EXECUTIONS = "wpk_executions"
AGENTS = "wpk_agents"
COUNTERS = "wpk_counters"
EXECUTIONS_INDEXES: tuple[dict[str, Any], ...] = (
    {"type": "persistent", "name": "wpk_executions_queue", "fields": ["status", "priority", "n"]},
    {"type": "persistent", "name": "wpk_executions_order", "fields": ["n"], "unique": True},
    {"type": "persistent", "name": "wpk_executions_agent", "fields": ["agent_id", "status"]},
)

NEXT_N = (
    "FOR c IN @@counters FILTER c._key == 'executions' "
    "UPDATE c WITH {n: c.n + @count} IN @@counters RETURN NEW.n"
)
INSERT_ROWS = "FOR r IN @rows INSERT r INTO @@executions OPTIONS {overwriteMode: @mode} RETURN NEW._key"
PATCH_ROWS = (
    "FOR u IN @updates FOR r IN @@executions FILTER r._key == u.k UPDATE r WITH u.p IN @@executions RETURN 1"
)
# The fencing check writes the row, so a concurrent takeover (which writes it too) conflicts.
FENCE_ROWS = (
    "FOR f IN @fences FOR r IN @@executions FILTER r._key == f.k AND r.attempt == f.a "
    "UPDATE r WITH {fenced_seq: f.s} IN @@executions RETURN r._key"
)
GET_ROW = "FOR r IN @@executions FILTER r._key == @k RETURN r"
# Claim order and eligibility (priority, then submission order) live in this one query.
CLAIM = (
    "FOR r IN @@executions FILTER r.status == 'pending' AND (r.not_before == null OR r.not_before <= @now) "
    "SORT r.priority DESC, r.n ASC LIMIT @limit "
    "UPDATE r WITH {status: 'running', agent_id: @agent, attempt: r.attempt + 1, lease_until: @lease} "
    "IN @@executions RETURN NEW"
)
# Resume: started executions whose lease ran out (or, at an agent's start, its own), in claim
# order; of which the agent takes the ones its labels allow (placement), then those, if still due.
_RESUMABLE = (
    "r.status IN ['running', 'rolling_back'] AND r.lease_until != null "
    "AND (r.lease_until < @now OR (@own AND r.agent_id == @agent))"
)
RECLAIM_CANDIDATES = (
    f"FOR r IN @@executions FILTER {_RESUMABLE} "
    "SORT r.priority DESC, r.n ASC LIMIT @window RETURN KEEP(r, '_key', 'labels')"
)
RECLAIM_KEYS = (
    f"FOR k IN @keys FOR r IN @@executions FILTER r._key == k AND {_RESUMABLE} "
    "UPDATE r WITH {agent_id: @agent, attempt: r.attempt + 1, lease_until: @lease} "
    "IN @@executions RETURN NEW"
)
# A shutting-down agent hands a started execution over: no holder, the lease over at once.
HAND_OVER = (
    "FOR r IN @@executions FILTER r._key == @k AND r.attempt == @attempt "
    "AND r.status IN ['running', 'rolling_back'] "
    "UPDATE r WITH {agent_id: null, lease_until: @expired} IN @@executions RETURN 1"
)
HISTORIES = (
    "FOR e IN @@events FILTER e.execution_id IN @ids SORT e.execution_id, e.seq ASC "
    "RETURN KEEP(e, 'execution_id', 'seq', 'type', 'time', 'step', 'item', 'data')"
)
RENEW = (
    "FOR r IN @@executions FILTER r.agent_id == @agent AND r.status IN ['running', 'rolling_back'] "
    "UPDATE r WITH {lease_until: @lease} IN @@executions"
)
AGENT_HEARTBEAT = (
    "FOR a IN @@agents FILTER a._key == @k UPDATE a WITH {heartbeat_at: @now, state: @state} IN @@agents"
)
# The agents' queue (issue 13): candidates in effective-priority order (scheduler.order_key), of
# which the claim takes the ones the agent's labels allow; then those, if still pending.
CLAIM_CANDIDATES = (
    "FOR r IN @@executions FILTER r.status == 'pending' AND (r.not_before == null OR r.not_before <= @now) "
    "SORT r.priority - @rate * r.created_at DESC, r.n ASC LIMIT @window "
    "RETURN KEEP(r, '_key', 'labels')"
)
CLAIM_KEYS = (
    "FOR k IN @keys FOR r IN @@executions FILTER r._key == k AND r.status == 'pending' "
    "UPDATE r WITH {status: 'running', agent_id: @agent, attempt: r.attempt + 1, lease_until: @lease} "
    "IN @@executions RETURN NEW"
)
REQUEST_AGENT = (
    "FOR a IN @@agents FILTER a._key == @k AND a.state IN @states "
    "UPDATE a WITH {requested: @request} IN @@agents RETURN 1"
)
CLEAR_REQUEST = (
    "FOR a IN @@agents FILTER a._key == @k AND a.requested == @request "
    "UPDATE a WITH {requested: null} IN @@agents"
)
FAIL_STALE_AGENTS = (
    "FOR a IN @@agents FILTER a.state IN ['created', 'running', 'paused'] AND a.heartbeat_at < @before "
    "UPDATE a WITH {state: 'failed'} IN @@agents RETURN NEW.agent_id"
)
CLAIM_WINDOW = 256  # ineligible (placed elsewhere) executions looked past, per claim
RELEASE = (
    "FOR r IN @@executions FILTER r._key == @k AND r.attempt == @attempt AND r.status == 'running' "
    "UPDATE r WITH {status: 'pending', agent_id: null, lease_until: null} IN @@executions RETURN 1"
)
TRANSITION = (
    "FOR r IN @@executions FILTER r._key == @k AND r.status IN @allowed "
    "UPDATE r WITH {status: @to} IN @@executions RETURN 1"
)
CANCEL = "FOR r IN @@executions FILTER r._key == @k UPDATE r WITH {cancel_requested: true} IN @@executions"
CANCELLED = (
    "FOR r IN @@executions FILTER r._key IN @keys AND r.cancel_requested == true RETURN r.execution_id"
)
LOG_LINES = (
    "FOR e IN @@events FILTER e.execution_id == @execution AND e.type == 'log' SORT e.seq ASC "
    "LIMIT @offset, @limit RETURN KEEP(e, 'time', 'step', 'item', 'data')"
)
QUEUE_DEPTH = (
    "FOR r IN @@executions FILTER r.status == 'pending' "
    "COLLECT p = r.priority WITH COUNT INTO c RETURN [p, c]"
)
PRUNE_ROWS = (
    "FOR r IN @@executions FILTER r.status IN @final AND r.finished_at != null AND r.finished_at < @before "
    "REMOVE r IN @@executions RETURN OLD.execution_id"
)
PRUNE_EVENTS = "FOR e IN @@events FILTER e.execution_id IN @ids REMOVE e IN @@events"
REGISTER_AGENT = "INSERT @doc INTO @@agents OPTIONS {overwriteMode: 'replace'}"
LIST_AGENTS = "FOR a IN @@agents SORT a._key RETURN a"

_ROW_FIELDS = (
    "execution_id",
    "workflow_name",
    "workflow_version",
    "status",
    "priority",
    "dry_run",
    "created_at",
    "started_at",
    "finished_at",
    "package",
    "package_path",
    "params",
    "rollback",
    "agent_id",
    "attempt",
    "lease_until",
    "cancel_requested",
    "not_before",
    "labels",
)


def row_key(execution_id: str) -> str:
    """The execution row's document key: the id itself when ArangoDB allows it as a key."""
    if _KEY_SAFE.match(execution_id):
        return execution_id
    return "h" + hashlib.sha256(execution_id.encode()).hexdigest()


def _row_doc(new: NewExecution) -> dict[str, Any]:
    return {
        "_key": row_key(new.execution_id),
        "execution_id": new.execution_id,
        "workflow_name": new.workflow_name,
        "workflow_version": new.workflow_version,
        "status": new.status,
        "priority": new.priority,
        "dry_run": new.dry_run,
        "created_at": new.created_at,
        "started_at": None,
        "finished_at": None,
        "package": new.package,
        "package_path": new.package_path,
        "params": _json(dict(new.params)),
        "rollback": new.rollback,
        "agent_id": new.agent_id,
        "attempt": 0,
        "lease_until": None,
        "cancel_requested": False,
        "not_before": new.not_before,
        "labels": dict(new.labels),
    }


def _json(value: Any) -> Any:
    """The JSON the SQLite store would keep: non-JSON values as strings, NaN refused."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def _row(doc: dict[str, Any]) -> ExecutionRow:
    return ExecutionRow(
        execution_id=str(doc["execution_id"]),
        workflow_name=str(doc["workflow_name"]),
        workflow_version=str(doc["workflow_version"]),
        status=str(doc["status"]),
        priority=int(doc["priority"]),
        dry_run=bool(doc["dry_run"]),
        created_at=float(doc["created_at"]),
        started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at"),
        package=doc.get("package"),
        package_path=str(doc.get("package_path") or ""),
        params=dict(doc.get("params") or {}),
        rollback=bool(doc.get("rollback", True)),
        agent_id=doc.get("agent_id"),
        attempt=int(doc.get("attempt") or 0),
        lease_until=doc.get("lease_until"),
        cancel_requested=bool(doc.get("cancel_requested")),
        not_before=doc.get("not_before"),
        labels=decode_labels(doc.get("labels")),
    )


def _status_patch(event: Event) -> dict[str, Any] | None:
    status = status_after(event)
    if status is None:
        return None
    patch: dict[str, Any] = {"status": status}
    if event.type is EventType.EXECUTION_STARTED:
        patch["started_at"] = event.time
    elif status in TERMINAL:
        patch["finished_at"] = event.time
    return patch


class ArangoStore:
    """The whole `ExecutionStore` contract on ArangoDB: rows in `wpk_executions`, events in
    `wpk_events`, agents in `wpk_agents`, the submission counter in `wpk_counters`.

    Writes that touch more than one document run in a stream transaction; write-write conflicts
    (errorNum 1200: another agent wrote the same row since our snapshot) abort it and retry it
    from the start, so a claim hands an execution to exactly one agent.
    """

    def __init__(
        self,
        target: ArangoTarget,
        password: str,
        *,
        ca_file: str | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.target = target
        self._password = password
        self._ca_file = ca_file
        self._timeout = request_timeout
        self._pending: list[tuple[str, Event, dict[str, Any]]] = []
        self._fences: dict[str, int] = {}
        self._lock = trio.Lock()  # one server conversation at a time per store
        self._ready = False
        self._client: Any = None
        self._db: Any = None
        self._thread_lock = threading.Lock()
        self._http: _StoreHTTPClient | None = None

    def __repr__(self) -> str:
        return f"ArangoStore({self.target.display!r})"

    # -- events -------------------------------------------------------------------------------

    def append(self, execution_id: str, event: Event) -> None:
        doc = {
            "_key": event_key(execution_id, event.seq),
            "execution_id": execution_id,
            "seq": event.seq,
            "type": str(event.type),
            "time": event.time,
            "step": event.step,
            "item": event.item,
            "data": _json(event.data),
        }
        self._pending.append((execution_id, event, doc))

    def fence(self, execution_id: str, attempt: int | None) -> None:
        """Writes for `execution_id` from now on carry `attempt` as fencing token (None: no token)."""
        if attempt is None:
            self._fences.pop(execution_id, None)
        else:
            self._fences[execution_id] = attempt

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def events(self, execution_id: str, after_seq: int = 0) -> list[Event]:
        async with self._lock:
            await self._flush_locked()
            rows = await trio.to_thread.run_sync(self._read_sync, execution_id, after_seq)
        return [Event.from_dict(row) for row in rows]

    async def execution_ids(self) -> list[str]:
        async with self._lock:
            await self._flush_locked()
            return await trio.to_thread.run_sync(self._execution_ids_sync)

    async def aclose(self) -> None:
        async with self._lock:
            try:
                await self._flush_locked()
            finally:
                await trio.to_thread.run_sync(self._close_sync)

    async def _flush_locked(self) -> None:
        """Write the buffer. The buffer is only touched on the trio thread, where `append` runs."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        fences = {eid: self._fences[eid] for eid, _, _ in batch if eid in self._fences}
        try:
            await trio.to_thread.run_sync(self._write_sync, batch, fences)
        except StaleClaim:
            raise  # never resent: this agent lost the execution
        except BaseException:
            self._pending[:0] = batch  # kept for the next flush; the keys make a resend idempotent
            raise

    async def _run(self, fn: Any, *args: Any) -> Any:
        """A blocking server conversation on a worker thread, after the buffered events."""
        async with self._lock:
            await self._flush_locked()
            return await trio.to_thread.run_sync(lambda: self._call(lambda: fn(*args)))

    # -- executions ------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution) -> None:
        def create(db: Any) -> None:
            doc = _row_doc(new)
            doc["n"] = self._next_n(db, 1)
            try:
                self._q(db, INSERT_ROWS, {"rows": [doc], "@executions": EXECUTIONS, "mode": "conflict"})
            except AQLQueryExecuteError as exc:
                if exc.error_code == _UNIQUE:
                    raise ValueError(f"execution {new.execution_id} exists") from None
                raise
            if new.first_event is not None:
                e = new.first_event
                self._q(
                    db, INSERT_EVENTS, {"events": [self._event_doc(new.execution_id, e)], "@events": EVENTS}
                )

        await self._run(self._trx, create)

    def _event_doc(self, execution_id: str, event: Event) -> dict[str, Any]:
        return {
            "_key": event_key(execution_id, event.seq),
            "execution_id": execution_id,
            "seq": event.seq,
            "type": str(event.type),
            "time": event.time,
            "step": event.step,
            "item": event.item,
            "data": _json(event.data),
        }

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        def get() -> ExecutionRow | None:
            found = self._q(self._db, GET_ROW, {"k": row_key(execution_id), "@executions": EXECUTIONS})
            return _row(found[0]) if found else None

        result: ExecutionRow | None = await self._run(get)
        return result

    async def list_executions(self, query: ExecutionQuery) -> Page:
        filters: list[str] = []
        binds: dict[str, Any] = {"@executions": EXECUTIONS, "limit": query.limit + 1}
        if query.cursor is not None:
            filters.append("r.n < @cursor")
            binds["cursor"] = query.cursor
        if query.statuses:
            filters.append("r.status IN @statuses")
            binds["statuses"] = list(query.statuses)
        if query.workflow:
            filters.append(
                "(r.workflow_name == @workflow"
                " OR CONCAT(r.workflow_name, '-', r.workflow_version) == @workflow)"
            )
            binds["workflow"] = query.workflow
        if query.since is not None:
            filters.append("r.created_at >= @since")
            binds["since"] = query.since
        aql = "FOR r IN @@executions "
        if filters:
            aql += "FILTER " + " AND ".join(filters) + " "
        aql += "SORT r.n DESC LIMIT @limit RETURN r"

        def read() -> list[dict[str, Any]]:
            return self._q(self._db, aql, binds)

        found: list[dict[str, Any]] = await self._run(read)
        more = len(found) > query.limit
        found = found[: query.limit]
        return Page([_row(d) for d in found], int(found[-1]["n"]) if more and found else None)

    async def logs(self, execution_id: str, offset: int = 0, limit: int = 1000) -> list[LogLine]:
        binds = {"execution": execution_id, "offset": offset, "limit": limit, "@events": EVENTS}
        rows: list[dict[str, Any]] = await self._run(lambda: self._q(self._db, LOG_LINES, binds))
        out = []
        for i, r in enumerate(rows, start=offset):
            data = r.get("data") or {}
            out.append(
                LogLine(
                    offset=i,
                    time=float(r["time"]),
                    step=r.get("step"),
                    item=r.get("item"),
                    stream=str(data.get("stream", "")),
                    line=str(data.get("line", "")),
                )
            )
        return out

    async def transition(
        self, execution_id: str, allowed: Iterable[str], to: str, events: Iterable[Event] = ()
    ) -> bool:
        batch = [(execution_id, e, self._event_doc(execution_id, e)) for e in events]
        binds = {"k": row_key(execution_id), "allowed": list(allowed), "to": to, "@executions": EXECUTIONS}

        def move(db: Any) -> bool:
            if not self._q(db, TRANSITION, binds):
                return False
            self._apply(db, batch, {})
            return True

        done: bool = await self._run(self._trx, move)
        return done

    async def request_cancel(self, execution_id: str) -> None:
        binds = {"k": row_key(execution_id), "@executions": EXECUTIONS}
        await self._run(self._trx, lambda db: self._q(db, CANCEL, binds))

    async def cancel_requested(self, execution_ids: Iterable[str]) -> set[str]:
        ids = list(execution_ids)
        if not ids:
            return set()
        binds = {"keys": [row_key(i) for i in ids], "@executions": EXECUTIONS}
        found: list[str] = await self._run(lambda: self._q(self._db, CANCELLED, binds))
        return set(found)

    # -- queue, leases, agents -------------------------------------------------------------------

    async def claim(
        self,
        agent_id: str,
        *,
        now: float,
        lease_seconds: float = LEASE_SECONDS,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> Claim | None:
        claims = await self.claim_batch(
            agent_id, now=now, limit=1, lease_seconds=lease_seconds, labels=labels, aging_rate=aging_rate
        )
        return claims[0] if claims else None

    async def claim_batch(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = LEASE_SECONDS,
        labels: Mapping[str, str] | None = None,
        aging_rate: float = 0.0,
    ) -> list[Claim]:
        if limit <= 0:
            return []
        mine = dict(labels or {})
        rate = aging_rate / 60.0

        def take(db: Any) -> list[Claim]:
            found = self._q(
                db,
                CLAIM_CANDIDATES,
                {"now": now, "rate": rate, "window": limit + CLAIM_WINDOW, "@executions": EXECUTIONS},
            )
            keys = [d["_key"] for d in found if scheduler.eligible(d.get("labels") or {}, mine)][:limit]
            if not keys:
                return []
            binds = {"keys": keys, "agent": agent_id, "lease": now + lease_seconds, "@executions": EXECUTIONS}
            docs = self._q(db, CLAIM_KEYS, binds)
            docs.sort(
                key=lambda d: scheduler.order_key(
                    int(d["priority"]), float(d["created_at"]), int(d["n"]), aging_rate
                )
            )
            return self._with_histories(db, docs, now + lease_seconds)

        claims: list[Claim] = await self._run(self._trx, take)
        return claims

    async def request_agent(self, agent_id: str, request: str, *, states: Iterable[str]) -> bool:
        binds = {"k": row_key(agent_id), "states": list(states), "request": request, "@agents": AGENTS}
        found: list[Any] = await self._run(self._trx, lambda db: self._q(db, REQUEST_AGENT, binds))
        return bool(found)

    async def clear_request(self, agent_id: str, request: str) -> None:
        binds = {"k": row_key(agent_id), "request": request, "@agents": AGENTS}
        await self._run(self._trx, lambda db: self._q(db, CLEAR_REQUEST, binds))

    async def fail_stale_agents(self, *, now: float, stale_after: float) -> list[str]:
        binds = {"before": now - stale_after, "@agents": AGENTS}
        found: list[str] = await self._run(self._trx, lambda db: self._q(db, FAIL_STALE_AGENTS, binds))
        return sorted(found)

    async def reclaim(
        self,
        agent_id: str,
        *,
        now: float,
        limit: int,
        lease_seconds: float = LEASE_SECONDS,
        own: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> list[Claim]:
        """Started executions whose lease ran out (and, with `own`, this agent's from before a
        restart) that the agent's labels allow, claimed again under a new attempt number: the
        resume queue (DESIGN §5), in one stream transaction like `claim_batch`."""
        if limit <= 0:
            return []
        mine = dict(labels or {})
        binds = {"now": now, "agent": agent_id, "own": own, "@executions": EXECUTIONS}

        def take(db: Any) -> list[Claim]:
            found = self._q(db, RECLAIM_CANDIDATES, {**binds, "window": limit + CLAIM_WINDOW})
            keys = [d["_key"] for d in found if scheduler.eligible(d.get("labels") or {}, mine)][:limit]
            if not keys:
                return []
            docs = self._q(db, RECLAIM_KEYS, {**binds, "keys": keys, "lease": now + lease_seconds})
            docs.sort(key=lambda d: (-int(d["priority"]), int(d["n"])))
            return self._with_histories(db, docs, now + lease_seconds)

        claims: list[Claim] = await self._run(self._trx, take)
        return claims

    async def release_for_takeover(self, execution_id: str, attempt: int) -> bool:
        binds = {"k": row_key(execution_id), "attempt": attempt, "expired": EXPIRED}
        binds["@executions"] = EXECUTIONS
        found: list[Any] = await self._run(self._trx, lambda db: self._q(db, HAND_OVER, binds))
        return bool(found)

    def _with_histories(self, db: Any, docs: list[dict[str, Any]], lease_until: float) -> list[Claim]:
        """Claims for the claimed rows, in their order, each with its events so far."""
        events = self._q(db, HISTORIES, {"ids": [d["execution_id"] for d in docs], "@events": EVENTS})
        histories: dict[str, list[Event]] = {}
        for raw in events:
            histories.setdefault(raw["execution_id"], []).append(Event.from_dict(raw))
        claims = []
        for doc in docs:
            row = _row(doc)
            history = tuple(histories.get(row.execution_id, ()))
            claims.append(Claim(row=row, attempt=row.attempt, lease_until=lease_until, history=history))
        return claims

    async def heartbeat(
        self, agent_id: str, *, now: float, state: str, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        def beat(db: Any) -> None:
            self._q(
                db, AGENT_HEARTBEAT, {"k": row_key(agent_id), "now": now, "state": state, "@agents": AGENTS}
            )
            self._q(db, RENEW, {"agent": agent_id, "lease": now + lease_seconds, "@executions": EXECUTIONS})

        await self._run(self._trx, beat)

    async def release(self, execution_id: str, attempt: int) -> bool:
        binds = {"k": row_key(execution_id), "attempt": attempt, "@executions": EXECUTIONS}
        found: list[Any] = await self._run(self._trx, lambda db: self._q(db, RELEASE, binds))
        return bool(found)

    async def prune(self, *, finished_before: float) -> int:
        binds = {"final": sorted(TERMINAL), "before": finished_before, "@executions": EXECUTIONS}

        def drop(db: Any) -> int:
            ids = self._q(db, PRUNE_ROWS, binds)
            if ids:
                self._q(db, PRUNE_EVENTS, {"ids": ids, "@events": EVENTS})
            return len(ids)

        count: int = await self._run(self._trx, drop)
        return count

    async def register_agent(self, agent: AgentInfo) -> None:
        doc = {
            "_key": row_key(agent.agent_id),
            "agent_id": agent.agent_id,
            "labels": dict(agent.labels),
            "capacity": agent.capacity,
            "version": agent.version,
            "state": agent.state,
            "heartbeat_at": agent.heartbeat_at,
            "started_at": agent.started_at,
            "adapters": list(agent.adapters),
            "requested": agent.requested,
        }
        await self._run(self._trx, lambda db: self._q(db, REGISTER_AGENT, {"doc": doc, "@agents": AGENTS}))

    async def list_agents(self) -> list[AgentInfo]:
        docs: list[dict[str, Any]] = await self._run(
            lambda: self._q(self._db, LIST_AGENTS, {"@agents": AGENTS})
        )
        return [
            AgentInfo(
                agent_id=str(d["agent_id"]),
                labels=decode_labels(d.get("labels")),
                capacity=int(d["capacity"]),
                version=str(d["version"]),
                state=str(d["state"]),
                heartbeat_at=float(d["heartbeat_at"]),
                started_at=float(d["started_at"]),
                adapters=tuple(d.get("adapters") or ()),
                requested=d.get("requested"),
            )
            for d in docs
        ]

    async def queue_depth(self) -> dict[str, int]:
        pairs: list[list[Any]] = await self._run(
            lambda: self._q(self._db, QUEUE_DEPTH, {"@executions": EXECUTIONS})
        )
        depth = {str(b): 0 for b in Band}
        for priority, count in pairs:
            depth[str(Band.of(int(priority)))] += int(count)
        return depth

    # -- blocking work (worker threads only) ----------------------------------------------------

    def _write_sync(self, batch: list[tuple[str, Event, dict[str, Any]]], fences: dict[str, int]) -> None:
        plain = not fences and all(
            e.type is not EventType.EXECUTION_CREATED and status_after(e) is None for _, e, _ in batch
        )
        if plain:  # log lines and step events: one INSERT, no transaction needed
            self._call(lambda: self._insert(self._db, [doc for _, _, doc in batch]))
        else:
            self._call(lambda: self._trx(lambda db: self._apply(db, batch, fences)))

    def _apply(self, db: Any, batch: list[tuple[str, Event, dict[str, Any]]], fences: dict[str, int]) -> None:
        """Events with their row changes, inside one transaction: fencing check, rows created
        for bare runs, the events, then the status each event moves its row to."""
        if fences:
            last = {eid: e.seq for eid, e, _ in batch}
            wanted = [{"k": row_key(eid), "a": a, "s": last.get(eid, 0)} for eid, a in fences.items()]
            ok = set(self._q(db, FENCE_ROWS, {"fences": wanted, "@executions": EXECUTIONS}))
            lost = sorted(eid for eid in fences if row_key(eid) not in ok)
            if lost:
                raise StaleClaim(stale_message(lost[0], fences[lost[0]]))
        created = [
            _row_doc(row_from_created(e)) for _, e, _ in batch if e.type is EventType.EXECUTION_CREATED
        ]
        if created:
            top = self._next_n(db, len(created))
            for i, doc in enumerate(created):
                doc["n"] = top - len(created) + 1 + i
            self._q(db, INSERT_ROWS, {"rows": created, "@executions": EXECUTIONS, "mode": "ignore"})
        self._insert(db, [doc for _, _, doc in batch])
        updates = []
        for eid, event, _ in batch:
            patch = _status_patch(event)
            if patch is not None:
                updates.append({"k": row_key(eid), "p": patch})
        if updates:
            self._q(db, PATCH_ROWS, {"updates": updates, "@executions": EXECUTIONS})

    def _next_n(self, db: Any, count: int) -> int:
        """The last of `count` new submission numbers (the order of the queue and of listings)."""
        found = self._q(db, NEXT_N, {"count": count, "@counters": COUNTERS})
        return int(found[0])

    def _trx(self, fn: Any) -> Any:
        """`fn(db)` in a stream transaction; a write-write conflict retries it from the start."""
        for attempt in range(CONFLICT_ATTEMPTS):
            tdb = self._db.begin_transaction(
                read=[EVENTS, EXECUTIONS, AGENTS, COUNTERS], write=[EVENTS, EXECUTIONS, AGENTS, COUNTERS]
            )
            try:
                out = fn(tdb)
                tdb.commit_transaction()
                return out
            except ArangoServerError as exc:
                self._abort(tdb)
                if exc.error_code != _CONFLICT or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
            except BaseException:
                self._abort(tdb)
                raise
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # full jitter
        raise StoreUnavailable(
            f"{self.target.display}: write conflicts on every one of {CONFLICT_ATTEMPTS} attempts"
        )

    @staticmethod
    def _abort(tdb: Any) -> None:
        with contextlib.suppress(Exception):  # the server aborts an idle transaction itself
            tdb.abort_transaction()

    def _insert(self, db: Any, batch: list[dict[str, Any]]) -> None:
        remaining = batch
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._q(db, INSERT_EVENTS, {"events": remaining, "@events": EVENTS})
                return
            except AQLQueryExecuteError as exc:
                if exc.error_code == _UNIQUE:
                    remaining = self._not_yet_stored(db, remaining)
                    if not remaining:
                        return
                    continue
                if exc.error_code != _CONFLICT or attempt == CONFLICT_ATTEMPTS - 1 or db is not self._db:
                    raise
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # full jitter
        raise StoreUnavailable(f"{self.target.display}: events not stored after {CONFLICT_ATTEMPTS} attempts")

    def _not_yet_stored(self, db: Any, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """After a unique-key refusal: our own earlier write is fine, anything else is a conflict."""
        keys = [doc["_key"] for doc in batch]
        stored = {doc["_key"]: doc for doc in self._q(db, STORED_EVENTS, {"keys": keys, "@events": EVENTS})}
        remaining = []
        for doc in batch:
            existing = stored.get(doc["_key"])
            if existing is None:
                remaining.append(doc)
            elif any(existing.get(f) != doc[f] for f in _FIELDS):
                raise EventConflict(
                    f"execution {doc['execution_id']}: event {doc['seq']} is already stored with other "
                    "content (another agent wrote this execution)"
                )
        if len(remaining) == len(batch):
            # the unique index refused a document whose key is free: same (execution, seq), other key
            raise EventConflict(f"execution {batch[0]['execution_id']}: an event seq is already stored")
        return remaining

    def _read_sync(self, execution_id: str, after_seq: int) -> list[dict[str, Any]]:
        binds = {"execution": execution_id, "after": after_seq, "@events": EVENTS}
        rows: list[dict[str, Any]] = self._call(lambda: self._q(self._db, READ_EVENTS, binds))
        return rows

    def _execution_ids_sync(self) -> list[str]:
        return [str(x) for x in self._call(lambda: self._q(self._db, EXECUTION_IDS, {"@events": EVENTS}))]

    def _close_sync(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._db = None
            self._ready = False

    @staticmethod
    def _q(db: Any, query: str, binds: dict[str, Any]) -> list[Any]:
        cursor = db.aql.execute(query, bind_vars=binds, batch_size=READ_BATCH)
        return list(cursor)

    def _query(self, query: str, binds: dict[str, Any]) -> list[Any]:
        return self._q(self._db, query, binds)

    def _call(self, action: Any) -> Any:
        """Run `action` against a connected, prepared database; translate failures once, here."""
        try:
            with self._thread_lock:
                if self._http is not None:
                    self._http.last_error = None
                if not self._ready:
                    self._prepare()
                return action()
        except (EventConflict, StaleClaim, ValueError):
            raise
        except StoreUnavailable as exc:
            raise StoreUnavailable(self._scrub(str(exc))) from None
        except Exception as exc:
            raise StoreUnavailable(self._describe(exc)) from None

    def _prepare(self) -> None:
        """Connect; create the database, collections, indexes and the counter if they are missing."""
        if self._client is None:
            self._http = _StoreHTTPClient(self._timeout, self._ca_file)
            self._client = ArangoClient(hosts=self.target.endpoint, http_client=self._http)
        client = self._client
        db = client.db(self.target.database, username=self.target.username, password=self._password)
        try:
            existing = {c["name"] for c in db.collections()}
        except ArangoServerError as exc:
            if exc.error_code != _DATABASE_NOT_FOUND:
                raise
            system = client.db("_system", username=self.target.username, password=self._password)
            try:
                system.create_database(self.target.database)
            except ArangoServerError as create_exc:
                if create_exc.error_code != _DUPLICATE_NAME:
                    raise StoreUnavailable(
                        f"{self.target.display}: database {self.target.database!r} does not exist and "
                        f"user {self.target.username!r} cannot create it ({self._server_reason(create_exc)})"
                    ) from None
            existing = {c["name"] for c in db.collections()}
        for name in (EVENTS, EXECUTIONS, AGENTS, COUNTERS):
            if name not in existing:
                try:
                    db.create_collection(name)
                except ArangoServerError as exc:
                    if exc.error_code != _DUPLICATE_NAME:  # another agent created it first
                        raise
        db.collection(EVENTS).add_index(dict(EVENTS_INDEX))
        for index in EXECUTIONS_INDEXES:
            db.collection(EXECUTIONS).add_index(dict(index))
        self._q(
            db,
            "INSERT {_key: 'executions', n: 0} INTO @@counters OPTIONS {overwriteMode: 'ignore'}",
            {"@counters": COUNTERS},
        )
        self._db = db
        self._ready = True

    # -- errors -------------------------------------------------------------------------------

    def _describe(self, exc: Exception) -> str:
        """One line: which server, what went wrong, what to check. Never the password."""
        where = self.target.display
        if isinstance(exc, ArangoServerError):
            if exc.http_code == 401:
                message = (
                    f"{where}: ArangoDB refused the credentials of user {self.target.username!r} "
                    "(check WPK_ARANGO_PASSWORD)"
                )
            elif exc.http_code == 403:
                user, database = self.target.username, self.target.database
                message = f"{where}: user {user!r} may not use database {database!r}"
            else:
                message = f"{where}: ArangoDB error: {self._server_reason(exc)}"
        else:
            cause = self._http.last_error if self._http else None
            exc = cause or exc
            if isinstance(exc, ConnectionAbortedError) and cause is None:
                # python-arango's verdict after 503 "service unavailable" answers on every try
                reason = "the server answered 503 on every try"
            elif isinstance(exc, requests.exceptions.SSLError):
                reason = "TLS handshake failed (set WPK_ARANGO_CA_FILE to trust a private CA)"
            elif isinstance(exc, requests.exceptions.Timeout):
                reason = f"no answer within {self._timeout:g}s"
            elif isinstance(exc, requests.exceptions.RequestException | ConnectionAbortedError | OSError):
                reason = "connection refused or host unreachable"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            message = f"{where}: cannot reach ArangoDB: {reason}"
        return self._scrub(" ".join(message.split()))

    @staticmethod
    def _server_reason(exc: Any) -> str:
        return f"HTTP {exc.http_code}, errorNum {exc.error_code}: {exc.error_message}"

    def _scrub(self, message: str) -> str:
        if self._password and self._password in message:
            message = message.replace(self._password, "***")
        return message
