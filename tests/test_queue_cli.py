"""`wpk submit --at/--in`, `wpk queue` and `wpk agents` on a local store; refusals exit 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sidecar_server import WPK

NOOP = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: noop, version: 1.0.0}
spec:
  priority: 20
  steps:
    - {id: a, uses: core.noop}
"""


def wpk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WPK, *args], capture_output=True, text=True, timeout=60)


def test_submit_later_and_list_the_queue(tmp_path: Path) -> None:
    book = tmp_path / "noop.yaml"
    book.write_text(NOOP)
    store = f"sqlite:///{tmp_path / 'wpk.db'}"
    later = wpk("submit", str(book), "--store", store, "--in", "10m", "--format", "json")
    assert later.returncode == 0, later.stderr
    at = wpk("submit", str(book), "--store", store, "--at", "2000-01-01T00:00:00Z", "--priority", "70")
    assert at.returncode == 0, at.stderr
    listing = json.loads(wpk("queue", "--store", store, "--format", "json").stdout)
    first, second = listing["executions"]
    assert first["priority"] == 70 and first["not_before"] == "2000-01-01T00:00:00Z"
    assert first["waiting_reason"] == "no live agent"  # due, but nobody serves this store
    assert second["execution_id"] == json.loads(later.stdout)["execution_id"]
    assert second["priority"] == 20 and second["waiting_reason"].startswith("not before 20")
    text = wpk("queue", "--store", store)
    assert text.returncode == 0 and "2 pending; aging 10 points per minute" in text.stdout
    assert wpk("agents", "list", "--store", store).returncode == 0


def test_refusals_are_one_line_and_exit_2(tmp_path: Path) -> None:
    book = tmp_path / "noop.yaml"
    book.write_text(NOOP)
    store = f"sqlite:///{tmp_path / 'wpk.db'}"
    bad = wpk("submit", str(book), "--store", store, "--in", "soon")
    assert bad.returncode == 2 and bad.stderr.strip() == "wpk: --at/--in: --in 'soon': not a duration: 'soon'"
    bad = wpk("submit", str(book), "--store", store, "--at", "tomorrow")
    assert bad.returncode == 2 and "is not a time: use ISO 8601" in bad.stderr
    bad = wpk("serve", "--aging-rate", "-1", "--store", "memory:")
    assert bad.returncode == 2 and "--aging-rate must be 0..6000" in bad.stderr
    bad = wpk("serve", "--heartbeat-seconds", "40", "--store", "memory:")
    assert (
        bad.returncode == 2
        and "--heartbeat-seconds must be more than 0 and less than --lease-seconds" in bad.stderr
    )
    bad = wpk("agents", "pause", "ghost", "--store", store)
    assert bad.returncode == 1 and bad.stderr.strip() == "wpk: no agent 'ghost'"
    bad = wpk("queue", "--store", store, "--limit", "0")
    assert bad.returncode == 2
