"""The one door to a Kubernetes API server: blocking client calls in threads, errors mapped once.

The official client is synchronous and has no default timeout (SECURITY.md), so every call here
runs in `trio.to_thread.run_sync(..., abandon_on_cancel=True)` with `_request_timeout` set: the
step's cancel scope can always end the wait, and the thread itself ends by the client timeout.

Requests go through the client's own transport (`ApiClient.param_serialize` + `call_api`, exactly
what `kubernetes.dynamic` does), so authentication, TLS, proxies and exec/OIDC token refresh are the
library's; what is ours is the shape of the answers: parsed JSON, response size caps, and one
translation of library exceptions and HTTP errors into `AdapterError` (like httpx's
`map_httpcore_exceptions`). Nothing in this module imports `kubernetes` at import time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import trio
import yaml

from ..base import AdapterError
from .resources import Resolver, Resource

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""An API answer larger than this is refused rather than parsed (bound every input)."""

MAX_ERROR_BODY_BYTES = 64 * 1024

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

CONNECT_RETRIES = 2
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF = 0.05  # seconds, doubled after each conflict

Query = Sequence[tuple[str, str]]
T = TypeVar("T")


class KubeClient:
    """One API server as seen through one kubeconfig context (or the in-cluster account)."""

    def __init__(self, api_client: Any, *, request_timeout: float, context: str | None) -> None:
        self._api = api_client
        self.request_timeout = request_timeout
        self.context = context
        self._resolver = Resolver(self._discovery_get)

    async def _discovery_get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def resolve(self, kind: str, api_version: str | None = None) -> Resource:
        """The REST resource for a kind on this server (built-in table first, then discovery)."""
        return await self._resolver.resolve(kind, api_version)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the JSON object the server answered with."""
        data, truncated = await self._call(method, path, query, body, content_type, MAX_RESPONSE_BYTES)
        if truncated:
            raise AdapterError(
                f"k8s: the answer to {method} {path} is larger than {MAX_RESPONSE_BYTES} bytes",
                reason="ResponseTooLarge",
            )
        return parse_json_object(data, f"{method} {path}")

    async def read_bytes(self, path: str, *, query: Query = (), max_bytes: int) -> tuple[bytes, bool]:
        """GET a non-JSON body (pod logs), reading at most `max_bytes`; says whether it was cut."""
        return await self._call("GET", path, query, None, None, max_bytes)

    async def _call(
        self,
        method: str,
        path: str,
        query: Query,
        body: Any,
        content_type: str | None,
        max_bytes: int,
    ) -> tuple[bytes, bool]:
        blocking = functools.partial(self._blocking_call, method, path, query, body, content_type, max_bytes)
        return await trio.to_thread.run_sync(blocking, abandon_on_cancel=True)

    def _blocking_call(
        self,
        method: str,
        path: str,
        query: Query,
        body: Any,
        content_type: str | None,
        max_bytes: int,
    ) -> tuple[bytes, bool]:
        headers = {"Accept": "application/json, */*"}
        if method in {"POST", "PUT", "PATCH", "DELETE"}:
            headers["Content-Type"] = content_type or "application/json"
        try:
            request = self._api.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request, _request_timeout=self.request_timeout)
            raw = response.response
            status = int(raw.status)
            if not 200 <= status <= 299:
                error_body, _ = _read_capped(raw, MAX_ERROR_BODY_BYTES)
                raise status_error(status, str(raw.reason or ""), error_body)
            return _read_capped(raw, max_bytes)
        except AdapterError:
            raise
        except Exception as exc:  # the one translation boundary; unknown errors pass through
            translated = translate_exception(exc, host=self.host, timeout=self.request_timeout)
            if translated is None:
                raise
            raise translated from exc

    def close(self) -> None:
        self._api.close()


def connect(
    *, kubeconfig: str | None, context: str | None, in_cluster: bool, request_timeout: float
) -> KubeClient:
    """Build the client for one context (blocking: reads files, may run a kubeconfig exec plugin).

    The kubeconfig comes from the agent's configuration only (SECURITY.md: a kubeconfig's
    `users[].user.exec` runs commands). Refreshed tokens are not written back to it.
    """
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from urllib3.util.retry import Retry

    configuration = k8s_client.Configuration()
    # Reconnect on refused/reset connections, but never repeat a request whose answer timed out:
    # `_request_timeout` then bounds a call, and a write is never silently sent twice.
    configuration.retries = Retry(
        total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, redirect=0
    )
    try:
        if in_cluster and context is None:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = k8s_client.ApiClient(configuration=configuration)
        else:
            api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                persist_config=False,
                client_configuration=configuration,
            )
    except (OSError, yaml.YAMLError) as exc:
        raise AdapterError(f"k8s: cannot read the kubeconfig: {exc}", reason="ConfigError") from exc
    except Exception as exc:  # same boundary as requests: library errors become AdapterError
        translated = translate_exception(exc, host="(not connected)", timeout=request_timeout)
        if translated is None:
            raise
        raise translated from exc
    return KubeClient(api, request_timeout=request_timeout, context=context)


def _read_capped(raw: Any, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` bytes of a streamed urllib3 response; close it if more remain."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        while True:
            chunk = raw.read(min(64 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                truncated = True
                break
    finally:
        if truncated:
            raw.close()  # unread bytes remain: the connection cannot go back to the pool
        else:
            raw.release_conn()
    data = b"".join(chunks)
    return (data[:limit], True) if truncated else (data, False)


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise AdapterError(f"k8s: {what}: the API server answered with invalid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise AdapterError(f"k8s: {what}: the API server answered with a JSON {type(parsed).__name__}")
    return parsed


def status_error(status: int, http_reason: str, body: bytes) -> AdapterError:
    """An HTTP error answer as an AdapterError carrying the API server's Status message/reason."""
    message = ""
    reason = ""
    causes: list[Any] = []
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        message = str(parsed.get("message") or "")
        reason = str(parsed.get("reason") or "")
        details = parsed.get("details")
        if isinstance(details, dict) and isinstance(details.get("causes"), list):
            causes = details["causes"]
    if not message:
        snippet = body[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status} {http_reason}".strip() + (f": {snippet}" if snippet else "")
    text = f"k8s: {message} ({reason})" if reason else f"k8s: {message}"
    return AdapterError(
        text,
        retryable=is_retryable_status(status),
        reason=reason or f"HTTP{status}",
        details={"status": status, "reason": reason, "causes": causes},
    )


