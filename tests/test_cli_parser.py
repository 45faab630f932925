"""The command line parsed with only the chosen subcommand built (engine/cli.py, `_OnlyChosen`)
means exactly what the full parser means: the same values, the same help, the same errors."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from wpk.engine.cli import build_parser

COMMAND_LINES = [
    ["validate", "a", "b", "--format", "json", "-j", "2", "--no-cache"],
    ["schema"],
    ["run", "pkg", "-p", "x=1", "--store", "memory:"],
    ["dry-run", "pkg", "--format", "json"],
    ["graph", "pkg"],
    ["init", "newpkg"],
    ["serve", "--port", "0", "--store", "sqlite:", "--past-grace", "rollback"],
    ["executions", "list", "--status", "failed", "--limit", "5"],
    ["executions", "show", "abc"],
    ["submit", "pkg", "--priority", "high"],
    ["agents", "list"],
    ["queue"],
    ["store", "prune", "--older-than", "30d"],
    ["--version"],
]


def _outcome(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[str, str, object]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed: object = vars(parser.parse_args(argv))
        except SystemExit as stop:
            parsed = ("exit", stop.code)
    return out.getvalue(), err.getvalue(), parsed


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_only_the_chosen_subcommand_parses_as_the_full_parser_does(argv: list[str]) -> None:
    assert _outcome(build_parser(argv), argv) == _outcome(build_parser(), argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["executions", "--help"],
        ["executions", "list", "--help"],
        ["bogus"],
        ["run"],
        ["validate", "--jobs", "0", "x"],
        ["executions", "nothing"],
        [],
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_help_and_errors_are_those_of_the_full_parser(argv: list[str]) -> None:
    lazy = _outcome(build_parser(argv), argv)
    assert lazy == _outcome(build_parser(), argv)
    assert lazy[2] in (("exit", 0), ("exit", 2))


def test_the_main_help_lists_every_subcommand_with_its_line() -> None:
    out = _outcome(build_parser(["--help"]), ["--help"])[0]
    for name in ("validate", "run", "dry-run", "serve", "executions", "submit", "agents", "queue", "store"):
        assert f"\n    {name} " in out
    assert "run a package" in out and "look after the execution store" in out
