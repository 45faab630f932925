"""The `wpk` command line.

Each subcommand is a small function from parsed arguments to an exit code. Exit codes follow
DESIGN §8: 0 success, 1 invalid / failed, 2 usage error or a package/parameters that cannot run,
130 interrupted. Errors are one line each on stderr, never a traceback. Heavy modules (trio,
adapters) are imported only by the subcommands that need them, so `wpk validate` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .exitcodes import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE


def version() -> str:
    from importlib import metadata  # 45 ms: only when a version is actually shown

    try:
        return metadata.version("wpk")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"wpk {version()}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Ignored:
    """Accepts any call or attribute and ignores it: the options of a subcommand not being run."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


class _OnlyChosen:
    """The top-level subparsers, building only the chosen subcommand's parser in full.

    argparse builds every option of every subcommand before it parses, and each parser it makes
    looks up gettext translations on disk (four `stat` calls a string): 4% of a one-step `wpk
    run`. The others get a name and help line (all `wpk --help` shows, and what "invalid choice"
    lists), and their options go to `_Ignored`."""

    def __init__(self, sub: Any, chosen: str) -> None:
        self._sub = sub
        self._chosen = chosen

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._chosen:
            return self._sub.add_parser(name, **kwargs)
        self._sub.add_parser(name, help=kwargs.get("help"), add_help=False)
        return _Ignored()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `wpk` parser; given the command line, only its subcommand is built in full."""
    parser = _Parser(prog="wpk", description="Validate, dry-run, run and roll back runbook packages.")
    parser.add_argument("--version", action=_VersionAction)
    sub: Any = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    if argv is not None:  # options before the subcommand take no value: the first word is it
        sub = _OnlyChosen(sub, next((a for a in argv if not a.startswith("-")), ""))

    p = sub.add_parser("validate", help="check runbook packages against the schema and the semantic rules")
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, package folder, or folder to search")
    p.add_argument("--format", choices=("text", "json", "github", "sarif"), default="text")
    p.add_argument("--max-bytes", type=int, default=1024 * 1024, help="largest file accepted (default 1 MiB)")
    p.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=0,
        metavar="N",
        help="processes to validate with (default: one per core, at least 16 files each; 1: this one only)",
    )
    from . import cli_run

    cli_run.add_cache_flag(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print where the WPK JSON Schema is and its $id")
    p.set_defaults(func=cmd_schema)

    from . import cli_agents, cli_executions, cli_run, cli_serve, cli_store

    cli_run.add_subcommands(sub)
    cli_serve.add_subcommands(sub)
    cli_executions.add_subcommands(sub)
    cli_agents.add_subcommands(sub)
    cli_store.add_subcommands(sub)
    return parser


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return value


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .cache import load_package
    from .cli_run import open_cache
    from .diagnostics import error
    from .report import render
    from .validate import ValidationResult, discover, gc_held
    from .validate_parallel import default_jobs, validate_files

    cache = open_cache(args)
    found = list(discover(args.paths))
    files = [path for path, problem in found if problem is None]

    def validate(path: Path) -> ValidationResult:
        result: ValidationResult = load_package(path, cache=cache, max_bytes=args.max_bytes, compile=False)[0]
        return result

    # A one-shot process: no collection while it validates, and what it loaded is frozen after
    # (a full collection over 500 documents' objects once cost more than validating 100 of them).
    with gc_held(freeze=True):
        checked = iter(validate_files(files, validate, jobs=args.jobs or default_jobs(len(files))))
    results = []
    bad_paths = False  # a path that names nothing is a usage error (exit 2), not an invalid runbook
    for path, problem in found:
        if problem is None:
            results.append(next(checked))
            continue
        bad_paths = True
        results.append(ValidationResult(str(path), None, [error(str(path), 0, 0, "no-input", problem)]))
    # Only SARIF shows the version (finding it imports importlib.metadata: 45 ms).
    output = render(results, args.format, version=version() if args.format == "sarif" else "")
    if output:
        print(output)
    if bad_paths:
        return EXIT_USAGE
    return EXIT_OK if all(r.valid for r in results) else EXIT_INVALID


def cmd_schema(args: argparse.Namespace) -> int:
    from wpk import schemas

    print(f"path: {schemas.schema_path()}")
    print(f"$id:  {schemas.runbook_schema()['$id']}")
    print(f"adapters: {schemas.schema_dir() / 'adapters'}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("wpk: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # last line of defence: one line, never a traceback at a user
        from .store.base import store_error_in
        from .termsafe import one_line

        failure = store_error_in(exc)
        if failure is not None:  # a store that cannot be used is no bug in wpk: say what is wrong
            print(f"wpk: the store failed: {one_line(str(failure)[:500])}", file=sys.stderr)
            return EXIT_USAGE
        return _internal(exc)
    return code


def _internal(exc: Exception) -> int:
    from .termsafe import one_line

    detail = one_line(str(exc)[:500])
    print(f"wpk: internal error: {type(exc).__name__}: {detail} (please report this)", file=sys.stderr)
    return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
