"""`ArangoDouble`: an ArangoDB server double on 127.0.0.1 for code that uses python-arango.

    with ArangoDouble(password="pw") as arango:
        client = ArangoClient(hosts=arango.url)
        sys_db = client.db("_system", username="root", password="pw")
        ...

A real HTTP server speaking ArangoDB's REST wire format: databases, collections, persistent
(unique) indexes, documents with revisions, AQL cursors with batches (an interpreter for a plain
AQL subset), stream transactions with snapshot isolation and write-write conflicts. Knobs:
`idle_timeout` (stream transactions), `aql_write_delay` (make concurrent queries race),
`users`, `certfile`/`keyfile` (serve HTTPS), `fail_requests` (fault injection), `requests`
(the recorded traffic). It keeps its data in
memory for as long as it runs, so processes that come and go (and get SIGKILLed) can share it
like a server.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .api import Api, Request, Response
from .cursors import Cursors
from .engine import Engine
from .server import HttpServer, RecordedRequest


class ArangoDouble:
    def __init__(
        self,
        *,
        username: str = "root",
        password: str = "test-password",
        users: dict[str, str] | None = None,
        idle_timeout: float = 60.0,
        aql_write_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.users = {username: password, **(users or {})}
        self.engine = Engine(idle_timeout=idle_timeout)
        self.api = Api(self.engine, Cursors(), aql_write_delay=aql_write_delay)
        tls = None
        if certfile is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(certfile, keyfile)
        self.scheme = "https" if tls else "http"
        self._http = HttpServer(self.api, self.users, username, host, port, tls)
        self.host, self.port = self._http.address
        self._started = self._stopped = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> ArangoDouble:
        if not self._started:
            self._started = True
            self._http.start()
        return self

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._http.stop()

    def __enter__(self) -> ArangoDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._http.records()

    def fail_requests(self, fault: Callable[[Request], Response | None] | None) -> None:
        """Answer requests with `fault(request)` when it returns a Response (None: pass through)."""
        self._http.set_fault(fault)

    def create_database(self, name: str) -> None:
        self.engine.create_database("_system", name)

    def documents(self, database: str, collection: str) -> list[dict[str, Any]]:
        """The committed documents of a collection, read directly (not over HTTP, not recorded)."""
        with self.engine.implicit(database) as trx:
            return [dict(doc) for doc in self.engine.scan(trx, collection)]

    def running_transactions(self, db: str) -> list[str]:
        return [t.id for t in self.engine.running(db)]
