"""`wpk store prune --older-than AGE` from the command line, on the local SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from wpk.engine.cli_store import parse_age
from wpk.engine.executions import WorkflowCache, cancel, submit
from wpk.engine.store import SQLiteStore

WPK = [sys.executable, "-m", "wpk.engine.cli"]
RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""


def test_ages() -> None:
    assert [parse_age(a) for a in ("30d", "12h", "90m", "15s", "2w")] == [2592000, 43200, 5400, 15, 1209600]
    with pytest.raises(ValueError, match=r"e\.g\. 30d"):
        parse_age("30 days")


def test_prune_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "wpk.db"

    async def fill() -> tuple[str, str]:
        store = SQLiteStore(db)
        cache = WorkflowCache()
        old = (await submit(store, cache, RUNBOOK, {})).execution_id
        kept = (await submit(store, cache, RUNBOOK, {})).execution_id
        await cancel(store, old)
        await store.aclose()
        return old, kept

    old, kept = trio.run(fill)
    time.sleep(1.1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPK_")}
    run = [*WPK, "store", "prune", "--store", f"sqlite:///{db}"]
    done = subprocess.run([*run, "--older-than", "1s"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pruned 1 execution(s) that ended more than 1s ago"
    bad = subprocess.run([*run, "--older-than", "soon"], capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2 and "give a number and a unit" in bad.stderr

    async def check() -> None:
        store = SQLiteStore(db)
        assert await store.get_execution(old) is None and await store.get_execution(kept) is not None
        await store.aclose()

    trio.run(check)
