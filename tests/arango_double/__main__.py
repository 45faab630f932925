"""Run the ArangoDB double as its own process: `python -m arango_double [--port N] [--password PW]`.

Prints the URL on the first line of stdout once it listens, then serves until SIGTERM or SIGINT.
Handy for benchmarks (no GIL shared with the client) and for trying wpk by hand:
`PYTHONPATH=tests python -m arango_double --port 8529`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .double import ArangoDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arango_double", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="root")
    parser.add_argument("--password", default="test-password")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="stream transaction idle timeout")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with ArangoDouble(
        username=args.username,
        password=args.password,
        idle_timeout=args.idle_timeout,
        host=args.host,
        port=args.port,
    ) as double:
        print(double.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
