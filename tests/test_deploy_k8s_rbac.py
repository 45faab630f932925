"""The Role of examples/deploy is exactly what the example runbooks need: no less, no more.

Two derivations, compared with the Role's rules:

- from the runbooks' text: every `k8s.*` step (main steps, rollback bodies, `finally`) of
  examples/*/wpk.yaml, mapped to the API calls its action makes, compensation included (the
  table below is docs/adapters-k8s.md in data form);
- from the wire: the manifests are applied to the Kubernetes API double, which enforces RBAC for
  ServiceAccount tokens as kube-apiserver does, and the Kubernetes examples run through the real
  `wpk` command with the sidecar's ServiceAccount token (run, dry-run, and a failure that rolls
  back an apply and a patch); the double's audit log then holds every (group, resource, verb) the
  sidecar was allowed, and nothing may have been denied.

(In the pod, the agent configuration says `in_cluster: true`; here the same token reaches the
double through a kubeconfig, the only difference being where the token is read from.)

The double's RBAC itself is checked first, through the official client: a ServiceAccount token
can do nothing until a RoleBinding grants it, subresources and verbs are told apart, discovery
stays open, the token dies with its ServiceAccount, and an apply that creates needs `create`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from example_services import (
    EXAMPLES,
    FakeApi,
    Reply,
    TlsFiles,
    WpkResult,
    make_tls_files,
    run_wpk,
    wpk_argv,
    wpk_env,
    write_agent_config,
)
from k8s_double import K8sDouble
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from wpk.adapters.k8s.resources import builtin

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"
NAMESPACE = "shop"
ACCOUNT = "wpk"
SA_USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
NEW_IMAGE = "registry.example.com/shop/web:1.1.0"
TOKENS = {
    name: f"tok-{name}-{secrets.token_hex(8)}"
    for name in ("slack_token", "chat_token", "metrics_token", "incident_token")
}

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def role_permissions() -> set[Permission]:
    (role,) = [m for m in manifests() if m["kind"] == "Role"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# -- derivation 1: from the runbooks' text ---------------------------------------------------------

# docs/adapters-k8s.md: the requests each action sends (R = the step's resource), and those of its
# automatic inverse. `apply` reads first, then PATCHes an apply; creating by apply is also
# authorized as `create`. Restoring a previous object reads it, PUTs it back (or POSTs it when it
# was deleted meanwhile); undoing an apply that created deletes it.
RESTORE = {("R", "get"), ("R", "update"), ("R", "create")}
ACTION_CALLS: dict[str, tuple[set[tuple[str, str]], set[tuple[str, str]]]] = {
    "wait": ({("R", "get")}, set()),
    "scale": ({("R/scale", "get"), ("R/scale", "patch")}, {("R/scale", "get"), ("R/scale", "patch")}),
    "restart": ({("R", "get"), ("R", "patch")}, set()),
    "apply": ({("R", "get"), ("R", "patch"), ("R", "create")}, RESTORE | {("R", "delete")}),
    "patch": ({("R", "get"), ("R", "patch")}, RESTORE),
    "delete": ({("R", "get"), ("R", "delete")}, set()),
}


def step_permissions(action: str, inputs: Mapping[str, Any], rollback: Any) -> set[Permission]:
    if action == "logs":
        needed = {("", "pods/log", "get")}
        return needed | ({("", "pods", "list")} if "label_selector" in inputs else set())
    if action == "events":
        return {("", "events", "list")}
    kind = inputs["manifest"]["kind"] if action == "apply" else inputs.get("kind", "Deployment")
    resource = builtin(kind)
    assert resource is not None, f"{kind} is not a built-in kind"
    if action == "get":
        return {(resource.group, resource.plural, "get" if "name" in inputs else "list")}
    forward, inverse = ACTION_CALLS[action]
    calls = forward | (inverse if rollback in (None, "auto") else set())
    return {(resource.group, r.replace("R", resource.plural), verb) for r, verb in calls}


def runbook_permissions(document: Mapping[str, Any]) -> set[Permission]:
    spec = document["spec"]
    steps = (
        list(spec["steps"]) + list(spec.get("finally", [])) + list(spec.get("rollback", {}).get("steps", []))
    )
    bodies = [(s["uses"], s.get("with", {}), s.get("rollback")) for s in steps]
    bodies += [
        (s["rollback"]["uses"], s["rollback"].get("with", {}), "none")
        for s in steps
        if isinstance(s.get("rollback"), dict)
    ]
    needed: set[Permission] = set()
    for uses, inputs, rollback in bodies:
        adapter, _, action = uses.partition(".")
        if adapter == "k8s":
            needed |= step_permissions(action, inputs, rollback)
    return needed


def test_the_role_is_exactly_what_the_example_runbooks_use_by_their_actions() -> None:
    needed: set[Permission] = set()
    users = []
    for path in sorted(EXAMPLES.glob("*/wpk.yaml")):
        found = runbook_permissions(yaml.safe_load(path.read_text(encoding="utf-8")))
        if found:
            users.append(path.parent.name)
        needed |= found
    assert users == ["canary", "incident-snapshot", "restart-deployment", "scale-for-peak"]
    role = role_permissions()
    assert role - needed == set(), "the Role grants more than the runbooks use"
    assert needed - role == set(), "the runbooks need more than the Role grants"


def test_the_operations_page_lists_exactly_the_role() -> None:
    """docs/operations.md's RBAC table (one row per verb group) says what 20-rbac.yaml grants."""
    text = (DEPLOY.parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    table = text[text.index("| API group | resource | verbs | used by |") :].split("\n\n")[0]
    listed: set[Permission] = set()
    for row in table.splitlines()[2:]:
        group, resource, verbs = (cell.strip().strip("`") for cell in row.strip("|").split("|")[:3])
        for verb in verbs.split(","):
            listed.add(("" if group == "(core)" else group, resource, verb.strip().strip("`")))
    assert listed == role_permissions()


# -- the double's RBAC, through the official client ------------------------------------------------


@pytest.fixture
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble(converge_delay=0.05) as double:
        yield double


def as_user(k8s: K8sDouble, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = k8s.url
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def forbidden(call: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value
    return dict(json.loads(str(caught.value.body)))


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        },
    }


def test_a_service_account_token_is_authorized_by_its_role_bindings_only(k8s: K8sDouble) -> None:
    k8s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    k8s.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}}
    )
    k8s.create(deployment("web"))
    k8s.wait_converged()
    # A TokenRequest over HTTP, as the kubelet asks for a projected token.
    admin: Any = client.CoreV1Api(k8s.api_client())  # models read as Any, as in test_k8s_double
    answer = admin.create_namespaced_service_account_token(
        ACCOUNT,
        NAMESPACE,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["api"], expiration_seconds=3600)
        ),
    )
    token = answer.status.token
    assert token
    apps: Any = client.AppsV1Api(as_user(k8s, token))
    core: Any = client.CoreV1Api(as_user(k8s, token))

    # Nothing is granted yet; the message is kube-apiserver's.
    status = forbidden(lambda: apps.read_namespaced_deployment("web", NAMESPACE))
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'deployments.apps "web" is forbidden: User "{SA_USER}" cannot get resource "deployments" '
        f'in API group "apps" in the namespace "{NAMESPACE}"'
    )
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    # Discovery is open to every authenticated user.
    assert client.VersionApi(as_user(k8s, token)).get_code().git_version

    k8s.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader", "namespace": NAMESPACE},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        }
    )
    k8s.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}],
        }
    )
    assert apps.read_namespaced_deployment("web", NAMESPACE).metadata.name == "web"
    # get is not list, the main resource is not its subresource, and the Role is namespaced.
    assert "cannot list resource" in forbidden(lambda: apps.list_namespaced_deployment(NAMESPACE))["message"]
    assert (
        'cannot get resource "deployments/scale"'
        in forbidden(lambda: apps.read_namespaced_deployment_scale("web", NAMESPACE))["message"]
    )
    assert (
        'cannot get resource "deployments" in API group "apps" in the namespace "default"'
        in forbidden(lambda: apps.read_namespaced_deployment("web", "default"))["message"]
    )
    assert 'cannot list resource "pods"' in forbidden(lambda: core.list_namespaced_pod(NAMESPACE))["message"]
    assert (
        "cannot patch"
        in forbidden(
            lambda: apps.patch_namespaced_deployment(
                "web", NAMESPACE, {"spec": {"replicas": 2}}, dry_run="All"
            )
        )["message"]
    ), "a dry-run is authorized like the real write"
    decisions = [
        (d.attributes.verb, d.attributes.resource_path, d.allowed)
        for d in k8s.decisions()
        if d.user == SA_USER
    ]
    assert ("get", "deployments", True) in decisions and ("patch", "deployments", False) in decisions

    # The token dies with its ServiceAccount (a bound token), even when re-created by name.
    k8s.delete("ServiceAccount", ACCOUNT, NAMESPACE)
    k8s.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}}
    )
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("web", NAMESPACE)
    assert caught.value.status == 401


