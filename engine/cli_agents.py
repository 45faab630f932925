"""`wpk agents list|show|pause|resume|drain` and `wpk queue`.

On the local store by default (the file `wpk serve` uses when they share it; a pause or drain
is recorded there and the agent applies it at its next heartbeat), or on a running sidecar with
`--url` (token from `--token` or `WPK_TOKEN`). Exit codes: 0 done, 1 refused (unknown agent,
a change the lifecycle does not allow), 2 usage or an unreachable server.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .cli_executions import Refused, _guard, _print_json, _target
from .exitcodes import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def add_subcommands(sub: Any) -> None:
    ag = sub.add_parser("agents", help="list agents; pause, resume or drain one")
    cmds = ag.add_subparsers(dest="action", required=True, parser_class=type(ag))
    p = cmds.add_parser("list", help="every agent registered in the store, with its state")
    _target(p)
    p.set_defaults(func=cmd_agents_list)
    p = cmds.add_parser("show", help="one agent")
    p.add_argument("agent_id")
    _target(p)
    p.set_defaults(func=cmd_agents_show)
    for action, helptext in (
        ("pause", "claim nothing new, finish what runs"),
        ("resume", "claim again"),
        ("drain", "claim nothing new, finish what runs within --grace, hand the rest over, then stop"),
    ):
        p = cmds.add_parser(action, help=helptext)
        p.add_argument("agent_id")
        _target(p)
        p.set_defaults(func=cmd_agents_control, request=action)
    p = sub.add_parser("queue", help="pending executions in claim order, with effective priority")
    p.add_argument("--limit", type=int, default=100, help="at most this many (1..1000, default 100)")
    p.add_argument(
        "--aging-rate",
        type=float,
        default=None,
        help="local store only: the rate the agents use (default 10 points per minute)",
    )
    _target(p)
    p.set_defaults(func=cmd_queue)


def _local(args: argparse.Namespace, fn: Any, *fn_args: Any, **kwargs: Any) -> Any:
    import trio

    from .agent_control import AgentNotFound
    from .scheduler import IllegalTransition
    from .store import UnknownStore, open_store

    try:
        store = open_store(args.store)
    except (UnknownStore, OSError) as exc:
        raise Refused(str(exc), EXIT_USAGE) from None

    async def go() -> Any:
        try:
            return await fn(store, *fn_args, **kwargs)
        finally:
            await store.aclose()

    try:
        return trio.run(go)
    except AgentNotFound as exc:
        raise Refused(str(exc), EXIT_INVALID) from None
    except IllegalTransition as exc:
        raise Refused(exc.message, EXIT_INVALID) from None


def _remote(args: argparse.Namespace, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
    from .cli_executions import _refused
    from .remote import RemoteError, SidecarClient

    with SidecarClient(args.url, args.token or os.environ.get("WPK_TOKEN") or None) as client:
        try:
            return client.request(method, path, params=params)
        except RemoteError as exc:
            raise _refused(exc) from None


def _agent_line(a: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items())) or "-"
    requested = f" (requested: {a['requested']})" if a.get("requested") else ""
    head = f"{a['agent_id']:<30}  {a['state']:<8}  {a['capacity']:>3}  {labels:<24}"
    return f"{head}  {a['heartbeat_at']}{requested}"


@_guard
def cmd_agents_list(args: argparse.Namespace) -> int:
    from . import agent_control

    agents = (
        _remote(args, "GET", "/agents")["agents"] if args.url else _local(args, agent_control.list_agents)
    )
    if args.format == "json":
        _print_json({"agents": agents})
        return EXIT_OK
    print(f"{'AGENT':<30}  {'STATE':<8}  CAP  {'LABELS':<24}  HEARTBEAT")
    for a in agents:
        print(_agent_line(a))
    return EXIT_OK


@_guard
def cmd_agents_show(args: argparse.Namespace) -> int:
    from . import agent_control

    agent = (
        _remote(args, "GET", f"/agents/{args.agent_id}")
        if args.url
        else _local(args, agent_control.get_agent, args.agent_id)
    )
    if args.format == "json":
        _print_json(agent)
    else:
        print(_agent_line(agent))
    return EXIT_OK


@_guard
def cmd_agents_control(args: argparse.Namespace) -> int:
    from . import agent_control

    agent = (
        _remote(args, "POST", f"/agents/{args.agent_id}/{args.request}")
        if args.url
        else _local(args, agent_control.control, args.agent_id, args.request)
    )
    if args.format == "json":
        _print_json(agent)
    elif agent.get("requested"):
        print(
            f"agent {agent['agent_id']}: {agent['state']}, {args.request} requested (at its next heartbeat)"
        )
    else:
        print(f"agent {agent['agent_id']}: {agent['state']}")
    return EXIT_OK


@_guard
def cmd_queue(args: argparse.Namespace) -> int:
    from . import agent_control
    from .scheduler import DEFAULT_AGING_RATE, MAX_AGING_RATE

    if not 1 <= args.limit <= 1000:
        raise Refused("--limit must be 1..1000", EXIT_USAGE)
    if args.url:
        if args.aging_rate is not None:
            raise Refused("--aging-rate is the server's with --url", EXIT_USAGE)
        listing = _remote(args, "GET", "/queue", {"limit": args.limit})
    else:
        rate = DEFAULT_AGING_RATE if args.aging_rate is None else args.aging_rate
        if not 0 <= rate <= MAX_AGING_RATE:
            raise Refused(f"--aging-rate must be 0..{MAX_AGING_RATE:g}", EXIT_USAGE)
        listing = _local(args, agent_control.queue, aging_rate=rate, limit=args.limit)
    if args.format == "json":
        _print_json(listing)
        return EXIT_OK
    print(f"{'#':>4}  {'EXECUTION':<36}  PRI  {'EFFECTIVE':>9}  {'WORKFLOW':<30}  WAITING")
    for e in listing["executions"]:
        print(
            f"{e['position']:>4}  {e['execution_id']:<36}  {e['priority']:>3}"
            f"  {e['effective_priority']:>9.2f}  {e['workflow_id']:<30}  {e['waiting_reason'] or '-'}"
        )
    print(f"({listing['total']} pending; aging {listing['aging_rate']:g} points per minute)")
    return EXIT_OK


__all__ = ["add_subcommands"]
