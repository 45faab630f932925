"""Databases, collections, indexes and document versions: the state behind the double.

Each document key keeps a short chain of committed versions `(commit_seq, doc or None)`, so a
transaction reads the version that was current when it began (snapshot isolation, as RocksDB
gives ArangoDB). Unique indexes keep a map from indexed values to the key holding them in the
latest committed state; the engine checks writes against it and against a writer's own changes.
Stored documents are never mutated in place: every write stores a new dict.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .aql.values import canonical
from .errors import DOCUMENT_KEY_BAD, ILLEGAL_NAME, ArangoError

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_\-]{0,255}$")
_SYSTEM_NAME = re.compile(r"^_[a-zA-Z0-9_\-]{1,255}$")
_KEY = re.compile(r"^[a-zA-Z0-9_\-:.@()+,=;$!*'%]{1,254}$")
_REV_ALPHABET = "-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_ids = itertools.count(10_000)
_rev_lock = threading.Lock()
_last_rev = 0


def next_id() -> str:
    return str(next(_ids))


def new_rev() -> str:
    """A revision like ArangoDB's: a hybrid logical clock (microseconds) in its base64 alphabet."""
    global _last_rev
    with _rev_lock:
        _last_rev = max(_last_rev + 1, int(time.time() * 1_000_000))
        value = _last_rev
    out = []
    while value:
        value, digit = divmod(value, 64)
        out.append(_REV_ALPHABET[digit])
    return "_" + "".join(reversed(out))


def check_name(name: Any, *, system: bool = False) -> str:
    if not isinstance(name, str) or not (_NAME.match(name) or (system and _SYSTEM_NAME.match(name))):
        raise ArangoError(400, ILLEGAL_NAME, "illegal name")
    return name


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ArangoError(400, DOCUMENT_KEY_BAD, "illegal document key")
    return key


@dataclass
class Index:
    id: str
    name: str
    type: str
    fields: list[str]
    unique: bool
    sparse: bool
    extra: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # unique: canonical(values) -> key

    def key_of(self, doc: dict[str, Any]) -> str | None:
        """The indexed values of `doc` as one hashable string; None when a sparse index skips it."""
        values = [_path(doc, f) for f in self.fields]
        if self.sparse and any(v is None for v in values):
            return None
        return canonical(values)

    def describe(self, collection: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"{collection}/{self.id}",
            "name": self.name,
            "type": self.type,
            "fields": list(self.fields),
            "unique": self.unique,
            "sparse": self.sparse,
        }
        if self.type == "persistent":
            out.update({"deduplicate": True, "estimates": True, "cacheEnabled": False})
            out.update(self.extra)
        if self.type == "primary":
            out["selectivityEstimate"] = 1
        return out


def _path(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass
class Version:
    seq: int
    doc: dict[str, Any] | None


class Collection:
    def __init__(
        self, name: str, *, type_: int = 2, system: bool = False, wait_for_sync: bool = False
    ) -> None:
        self.id = next_id()
        self.name = name
        self.type = type_
        self.system = system
        self.wait_for_sync = wait_for_sync
        self.versions: dict[str, list[Version]] = {}
        self.indexes: list[Index] = [Index("0", "primary", "primary", ["_key"], True, False)]
        self._key_counter = itertools.count(int(time.time() * 1000))
        self.last_key = 0

    def generate_key(self) -> str:
        """The traditional generator: ascending numbers as strings."""
        while True:
            key = str(next(self._key_counter))
            if key not in self.versions:
                self.last_key = int(key)
                return key

    def visible(self, key: str, snapshot: int) -> dict[str, Any] | None:
        for version in reversed(self.versions.get(key, ())):
            if version.seq <= snapshot:
                return version.doc
        return None

    def latest_seq(self, key: str) -> int:
        chain = self.versions.get(key)
        return chain[-1].seq if chain else 0

    def latest(self, key: str) -> dict[str, Any] | None:
        chain = self.versions.get(key)
        return chain[-1].doc if chain else None

    def unique_indexes(self) -> list[Index]:
        return [i for i in self.indexes if i.unique and i.type != "primary"]

    def commit(self, key: str, doc: dict[str, Any] | None, seq: int, horizon: int) -> None:
        """Store a committed version; forget versions no running transaction can still read."""
        old = self.latest(key)
        for index in self.unique_indexes():
            if old is not None:
                old_value = index.key_of(old)
                if old_value is not None and index.values.get(old_value) == key:
                    del index.values[old_value]
            if doc is not None:
                new_value = index.key_of(doc)
                if new_value is not None:
                    index.values[new_value] = key
        chain = self.versions.setdefault(key, [])
        chain.append(Version(seq, doc))
        keep_from = 0
        for i, version in enumerate(chain):
            if version.seq <= horizon:
                keep_from = i
        del chain[:keep_from]
        if len(chain) == 1 and chain[0].doc is None and chain[0].seq <= horizon:
            del self.versions[key]

    def count(self, snapshot: int) -> int:
        return sum(1 for key in self.versions if self.visible(key, snapshot) is not None)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": 3,
            "statusString": "loaded",
            "isSystem": self.system,
            "globallyUniqueId": f"h{self.id}",
        }

    def properties(self) -> dict[str, Any]:
        return {
            **self.describe(),
            "waitForSync": self.wait_for_sync,
            "keyOptions": {"type": "traditional", "allowUserKeys": True, "lastValue": self.last_key},
            "writeConcern": 1,
            "replicationFactor": 1,
            "cacheEnabled": False,
            "computedValues": None,
            "schema": None,
            "syncByRevision": True,
            "usesRevisionsAsDocumentIds": True,
            "isDisjoint": False,
            "isSmart": False,
            "internalValidatorType": 0,
        }


class Database:
    def __init__(self, name: str) -> None:
        self.id = next_id()
        self.name = name
        self.collections: dict[str, Collection] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "path": "none", "isSystem": self.name == "_system"}
