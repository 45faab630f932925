"""The compiled-package cache: equal workflows back, damaged entries rebuilt, bounded, private.

Everything goes through real files in a temporary `$XDG_CACHE_HOME` and through `wpk` itself
(`main([...])` in this process), so what is tested is what a user's second run does.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wpk.engine.cache import (
    FORMAT,
    CacheEntry,
    DiskCache,
    MemoryCache,
    entry_from_bytes,
    entry_to_bytes,
    load_package,
)
from wpk.engine.cli import main
from wpk.engine.loader import load_file
from wpk.engine.model import compile_workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/wpk.yaml"))

WARNS = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: warns, version: 1.0.0}
spec:
  params:
    unused: {type: string, default: x}
  steps:
    - {id: a, uses: core.noop}
    - {id: b, uses: core.echo, needs: [a], with: {message: "hello"}}
"""


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "wpk"


def entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))


def test_every_example_round_trips_to_an_equal_workflow() -> None:
    for path in EXAMPLES:
        workflow = compile_workflow(load_file(path))
        entry = entry_from_bytes(entry_to_bytes(CacheEntry(workflow, ())))
        assert entry is not None, path
        assert entry.workflow == workflow, path
        assert [s.id for s in entry.workflow.steps] == [s.id for s in workflow.steps]
        assert all(entry.workflow.step(s.id) is s for s in entry.workflow.steps)


def test_a_hit_returns_an_equal_workflow_and_the_warnings(tmp_path: Path) -> None:
    package = tmp_path / "wpk.yaml"
    package.write_text(WARNS)
    cache = DiskCache.open(tmp_path / "cache")
    assert cache is not None
    first, built = load_package(package, cache=cache)
    assert not first.cached and built is not None
    assert [d.code for d in first.warnings] == ["unused-param"]
    second, again = load_package(package, cache=cache)
    assert second.cached and second.valid and again == built
    assert second.diagnostics == first.diagnostics  # replayed, as first reported
    package.write_text(WARNS.replace("hello", "bye"))  # new content: a new key, a miss
    third, changed = load_package(package, cache=cache)
    assert not third.cached and changed is not None and changed != built
    assert len(entries(cache.directory)) == 2


@pytest.mark.parametrize("damage", ["tamper", "truncate", "garbage", "empty"])
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    package = tmp_path / "wpk.yaml"
    package.write_text(WARNS)
    cache = DiskCache.open(tmp_path / "cache")
    assert cache is not None
    _, built = load_package(package, cache=cache)
    (entry,) = entries(cache.directory)
    raw = entry.read_bytes()
    if damage == "tamper":  # a valid JSON payload that says something else: the digest tells
        raw = raw.replace(b'"core.echo"', b'"shell.run"')
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = b"\x00\xff" * 40
    else:
        raw = b""
    entry.write_bytes(raw)
    result, rebuilt = load_package(package, cache=cache)
    assert not result.cached, "a damaged entry must not be used"
    assert rebuilt == built and rebuilt is not None and rebuilt.step("b").call.uses == "core.echo"
    result, again = load_package(package, cache=cache)
    assert result.cached and again == built, "and it was written again"


def test_least_recently_used_entries_are_evicted(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    cache = DiskCache.open(directory)
    assert cache is not None
    workflows = {}
    for name in ("one", "two", "three"):
        package = tmp_path / f"{name}.yaml"
        package.write_text(WARNS.replace("name: warns", f"name: {name}"))
        workflows[name] = package
    load_package(workflows["one"], cache=cache)
    load_package(workflows["two"], cache=cache)
    sizes = [p.stat().st_size for p in entries(directory)]
    cache.max_bytes = sum(sizes) + max(sizes) // 2  # room for two entries, not three
    for age, path in enumerate(entries(directory)):  # both written long ago
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    hit, _ = load_package(workflows["one"], cache=cache)
    assert hit.cached  # "one" is now the most recently used
    load_package(workflows["three"], cache=cache)  # over the bound: the least recently used goes
    assert len(entries(directory)) == 2
    assert load_package(workflows["one"], cache=cache)[0].cached
    assert load_package(workflows["three"], cache=cache)[0].cached
    assert not load_package(workflows["two"], cache=cache)[0].cached


def test_the_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "wpk"
    assert DiskCache.open(directory) is not None
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    package = tmp_path / "wpk.yaml"
    package.write_text(WARNS)
    cache = DiskCache.open(directory)
    assert cache is not None
    load_package(package, cache=cache)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in entries(directory))
    os.chmod(directory, 0o777)  # opened again: made private again
    assert DiskCache.open(directory) is not None
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_directory_that_is_a_link_or_someone_elses_is_not_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = tmp_path / "wpk"
    link.symlink_to(elsewhere)
    assert DiskCache.open(link) is None
    if os.geteuid() == 0:  # only root can give a directory away
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 12345, 12345)
        assert DiskCache.open(foreign) is None


def test_the_cli_uses_the_cache_and_no_cache_skips_it(
    cache_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "wpk.yaml").write_text(WARNS)
    assert main(["validate", "--no-cache", str(package)]) == 0
    assert not cache_home.exists() or entries(cache_home) == []
    assert main(["run", "--no-cache", "--store", "memory:", str(package)]) == 0
    assert main(["dry-run", "--no-cache", "--store", "memory:", str(package)]) == 0
    assert main(["graph", "--no-cache", str(package)]) == 0
    assert not cache_home.exists() or entries(cache_home) == []
    capsys.readouterr()
    assert main(["validate", str(package)]) == 0
    cold = capsys.readouterr().out
    (entry,) = entries(cache_home)
    assert "unused-param" in cold or "never used" in cold
    assert main(["validate", str(package)]) == 0
    assert capsys.readouterr().out == cold, "warnings are replayed from the cache"
    entry.write_bytes(b"not an entry")  # a damaged entry: the run still works, and rewrites it
    assert main(["run", "--store", "memory:", str(package)]) == 0
    assert "completed (2 completed)" in capsys.readouterr().out
    assert entry_from_bytes(entry.read_bytes()) is not None


def test_memory_cache_is_bounded_and_keeps_objects() -> None:
    workflow = compile_workflow(load_file(EXAMPLES[0]))
    cache = MemoryCache(max_entries=2)
    for key in ("a", "b"):
        cache.put(key, CacheEntry(workflow, ()))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", CacheEntry(workflow, ()))
    assert cache.get("b") is None
    hit = cache.get("a")
    assert hit is not None and hit.workflow is workflow


@pytest.mark.parametrize("change", ["one field fewer", "one field more"])
def test_an_entry_whose_steps_have_another_layout_is_not_used(tmp_path: Path, change: str) -> None:
    import hashlib
    import json

    package = tmp_path / "wpk.yaml"
    package.write_text(WARNS)
    cache = DiskCache.open(tmp_path / "cache")
    assert cache is not None
    _, built = load_package(package, cache=cache)
    (entry,) = entries(cache.directory)
    data = json.loads(entry.read_bytes().partition(b"\n")[2])
    for step in data["workflow"]["steps"]:
        if change == "one field fewer":
            step.pop()
        else:
            step.append(None)
    payload = json.dumps(data, separators=(",", ":")).encode()
    header = json.dumps({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    entry.write_bytes(header + b"\n" + payload)  # a correct digest: only the layout is wrong
    result, rebuilt = load_package(package, cache=cache)
    assert not result.cached and rebuilt == built
