"""The ArangoDB event store against the wire-level double (tests/arango_double).

The store contract itself (rows, events, claims, leases) runs against every store in
tests/test_store_contract.py, the double and a real ArangoDB included. This file covers what
only the ArangoDB store has: its URL, schema created on first use, conflict retries, idempotent
re-flushes, one-line failures without credentials, and keeping the trio loop free.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from arango import ArangoClient
from arango_double import ArangoDouble, Request, Response
from example_services import make_tls_files
from runbooks import workflow

from wpk.engine import MemoryStore, Runner, RunOptions
from wpk.engine.events import Event, EventType
from wpk.engine.state import ExecutionStatus, reduce
from wpk.engine.store import UnknownStore, open_store
from wpk.engine.store.arangodb import (
    EVENTS,
    ArangoStore,
    EventConflict,
    StoreUnavailable,
    event_key,
    parse_url,
)
from wpk.engine.store.base import EventStore

PASSWORD = "pw-" + secrets.token_hex(8)  # distinctive, so a leak into a message would be seen

Reopen = Callable[[], Awaitable[EventStore]]


def ev(seq: int, type_: EventType = EventType.LOG, **data: Any) -> Event:
    return Event(seq=seq, type=type_, time=1_700_000_000.0 + seq, step="s" if seq % 2 else None, data=data)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def arango() -> Iterator[ArangoDouble]:
    with ArangoDouble(password=PASSWORD, users={"reader": "reader-pw"}) as double:
        yield double


def store_url(double: ArangoDouble, database: str = "wpk", user: str = "root") -> str:
    return f"arangodb://{user}@{double.host}:{double.port}/{database}"


def arango_store(double: ArangoDouble, database: str = "wpk", password: str = PASSWORD) -> ArangoStore:
    return ArangoStore(parse_url(store_url(double, database)), password)


@pytest.fixture
def client(arango: ArangoDouble) -> Iterator[Any]:
    client = ArangoClient(hosts=arango.url)
    yield client
    client.close()


# -- URL, open_store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint", "database", "user"),
    [
        ("arangodb://wpk@db.internal:8529/runs", "http://db.internal:8529", "runs", "wpk"),
        ("arangodb://db.internal/runs", "http://db.internal:8529", "runs", "root"),
        ("arangodbs://agent@10.0.0.5:443/wpk", "https://10.0.0.5:443", "wpk", "agent"),
        ("arangodb://u@[::1]:9000/d", "http://[::1]:9000", "d", "u"),
    ],
)
def test_parse_url(url: str, endpoint: str, database: str, user: str) -> None:
    target = parse_url(url)
    assert (target.endpoint, target.database, target.username) == (endpoint, database, user)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("arangodb://root:hunter2@h:8529/db", "WPK_ARANGO_PASSWORD, not in the URL"),
        ("arangodb://root@h:8529", "needs one database name"),
        ("arangodb://root@h:8529/a/b", "needs one database name"),
        ("arangodb:///db", "needs a host"),
        ("arangodb://root@h:99999/db", "invalid port"),
        ("arangodb://root@h/db?x=1", "no query"),
    ],
)
def test_bad_urls_are_one_clear_line(url: str, problem: str) -> None:
    with pytest.raises(UnknownStore) as excinfo:
        open_store(url)
    message = str(excinfo.value)
    assert problem in message and "\n" not in message
    assert "hunter2" not in message


def test_open_store_reads_the_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPK_ARANGO_PASSWORD", "from-env")
    store = open_store("arangodbs://agent@h:8529/wpk")
    assert isinstance(store, ArangoStore)
    assert isinstance(store, EventStore)
    assert store.target.endpoint == "https://h:8529"
    assert store._password == "from-env"
    assert "from-env" not in repr(store)
    assert repr(store) == "ArangoStore('arangodbs://agent@h:8529/wpk')"


def test_event_keys_are_deterministic_and_valid() -> None:
    assert event_key("0b7e6c1e-2f", 12) == "0b7e6c1e-2f:12"
    odd = event_key("has space/and slash", 3)
    assert odd == event_key("has space/and slash", 3)
    assert odd.startswith("h") and odd.endswith(":3") and " " not in odd and "/" not in odd


# -- schema on first use -------------------------------------------------------------------------


async def test_database_collection_and_index_are_created_on_first_use(
    arango: ArangoDouble, client: Any
) -> None:
    sys_db = client.db("_system", username="root", password=PASSWORD)
    assert not sys_db.has_database("fresh")
    before = len(arango.requests)
    store = arango_store(arango, "fresh")
    assert len(arango.requests) == before  # opening does no I/O
    store.append("e", ev(1))
    await store.flush()
    await store.aclose()
    assert sys_db.has_database("fresh")
    db = client.db("fresh", username="root", password=PASSWORD)
    assert db.has_collection(EVENTS)
    (index,) = [i for i in db.collection(EVENTS).indexes() if i["type"] == "persistent"]
    assert index["fields"] == ["execution_id", "seq"] and index["unique"] is True
    assert db.collection(EVENTS).count() == 1
    (stored,) = arango.documents("fresh", EVENTS)
    assert (stored["_key"], stored["execution_id"], stored["seq"]) == ("e:1", "e", 1)


async def test_agents_racing_to_create_the_schema_all_succeed(arango: ArangoDouble) -> None:
    stores = [arango_store(arango) for _ in range(4)]

    async def write(i: int, store: ArangoStore) -> None:
        store.append(f"exec-{i}", ev(1))
        await store.flush()

    async with trio.open_nursery() as nursery:
        for i, store in enumerate(stores):
            nursery.start_soon(write, i, store)
    assert sorted(await stores[0].execution_ids()) == [f"exec-{i}" for i in range(4)]
    for store in stores:
        await store.aclose()


async def test_a_second_agent_writing_the_same_seq_is_refused(arango: ArangoDouble) -> None:
    first, second = arango_store(arango), arango_store(arango)
    first.append("shared", ev(1, line="first"))
    await first.flush()
    second.append("shared", ev(1, line="second"))
    with pytest.raises(EventConflict, match="event 1 is already stored with other content"):
        await second.flush()
    assert [e.data["line"] for e in await first.events("shared")] == ["first"]
    await first.aclose()
    second._pending.clear()
    await second.aclose()


# -- conflicts, retries, idempotence -----------------------------------------------------------


def _is_insert(request: Request) -> bool:
    is_query = request.method == "POST" and request.path.endswith("/_api/cursor")
    return is_query and b"INSERT e INTO" in request.raw


async def test_write_write_conflicts_are_retried(arango: ArangoDouble) -> None:
    store = arango_store(arango)
    store.append("warmup", ev(1))
    await store.flush()
    refusals = 3

    def conflict(request: Request) -> Response | None:
        nonlocal refusals
        if _is_insert(request) and refusals > 0:
            refusals -= 1
            return Response(
                409, {"error": True, "code": 409, "errorNum": 1200, "errorMessage": "write-write conflict"}
            )
        return None

    arango.fail_requests(conflict)
    store.append("e", ev(1))
    await store.flush()
    arango.fail_requests(None)
    inserts = [r for r in arango.requests if r.method == "POST" and b"INSERT e INTO" in r.body]
    assert [r.status for r in inserts[1:]] == [409, 409, 409, 201]
    assert [e.seq for e in await store.events("e")] == [1]
    await store.aclose()


async def test_endless_conflicts_end_in_one_clear_error(arango: ArangoDouble) -> None:
    store = arango_store(arango)
    store.append("warmup", ev(1))
    await store.flush()
    arango.fail_requests(
        lambda r: (
            Response(
                409, {"error": True, "code": 409, "errorNum": 1200, "errorMessage": "write-write conflict"}
            )
            if _is_insert(r)
            else None
        )
    )
    store.append("e", ev(1))
    with pytest.raises(StoreUnavailable) as excinfo:
        await store.flush()
    message = str(excinfo.value)
    assert message.startswith(f"arangodb://root@{arango.host}:{arango.port}/wpk: ArangoDB error: HTTP 409")
    assert "\n" not in message and PASSWORD not in message
    arango.fail_requests(None)
    await store.aclose()  # the kept batch is written on close
    assert [e.seq for e in await arango_store(arango).events("e")] == [1]


@pytest.mark.parametrize("status", [503, 500])
async def test_a_write_retried_after_a_lost_answer_stores_each_event_once(
    arango: ArangoDouble, status: int
) -> None:
    """503: python-arango resends the request itself; 500: the flush fails and a later one resends.
    Either way the resent insert meets its own committed events and stores nothing twice."""
    store = arango_store(arango)
    store.append("warmup", ev(1))
    await store.flush()
    lost = 1

    def commit_then_lose_the_answer(request: Request) -> Response | None:
        nonlocal lost
        if _is_insert(request) and lost:
            lost -= 1
            arango.api.handle(request)  # the write commits ...
            num = 503 if status == 503 else 4
            return Response(
                status, {"error": True, "code": status, "errorNum": num, "errorMessage": "answer lost"}
            )
        return None

    arango.fail_requests(commit_then_lose_the_answer)
    store.append("e", ev(1))
    store.append("e", ev(2))
    if status == 500:
        with pytest.raises(StoreUnavailable, match="HTTP 500"):
            await store.flush()  # ... but the agent never hears of it
    else:
        await store.flush()
    arango.fail_requests(None)
    store.append("e", ev(3))
    await store.flush()
    assert [e.seq for e in await store.events("e")] == [1, 2, 3]
    await store.aclose()


# -- failures: one line, no credentials -----------------------------------------------------------


async def test_unreachable_server_is_one_line(arango: ArangoDouble) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        store = ArangoStore(parse_url(f"arangodb://root@127.0.0.1:{port}/wpk"), PASSWORD, request_timeout=2)
        store.append("e", ev(1))
        with pytest.raises(StoreUnavailable) as excinfo:
            await store.flush()
    message = str(excinfo.value)
    assert message == (
        f"arangodb://root@127.0.0.1:{port}/wpk: cannot reach ArangoDB: connection refused or host unreachable"
    )
    store._pending.clear()
    await store.aclose()


async def test_a_server_that_does_not_answer_meets_the_request_deadline(arango: ArangoDouble) -> None:
    release = threading.Event()
    arango.fail_requests(lambda request: release.wait(5) and None)
    store = ArangoStore(parse_url(store_url(arango)), PASSWORD, request_timeout=0.3)
    with pytest.raises(StoreUnavailable) as excinfo:
        await store.execution_ids()
    release.set()
    assert str(excinfo.value).endswith(": cannot reach ArangoDB: no answer within 0.3s")
    arango.fail_requests(None)
    await store.aclose()


async def test_refused_credentials_are_one_line_without_the_password(arango: ArangoDouble) -> None:
    store = arango_store(arango, password="wrong-" + PASSWORD)
    with pytest.raises(StoreUnavailable) as excinfo:
        await store.execution_ids()
    message = str(excinfo.value)
    assert message == (
        f"arangodb://root@{arango.host}:{arango.port}/wpk: ArangoDB refused the credentials of user 'root' "
        "(check WPK_ARANGO_PASSWORD)"
    )
    assert PASSWORD not in message


@pytest.mark.parametrize("method", ["GET", "POST"])  # the GETs of connecting, the POSTs of AQL
async def test_a_server_answering_503_is_one_line(arango: ArangoDouble, method: str) -> None:
    busy = {"error": True, "code": 503, "errorNum": 503, "errorMessage": "service unavailable"}
    store = arango_store(arango)
    await store.execution_ids()  # connected and prepared: from here on only AQL POSTs
    arango.fail_requests(lambda request: Response(503, busy) if request.method == method else None)
    fresh = store if method == "POST" else arango_store(arango)  # a fresh store starts with GETs
    with pytest.raises(StoreUnavailable) as excinfo:
        await fresh.execution_ids()
    assert str(excinfo.value) == (
        f"arangodb://root@{arango.host}:{arango.port}/wpk: cannot reach ArangoDB: "
        "the server answered 503 on every try"
    )
    arango.fail_requests(None)
    assert await fresh.execution_ids() == []  # and works once the server does
    await store.aclose()
    await fresh.aclose()


async def test_a_user_who_cannot_create_the_database_is_told_so(arango: ArangoDouble) -> None:
    store = ArangoStore(parse_url(store_url(arango, "newdb", user="reader")), "reader-pw")
    with pytest.raises(StoreUnavailable) as excinfo:
        await store.execution_ids()
    message = str(excinfo.value)
    assert "database 'newdb' does not exist and user 'reader' cannot create it" in message
    assert "HTTP 403" in message and "reader-pw" not in message


async def test_arangodbs_talks_tls_and_trusts_the_configured_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # must not override WPK_ARANGO_CA_FILE
    tls = make_tls_files(tmp_path / "tls")
    with ArangoDouble(password=PASSWORD, certfile=tls.cert_file, keyfile=tls.key_file) as double:
        url = f"arangodbs://root@127.0.0.1:{double.port}/wpk"
        untrusting = ArangoStore(parse_url(url), PASSWORD)
        with pytest.raises(StoreUnavailable) as excinfo:
            await untrusting.execution_ids()
        assert str(excinfo.value) == (
            f"{url}: cannot reach ArangoDB: TLS handshake failed "
            "(set WPK_ARANGO_CA_FILE to trust a private CA)"
        )
        await untrusting.aclose()
        store = ArangoStore(parse_url(url), PASSWORD, ca_file=str(tls.ca_file))
        store.append("e", ev(1))
        await store.flush()
        assert [e.seq for e in await store.events("e")] == [1]
        await store.aclose()
        assert [r.status for r in double.requests if b"INSERT e INTO" in r.body] == [201]


# -- the trio loop stays free ----------------------------------------------------------------------


async def test_server_calls_do_not_block_the_trio_loop(arango: ArangoDouble) -> None:
    store = arango_store(arango)
    store.append("warmup", ev(1))
    await store.flush()
    release = threading.Event()

    def slow(request: Request) -> Response | None:
        if _is_insert(request):
            release.wait(10)
        return None

    arango.fail_requests(slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 20:
                release.set()  # the loop ran 20 times while the insert waited in the server
            await trio.sleep(0.005)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        store.append("e", ev(1))
        await store.flush()
        nursery.cancel_scope.cancel()
    assert ticks >= 20
    arango.fail_requests(None)
    await store.aclose()


# -- the runner on the ArangoDB store ---------------------------------------------------------------


async def test_a_run_on_the_arango_store_records_what_the_memory_store_records(arango: ArangoDouble) -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: core.echo, with: {message: one}}
          - {id: b, uses: core.echo, with: {message: two}, needs: [a]}
          - {id: c, uses: core.noop, needs: [b]}
    """)
    results = []
    for store in (MemoryStore(), arango_store(arango)):
        runner = Runner(
            wf, params={}, secrets={}, store=store, options=RunOptions(seed=7, execution_id="run-1")
        )
        await runner.run()
        events = await store.events("run-1")
        assert reduce(events).status is ExecutionStatus.COMPLETED
        results.append([(e.seq, str(e.type), e.step, json.dumps(e.data, sort_keys=True)) for e in events])
        await store.aclose()
    memory, arango_events = results
    assert [r[:3] for r in arango_events] == [r[:3] for r in memory]