def test_an_apply_that_creates_needs_create_as_well_as_patch(k8s: K8sDouble) -> None:
    k8s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    k8s.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}}
    )
    k8s.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "patcher", "namespace": NAMESPACE},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}],
        }
    )
    k8s.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "patcher", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "patcher"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}],
        }
    )
    k8s.create(deployment("old"))
    apps: Any = client.AppsV1Api(as_user(k8s, k8s.service_account_token(ACCOUNT, NAMESPACE)))

    def apply(name: str) -> Any:
        return apps.patch_namespaced_deployment(
            name,
            NAMESPACE,
            deployment(name),
            field_manager="wpk",
            dry_run="All",
            _content_type="application/apply-patch+yaml",
        )

    assert apply("old").metadata.name == "old"  # an existing object: patch is enough
    status = forbidden(lambda: apply("new"))
    assert 'cannot create resource "deployments"' in status["message"]


def test_rbac_objects_are_validated_like_the_real_server(k8s: K8sDouble) -> None:
    k8s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    rbac: Any = client.RbacAuthorizationV1Api(k8s.api_client())
    with pytest.raises(ApiException) as caught:
        rbac.create_namespaced_role(
            NAMESPACE,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "bad"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": []},
                    {"verbs": ["get"], "nonResourceURLs": ["/x"]},
                ],
            },
        )
    assert caught.value.status == 422
    causes = {c["field"] for c in json.loads(str(caught.value.body))["details"]["causes"]}
    assert causes == {"rules[0].verbs", "rules[1].nonResourceURLs"}
    with pytest.raises(ApiException) as caught:
        rbac.create_namespaced_role_binding(
            NAMESPACE,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "bad"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Secret", "name": "x"},
                "subjects": [
                    {"kind": "ServiceAccount", "name": "wpk", "apiGroup": "rbac.authorization.k8s.io"}
                ],
            },
        )
    assert caught.value.status == 422
    causes = {c["field"] for c in json.loads(str(caught.value.body))["details"]["causes"]}
    assert causes == {"roleRef.kind", "subjects[0].apiGroup"}
    # A Secret's stringData is write-only: stored base64 in data.
    core: Any = client.CoreV1Api(k8s.api_client())
    secret = core.create_namespaced_secret(
        NAMESPACE,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}},
    )
    assert secret.data == {"token": "YWJj"} and secret.string_data is None and secret.type == "Opaque"


