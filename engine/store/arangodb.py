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

import hashlib
import json
import os
import random
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests
import trio
from arango.client import ArangoClient
from arango.exceptions import AQLQueryExecuteError, ArangoServerError
from arango.http import DefaultHTTPClient
from arango.response import Response as ArangoResponse

from ..events import Event
from .base import UnknownStore

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


class StoreUnavailable(RuntimeError):
    """The ArangoDB store cannot be used: unreachable, refused credentials, or a server error."""


class EventConflict(RuntimeError):
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


class ArangoStore:
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
        self._pending: list[dict[str, Any]] = []
        self._lock = trio.Lock()  # one server conversation at a time per store
        self._ready = False
        self._client: Any = None
        self._db: Any = None
        self._thread_lock = threading.Lock()
        self._http: _StoreHTTPClient | None = None

    def __repr__(self) -> str:
        return f"ArangoStore({self.target.display!r})"

    # -- the contract -------------------------------------------------------------------------

    def append(self, execution_id: str, event: Event) -> None:
        doc = {
            "_key": event_key(execution_id, event.seq),
            "execution_id": execution_id,
            "seq": event.seq,
            "type": str(event.type),
            "time": event.time,
            "step": event.step,
            "item": event.item,
            # the JSON the SQLite store would keep: non-JSON values as strings, NaN refused
            "data": json.loads(json.dumps(event.data, default=str, allow_nan=False)),
        }
        self._pending.append(doc)

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
        try:
            await trio.to_thread.run_sync(self._write_sync, batch)
        except BaseException:
            self._pending[:0] = batch  # kept for the next flush; the keys make a resend idempotent
            raise

    # -- blocking work (worker threads only) ----------------------------------------------------

    def _write_sync(self, batch: list[dict[str, Any]]) -> None:
        self._call(lambda: self._insert(batch))

    def _insert(self, batch: list[dict[str, Any]]) -> None:
        remaining = batch
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._query(INSERT_EVENTS, {"events": remaining, "@events": EVENTS})
                return
            except AQLQueryExecuteError as exc:
                if exc.error_code == _UNIQUE:
                    remaining = self._not_yet_stored(remaining)
                    if not remaining:
                        return
                    continue
                if exc.error_code != _CONFLICT or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # full jitter
        raise StoreUnavailable(f"{self.target.display}: events not stored after {CONFLICT_ATTEMPTS} attempts")

    def _not_yet_stored(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """After a unique-key refusal: our own earlier write is fine, anything else is a conflict."""
        keys = [doc["_key"] for doc in batch]
        stored = {doc["_key"]: doc for doc in self._query(STORED_EVENTS, {"keys": keys, "@events": EVENTS})}
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
        rows: list[dict[str, Any]] = self._call(lambda: self._query(READ_EVENTS, binds))
        return rows

    def _execution_ids_sync(self) -> list[str]:
        return [str(x) for x in self._call(lambda: self._query(EXECUTION_IDS, {"@events": EVENTS}))]

    def _close_sync(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._db = None
            self._ready = False

    def _query(self, query: str, binds: dict[str, Any]) -> list[Any]:
        cursor = self._db.aql.execute(query, bind_vars=binds, batch_size=READ_BATCH)
        return list(cursor)

    def _call(self, action: Any) -> Any:
        """Run `action` against a connected, prepared database; translate failures once, here."""
        try:
            with self._thread_lock:
                if self._http is not None:
                    self._http.last_error = None
                if not self._ready:
                    self._prepare()
                return action()
        except EventConflict:
            raise
        except StoreUnavailable as exc:
            raise StoreUnavailable(self._scrub(str(exc))) from None
        except Exception as exc:
            raise StoreUnavailable(self._describe(exc)) from None

    def _prepare(self) -> None:
        """Connect; create the database, collection and index if they are missing."""
        if self._client is None:
            self._http = _StoreHTTPClient(self._timeout, self._ca_file)
            self._client = ArangoClient(hosts=self.target.endpoint, http_client=self._http)
        client = self._client
        db = client.db(self.target.database, username=self.target.username, password=self._password)
        try:
            exists = db.has_collection(EVENTS)
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
            exists = db.has_collection(EVENTS)
        if not exists:
            try:
                db.create_collection(EVENTS)
            except ArangoServerError as exc:
                if exc.error_code != _DUPLICATE_NAME:  # another agent created it first
                    raise
        db.collection(EVENTS).add_index(dict(EVENTS_INDEX))
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
