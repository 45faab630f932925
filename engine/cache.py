"""A content-addressed cache of compiled packages: the same runbook is validated once.

Submitting the same package again (the sidecar's everyday case, a runbook run from cron) should
not pay for parsing, validating and compiling it again. An entry is keyed by what decides the
result: the file's bytes, the name it is shown under (diagnostics and the compiled steps quote
it), the size limit, the agent's limits, the runbook schema's digest and a stamp of wpk's own
code (built-in adapters included). A package that uses an adapter from another distribution is
not cached: its version is not part of the key.

On disk (`$XDG_CACHE_HOME/wpk`, default `~/.cache/wpk`, a 0700 directory owned by the user)
each entry is plain JSON, never pickle: a header line with the payload's sha256, then the
payload, which holds the compiled workflow and the validation's warnings (replayed on a hit).
An entry that fails its digest, does not parse or does not rebuild is ignored and rebuilt.
The directory is bounded (`DEFAULT_MAX_BYTES`): after a write, least recently used entries
(a hit refreshes an entry's mtime) are removed until it fits. `MemoryCache` keeps compiled
workflows as objects for a long-lived process (the sidecar), with the same keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .diagnostics import Diagnostic, Severity
from .model import ActionCall, FailureBudget, RetryPolicy, RollbackMode, Step, StepKind, Workflow

FORMAT = 1
"""Bumped when the payload's layout changes (the code stamp changes with it anyway)."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_HEADER_LIMIT = 256


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a valid package compiles to, and the warnings its validation gave."""

    workflow: Workflow
    warnings: tuple[Diagnostic, ...]


class CompiledCache(Protocol):
    """Where compiled packages are kept: on disk (`DiskCache`) or in memory (`MemoryCache`)."""

    def get(self, key: str) -> CacheEntry | None: ...

    def put(self, key: str, entry: CacheEntry) -> None: ...


# -- the key ---------------------------------------------------------------------------------------
_CODE_DIRS = ("engine", "adapters")


@functools.cache
def code_stamp() -> str:
    """wpk's own code as installed: each source file's name, size and mtime, and the schemas'.

    Cheaper than reading the distribution's version (importlib.metadata costs 45 ms) and
    stricter: an edited checkout or an upgrade changes it."""
    from wpk import adapters, schemas

    from .schema import schema_file_digest

    digest = hashlib.sha256(f"wpk-cache-{FORMAT}\0{schema_file_digest()}".encode())
    roots = [Path(__file__).parent, Path(adapters.__file__).parent, Path(schemas.__file__).parent]
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".json")):
                    info = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def package_key(data: bytes, shown: str, max_bytes: int) -> str:
    """The cache key of a package file's bytes, as validated under the current limits."""
    from .limits import current

    digest = hashlib.sha256(code_stamp().encode())
    digest.update(f"\0{shown}\0{max_bytes}\0{current()!r}\0".encode())
    digest.update(data)
    return digest.hexdigest()


def cacheable(workflow: Workflow) -> bool:
    """Only packages whose every action is built in: a plug-in adapter's version is not in the key."""
    from wpk.adapters.registry import BUILTIN

    builtin = set(BUILTIN)
    for step in (*workflow.steps, *workflow.finally_steps, *workflow.rollback_steps):
        calls = (step.call, step.rollback_body) if step.rollback_body is not None else (step.call,)
        if any(call.uses.partition(".")[0] not in builtin for call in calls):
            return False
    return True


# -- plain data --------------------------------------------------------------------------------------
def _retry_out(r: RetryPolicy) -> list[Any]:
    return [r.attempts, r.backoff, r.factor, r.max_backoff]


def _retry_in(v: list[Any]) -> RetryPolicy:
    return RetryPolicy(attempts=v[0], backoff=v[1], factor=v[2], max_backoff=v[3])


def _call_out(c: ActionCall) -> list[Any]:
    return [c.uses, c.inputs, c.timeout, None if c.retries is None else _retry_out(c.retries), c.templated]


def _call_in(v: list[Any]) -> ActionCall:
    return ActionCall(
        uses=v[0],
        inputs=v[1],
        timeout=v[2],
        retries=None if v[3] is None else _retry_in(v[3]),
        templated=v[4],
    )


def _budget_out(b: FailureBudget | None) -> list[Any] | None:
    return None if b is None else [b.count, b.percent]


def _budget_in(v: list[Any] | None) -> FailureBudget | None:
    return None if v is None else FailureBudget(count=v[0], percent=v[1])


