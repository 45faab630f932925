"""The HTTP API adapter: `api.request`.

One request (plus redirect hops when asked) through httpx on trio, with the protections an agent
that calls URLs written by others needs (SECURITY.md, "HTTP adapter"):

- one deadline for the whole exchange (`trio.fail_after`): httpx's own timeout is per read, so a
  server dripping a byte a second would otherwise hold the step for as long as it likes;
- a cap on the bytes received and on the bytes decoded (`bounded_body`), so neither a huge body
  nor a gzip bomb can exhaust memory;
- the agent's host policy (`hostpolicy`), checked on the URL and again on every resolved address
  at connect time (`api_transport`), for the first request and every redirect hop;
- redirects are followed here, not by httpx, so each hop is checked and credentials are dropped
  when the host changes.

Library exceptions become `AdapterError` in one place, `_translated`.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

import httpx
import trio

from wpk.adapters.api import inputs as api_inputs
from wpk.adapters.api import transport as api_transport
from wpk.adapters.api.inputs import RequestSpec, display_url
from wpk.adapters.base import (
    ActionInfo,
    AdapterError,
    InputError,
    NotReversible,
    Outcome,
    Plan,
    StepContext,
    infos_from_schemas,
)
from wpk.adapters.guards import bounded_body, hostpolicy

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})  # "try again later", said by the server itself
PLAN_RESOLVE_SECONDS = 5.0
CONFIG_KEYS = hostpolicy.POLICY_KEYS | {"max_response_bytes", "ca_file"}
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_BODY_HEADERS = ("content-type", "content-length", "transfer-encoding", "content-encoding")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Received:
    method: str
    url: str
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    charset: str | None


class _RedirectRefused(Exception):
    pass


class ApiAdapter:
    """`api.request`: built from the agent's `api` configuration section, never from a runbook."""

    name = "api"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = config if config is not None else _EMPTY
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(f"api adapter: unknown configuration key(s): {', '.join(unknown)}")
        self.policy = hostpolicy.HostPolicy.from_config(
            {k: v for k, v in config.items() if k in hostpolicy.POLICY_KEYS}
        )
        ceiling = config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise ValueError("api adapter: max_response_bytes must be a positive integer")
        self.max_response_bytes = ceiling
        ca_file = config.get("ca_file")
        if ca_file is not None and not isinstance(ca_file, str):
            raise ValueError("api adapter: ca_file must be a path")
        self._ca_file = ca_file
        self._ssl: dict[bool, ssl.SSLContext] = {}
        self._actions: dict[str, ActionInfo] | None = None

    # -- the Adapter protocol -------------------------------------------------------------------

    def actions(self) -> Mapping[str, ActionInfo]:
        if self._actions is None:
            import wpk.schemas

            self._actions = infos_from_schemas("api", wpk.schemas.action_schemas())
        return self._actions

    async def apply(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Outcome:
        spec = self._spec(action, inputs)
        if not spec.verify_tls:
            ctx.log(
                "info",
                "warning: TLS certificate verification is disabled for this request (verify_tls: false)",
            )
        started = trio.current_time()
        try:
            received = await self._exchange(spec, ctx)
        except AdapterError as exc:
            ctx.log(
                "info", f"{spec.method} {display_url(spec.url)} -> failed: {exc.reason} ({_ms(started)} ms)"
            )
            raise
        result = _result(received)
        if not spec.expect.accepts(received.status):
            raise _status_error(received, spec, result.get("text", ""))
        return Outcome(result=result)

    async def plan(self, action: str, inputs: Mapping[str, Any], ctx: StepContext) -> Plan:
        """Describe the request without sending it; a host the policy denies fails the plan too."""
        spec = self._spec(action, inputs)
        with _translated(spec):
            hostpolicy.check_url(spec.url, self.policy)
        note = await self._plan_resolution(spec)
        headers = _outgoing_headers(spec, ctx)
        details: dict[str, Any] = {
            "method": spec.method,
            "url": display_url(spec.url),
            "headers": api_inputs.redact_headers(headers),
            "query": api_inputs.redact_query(spec.query),
            "expect_status": spec.expect.text,
            "timeout_seconds": spec.timeout,
            "follow_redirects": spec.follow_redirects,
            "verify_tls": spec.verify_tls,
            "max_response_bytes": spec.max_response_bytes,
        }
        if spec.has_json:
            details["json"] = spec.json_body
        elif spec.text_body is not None:
            details["body"] = spec.text_body
        if note:
            details["host_check"] = note
        return Plan(
            summary=f"would {spec.method} {display_url(spec.url)}",
            details=details,
            inverse="an HTTP request cannot be undone automatically",
        )

    async def compensate(
        self, action: str, inputs: Mapping[str, Any], outcome: Outcome, ctx: StepContext
    ) -> None:
        raise NotReversible(
            "api.request has no automatic inverse: an HTTP call cannot be undone; "
            "give the step an explicit rollback (uses/with)"
        )

    async def aclose(self) -> None:
        """Nothing to release: each request uses its own client, closed when it ends."""

    # -- internals ------------------------------------------------------------------------------

    def _spec(self, action: str, inputs: Mapping[str, Any]) -> RequestSpec:
        if action != "request":
            raise InputError(f"unknown action api.{action} (the api adapter has only api.request)")
        return api_inputs.parse_request(inputs, max_response_bytes=self.max_response_bytes)

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        if verify not in self._ssl:
            self._ssl[verify] = api_transport.ssl_context(verify=verify, ca_file=self._ca_file)
        return self._ssl[verify]

    async def _plan_resolution(self, spec: RequestSpec) -> str | None:
        """Resolve the host as the real request would; an unresolvable name is noted, not fatal."""
        url = httpx.URL(spec.url)
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        with _translated(spec), trio.move_on_after(min(spec.timeout, PLAN_RESOLVE_SECONDS)) as scope:
            try:
                addresses = await hostpolicy.resolve_checked(host, port, self.policy)
            except hostpolicy.ResolveError as exc:
                return f"not checked: {exc}"
            return f"allowed: {', '.join(addresses)}"
        assert scope.cancelled_caught
        return f"not checked: resolving {host!r} timed out"

    async def _exchange(self, spec: RequestSpec, ctx: StepContext) -> _Received:
        """Send the request (and redirect hops) under one deadline; always close the client."""
        client = httpx.AsyncClient(
            transport=api_transport.checking_transport(self.policy, self._ssl_context(spec.verify_tls)),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(spec.timeout),
        )
        try:
            with _translated(spec), trio.fail_after(spec.timeout):
                return await self._hops(client, spec, ctx)
        finally:
            # Closing only closes sockets, but must not be skipped by a cancel (leaked sockets),
            # nor hang on a dead TLS peer: shielded, with its own short deadline.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 2.0):
                await client.aclose()

    async def _hops(self, client: httpx.AsyncClient, spec: RequestSpec, ctx: StepContext) -> _Received:
        method, content = spec.method, spec.content
        url = httpx.URL(spec.url).copy_merge_params(list(spec.query)) if spec.query else httpx.URL(spec.url)
        headers = _outgoing_headers(spec, ctx)
        for _hop in range(MAX_REDIRECTS + 1):
            # Early, DNS-free refusal with a clear message; the guarantee is the connect-time
            # check in api_transport, which every new connection passes through.
            hostpolicy.check_url(str(url), self.policy)
            started = trio.current_time()
            request = client.build_request(method, url, headers=list(headers), content=content)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if spec.follow_redirects and response.status_code in REDIRECT_STATUSES and location:
                    ctx.log(
                        "info",
                        f"{method} {display_url(str(url))} -> {response.status_code} ({_ms(started)} ms), "
                        f"redirected to {display_url(location)}",
                    )
                    target = _redirect_target(url, location)
                    method, content, headers = _redirected(response.status_code, method, content, headers)
                    if _origin_changed(url, target):
                        headers = [(k, v) for k, v in headers if k.lower() not in _CREDENTIAL_HEADERS]
                    url = target
                    continue
                if method != "HEAD" and response.status_code not in (204, 304):  # these carry no body
                    bounded_body.check_declared_length(
                        response.headers.get("content-length"), spec.max_response_bytes
                    )
                body = await _read_body(response, spec.max_response_bytes)
            finally:
                await response.aclose()
            ctx.log("info", f"{method} {display_url(str(url))} -> {response.status_code} ({_ms(started)} ms)")
            return _Received(
                method=method,
                url=str(url),
                status=response.status_code,
                reason=response.reason_phrase,
                headers=api_inputs.response_headers(response.headers.items()),
                body=body,
                charset=response.charset_encoding,
            )
        raise _RedirectRefused(f"too many redirects (more than {MAX_REDIRECTS})")


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    """Read the raw body chunk by chunk through `BoundedBody`; stop at the first chunk too many."""
    body = bounded_body.BoundedBody(limit=limit, content_encoding=response.headers.get("content-encoding"))
    chunks = response.aiter_raw()
    try:
        async for chunk in chunks:
            body.feed(chunk)
    except (bounded_body.BodyTooLarge, bounded_body.BodyDecodeError):
        await _abandon(response, chunks)
        raise
    return body.finish()


async def _abandon(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Stop reading a body for good: close the connection, then finish the iterator.

    httpx (0.28) streams through a chain of nested async generators; closing the outer one leaves
    the inner ones suspended, and trio warns when they are garbage-collected (encode/httpx#3593).
    Pulling once more after the connection is closed makes the innermost read fail, and that
    error unwinds and finishes every generator in the chain now, deterministically.
    """
    await response.aclose()
    with contextlib.suppress(Exception):
        for _ in range(64):  # at most what h11 had already buffered, then the read fails
            await anext(chunks)


# -- pure helpers -------------------------------------------------------------------------------


def _ms(started: float) -> int:
    return round((trio.current_time() - started) * 1000)


def _outgoing_headers(spec: RequestSpec, ctx: StepContext) -> list[tuple[str, str]]:
    """The step's headers plus ours: Accept-Encoding we can decode, and Idempotency-Key on writes."""
    headers = list(spec.headers)
    names = {name.lower() for name, _ in headers}
    if "accept-encoding" not in names:
        headers.append(("Accept-Encoding", "gzip, deflate"))
    if "user-agent" not in names:
        headers.append(("User-Agent", "wpk"))
    if not spec.read_only and "idempotency-key" not in names and ctx.idempotency_key:
        headers.append(("Idempotency-Key", ctx.idempotency_key))
    return headers


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:
        raise _RedirectRefused(f"redirect to an invalid location: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise _RedirectRefused(f"redirect to a {target.scheme!r} URL refused (only http and https)")
    return target


def _redirected(
    status: int, method: str, content: bytes | None, headers: list[tuple[str, str]]
) -> tuple[str, bytes | None, list[tuple[str, str]]]:
    """What the next hop sends: 303 (and 301/302 after a POST) becomes a GET without a body."""
    to_get = (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")
    if not to_get:
        return method, content, headers
    return "GET", None, [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]


def _origin_changed(old: httpx.URL, new: httpx.URL) -> bool:
    def port(url: httpx.URL) -> int:
        return url.port or (443 if url.scheme == "https" else 80)

    downgrade = old.scheme == "https" and new.scheme == "http"
    return old.raw_host != new.raw_host or port(old) != port(new) or downgrade


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _result(received: _Received) -> dict[str, Any]:
    """`{status, headers, json?, text}`: json only when the body is JSON by type and by content."""
    try:
        text = received.body.decode(received.charset or "utf-8", errors="replace")
    except LookupError:
        text = received.body.decode("utf-8", errors="replace")
    result: dict[str, Any] = {"status": received.status, "headers": received.headers, "text": text}
    if _is_json_type(received.headers.get("content-type", "")) and text.strip():
        # Not valid JSON (or absurdly deep, or a huge integer): no `json`; `text` still has it.
        with contextlib.suppress(ValueError, RecursionError):
            result["json"] = json.loads(text, parse_constant=_reject_constant)
    return result


def _status_error(received: _Received, spec: RequestSpec, text: str) -> AdapterError:
    status = received.status
    return AdapterError(
        f"{received.method} {display_url(received.url)} returned {status} {received.reason}".rstrip()
        + f"; expected {spec.expect.text}",
        retryable=status >= 500 or status in RETRYABLE_CLIENT_STATUSES,
        reason="http_status",
        details={"status": status, "body": text[:500]},
    )


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _translated(spec: RequestSpec) -> Iterator[None]:
    """The one boundary where httpx, trio, policy and body errors become `AdapterError`."""
    where = f"{spec.method} {display_url(spec.url)}"
    try:
        yield
    except trio.TooSlowError:
        raise AdapterError(
            f"{where} timed out after {spec.timeout:g}s (deadline for the whole request)",
            retryable=True,
            reason="timeout",
        ) from None
    except hostpolicy.HostDenied as exc:
        raise AdapterError(
            exc.message,
            retryable=False,
            reason="host_denied",
            details={"host": exc.host, "address": exc.address},
        ) from None
    except bounded_body.BodyTooLarge as exc:
        raise AdapterError(f"{where}: {exc}", retryable=False, reason="response_too_large") from None
    except bounded_body.UnsupportedEncoding as exc:
        raise AdapterError(f"{where}: {exc}", retryable=False, reason="unsupported_encoding") from None
    except bounded_body.BodyDecodeError as exc:
        raise AdapterError(f"{where}: {exc}", retryable=False, reason="decode_error") from None
    except _RedirectRefused as exc:
        raise AdapterError(f"{where}: {exc}", retryable=False, reason="redirect_refused") from None
    except httpx.TimeoutException as exc:
        raise AdapterError(f"{where} timed out: {exc}", retryable=True, reason="timeout") from None
    except httpx.ConnectError as exc:
        tls = _tls_failure(exc)
        if tls is not None:
            raise AdapterError(f"{where}: TLS failure: {tls}", retryable=False, reason="tls_error") from None
        raise AdapterError(
            f"{where}: cannot connect: {exc}", retryable=True, reason="connect_error"
        ) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise AdapterError(
            f"{where}: invalid request: {exc}", retryable=False, reason="invalid_input"
        ) from None
    except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
        raise AdapterError(
            f"{where}: connection failed: {exc}", retryable=True, reason="network_error"
        ) from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise AdapterError(f"{where}: {exc}", retryable=False, reason="http_error") from None
