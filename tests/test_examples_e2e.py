"""End to end: every example runbook, through the installed `wpk` command, as a user runs it.

Each test starts the real console script in a subprocess with `--store memory:` (or SQLite),
a minimal environment (secrets only as `WPK_SECRET_<NAME>`) and an agent configuration file
that points the Kubernetes adapter at the in-process API double (`tests/k8s_double`, reached
through a kubeconfig) and makes the HTTP adapter trust a throwaway CA, whose certificate serves
the local HTTPS stand-in for webhooks, metrics, the database platform and the incident tracker
(`tests/example_services.py`). The assertions are on effects: objects in the double, requests
the stand-in received (and in which order, with which headers), files on disk, processes left.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from example_services import (
    EXAMPLES,
    FakeApi,
    Reply,
    SeenRequest,
    TlsFiles,
    WpkResult,
    deployment,
    make_tls_files,
    pid_alive,
    run_wpk,
    wpk_argv,
    wpk_env,
    write_agent_config,
)
from k8s_double import K8sDouble  # tests/ is on sys.path under pytest

TOKENS = {
    name: f"tok-{name.replace('_', '-')}-{secrets.token_hex(12)}"
    for name in ("slack_token", "chat_token", "metrics_token", "db_api_token", "incident_token")
}
WEB_IMAGE = "registry.example.com/team/web:1.0.0"
NEW_IMAGE = "registry.example.com/team/web:2.0.0"
DNS_RECORD = "orders-db.internal.example.com"


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApi]:
    with FakeApi(tls) as server:
        server.route("POST", "/hook", Reply(200, {"ok": True}))
        yield server


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    """The double with one converged Deployment `web` (2 replicas, app=web)."""
    with K8sDouble(converge_delay=0.05) as double:
        double.create(deployment("web", WEB_IMAGE, 2, {"app": "web"}))
        double.wait_converged()
        yield double


@dataclass(frozen=True, slots=True)
class Cli:
    """How a test invokes `wpk`: one working directory, environment and agent configuration."""

    cwd: Path
    env: dict[str, str]
    config: Path | None

    def __call__(
        self,
        command: str,
        package: Path | str,
        params: Mapping[str, object] | None = None,
        *,
        fmt: str | None = "json",
        store: str | None = "memory:",
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> WpkResult:
        argv = wpk_argv(command, package, params)
        if fmt is not None:
            argv += ["--format", fmt]
        if store is not None:
            argv += ["--store", store]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        return run_wpk(argv, env=self.env if env is None else env, cwd=self.cwd, timeout=timeout)


def _cwd(tmp_path: Path) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


@pytest.fixture
def shell_cli(tmp_path: Path) -> Cli:
    """For the examples that need nothing outside this machine: no agent configuration, no secrets."""
    return Cli(cwd=_cwd(tmp_path), env=wpk_env(tmp_path), config=None)


@pytest.fixture
def cli(tmp_path: Path, tls: TlsFiles, k8s: K8sDouble, api: FakeApi) -> Cli:
    kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig")
    config = write_agent_config(tmp_path / "agent.yaml", ca_file=tls.ca_file, kubeconfig=kubeconfig)
    return Cli(cwd=_cwd(tmp_path), env=wpk_env(tmp_path, TOKENS), config=config)


@pytest.fixture
def demo_dirs() -> Iterator[list[Path]]:
    """Two directories for disk-cleanup, below its allowed root /tmp/wpk-demo, unique to this test."""
    demo_root = Path("/tmp/wpk-demo")
    existed = demo_root.exists()
    root = demo_root / f"e2e-{uuid.uuid4().hex[:12]}"
    yield [root / "logs", root / "cache"]
    shutil.rmtree(root, ignore_errors=True)
    if not existed:
        with contextlib.suppress(OSError):  # another run may be using it
            demo_root.rmdir()


# -- helpers ----------------------------------------------------------------------------------------


def example(name: str) -> Path:
    return EXAMPLES / name


def step_ids(name: str) -> list[str]:
    """Every step id of an example (main steps, then finally), read from its wpk.yaml."""
    spec = yaml.safe_load((example(name) / "wpk.yaml").read_text(encoding="utf-8"))["spec"]
    return [s["id"] for s in spec["steps"]] + [s["id"] for s in spec.get("finally", [])]


def containers(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    assert obj is not None
    return list(obj["spec"]["template"]["spec"]["containers"])


def k8s_snapshot(k8s: K8sDouble) -> dict[str, Any]:
    """Everything a write could change, after the simulated controller has settled."""
    k8s.wait_converged()
    return {
        "resource_version": k8s.resource_version,
        **{kind: k8s.list(kind) for kind in ("Deployment", "ReplicaSet", "Pod")},
    }


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for name, value in TOKENS.items():
            assert value not in text, f"the value of secret {name} leaked into wpk's output"


def serve_example_apis(api: FakeApi, *, error_rate: float = 0.001) -> None:
    """The read endpoints the examples call, answering healthy defaults."""
    api.route("GET", "/healthz", Reply(200, {"status": "ok"}))
    api.route("GET", "/api/v1/error-rate", Reply(200, {"error_rate": error_rate, "requests": 1000}))
    api.route(
        "GET",
        "/v1/clusters/orders/topology",
        Reply(
            200, {"primary": "db-1", "replica": "db-2", "replica_lag_seconds": 1, "primary_writable": True}
        ),
    )
    api.route("POST", "/v1/incidents/INC-1/notes", Reply(201, {"id": 1}))


def canary_params(api: FakeApi) -> dict[str, object]:
    return {
        "app": "web",
        "image": NEW_IMAGE,
        "soak_seconds": 0,
        "metrics_url": f"{api.url}/api/v1/error-rate",
        "notify_url": f"{api.url}/hook",
    }


def db_params(api: FakeApi) -> dict[str, object]:
    return {
        "cluster": "orders",
        "api_base": api.url,
        "dns_record": DNS_RECORD,
        "notify_url": f"{api.url}/hook",
    }


# -- 1. the examples that run on any Linux host -----------------------------------------------------


def test_hello_runs_with_the_default_sqlite_store(shell_cli: Cli, tmp_path: Path) -> None:
    result = shell_cli("run", example("hello"), {"name": "Ada Lovelace"}, store=None)
    assert result.returncode == 0, result.describe()
    record = result.record
    assert record["status"] == "completed"
    assert result.step("greet")["outputs"] == {"greeting": "Hello, Ada Lovelace!", "name_length": 12}
    assert result.step("shell_hello")["outputs"] == {"line": "hello Ada Lovelace"}
    assert result.statuses["long_name"] == "completed"  # 12 > 10 characters
    assert result.statuses["goodbye"] == "completed"
    # No --store: the default SQLite file under $XDG_STATE_HOME holds this execution's events.
    db = tmp_path / ".state" / "wpk" / "wpk.db"
    assert db.is_file(), f"default store not at {db}"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT type, step, data FROM events WHERE execution_id = ? ORDER BY seq",
            (record["execution_id"],),
        ).fetchall()
    types = [row[0] for row in rows]
    assert types[0] == "execution_created" and types[-1] == "execution_closed", types
    assert json.loads(rows[-1][2])["status"] == "completed"
    completed = [step for kind, step, _ in rows if kind == "step_completed"]
    assert sorted(completed) == ["goodbye", "greet", "long_name", "shell_hello"]


def test_parallel_diagnostics_gathers_every_probe(shell_cli: Cli) -> None:
    result = shell_cli("run", example("parallel-diagnostics"))
    assert result.returncode == 0, result.describe()
    assert result.record["status"] == "completed"
    assert set(result.statuses.values()) == {"completed"}, result.statuses
    kernel = result.step("kernel")["outputs"]["line"]
    assert kernel.split()[:2] == [platform.system(), platform.release()]
    assert isinstance(result.step("processes")["outputs"]["count"], int)
    assert result.step("processes")["outputs"]["count"] > 1
    assert result.step("uptime")["outputs"]["seconds"] > 0
    assert result.step("disk")["outputs"]["filesystems"] >= 1
    summary = result.step("summary")["outputs"]["text"]
    assert f"kernel: {kernel}" in summary
    assert "MemTotal" in summary


def test_disk_cleanup_deletes_old_files_and_keeps_fresh_ones(shell_cli: Cli, demo_dirs: list[Path]) -> None:
    # Besides the runbook's own demo seed, one old and one fresh file of ours in the first directory.
    mine = demo_dirs[0]
    mine.mkdir(parents=True)
    old, fresh = mine / "mine-old.log", mine / "mine-fresh.log"
    old.write_text("old\n")
    fresh.write_text("fresh\n")
    thirty_days_ago = time.time() - 30 * 86400
    os.utime(old, (thirty_days_ago, thirty_days_ago))

    result = shell_cli("run", example("disk-cleanup"), {"directories": [str(d) for d in demo_dirs]})
    assert result.returncode == 0, result.describe()
    assert result.record["status"] == "completed"
    for directory in demo_dirs:
        assert not (directory / "wpk-demo-old-1.log").exists()
        assert not (directory / "wpk-demo-old-2.log").exists()
        assert (directory / "wpk-demo-fresh.log").is_file()
    assert not old.exists()
    assert fresh.read_text() == "fresh\n"
    assert result.step("delete")["outputs"] == [{"deleted": 3}, {"deleted": 2}]
    assert [item["outputs"]["count"] for item in result.step("candidates")["items"]] == [3, 2]


# -- 2. dry-run of every example changes nothing ----------------------------------------------------

DryParams = Callable[[FakeApi, list[Path]], dict[str, object]]
DRY_RUNS: dict[str, DryParams] = {
    "hello": lambda api, dirs: {"name": "Ada"},
    "parallel-diagnostics": lambda api, dirs: {},
    "disk-cleanup": lambda api, dirs: {"directories": [str(d) for d in dirs]},
    "restart-deployment": lambda api, dirs: {
        "deployment": "web",
        "min_ready": 5,  # 2 ready < 5: the restart is planned (a dryRun=All write)
        "notify_url": f"{api.url}/hook",
    },
    "scale-for-peak": lambda api, dirs: {
        "deployment": "web",
        "replicas": 5,
        "health_url": f"{api.url}/healthz",
    },
    "canary": lambda api, dirs: canary_params(api),
    "db-failover": lambda api, dirs: db_params(api),
    "incident-snapshot": lambda api, dirs: {
        "deployment": "web",
        "app": "web",
        "incident_id": "INC-1",
        "incident_api": api.url,
    },
}
DRY_RUN_UNKNOWN = dict.fromkeys(
    ("restart-deployment", "scale-for-peak", "canary", "db-failover", "disk-cleanup"), 3
)
K8S_WRITERS = {"restart-deployment", "scale-for-peak", "canary"}  # they plan k8s writes in a dry-run
# What a dry-run may send to the HTTP APIs: the GETs it executes for real, nothing else.
DRY_RUN_READS = {
    "db-failover": ["/v1/clusters/orders/topology", "/v1/clusters/orders/topology"],  # topology, verify
    "scale-for-peak": ["/healthz"],
}


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("name", sorted(DRY_RUNS))
def test_dry_run_of_every_example_plans_and_changes_nothing(
    name: str, fmt: str, cli: Cli, k8s: K8sDouble, api: FakeApi, demo_dirs: list[Path]
) -> None:
    serve_example_apis(api)
    before = k8s_snapshot(k8s)
    k8s.clear_requests()

    result = cli("dry-run", example(name), DRY_RUNS[name](api, demo_dirs), fmt=fmt)

    # 0: will pass; 3: unknown (what follows a simulated write depends on it: a wait on the
    # change, a health check after it). Never 1: no example fails against healthy services.
    assert result.returncode == DRY_RUN_UNKNOWN.get(name, 0), result.describe()
    metadata = yaml.safe_load((example(name) / "wpk.yaml").read_text(encoding="utf-8"))["metadata"]
    if fmt == "json":
        plan = result.record["plan"]
        assert [s["id"] for s in plan["steps"]] == step_ids(name)
        assert result.record["dry_run"] is True
    else:
        lines = result.stdout.splitlines()
        assert lines[0] == f"Dry-run plan for {metadata['name']}-{metadata['version']}:", result.stdout
        for step in step_ids(name):
            assert any(f" {step} " in line for line in lines[1:]), f"{step} missing from the plan"
    assert_no_secret(result.stdout, result.stderr)
    # Kubernetes: every write was a server-side dry-run, and nothing changed.
    writes = k8s.writes()
    real = [(w.method, w.path, w.query) for w in writes if "All" not in w.query.get("dryRun", [])]
    assert real == [], "a dry-run changed Kubernetes"
    if name in K8S_WRITERS:
        assert writes, "the planned k8s write never reached the API server as a dryRun=All request"
    assert k8s_snapshot(k8s) == before
    # HTTP APIs: the executed reads only.
    assert [(r.method, r.path) for r in api.requests if r.method != "GET"] == []
    assert [r.path for r in api.requests] == DRY_RUN_READS.get(name, [])
    # Local effects: nothing in the working directory, no demo directories created.
    assert list(cli.cwd.iterdir()) == []
    assert not any(d.exists() for d in demo_dirs)


# -- 3. restart-deployment -------------------------------------------------------------------------


def test_restart_deployment_restarts_waits_and_notifies(cli: Cli, k8s: K8sDouble, api: FakeApi) -> None:
    for pod in k8s.list("Pod", "default"):
        k8s.set_pod_unready(pod["metadata"]["name"])
    k8s.wait_converged()
    assert (k8s.get("Deployment", "web") or {})["status"].get("readyReplicas", 0) == 0

    result = cli("run", example("restart-deployment"), {"deployment": "web", "notify_url": f"{api.url}/hook"})

    assert result.returncode == 0, result.describe()
    assert result.record["status"] == "completed"
    assert result.statuses == {
        "check": "completed",
        "restart": "completed",
        "wait": "completed",
        "notify": "completed",
    }
    assert result.step("check")["outputs"]["ready"] == 0
    web = k8s.get("Deployment", "web")
    assert web is not None
    annotations = web["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    k8s.wait_converged()
    status = (k8s.get("Deployment", "web") or {})["status"]
    assert status.get("readyReplicas") == 2 and status.get("updatedReplicas") == 2
    restarts = [w for w in k8s.writes() if not w.dry_run]
    assert len(restarts) == 1 and restarts[0].method == "PATCH"
    hooks = api.to("/hook")
    assert len(hooks) == 1
    assert hooks[0].headers.get("authorization") == f"Bearer {TOKENS['slack_token']}"
    assert "restart=completed, rollout=completed" in hooks[0].body["text"]
    assert_no_secret(result.stdout, result.stderr)


# -- 4. scale-for-peak -----------------------------------------------------------------------------


@pytest.mark.slow
def test_scale_for_peak_scales_up_and_rolls_back_on_a_failed_health_gate(
    cli: Cli, k8s: K8sDouble, api: FakeApi
) -> None:
    health = f"{api.url}/healthz"
    api.route("GET", "/healthz", Reply(200, {"status": "ok"}))
    up = cli("run", example("scale-for-peak"), {"deployment": "web", "replicas": 5, "health_url": health})
    assert up.returncode == 0, up.describe()
    assert up.record["status"] == "completed"
    assert up.step("scale_up")["outputs"] == {"previous": 2}
    assert (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 5

    # Now the service is unhealthy: 503 (retried), 503 again, then 404 (not retryable, so the run
    # does not sit through all five attempts of random backoff, up to 65 s).
    answers = iter([Reply(503, {"status": "unavailable"}), Reply(503, {"status": "unavailable"})])

    def unhealthy(_request: SeenRequest) -> Reply:
        return next(answers, Reply(404, {"status": "gone"}))

    api.route("GET", "/healthz", unhealthy)
    down = cli("run", example("scale-for-peak"), {"deployment": "web", "replicas": 8, "health_url": health})

    assert down.returncode == 1, down.describe()
    assert down.record["status"] == "rolled_back"
    assert down.step("scale_up")["status"] == "compensated"
    assert down.step("scale_up")["outputs"] == {"previous": 5}
    gate = down.step("health_gate")
    assert gate["status"] == "failed" and gate["attempts"] == 3, gate
    assert "404" in gate["error"]
    assert len(api.to("/healthz")) == 1 + 3
    assert (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 5
    scales = [(w.method, w.body["spec"]["replicas"]) for w in k8s.writes() if w.path.endswith("/scale")]
    assert [replicas for _, replicas in scales] == [5, 8, 5], scales


# -- 5. canary ---------------------------------------------------------------------------------------


def test_canary_with_a_bad_error_rate_is_removed_and_main_untouched(
    cli: Cli, k8s: K8sDouble, api: FakeApi
) -> None:
    serve_example_apis(api, error_rate=0.5)
    main_before = k8s.get("Deployment", "web")
    assert main_before is not None

    result = cli("run", example("canary"), canary_params(api))

    assert result.returncode == 1, result.describe()
    assert result.record["status"] == "rolled_back"
    assert result.step("reject")["status"] == "failed"
    assert "error rate 0.5 is above 0.01" in result.step("reject")["error"]
    assert result.step("deploy_canary")["status"] == "compensated"
    assert result.statuses["promote"] == "skipped"
    # The canary really existed (applied for real), and rollback removed it.
    canary_writes = [
        (w.method, w.dry_run) for w in k8s.writes() if w.path.endswith("/deployments/web-canary")
    ]
    assert ("PATCH", False) in canary_writes and ("DELETE", False) in canary_writes, canary_writes
    k8s.wait_converged()
    assert k8s.get("Deployment", "web-canary") is None
    assert not [p for p in k8s.list("Pod", "default") if p["metadata"]["labels"].get("track") == "canary"]
    main_after = k8s.get("Deployment", "web")
    assert main_after is not None
    assert main_after["spec"] == main_before["spec"]
    assert main_after["metadata"]["generation"] == main_before["metadata"]["generation"]
    reads = api.to("/api/v1/error-rate")
    assert len(reads) == 1
    assert reads[0].headers.get("authorization") == f"Bearer {TOKENS['metrics_token']}"
    assert reads[0].query == {"namespace": ["default"], "deployment": ["web-canary"], "window": ["0s"]}
    assert_no_secret(result.stdout, result.stderr)


def test_canary_with_a_good_error_rate_is_promoted(cli: Cli, k8s: K8sDouble, api: FakeApi) -> None:
    serve_example_apis(api, error_rate=0.001)

    result = cli("run", example("canary"), canary_params(api))

    assert result.returncode == 0, result.describe()
    assert result.record["status"] == "completed"
    assert result.step("error_rate")["outputs"] == {"error_rate": 0.001, "requests": 1000}
    for step in ("deploy_canary", "wait_canary", "promote", "wait_promoted", "remove_canary", "notify"):
        assert result.statuses[step] == "completed", (step, result.statuses)
    assert result.statuses["reject"] == "skipped"
    assert [c["image"] for c in containers(k8s.get("Deployment", "web"))] == [NEW_IMAGE]
    k8s.wait_converged()
    assert k8s.get("Deployment", "web-canary") is None
    hooks = api.to("/hook")
    assert len(hooks) == 1 and "promote=completed" in hooks[0].body["text"]
    assert hooks[0].headers.get("authorization") == f"Bearer {TOKENS['chat_token']}"


# -- 6. db-failover ------------------------------------------------------------------------------------


def test_db_failover_undoes_its_writes_in_reverse_when_verify_fails(
    cli: Cli, api: FakeApi, k8s: K8sDouble, tmp_path: Path
) -> None:
    # The platform accepts every write, but the promotion never takes: db-1 stays primary.
    serve_example_apis(api)
    for action in ("fence", "promote", "demote", "unfence"):
        api.route("POST", f"/v1/clusters/orders/{action}", Reply(200, {"ok": True}))
    api.route("PUT", f"/v1/dns/{DNS_RECORD}", Reply(200, {"ok": True}))
    store_dir = tmp_path / "store"
    store_dir.mkdir()

    # Text format: the live progress (every event, every log line) is part of what must not leak.
    result = cli(
        "run", example("db-failover"), db_params(api), fmt="text", store=f"sqlite:///{store_dir}/x.db"
    )

    assert result.returncode == 1, result.describe()
    summary = [line for line in result.stdout.splitlines() if line.startswith("execution ")]
    assert len(summary) == 1 and ": rolled_back (" in summary[0], result.stdout
    assert "failover did not take: primary is db-1 (expected db-2)" in result.stdout
    writes = api.writes()
    assert [(w.method, w.path) for w in writes] == [
        ("POST", "/v1/clusters/orders/fence"),
        ("POST", "/v1/clusters/orders/promote"),
        ("PUT", f"/v1/dns/{DNS_RECORD}"),
        ("PUT", f"/v1/dns/{DNS_RECORD}"),  # the rollback, in reverse order from here
        ("POST", "/v1/clusters/orders/demote"),
        ("POST", "/v1/clusters/orders/unfence"),
        ("POST", "/hook"),  # finally: after every compensation
    ]
    assert [w.body.get("target") for w in writes[2:4]] == ["db-2", "db-1"]
    assert writes[0].body["node"] == writes[5].body["node"] == "db-1"
    assert writes[1].body["node"] == writes[4].body["node"] == "db-2"
    keys = [w.headers.get("idempotency-key") for w in writes]
    assert all(keys), keys
    assert len(set(keys[:3])) == 3, f"each forward write needs its own key: {keys}"
    # each compensation has its own key: the forward key with ":undo" (never a replay of the change)
    assert keys[3:6] == [keys[2] + ":undo", keys[1] + ":undo", keys[0] + ":undo"], keys
    db_calls = [r for r in api.requests if r.path != "/hook"]
    assert {r.headers.get("authorization") for r in db_calls} == {f"Bearer {TOKENS['db_api_token']}"}
    assert writes[-1].headers.get("authorization") == f"Bearer {TOKENS['chat_token']}"
    assert_no_secret(result.stdout, result.stderr)
    stored = b"".join(p.read_bytes() for p in store_dir.iterdir() if p.is_file())
    assert b"fence_primary" in stored
    for name, value in TOKENS.items():
        assert value.encode() not in stored, f"secret {name} written to the event store"


# -- 7. parameters are data, not shell ------------------------------------------------------------


CONTROL_RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: touch-control, version: 0.1.0, description: Creates a file in the working directory.}
spec:
  steps:
    - {id: touch, uses: shell.run, with: {command: "touch control"}, rollback: none}
"""


