"""`wpk executions list|show|logs|cancel|rollback` and `wpk submit`.

On the local store by default (the same file `wpk run` writes), or on a running sidecar with
`--url` (token from `--token` or `WPK_TOKEN`). Both give the same shapes: the local side calls
the operations in `executions.py` that the sidecar's routes call. Exit codes are `wpk run`'s:
0 done (an execution that completed, a rollback that rolled back), 1 an execution that did not
complete or a refusal (unknown id, not allowed in its status), 2 a usage error, an invalid
package or parameters, or a server that cannot be reached or refuses the token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .exitcodes import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def _target(p: argparse.ArgumentParser, *, store: bool = True) -> None:
    if store:
        p.add_argument("--store", default="sqlite:", help="local store (default: the file wpk run uses)")
    p.add_argument("--url", help="a running sidecar, e.g. http://127.0.0.1:4000 (instead of the local store)")
    p.add_argument("--token", help="bearer token for --url (default: $WPK_TOKEN)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def add_subcommands(sub: Any) -> None:
    ex = sub.add_parser("executions", help="list, show, follow, cancel and roll back executions")
    cmds = ex.add_subparsers(dest="action", required=True, parser_class=type(ex))
    p = cmds.add_parser("list", help="executions, newest first")
    p.add_argument("--status", help="comma-separated statuses")
    p.add_argument("--workflow", help="workflow name or name-version")
    p.add_argument("--since", help="ISO 8601 time or epoch seconds")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    _target(p)
    p.set_defaults(func=cmd_list)
    for name, helptext, func in (
        ("show", "the execution record", cmd_show),
        ("cancel", "cancel a pending or running execution", cmd_cancel),
        ("rollback", "roll back a completed, failed or cancelled execution", cmd_rollback),
    ):
        p = cmds.add_parser(name, help=helptext)
        p.add_argument("execution_id")
        _target(p)
        if name == "rollback":
            p.add_argument("--config", help="agent configuration (YAML): adapter settings, local store only")
        p.set_defaults(func=func)
    p = cmds.add_parser("logs", help="log lines (from --offset); --follow until the execution ends")
    p.add_argument("execution_id")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--follow", action="store_true")
    _target(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("submit", help="queue a package on a sidecar (or a local store an agent serves)")
    p.add_argument("package", help="package folder or runbook file")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--params-file", help="YAML or JSON mapping of parameters")
    p.add_argument("--priority", type=int, help="0..100 (default: the runbook's spec.priority)")
    p.add_argument("--dry-run", action="store_true")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", help="no agent claims it before this time (ISO 8601, no zone: UTC)")
    when.add_argument(
        "--in", dest="in_", metavar="DURATION", help="no agent claims it before now + 10m, 2h …"
    )
    p.add_argument("--wait", action="store_true", help="wait for the execution to end; exit as wpk run")
    p.add_argument("--store", help="queue into this local store instead of a sidecar")
    p.add_argument("--url", help="the sidecar (default http://127.0.0.1:4000)")
    p.add_argument("--token", help="bearer token (default: $WPK_TOKEN)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_submit)


# -- where the operations run ----------------------------------------------------------------


class Refused(Exception):
    """An operation refused, with the exit code that says how."""

    def __init__(self, message: str, code: int, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.lines = lines or []


class Local:
    """The operations on a store in this process (each call one `trio.run`)."""

    def __init__(self, url: str) -> None:
        from .store import UnknownStore, open_store

        try:
            self.store = open_store(url)
        except (UnknownStore, OSError) as exc:
            raise Refused(str(exc), EXIT_USAGE) from None
        from .executions import WorkflowCache

        self.cache = WorkflowCache()

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import trio

        from .execute import PackageInvalid
        from .executions import Conflict, NotFound
        from .params import ParamError
        from .secrets import MissingSecrets

        async def go() -> Any:
            try:
                return await fn(*args, **kwargs)
            finally:
                await self.store.aclose()

        try:
            return trio.run(go)
        except NotFound as exc:
            raise Refused(str(exc), EXIT_INVALID) from None
        except Conflict as exc:
            raise Refused(exc.message, EXIT_INVALID) from None
        except PackageInvalid as exc:
            raise Refused("the runbook is not valid", EXIT_USAGE, [str(d) for d in exc.diagnostics]) from None
        except ParamError as exc:
            raise Refused("invalid parameters", EXIT_USAGE, exc.problems) from None
        except MissingSecrets as exc:
            raise Refused(f"secrets not set: {', '.join(exc.names)}", EXIT_USAGE) from None

    def list(self, query: Mapping[str, Any]) -> Any:
        from .executions import list_executions
        from .store import ExecutionQuery

        statuses = tuple(s for s in (query.get("status") or "").split(",") if s)
        since = _since(query.get("since"))
        cursor = query.get("cursor")
        q = ExecutionQuery(
            statuses=statuses,
            workflow=query.get("workflow"),
            since=since,
            limit=int(query.get("limit") or 50),
            cursor=int(cursor) if cursor else None,
        )

        async def go() -> Any:
            page = await list_executions(self.store, q)
            return {
                "executions": [r.summary() for r in page.rows],
                "next_cursor": None if page.next is None else str(page.next),
            }

        return self._run(go)

    def show(self, execution_id: str) -> Any:
        from .executions import record

        return self._run(record, self.store, self.cache, execution_id)

    def logs(self, execution_id: str, offset: int) -> Any:
        from .executions import read_logs

        async def go() -> Any:
            lines = await read_logs(self.store, execution_id, offset, 100_000)
            return {
                "execution_id": execution_id,
                "lines": [line.as_dict() for line in lines],
                "next_offset": offset + len(lines),
            }

        return self._run(go)

    def follow(self, execution_id: str, offset: int, emit: Callable[[dict[str, Any]], None]) -> None:
        from .executions import follow_logs

        async def go() -> None:
            async for line in follow_logs(self.store, execution_id, offset, poll=0.2):
                emit(line.as_dict())

        self._run(go)

    def cancel(self, execution_id: str) -> Any:
        from .executions import cancel

        async def go() -> Any:
            return {"execution_id": execution_id, "status": await cancel(self.store, execution_id)}

        return self._run(go)

    def rollback(self, execution_id: str, config: Mapping[str, Any]) -> Any:
        from .executions import rollback

        return self._run(rollback, self.store, self.cache, execution_id, adapter_config=config)

    def submit(
        self,
        text: str,
        path: str,
        params: Mapping[str, Any],
        priority: int | None,
        dry: bool,
        not_before: float | None = None,
    ) -> Any:
        from .executions import submit

        async def go() -> Any:
            done = await submit(
                self.store,
                self.cache,
                text,
                params,
                path=path,
                priority=priority,
                dry_run=dry,
                not_before=not_before,
            )
            return {"execution_id": done.execution_id, "status": done.status}

        return self._run(go)


def _since(raw: str | None) -> float | None:
    if not raw:
        return None
    from datetime import datetime

    try:
        return float(raw) if raw.replace(".", "", 1).isdigit() else datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise Refused(f"--since {raw!r}: use an ISO 8601 time or epoch seconds", EXIT_USAGE) from None


class Remote:
    def __init__(self, url: str, token: str | None) -> None:
        from .remote import SidecarClient

        self.client = SidecarClient(url, token)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        from .remote import RemoteError

        try:
            return fn(*args)
        except RemoteError as exc:
            raise _refused(exc) from None

    def list(self, query: Mapping[str, Any]) -> Any:
        return self._call(self.client.list, query)

    def show(self, execution_id: str) -> Any:
        return self._call(self.client.show, execution_id)

    def logs(self, execution_id: str, offset: int) -> Any:
        lines: list[Any] = []
        while True:
            page = self._call(self.client.logs, execution_id, offset + len(lines), 10_000)
            lines.extend(page["lines"])
            if len(page["lines"]) < 10_000:
                return {"execution_id": execution_id, "lines": lines, "next_offset": offset + len(lines)}

    def follow(self, execution_id: str, offset: int, emit: Callable[[dict[str, Any]], None]) -> None:
        def go() -> None:
            for line in self.client.follow(execution_id, offset):
                emit(line)

        self._call(go)

    def cancel(self, execution_id: str) -> Any:
        return self._call(self.client.cancel, execution_id)

    def rollback(self, execution_id: str, config: Mapping[str, Any]) -> Any:
        self._call(self.client.rollback, execution_id)
        return self.wait(execution_id, until_not={"rolling_back"})

    def submit(
        self,
        text: str,
        path: str,
        params: Mapping[str, Any],
        priority: int | None,
        dry: bool,
        not_before: float | None = None,
    ) -> Any:
        return self._call(
            lambda: self.client.submit(text, params, priority=priority, dry_run=dry, not_before=not_before)
        )

    def wait(self, execution_id: str, *, until_not: set[str] | None = None) -> Any:
        """Poll the record until its status leaves `until_not` (default: until it is over)."""
        busy = until_not if until_not is not None else {"pending", "running", "rolling_back"}
        delay = 0.05
        while True:
            record = self.show(execution_id)
            if record["status"] not in busy:
                return record
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


def _refused(exc: Any) -> Refused:
    lines = [
        f"{d.get('path')}:{d.get('line')}:{d.get('column')}: {d.get('severity', 'error')}: {d.get('message')}"
        for d in exc.details.get("errors", [])
    ] + [str(p) for p in exc.details.get("problems", [])]
    code = EXIT_USAGE if exc.status in (0, 400, 401, 413, 422) else EXIT_INVALID
    summary = {"invalid_package": "the runbook is not valid", "invalid_parameters": "invalid parameters"}
    return Refused(summary.get(exc.code, exc.message) if lines else exc.message, code, lines)


def _backend(args: argparse.Namespace) -> Local | Remote:
    if args.url:
        return Remote(args.url, args.token or os.environ.get("WPK_TOKEN") or None)
    return Local(args.store)


# -- output ----------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _line_text(line: Mapping[str, Any]) -> str:
    from .termsafe import one_line

    item = f"[{line['item']}]" if line.get("item") is not None else ""
    return one_line(f"{line.get('step') or '-'}{item} {line.get('stream')}: {line.get('line')}")


def _record_text(record: Mapping[str, Any]) -> None:
    from .termsafe import one_line

    print(
        f"execution {record['execution_id']}: {record['status']} ({record['workflow_id']}, "
        f"priority {record['priority']}{', dry-run' if record['dry_run'] else ''})"
    )
    print(f"  started {record['started_at'] or '-'}  finished {record['finished_at'] or '-'}")
    for step in record["steps"]:
        # what happened, then how its undo went (failed, or taken over from a lost agent)
        said = (step.get("error") or step.get("reason"), step.get("compensation_error"),
                step.get("compensation_resumed"))  # fmt: skip
        extra = "; ".join(part for part in said if part)
        print(one_line(f"  {step['status']:<20} {step['id']}" + (f": {extra}" if extra else "")))
    if record.get("error"):
        print(one_line(f"error: {record['error']}"))


def _exit_for(status: str) -> int:
    return EXIT_OK if status == "completed" else EXIT_INVALID


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except Refused as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            print(f"wpk: {exc.message}", file=sys.stderr)
            return exc.code

    return run


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 500:
        raise Refused("--limit must be 1..500", EXIT_USAGE)
    page = _backend(args).list(
        {
            "status": args.status,
            "workflow": args.workflow,
            "since": args.since,
            "limit": args.limit,
            "cursor": args.cursor,
        }
    )
    if args.format == "json":
        _print_json(page)
        return EXIT_OK
    print(f"{'EXECUTION':<36}  {'STATUS':<15}  {'WORKFLOW':<30}  PRI  CREATED")
    for e in page["executions"]:
        print(
            f"{e['execution_id']:<36}  {e['status']:<15}  {e['workflow_id']:<30}  {e['priority']:>3}  "
            f"{e['created_at']}"
        )
    if page["next_cursor"]:
        print(f"(more: --cursor {page['next_cursor']})")
    return EXIT_OK


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    record = _backend(args).show(args.execution_id)
    if args.format == "json":
        _print_json(record)
    else:
        _record_text(record)
    return EXIT_OK


@_guard
def cmd_logs(args: argparse.Namespace) -> int:
    if args.offset < 0:
        raise Refused("--offset must be 0 or more", EXIT_USAGE)
    backend = _backend(args)

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line) if args.format == "json" else _line_text(line), flush=True)

    if args.follow:
        backend.follow(args.execution_id, args.offset, emit)
    else:
        for line in backend.logs(args.execution_id, args.offset)["lines"]:
            emit(line)
    return EXIT_OK


@_guard
def cmd_cancel(args: argparse.Namespace) -> int:
    answer = _backend(args).cancel(args.execution_id)
    if args.format == "json":
        _print_json(answer)
    else:
        what = "cancelled" if answer["status"] == "cancelled" else "asked to stop (it is running)"
        print(f"execution {args.execution_id}: {what}")
    return EXIT_OK


@_guard
def cmd_rollback(args: argparse.Namespace) -> int:
    from .agent_config import ConfigError, load_agent_config
    from .limits import configure

    try:
        config = load_agent_config(getattr(args, "config", None))
    except ConfigError as exc:
        lines = [str(d) for d in exc.diagnostics]
        raise Refused("the agent configuration is refused", EXIT_USAGE, lines) from None
    configure(config.limits)
    record = _backend(args).rollback(args.execution_id, config.adapters)
    if args.format == "json":
        _print_json(record)
    else:
        _record_text(record)
    return EXIT_OK if record["status"] == "rolled_back" else EXIT_INVALID


@_guard
def cmd_submit(args: argparse.Namespace) -> int:
    from .params import ParamError, load_params_file, parse_assignments
    from .validate import package_file

    path = package_file(args.package)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"{path}: cannot read: {exc}", EXIT_USAGE) from None
    if args.priority is not None and not 0 <= args.priority <= 100:
        raise Refused("--priority must be 0..100", EXIT_USAGE)
    from .scheduler import parse_at, parse_in

    try:
        not_before = parse_at(args.at) if args.at else parse_in(args.in_, time.time()) if args.in_ else None
    except ValueError as exc:
        raise Refused(f"--at/--in: {exc}", EXIT_USAGE) from None
    from .cli_run import load_workflow

    workflow = load_workflow(str(path))  # the same checks as wpk run, with file:line:col here
    if workflow is None:
        return EXIT_USAGE
    try:
        given: dict[str, Any] = load_params_file(args.params_file) if args.params_file else {}
        given.update(parse_assignments(args.param, workflow.params))
    except ParamError as exc:
        raise Refused("invalid parameters", EXIT_USAGE, exc.problems) from None
    if args.store and args.url:
        raise Refused("give --store or --url, not both", EXIT_USAGE)
    from .remote import DEFAULT_URL

    backend: Local | Remote = (
        Local(args.store)
        if args.store
        else Remote(args.url or DEFAULT_URL, args.token or os.environ.get("WPK_TOKEN"))
    )
    answer = backend.submit(text, str(path), given, args.priority, args.dry_run, not_before)
    if not args.wait or isinstance(backend, Local):
        if args.format == "json":
            _print_json(answer)
        else:
            print(f"execution {answer['execution_id']}: {answer['status']}")
        return EXIT_OK
    record = backend.wait(answer["execution_id"])
    if args.format == "json":
        _print_json(record)
    else:
        _record_text(record)
    return _exit_for(record["status"])


__all__ = ["add_subcommands"]
