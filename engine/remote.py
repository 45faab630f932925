"""A client of a running sidecar (httpx), for `wpk executions --url …` and `wpk submit`.

It speaks the API of DESIGN §7 and returns the same JSON shapes the local store operations
give, so the command line prints both the same way. Every refusal becomes a `RemoteError`
carrying the server's error code and message (never the token).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:4000"


class RemoteError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


class SidecarClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(
                0, "unreachable", f"cannot reach {self.url}: {type(exc).__name__}: {exc}"
            ) from None
        return self._decode(response)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                raise RemoteError(
                    response.status_code,
                    str(error.get("code", "error")),
                    str(error.get("message", "")),
                    error.get("details") or {},
                )
            raise RemoteError(response.status_code, "http_error", f"HTTP {response.status_code}")
        if body is None:
            raise RemoteError(response.status_code, "bad_response", "the server did not answer with JSON")
        return body

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """Any JSON call of the API (`wpk agents`, `wpk queue`)."""
        return self._call(method, path, params=dict(params or {}))

    def submit(
        self,
        content: str,
        params: Mapping[str, Any],
        *,
        priority: int | None,
        dry_run: bool,
        not_before: float | None = None,
    ) -> Any:
        payload: dict[str, Any] = {"wpk_content": content, "parameters": dict(params), "dry_run": dry_run}
        if priority is not None:
            payload["priority"] = priority
        if not_before is not None:
            payload["not_before"] = not_before
        return self._call("POST", "/execute", json=payload)

    def show(self, execution_id: str) -> Any:
        return self._call("GET", f"/execute/{execution_id}")

    def list(self, params: Mapping[str, Any]) -> Any:
        return self._call("GET", "/executions", params={k: v for k, v in params.items() if v is not None})

    def logs(self, execution_id: str, offset: int, limit: int = 1000) -> Any:
        return self._call("GET", f"/logs/{execution_id}", params={"offset": offset, "limit": limit})

    def follow(self, execution_id: str, offset: int) -> Iterator[dict[str, Any]]:
        try:
            with self._http.stream(
                "GET", f"/logs/{execution_id}", params={"offset": offset, "follow": "true"}, timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                for line in response.iter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise RemoteError(0, "unreachable", f"lost {self.url}: {type(exc).__name__}: {exc}") from None

    def cancel(self, execution_id: str) -> Any:
        return self._call("POST", f"/cancel/{execution_id}")

    def rollback(self, execution_id: str) -> Any:
        return self._call("POST", f"/rollback/{execution_id}")