def test_hostile_parameter_is_echoed_literally_and_runs_nothing(shell_cli: Cli, tmp_path: Path) -> None:
    hostile = "x; touch f; $(touch g) `touch h` && touch i"
    result = shell_cli("run", example("hello"), {"name": hostile})
    assert result.returncode == 0, result.describe()
    assert result.step("shell_hello")["outputs"] == {"line": f"hello {hostile}"}
    assert result.step("greet")["outputs"]["greeting"] == f"Hello, {hostile}!"
    assert sorted(p.name for p in shell_cli.cwd.iterdir()) == []
    assert not any((tmp_path / name).exists() for name in "fghi")  # nor in $HOME
    # The control: a step's shell does run in this working directory, so the check above can fail.
    control = tmp_path / "control.yaml"
    control.write_text(CONTROL_RUNBOOK, encoding="utf-8")
    assert shell_cli("run", control).returncode == 0
    assert sorted(p.name for p in shell_cli.cwd.iterdir()) == ["control"]


# -- 8, 9. refused before anything runs ---------------------------------------------------------------


def test_missing_secret_exits_2_before_any_request(cli: Cli, k8s: K8sDouble, api: FakeApi) -> None:
    k8s.clear_requests()
    env = {k: v for k, v in cli.env.items() if k != "WPK_SECRET_SLACK_TOKEN"}
    result = cli("run", example("restart-deployment"), {"deployment": "web", "min_ready": 5}, env=env)
    assert result.returncode == 2, result.describe()
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "'slack_token'" in lines[0] and "WPK_SECRET_SLACK_TOKEN" in lines[0], lines
    assert k8s.requests == []
    assert api.requests == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"deployment": "web", "replicas": 0}, "'replicas'"),
        ({"deployment": "web; kubectl delete ns prod", "replicas": 5}, "'deployment'"),
        ({"deployment": "web", "replicas": "many"}, "'replicas'"),
    ],
)
def test_bad_parameter_exits_2_with_one_line_and_runs_nothing(
    params: dict[str, object], named: str, cli: Cli, k8s: K8sDouble, api: FakeApi
) -> None:
    k8s.clear_requests()
    result = cli("run", example("scale-for-peak"), {**params, "health_url": f"{api.url}/healthz"})
    assert result.returncode == 2, result.describe()
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and named in lines[0], lines
    assert "Traceback" not in result.stderr
    assert k8s.requests == []
    assert api.requests == []
    assert (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 2


# -- 10. Ctrl-C ---------------------------------------------------------------------------------------

HANG_RUNBOOK = """\
apiVersion: wpk/v1
kind: Runbook
metadata:
  name: scale-then-hang
  version: 0.1.0
  description: Scale up, then hang in a shell step until interrupted.
spec:
  params:
    pidfile: {type: string, minLength: 1}
  steps:
    - id: scale
      uses: k8s.scale
      with: {kind: Deployment, name: web, namespace: default, replicas: 4}
      rollback: auto
    - id: hang
      needs: [scale]
      uses: shell.run
      with:
        # A grandchild of the step's shell: it must die with the step's process group.
        command: "sleep 300 & echo $! > {{ params.pidfile }}; wait"
      timeout: 10m
      rollback: none
"""


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"wpk exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def test_interrupted_run_rolls_back_and_leaves_no_process(cli: Cli, k8s: K8sDouble, tmp_path: Path) -> None:
    runbook = tmp_path / "hang.yaml"
    runbook.write_text(HANG_RUNBOOK, encoding="utf-8")
    pidfile = tmp_path / "sleep.pid"
    argv: Sequence[str] = wpk_argv("run", runbook, {"pidfile": str(pidfile)})
    argv = [*argv, "--format", "json", "--store", "memory:", "--config", str(cli.config)]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sleep_pid: int | None = None
    try:
        _wait_for(
            lambda: (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 4, 20, "the scale", proc
        )
        _wait_for(lambda: _read_pid(pidfile) is not None, 20, "the sleep's pidfile", proc)
        sleep_pid = _read_pid(pidfile)
        assert sleep_pid is not None and pid_alive(sleep_pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    result = WpkResult(
        argv=list(argv),
        returncode=proc.returncode,
        stdout=out,
        stderr=err,
        seconds=time.monotonic() - started,
    )
    assert result.returncode == 130, result.describe()
    assert "interrupted" in result.stderr
    assert result.record["status"] == "rolled_back", result.record
    assert (k8s.get("Deployment", "web") or {})["spec"]["replicas"] == 2
    assert sleep_pid is not None
    deadline = time.monotonic() + 5
    while pid_alive(sleep_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(sleep_pid), f"the step's sleep (pid {sleep_pid}) outlived the interrupted run"
    assert result.step("scale")["status"] == "compensated"
    assert result.step("hang")["status"] == "cancelled", (
        "the interrupted shell step must be recorded as cancelled (DESIGN §5), not left 'running' "
        "(a cancellation that reaches the runner wrapped in a nursery's BaseExceptionGroup counts too)"
    )


# -- 11. graph ----------------------------------------------------------------------------------------


def _canary_edges() -> list[tuple[str, str]]:
    spec = yaml.safe_load((example("canary") / "wpk.yaml").read_text(encoding="utf-8"))["spec"]
    return [(need, step["id"]) for step in spec["steps"] for need in step.get("needs", [])]


@pytest.mark.parametrize(
    ("fmt", "first", "edge"),
    [("mermaid", "flowchart LR", "  {0} --> {1}"), ("dot", 'digraph "canary-1.0.0" {', '  "{0}" -> "{1}";')],
)
def test_graph_prints_every_edge(shell_cli: Cli, fmt: str, first: str, edge: str) -> None:
    result = shell_cli("graph", example("canary"), fmt=fmt, store=None)
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    assert lines[0] == first
    edges = _canary_edges()
    assert len(edges) == 9
    for need, step in edges:
        assert edge.format(need, step) in lines, (need, step)
    arrow = "-->" if fmt == "mermaid" else "->"
    assert sum(arrow in line for line in lines) == len(edges)
    assert any("notify" in line and "finally" in line for line in lines)
