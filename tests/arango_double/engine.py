"""Transactions over the storage: snapshots, key locks, write-write conflicts, commit and abort.

Every operation runs in a transaction: a stream transaction (`POST /_api/transaction/begin`,
then requests carrying `x-arango-trx-id`) or an implicit one around a single request. A
transaction reads the committed state as of its begin plus its own writes. Writing a document
locks its key: a second transaction writing the same key gets 409/1200 "write-write conflict" at
once, as does a write to a key committed by someone else after the writer's snapshot. Unique
index values are locked the same way. Commit publishes all writes under one commit number;
abort drops them. Stream transactions idle longer than `idle_timeout` are aborted (their locks
freed) the next time someone runs into them, as ArangoDB's stream-transaction timeout does.
`exclusive` collections are locked for the whole transaction: other writers wait up to their
lock timeout, then fail with errorNum 18.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .aql.functions import merge_objects
from .errors import (
    CONFLICT,
    DUPLICATE_NAME,
    FORBIDDEN,
    INDEX_NOT_FOUND,
    TRANSACTION_DISALLOWED_OPERATION,
    TRANSACTION_UNREGISTERED_COLLECTION,
    USE_SYSTEM_DATABASE,
    ArangoError,
    bad_parameter,
    collection_not_found,
    database_not_found,
    document_not_found,
    revision_conflict,
    transaction_not_found,
    unique_violated,
    write_conflict,
)
from .storage import Collection, Database, Index, check_key, check_name, new_rev, next_id

LOCK_TIMEOUT = 18
SYSTEM_ATTRIBUTES = ("_key", "_id", "_rev")


@dataclass
class Transaction:
    id: str
    db: str
    snapshot: int
    stream: bool
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    exclusive: frozenset[str] = frozenset()
    allow_implicit: bool = True
    lock_timeout: float = 10.0
    writes: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    locks: set[tuple[Any, ...]] = field(default_factory=set)
    shared: set[str] = field(default_factory=set)  # collections this transaction writes
    held_exclusive: set[str] = field(default_factory=set)
    status: str = "running"
    last_used: float = field(default_factory=time.monotonic)


class Engine:
    def __init__(self, *, idle_timeout: float = 60.0) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.idle_timeout = idle_timeout
        self.databases: dict[str, Database] = {"_system": Database("_system")}
        self.seq = 0
        self.active: dict[str, Transaction] = {}
        self.finished: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.locks: dict[tuple[Any, ...], str] = {}

    # -- databases and collections ------------------------------------------------------------

    def database(self, name: str) -> Database:
        with self.lock:
            db = self.databases.get(name)
            if db is None:
                raise database_not_found()
            return db

    def create_database(self, caller: str, name: Any, *, admin: bool = True) -> None:
        with self.lock:
            if caller != "_system":
                raise ArangoError(403, USE_SYSTEM_DATABASE, "operation only allowed in system database")
            if not admin:
                raise ArangoError(403, FORBIDDEN, "forbidden")
            if not isinstance(name, str) or not name or len(name) > 64 or not (name[0].isalpha()):
                raise ArangoError(400, 1229, "database name invalid")
            check_name(name)
            if name in self.databases:
                raise ArangoError(409, DUPLICATE_NAME, "duplicate database name")
            self.databases[name] = Database(name)

    def drop_database(self, caller: str, name: str) -> None:
        with self.lock:
            if caller != "_system" or name == "_system":
                raise ArangoError(403, USE_SYSTEM_DATABASE, "operation only allowed in system database")
            if self.databases.pop(name, None) is None:
                raise database_not_found()

    def collection(self, db: str, name: str) -> Collection:
        with self.lock:
            coll = self.database(db).collections.get(name)
            if coll is None:
                raise collection_not_found(name)
            return coll

    def create_collection(self, db: str, body: dict[str, Any]) -> Collection:
        with self.lock:
            database = self.database(db)
            system = bool(body.get("isSystem"))
            name = check_name(body.get("name"), system=system)
            if name in database.collections:
                raise ArangoError(409, DUPLICATE_NAME, "duplicate name")
            coll = Collection(
                name,
                type_=int(body.get("type") or 2),
                system=system,
                wait_for_sync=bool(body.get("waitForSync")),
            )
            database.collections[name] = coll
            return coll

    def drop_collection(self, db: str, name: str) -> Collection:
        with self.lock:
            coll = self.collection(db, name)
            del self.database(db).collections[name]
            return coll

    def truncate(self, db: str, name: str) -> None:
        with self.implicit(db) as trx:
            coll = self.collection(db, name)
            for doc in self.scan(trx, coll.name):
                self._write(trx, coll, doc["_key"], None)

    # -- indexes ------------------------------------------------------------------------------

    def create_index(self, db: str, name: str, spec: dict[str, Any]) -> tuple[Index, bool]:
        with self.lock:
            coll = self.collection(db, name)
            kind = spec.get("type")
            if kind in ("hash", "skiplist"):
                kind = "persistent"
            if kind != "persistent":
                raise bad_parameter(f"invalid index type '{kind}'")
            fields = spec.get("fields")
            if (
                not isinstance(fields, list)
                or not fields
                or not all(isinstance(f, str) and f for f in fields)
            ):
                raise bad_parameter("index fields must be a non-empty array of attribute paths")
            unique, sparse = bool(spec.get("unique")), bool(spec.get("sparse"))
            for index in coll.indexes:
                if (index.type, index.fields, index.unique, index.sparse) == (kind, fields, unique, sparse):
                    return index, False
            index_name = spec.get("name") or f"idx_{next_id()}"
            if any(i.name == index_name for i in coll.indexes):
                raise ArangoError(409, DUPLICATE_NAME, "duplicate value: an index with that name exists")
            index = Index(next_id(), index_name, kind, list(fields), unique, sparse)
            if unique:
                for key, chain in coll.versions.items():
                    doc = chain[-1].doc
                    value = index.key_of(doc) if doc is not None else None
                    if value is None:
                        continue
                    if value in index.values:
                        raise unique_violated(index_name, kind, fields, key)
                    index.values[value] = key
            coll.indexes.append(index)
            return index, True

    def index(self, db: str, name: str, index_id: str) -> Index:
        coll = self.collection(db, name)
        for index in coll.indexes:
            if index_id in (index.id, index.name):
                return index
        raise ArangoError(404, INDEX_NOT_FOUND, "index not found")

    def drop_index(self, db: str, name: str, index_id: str) -> Index:
        with self.lock:
            coll = self.collection(db, name)
            index = self.index(db, name, index_id)
            if index.type == "primary":
                raise ArangoError(403, 1213, "cannot drop this index")
            coll.indexes.remove(index)
            return index

    # -- transactions -------------------------------------------------------------------------

    def begin(self, db: str, body: dict[str, Any]) -> Transaction:
        spec = body.get("collections")
        if not isinstance(spec, dict):
            raise bad_parameter("missing 'collections' attribute")

        def names(kind: str) -> frozenset[str]:
            value = spec.get(kind) or []
            return frozenset([value] if isinstance(value, str) else value)

        with self.lock:
            trx = Transaction(
                next_id(),
                db,
                self.seq,
                stream=True,
                read=names("read"),
                write=names("write"),
                exclusive=names("exclusive"),
                allow_implicit=body.get("allowImplicit", True) is not False,
                lock_timeout=float(body.get("lockTimeout") or 10.0),
            )
            for name in trx.read | trx.write | trx.exclusive:
                self.collection(db, name)
            self.active[trx.id] = trx
            try:
                for name in sorted(trx.exclusive):
                    self._acquire(trx, name, exclusive=True)
                for name in sorted(trx.write - trx.exclusive):
                    self._acquire(trx, name, exclusive=False)
            except ArangoError:
                self._finish(trx, "aborted")
                raise
            trx.snapshot = self.seq  # the snapshot starts once the locks are held
            return trx

    @contextlib.contextmanager
    def implicit(self, db: str) -> Iterator[Transaction]:
        """A single request's own transaction: committed on success, aborted on error."""
        with self.lock:
            self.database(db)
            trx = Transaction(next_id(), db, self.seq, stream=False)
            self.active[trx.id] = trx
        try:
            yield trx
        except BaseException:
            with self.lock:
                self._finish(trx, "aborted")
            raise
        self.commit(trx)

    def stream(self, db: str, trx_id: str) -> Transaction:
        with self.lock:
            trx = self.active.get(trx_id)
            if trx is None or not trx.stream or trx.db != db or self._expire(trx):
                raise transaction_not_found(trx_id)
            trx.last_used = time.monotonic()
            return trx

    def status(self, db: str, trx_id: str) -> str:
        with self.lock:
            trx = self.active.get(trx_id)
            if trx is not None and trx.db == db and not self._expire(trx):
                return trx.status
            if trx_id in self.finished:
                return self.finished[trx_id]
            raise transaction_not_found(trx_id)

    def running(self, db: str) -> list[Transaction]:
        with self.lock:
            return [t for t in list(self.active.values()) if t.stream and t.db == db and not self._expire(t)]

    def commit_stream(self, db: str, trx_id: str) -> None:
        with self.lock:
            if self.finished.get(trx_id) == "committed":
                return
            if self.finished.get(trx_id) == "aborted":
                raise ArangoError(409, TRANSACTION_DISALLOWED_OPERATION, "transaction was already aborted")
            self.commit(self.stream(db, trx_id))

    def abort_stream(self, db: str, trx_id: str) -> None:
        with self.lock:
            if self.finished.get(trx_id) == "aborted":
                return
            if self.finished.get(trx_id) == "committed":
                raise ArangoError(409, TRANSACTION_DISALLOWED_OPERATION, "transaction was already committed")
            self._finish(self.stream(db, trx_id), "aborted")

    def commit(self, trx: Transaction) -> None:
        with self.lock:
            if trx.status != "running":
                raise transaction_not_found(trx.id)
            if trx.writes:
                self.seq += 1
                others = [t.snapshot for t in self.active.values() if t is not trx]
                horizon = min(others, default=self.seq)
                database = self.databases.get(trx.db)
                for (name, key), doc in trx.writes.items():
                    coll = database.collections.get(name) if database else None
                    if coll is not None:
                        coll.commit(key, doc, self.seq, horizon)
            self._finish(trx, "committed")

    def _finish(self, trx: Transaction, status: str) -> None:
        trx.status = status
        for lock in trx.locks:
            if self.locks.get(lock) == trx.id:
                del self.locks[lock]
        trx.locks.clear()
        trx.writes.clear()
        self.active.pop(trx.id, None)
        if trx.stream:
            self.finished[trx.id] = status
            while len(self.finished) > 10_000:
                self.finished.popitem(last=False)
        self.changed.notify_all()

    def _expire(self, trx: Transaction) -> bool:
        """Abort a stream transaction its client has left idle too long; True if it is gone."""
        if trx.status != "running":
            return True
        if trx.stream and time.monotonic() - trx.last_used > self.idle_timeout:
            self._finish(trx, "aborted")
            return True
        return False

    @contextlib.contextmanager
    def savepoint(self, trx: Transaction) -> Iterator[None]:
        """A failed operation inside a stream transaction leaves the transaction as it was."""
        with self.lock:
            writes, locks, shared = dict(trx.writes), set(trx.locks), set(trx.shared)
        try:
            yield
        except ArangoError:
            with self.lock:
                if trx.status == "running":
                    for lock in trx.locks - locks:
                        if self.locks.get(lock) == trx.id:
                            del self.locks[lock]
                    trx.writes, trx.locks, trx.shared = writes, locks, shared
                    self.changed.notify_all()
            raise
        finally:
            trx.last_used = time.monotonic()

    # -- locking ------------------------------------------------------------------------------

    def _acquire(self, trx: Transaction, name: str, *, exclusive: bool) -> None:
        """Take a collection lock: shared for writers, exclusive for `exclusive` collections."""
        if name in trx.held_exclusive or (not exclusive and name in trx.shared):
            return
        deadline = time.monotonic() + trx.lock_timeout
        while True:
            blockers = [
                t
                for t in list(self.active.values())
                if t is not trx and (name in t.held_exclusive or (exclusive and name in t.shared))
            ]
            blockers = [t for t in blockers if not self._expire(t)]
            if not blockers:
                trx.shared.add(name)
                if exclusive:
                    trx.held_exclusive.add(name)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ArangoError(409, LOCK_TIMEOUT, f"timeout waiting to lock collection '{name}'")
            self.changed.wait(min(remaining, 0.05))

    def _lock(self, trx: Transaction, lock: tuple[Any, ...]) -> None:
        holder_id = self.locks.get(lock)
        if holder_id is not None and holder_id != trx.id:
            holder = self.active.get(holder_id)
            if holder is not None and not self._expire(holder):
                raise write_conflict()
        self.locks[lock] = trx.id
        trx.locks.add(lock)

    # -- reads --------------------------------------------------------------------------------

    def read(self, trx: Transaction, name: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            coll = self.collection(trx.db, name)
            self._check_read(trx, name)
            if (name, key) in trx.writes:
                return trx.writes[(name, key)]
            return coll.visible(key, trx.snapshot)

    def scan(self, trx: Transaction, name: str) -> list[dict[str, Any]]:
        with self.lock:
            coll = self.collection(trx.db, name)
            self._check_read(trx, name)
            out = []
            for key in coll.versions:
                doc = (
                    trx.writes[(name, key)] if (name, key) in trx.writes else coll.visible(key, trx.snapshot)
                )
                if doc is not None:
                    out.append(doc)
            for (coll_name, key), doc in trx.writes.items():
                if coll_name == name and key not in coll.versions and doc is not None:
                    out.append(doc)
            return out

    def count(self, trx: Transaction, name: str) -> int:
        return len(self.scan(trx, name))

    def _check_read(self, trx: Transaction, name: str) -> None:
        if trx.stream and not trx.allow_implicit and name not in trx.read | trx.write | trx.exclusive:
            raise ArangoError(
                400,
                TRANSACTION_UNREGISTERED_COLLECTION,
                f"collection '{name}' not registered with transaction",
            )

    # -- writes -------------------------------------------------------------------------------

    def _write(self, trx: Transaction, coll: Collection, key: str, doc: dict[str, Any] | None) -> None:
        name = coll.name
        if trx.stream and name not in trx.write | trx.exclusive:
            raise ArangoError(
                400,
                TRANSACTION_UNREGISTERED_COLLECTION,
                f"collection '{name}' is not registered with the transaction for write access",
            )
        self._acquire(trx, name, exclusive=False)
        self._lock(trx, (trx.db, name, key))
        if coll.latest_seq(key) > trx.snapshot:
            raise write_conflict()
        if doc is not None:
            for index in coll.unique_indexes():
                value = index.key_of(doc)
                if value is None:
                    continue
                self._lock(trx, (trx.db, name, "#index", index.id, value))
                for (other_coll, other_key), other in trx.writes.items():
                    if (
                        other_coll == name
                        and other_key != key
                        and other is not None
                        and index.key_of(other) == value
                    ):
                        raise unique_violated(index.name, index.type, index.fields, other_key)
                holder = index.values.get(value)
                if holder is not None and holder != key and (name, holder) not in trx.writes:
                    if coll.latest_seq(holder) > trx.snapshot:
                        raise write_conflict()
                    raise unique_violated(index.name, index.type, index.fields, holder)
        trx.writes[(name, key)] = doc

    def insert(
        self,
        trx: Transaction,
        name: str,
        body: dict[str, Any],
        options: dict[str, Any],
        rev_status: int = 412,
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        with self.lock:
            coll = self.collection(trx.db, name)
            key = check_key(body["_key"]) if "_key" in body else coll.generate_key()
            existing = self.read(trx, name, key)
            if existing is not None:
                mode = options.get("overwriteMode") or (
                    "replace" if _flag(options.get("overwrite")) else "conflict"
                )
                if mode == "ignore":
                    return None, existing
                if mode == "update":
                    return self.update(trx, name, key, None, body, options, rev_status)
                if mode == "replace":
                    return self.replace(trx, name, key, None, body, options, rev_status)
                raise unique_violated("primary", "primary", ["_key"], key)
            new = _document(name, key, body)
            self._write(trx, coll, key, new)
            return None, new

    def update(
        self,
        trx: Transaction,
        name: str,
        key: str,
        rev: str | None,
        patch: dict[str, Any],
        options: dict[str, Any],
        rev_status: int = 412,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.lock:
            coll, old = self._existing(trx, name, key, rev, rev_status)
            changes = {k: v for k, v in patch.items() if k not in SYSTEM_ATTRIBUTES}
            body = {k: v for k, v in old.items() if k not in SYSTEM_ATTRIBUTES}
            if options.get("mergeObjects", True) is False or options.get("mergeObjects") in ("false", "0"):
                body.update(changes)
            else:
                body = merge_objects(body, changes)
            if options.get("keepNull", True) is False or options.get("keepNull") in ("false", "0"):
                body = _drop_nulls(body, changes)
            new = _document(name, key, body)
            self._write(trx, coll, key, new)
            return old, new

    def replace(
        self,
        trx: Transaction,
        name: str,
        key: str,
        rev: str | None,
        body: dict[str, Any],
        options: dict[str, Any],
        rev_status: int = 412,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.lock:
            coll, old = self._existing(trx, name, key, rev, rev_status)
            new = _document(name, key, {k: v for k, v in body.items() if k not in SYSTEM_ATTRIBUTES})
            self._write(trx, coll, key, new)
            return old, new

    def remove(
        self, trx: Transaction, name: str, key: str, rev: str | None, rev_status: int = 412
    ) -> dict[str, Any]:
        with self.lock:
            coll, old = self._existing(trx, name, key, rev, rev_status)
            self._write(trx, coll, key, None)
            return old

    def _existing(
        self, trx: Transaction, name: str, key: str, rev: str | None, rev_status: int
    ) -> tuple[Collection, dict[str, Any]]:
        coll = self.collection(trx.db, name)
        old = self.read(trx, name, key)
        if old is None:
            raise document_not_found()
        if rev is not None and rev != old["_rev"]:
            raise revision_conflict(rev_status, old)
        return coll, old


def _document(collection: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "_key": key,
        "_id": f"{collection}/{key}",
        "_rev": new_rev(),
        **{k: v for k, v in body.items() if k not in SYSTEM_ATTRIBUTES},
    }


def _drop_nulls(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in body.items():
        if k in changes and changes[k] is None:
            continue
        if isinstance(v, dict) and isinstance(changes.get(k), dict):
            v = _drop_nulls(v, changes[k])
        out[k] = v
    return out


def _flag(value: Any) -> bool:
    return value is True or value in ("true", "1", 1)


__all__ = ["CONFLICT", "Engine", "Transaction"]
