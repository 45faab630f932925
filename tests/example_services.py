"""Stand-ins for the outside world the example runbooks talk to, for the end-to-end tests.

The examples call a chat webhook, a metrics API, a database platform API, an incident tracker
and a service health endpoint, all over HTTPS (their URL parameters insist on it). Here one real
TLS server on 127.0.0.1 plays all of them: its certificate comes from a throwaway CA made with the
`openssl` command, and wpk trusts that CA only through the agent configuration file
(`adapters.api.ca_file`), exactly as an operator would configure an internal CA. Every request the
server receives is recorded (method, path, query, headers, parsed body) so a test can assert what
wpk sent, in which order, with which credentials.

`run_wpk` runs the installed `wpk` console script in a subprocess with a minimal environment,
as a user would; nothing here imports the engine.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
WPK = Path(sys.executable).parent / "wpk"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# -- a throwaway certificate authority ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


_SERVER_EXTENSIONS = """\
[ext]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it (P-256 keys: fast to make).

    Extensions are spelled out (key identifiers, a critical basicConstraints) so the chain also
    passes the strict X.509 checks of newer Python and OpenSSL releases.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.cnf"
    ext.write_text(_SERVER_EXTENSIONS, encoding="utf-8")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem, "-days", "2",
         "-subj", "/CN=wpk e2e test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial", "2",
         "-out", pem, "-days", "2", "-extfile", ext, "-extensions", "ext"],
    ]  # fmt: skip
    for argv in commands:
        subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=30)
    return TlsFiles(ca_file=ca_pem, cert_file=pem, key_file=key)


# -- the HTTPS API double ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request the fake API received. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, else the text, None when empty

    @property
    def is_write(self) -> bool:
        return self.method not in READ_METHODS


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)


Handler = Callable[[SeenRequest], Reply]


class FakeApi:
    """An HTTPS server on 127.0.0.1 answering from a route table; records every request.

    Routes are `(METHOD or "*", exact path) -> handler`; anything else gets 404. Handlers run on
    the server's threads, so the state they close over should be simple assignments.
    """

    def __init__(self, tls: TlsFiles) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-api", daemon=True
        )
        self.port = int(self._server.server_address[1])
        self.url = f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def route(self, method: str, path: str, handler: Handler | Reply) -> None:
        """Answer `method path` (method "*" for any) with a fixed Reply or a handler's."""
        if isinstance(handler, Reply):
            fixed = handler
            self._routes[(method.upper(), path)] = lambda _request: fixed
        else:
            self._routes[(method.upper(), path)] = handler

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def writes(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.is_write]

    def to(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path]

    def _record_and_answer(self, request: SeenRequest) -> Reply:
        with self._lock:
            self._seen.append(request)
        handler = self._routes.get((request.method, request.path)) or self._routes.get(("*", request.path))
        return handler(request) if handler is not None else Reply(404, {"error": "no such route"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the recorded requests are the log."""

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                parts = urllib.parse.urlsplit(self.path)
                request = SeenRequest(
                    method=self.command,
                    path=parts.path,
                    query=urllib.parse.parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = api._record_and_answer(request)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        return _Handler


# -- agent configuration, environment, the CLI ----------------------------------------------------


def write_agent_config(
    path: Path,
    *,
    ca_file: Path,
    kubeconfig: Path | None = None,
    context: str = "double",
    poll_interval: float = 0.05,
) -> Path:
    """The agent configuration `wpk --config` reads: trust the test CA, reach the k8s double.

    A short `poll_interval` keeps `k8s.wait` steps quick against the double's fast controller.
    """
    adapters: dict[str, Any] = {"api": {"ca_file": str(ca_file)}}
    if kubeconfig is not None:
        adapters["k8s"] = {"kubeconfig": str(kubeconfig), "context": context, "poll_interval": poll_interval}
    path.write_text(yaml.safe_dump({"adapters": adapters}, sort_keys=False), encoding="utf-8")
    return path


def wpk_env(home: Path, secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: no KUBECONFIG, no WPK_* of the developer's, HOME in a temp dir."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_STATE_HOME": str(home / ".state"),
    }
    for name, value in (secrets or {}).items():
        env[f"WPK_SECRET_{name.upper()}"] = value
    return env


@dataclass(frozen=True, slots=True)
class WpkResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def record(self) -> dict[str, Any]:
        """The JSON execution record (`--format json`); fails the test with both streams if absent."""
        try:
            value = json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"no JSON record from {self.argv}:\n{self.stdout}\n{self.stderr}") from None
        assert isinstance(value, dict), value
        return value

    @property
    def statuses(self) -> dict[str, str]:
        return {step["id"]: step["status"] for step in self.record["steps"]}

    def step(self, step_id: str) -> dict[str, Any]:
        for step in self.record["steps"]:
            if step["id"] == step_id:
                return dict(step)
        raise AssertionError(f"no step {step_id!r} in the record")

    def describe(self) -> str:
        command = " ".join(self.argv)
        return f"{command}\n-> exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def wpk_argv(
    command: str,
    package: Path | str,
    params: Mapping[str, object] | None = None,
    *,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [str(WPK), command, str(package)]
    for name, value in (params or {}).items():
        text = json.dumps(value) if isinstance(value, list | dict | bool) else str(value)
        argv += ["-p", f"{name}={text}"]
    return argv + list(extra)


def run_wpk(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 60.0) -> WpkResult:
    started = time.monotonic()
    done = subprocess.run(
        list(argv), capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=timeout, check=False
    )
    return WpkResult(
        argv=list(argv),
        returncode=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        seconds=time.monotonic() - started,
    )


# -- Kubernetes objects --------------------------------------------------------------------------


def deployment(name: str, image: str, replicas: int, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
