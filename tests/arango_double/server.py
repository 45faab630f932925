"""The HTTP side: a `ThreadingHTTPServer` on 127.0.0.1 in a background thread, HTTP basic auth.

HTTP/1.1 with keep-alive (python-arango pools connections through requests); stopping the
server also shuts kept-alive sockets so no thread or socket outlives the double. Every request
is recorded (method, path, status, transaction header) for tests that check the wire traffic.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Api, Request, Response
from .errors import unauthorized


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    status: int
    trx_id: str | None
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, users: dict[str, str], admin: str) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.users = users
        self.admin = admin
        self.records: list[RecordedRequest] = []
        self.records_lock = threading.Lock()
        self.fault: Any = None  # a callable(Request) -> Response | None, for fault injection
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

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
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines; `ArangoDouble.requests` is the record."""

    def _user(self) -> str | None:
        """The user HTTP basic auth proves, or None."""
        scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw_user, sep, password = base64.b64decode(credential.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        user = raw_user.decode("utf-8", "replace")
        expected = self.server.users.get(user)
        if sep and expected is not None and hmac.compare_digest(password, expected.encode()):
            return user
        return None

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        user = self._user()
        request = Request(
            self.command, split.path, query, headers, raw, user or "", user == self.server.admin
        )
        response: Response | None = None
        if user is None:
            response = Response(401, unauthorized().body())
        elif self.server.fault is not None:
            response = self.server.fault(request)
        if response is None:
            response = self.server.api.handle(request)
        with self.server.records_lock:
            self.server.records.append(
                RecordedRequest(
                    self.command, split.path, response.status, headers.get("x-arango-trx-id"), raw
                )
            )
        self._send(response)

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Server", "ArangoDB")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            # headers and body in one write: two small writes meet the client's delayed ACK
            self._headers_buffer.append(b"\r\n" + (payload if self.command != "HEAD" else b""))
            self.flush_headers()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class HttpServer:
    def __init__(
        self,
        api: Api,
        users: dict[str, str],
        admin: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._server = _Server((host, port), api, users, admin)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="arango-double-http",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def set_fault(self, fault: Any) -> None:
        self._server.fault = fault

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.close_connections()
        self._server.server_close()

    def records(self) -> list[RecordedRequest]:
        with self._server.records_lock:
            return list(self._server.records)
