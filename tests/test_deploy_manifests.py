"""examples/deploy: every manifest accepted by a server-side dry-run, and the properties it promises.

The manifests are applied with the official client's DynamicClient (server-side apply, as
`kubectl apply --server-side --dry-run=server` does) to the Kubernetes API double, which
validates them the way kube-apiserver does for the fields it knows (names, labels, containers,
volumes and mounts, resource quantities, security contexts, RBAC rules and bindings, Secret data)
and stores nothing under `dryRun=All`. Then the documents themselves are checked for what
docs/operations.md says about them: probes on /health, the Prometheus annotations, the token from
a Secret as a file, non-root and read-only containers, the agent configuration accepted by the
adapters' own parsers, and the Grafana dashboard's PromQL against the metric names of DESIGN §7
(parsed by `promtool`, the Prometheus parser).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_double import K8sDouble
from k8s_double.validation import parse_quantity
from kubernetes.client.exceptions import ApiException

from wpk.adapters.api import ApiAdapter
from wpk.adapters.k8s import KubernetesAdapter
from wpk.adapters.shell import ShellAdapter

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "examples" / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
SIDECAR_PORT = 4000

Manifest = dict[str, Any]


def load_manifests() -> list[tuple[str, Manifest]]:
    """(file name, document) for every YAML document in examples/deploy, in `kubectl apply` order."""
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found.append((path.name, doc))
    return found


MANIFESTS = load_manifests()


def one(kind: str, name: str | None = None) -> Manifest:
    matches = [
        m for _, m in MANIFESTS if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod_spec() -> dict[str, Any]:
    return dict(one("Deployment")["spec"]["template"]["spec"])


def container(name: str) -> dict[str, Any]:
    return next(c for c in pod_spec()["containers"] if c["name"] == name)


def flag(args: list[str], name: str) -> str:
    assert name in args, f"wpk serve is not given {name}"
    return args[args.index(name) + 1]


def mount_for(cont: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume mount that holds `path` (the longest mountPath prefix)."""
    mounts = [
        m
        for m in cont.get("volumeMounts", [])
        if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")
    ]
    assert mounts, f"nothing is mounted at {path} in container {cont['name']}"
    return max(mounts, key=lambda m: len(m["mountPath"]))


def volume(name: str) -> dict[str, Any]:
    return next(v for v in pod_spec()["volumes"] if v["name"] == name)


def apply(k8s: K8sDouble, manifest: Manifest, *, dry_run: bool) -> Any:
    dyn = k8s.dynamic_client()
    resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    return resource.server_side_apply(
        body=manifest,
        name=manifest["metadata"]["name"],
        namespace=manifest["metadata"].get("namespace"),
        field_manager="kubectl",
        dry_run="All" if dry_run else None,
    )


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(converge_delay=0.05) as double:
        yield double


# -- the dry-run ---------------------------------------------------------------------------------


def test_every_manifest_is_accepted_by_a_server_side_dry_run_and_nothing_is_stored(k8s: K8sDouble) -> None:
    kinds = {m["kind"] for _, m in MANIFESTS}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
    }
    namespaces = [m for _, m in MANIFESTS if m["kind"] == "Namespace"]
    others = [m for _, m in MANIFESTS if m["kind"] != "Namespace"]
    assert all(m["metadata"].get("namespace") == "shop" for m in others), "every object lives in `shop`"

    # The namespace first: dry-run, then for real (everything else is created inside it).
    for manifest in namespaces:
        answer = apply(k8s, manifest, dry_run=True)
        assert answer.metadata.name == manifest["metadata"]["name"]
        assert k8s.get("Namespace", manifest["metadata"]["name"], None) is None
        apply(k8s, manifest, dry_run=False)
    k8s.clear_requests()
    before = k8s.resource_version

    for manifest in others:
        answer = apply(k8s, manifest, dry_run=True)
        assert answer.kind == manifest["kind"] and answer.metadata.name == manifest["metadata"]["name"]

    writes = k8s.writes()
    assert len(writes) == len(others)
    assert all(w.dry_run and w.status in (200, 201) for w in writes), [(w.path, w.status) for w in writes]
    assert {w.content_type for w in writes} == {"application/apply-patch+yaml"}
    assert k8s.resource_version == before, "a dry-run stored something"
    for manifest in others:
        assert k8s.get(manifest["kind"], manifest["metadata"]["name"], "shop") is None


