"""The ArangoDB double, exercised through python-arango UNCHANGED over real HTTP.

If the official client's database, collection, document, index, AQL cursor and stream
transaction calls work against the double, with ArangoDB's status codes and errorNums, then the
ArangoDB store tested on the double runs the code path it runs against a server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from arango import ArangoClient
from arango.database import StandardDatabase
from arango.exceptions import (
    AQLQueryExecuteError,
    ArangoServerError,
    CollectionCreateError,
    CollectionPropertiesError,
    DatabaseCreateError,
    DocumentDeleteError,
    DocumentInsertError,
    DocumentRevisionError,
    DocumentUpdateError,
    IndexCreateError,
    ServerVersionError,
    TransactionCommitError,
    TransactionInitError,
)
from arango_double import ArangoDouble

PASSWORD = "s3cret-pw"


@pytest.fixture
def arango() -> Iterator[ArangoDouble]:
    with ArangoDouble(password=PASSWORD) as double:
        yield double


@pytest.fixture
def client(arango: ArangoDouble) -> Iterator[ArangoClient]:
    client = ArangoClient(hosts=arango.url)
    yield client
    client.close()


@pytest.fixture
def sys_db(client: ArangoClient) -> StandardDatabase:
    return client.db("_system", username="root", password=PASSWORD)


@pytest.fixture
def db(client: ArangoClient, sys_db: StandardDatabase) -> StandardDatabase:
    sys_db.create_database("wpk")
    db = client.db("wpk", username="root", password=PASSWORD)
    db.create_collection("items")
    return db


def server_error(excinfo: pytest.ExceptionInfo[ArangoServerError]) -> tuple[int, int, str]:
    err = excinfo.value
    return err.http_code, err.error_code, err.error_message


def aql(db: Any, query: str, **binds: Any) -> list[Any]:
    return list(db.aql.execute(query, bind_vars=binds))


# -- server, auth, databases, collections ----------------------------------------------------


def test_version_and_verified_connection(client: ArangoClient) -> None:
    db = client.db("_system", username="root", password=PASSWORD, verify=True)
    assert db.version() == "3.11.14"
    assert db.details()["engine"] == "rocksdb"


def test_wrong_password_gets_arangos_401_body(arango: ArangoDouble, client: ArangoClient) -> None:
    bad = client.db("_system", username="root", password="wrong")
    with pytest.raises(ServerVersionError) as excinfo:
        bad.version()
    assert server_error(excinfo) == (401, 11, "not authorized to execute this request")
    assert excinfo.value.response.body == {
        "error": True,
        "code": 401,
        "errorNum": 11,
        "errorMessage": "not authorized to execute this request",
    }
    with pytest.raises(ServerVersionError):
        client.db("_system", username="nobody", password=PASSWORD).version()
    assert [r.status for r in arango.requests] == [401, 401]


def test_databases_create_list_and_errors(client: ArangoClient, sys_db: StandardDatabase) -> None:
    assert not sys_db.has_database("runs")
    assert sys_db.create_database("runs") is True
    assert sys_db.has_database("runs")
    assert "runs" in sys_db.databases()
    with pytest.raises(DatabaseCreateError) as excinfo:
        sys_db.create_database("runs")
    assert server_error(excinfo)[:2] == (409, 1207)
    with pytest.raises(DatabaseCreateError) as excinfo:
        sys_db.create_database("1-bad name")
    assert excinfo.value.http_code == 400
    missing = client.db("nope", username="root", password=PASSWORD)
    with pytest.raises(ArangoServerError) as excinfo:
        missing.collections()
    assert server_error(excinfo) == (404, 1228, "database not found")
    assert sys_db.delete_database("runs") is True
    assert sys_db.delete_database("runs", ignore_missing=True) is False


def test_collections_create_properties_and_errors(db: StandardDatabase) -> None:
    assert db.has_collection("items")
    assert not db.has_collection("other")
    db.create_collection("other", sync=True)
    props = db.collection("other").properties()
    assert props["name"] == "other"
    assert props["sync"] is True
    assert props["key_options"]["key_generator"] == "traditional"
    assert {c["name"] for c in db.collections()} == {"items", "other"}
    with pytest.raises(CollectionCreateError) as excinfo:
        db.create_collection("other")
    assert server_error(excinfo) == (409, 1207, "duplicate name")
    with pytest.raises(CollectionCreateError) as excinfo:
        db.create_collection("has space")
    assert server_error(excinfo)[:2] == (400, 1208)
    with pytest.raises(CollectionPropertiesError) as excinfo:
        db.collection("missing").properties()
    assert server_error(excinfo)[:2] == (404, 1203)
    assert db.delete_collection("other") is True
    assert db.delete_collection("other", ignore_missing=True) is False


# -- documents and revisions -----------------------------------------------------------------


def test_document_crud_with_keys_ids_and_revisions(db: StandardDatabase) -> None:
    items = db.collection("items")
    meta = items.insert({"_key": "a", "n": 1, "tags": {"x": 1}})
    assert (meta["_key"], meta["_id"]) == ("a", "items/a")
    assert meta["_rev"]
    doc = items.get("a")
    assert doc == {"_key": "a", "_id": "items/a", "_rev": meta["_rev"], "n": 1, "tags": {"x": 1}}
    generated = items.insert({"n": 2})
    assert generated["_id"] == f"items/{generated['_key']}"
    assert items.get(generated["_id"])["n"] == 2

    updated = items.update({"_key": "a", "tags": {"y": 2}, "m": None}, return_new=True, return_old=True)
    assert updated["_old_rev"] == meta["_rev"] != updated["_rev"]
    assert updated["new"]["tags"] == {"x": 1, "y": 2}  # mergeObjects
    assert updated["old"]["tags"] == {"x": 1}
    assert "m" in updated["new"]  # keepNull defaults to true
    dropped = items.update(
        {"_key": "a", "m": None, "tags": {"z": 3}}, keep_none=False, merge=False, return_new=True
    )
    assert "m" not in dropped["new"]
    assert dropped["new"]["tags"] == {"z": 3}

    replaced = items.replace({"_key": "a", "only": True}, return_new=True)
    assert replaced["new"] == {"_key": "a", "_id": "items/a", "_rev": replaced["_rev"], "only": True}
    assert items.has("a")
    deleted = items.delete("a", return_old=True)
    assert deleted["old"]["only"] is True
    assert items.get("a") is None
    assert not items.has("a")
    with pytest.raises(DocumentDeleteError) as excinfo:
        items.delete("a")
    assert server_error(excinfo) == (404, 1202, "document not found")
    assert items.delete("a", ignore_missing=True) is False
    with pytest.raises(DocumentInsertError) as excinfo:
        items.insert({"_key": "bad key/with slash"})
    assert server_error(excinfo)[:2] == (400, 1221)
    with pytest.raises(DocumentInsertError) as excinfo:
        items.insert({"_key": generated["_key"]})
    assert server_error(excinfo)[:2] == (409, 1210)
    assert items.count() == 1


def test_stale_revisions_get_412_conflict(db: StandardDatabase) -> None:
    items = db.collection("items")
    first = items.insert({"_key": "k", "v": 1})
    items.update({"_key": "k", "v": 2})
    stale = {"_key": "k", "_rev": first["_rev"], "v": 3}
    for call in (items.update, items.replace):
        with pytest.raises(DocumentRevisionError) as excinfo:
            call(stale)
        assert server_error(excinfo) == (412, 1200, "conflict, _rev values do not match")
        assert excinfo.value.response.body["_key"] == "k"
    with pytest.raises(DocumentRevisionError):
        items.delete("k", rev=first["_rev"])
    with pytest.raises(DocumentRevisionError):
        items.get("k", rev=first["_rev"])
    assert items.get("k")["v"] == 2
    assert items.update(stale, check_rev=False)["_key"] == "k"  # ignoreRevs
    current = items.get("k")
    assert items.update({**current, "v": 4})["_old_rev"] == current["_rev"]


# -- indexes ---------------------------------------------------------------------------------


def test_unique_persistent_index_is_enforced(db: StandardDatabase) -> None:
    items = db.collection("items")
    index = items.add_index(
        {"type": "persistent", "fields": ["execution", "seq"], "unique": True, "name": "by_seq"}
    )
    assert index["unique"] is True and index["isNewlyCreated"] is True
    again = items.add_index({"type": "persistent", "fields": ["execution", "seq"], "unique": True})
    assert again["id"] == index["id"] and again["isNewlyCreated"] is False
    assert {i["type"] for i in items.indexes()} == {"primary", "persistent"}

    items.insert({"execution": "e1", "seq": 1})
    items.insert({"execution": "e1", "seq": 2})
    with pytest.raises(DocumentInsertError) as excinfo:
        items.insert({"execution": "e1", "seq": 2})
    status, num, message = server_error(excinfo)
    assert (status, num) == (409, 1210)
    assert message.startswith("unique constraint violated - in index by_seq of type persistent")
    second = items.find({"seq": 2}).next()
    with pytest.raises(DocumentUpdateError) as excinfo:
        items.update({"_key": second["_key"], "seq": 1})
    assert server_error(excinfo)[:2] == (409, 1210)
    # a non-sparse unique index indexes missing attributes as null: only one such document
    items.insert({"other": True})
    with pytest.raises(DocumentInsertError):
        items.insert({"other": True})
    # a sparse one skips them
    items.add_index({"type": "persistent", "fields": ["token"], "unique": True, "sparse": True})
    items.insert({"execution": "e2", "seq": 1})
    items.insert({"execution": "e3", "seq": 1})
    items.insert({"execution": "e4", "seq": 1, "token": "t"})
    with pytest.raises(DocumentInsertError):
        items.insert({"execution": "e5", "seq": 1, "token": "t"})
    # creating a unique index over data that violates it fails
    with pytest.raises(IndexCreateError) as excinfo:
        items.add_index({"type": "persistent", "fields": ["execution"], "unique": True})
    assert server_error(excinfo)[:2] == (409, 1210)


# -- AQL -------------------------------------------------------------------------------------


@pytest.fixture
def runs(db: StandardDatabase) -> StandardDatabase:
    db.create_collection("runs")
    runs = db.collection("runs")
    for key, status, priority, seq in [
        ("r1", "pending", 5, 1),
        ("r2", "pending", 9, 2),
        ("r3", "done", 9, 3),
        ("r4", "pending", 5, 0),
        ("r5", "failed", 1, 4),
    ]:
        runs.insert({"_key": key, "status": status, "priority": priority, "seq": seq})
    return db


@pytest.mark.parametrize(
    ("query", "binds", "expected"),
    [
        ("FOR r IN runs FILTER r.status == 'pending' SORT r.priority DESC, r.seq ASC RETURN r._key", {},
         ["r2", "r4", "r1"]),
        ("FOR r IN @@c FILTER r.priority >= @p SORT r._key RETURN r._key", {"@c": "runs", "p": 5},
         ["r1", "r2", "r3", "r4"]),
        ("FOR r IN runs SORT r.seq LIMIT 1, 2 RETURN r.seq", {}, [1, 2]),
        ("FOR r IN runs SORT r.seq DESC LIMIT 2 RETURN r.seq", {}, [4, 3]),
        ("FOR r IN runs LET p = r.priority * 2 FILTER p > 10 SORT p RETURN {k: r._key, p}", {},
         [{"k": "r2", "p": 18}, {"k": "r3", "p": 18}]),
        ("FOR r IN runs COLLECT s = r.status WITH COUNT INTO n RETURN [s, n]", {},
         [["done", 1], ["failed", 1], ["pending", 3]]),
        ("FOR r IN runs COLLECT WITH COUNT INTO n RETURN n", {}, [5]),
        ("FOR r IN runs FILTER r.status == 'nothing' COLLECT WITH COUNT INTO n RETURN n", {}, [0]),
        ("FOR r IN runs COLLECT AGGREGATE c = COUNT(1), hi = MAX(r.priority), s = SUM(r.seq)"
         " RETURN [c, hi, s]", {}, [[5, 9, 10]]),
        ("FOR r IN runs COLLECT p = r.priority INTO g = r._key SORT p DESC RETURN {p, g}", {},
         [{"p": 9, "g": ["r2", "r3"]}, {"p": 5, "g": ["r1", "r4"]}, {"p": 1, "g": ["r5"]}]),
        ("FOR r IN runs RETURN DISTINCT r.status", {}, ["pending", "done", "failed"]),
        ("FOR r IN runs FILTER r.status IN ['done', 'failed'] AND NOT (r.priority < 2) RETURN r._key", {},
         ["r3"]),
        ("FOR r IN runs FILTER r.status NOT IN ['pending'] || r.seq == 0 SORT r._key RETURN r._key", {},
         ["r3", "r4", "r5"]),
        ("RETURN LENGTH(runs)", {}, [5]),
        ("RETURN (FOR r IN runs FILTER r.priority == 9 RETURN r._key)[*]", {}, [["r2", "r3"]]),
        ("FOR x IN [null, true, 0, -1.5, 'a', '', [], [0], {}, {a: 1}, false] SORT x RETURN x", {},
         [None, False, True, -1.5, 0, "", "a", [], [0], {}, {"a": 1}]),
        ("RETURN [1 < '1', null == false, [1,2] < [1,3], {a: 1} == {a: 1.0}, 'b' > 'a']", {},
         [[True, False, True, True, True]]),
        ("RETURN [1 + 2 * 3, 7 / 2, 7 % 3, -2 - -2, '5' + 1, 1 / 0]", {}, [[7, 3.5, 1, 0, 6, None]]),
        ("RETURN [true ? 'y' : 'n', 0 ? 'y' : 'n', null ?: 'fallback', 1 && 2, 0 || 'x', !0]", {},
         [["y", "n", "fallback", 2, "x", True]]),
        ("LET d = {a: {b: [10, 20]}, 'c d': 1}"
         " RETURN [d.a.b[1], d.a.b[-1], d['c d'], d.a.missing.deeper]", {}, [[20, 20, 1, None]]),
        ("RETURN MERGE({a: 1, b: 1}, {b: 2})", {}, [{"a": 1, "b": 2}]),
        ("RETURN [HAS({a: null}, 'a'), IS_NULL(null), NOT_NULL(null, 0, 1), FIRST([]), FIRST([3, 4])]", {},
         [[True, True, 0, None, 3]]),
        ("RETURN [MIN([3, null, 1]), MAX([3, 'a']), SUM([1, 2.5]), COUNT([1, 2]), LENGTH('abc')]", {},
         [[1, "a", 3.5, 2, 3]]),
        ("RETURN [UNSET({a: 1, b: 2, c: 3}, 'a', 'b'), KEEP({a: 1, b: 2}, ['a']), POSITION([1, 2], 2),"
         " POSITION([1, 2], 5, true)]", {}, [[{"c": 3}, {"a": 1}, True, -1]]),
        ("RETURN [TO_NUMBER('12'), TO_NUMBER('x'), TO_NUMBER(true), CONCAT('a', 1, null, 'b'),"
         " APPEND([1], [2, 1], true), APPEND([1], 2)]", {}, [[12, 0, 1, "a1b", [1, 2], [1, 2]]]),
        ("RETURN DATE_NOW() > 1700000000000", {}, [True]),
        ("FOR i IN 1..4 FILTER i % 2 == 0 RETURN i", {}, [2, 4]),
        ("/* comment */ FOR r IN runs // another\n FILTER r._key == @k RETURN r.seq", {"k": "r5"}, [4]),
        ("for r in runs filter r.seq < 1 return r._key", {}, ["r4"]),
        ("FOR r IN runs COLLECT WITH COUNT INTO count RETURN {count}", {}, [{"count": 5}]),
        ("RETURN [DOCUMENT(runs, 'r1').seq, DOCUMENT(@@c, 'r2').seq, DOCUMENT('runs/r3').seq,"
         " DOCUMENT('runs/none')]", {"@c": "runs"}, [[1, 2, 3, None]]),
        ("FOR r IN runs FILTER LIKE(r._key, 'r_') AND r._key LIKE '%5' RETURN r.options.count", {}, [None]),
    ],
)  # fmt: skip
def test_aql_reads(runs: StandardDatabase, query: str, binds: dict[str, Any], expected: list[Any]) -> None:
    assert aql(runs, query, **binds) == expected


@pytest.mark.parametrize(
    ("query", "binds", "status", "num", "fragment"),
    [
        ("FOR r IN runs FILTER RETURN r", {}, 400, 1501, "syntax error, unexpected RETURN keyword"),
        ("FOR r IN runs", {}, 400, 1501, "unexpected end of query string"),
        ("RETURN 'unterminated", {}, 400, 1501, "unterminated string"),
        ("RETURN NO_SUCH_FN(1)", {}, 400, 1540, "usage of unknown function 'NO_SUCH_FN()'"),
        ("RETURN LENGTH(1, 2)", {}, 400, 1541, "invalid number of arguments for function 'LENGTH()'"),
        ("RETURN @missing", {}, 400, 1551, "no value specified for declared bind parameter 'missing'"),
        ("RETURN 1", {"extra": 1}, 400, 1552, "bind parameter 'extra' was not declared"),
        ("FOR x IN nosuchcoll RETURN x", {}, 404, 1203, "collection or view not found: nosuchcoll"),
        ("FOR r IN runs UPDATE r WITH {a: 1} IN runs FOR s IN runs RETURN s", {}, 400, 1579, "access after"),
        ("UPDATE 'nope' WITH {a: 1} IN runs", {}, 404, 1202, "document not found"),
    ],
)
def test_aql_errors(
    runs: StandardDatabase, query: str, binds: dict[str, Any], status: int, num: int, fragment: str
) -> None:
    with pytest.raises(AQLQueryExecuteError) as excinfo:
        aql(runs, query, **binds)
    got_status, got_num, message = server_error(excinfo)
    assert (got_status, got_num) == (status, num)
    assert fragment in message
    assert message.startswith("AQL: ")


def test_aql_cursor_batches(arango: ArangoDouble, db: StandardDatabase) -> None:
    aql(db, "FOR i IN 1..7 INSERT {_key: TO_STRING(i), i} INTO items")
    cursor = db.aql.execute("FOR d IN items SORT d.i RETURN d.i", batch_size=3, count=True)
    assert cursor.has_more() is True
    assert cursor.count() == 7
    assert list(cursor.batch()) == [1, 2, 3]
    assert list(cursor) == [1, 2, 3, 4, 5, 6, 7]
    assert cursor.has_more() is False
    fetches = [r for r in arango.requests if r.path.startswith("/_db/wpk/_api/cursor/")]
    assert [r.method for r in fetches] == ["POST", "POST"]
    assert cursor.statistics()["scanned_full"] == 7

    closing = db.aql.execute("FOR d IN items RETURN d", batch_size=2)
    assert closing.close() is True
    with pytest.raises(ArangoServerError) as excinfo:
        closing.fetch()
    assert server_error(excinfo)[:2] == (404, 1600)
    page = db.aql.execute("FOR d IN items SORT d.i LIMIT 2, 2 RETURN d.i", full_count=True)
    assert list(page) == [3, 4]
    assert page.statistics()["fullCount"] == 7
    small = db.aql.execute("RETURN 1", batch_size=5)
    assert small.id is None and small.close() is None


def test_aql_data_modification(db: StandardDatabase) -> None:
    new = aql(db, "INSERT {_key: 'x', n: 1, nested: {a: 1}} INTO items RETURN NEW")
    assert new[0]["_id"] == "items/x" and new[0]["_rev"]
    both = aql(
        db,
        "UPDATE 'x' WITH {nested: {b: 2}, gone: null} IN items OPTIONS {keepNull: false} RETURN [OLD, NEW]",
    )
    old_doc, new_doc = both[0]
    assert old_doc["nested"] == {"a": 1}
    assert new_doc["nested"] == {"a": 1, "b": 2} and "gone" not in new_doc
    flat = aql(
        db, "UPDATE {_key: 'x'} WITH {nested: {c: 3}} IN items OPTIONS {mergeObjects: false} RETURN NEW"
    )
    assert flat[0]["nested"] == {"c": 3}
    replaced = aql(db, "REPLACE 'x' WITH {only: 1} IN items RETURN NEW")
    assert set(replaced[0]) == {"_key", "_id", "_rev", "only"}
    stale = dict(replaced[0], _rev=old_doc["_rev"])
    with pytest.raises(AQLQueryExecuteError) as excinfo:
        aql(db, "UPDATE @doc WITH {n: 2} IN items OPTIONS {ignoreRevs: false} RETURN NEW", doc=stale)
    assert server_error(excinfo)[:2] == (409, 1200)
    assert aql(db, "UPDATE @doc WITH {n: 2} IN items RETURN NEW.n", doc=stale) == [2]  # ignoreRevs: true
    with pytest.raises(AQLQueryExecuteError) as excinfo:
        aql(db, "INSERT {_key: 'x'} INTO items")
    assert server_error(excinfo)[:2] == (409, 1210)
    assert aql(db, "INSERT {_key: 'x'} INTO items OPTIONS {ignoreErrors: true} RETURN NEW") == []
    assert aql(db, "INSERT {_key: 'x', v: 9} INTO items OPTIONS {overwriteMode: 'update'} RETURN NEW.v") == [
        9
    ]
    removed = aql(db, "FOR d IN items REMOVE d IN items RETURN OLD._key")
    assert removed == ["x"]
    assert db.collection("items").count() == 0


def test_failed_query_writes_nothing(db: StandardDatabase) -> None:
    with pytest.raises(AQLQueryExecuteError):
        aql(db, "FOR k IN ['a', 'b', 'a'] INSERT {_key: k} INTO items")
    assert db.collection("items").count() == 0


# -- stream transactions ---------------------------------------------------------------------


def test_transaction_reads_own_writes_and_isolates_others(db: StandardDatabase) -> None:
    items = db.collection("items")
    items.insert({"_key": "a", "v": 0})
    trx = db.begin_transaction(read="items", write="items")
    assert trx.transaction_status() == "running"
    tcol = trx.collection("items")
    tcol.update({"_key": "a", "v": 1})
    tcol.insert({"_key": "b"})
    assert tcol.get("a")["v"] == 1
    assert list(trx.aql.execute("FOR d IN items SORT d._key RETURN d._key")) == ["a", "b"]
    # others see neither the update nor the insert until commit
    assert items.get("a")["v"] == 0
    assert items.get("b") is None
    assert aql(db, "RETURN LENGTH(items)") == [1]
    reader = db.begin_transaction(read="items")
    assert trx.commit_transaction() is True
    assert items.get("a")["v"] == 1 and items.get("b") is not None
    # a transaction keeps the snapshot it began with
    assert reader.collection("items").get("a")["v"] == 0
    assert reader.collection("items").get("b") is None
    reader.abort_transaction()
    assert trx.transaction_status() == "committed"


def test_abort_discards_writes(db: StandardDatabase) -> None:
    trx = db.begin_transaction(write="items")
    trx.aql.execute("INSERT {_key: 'gone'} INTO items")
    assert trx.abort_transaction() is True
    assert db.collection("items").get("gone") is None
    assert trx.transaction_status() == "aborted"
    with pytest.raises(TransactionCommitError) as excinfo:
        trx.commit_transaction()
    assert server_error(excinfo)[:2] == (409, 1653)


def test_two_transactions_writing_one_document_conflict(db: StandardDatabase) -> None:
    items = db.collection("items")
    items.insert({"_key": "job", "owner": None})
    first = db.begin_transaction(write="items")
    second = db.begin_transaction(write="items")
    first.collection("items").update({"_key": "job", "owner": "first"})
    with pytest.raises(DocumentUpdateError) as excinfo:
        second.collection("items").update({"_key": "job", "owner": "second"})
    assert server_error(excinfo) == (409, 1200, "write-write conflict")
    with pytest.raises(AQLQueryExecuteError) as excinfo:
        second.aql.execute("UPDATE 'job' WITH {owner: 'second'} IN items")
    assert server_error(excinfo)[:2] == (409, 1200)
    # the failed operations left `second` usable; other documents are free
    second.collection("items").insert({"_key": "other"})
    first.commit_transaction()
    # `second` began before `first` committed: its snapshot is stale for `job`
    with pytest.raises(DocumentUpdateError) as excinfo:
        second.collection("items").update({"_key": "job", "owner": "second"})
    assert server_error(excinfo)[:2] == (409, 1200)
    second.commit_transaction()
    assert items.get("job")["owner"] == "first"
    assert items.get("other") is not None


def test_single_operations_conflict_with_open_transactions(db: StandardDatabase) -> None:
    items = db.collection("items")
    items.insert({"_key": "job"})
    trx = db.begin_transaction(write="items")
    trx.collection("items").update({"_key": "job", "x": 1})
    with pytest.raises(DocumentUpdateError) as excinfo:
        items.update({"_key": "job", "x": 2})
    assert server_error(excinfo)[:2] == (409, 1200)
    trx.collection("items").insert({"_key": "u"})
    with pytest.raises(DocumentInsertError) as excinfo:
        items.insert({"_key": "u"})  # the uncommitted key is locked
    assert server_error(excinfo)[:2] == (409, 1200)
    trx.commit_transaction()
    items.update({"_key": "job", "x": 2})
    assert items.get("job")["x"] == 2


def test_transaction_errors(db: StandardDatabase) -> None:
    with pytest.raises(TransactionInitError) as excinfo:
        db.begin_transaction(write="missing")
    assert server_error(excinfo)[:2] == (404, 1203)
    trx = db.begin_transaction(read="items")
    with pytest.raises(DocumentInsertError) as excinfo:
        trx.collection("items").insert({"_key": "r"})
    assert server_error(excinfo)[:2] == (400, 1652)
    trx.abort_transaction()
    from arango.database import TransactionDatabase

    with pytest.raises(Exception) as excinfo:
        TransactionDatabase(db.conn, transaction_id="999999")
    assert excinfo.value.error_code == 1655


def test_idle_stream_transactions_expire_and_free_their_locks() -> None:
    with ArangoDouble(password=PASSWORD, idle_timeout=0.2) as arango:
        client = ArangoClient(hosts=arango.url)
        try:
            sys_db = client.db("_system", username="root", password=PASSWORD)
            sys_db.create_collection("c")
            sys_db.collection("c").insert({"_key": "k"})
            abandoned = sys_db.begin_transaction(write="c")
            abandoned.collection("c").update({"_key": "k", "by": "abandoned"})
            with pytest.raises(DocumentUpdateError):
                sys_db.collection("c").update({"_key": "k", "by": "live"})
            time.sleep(0.3)
            sys_db.collection("c").update({"_key": "k", "by": "live"})
            assert abandoned.transaction_status() == "aborted"
            with pytest.raises(DocumentInsertError) as excinfo:
                abandoned.collection("c").insert({"_key": "late"})
            assert server_error(excinfo)[:2] == (404, 1655)
            assert sys_db.collection("c").get("k")["by"] == "live"
        finally:
            client.close()


def test_exclusive_transaction_makes_other_writers_wait(client: ArangoClient, db: StandardDatabase) -> None:
    trx = db.begin_transaction(exclusive="items")
    trx.collection("items").insert({"_key": "first"})
    done: list[Any] = []

    def writer() -> None:
        own = ArangoClient(hosts=client.hosts[0])
        try:
            own.db("wpk", username="root", password=PASSWORD).collection("items").insert({"_key": "second"})
            done.append(True)
        finally:
            own.close()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and not done
    trx.commit_transaction()
    thread.join(5)
    assert done == [True]
    assert db.collection("items").count() == 2
    holder = db.begin_transaction(exclusive="items")
    with pytest.raises(TransactionInitError) as excinfo:
        db.begin_transaction(write="items", lock_timeout=1)
    assert server_error(excinfo)[:2] == (409, 18)
    holder.abort_transaction()


# -- the claim pattern under concurrency ----------------------------------------------------

CLAIM = (
    "FOR e IN executions FILTER e.status == 'pending' SORT e.priority DESC, e.seq ASC LIMIT 1 "
    "UPDATE e WITH {status: 'claimed', owner: @agent} IN executions OPTIONS {ignoreRevs: false} RETURN NEW"
)


def test_concurrent_claims_each_document_won_once() -> None:
    # each query pauses between reading and writing, so the two agents really race for documents
    with ArangoDouble(password=PASSWORD, aql_write_delay=0.01) as arango:
        client = ArangoClient(hosts=arango.url)
        try:
            client.db("_system", username="root", password=PASSWORD).create_database("wpk")
            _claim_race(arango, client.db("wpk", username="root", password=PASSWORD))
        finally:
            client.close()


def _claim_race(arango: ArangoDouble, db: StandardDatabase) -> None:
    db.create_collection("executions")
    executions = db.collection("executions")
    total = 30
    for seq in range(total):
        executions.insert({"_key": f"e{seq}", "status": "pending", "priority": seq % 3, "seq": seq})
    claims: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    conflicts: dict[str, int] = {"a": 0, "b": 0}
    errors: list[BaseException] = []

    def agent(name: str) -> None:
        own = ArangoClient(hosts=arango.url)
        try:
            agent_db = own.db("wpk", username="root", password=PASSWORD)
            while True:
                try:
                    won = list(agent_db.aql.execute(CLAIM, bind_vars={"agent": name}))
                except AQLQueryExecuteError as err:
                    if err.error_code != 1200:
                        raise
                    conflicts[name] += 1
                    continue
                if not won:
                    return
                claims[name].extend(won)
        except BaseException as err:
            errors.append(err)
        finally:
            own.close()

    threads = [threading.Thread(target=agent, args=(n,)) for n in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    won_keys = [doc["_key"] for name in claims for doc in claims[name]]
    assert sorted(won_keys) == sorted(f"e{seq}" for seq in range(total))
    for name, docs in claims.items():
        for doc in docs:
            assert doc["owner"] == name
            assert executions.get(doc["_key"])["owner"] == name
    # each agent's own claims come out in priority order (highest first, FIFO within a priority)
    for docs in claims.values():
        order = [(-d["priority"], d["seq"]) for d in docs]
        assert order == sorted(order)
    assert sum(conflicts.values()) > 0  # the race happened and the losers were told 409/1200


def test_claim_in_stream_transactions_conflicts_deterministically(db: StandardDatabase) -> None:
    db.create_collection("executions")
    db.collection("executions").insert({"_key": "only", "status": "pending", "priority": 1, "seq": 1})
    a = db.begin_transaction(write="executions")
    b = db.begin_transaction(write="executions")
    assert [d["owner"] for d in a.aql.execute(CLAIM, bind_vars={"agent": "a"})] == ["a"]
    with pytest.raises(AQLQueryExecuteError) as excinfo:
        b.aql.execute(CLAIM, bind_vars={"agent": "b"})
    assert server_error(excinfo)[:2] == (409, 1200)
    a.commit_transaction()
    b.abort_transaction()
    assert aql(db, CLAIM, agent="b") == []
