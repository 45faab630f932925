"""`api.request` against real HTTP(S) servers on 127.0.0.1, started in each test.

The servers are raw trio sockets speaking just enough HTTP/1.1, so a test can misbehave at the
byte level (drip, stall, lie about sizes, bomb). Every test runs with `network`: it records every
DNS lookup the host policy makes and every TCP connect, and refuses any connect to an address
that is not loopback, so even a broken guard cannot send traffic off this machine.
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import pytest
import trio

from wpk.adapters.api import ApiAdapter
from wpk.adapters.api import inputs as api_inputs
from wpk.adapters.base import Adapter, AdapterError, InputError, NotReversible, Outcome, StepContext

MiB = 1 << 20

# ---------------------------------------------------------------------------------------------
# A tiny HTTP/1.1 server


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Seen, trio.abc.Stream], Awaitable[None]]


@dataclass
class Server:
    port: int
    requests: list[Seen] = field(default_factory=list)
    scheme: str = "http"

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


async def read_request(stream: trio.abc.Stream) -> Seen | None:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    return Seen(method, target, headers, rest[:length])


def head(status: int, headers: dict[str, str] | None = None, *, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def respond(stream: trio.abc.Stream, status: int, body: bytes = b"", **headers: str) -> None:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    await stream.send_all(head(status, named, length=len(body)) + body)


async def start_server(
    nursery: trio.Nursery, handler: Handler, *, ssl_context: ssl.SSLContext | None = None
) -> Server:
    server: Server

    async def connection(stream: trio.abc.Stream) -> None:
        if ssl_context is not None:
            stream = trio.SSLStream(stream, ssl_context, server_side=True)
        try:
            seen = await read_request(stream)
            if seen is not None:
                server.requests.append(seen)
                await handler(seen, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up, as it should when it stops reading
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, connection, 0, host="127.0.0.1"))
    server = Server(port=listeners[0].socket.getsockname()[1], scheme="https" if ssl_context else "http")
    return server


def json_handler(payload: Any, status: int = 200, **headers: str) -> Handler:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(
            stream, status, json.dumps(payload).encode(), content_type="application/json", **headers
        )

    return handler


def status_handler(status: int) -> Handler:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(stream, status, b"status body", content_type="text/plain")

    return handler


def routes(table: dict[str, Handler]) -> Handler:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await table[seen.target.split("?")[0]](seen, stream)

    return handler


def redirect(status: int, location: str) -> Handler:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(stream, status, b"", location=location)

    return handler


# ---------------------------------------------------------------------------------------------
# The network guard every test runs under


@dataclass
class Network:
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)
    answers: dict[str, list[list[str]]] = field(default_factory=dict)  # fake DNS; [] = NXDOMAIN


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    net = Network()
    real_getaddrinfo = trio.socket.getaddrinfo
    real_connect = httpcore.TrioBackend.connect_tcp

    async def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        net.lookups.append(name)
        if name in net.answers:
            queue = net.answers[name]
            if not queue:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port, 0, 0) if ":" in ip else (ip, port),
                )
                for ip in answer
            ]
        return await real_getaddrinfo(host, port, family, type, proto, flags)

    async def connect_tcp(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        net.connects.append(host)
        # The backend must hand over a checked IP, never a name; and tests never leave the box.
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test guard: refused a real connection to {host}")
        return await real_connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(trio.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(httpcore.TrioBackend, "connect_tcp", connect_tcp)
    return net


@dataclass
class Ctx:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def context(self, *, key: str = "exec-1/step-1") -> StepContext:
        return StepContext(
            execution_id="exec-1",
            step_id="step-1",
            attempt=1,
            idempotency_key=key,
            dry_run=False,
            log=lambda stream, line: self.lines.append((stream, line)),
        )

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@pytest.fixture
def ctx() -> Ctx:
    return Ctx()


async def call(inputs: dict[str, Any], ctx: Ctx, config: dict[str, Any] | None = None) -> dict[str, Any]:
    adapter = ApiAdapter(config or {})
    try:
        outcome = await adapter.apply("request", inputs, ctx.context())
    finally:
        await adapter.aclose()
    assert outcome.undo is None
    json.dumps(outcome.result)  # results are stored as events: always JSON-serialisable
    return outcome.result


async def failure(inputs: dict[str, Any], ctx: Ctx, config: dict[str, Any] | None = None) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        await call(inputs, ctx, config)
    return info.value


# ---------------------------------------------------------------------------------------------
# The protocol, metadata and configuration


def test_adapter_protocol_and_action_metadata() -> None:
    adapter = ApiAdapter()
    assert isinstance(adapter, Adapter)
    assert adapter.name == "api"
    info = adapter.actions()["request"]
    assert info.uses == "api.request"
    assert not info.read_only
    assert info.is_read_only({"method": "GET"})
    assert info.is_read_only({"method": "head"})
    assert info.is_read_only({})  # the schema default is GET
    assert not info.is_read_only({"method": "POST"})


def test_entry_point_loads_the_adapter() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="wpk.adapters") if e.name == "api"]
    assert entry.load() is ApiAdapter


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"max_response_bytes": "10MiB"}, "max_response_bytes"),
        ({"allow_hosts": "example.com"}, "allow_hosts"),
        ({"deny_netwroks": []}, "unknown configuration key"),
        ({"ca_file": 3}, "ca_file"),
    ],
)
def test_bad_agent_configuration_is_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApiAdapter(config)


async def test_unknown_action_and_bad_inputs(ctx: Ctx) -> None:
    adapter = ApiAdapter()
    with pytest.raises(InputError, match=r"api\.fetch"):
        await adapter.apply("fetch", {"url": "http://127.0.0.1/"}, ctx.context())
    with pytest.raises(InputError, match="either json or body"):
        await adapter.apply("request", {"url": "http://127.0.0.1/", "json": {}, "body": "x"}, ctx.context())
    with pytest.raises(InputError, match="http:// or https://"):
        await adapter.apply("request", {"url": "ftp://127.0.0.1/"}, ctx.context())


async def test_compensate_is_not_reversible(ctx: Ctx) -> None:
    with pytest.raises(NotReversible, match="explicit rollback"):
        await ApiAdapter().compensate("request", {"url": "http://x/"}, Outcome(result={}), ctx.context())


# ---------------------------------------------------------------------------------------------
# Results and statuses


async def test_get_returns_status_headers_json_and_text(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, json_handler({"ok": True, "items": [1, 2]}, X_Custom_Thing="yes"))
    result = await call({"url": server.url("/status"), "query": {"a": 1, "b": [True, "x y"]}}, ctx)
    assert result["status"] == 200
    assert result["json"] == {"ok": True, "items": [1, 2]}
    assert json.loads(result["text"]) == {"ok": True, "items": [1, 2]}
    assert result["headers"]["x-custom-thing"] == "yes"
    assert result["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in result["headers"])
    (seen,) = server.requests
    assert seen.method == "GET"
    assert seen.target == "/status?a=1&b=true&b=x+y"
    assert seen.headers["accept-encoding"] == "gzip, deflate"
    assert re.fullmatch(
        rf"GET http://127\.0\.0\.1:{server.port}/status\?a=1&b=true&b=x\+y -> 200 \(\d+ ms\)", ctx.text
    )


async def test_response_cookies_are_masked_in_the_result(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, json_handler({"ok": True}, Set_Cookie="session=abc123; HttpOnly"))
    result = await call({"url": server.url("/login")}, ctx)
    assert result["headers"]["set-cookie"] == "***"
    assert "abc123" not in json.dumps(result)


async def test_query_is_added_to_the_urls_own(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, json_handler({}))
    await call({"url": server.url("/p?a=1"), "query": {"b": "2"}}, ctx)
    assert server.requests[0].target == "/p?a=1&b=2"


@pytest.mark.parametrize(
    ("content_type", "body", "has_json"),
    [
        ("text/plain", b'{"a": 1}', False),
        ("application/json", b"not json {", False),
        ("application/json", b'{"n": NaN}', False),
        ("application/problem+json; charset=utf-8", b'{"title": "x"}', True),
        ("application/json", b"[" * 5000 + b"]" * 5000, False),  # too deep for the parser: text only
    ],
)
async def test_json_only_when_typed_and_valid(
    nursery: trio.Nursery, ctx: Ctx, content_type: str, body: bytes, has_json: bool
) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(stream, 200, body, content_type=content_type)

    server = await start_server(nursery, handler)
    result = await call({"url": server.url()}, ctx)
    assert ("json" in result) is has_json
    assert result["text"] == body.decode()


async def test_text_uses_the_declared_charset(nursery: trio.Nursery, ctx: Ctx) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(stream, 200, "café".encode("latin-1"), content_type="text/plain; charset=latin-1")

    server = await start_server(nursery, handler)
    assert (await call({"url": server.url()}, ctx))["text"] == "café"


@pytest.mark.parametrize(
    ("status", "retryable"), [(503, True), (500, True), (404, False), (400, False), (429, True), (409, False)]
)
async def test_unexpected_status_fails_with_the_right_retryability(
    nursery: trio.Nursery, ctx: Ctx, status: int, retryable: bool
) -> None:
    server = await start_server(nursery, status_handler(status))
    error = await failure({"url": server.url("/x")}, ctx)
    assert error.reason == "http_status"
    assert error.retryable is retryable
    assert f"returned {status}" in error.message
    assert "expected 2xx" in error.message
    assert error.details["status"] == status
    assert error.details["body"] == "status body"


@pytest.mark.parametrize(
    ("status", "expect", "ok"),
    [
        (404, "4xx", True),
        (404, [200, 404], True),
        (204, 204, True),
        (201, [200, 204], False),
        (200, "4xx", False),
        (301, "3xx", True),
    ],
)
async def test_expect_status(nursery: trio.Nursery, ctx: Ctx, status: int, expect: Any, ok: bool) -> None:
    server = await start_server(nursery, status_handler(status))
    inputs = {"url": server.url(), "expect_status": expect}
    if ok:
        assert (await call(inputs, ctx))["status"] == status
    else:
        assert (await failure(inputs, ctx)).reason == "http_status"


async def test_gzip_and_deflate_responses_are_decoded(nursery: trio.Nursery, ctx: Ctx) -> None:
    payload = {"words": ["alpha"] * 1000}
    encoded: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
        "/gzip": ("gzip", gzip.compress),
        "/deflate": ("deflate", zlib.compress),
    }

    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        encoding, encode = encoded[seen.target]
        body = encode(json.dumps(payload).encode())
        await respond(stream, 200, body, content_type="application/json", content_encoding=encoding)

    server = await start_server(nursery, handler)
    for path in encoded:
        assert (await call({"url": server.url(path)}, ctx))["json"] == payload


async def test_unsupported_content_encoding_is_refused(nursery: trio.Nursery, ctx: Ctx) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await respond(stream, 200, b"\x0b\x02\x80hello\x03", content_encoding="br")

    server = await start_server(nursery, handler)
    error = await failure({"url": server.url()}, ctx)
    assert error.reason == "unsupported_encoding"
    assert "'br'" in error.message


async def test_connection_refused_is_retryable(ctx: Ctx) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure({"url": f"http://127.0.0.1:{port}/"}, ctx)
    assert error.reason == "connect_error"
    assert error.retryable
    assert "-> failed: connect_error" in ctx.text


# ---------------------------------------------------------------------------------------------
# Writes: idempotency key, logs, plans


async def test_idempotency_key_on_writes_only(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, json_handler({"created": True}, status=201))
    await call({"url": server.url(), "method": "POST", "json": {"a": 1}}, ctx)
    await call({"url": server.url()}, ctx)
    await call(
        {"url": server.url(), "method": "PUT", "body": "x", "headers": {"idempotency-key": "mine"}}, ctx
    )
    await call({"url": server.url(), "method": "OPTIONS"}, ctx)
    post, get, put, options = server.requests
    assert post.headers["idempotency-key"] == "exec-1/step-1"
    assert post.headers["content-type"] == "application/json"
    assert json.loads(post.body) == {"a": 1}
    assert "idempotency-key" not in get.headers
    assert put.headers["idempotency-key"] == "mine"
    assert put.body == b"x"
    assert "idempotency-key" not in options.headers


async def test_logs_name_the_request_but_never_header_values(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, json_handler({}))
    await call(
        {
            "url": server.url("/hook?api_key=sekrit-q&page=2"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sekrit-h", "X-Trace": "visible-header"},
            "json": {},
        },
        ctx,
    )
    assert server.requests[0].headers["authorization"] == "Bearer sekrit-h"
    assert "sekrit" not in ctx.text
    assert "visible-header" not in ctx.text
    assert re.fullmatch(
        rf"POST http://127\.0\.0\.1:{server.port}/hook\?api_key=\*\*\*&page=2 -> 200 \(\d+ ms\)", ctx.text
    )


async def test_plan_shows_the_request_with_credentials_hidden_and_sends_nothing(
    nursery: trio.Nursery, ctx: Ctx
) -> None:
    server = await start_server(nursery, json_handler({}))
    plan = await ApiAdapter().plan(
        "request",
        {
            "url": server.url("/deploy?token=abc&env=prod").replace("http://", "http://bot:pw@"),
            "method": "post",
            "headers": {
                "Authorization": "Bearer abc",
                "X-Api-Key": "k",
                "X-Auth-Token": "t",
                "Cookie": "session=s",
                "X-Client-Secret": "s",
                "X-Request-Source": "wpk",
            },
            "query": {"api_key": "q", "dry": False},
            "json": {"version": "1.2.3"},
        },
        ctx.context(),
    )
    assert server.requests == []
    assert plan.summary == f"would POST http://bot:***@127.0.0.1:{server.port}/deploy?token=***&env=prod"
    details = plan.details
    assert details["method"] == "POST"
    headers = details["headers"]
    for name in ("Authorization", "X-Api-Key", "X-Auth-Token", "Cookie", "X-Client-Secret"):
        assert headers[name] == "***"
    assert headers["X-Request-Source"] == "wpk"
    assert headers["Idempotency-Key"] == "exec-1/step-1"  # shown: it is what will be sent
    assert headers["Content-Type"] == "application/json"
    assert details["query"] == [["api_key", "***"], ["dry", "false"]]
    assert details["json"] == {"version": "1.2.3"}
    assert details["expect_status"] == "2xx"
    assert details["host_check"] == "allowed: 127.0.0.1"
    assert "abc" not in json.dumps(details)
    assert plan.inverse is not None and "cannot be undone" in plan.inverse


async def test_plan_fails_for_a_denied_host(ctx: Ctx, network: Network) -> None:
    with pytest.raises(AdapterError) as info:
        await ApiAdapter().plan(
            "request", {"url": "http://169.254.169.254/x", "method": "POST"}, ctx.context()
        )
    assert info.value.reason == "host_denied"
    network.answers["internal.test"] = [["10.0.0.1", "169.254.169.254"]]
    with pytest.raises(AdapterError) as info:
        await ApiAdapter().plan("request", {"url": "http://internal.test/x", "method": "POST"}, ctx.context())
    assert info.value.reason == "host_denied"
    assert network.connects == []


async def test_plan_notes_an_unresolvable_host(ctx: Ctx, network: Network) -> None:
    network.answers["no-such-host.test"] = []
    plan = await ApiAdapter().plan(
        "request", {"url": "http://no-such-host.test/", "method": "DELETE"}, ctx.context()
    )
    assert plan.details["host_check"].startswith("not checked: cannot resolve")


# ---------------------------------------------------------------------------------------------
# Redirects


async def test_redirects_are_not_followed_by_default(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, routes({"/old": redirect(302, "/new"), "/new": json_handler({})}))
    error = await failure({"url": server.url("/old")}, ctx)
    assert error.reason == "http_status"
    assert error.details["status"] == 302
    result = await call({"url": server.url("/old"), "expect_status": 302}, ctx)
    assert result["status"] == 302
    assert result["headers"]["location"] == "/new"
    assert [seen.target for seen in server.requests] == ["/old", "/old"]


async def test_redirects_followed_when_asked(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(
        nursery,
        routes({"/a": redirect(301, "/b"), "/b": redirect(308, "/c?x=1"), "/c": json_handler({"at": "c"})}),
    )
    result = await call({"url": server.url("/a"), "follow_redirects": True}, ctx)
    assert result["json"] == {"at": "c"}
    assert [seen.target for seen in server.requests] == ["/a", "/b", "/c?x=1"]
    assert len(ctx.lines) == 3
    assert "-> 301" in ctx.lines[0][1] and "redirected to /b" in ctx.lines[0][1]


@pytest.mark.parametrize(
    ("status", "method_after"), [(303, "GET"), (302, "GET"), (307, "POST"), (308, "POST")]
)
async def test_redirect_method_rules(nursery: trio.Nursery, ctx: Ctx, status: int, method_after: str) -> None:
    server = await start_server(nursery, routes({"/a": redirect(status, "/b"), "/b": json_handler({})}))
    await call({"url": server.url("/a"), "method": "POST", "json": {"k": 1}, "follow_redirects": True}, ctx)
    first, second = server.requests
    assert second.method == method_after
    if method_after == "POST":
        assert second.body == first.body == b'{"k":1}'
    else:
        assert second.body == b""
        assert "content-type" not in second.headers


async def test_credentials_are_dropped_when_the_host_changes(nursery: trio.Nursery, ctx: Ctx) -> None:
    other = await start_server(nursery, json_handler({}))
    server = await start_server(
        nursery,
        routes(
            {
                "/same": redirect(302, "/end"),
                "/away": redirect(302, other.url("/end")),
                "/end": json_handler({}),
            }
        ),
    )
    headers = {"Authorization": "Bearer t", "Cookie": "c=1", "X-Other": "kept"}
    await call({"url": server.url("/same"), "headers": headers, "follow_redirects": True}, ctx)
    await call({"url": server.url("/away"), "headers": headers, "follow_redirects": True}, ctx)
    same_end = server.requests[1]
    assert same_end.headers["authorization"] == "Bearer t"
    assert same_end.headers["cookie"] == "c=1"
    (away_end,) = other.requests
    assert "authorization" not in away_end.headers
    assert "cookie" not in away_end.headers
    assert away_end.headers["x-other"] == "kept"


async def test_redirect_loops_stop(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, redirect(302, "/again"))
    error = await failure({"url": server.url("/"), "follow_redirects": True}, ctx)
    assert error.reason == "redirect_refused"
    assert "too many redirects" in error.message
    assert len(server.requests) == 11


async def test_redirect_to_another_scheme_is_refused(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, redirect(302, "file:///etc/passwd"))
    error = await failure({"url": server.url("/"), "follow_redirects": True}, ctx)
    assert error.reason == "redirect_refused"


# ---------------------------------------------------------------------------------------------
# Size caps and memory


def big_body_handler(total: int, *, declare: bool) -> Handler:
    chunk = b"z" * 65536

    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await stream.send_all(head(200, {"Content-Type": "text/plain"}, length=total if declare else None))
        for _ in range(total // len(chunk)):
            await stream.send_all(chunk)

    return handler


@pytest.mark.timing
@pytest.mark.parametrize("declare", [False, True])
async def test_a_50_mb_body_is_refused_at_the_cap_with_bounded_memory(
    nursery: trio.Nursery, ctx: Ctx, declare: bool
) -> None:
    server = await start_server(nursery, big_body_handler(50 * MiB, declare=declare))
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = await failure({"url": server.url()}, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == "response_too_large"
    assert not error.retryable
    assert "10 MiB" in error.message
    assert ("Content-Length is" in error.message) is declare
    assert peak < 30 * MiB
    assert time.monotonic() - started < 15


async def test_head_is_not_refused_for_the_length_it_announces(nursery: trio.Nursery, ctx: Ctx) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await stream.send_all(head(200, {"Content-Type": "application/json"}, length=50 * MiB))

    server = await start_server(nursery, handler)
    result = await call({"url": server.url(), "method": "HEAD"}, ctx)
    assert result["status"] == 200
    assert result["headers"]["content-length"] == str(50 * MiB)
    assert result["text"] == ""
    assert "json" not in result


async def test_a_step_may_ask_for_less_but_not_more_than_the_agent(nursery: trio.Nursery, ctx: Ctx) -> None:
    server = await start_server(nursery, big_body_handler(4 * 65536, declare=False))
    assert len((await call({"url": server.url()}, ctx))["text"]) == 4 * 65536
    error = await failure({"url": server.url(), "max_response_bytes": 65536}, ctx)
    assert "64 KiB" in error.message
    error = await failure(
        {"url": server.url(), "max_response_bytes": 1 << 30}, ctx, {"max_response_bytes": 100_000}
    )
    assert error.reason == "response_too_large"
    assert "100000 bytes" in error.message


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed chunk by chunk (never held whole): about 4.5 MB."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(1024)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.timing
async def test_a_gzip_bomb_is_refused_quickly_with_low_memory(
    nursery: trio.Nursery, ctx: Ctx, gzip_bomb: bytes
) -> None:
    assert len(gzip_bomb) < 10 * MiB  # the raw cap alone would let it through

    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await stream.send_all(head(200, {"Content-Encoding": "gzip"}, length=len(gzip_bomb)))
        for offset in range(0, len(gzip_bomb), 65536):
            await stream.send_all(gzip_bomb[offset : offset + 65536])

    server = await start_server(nursery, handler)
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = await failure({"url": server.url()}, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == "response_too_large"
    assert "decoded bytes" in error.message
    assert peak < 30 * MiB
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------------------------
# Deadlines


@pytest.mark.timing
async def test_a_server_that_never_answers_fails_at_the_timeout(nursery: trio.Nursery, ctx: Ctx) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    server = await start_server(nursery, handler)
    started = time.monotonic()
    error = await failure({"url": server.url(), "timeout": "1s"}, ctx)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert error.retryable
    assert "1s" in error.message
    assert 0.9 < elapsed < 6


@pytest.mark.timing
async def test_a_dripping_server_is_cut_at_the_whole_request_deadline(
    nursery: trio.Nursery, ctx: Ctx
) -> None:
    # Each byte arrives well within any per-read timeout; only a whole-request deadline stops it.
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await stream.send_all(head(200, {"Content-Type": "text/plain"}, length=1000))
        for _ in range(1000):
            await stream.send_all(b"d")
            await trio.sleep(0.25)

    server = await start_server(nursery, handler)
    started = time.monotonic()
    error = await failure({"url": server.url(), "timeout": 1}, ctx)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert 0.9 < elapsed < 6


async def test_a_cancelled_request_releases_its_connection(nursery: trio.Nursery, ctx: Ctx) -> None:
    async def handler(seen: Seen, stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    server = await start_server(nursery, handler)
    with trio.move_on_after(0.2) as scope:  # the engine's step timeout, say
        await call({"url": server.url()}, ctx)
    assert scope.cancelled_caught
    # filterwarnings=error turns a leaked socket (ResourceWarning) into a failure of this test


# ---------------------------------------------------------------------------------------------
# The host policy, end to end


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://169.254.43518/",
        "http://[fd00:ec2::254]/",
    ],
)
async def test_the_metadata_address_is_refused_without_any_connection(
    ctx: Ctx, network: Network, url: str
) -> None:
    error = await failure({"url": url}, ctx)
    assert error.reason == "host_denied"
    assert not error.retryable
    assert "host policy" in error.message
    assert network.connects == []
    assert network.lookups == []  # refused on the URL itself, before any DNS


async def test_a_redirect_to_the_metadata_address_is_refused(
    nursery: trio.Nursery, ctx: Ctx, network: Network
) -> None:
    server = await start_server(nursery, redirect(302, "http://169.254.169.254/latest/meta-data/iam"))
    error = await failure({"url": server.url("/"), "follow_redirects": True}, ctx)
    assert error.reason == "host_denied"
    assert "169.254.169.254" in error.message
    assert network.connects == ["127.0.0.1"]
    assert len(server.requests) == 1


async def test_a_redirect_to_a_name_resolving_to_a_denied_address_is_refused(
    nursery: trio.Nursery, ctx: Ctx, network: Network
) -> None:
    network.answers["metadata.test"] = [["169.254.169.254"]]
    server = await start_server(nursery, redirect(307, "http://metadata.test/"))
    error = await failure({"url": server.url("/"), "follow_redirects": True}, ctx)
    assert error.reason == "host_denied"
    assert "169.254.169.254 (metadata.test)" in error.message
    assert network.connects == ["127.0.0.1"]


async def test_resolution_is_checked(nursery: trio.Nursery, ctx: Ctx, network: Network) -> None:
    server = await start_server(nursery, json_handler({}))
    policy = {"deny_networks": ["127.0.0.0/8", "::1/128"]}
    error = await failure({"url": server.url("/", host="localhost")}, ctx, policy)
    assert error.reason == "host_denied"
    assert "(localhost)" in error.message
    assert "deny_networks" in error.message
    assert "localhost" in network.lookups  # it was the resolved address that was refused
    assert network.connects == []
    assert server.requests == []
    # ... and the same server is fine without that policy
    assert (await call({"url": server.url("/", host="localhost")}, ctx))["status"] == 200


async def test_any_denied_address_refuses_the_host(nursery: trio.Nursery, ctx: Ctx, network: Network) -> None:
    server = await start_server(nursery, json_handler({}))
    network.answers["mixed.test"] = [["127.0.0.1", "169.254.169.254"]]
    error = await failure({"url": server.url("/", host="mixed.test")}, ctx)
    assert error.reason == "host_denied"
    assert network.connects == []


async def test_the_checked_address_is_the_one_connected_to(
    nursery: trio.Nursery, ctx: Ctx, network: Network
) -> None:
    # DNS rebinding: the first answer passes the check, later ones would not. There must be no
    # later one: the connection goes to the address that was checked.
    server = await start_server(nursery, json_handler({}))
    network.answers["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    result = await call({"url": server.url("/", host="rebind.test")}, ctx)
    assert result["status"] == 200
    assert network.lookups.count("rebind.test") == 1
    assert network.connects == ["127.0.0.1"]
    assert server.requests[0].headers["host"] == f"rebind.test:{server.port}"


async def test_allow_hosts_limits_where_requests_go(
    nursery: trio.Nursery, ctx: Ctx, network: Network
) -> None:
    server = await start_server(nursery, json_handler({}))
    config = {"allow_hosts": ["127.0.0.1"]}
    assert (await call({"url": server.url()}, ctx, config))["status"] == 200
    error = await failure({"url": server.url(host="localhost")}, ctx, config)
    assert error.reason == "host_denied"
    assert "allow_hosts" in error.message
    assert network.connects == ["127.0.0.1"]


async def test_allow_private_false_refuses_loopback(
    nursery: trio.Nursery, ctx: Ctx, network: Network
) -> None:
    server = await start_server(nursery, json_handler({}))
    error = await failure({"url": server.url()}, ctx, {"allow_private": False})
    assert error.reason == "host_denied"
    assert "loopback" in error.message
    assert network.connects == []


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(
    nursery: trio.Nursery, certificate: tuple[Path, Path]
) -> tuple[Server, list[str | None]]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = record_sni
    server = await start_server(nursery, json_handler({"tls": True}), ssl_context=context)
    return server, names


async def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_ip(
    tls_server: tuple[Server, list[str | None]], certificate: tuple[Path, Path], ctx: Ctx, network: Network
) -> None:
    server, names = tls_server
    result = await call({"url": server.url("/", host="localhost")}, ctx, {"ca_file": str(certificate[0])})
    assert result["json"] == {"tls": True}
    assert names == ["localhost"]  # SNI carries the name ...
    assert network.connects == ["127.0.0.1"]  # ... the socket goes to the checked address


async def test_an_untrusted_certificate_fails_without_retry(
    tls_server: tuple[Server, list[str | None]], ctx: Ctx
) -> None:
    server, _ = tls_server
    error = await failure({"url": server.url("/", host="localhost")}, ctx)
    assert error.reason == "tls_error"
    assert not error.retryable
    assert "certificate verify failed" in error.message


async def test_verify_tls_false_is_allowed_and_logged(
    tls_server: tuple[Server, list[str | None]], ctx: Ctx
) -> None:
    server, _ = tls_server
    result = await call({"url": server.url("/", host="localhost"), "verify_tls": False}, ctx)
    assert result["status"] == 200
    assert "TLS certificate verification is disabled" in ctx.lines[0][1]


# ---------------------------------------------------------------------------------------------
# Input parsing (pure)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("10", 10.0)],
)
def test_parse_timeout(value: Any, seconds: float) -> None:
    assert api_inputs.parse_timeout(value) == seconds


@pytest.mark.parametrize("value", [0, -1, "0s", "soon", "5 minutes", True, float("inf"), None])
def test_parse_timeout_rejects(value: Any) -> None:
    with pytest.raises(InputError):
        api_inputs.parse_timeout(value)


def test_parse_expect_status() -> None:
    expect = api_inputs.parse_expect_status(["2xx", 404])
    assert [s for s in (199, 200, 250, 299, 300, 404, 405) if expect.accepts(s)] == [200, 250, 299, 404]
    assert expect.text == "2xx, 404"
    for bad in ([], 99, 600, "6xx", "ok", True, [200, "x"]):
        with pytest.raises(InputError):
            api_inputs.parse_expect_status(bad)


def test_header_values_cannot_smuggle_lines() -> None:
    with pytest.raises(InputError, match="line break"):
        api_inputs.parse_request(
            {"url": "http://127.0.0.1/", "headers": {"X-A": "1\r\nX-Injected: 2"}}, max_response_bytes=10
        )
    with pytest.raises(InputError, match="not a valid header name"):
        api_inputs.parse_request({"url": "http://127.0.0.1/", "headers": {"X A": "1"}}, max_response_bytes=10)


def test_json_with_nan_is_refused() -> None:
    with pytest.raises(InputError, match="json cannot be encoded"):
        api_inputs.parse_request({"url": "http://127.0.0.1/", "json": float("nan")}, max_response_bytes=10)


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Set-Cookie", True),
        ("X-API-KEY", True),
        ("X-Vault-Token", True),
        ("Client-Secret", True),
        ("Idempotency-Key", False),
        ("Content-Type", False),
        ("Accept", False),
    ],
)
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert api_inputs.is_sensitive(name) is sensitive