@pytest.mark.parametrize(
    ("breakage", "field"),
    [
        (lambda d: d["spec"]["template"]["spec"]["volumes"].pop(), "volumeMounts"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][1]["resources"]["requests"].update(
                memory="1Gi"
            ),
            "requests",
        ),
        (lambda d: d["spec"]["template"]["metadata"]["labels"].update(track="canary"), "selector"),
    ],
    ids=["mount-without-volume", "request-above-limit", "selector-mismatch"],
)
def test_the_dry_run_refuses_a_broken_deployment(k8s: K8sDouble, breakage: Any, field: str) -> None:
    """The acceptance above means something: the same dry-run refuses a broken copy with 422."""
    apply(k8s, one("Namespace"), dry_run=False)
    broken = copy.deepcopy(one("Deployment"))
    breakage(broken)
    with pytest.raises(ApiException) as caught:
        apply(k8s, broken, dry_run=True)
    assert caught.value.status == 422
    assert field in json.loads(str(caught.value.body))["message"]


# -- the sidecar container -------------------------------------------------------------------------


def test_wpk_runs_as_a_sidecar_beside_the_application() -> None:
    spec = pod_spec()
    names = [c["name"] for c in spec["containers"]]
    assert names == ["app", "wpk"]
    wpk = container("wpk")
    assert wpk["args"][0] == "serve", "the image's ENTRYPOINT is wpk; args start with the subcommand"
    assert "command" not in wpk, "keep the image's entrypoint"
    assert flag(wpk["args"], "--host") == "0.0.0.0"
    assert flag(wpk["args"], "--port") == str(SIDECAR_PORT)
    assert [p["containerPort"] for p in wpk["ports"]] == [SIDECAR_PORT]
    # A per-pod agent id from the downward API.
    assert flag(wpk["args"], "--agent-id") == "$(POD_NAME)"
    env = {e["name"]: e for e in wpk["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Running executions get --grace seconds on SIGTERM, well inside the pod's termination grace.
    assert int(flag(wpk["args"], "--grace")) + 15 <= spec["terminationGracePeriodSeconds"]
    assert int(flag(wpk["args"], "--capacity")) >= 1


def _probe_port(cont: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in cont["ports"] if p.get("name") == port))


def test_liveness_and_readiness_probe_health_on_the_sidecar_port() -> None:
    wpk = container("wpk")
    for probe in ("livenessProbe", "readinessProbe"):
        get = wpk[probe]["httpGet"]
        assert get["path"] == "/health"
        assert _probe_port(wpk, get["port"]) == SIDECAR_PORT
        assert "httpHeaders" not in get, "/health needs no token"
        assert wpk[probe]["timeoutSeconds"] < wpk[probe]["periodSeconds"]


def test_prometheus_scrape_annotations_point_at_metrics_on_4000() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(SIDECAR_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_api_token_comes_from_a_secret_mounted_as_the_token_file() -> None:
    wpk = container("wpk")
    token_file = flag(wpk["args"], "--token-file")
    mount = mount_for(wpk, token_file)
    assert mount.get("readOnly") is True
    source = volume(mount["name"])["secret"]
    item = next(i for i in source["items"] if i["path"] == token_file.removeprefix(mount["mountPath"] + "/"))
    secret = one("Secret", source["secretName"])
    assert item["key"] in secret["stringData"]
    assert source["defaultMode"] & 0o007 == 0, "the token file is not world-readable"
    # The placeholder is a placeholder: no real token is committed, and none is in the environment.
    assert secret["stringData"][item["key"]].startswith("REPLACE-ME")
    assert not any(e["name"] == "WPK_TOKEN" for e in wpk.get("env", []))


def test_runbook_secrets_come_from_a_secret_directory_with_every_declared_name() -> None:
    wpk = container("wpk")
    secrets_dir = next(e["value"] for e in wpk["env"] if e["name"] == "WPK_SECRETS_DIR")
    mount = mount_for(wpk, secrets_dir)
    assert mount["mountPath"] == secrets_dir and mount.get("readOnly") is True
    secret = one("Secret", volume(mount["name"])["secret"]["secretName"])
    declared: set[str] = set()
    for path in (REPO / "examples").glob("*/wpk.yaml"):
        declared |= set(yaml.safe_load(path.read_text(encoding="utf-8"))["spec"].get("secrets", []))
    assert declared and declared == set(secret["stringData"]), "one key per secret the examples declare"
    assert all(value == "REPLACE-ME" for value in secret["stringData"].values())


def test_containers_are_non_root_read_only_without_capabilities() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for cont in spec["containers"]:
        context = cont["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, cont["name"]
        assert context["allowPrivilegeEscalation"] is False, cont["name"]
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
        assert context.get("privileged") is not True
        assert context.get("runAsUser", spec["securityContext"]["runAsUser"]) != 0


def test_wpk_writes_only_to_empty_dirs() -> None:
    """With a read-only root filesystem, every place wpk writes is an emptyDir mount."""
    wpk = container("wpk")
    store = flag(wpk["args"], "--store")
    assert store.startswith("sqlite:///")
    writable = [store.removeprefix("sqlite://"), "/tmp/x", "/var/cache/wpk/x"]  # store, temp, package cache
    for path in writable:
        mount = mount_for(wpk, path)
        assert "emptyDir" in volume(mount["name"]), path
        assert not mount.get("readOnly")
    for mount in wpk["volumeMounts"]:
        kind = next(k for k in volume(mount["name"]) if k != "name")
        assert (kind == "emptyDir") != bool(mount.get("readOnly")), mount


def test_resources_are_requested_and_limited() -> None:
    for cont in pod_spec()["containers"]:
        resources = cont["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), cont["name"]
        assert "memory" in resources["limits"], cont["name"]
        for name, request in resources["requests"].items():
            limit = resources["limits"].get(name)
            if limit is not None:
                assert parse_quantity(request) <= parse_quantity(limit)  # type: ignore[operator]


def test_only_the_wpk_container_holds_the_service_account_token() -> None:
    spec = pod_spec()
    account = one("ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False
    in_cluster = "/var/run/secrets/kubernetes.io/serviceaccount"
    holders = [
        c["name"]
        for c in spec["containers"]
        if any(m["mountPath"] == in_cluster for m in c.get("volumeMounts", []))
    ]
    assert holders == ["wpk"]
    projected = volume(mount_for(container("wpk"), in_cluster + "/token")["name"])["projected"]["sources"]
    token = next(s["serviceAccountToken"] for s in projected if "serviceAccountToken" in s)
    assert token["path"] == "token" and token["expirationSeconds"] <= 3607
    assert any(s.get("configMap", {}).get("name") == "kube-root-ca.crt" for s in projected)


def test_the_role_is_bound_to_the_sidecar_service_account_only() -> None:
    binding = one("RoleBinding")
    role = one("Role")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": one("ServiceAccount")["metadata"]["name"], "namespace": "shop"}
    ]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
        assert "secrets" not in rule["resources"], "runbook secrets come from files, never from the API"


def test_the_agent_configuration_is_what_the_adapters_accept() -> None:
    wpk = container("wpk")
    config_path = flag(wpk["args"], "--config")
    mount = mount_for(wpk, config_path)
    config_map = one("ConfigMap", volume(mount["name"])["configMap"]["name"])
    document = yaml.safe_load(config_map["data"][config_path.removeprefix(mount["mountPath"] + "/")])
    adapters = document["adapters"]
    assert set(adapters) <= {"core", "shell", "api", "k8s"}
    # The adapters' own parsers: an unknown key or a wrong type would be a startup error.
    KubernetesAdapter(adapters["k8s"])
    ApiAdapter(adapters["api"])
    ShellAdapter(adapters["shell"])
    assert adapters["k8s"]["in_cluster"] is True
    hosts = adapters["api"]["allow_hosts"]
    called = set()
    for path in (REPO / "examples").glob("*/wpk.yaml"):
        called |= set(
            re.findall(r"https://([a-z0-9.-]+)", json.dumps(yaml.safe_load(path.read_text(encoding="utf-8"))))
        )
    assert called, "the examples' default URLs"
    for host in called:  # every HTTPS host the example runbooks call by default is allowed
        assert any(re.fullmatch(glob.replace(".", r"\.").replace("*", ".*"), host) for glob in hosts), host


def test_services_reach_the_app_and_the_sidecar_port() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    sidecar = one("Service", "web-wpk")
    assert set(sidecar["spec"]["selector"].items()) <= set(labels.items())
    assert sidecar["spec"]["selector"] == one("Deployment")["spec"]["selector"]["matchLabels"], (
        "no canary pods"
    )
    (port,) = sidecar["spec"]["ports"]
    assert port["port"] == SIDECAR_PORT and _probe_port(container("wpk"), port["targetPort"]) == SIDECAR_PORT
    app = one("Service", "web")
    assert set(app["spec"]["selector"].items()) <= set(labels.items())


# -- the Grafana dashboard ---------------------------------------------------------------------------

HISTOGRAMS = {
    "workflow_duration_seconds": set(),
    "workflow_step_duration_seconds": {"adapter", "action", "status"},
}
METRICS: dict[str, set[str]] = {  # DESIGN §7: name -> labels
    "workflow_runs_total": {"workflow_name", "status"},
    "workflow_success_total": set(),
    "workflow_failure_total": {"error_type"},
    "active_workflows": set(),
    "workflow_queue_depth": {"band"},
    "workflow_agents": {"state"},
    **{f"{name}_count": labels for name, labels in HISTOGRAMS.items()},
    **{f"{name}_sum": labels for name, labels in HISTOGRAMS.items()},
    **{f"{name}_bucket": labels | {"le"} for name, labels in HISTOGRAMS.items()},
}
TARGET_LABELS = {"instance", "job", "namespace", "pod"}  # added by Prometheus' scrape, not by wpk
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$workflow": ".*"}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def expressions(*, variables: bool = True) -> list[str]:
    """Every panel target's PromQL, and the template variables' `label_values(...)` queries."""
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    if variables:
        exprs += [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def concrete(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Identifiers that are series selectors: not functions, keywords, label names, or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        word = match.group(0)
        if following.startswith("(") or word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]?|e\d+", word):
            continue
        names.add(word)
    return names


def labels_used(expr: str) -> set[str]:
    used = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {g.strip() for g in group.split(",") if g.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return used


def test_dashboard_is_valid_grafana_json_with_unique_panels() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]


def test_every_promql_expression_parses() -> None:
    """Checked by promtool, i.e. by Prometheus' own PromQL parser, as recording rules."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian package `prometheus`)"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"wpk:panel{i}", "expr": concrete(e)}
                    for i, e in enumerate(expressions())
                    if not e.startswith("label_values")
                ],
            }
        ]
    }
    path = Path(subprocess.check_output(["mktemp", "--suffix=.yaml"], text=True).strip())
    try:
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        check = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        path.unlink()
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules['groups'][0]['rules'])} rules found" in check.stdout


def test_every_expression_uses_only_the_metrics_and_labels_of_design_section_7() -> None:
    for expr in expressions():
        variable = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
        if variable:  # a template variable: a metric and one of its labels
            assert variable.group(2) in METRICS[variable.group(1)], expr
            continue
        names = metric_names(expr)
        assert names, expr
        unknown = names - set(METRICS)
        assert not unknown, f"{expr}: not a wpk metric: {unknown}"
        allowed = set().union(*(METRICS[n] for n in names)) | TARGET_LABELS
        assert labels_used(expr) <= allowed, f"{expr}: labels {labels_used(expr) - allowed}"


def test_the_dashboard_shows_every_view_the_operations_page_promises() -> None:
    exprs = [re.sub(r"\s+", " ", e) for e in expressions(variables=False)]

    def has(pattern: str) -> bool:
        return any(re.search(pattern, e) for e in exprs)

    assert has(r"sum by \(status\) \(rate\(workflow_runs_total")
    assert has(r"sum by \(error_type\) \(rate\(workflow_failure_total")
    for quantile in ("0.5", "0.95"):
        assert has(rf"histogram_quantile\({quantile}, sum by \(le\) \(rate\(workflow_duration_seconds_bucket")
    assert has(r"active_workflows")
    assert has(r"sum by \(le, adapter, action\) \(rate\(workflow_step_duration_seconds_bucket")
    assert has(r"sum by \(band\) \(workflow_queue_depth\)")
    assert has(r"sum by \(state\) \(workflow_agents\)")
    used = set().union(*(metric_names(e) for e in exprs))
    assert {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in used} == {
        n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in METRICS
    }, "every metric family of DESIGN §7 appears on the dashboard"