# Every field of Step, in order, with how it goes to JSON and back. A field added to Step without
# an entry here fails `_check_layout` at import (and the round-trip test), never a silent loss.
def _same(v: Any) -> Any:
    return v


_STEP_FIELDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "id": (_same, _same),
    "kind": (str, StepKind),
    "call": (_call_out, _call_in),
    "needs": (list, tuple),
    "when": (_same, _same),
    "for_each": (_same, _same),
    "concurrency": (_same, _same),
    "max_failures": (_budget_out, _budget_in),
    "timeout": (_same, _same),
    "timeout_template": (_same, _same),
    "retries": (_retry_out, _retry_in),
    "continue_on_error": (_same, _same),
    "outputs": (_same, _same),
    "rollback_mode": (str, RollbackMode),
    "rollback_body": (
        lambda c: None if c is None else _call_out(c),
        lambda v: None if v is None else _call_in(v),
    ),
    "dry_run": (_same, _same),
    "idempotent": (_same, _same),
    "description": (_same, _same),
    "line": (_same, _same),
    "where": (_same, _same),
}


def _check_layout() -> None:
    names = [f.name for f in dataclasses.fields(Step)]
    if names != list(_STEP_FIELDS):
        raise RuntimeError(f"engine/cache.py does not know Step's fields {names}")
    expected = {
        RetryPolicy: ["attempts", "backoff", "factor", "max_backoff"],
        ActionCall: ["uses", "inputs", "timeout", "retries", "templated"],
        FailureBudget: ["count", "percent"],
    }
    for cls, fields in expected.items():
        if [f.name for f in dataclasses.fields(cls)] != fields:
            raise RuntimeError(f"engine/cache.py does not know {cls.__name__}'s fields")


_check_layout()


def _step_out(step: Step) -> list[Any]:
    return [out(getattr(step, name)) for name, (out, _) in _STEP_FIELDS.items()]


_STEP_NAMES = tuple(_STEP_FIELDS)
_STEP_DECODERS = tuple((i, back) for i, (_, back) in enumerate(_STEP_FIELDS.values()) if back is not _same)
"""Only the fields that change on the way back: half of them are JSON as they are."""


def _step_in(v: list[Any]) -> Step:
    values = list(v)
    for i, back in _STEP_DECODERS:
        values[i] = back(values[i])
    return Step(**dict(zip(_STEP_NAMES, values, strict=True)))  # another layout: ValueError


def workflow_to_data(wf: Workflow) -> dict[str, Any]:
    """The compiled workflow as plain JSON data (the steps in field order, as lists)."""
    return {
        "name": wf.name,
        "version": wf.version,
        "description": wf.description,
        "params": wf.params,
        "secrets": list(wf.secrets),
        "priority": wf.priority,
        "placement": wf.placement,
        "concurrency": wf.concurrency,
        "timeout": wf.timeout,
        "fail_fast": wf.fail_fast,
        "steps": [_step_out(s) for s in wf.steps],
        "finally_steps": [_step_out(s) for s in wf.finally_steps],
        "rollback_enabled": wf.rollback_enabled,
        "rollback_steps": [_step_out(s) for s in wf.rollback_steps],
        "rollback_timeout": wf.rollback_timeout,
        "order": list(wf.order),
        "successors": {k: list(v) for k, v in wf.successors.items()},
        "source": wf.source,
    }


def workflow_from_data(d: dict[str, Any]) -> Workflow:
    steps = tuple(_step_in(s) for s in d["steps"])
    finally_steps = tuple(_step_in(s) for s in d["finally_steps"])
    rollback_steps = tuple(_step_in(s) for s in d["rollback_steps"])
    return Workflow(
        name=d["name"],
        version=d["version"],
        description=d["description"],
        params=d["params"],
        secrets=tuple(d["secrets"]),
        priority=d["priority"],
        placement=d["placement"],
        concurrency=d["concurrency"],
        timeout=d["timeout"],
        fail_fast=d["fail_fast"],
        steps=steps,
        finally_steps=finally_steps,
        rollback_enabled=d["rollback_enabled"],
        rollback_steps=rollback_steps,
        rollback_timeout=d["rollback_timeout"],
        order=tuple(d["order"]),
        successors={k: tuple(v) for k, v in d["successors"].items()},
        by_id={s.id: s for s in (*steps, *finally_steps, *rollback_steps)},
        source=d["source"],
    )


def _diagnostic_out(d: Diagnostic) -> list[Any]:
    return [d.path, d.line, d.col, str(d.severity), d.message, d.code]


