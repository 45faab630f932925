"""The Starlette app in process (httpx.ASGITransport on trio): the contract documents match the
routes, and the boundary turns every failure into the error shape, never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from wpk.engine.agent import Agent, AgentConfig
from wpk.engine.store import MemoryStore, SQLiteStore
from wpk.engine.store.base import ExecutionStore
from wpk.sidecar import apidoc, jsonbody
from wpk.sidecar.app import create_app
from wpk.sidecar.context import Sidecar
from wpk.sidecar.metrics import Metrics
from wpk.sidecar.openapi import document
from wpk.sidecar.routes import ROUTES

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: a, version: 1.0.0}
spec:
  steps:
    - {id: s, uses: core.noop}
"""


def make(store: ExecutionStore, token: bytes | None = b"t0ken") -> tuple[httpx.AsyncClient, Sidecar]:
    agent = Agent(store, AgentConfig(agent_id="test"))
    sidecar = Sidecar(store=store, agent=agent, metrics=Metrics(), token=token, max_body=1024)
    # As a server does: the app's answer is what the client sees (Starlette re-raises a 500's cause
    # for the server's log after sending the answer).
    transport = httpx.ASGITransport(app=create_app(sidecar), raise_app_exceptions=False)
    headers = {"Authorization": "Bearer t0ken"} if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://wpk", headers=headers), sidecar


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    c, _ = make(MemoryStore())
    async with c:
        yield c


def test_the_openapi_document_lists_exactly_the_routes() -> None:
    served = {
        (route.path, method.lower()) for route in ROUTES for method in route.methods or () if method != "HEAD"
    }
    documented = {(path, method) for path, ops in document()["paths"].items() for method in ops}
    assert served == documented


def test_docs_api_md_is_the_generated_reference() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert apidoc.rewrite(text) == text, "run: python -m wpk.sidecar.apidoc docs/api.md"


async def test_a_store_failure_is_a_500_with_the_error_shape_and_no_detail(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    c, _ = make(store)
    store._db.close()  # the database goes away under the server: every query now raises
    async with c:
        r = await c.get("/executions")
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal",
            "message": "internal error; the server log has the details",
            "details": {},
        }
    }
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower()


async def test_declared_length_over_the_limit_is_refused_unread(client: httpx.AsyncClient) -> None:
    r = await client.post("/validate", content=b"x" * 2048)
    assert r.status_code == 413 and r.json()["error"]["details"] == {}
    r = await client.post("/validate", content=b"{}", headers={"content-length": "nope"})
    assert r.status_code == 400


async def test_405_and_unknown_route_have_the_error_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/execute")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_submission_queues_and_the_agent_runs_it_in_the_same_loop() -> None:
    store = MemoryStore()
    c, sidecar = make(store)
    async with c, trio.open_nursery() as nursery:
        sidecar.nursery = nursery
        await nursery.start(sidecar.agent.run)
        r = await c.post("/execute", json={"wpk_content": RUNBOOK})
        eid = r.json()["execution_id"]
        with trio.fail_after(10):
            while (await c.get(f"/execute/{eid}")).json()["status"] != "completed":
                await trio.sleep(0.01)
        health = (await c.get("/health")).json()
        assert health["agent_state"] == "running" and health["active_executions"] == 0
        sidecar.agent.stop()


@pytest.mark.parametrize(
    "body, problem",
    [
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": ' + b"1" * 41 + b"}", "too large"),
        (b'{"a": "\\udfff"}', "surrogate"),
        (b'{"\\ud800": 1}', "surrogate"),
        (b'{"a": {"b": 1, "b": 2}}', "duplicate"),
        (b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}", "64 levels"),
        (b"[" * 100_000, "levels"),
        (b"\xc3\x28", "UTF-8"),
    ],
)
def test_hostile_json_is_refused_with_one_line(body: bytes, problem: str) -> None:
    with pytest.raises(jsonbody.BadJson) as caught:
        jsonbody.parse_object(body)
    assert problem in caught.value.message and "\n" not in caught.value.message


def test_json_within_the_limits_is_accepted() -> None:
    deep = b'{"a": ' + b"[" * 62 + b"]" * 62 + b"}"
    assert jsonbody.parse_object(deep)["a"]
    assert jsonbody.parse_object(b'{"n": ' + b"9" * 40 + b', "x": 1.5, "s": "\\u00e9"}')["s"] == "é"


async def test_a_body_dripped_too_slowly_is_408_and_a_finished_body_has_no_deadline() -> None:
    from wpk.sidecar.limits import BodyLimit

    async def app(scope: dict, receive: object, send: object) -> None:  # reads the body, then waits
        while True:
            message = await receive()  # type: ignore[operator]
            if not message.get("more_body"):
                break
        assert (await receive())["type"] == "http.disconnect"  # type: ignore[operator]

    async def drip() -> dict:
        await trio.sleep(0.3)
        return {"type": "http.request", "body": b"x", "more_body": True}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    from wpk.sidecar.errors import BodyTimeout

    with pytest.raises(BodyTimeout):  # the error table answers it with 408
        await BodyLimit(app, body_seconds=1.0)({"type": "http", "headers": []}, drip, send)  # type: ignore[arg-type]
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def then_wait() -> dict:
        if messages:
            return messages.pop()
        await trio.sleep(1.5)  # longer than the body deadline: not a timeout any more
        return {"type": "http.disconnect"}

    await BodyLimit(app, body_seconds=1.0)({"type": "http", "headers": []}, then_wait, send)  # type: ignore[arg-type]
    from wpk.sidecar.errors import to_response

    assert to_response(BodyTimeout(30)).status_code == 408


async def test_the_agent_outlives_a_failing_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    agent = Agent(store, AgentConfig(agent_id="a", poll_seconds=0.05))
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run)
        store._db.close()  # every call fails from now on
        agent.wake()
        await trio.sleep(0.3)
        assert agent.state == "running"
        agent.stop()
    assert agent.state == "stopped"
    assert "the store failed: StoreUnavailable" in caplog.text  # one line naming the file (docs/stores.md)
