"""A real `wpk serve` process on loopback for the tests and the benchmark: start, wait, stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

WPK = [sys.executable, "-m", "wpk.engine.cli"]
_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    token: str | None
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def client(self, *, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {}
        token = token if token is not None else self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self.reader is not None:
            self.reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)


def start_server(
    tmp: Path,
    *args: str,
    token: str | None = "test-token-0123456789",
    env: dict[str, str] | None = None,
    store: str | None = None,
) -> Server:
    """`wpk serve --port 0` with a token file; returns once it is listening (its URL read from stderr)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WPK_")}
    full_env["XDG_STATE_HOME"] = str(tmp / "state")
    full_env.update(env or {})
    argv = [*WPK, "serve", "--port", "0", "--store", store or f"sqlite:///{tmp / 'wpk.db'}", *args]
    if token is not None:
        token_file = tmp / "token"
        token_file.write_text(token + "\n")
        argv += ["--token-file", str(token_file)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=full_env)
    server = Server(proc, "", token)
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line)
            m = _LISTENING.search(line)
            if m and not found.is_set():
                server.url = m.group(1)
                found.set()
        found.set()

    server.reader = threading.Thread(target=read, daemon=True)
    server.reader.start()
    if not found.wait(30) or not server.url:
        proc.kill()
        raise RuntimeError(f"wpk serve did not start: {server.log}")
    return server


def wait_status(client: httpx.Client, execution_id: str, statuses: set[str], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = client.get(f"/execute/{execution_id}").json()
        if record["status"] in statuses:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} still {record['status']}: {record}")
        time.sleep(0.05)


__all__ = ["Server", "signal", "start_server", "wait_status"]
