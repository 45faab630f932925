"""An httpx transport that connects only to addresses the host policy has checked.

Checking a URL and then letting the HTTP library resolve the name again leaves a window: DNS can
answer differently the second time (rebinding). So the check happens where the connection is
made: `CheckingBackend.connect_tcp` resolves the host once (`hostpolicy.resolve_checked`), refuses
if any address is denied, and opens the TCP connection to the checked IP. httpcore still uses the
host name for TLS SNI, certificate verification and the Host header, because it passes the
origin's name to `start_tls` independently of the address we connected to.

Every connection the client opens goes through here, including every redirect hop. Unix sockets
and proxies are not offered: both would bypass the policy.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx
import trio

from wpk.adapters.guards import hostpolicy


class CheckingBackend(httpcore.AsyncNetworkBackend):
    """A network backend that resolves, checks, then connects to the checked address."""

    def __init__(
        self, policy: hostpolicy.HostPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with trio.move_on_after(float("inf") if timeout is None else timeout) as scope:
            try:
                addresses = await hostpolicy.resolve_checked(host, port, self._policy)
            except hostpolicy.ResolveError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out")
        failure: httpcore.ConnectError | None = None
        for address in addresses:  # all were checked; try them in the resolver's order
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise hostpolicy.HostDenied("connections over Unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


def checking_transport(
    policy: hostpolicy.HostPolicy, ssl_context: ssl.SSLContext
) -> httpx.AsyncHTTPTransport:
    """An `AsyncHTTPTransport` whose connection pool uses `CheckingBackend`.

    httpx offers no public way to choose the network backend, so the pool it builds is replaced
    by an identical one with ours (`_pool` is the one attribute its request path uses). The
    SSRF tests fail loudly if a future httpx stops routing connections through it.
    """
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=10,
        max_keepalive_connections=5,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        retries=0,
        network_backend=CheckingBackend(policy),
    )
    return transport


def ssl_context(*, verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """The TLS settings: `ca_file`, else the system trust store (certifi's when the system has
    none, as in slim containers), or no verification at all."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is None and not context.cert_store_stats()["x509_ca"]:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    return context
