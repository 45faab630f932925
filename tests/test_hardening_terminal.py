"""Issue 9, finding 6: nothing from a runbook, a parameter or a target can forge the terminal.

The issue's case: a `host` parameter holding `\\r`, a newline and escape sequences made the dry-run
text plan show `would run: ssh web-1 uptime` while the real command stopped a service. Every value
printed is escaped now; the JSON output keeps the exact value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wpk.engine.plan import render_plan_text
from wpk.engine.termsafe import one_line, text_block

FORGED_HOST = (
    "db-1' 'sudo systemctl stop app\r\x1b[2K  [sim ] remote  shell.run      would run: ssh web-1 uptime"
    "\n\x1b]0;innocent title\x07\x1b]52;c;cm0gLXJmIH4=\x07\u202e"
)
RUNBOOK = {
    "apiVersion": "wpk/v1",
    "kind": "Runbook",
    "metadata": {"name": "forge", "version": "1.0.0"},
    "spec": {
        "params": {"host": {"type": "string"}},
        "steps": [
            {"id": "remote", "uses": "shell.run", "with": {"argv": ["ssh", "{{ params.host }}", "uptime"]}}
        ],
    },
}
CONTROL = [chr(c) for c in range(0x20) if chr(c) != "\n"] + ["\x7f", "\x9b", "\u202e"]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "forge.json"
    path.write_text(json.dumps(RUNBOOK), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", args[0], str(path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )


def test_dry_run_text_plan_cannot_be_forged(tmp_path: Path) -> None:
    proc = cli(tmp_path, "dry-run", "-p", f"host={FORGED_HOST}", "--store", "memory:")
    assert proc.returncode == 0, proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert not any(c in stream for c in CONTROL), repr(stream)
    plan_lines = proc.stdout.splitlines()
    # No injected plan line: exactly one line starts like a step's (the forged text stays inside
    # the real step's line and, JSON-escaped, inside its `with argv:` line).
    assert sum(line.startswith("  [") for line in plan_lines) == 1
    step = next(line for line in plan_lines if line.startswith("  ["))
    assert step.startswith("  [sim ] remote  shell.run      would run: ssh ")
    assert "\\r\\x1b[2K" in step and "\\n\\x1b]0;innocent title\\x07" in step and "\\u202e" in step
    # the forged fragment is visibly part of the one argument, not a line of its own
    assert not any(
        line.lstrip().startswith("[sim ] remote  shell.run      would run: ssh web-1") for line in plan_lines
    )


def test_json_output_keeps_the_exact_value(tmp_path: Path) -> None:
    proc = cli(tmp_path, "dry-run", "-p", f"host={FORGED_HOST}", "--store", "memory:", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["plan"]
    assert plan["steps"][0]["inputs"]["argv"] == ["ssh", FORGED_HOST, "uptime"]


def test_parameter_errors_stay_on_one_line(tmp_path: Path) -> None:
    argv = ["run", "-p", "host=h", "-p", "nosuch\nforged line\x1b[31m=1", "--store", "memory:"]
    proc = cli(tmp_path, *argv)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "\x1b" not in proc.stderr


def test_plan_renderer_escapes_every_field() -> None:
    evil = "x\ny\x1b[31m\r"
    plan = {
        "workflow_id": evil,
        "steps": [
            {"id": evil, "uses": evil, "status": "failed", "error": evil, "diff": f"{evil}\n{evil}"},
            {"id": "s", "uses": "u", "status": "simulated", "summary": evil, "items": [{"summary": evil}]},
            {"id": "k", "uses": "u", "status": "would-skip", "reason": evil},
        ],
        "rollback": [{"step": evil, "kind": "body", "action": evil, "note": evil}],
        "failure_policy": "fail fast",
        "verdict": "will-fail",
    }
    text = render_plan_text(plan)
    assert "\x1b" not in text and "\r" not in text
    # A diff is several lines by nature (each escaped); every other field stays on its line:
    # title, policy, step, 4 diff lines, step, item, step, rollback title, rollback entry, verdict.
    assert len(text.splitlines()) == 13


@pytest.mark.parametrize("char", CONTROL + ["\n", "\u2028", "\x85"])
def test_one_line_escapes_each_control_character(char: str) -> None:
    shown = one_line(f"a{char}b")
    assert char not in shown and shown.startswith("a\\") and shown.endswith("b")


def test_text_block_keeps_newlines_only() -> None:
    assert text_block("a\nb\x1b[1mc\td") == "a\nb\\x1b[1mc\td"
