"""`wpk run`, `wpk dry-run`, `wpk graph` and `wpk init`: the subcommands that compile and execute.

Everything that can be refused is refused before the first step starts (exit 2): an invalid
package, a bad parameter (one line per problem), a secret that resolves to nothing. Progress is
printed from the event stream, so what a terminal shows is exactly what the store records.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .exitcodes import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE
from .termsafe import one_line


def add_subcommands(sub: Any) -> None:
    for name, dry in (("run", False), ("dry-run", True)):
        p = sub.add_parser(
            name, help="dry-run a package: reads execute, writes are simulated" if dry else "run a package"
        )
        p.add_argument("package", help="package folder or runbook file")
        p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
        p.add_argument("--params-file", help="YAML or JSON mapping of parameters")
        p.add_argument("--format", choices=("text", "json"), default="text")
        p.add_argument(
            "--store",
            default="sqlite:",
            help="event store: sqlite: (default file under ~/.local/state/wpk), "
            "sqlite:///path.db, or memory:",
        )
        p.add_argument("--config", help="agent configuration (YAML): adapter settings and limits")
        add_cache_flag(p)
        if not dry:
            p.add_argument("--no-rollback", action="store_true", help="do not roll back on failure")
        p.set_defaults(func=cmd_run, dry_run=dry)

    p = sub.add_parser("graph", help="print the step DAG")
    p.add_argument("package")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    add_cache_flag(p)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("init", help="scaffold a new runbook package")
    p.add_argument("name", help="package name (a DNS label) or path ending in it")
    p.set_defaults(func=cmd_init)


def _err(message: str) -> None:
    print(one_line(message), file=sys.stderr)


def add_cache_flag(parser: Any) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="validate and compile again, without the compiled-package cache (~/.cache/wpk)",
    )


def open_cache(args: argparse.Namespace) -> Any:
    """The compiled-package cache (engine/cache.py), or None with --no-cache or none usable."""
    if getattr(args, "no_cache", False):
        return None
    from .cache import DiskCache

    return DiskCache.open()


def load_workflow(package: str, cache: Any = None) -> Any:
    """Validate and compile (or find both in the cache), printing errors; None when it cannot run."""
    from .cache import load_package
    from .validate import gc_held, package_file

    with gc_held(freeze=True):
        result, workflow = load_package(package_file(package), cache=cache)
        for diagnostic in result.diagnostics:
            if diagnostic.is_error:
                _err(str(diagnostic))
        return workflow


def cmd_run(args: argparse.Namespace) -> int:
    from .agent_config import ConfigError, load_agent_config
    from .limits import configure
    from .loader import LoadError
    from .params import ParamError, load_params_file, parse_assignments, resolve_params
    from .secrets import MissingSecrets, resolve_secrets
    from .store import StoreError, UnknownStore, open_store

    try:  # first: a bad configuration stops start-up, and its limits bound the validation
        config = load_agent_config(args.config)
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            _err(str(diagnostic))
        return EXIT_USAGE
    configure(config.limits)
    workflow = load_workflow(args.package, open_cache(args))
    if workflow is None:
        return EXIT_USAGE
    from_file: dict[str, Any] = {}
    try:
        from_file = load_params_file(args.params_file) if args.params_file else {}
        given: dict[str, Any] = dict(from_file)
        from_cli = parse_assignments(args.param, workflow.params)
        given.update(from_cli)
        for name in from_cli:
            from_file.pop(name, None)  # -p wins: a problem with it is not the file's
        params = resolve_params(workflow.params, given)
        secrets = resolve_secrets(workflow.secrets)
        store = open_store(args.store)
    except ParamError as exc:
        for problem in exc.problems:
            named = re.match(r"parameter '([^']+)'", problem)
            source = args.params_file if named and named.group(1) in from_file else args.package
            _err(f"{source}: {problem}")
        return EXIT_USAGE
    except MissingSecrets as exc:
        for name in exc.names:
            _err(
                f"{args.package}: secret {name!r} is not set "
                f"(WPK_SECRET_{name.upper()} or $WPK_SECRETS_DIR/{name})"
            )
        return EXIT_USAGE
    except (LoadError, UnknownStore) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except StoreError as exc:
        _err(f"wpk: nothing was run: {one_line(str(exc))}")
        return EXIT_USAGE
    import trio

    from .executions import local_execution
    from .runner import Runner, RunOptions

    progress = Progress(sys.stderr, workflow, enabled=args.format == "text" or sys.stderr.isatty())
    # The execution is recorded with its runbook (so `wpk executions rollback` can undo it later)
    # and already running (so an agent sharing the store never claims it).
    created = local_execution(workflow, args.package, params, dry_run=args.dry_run,
                              rollback=not getattr(args, "no_rollback", False))  # fmt: skip
    options = RunOptions(
        dry_run=args.dry_run,
        rollback=not getattr(args, "no_rollback", False),
        adapter_config=config.adapters,
        limits=config.limits,
        on_event=progress.on_event if progress.enabled else None,
        execution_id=created.execution_id,
        history=[created.first_event] if created.first_event else [],
    )
    from .recovery import local_agent_id, mark_lost_executions

    created = dataclasses.replace(created, agent_id=local_agent_id())  # engine/recovery.py
    runner = Runner(workflow, params=params, secrets=secrets, store=store, options=options)
    interrupted = False
    _sweep_after_crash()

    async def main() -> None:
        nonlocal interrupted
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal interrupted
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        if interrupted:
                            continue
                        interrupted = True
                        progress.flush()  # what happened so far comes before the notice
                        _err("wpk: interrupted: cancelling running steps (rollback policy applies)")
                        runner.cancel()

            nursery.start_soon(watch_signals)
            for execution_id in await mark_lost_executions(store):
                _err(f"wpk: execution {execution_id} marked failed: its agent died while it ran")
            await store.create_execution(created)
            if created.first_event is not None:
                progress.on_event(created.first_event)
            await runner.run()
            nursery.cancel_scope.cancel()

    from .store.base import store_error_in

    try:
        trio.run(main)
    except BaseException as exc:  # a store that fails mid-run: the run stops, and says why
        failure = store_error_in(exc)
        if failure is None:
            raise
        if runner.seq <= 1:  # only the creation was (maybe) recorded: no step ran
            _err(f"wpk: nothing was run: the store failed: {one_line(str(failure))}")
            return EXIT_USAGE
        _err(f"wpk: the run stopped: the store failed: {one_line(str(failure))}")
        return EXIT_INVALID
    finally:
        progress.flush()
    state = runner.state
    if args.dry_run:
        from .plan import build_plan, render_plan_text

        plan = build_plan(workflow, state)
        if args.format == "json":
            record = state.as_dict()
            record["plan"] = plan
            print(json.dumps(record, indent=2, default=str))
        else:
            print(render_plan_text(plan))
    elif args.format == "json":
        print(json.dumps(state.as_dict(), indent=2, default=str))
    else:
        progress.summary(state)
    if interrupted:
        return EXIT_INTERRUPTED
    if args.dry_run:
        return {"will-pass": EXIT_OK, "unknown": EXIT_UNKNOWN}.get(plan["verdict"], EXIT_INVALID)
    return EXIT_OK if str(state.status) == "completed" else EXIT_INVALID


def _sweep_after_crash() -> None:
    """What a killed agent left: its steps' processes are ended (its executions are marked lost
    from the store, engine/recovery.py)."""
    from wpk.adapters import registry

    ended = registry.sweep_after_crash()
    if ended:
        _err(f"wpk: ended {len(ended)} process(es) left by an agent that died")


class Progress:
    """Prints what happens, one plain line per event (no cursor tricks, so logs stay readable)."""

    def __init__(self, out: TextIO, workflow: Any, *, enabled: bool) -> None:
        from .events import EventType  # once, not once per event

        self.out = out
        self.enabled = enabled
        self.started = time.monotonic()
        self.tty = out.isatty()
        self.workflow = workflow
        self._types = EventType
        # A terminal sees each line at once. A pipe or file gets lines in batches (stderr is
        # line-buffered, so each line was a system call): at most FLUSH_SECONDS late, and all
        # of them before the summary or when the run ends.
        self._pending: list[str] = []
        self._pending_since = 0.0
        self._stamp_at, self._stamp = -1, ""

    FLUSH_SECONDS = 0.5
    FLUSH_LINES = 512

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        # The stamp is the elapsed time in hundredths, formatted once per hundredth (formatting
        # a float cost more than the rest of a line); `isprintable()` is False for every
        # character `one_line` escapes, so most lines skip it.
        hundredths = int((now - self.started) * 100 + 0.5)
        if hundredths != self._stamp_at:
            self._stamp_at, self._stamp = hundredths, f"{hundredths / 100:7.2f}s "
        text = f"{self._stamp}{text if text.isprintable() else one_line(text)}\n"
        if self.tty:
            self.out.write(text)
            self.out.flush()
            return
        if not self._pending:
            self._pending_since = now
        self._pending.append(text)
        if len(self._pending) >= self.FLUSH_LINES or now - self._pending_since >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.out.write("".join(self._pending))
            self._pending.clear()
        self.out.flush()

    def on_event(self, event: Any) -> None:
        if not self.enabled:
            return
        E = self._types
        t, d, step = event.type, event.data, event.step
        if t is E.STEP_STARTED:  # the two lines every step prints come first
            self.line(f"> {step} started")
            return
        if t is E.STEP_COMPLETED:
            self.line(f"+ {step} completed")
            return
        item = f"[{event.item}]" if event.item is not None else ""
        if t is E.EXECUTION_CREATED:
            mode = "dry-run" if d.get("dry_run") else "run"
            self.line(f"{mode} {d['workflow_id']} (execution {d['execution_id']})")
        elif t is E.ATTEMPT_FAILED:
            retry = f", retrying in {d['retry_in']:.2f}s" if "retry_in" in d else ""
            self.line(f"! {step}{item} attempt {d.get('attempt')} failed: {d.get('error')}{retry}")
        elif t is E.LOG:
            self.line(f"  {step}{item} {d.get('stream')}: {d.get('line')}")
        elif t is E.STEP_PLANNED:
            self.line(f"~ {step}{item} simulated: {(d.get('plan') or {}).get('summary', '')}")
        elif t is E.STEP_SKIPPED:
            self.line(f"- {step} skipped: {d.get('reason')}")
        elif t is E.STEP_FAILED:
            self.line(f"x {step} failed: {d.get('error')}")
        elif t is E.STEP_CANCELLED:
            self.line(f"x {step} cancelled")
        elif t is E.ROLLBACK_STARTED:
            acting = [u for u in d.get("plan", []) if u.get("kind") != "nothing"]
            self.line(f"rolling back: {len(acting)} compensation(s), in reverse completion order")
        elif t is E.COMPENSATION_STARTED:
            self.line(f"< {step} undoing: {d.get('how')}")
        elif t is E.COMPENSATION_COMPLETED and event.item is None:
            self.line(f"< {step} compensated")
        elif t is E.COMPENSATION_FAILED and event.item is None:
            self.line(f"x {step} compensation failed: {d.get('error')}")
        elif t is E.ROLLBACK_FINISHED:
            self.line(f"rollback finished: {d.get('status')}")

    def summary(self, state: Any) -> None:
        counts: dict[str, int] = {}
        for record in state.steps.values():
            counts[str(record.status)] = counts.get(str(record.status), 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"execution {state.execution_id}: {state.status} ({detail})")
        if state.error:
            print(f"error: {one_line(state.error)}")


def cmd_graph(args: argparse.Namespace) -> int:
    workflow = load_workflow(args.package, open_cache(args))
    if workflow is None:
        return EXIT_USAGE
    print(render_graph(workflow, args.format))
    return EXIT_OK


def render_graph(workflow: Any, fmt: str) -> str:
    if fmt == "dot":
        lines = [f'digraph "{workflow.workflow_id}" {{', "  rankdir=LR;"]
        for step in workflow.steps:
            lines.append(f'  "{step.id}" [label="{step.id}\\n{step.call.uses}"];')
            lines.extend(f'  "{need}" -> "{step.id}";' for need in step.needs)
        for step in workflow.finally_steps:
            lines.append(f'  "{step.id}" [label="{step.id}\\n{step.call.uses}\\n(finally)", style=dashed];')
        lines.append("}")
        return "\n".join(lines)
    lines = ["flowchart LR"]
    for step in workflow.steps:
        lines.append(f'  {step.id}["{step.id}<br/>{step.call.uses}"]')
        lines.extend(f"  {need} --> {step.id}" for need in step.needs)
    for step in workflow.finally_steps:
        lines.append(f'  {step.id}(["{step.id}<br/>{step.call.uses} (finally)"])')
    return "\n".join(lines)


_TEMPLATE = """\
# yaml-language-server: $schema=https://wpk.dev/schemas/v1/wpk.schema.json
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: {name}
  version: 0.1.0
  description: Describe what this runbook is for
spec:
  params:
    target:
      type: string
      description: What to act on
      default: world
      pattern: "^[a-z0-9-]+$"
  steps:
    - id: check
      uses: shell.run
      dry_run: execute
      with:
        argv: ["echo", "checking {{{{ params.target }}}}"]
      outputs:
        said: "{{{{ result.stdout | trim }}}}"
    - id: act
      needs: [check]
      uses: core.echo
      with:
        message: "{{{{ steps.check.outputs.said }}}}"
"""


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.name)
    name = target.name
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        _err(f"wpk init: {name!r} is not a valid package name (lower-case letters, digits and '-')")
        return EXIT_USAGE
    if target.exists() and any(target.iterdir()):
        _err(f"wpk init: {target} exists and is not empty")
        return EXIT_USAGE
    target.mkdir(parents=True, exist_ok=True)
    (target / "wpk.yaml").write_text(_TEMPLATE.format(name=name), encoding="utf-8")
    (target / "README.md").write_text(f"# {name}\n\nWhat this runbook is for.\n", encoding="utf-8")
    print(f"created {target / 'wpk.yaml'}; try: wpk dry-run {target}")
    return EXIT_OK


__all__ = ["add_subcommands"]
