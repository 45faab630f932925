"""A fork server for mutation runs: pytest's start-up paid once, not once per mutant.

mutmut runs its test command once per mutant. Most of that command's cost on this code base is
starting Python and importing pytest, its plugins, trio, hypothesis, Jinja2 and httpx. `serve`
imports all of those once (never `wpk` itself, which must be read fresh from the mutated files),
then forks a child per request that runs `pytest.main(args)` in the requested directory; the
light `client` (stdlib only) is what mutmut calls. The exit code is pytest's, except that a
run stopped at collection (2, or 4 with node ids: the mutant broke the import) is reported as
1, a failure, which is the only code mutmut 2 counts as a killed mutant.

    python zygote.py serve SOCKET &
    python -I -S zygote.py client SOCKET -x -q tests/test_x.py
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys


def serve(path: str) -> None:
    import importlib

    for name in (
        "pytest", "_pytest.python", "_pytest.assertion.rewrite",
        "hypothesis", "trio", "trio.testing", "jinja2", "jinja2.sandbox",
        "httpx", "yaml", "jsonschema", "fastjsonschema", "regex", "starlette", "hypercorn",
        # pytest's plugins from entry points: the schemathesis one alone costs ~0.5 s CPU to import
        "schemathesis.pytest.plugin", "pytest_trio.plugin", "anyio.pytest_plugin", "_hypothesis_pytestplugin",
    ):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _preload_dependencies_of("wpk")
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(_read(conn))
            pid = os.fork()
            if pid == 0:  # the child: run pytest on fresh imports of the code under test
                server.close()
                code = 3
                try:
                    os.chdir(request["cwd"])
                    sys.path.insert(0, os.path.join(request["cwd"], "tests"))
                    if not os.environ.get("ZYGOTE_VERBOSE"):
                        null = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(null, 1)
                        os.dup2(null, 2)
                    import pytest

                    # hypothesis is pre-imported, so pytest cannot rewrite its asserts: say so quietly
                    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
                    code = int(pytest.main([*quiet, *request["args"]]))
                    # mutmut 2 counts only exit 1 as "killed". A mutant that breaks the import
                    # (`PENDING = None` in a StrEnum raises TypeError) makes pytest stop at
                    # collection with 2 (interrupted), or 4 (usage error) when the selection
                    # names tests by node id, which mutmut would count as survived.
                    if code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
                        code = 1
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    raise
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            code = _wait(pid, conn)
            if code is not None:
                conn.sendall(str(code if code >= 0 else 128 - code).encode())


def _preload_dependencies_of(package: str) -> None:
    """Import every module of `package`, keep the libraries they pulled in, forget the package.

    The server starts before mutmut edits anything, so this reads the unmutated files; dropping
    them from sys.modules makes each child import the package afresh, from the mutated file,
    while the libraries it uses (kubernetes, sqlite, the adapters' clients ...) are already loaded.
    """
    import importlib
    import pkgutil

    with contextlib.suppress(Exception):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            with contextlib.suppress(Exception):
                importlib.import_module(info.name)
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _wait(pid: int, conn: socket.socket) -> int | None:
    """The child's exit code; None (child killed) if the client hung up first (mutmut's timeout)."""
    import select
    import signal

    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select([conn], [], [], 0.02)
        if readable and not conn.recv(1):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None


def _read(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def client(path: str, args: list[str]) -> int:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    conn.sendall(json.dumps({"cwd": os.getcwd(), "args": args}).encode() + b"\n")
    reply = b""
    while True:
        chunk = conn.recv(64)
        if not chunk:
            break
        reply += chunk
    return int(reply or b"3")  # the server already reports pytest's 2 and 4 as 1 (see above)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2], sys.argv[3:]))
