"""`wpk validate` on several processes (engine/validate_parallel.py): the same report, in the same
order, with the same exit code as one process; a worker that dies costs time, not results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wpk.engine.validate import ValidationResult, validate_path
from wpk.engine.validate_parallel import MIN_FILES_PER_JOB, default_jobs, validate_files

WPK = str(Path(sys.executable).parent / "wpk")
ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: good{n}, version: 1.0.0}}
spec:
  steps:
    - {{id: a, uses: core.noop}}
"""
WARNS = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: warns{n}, version: 1.0.0}}
spec:
  steps:
    - id: a
      uses: shell.run
      with: {{command: "echo {n}"}}
"""
BAD = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {{name: bad{n}, version: 1.0.0}}
spec:
  steps:
    - {{id: a, uses: core.noop, needs: [b{n}]}}
"""
BROKEN_YAML = "apiVersion: wpk/v1\nkind: [unclosed {n}\n"


def make_tree(root: Path, count: int = 48) -> None:
    kinds = (GOOD, WARNS, BAD, BROKEN_YAML)
    for n in range(count):
        folder = root / f"pkg{n:03d}"
        folder.mkdir(parents=True)
        (folder / "wpk.yaml").write_text(kinds[n % len(kinds)].format(n=n))


def wpk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WPK, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_several_processes_report_exactly_what_one_does(tmp_path: Path, fmt: str) -> None:
    make_tree(tmp_path / "tree")
    missing = str(tmp_path / "nowhere")
    one = wpk("validate", "--no-cache", "--format", fmt, "-j", "1", str(tmp_path / "tree"), missing)
    three = wpk("validate", "--no-cache", "--format", fmt, "--jobs", "3", str(tmp_path / "tree"), missing)
    assert one.returncode == three.returncode == 2  # the missing path is a usage error
    assert three.stdout == one.stdout
    assert three.stderr == one.stderr
    assert "pkg047" in one.stdout  # the whole tree was reported, not a worker's share


def test_every_file_is_validated_once_across_workers_and_written_to_the_cache(tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", 40)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = wpk("validate", "-j", "2", str(tmp_path / "tree"), env=env)
    assert first.returncode == 1
    assert first.stdout.endswith("20 of 40 files invalid: 20 error(s), 10 warning(s)\n")
    assert [line.split("/")[-2] for line in first.stdout.splitlines()[:-1]] == [
        f"pkg{n:03d}" for n in range(40) if n % 4  # warnings (1), errors (2, 3); good ones are silent
    ]
    entries = list((tmp_path / "cache" / "wpk").glob("*.json"))
    assert len(entries) == 20  # the 20 valid packages (good and warning ones), each once
    again = wpk("validate", "-j", "2", str(tmp_path / "tree"), env=env)
    assert (again.returncode, again.stdout) == (first.returncode, first.stdout)  # warnings replayed


def test_a_bad_jobs_value_is_one_usage_line(tmp_path: Path) -> None:
    for value in ("0", "-2", "many"):
        proc = wpk("validate", "--jobs", value, str(tmp_path))
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and "is not a number of processes (1 or more)" in proc.stderr


def _files(tmp_path: Path, count: int) -> list[Path]:
    make_tree(tmp_path, count)
    return sorted(tmp_path.glob("*/wpk.yaml"))


def _view(results: list[ValidationResult]) -> list[tuple[str, bool, list[str]]]:
    return [(r.path, r.valid, [str(d) for d in r.diagnostics]) for r in results]


@pytest.mark.parametrize("jobs", [2, 3, 7])
def test_results_come_back_in_the_given_order(tmp_path: Path, jobs: int) -> None:
    files = _files(tmp_path, 23)
    assert _view(validate_files(files, validate_path, jobs=jobs)) == _view([validate_path(f) for f in files])


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_worker_that_dies_costs_time_not_results(tmp_path: Path, how: str) -> None:
    files = _files(tmp_path, 12)
    parent = os.getpid()
    victim = str(files[5])  # index 5 of 11 after the first: worker 1's share with 3 jobs (1, 4, 7 …)

    def validate(path: Path) -> ValidationResult:
        if os.getpid() != parent and str(path) == victim:
            if how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return validate_path(path)

    got = validate_files(files, validate, jobs=3)
    assert _view(got) == _view([validate_path(f) for f in files])
    assert got[5].path == victim and got[5].doc is not None  # redone by the parent itself


def test_a_worker_that_raises_leaves_its_share_to_the_parent(tmp_path: Path) -> None:
    files = _files(tmp_path, 9)
    parent = os.getpid()

    def validate(path: Path) -> ValidationResult:
        if os.getpid() != parent:
            raise RuntimeError("worker trouble")
        return validate_path(path)

    got = validate_files(files, validate, jobs=2)
    assert _view(got) == _view([validate_path(f) for f in files])
    assert all(r.doc is not None for r in got if r.valid)  # every one validated here


def test_default_jobs_gives_each_process_enough_files() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_jobs(0) == 1
    assert default_jobs(MIN_FILES_PER_JOB * 2 - 1) == 1
    assert default_jobs(MIN_FILES_PER_JOB * 2) == min(2, cores)
    assert default_jobs(MIN_FILES_PER_JOB * 1000) == cores
