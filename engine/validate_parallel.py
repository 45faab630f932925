"""`wpk validate` of many files on several cores: forked workers, results in the given order.

Validating is pure CPU work per file (load, schema, semantics) and files do not depend on each
other, so a CI job checking a repository of runbooks waits for one core while the others idle.
Here the process validates the first file itself (so everything imported or compiled on first
use, such as the schema checker, is there before the fork and shared copy-on-write), forks
`jobs - 1` workers, and each process validates every `jobs`-th file of the rest. A worker sends
back, through a pipe of its own, what the report needs of each file (path, whether it loaded,
its diagnostics) and never the loaded document. The report is the one a single process gives,
in the same order (tests/test_validate_parallel.py compares them).

A worker that fails (killed, out of memory, its pipe cut) costs time, not results: the parent
validates that worker's files itself. Pickle is the wire format because both ends are this same
program and the pipe is private to the two processes; nothing read from disk is unpickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .diagnostics import Diagnostic
from .validate import ValidationResult

__all__ = ["MIN_FILES_PER_JOB", "default_jobs", "validate_files"]

MIN_FILES_PER_JOB = 16
"""Fewer files than this per process and a fork (about 2 ms) and a worker's first-file costs
outweigh what it saves."""

_Summary = tuple[int, str, bool, bool, list[Diagnostic]]  # index, path, loaded, cached, diagnostics


def default_jobs(files: int) -> int:
    """One process per usable core, but none with fewer than `MIN_FILES_PER_JOB` files."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, files // MIN_FILES_PER_JOB))


def _summary(index: int, result: ValidationResult) -> _Summary:
    return (index, result.path, result.doc is not None, result.cached, result.diagnostics)


def _from_summary(summary: _Summary) -> ValidationResult:
    _, path, loaded, cached, diagnostics = summary
    return ValidationResult(path, None, diagnostics, cached=cached, loaded=loaded)


def validate_files(
    files: Sequence[Path], validate: Callable[[Path], ValidationResult], *, jobs: int
) -> list[ValidationResult]:
    """`[validate(f) for f in files]`, spread over `jobs` processes (this one included)."""
    if jobs <= 1 or len(files) < 2 or not hasattr(os, "fork"):
        return [validate(f) for f in files]
    results: list[ValidationResult | None] = [None] * len(files)
    results[0] = validate(files[0])  # warms every first-use cache before the fork
    rest = list(range(1, len(files)))
    shares = [rest[k::jobs] for k in range(jobs)]
    workers: list[tuple[int, int, list[int]]] = []  # pid, read end, indexes
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for share in shares[1:]:
            if not share:
                continue
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                os.close(read_end)
                _work(files, share, validate, write_end)
            os.close(write_end)
            workers.append((pid, read_end, share))
        for i in shares[0]:
            results[i] = validate(files[i])
        for pid, read_end, share in workers:
            for summary in _collect(pid, read_end):
                results[summary[0]] = _from_summary(summary)
            for i in share:  # what a failed worker left undone
                if results[i] is None:
                    results[i] = validate(files[i])
    finally:
        for pid, read_end, _ in workers:
            with contextlib.suppress(OSError):
                os.close(read_end)
            with contextlib.suppress(OSError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):  # still running: we are unwinding
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
    return [r for r in results if r is not None]


def _work(
    files: Sequence[Path], share: list[int], validate: Callable[[Path], ValidationResult], out: int
) -> None:
    code = 0
    try:
        summaries = [_summary(i, validate(files[i])) for i in share]
        data = pickle.dumps(summaries, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(out, "wb") as pipe:
            pipe.write(data)
    except BaseException:  # the parent redoes this share; nothing to print here
        code = 1
    os._exit(code)  # no atexit handlers, no flushing of buffers inherited from the parent


def _collect(pid: int, read_end: int) -> list[_Summary]:
    """A worker's summaries, or none when it did not finish cleanly."""
    chunks = []
    while chunk := os.read(read_end, 1 << 20):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return []
    try:
        summaries: list[_Summary] = pickle.loads(b"".join(chunks))  # noqa: S301 - our own forked child
    except Exception:  # cut short: the parent validates the share itself
        return []
    return summaries
