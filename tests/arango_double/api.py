"""ArangoDB's HTTP API over the engine: one method per route, errors as ArangoDB answers them.

Paths are `/_db/{database}/_api/…` (python-arango always adds the database prefix; without it
the database is `_system`). A request carrying `x-arango-trx-id` runs in that stream transaction
(under a savepoint, so a failed operation leaves the transaction usable); any other request
runs in an implicit transaction of its own.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import aql
from .cursors import Cursors
from .engine import Engine, Transaction
from .errors import (
    DOCUMENT_TYPE_INVALID,
    HTTP_METHOD_NOT_ALLOWED,
    ArangoError,
    bad_parameter,
    document_not_found,
    not_found_path,
    revision_conflict,
)

VERSION = "3.11.14"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    user: str = "root"
    admin: bool = True  # the double's admin (its `username`) may create and drop databases

    def json(self) -> Any:
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            raise ArangoError(400, 600, "VPackError error: Expecting digit") from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        return value.lower() in ("1", "true", "yes", "on")


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(status, {"error": False, "code": status, **body}, dict(headers))


_DB_PREFIX = re.compile(r"^/_db/([^/]+)(/.*)?$")


class Api:
    def __init__(self, engine: Engine, cursors: Cursors, *, aql_write_delay: float = 0.0) -> None:
        self.engine = engine
        self.cursors = cursors
        self.aql_write_delay = aql_write_delay
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"/_api/version", self.version),
            ("GET", r"/_api/database", self.list_databases),
            ("GET", r"/_api/database/user", self.user_databases),
            ("GET", r"/_api/database/current", self.current_database),
            ("POST", r"/_api/database", self.create_database),
            ("DELETE", r"/_api/database/([^/]+)", self.drop_database),
            ("GET", r"/_api/collection", self.list_collections),
            ("POST", r"/_api/collection", self.create_collection),
            ("GET", r"/_api/collection/([^/]+)", self.collection_info),
            ("GET", r"/_api/collection/([^/]+)/properties", self.collection_properties),
            ("GET", r"/_api/collection/([^/]+)/count", self.collection_count),
            ("PUT", r"/_api/collection/([^/]+)/truncate", self.truncate_collection),
            ("DELETE", r"/_api/collection/([^/]+)", self.drop_collection),
            ("GET", r"/_api/index", self.list_indexes),
            ("POST", r"/_api/index", self.create_index),
            ("GET", r"/_api/index/([^/]+)/([^/]+)", self.get_index),
            ("DELETE", r"/_api/index/([^/]+)/([^/]+)", self.drop_index),
            ("POST", r"/_api/document/([^/]+)", self.insert_document),
            ("GET", r"/_api/document/([^/]+)/([^/]+)", self.get_document),
            ("HEAD", r"/_api/document/([^/]+)/([^/]+)", self.head_document),
            ("PATCH", r"/_api/document/([^/]+)/([^/]+)", self.update_document),
            ("PUT", r"/_api/document/([^/]+)/([^/]+)", self.replace_document),
            ("DELETE", r"/_api/document/([^/]+)/([^/]+)", self.delete_document),
            ("POST", r"/_api/cursor", self.create_cursor),
            ("POST", r"/_api/cursor/([^/]+)", self.next_batch),
            ("PUT", r"/_api/cursor/([^/]+)", self.next_batch),
            ("POST", r"/_api/cursor/([^/]+)/([^/]+)", self.retry_batch),
            ("DELETE", r"/_api/cursor/([^/]+)", self.delete_cursor),
            ("POST", r"/_api/transaction/begin", self.begin_transaction),
            ("GET", r"/_api/transaction", self.list_transactions),
            ("GET", r"/_api/transaction/([^/]+)", self.transaction_status),
            ("PUT", r"/_api/transaction/([^/]+)", self.commit_transaction),
            ("DELETE", r"/_api/transaction/([^/]+)", self.abort_transaction),
        ]
        self.routes = [(m, re.compile(p + "$"), h) for m, p, h in routes]

    def handle(self, request: Request) -> Response:
        try:
            db, path = self._split(request.path)
            matched_path = False
            for method, pattern, handler in self.routes:
                match = pattern.match(path)
                if match is None:
                    continue
                matched_path = True
                if method == request.method:
                    self.engine.database(db)
                    args = [urllib.parse.unquote(g) for g in match.groups()]
                    return handler(db, request, *args)
            if matched_path:
                raise ArangoError(405, HTTP_METHOD_NOT_ALLOWED, "method not supported")
            raise not_found_path()
        except ArangoError as err:
            return Response(err.status, err.body())

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        match = _DB_PREFIX.match(path)
        if match:
            return urllib.parse.unquote(match.group(1)), match.group(2) or "/"
        return "_system", path

    @contextmanager
    def _trx(self, db: str, request: Request) -> Iterator[Transaction]:
        trx_id = request.headers.get("x-arango-trx-id")
        if trx_id:
            trx = self.engine.stream(db, trx_id)
            with self.engine.savepoint(trx):
                yield trx
        else:
            with self.engine.implicit(db) as trx:
                yield trx

    # -- server and databases -------------------------------------------------------------------

    def version(self, db: str, request: Request) -> Response:
        body: dict[str, Any] = {"server": "arango", "version": VERSION, "license": "community"}
        if request.flag("details"):
            body["details"] = {
                "architecture": "64bit",
                "mode": "server",
                "role": "SINGLE",
                "engine": "rocksdb",
            }
        return Response(200, body)

    def list_databases(self, db: str, request: Request) -> Response:
        if db != "_system":
            raise ArangoError(403, 1230, "operation only allowed in system database")
        with self.engine.lock:
            return ok({"result": sorted(self.engine.databases)})

    def user_databases(self, db: str, request: Request) -> Response:
        with self.engine.lock:
            return ok({"result": sorted(self.engine.databases)})

    def current_database(self, db: str, request: Request) -> Response:
        return ok({"result": self.engine.database(db).describe()})

    def create_database(self, db: str, request: Request) -> Response:
        body = _object(request.json())
        self.engine.create_database(db, body.get("name"), admin=request.admin)
        return ok({"result": True}, 201)

    def drop_database(self, db: str, request: Request, name: str) -> Response:
        self.engine.drop_database(db, name)
        return ok({"result": True})

    # -- collections and indexes ----------------------------------------------------------------

    def list_collections(self, db: str, request: Request) -> Response:
        with self.engine.lock:
            colls = list(self.engine.database(db).collections.values())
        if request.flag("excludeSystem"):
            colls = [c for c in colls if not c.system]
        return ok({"result": [c.describe() for c in colls]})

    def create_collection(self, db: str, request: Request) -> Response:
        coll = self.engine.create_collection(db, _object(request.json()))
        return ok(coll.properties())

    def collection_info(self, db: str, request: Request, name: str) -> Response:
        return ok(self.engine.collection(db, name).describe())

    def collection_properties(self, db: str, request: Request, name: str) -> Response:
        return ok(self.engine.collection(db, name).properties())

    def collection_count(self, db: str, request: Request, name: str) -> Response:
        coll = self.engine.collection(db, name)
        with self._trx(db, request) as trx:
            count = self.engine.count(trx, name)
        return ok({**coll.properties(), "count": count})

    def truncate_collection(self, db: str, request: Request, name: str) -> Response:
        self.engine.truncate(db, name)
        return ok(self.engine.collection(db, name).properties())

    def drop_collection(self, db: str, request: Request, name: str) -> Response:
        return ok({"id": self.engine.drop_collection(db, name).id})

    def list_indexes(self, db: str, request: Request) -> Response:
        name = request.query.get("collection", "")
        coll = self.engine.collection(db, name)
        indexes = [i.describe(name) for i in coll.indexes]
        return ok({"indexes": indexes, "identifiers": {i["id"]: i for i in indexes}})

    def create_index(self, db: str, request: Request) -> Response:
        name = request.query.get("collection", "")
        index, created = self.engine.create_index(db, name, _object(request.json()))
        status = 201 if created else 200
        return ok({**index.describe(name), "isNewlyCreated": created}, status)

    def get_index(self, db: str, request: Request, name: str, index_id: str) -> Response:
        return ok(self.engine.index(db, name, index_id).describe(name))

    def drop_index(self, db: str, request: Request, name: str, index_id: str) -> Response:
        index = self.engine.drop_index(db, name, index_id)
        return ok({"id": f"{name}/{index.id}"})

    # -- documents ------------------------------------------------------------------------------

    def insert_document(self, db: str, request: Request, name: str) -> Response:
        body = request.json()
        self.engine.collection(db, name)
        options = dict(request.query)
        if isinstance(body, list):
            return self._insert_many(db, request, name, body, options)
        if not isinstance(body, dict):
            raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
        with self._trx(db, request) as trx:
            old, new = self.engine.insert(trx, name, body, options)
        return self._written(request, name, old, new)

    def _insert_many(
        self, db: str, request: Request, name: str, docs: list[Any], options: dict[str, Any]
    ) -> Response:
        results: list[Any] = []
        codes: dict[str, int] = {}
        with self._trx(db, request) as trx:
            for doc in docs:
                try:
                    if not isinstance(doc, dict):
                        raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
                    with self.engine.savepoint(trx):
                        old, new = self.engine.insert(trx, name, doc, options)
                    results.append(self._written(request, name, old, new).body)
                except ArangoError as err:
                    codes[str(err.num)] = codes.get(str(err.num), 0) + 1
                    results.append({"error": True, "errorNum": err.num, "errorMessage": err.message})
        for item in results:
            if isinstance(item, dict) and not item.get("error"):
                item.pop("code", None)
                item.pop("error", None)
        headers = {"x-arango-error-codes": json.dumps(codes)} if codes else {}
        return Response(202, results, headers)

    def get_document(self, db: str, request: Request, name: str, key: str) -> Response:
        with self._trx(db, request) as trx:
            doc = self.engine.read(trx, name, key)
        if doc is None:
            raise document_not_found()
        etag = f'"{doc["_rev"]}"'
        if_none = request.headers.get("if-none-match")
        if if_none is not None and if_none.strip('"') == doc["_rev"]:
            return Response(304, None, {"etag": etag})
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match.strip('"') != doc["_rev"]:
            raise revision_conflict(412, doc)
        return Response(200, doc, {"etag": etag})

    def head_document(self, db: str, request: Request, name: str, key: str) -> Response:
        try:
            response = self.get_document(db, request, name, key)
        except ArangoError as err:
            return Response(err.status, None)
        return Response(response.status, None, response.headers)

    def _rev(self, request: Request, body: Any) -> str | None:
        if_match = request.headers.get("if-match")
        if if_match:
            return if_match.strip('"')
        if (
            not request.flag("ignoreRevs", True)
            and isinstance(body, dict)
            and isinstance(body.get("_rev"), str)
        ):
            return str(body["_rev"])
        return None

    def update_document(self, db: str, request: Request, name: str, key: str) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
        options = {
            "keepNull": request.flag("keepNull", True),
            "mergeObjects": request.flag("mergeObjects", True),
        }
        with self._trx(db, request) as trx:
            old, new = self.engine.update(trx, name, key, self._rev(request, body), body, options)
        return self._written(request, name, old, new)

    def replace_document(self, db: str, request: Request, name: str, key: str) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise ArangoError(400, DOCUMENT_TYPE_INVALID, "invalid document type")
        with self._trx(db, request) as trx:
            old, new = self.engine.replace(trx, name, key, self._rev(request, body), body, {})
        return self._written(request, name, old, new)

    def delete_document(self, db: str, request: Request, name: str, key: str) -> Response:
        with self._trx(db, request) as trx:
            old = self.engine.remove(trx, name, key, self._rev(request, None))
        body: dict[str, Any] = {"_id": old["_id"], "_key": old["_key"], "_rev": old["_rev"]}
        if request.flag("returnOld"):
            body["old"] = old
        status = 200 if self.engine.collection(db, name).wait_for_sync or request.flag("waitForSync") else 202
        return Response(status, {} if request.flag("silent") else body)

    def _written(self, request: Request, name: str, old: Any, new: dict[str, Any]) -> Response:
        body: dict[str, Any] = {"_id": new["_id"], "_key": new["_key"], "_rev": new["_rev"]}
        if old is not None:
            body["_oldRev"] = old["_rev"]
        if request.flag("returnNew"):
            body["new"] = new
        if request.flag("returnOld") and old is not None:
            body["old"] = old
        sync = request.flag("waitForSync")
        status = 201 if sync else 202
        return Response(status, {} if request.flag("silent") else body, {"etag": f'"{new["_rev"]}"'})

    # -- AQL cursors ----------------------------------------------------------------------------

    def create_cursor(self, db: str, request: Request) -> Response:
        body = _object(request.json())
        query = body.get("query")
        if not isinstance(query, str):
            raise ArangoError(400, 1502, "query is empty")
        binds = body.get("bindVars") or {}
        if not isinstance(binds, dict):
            raise bad_parameter("bindVars must be an object")
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        batch_size = int(body.get("batchSize") or options.get("batchSize") or 1000)
        if batch_size <= 0:
            raise bad_parameter("batchSize must be a positive integer")
        parsed = aql.parse(query)
        started = time.perf_counter()
        with self._trx(db, request) as trx:
            result = aql.execute(parsed, binds, _QueryData(self.engine, trx, self.aql_write_delay))
        extra = {"warnings": result.warnings, "stats": result.stats.as_json(time.perf_counter() - started)}
        if options.get("fullCount"):
            full = result.stats.full_count
            extra["stats"]["fullCount"] = len(result.values) if full is None else full
        if options.get("failOnWarning") and result.warnings:
            warning = result.warnings[0]
            raise ArangoError(400, warning["code"], f"AQL: {warning['message']} (while executing)")
        ttl = float(body.get("ttl") or 30)
        cursor = self.cursors.first_batch(db, result.values, batch_size, ttl, bool(body.get("count")), extra)
        return ok(cursor, 201)

    def next_batch(self, db: str, request: Request, cursor_id: str) -> Response:
        return ok(self.cursors.next_batch(db, cursor_id))

    def retry_batch(self, db: str, request: Request, cursor_id: str, batch_id: str) -> Response:
        return ok(self.cursors.next_batch(db, cursor_id, batch_id))

    def delete_cursor(self, db: str, request: Request, cursor_id: str) -> Response:
        self.cursors.delete(db, cursor_id)
        return ok({"id": cursor_id}, 202)

    # -- stream transactions --------------------------------------------------------------------

    def begin_transaction(self, db: str, request: Request) -> Response:
        trx = self.engine.begin(db, _object(request.json()))
        return ok({"result": {"id": trx.id, "status": "running"}}, 201)

    def list_transactions(self, db: str, request: Request) -> Response:
        return ok({"transactions": [{"id": t.id, "state": t.status} for t in self.engine.running(db)]})

    def transaction_status(self, db: str, request: Request, trx_id: str) -> Response:
        return ok({"result": {"id": trx_id, "status": self.engine.status(db, trx_id)}})

    def commit_transaction(self, db: str, request: Request, trx_id: str) -> Response:
        self.engine.commit_stream(db, trx_id)
        return ok({"result": {"id": trx_id, "status": "committed"}})

    def abort_transaction(self, db: str, request: Request, trx_id: str) -> Response:
        self.engine.abort_stream(db, trx_id)
        return ok({"result": {"id": trx_id, "status": "aborted"}})


class _QueryData:
    """The AQL executor's view of one transaction; revision conflicts in AQL are 409s.

    `write_delay` pauses before each write, outside every lock: a query that reads, then writes
    later, as one on a busy server does, so concurrent queries really race.
    """

    def __init__(self, engine: Engine, trx: Transaction, write_delay: float = 0.0) -> None:
        self.engine = engine
        self.trx = trx
        self.write_delay = write_delay

    def _pause(self) -> None:
        if self.write_delay:
            time.sleep(self.write_delay)

    def scan(self, collection: str) -> list[dict[str, Any]]:
        return self.engine.scan(self.trx, collection)

    def document(self, handle: str) -> dict[str, Any] | None:
        name, _, key = handle.partition("/")
        try:
            return self.engine.read(self.trx, name, key)
        except ArangoError:
            return None

    def insert(self, collection: str, doc: dict[str, Any], options: dict[str, Any]) -> tuple[Any, Any]:
        self._pause()
        return self.engine.insert(self.trx, collection, doc, options, 409)

    def update(
        self, collection: str, key: str, rev: str | None, patch: dict[str, Any], options: dict[str, Any]
    ) -> tuple[Any, Any]:
        self._pause()
        return self.engine.update(self.trx, collection, key, rev, patch, options, 409)

    def replace(
        self, collection: str, key: str, rev: str | None, doc: dict[str, Any], options: dict[str, Any]
    ) -> tuple[Any, Any]:
        self._pause()
        return self.engine.replace(self.trx, collection, key, rev, doc, options, 409)

    def remove(self, collection: str, key: str, rev: str | None, options: dict[str, Any]) -> Any:
        self._pause()
        return self.engine.remove(self.trx, collection, key, rev, 409)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_parameter("expecting a JSON object as body")
    return value