# -- derivation 2: from the wire, running the examples as the sidecar's ServiceAccount --------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


class Sidecar:
    """`wpk` with the sidecar's identity: its ServiceAccount token, its runbook secrets."""

    def __init__(self, tmp_path: Path, tls: TlsFiles, k8s: K8sDouble, token: str) -> None:
        kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE, token=token)
        self.config = write_agent_config(tmp_path / "agent.yaml", ca_file=tls.ca_file, kubeconfig=kubeconfig)
        self.env = wpk_env(tmp_path, TOKENS)
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()

    def __call__(self, command: str, example: str, params: Mapping[str, object]) -> WpkResult:
        argv = wpk_argv(
            command,
            EXAMPLES / example,
            params,
            extra=["--format", "json", "--store", "memory:", "--config", str(self.config)],
        )
        return run_wpk(argv, env=self.env, cwd=self.cwd, timeout=90)


def apply_for_real(k8s: K8sDouble) -> None:
    dyn = k8s.dynamic_client()
    for manifest in manifests():
        resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        resource.server_side_apply(
            body=manifest,
            name=manifest["metadata"]["name"],
            namespace=manifest["metadata"].get("namespace"),
            field_manager="kubectl",
        )


@pytest.mark.slow  # eight `wpk` processes: 12-25 s on two shared cores
def test_the_example_runbooks_run_as_the_sidecar_with_exactly_the_role(
    k8s: K8sDouble, tls: TlsFiles, tmp_path: Path
) -> None:
    apply_for_real(k8s)
    k8s.wait_converged()
    web = k8s.get("Deployment", "web", NAMESPACE)
    assert web is not None and web["status"].get("readyReplicas") == 2
    pods = k8s.list("Pod", NAMESPACE)
    assert [sorted(c["name"] for c in p["spec"]["containers"]) for p in pods] == [["app", "wpk"]] * 2
    for pod in pods:
        k8s.add_pod_log(pod["metadata"]["name"], "GET / 200\n", NAMESPACE, container="app")
    sidecar = Sidecar(tmp_path, tls, k8s, k8s.service_account_token(ACCOUNT, NAMESPACE))
    k8s.clear_decisions()

    with FakeApi(tls) as api:
        api.route("POST", "/hook", Reply(200, {"ok": True}))
        api.route("GET", "/healthz", Reply(200, {"status": "ok"}))
        api.route("GET", "/api/v1/error-rate", Reply(200, {"error_rate": 0.001, "requests": 1000}))
        api.route("POST", "/v1/incidents/INC-7/notes", Reply(201, {"id": 7}))
        common = {"namespace": NAMESPACE}

        restart = {**common, "deployment": "web", "min_ready": 5, "notify_url": f"{api.url}/hook"}
        # exit 3: the outcome is unknown, it depends on the simulated restart (docs/running.md)
        assert sidecar("dry-run", "restart-deployment", restart).returncode == 3
        done = sidecar("run", "restart-deployment", restart)
        assert done.returncode == 0 and done.statuses["restart"] == "completed", done.describe()

        scale = {**common, "deployment": "web", "replicas": 3, "health_url": f"{api.url}/healthz"}
        done = sidecar("run", "scale-for-peak", scale)
        assert done.returncode == 0 and done.step("scale_up")["outputs"] == {"previous": 2}, done.describe()

        canary = {
            **common,
            "app": "web",
            "image": NEW_IMAGE,
            "soak_seconds": 0,
            "metrics_url": f"{api.url}/api/v1/error-rate",
            "notify_url": f"{api.url}/hook",
        }
        assert sidecar("dry-run", "canary", canary).returncode == 3  # unknown, like the restart
        # The promoted rollout fails: rollback restores `web` (PUT) and deletes the created canary.
        k8s.wait_converged()
        k8s.fail_rollouts("web", NAMESPACE)
        done = sidecar("run", "canary", canary)
        assert done.returncode == 1 and done.record["status"] == "rolled_back", done.describe()
        assert done.step("promote")["status"] == "compensated"
        assert done.step("deploy_canary")["status"] == "compensated"
        k8s.heal_rollouts("web", NAMESPACE)
        k8s.wait_converged()
        assert k8s.get("Deployment", "web-canary", NAMESPACE) is None

        snapshot = {
            **common,
            "deployment": "web",
            "app": "web",
            "incident_id": "INC-7",
            "incident_api": api.url,
        }
        done = sidecar("run", "incident-snapshot", snapshot)
        assert done.returncode == 0 and done.statuses["attach"] == "completed", done.describe()
        assert done.step("pods")["outputs"]["count"] == 3
        # Two containers per pod and no `container` input: the API server asks which one (not 403).
        errors = [item["error"] for item in done.step("logs")["items"]]
        assert errors and all("a container name must be specified" in e for e in errors), errors

    decisions = [d for d in k8s.decisions() if d.user == SA_USER]
    denied = [(d.attributes.verb, d.attributes.path) for d in decisions if not d.allowed]
    assert denied == [], "the Role is missing a permission the examples use"
    used = {
        (d.attributes.api_group, d.attributes.resource_path, d.attributes.verb)
        for d in decisions
        if d.attributes.resource_request
    }
    assert used == role_permissions(), (
        f"granted but unused: {role_permissions() - used}; used but not granted: {used - role_permissions()}"
    )
    assert not [r for r in k8s.requests if r.user == SA_USER and r.status == 403]

    # Least privilege has teeth: the same runbook outside the namespace fails with the API's 403.
    elsewhere = sidecar("run", "restart-deployment", {**restart, "namespace": "default"})
    assert elsewhere.returncode == 1
    assert (
        "forbidden" in elsewhere.step("check")["error"]
        and "cannot get resource" in elsewhere.step("check")["error"]
    )
