"""Every example: the rollback its dry-run plans is the rollback a failed run carries out.

For each example, `wpk dry-run --format json` gives the plan; then the same example, with one
step added after all the others that fails (`core.fail`), runs for real through the installed
`wpk` against the Kubernetes double and the local HTTPS stand-in. The rollback the run recorded
(its `rollback_started` event and the compensations after it, read back from the SQLite store)
must be the plan's list, entry for entry and in order; and the targets must be back where the
dry-run found them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from example_services import FakeApi, Reply
from k8s_double import K8sDouble
from test_examples_e2e import (  # the end-to-end fixtures: the double, the HTTPS stand-in, the CLI
    DNS_RECORD,
    DRY_RUNS,
    Cli,
    api,  # noqa: F401 - fixture
    cli,  # noqa: F401 - fixture
    demo_dirs,  # noqa: F401 - fixture
    example,
    k8s,  # noqa: F401 - fixture
    serve_example_apis,
    tls,  # noqa: F401 - fixture
)


def acting(plan: list[dict[str, Any]], execution_ids: tuple[str, str]) -> list[tuple[Any, ...]]:
    dry_id, real_id = execution_ids
    return [
        (u["step"], u.get("item"), u["kind"], u["action"].replace(dry_id, real_id))
        for u in plan
        if u["kind"] != "nothing"
    ]


def with_forced_failure(name: str, target: Path) -> Path:
    doc = yaml.safe_load((example(name) / "wpk.yaml").read_text(encoding="utf-8"))
    steps = doc["spec"]["steps"]
    steps.append(
        {
            "id": "forced_failure",
            "needs": [s["id"] for s in steps],
            "uses": "core.fail",
            "with": {"message": "forced after the last step"},
        }
    )
    target.mkdir()
    (target / "wpk.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return target


def events_of(db: Path) -> list[tuple[str, str | None, int | None, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, step, item, data FROM events ORDER BY execution_id, seq").fetchall()
    return [(t, s, i, json.loads(d) if d else {}) for t, s, i, d in rows]


@pytest.mark.parametrize("name", sorted(DRY_RUNS))
def test_the_rollback_does_what_the_dry_run_planned(
    name: str,
    cli: Cli,  # noqa: F811
    k8s: K8sDouble,  # noqa: F811
    api: FakeApi,  # noqa: F811
    demo_dirs: list[Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    serve_example_apis(api)
    web_before = (k8s.get("Deployment", "web") or {})["spec"]
    for action in ("fence", "promote", "demote", "unfence"):  # db-failover's platform accepts writes
        api.route("POST", f"/v1/clusters/orders/{action}", Reply(200, {"ok": True}))
    api.route("PUT", f"/v1/dns/{DNS_RECORD}", Reply(200, {"ok": True}))
    params = DRY_RUNS[name](api, demo_dirs)
    dry = cli("dry-run", example(name), params)
    assert dry.returncode in (0, 3), dry.describe()
    plan = dry.record["plan"]["rollback"]

    db = tmp_path / "wpk.db"
    real = cli("run", with_forced_failure(name, tmp_path / name), params, store=f"sqlite:///{db}")
    assert real.returncode == 1, real.describe()
    # db-failover fails on its own at its last check (the stand-in never promotes): then the
    # added step is skipped; every other example fails at the added step.
    assert real.statuses["forced_failure"] == ("skipped" if name == "db-failover" else "failed")
    events = events_of(db)
    started = [d for t, *_, d in events if t == "rollback_started"]
    ids = (dry.record["execution_id"], real.record["execution_id"])
    if not acting(plan, ids):
        # Nothing to undo: the run is not rolled back at all (and the plan said so, with reasons).
        assert started == [] or acting(started[0]["plan"], ids) == [], real.describe()
        assert all(u["kind"] == "nothing" and u["action"].startswith("nothing to undo") for u in plan)
        return
    assert len(started) == 1, real.describe()
    assert acting(started[0]["plan"], ids) == acting(plan, ids)
    # Carried out in that order: one finished compensation per entry (per item for for_each).
    with_items = {s for t, s, i, _ in events if t == "compensation_completed" and i is not None}
    done = [
        (s, i)
        for t, s, i, _ in events
        if t in ("compensation_completed", "compensation_failed") and (i is not None or s not in with_items)
    ]
    assert done == [(s, i) for s, i, *_ in acting(plan, ids)]
    # And the Kubernetes targets are back: web as the dry-run found it, no canary left behind.
    web_after = (k8s.get("Deployment", "web") or {})["spec"]
    assert web_after["replicas"] == web_before["replicas"]
    assert web_after["template"]["spec"]["containers"] == web_before["template"]["spec"]["containers"]
    assert k8s.get("Deployment", "web-canary") is None