# -- from the command line, against the double in its own process --------------------------------


@pytest.fixture
def double_process() -> Iterator[str]:
    tests = Path(__file__).parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "arango_double", "--password", PASSWORD],
        cwd=tests,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_wpk_run_stores_its_events_in_arangodb(double_process: str, tmp_path: Path) -> None:
    hostport = double_process.removeprefix("http://")
    url = f"arangodb://root@{hostport}/cli"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WPK_ARANGO_PASSWORD": PASSWORD}
    examples = Path(__file__).parent.parent / "examples"
    wpk = Path(sys.executable).parent / "wpk"
    captured = {"capture_stdout": True, "capture_stderr": True, "check": False, "env": env}
    done = await trio.run_process([str(wpk), "run", str(examples / "hello"), "--store", url], **captured)
    assert done.returncode == 0, done.stderr.decode()
    assert PASSWORD.encode() not in done.stdout + done.stderr
    store = ArangoStore(parse_url(url), PASSWORD)
    (execution,) = await store.execution_ids()
    events = await store.events(execution)
    assert events[0].type is EventType.EXECUTION_CREATED
    assert events[-1].type is EventType.EXECUTION_CLOSED
    assert reduce(events).status is ExecutionStatus.COMPLETED
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    await store.aclose()
    with_password = f"arangodb://root:{PASSWORD}@{hostport}/cli"
    refused = await trio.run_process(
        [str(wpk), "run", str(examples / "hello"), "--store", with_password], **captured
    )
    assert refused.returncode == 2
    assert refused.stderr.decode().strip().endswith("not in the URL (URLs end up in process lists and logs)")
    assert PASSWORD.encode() not in refused.stderr