def is_retryable_status(status: int) -> bool:
    """5xx, 429 Too Many Requests and 408 Request Timeout may pass on another attempt; other 4xx not."""
    return status >= 500 or status in {408, 429}


def translate_exception(exc: BaseException, *, host: str, timeout: float) -> AdapterError | None:
    """Library exceptions (urllib3, kubernetes.client, kubernetes.config) as AdapterError.

    Returns None for anything that is not a known library failure, so bugs stay visible.
    """
    import urllib3.exceptions as u3  # urllib3 is a dependency of the kubernetes client
    from kubernetes.client.exceptions import ApiException, OpenApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ApiException):
        if exc.status:  # an HTTP answer raised by the library itself
            body = exc.body.encode("utf-8", "replace") if isinstance(exc.body, str) else b""
            return status_error(int(exc.status), str(exc.reason or ""), body)
        first_line = str(exc.reason or "client error").splitlines()[0]
        return AdapterError(f"k8s: {host}: {first_line}", reason="ClientError")
    if isinstance(exc, ConfigException):
        return AdapterError(f"k8s: configuration: {exc}", reason="ConfigError")
    if isinstance(exc, OpenApiException):
        return AdapterError(f"k8s: {exc}", reason="ClientError")
    if isinstance(exc, u3.MaxRetryError):
        cause = exc.reason if exc.reason is not None else exc
        # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError for old callers' sake.
        if isinstance(cause, u3.TimeoutError) and not isinstance(cause, u3.NewConnectionError):
            return _timeout_error(host, timeout)
        return AdapterError(
            f"k8s: cannot reach the API server at {host}: {_short(cause)}",
            retryable=True,
            reason="ConnectionError",
        )
    if isinstance(exc, u3.TimeoutError):
        return _timeout_error(host, timeout)
    if isinstance(exc, u3.SSLError):
        return AdapterError(f"k8s: TLS error talking to {host}: {_short(exc)}", reason="TLSError")
    if isinstance(exc, u3.HTTPError | ConnectionError):
        return AdapterError(
            f"k8s: connection to {host} failed: {_short(exc)}", retryable=True, reason="ConnectionError"
        )
    return None


def _timeout_error(host: str, timeout: float) -> AdapterError:
    return AdapterError(
        f"k8s: request to {host} timed out after {timeout:g}s", retryable=True, reason="Timeout"
    )


def _short(exc: BaseException) -> str:
    text = str(exc)
    marker = "Failed to establish a new connection: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.strip().rstrip("')\"") or type(exc).__name__


def is_conflict(error: AdapterError) -> bool:
    """A 409 that a fresh read can fix (an optimistic-concurrency clash, not field ownership)."""
    if error.details.get("status") != 409:
        return False
    causes = error.details.get("causes") or []
    # StatusCause serialises its type under "reason" (k8s.io/apimachinery metav1.StatusCause).
    return not any(isinstance(c, dict) and c.get("reason") == "FieldManagerConflict" for c in causes)


async def retry_conflicts(operation: Callable[[], Awaitable[T]], *, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run a read-then-write `operation`, again from its read, when the write meets a 409 Conflict."""
    delay = CONFLICT_BACKOFF
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except AdapterError as error:
            if attempt == attempts or not is_conflict(error):
                raise
        await trio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