def _diagnostic_in(v: list[Any]) -> Diagnostic:
    return Diagnostic(path=v[0], line=v[1], col=v[2], severity=Severity(v[3]), message=v[4], code=v[5])


def entry_to_bytes(entry: CacheEntry) -> bytes:
    payload = json.dumps(
        {
            "workflow": workflow_to_data(entry.workflow),
            "warnings": [_diagnostic_out(d) for d in entry.warnings],
        },
        separators=(",", ":"),
    ).encode()
    header = json.dumps({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    return header + b"\n" + payload


def entry_from_bytes(raw: bytes) -> CacheEntry | None:
    """The entry, or None when it is damaged: wrong digest, truncated, or not what we wrote."""
    head, newline, payload = raw[:_HEADER_LIMIT].partition(b"\n")
    if not newline:
        return None
    payload = raw[len(head) + 1 :]
    try:
        header = json.loads(head)
        if header.get("format") != FORMAT or header.get("sha256") != hashlib.sha256(payload).hexdigest():
            return None
        data = json.loads(payload)
        return CacheEntry(
            workflow_from_data(data["workflow"]),
            tuple(_diagnostic_in(d) for d in data["warnings"]),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


# -- where entries live ---------------------------------------------------------------------------------
def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wpk"


class DiskCache:
    """Entries as files in a private directory, bounded in total size, least recently used out."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    @classmethod
    def open(cls, directory: Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DiskCache | None:
        """The cache in `directory` (created 0700), or None when it cannot be trusted or made.

        A directory another user owns, or that others may write to, is not used: an entry
        planted there would run as our runbook."""
        directory = directory or default_dir()
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                return None
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(directory, 0o700)
        except OSError:
            return None
        return cls(directory, max_bytes=max_bytes)

    def _file(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        path = self._file(key)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        entry = entry_from_bytes(raw)
        if entry is None:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        import tempfile  # only a miss writes

        raw = entry_to_bytes(entry)
        if len(raw) > self.max_bytes:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(raw)
                os.replace(tmp, self._file(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return  # a full or read-only disk makes the cache miss, never the run fail
        self.evict()

    def _entries(self) -> Iterator[tuple[float, int, Path]]:
        with os.scandir(self.directory) as found:
            for item in found:
                if item.name.endswith(".json") and not item.name.startswith("."):
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    yield info.st_mtime, info.st_size, Path(item.path)

    def evict(self) -> None:
        """Remove least recently used entries until the directory holds at most `max_bytes`."""
        try:
            entries = sorted(self._entries())
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
            total -= size


class MemoryCache:
    """The same keys, objects kept as they are: for a process that compiles all day (the sidecar)."""

    def __init__(self, *, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


__all__ = [
    "CacheEntry",
    "CompiledCache",
    "DiskCache",
    "MemoryCache",
    "cacheable",
    "code_stamp",
    "default_dir",
    "load_package",
    "package_key",
    "workflow_from_data",
    "workflow_to_data",
]


# -- validate and compile, through the cache ---------------------------------------------------------
def _read_regular(path: Path, max_bytes: int) -> bytes | None:
    """A regular file's bytes if it is within the limit; None sends the caller the long way,
    where the loader says what is wrong with it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= max_bytes else None


def load_package(
    path: Path, *, cache: CompiledCache | None, max_bytes: int | None = None, compile: bool = True
) -> tuple[Any, Workflow | None]:
    """(ValidationResult, compiled workflow or None), from the cache when it has the package.

    On a hit the validation's warnings come back as they were first reported; a miss validates,
    compiles and stores a valid package. `compile=False` (plain `wpk validate` without a cache)
    skips compiling."""
    from .loader import DEFAULT_MAX_BYTES as LOADER_MAX_BYTES
    from .model import compile_workflow
    from .validate import ValidationResult, validate_bytes, validate_path

    limit = LOADER_MAX_BYTES if max_bytes is None else max_bytes
    shown = str(path)
    data = _read_regular(path, limit) if cache is not None else None
    if cache is None or data is None:
        result = validate_path(path, max_bytes=limit)
        if not compile or not result.valid or result.doc is None:
            return result, None
        return result, compile_workflow(result.doc)
    key = package_key(data, shown, limit)
    entry = cache.get(key)
    if entry is not None:
        return ValidationResult(shown, None, list(entry.warnings), cached=True), entry.workflow
    result = validate_bytes(data, shown, max_bytes=limit)
    if not result.valid or result.doc is None:
        return result, None
    workflow = compile_workflow(result.doc)
    if cacheable(workflow):
        cache.put(key, CacheEntry(workflow, tuple(result.warnings)))
    return result, workflow
