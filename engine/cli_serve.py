"""`wpk serve`: parse the flags, refuse unsafe combinations, start the agent and its API.

The token comes from `--token-file` or `WPK_TOKEN` and is never printed. Listening on anything
but a loopback address without a token is refused (DESIGN §7).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from .exitcodes import EXIT_OK, EXIT_USAGE

_LABEL = re.compile(r"[A-Za-z0-9_.\-/]{1,63}")


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run an agent with its HTTP API (the sidecar)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4000, help="port (default 4000; 0 picks a free one)")
    p.add_argument(
        "--store",
        default="sqlite:",
        help="sqlite: (default), sqlite:///path.db, arangodb://user@host:8529/db or memory:",
    )
    p.add_argument("--token-file", help="file holding the bearer token (else $WPK_TOKEN)")
    p.add_argument("--labels", default="", help="agent labels, k=v,k2=v2")
    p.add_argument("--capacity", type=int, default=8, help="executions run at once (default 8)")
    p.add_argument("--agent-id", help="agent id (default: hostname-pid)")
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running executions get to finish on SIGTERM (default 30); then they are "
        "handed over (see --past-grace)",
    )
    p.add_argument(
        "--past-grace",
        choices=("handover", "rollback"),
        default="handover",
        help="what happens to executions still running when --grace runs out: handover (default: "
        "stopped without rollback, their leases released for another agent on the same store to "
        "resume) or rollback (cancelled, their rollback policy applies: for a store no other agent "
        "will read, such as SQLite on a pod's emptyDir)",
    )
    p.add_argument("--config", help="agent configuration (YAML): adapter settings")
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="how long a claimed execution stays this agent's without a heartbeat; after that "
        "another agent takes it over (default 30)",
    )
    p.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=10.0,
        help="how often leases are renewed (default 10; keep it well under --lease-seconds)",
    )
    p.add_argument(
        "--aging-rate",
        type=float,
        default=None,
        help="priority points a pending execution gains per minute of waiting (default 10; 0: none)",
    )
    p.set_defaults(func=cmd_serve)


def _err(message: str) -> None:
    print(f"wpk serve: {message}", file=sys.stderr)


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL.fullmatch(key) or not _LABEL.fullmatch(value):
            raise ValueError(f"label {pair!r}: expected key=value (letters, digits, . _ - /)")
        labels[key] = value
    return labels


def read_token(path: str | None) -> bytes | None:
    if path:
        token = open(path, "rb").read(4096).strip()  # noqa: SIM115
        if not token:
            raise ValueError(f"{path}: the token file is empty")
        return token
    env = os.environ.get("WPK_TOKEN", "").strip()
    return env.encode() if env else None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wpk")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    from .agent_config import ConfigError, load_agent_config
    from .limits import configure
    from .store import StoreError, UnknownStore, open_store

    try:  # a bad configuration stops start-up, with file:line:col, before anything listens
        config = load_agent_config(args.config)
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            _err(str(diagnostic))
        return EXIT_USAGE
    configure(config.limits)
    adapter_config = config.adapters
    try:
        labels = parse_labels(args.labels)
        token = read_token(args.token_file)
    except (ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    from wpk.sidecar.server import ServeConfig, is_loopback, run

    if token is None and not is_loopback(args.host):
        _err(f"refusing to listen on {args.host} without a token: give --token-file or set WPK_TOKEN")
        return EXIT_USAGE
    if not 0 <= args.port <= 65535 or args.capacity < 1 or args.grace < 0:
        _err("--port must be 0..65535, --capacity at least 1, --grace at least 0")
        return EXIT_USAGE
    if not 0 < args.heartbeat_seconds < args.lease_seconds:
        _err("--heartbeat-seconds must be more than 0 and less than --lease-seconds")
        return EXIT_USAGE
    from .scheduler import DEFAULT_AGING_RATE, MAX_AGING_RATE

    aging_rate = DEFAULT_AGING_RATE if args.aging_rate is None else args.aging_rate
    if not 0 <= aging_rate <= MAX_AGING_RATE:  # also refuses nan
        _err(f"--aging-rate must be 0..{MAX_AGING_RATE:g} priority points per minute")
        return EXIT_USAGE
    try:
        probe = open_store(args.store)  # fail fast, with one line, on a store that cannot open
    except (UnknownStore, StoreError, OSError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    import trio

    trio.run(probe.aclose)
    from wpk.adapters import registry

    ended = registry.sweep_after_crash()  # before resuming anything: a lost step's processes end
    if ended:
        _err(f"wpk: ended {len(ended)} process(es) left by an agent that died")
    agent_id = args.agent_id or f"{socket.gethostname()}-{os.getpid()}"
    run(
        ServeConfig(
            host=args.host,
            port=args.port,
            store_url=args.store,
            token=token,
            labels=labels,
            capacity=args.capacity,
            agent_id=agent_id,
            grace=args.grace,
            past_grace=args.past_grace,
            adapter_config=adapter_config,
            version=_version(),
            lease_seconds=args.lease_seconds,
            heartbeat_seconds=args.heartbeat_seconds,
            aging_rate=aging_rate,
        )
    )
    return EXIT_OK


__all__ = ["add_subcommands"]
