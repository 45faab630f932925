"""Replay the 12 deliberate bugs of issue 15 and show that the suite catches each one.

Each bug is a one-line edit of the engine (the file, the exact text, its buggy replacement) and
the tests expected to go red. For each: apply the edit in place, run those tests, restore the
file from memory (also on Ctrl-C), and report caught / MISSED. Exit 1 if any bug is missed or
its text is no longer found (the code moved: update the row).

    .venv/bin/python tests/mutation/bug_classes.py            # all 12
    .venv/bin/python tests/mutation/bug_classes.py 4 12       # some of them, by number

Not part of .ci/run: it edits source files while it runs, so nothing else may use the tree then.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Bug:
    title: str
    path: str
    text: str
    buggy: str
    tests: tuple[str, ...]


BUGS = [
    Bug(
        "masking: shortest secret replaced first (the tail of a longer one leaks)",
        "engine/secrets.py",
        "key=len, reverse=True)",
        "key=len)",
        ("tests/test_masking_tables.py",),
    ),
    Bug(
        "masking: secrets in mapping keys left clear",
        "engine/secrets.py",
        "{self.redact(k) if isinstance(k, str) else k: self.redact(v)",
        "{k: self.redact(v)",
        ("tests/test_masking_tables.py",),
    ),
    Bug(
        "masking: a Kubernetes Secret's stringData left clear",
        "engine/secrets.py",
        'for key in ("data", "stringData"):',
        'for key in ("data",):',
        ("tests/test_masking_tables.py",),
    ),
    Bug(
        "skip propagation stops after one step (a -> b -> c: c runs)",
        "engine/conductor.py",
        "elif status is StepStatus.SKIPPED and step_id in self.blocked:",
        "elif False:",
        ("tests/test_semantics_tables.py",),
    ),
    Bug(
        'a `when` that renders the string "false" runs the step',
        "engine/runner.py",
        'return value.strip().lower() not in ("", "false", "0", "no", "none", "null")',
        "return bool(value)",
        ("tests/test_semantics_tables.py",),
    ),
    Bug(
        "retries: backoff exponent off by one",
        "engine/model.py",
        "self.factor ** max(failed_attempt - 1, 0)",
        "self.factor ** failed_attempt",
        ("tests/test_semantics_tables.py", "tests/test_runner.py"),
    ),
    Bug(
        "retries: max_backoff ignored",
        "engine/model.py",
        "ceiling = min(self.max_backoff, self.backoff * self.factor ** max(failed_attempt - 1, 0))",
        "ceiling = self.backoff * self.factor ** max(failed_attempt - 1, 0)",
        ("tests/test_semantics_tables.py", "tests/test_runner.py"),
    ),
    Bug(
        "for_each rollback: items undone in the wrong order",
        "engine/compensation.py",
        "it.status in done), reverse=True))",
        "it.status in done)))",
        ("tests/test_semantics_tables.py",),
    ),
    Bug(
        "for_each rollback: completed items of a failed for_each not undone",
        "engine/compensation.py",
        "if record.status not in wanted and not (record.status is StepStatus.FAILED and items):",
        "if record.status not in wanted:",
        ("tests/test_semantics_tables.py",),
    ),
    Bug(
        "validation: a step that needs itself is not reported as a cycle",
        "engine/semantics.py",
        "                graph[step_id].append(need)",
        "                if need != step_id:\n                    graph[step_id].append(need)",
        ("tests/test_validation_edges.py",),
    ),
    Bug(
        "validation: `needs` naming a finally step accepted",
        "engine/semantics.py",
        "                if need not in main_ids:",
        "                if need not in all_ids:",
        ("tests/test_validation_edges.py",),
    ),
    Bug(
        "host policy: 100.64.0.0/10 (shared address space) not private",
        "adapters/guards/hostpolicy.py",
        '    ("100.64.0.0/10", "shared address space (100.64.0.0/10)"),\n',
        "",
        ("tests/test_hostpolicy_tables.py",),
    ),
]


def replay(number: int, bug: Bug) -> bool:
    path = ROOT / bug.path
    original = path.read_text()
    if original.count(bug.text) != 1:
        print(f"{number:2}. NOT FOUND ({bug.path}: the text to break moved): {bug.title}")
        return False
    try:
        path.write_text(original.replace(bug.text, bug.buggy))
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *bug.tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - start
    finally:
        path.write_text(original)
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    if proc.returncode == 1 and failed:
        print(f"{number:2}. caught in {took:.1f}s: {bug.title}\n      by {failed[0].split(' - ')[0][7:]}")
        return True
    print(f"{number:2}. MISSED (pytest exit {proc.returncode}): {bug.title}")
    return False


def main(argv: list[str]) -> int:
    chosen = [int(a) for a in argv] or list(range(1, len(BUGS) + 1))
    results = [replay(n, BUGS[n - 1]) for n in chosen]
    print(f"{sum(results)} of {len(results)} bug classes caught")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
