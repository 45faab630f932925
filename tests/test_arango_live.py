"""The ArangoDB store and the double's promises, checked against a REAL ArangoDB.

Runs when `WPK_ARANGO_URL` is set to a store URL (`arangodb://root@localhost:8529/wpk`, or
`arangodbs://…` with `WPK_ARANGO_CA_FILE`), the password in `WPK_ARANGO_PASSWORD`. Each test
works in a throwaway database (`wpk_live_<random>`, so the user must be allowed to create
databases) that it drops afterwards. See docs/stores.md for a one-line container to run it on.

The store contract runs on the real server from tests/test_store_contract.py; here: the server
behaviour the double imitates (status codes and errorNums of conflicts, stale revisions,
unique indexes, AQL errors, batches), so a drift between the double and ArangoDB shows here.

These are the only tests of the store allowed to skip: without a server there is nothing to run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from arango import ArangoClient
from arango.exceptions import (
    AQLQueryExecuteError,
    DocumentInsertError,
    DocumentRevisionError,
    DocumentUpdateError,
)
from test_arango_double import CLAIM

from wpk.engine.store.arangodb import ArangoTarget, parse_url

LIVE_URL = os.environ.get("WPK_ARANGO_URL", "")
PASSWORD = os.environ.get("WPK_ARANGO_PASSWORD", "")
CA_FILE = os.environ.get("WPK_ARANGO_CA_FILE") or None

pytestmark = [
    pytest.mark.arango_live,
    pytest.mark.skipif(not LIVE_URL, reason="WPK_ARANGO_URL is not set: no ArangoDB to test against"),
]


@pytest.fixture
def target() -> Iterator[ArangoTarget]:
    base = parse_url(LIVE_URL)
    target = ArangoTarget(base.endpoint, f"wpk_live_{secrets.token_hex(4)}", base.username)
    yield target
    client = ArangoClient(hosts=target.endpoint, verify_override=CA_FILE)
    try:
        client.db("_system", username=target.username, password=PASSWORD).delete_database(
            target.database, ignore_missing=True
        )
    finally:
        client.close()


@pytest.fixture
def db(target: ArangoTarget) -> Iterator[Any]:
    client = ArangoClient(hosts=target.endpoint, verify_override=CA_FILE)
    client.db("_system", username=target.username, password=PASSWORD).create_database(target.database)
    yield client.db(target.database, username=target.username, password=PASSWORD)
    client.close()


def test_live_conflicts_and_revisions_match_the_double(db: Any) -> None:
    items = db.create_collection("items")
    first = items.insert({"_key": "job", "owner": None})
    items.update({"_key": "job", "owner": "x"})
    with pytest.raises(DocumentRevisionError) as stale:
        items.update({"_key": "job", "_rev": first["_rev"], "owner": "y"})
    assert (stale.value.http_code, stale.value.error_code) == (412, 1200)

    a = db.begin_transaction(write="items")
    b = db.begin_transaction(write="items")
    try:
        a.collection("items").update({"_key": "job", "owner": "a"})
        with pytest.raises(DocumentUpdateError) as conflict:
            b.collection("items").update({"_key": "job", "owner": "b"})
        assert (conflict.value.http_code, conflict.value.error_code) == (409, 1200)
    finally:
        a.abort_transaction()
        b.abort_transaction()

    items.add_index({"type": "persistent", "fields": ["n"], "unique": True})
    items.insert({"n": 1})
    with pytest.raises(DocumentInsertError) as unique:
        items.insert({"n": 1})
    assert (unique.value.http_code, unique.value.error_code) == (409, 1210)


def test_live_aql_matches_the_double(db: Any) -> None:
    db.create_collection("executions")
    for seq in range(5):
        db.collection("executions").insert(
            {"_key": f"e{seq}", "status": "pending", "priority": seq % 2, "seq": seq}
        )
    won = list(db.aql.execute(CLAIM, bind_vars={"agent": "a"}))
    assert [(d["_key"], d["owner"]) for d in won] == [("e1", "a")]
    cursor = db.aql.execute("FOR e IN executions SORT e.seq RETURN e.seq", batch_size=2, count=True)
    assert cursor.has_more() and cursor.count() == 5 and list(cursor) == [0, 1, 2, 3, 4]
    ordered = db.aql.execute("FOR x IN [{}, [], 'a', 1, true, null] SORT x RETURN x")
    assert list(ordered) == [None, True, 1, "a", [], {}]
    counted = db.aql.execute("FOR e IN executions COLLECT s = e.status WITH COUNT INTO n RETURN [s, n]")
    assert list(counted) == [["claimed", 1], ["pending", 4]]
    for query, num in [("FOR e IN executions FILTER RETURN e", 1501), ("RETURN NO_SUCH_FN()", 1540)]:
        with pytest.raises(AQLQueryExecuteError) as err:
            db.aql.execute(query)
        assert (err.value.http_code, err.value.error_code) == (400, num)
