"""`wpk store prune --older-than 30d`: retention for the execution store (docs/stores.md).

Executions that ended (completed, failed, cancelled, rolled back, rollback failed) longer ago
than the given age go, with their events and logs. Nothing running, pending or rolling back is
touched, so it is safe while agents run on the same store.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from .exitcodes import EXIT_OK, EXIT_USAGE

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `3600s`, `2w` in seconds; ValueError with the fix otherwise."""
    m = _AGE.match(text.strip())
    if not m:
        raise ValueError(f"--older-than {text!r}: give a number and a unit, e.g. 30d, 12h, 90m, 3600s")
    return float(m.group(1)) * _UNIT[m.group(2)]


def add_subcommands(sub: Any) -> None:
    store = sub.add_parser("store", help="look after the execution store")
    actions = store.add_subparsers(dest="store_command", required=True)
    p = actions.add_parser("prune", help="delete executions that ended longer ago than --older-than")
    p.add_argument("--older-than", required=True, help="age, e.g. 30d, 12h, 90m")
    p.add_argument("--store", default="sqlite:", help="store URL (default: the file wpk run uses)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    import trio

    from .store import UnknownStore, open_store

    try:
        age = parse_age(args.older_than)
        store = open_store(args.store)
    except (ValueError, UnknownStore) as exc:
        print(f"wpk: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def prune() -> int:
        try:
            return await store.prune(finished_before=time.time() - age)
        finally:
            await store.aclose()

    count = trio.run(prune)
    print(f"pruned {count} execution(s) that ended more than {args.older_than} ago")
    return EXIT_OK
