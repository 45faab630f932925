"""The HTTP side: a `ThreadingHTTPServer` on 127.0.0.1 in a background thread.

It authenticates the bearer token (the admin's, or one minted for a ServiceAccount), records every
request (in arrival order of completion), hands the request to `Api` (which authorizes it), and
writes the answer. HTTP/1.1 with keep-alive, because urllib3 (under the
official client) pools connections; stopping the server also shuts the kept-alive sockets so no
thread or socket outlives the double.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Api
from .errors import unauthorized
from .rbac import Authenticator, Identity
from .rest import Request, Response


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request the double received, with the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any  # parsed JSON / YAML when the body was structured, else the text, None when empty
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # the authenticated user name (None: 401)

    @property
    def dry_run(self) -> bool:
        return "All" in self.query.get("dryRun", []) or (
            isinstance(self.body, dict) and "All" in (self.body.get("dryRun") or [])
        )


def _parse_body(raw: bytes, content_type: str | None) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        pass
    if content_type and "yaml" in content_type:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    return text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, authenticator: Authenticator) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.authenticator = authenticator
        self.records: list[RecordedRequest] = []
        self.records_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.stopping = threading.Event()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines; `K8sDouble.requests` is the record."""

    def _authenticate(self) -> Identity | None:
        header = self.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.server.authenticator.authenticate(credential.strip())

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        path = urllib.parse.unquote(split.path)
        content_type = self.headers.get("Content-Type")
        headers = {k.lower(): v for k, v in self.headers.items()}
        user = self._authenticate()
        if user is not None:
            response = self.server.api.handle(Request(self.command, path, query, headers, raw, user))
        else:
            response = Response.error(unauthorized())
        record = RecordedRequest(
            self.command,
            path,
            query,
            content_type,
            _parse_body(raw, content_type),
            response.status,
            headers,
            user.name if user is not None else None,
        )
        with self.server.records_lock:
            self.server.records.append(record)
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is None:
            body = b"" if self.command == "HEAD" else response.body
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in response.stream:
                if self.server.stopping.is_set():
                    break
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class HttpServer:
    """Owns the listening socket and its serving thread."""

    def __init__(
        self, api: Api, authenticator: Authenticator, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._server = _Server((host, port), api, authenticator)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="k8s-double-http",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def stopping(self) -> threading.Event:
        return self._server.stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket; safe whether or not `start` ran."""
        self._server.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.close_connections()
        self._server.server_close()

    def records(self) -> list[RecordedRequest]:
        with self._server.records_lock:
            return list(self._server.records)

    def clear_records(self) -> None:
        with self._server.records_lock:
            self._server.records.clear()
