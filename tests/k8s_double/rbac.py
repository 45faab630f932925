"""Authentication and RBAC authorization, as kube-apiserver does them for the types the double serves.

Who: the double's own token is the cluster admin (group `system:masters`, allowed everything);
a token minted for a ServiceAccount (the `serviceaccounts/token` subresource, i.e. a
TokenRequest, or `K8sDouble.service_account_token`) is `system:serviceaccount:<ns>:<name>` in the
groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`, and
stops working when its ServiceAccount is deleted.

What: every request is turned into authorizer attributes exactly as the real `RequestInfoFactory`
does (paths of fewer than three segments are non-resource URLs; GET without a name is `list`, or
`watch` with `watch=true`; DELETE without a name is `deletecollection`; `pods/log` is resource
`pods`, subresource `log`), then checked against the Roles bound by RoleBindings in the request's
namespace (PolicyRule matching with `*`, `resource/subresource`, `*/subresource` and
`resourceNames`). Discovery (`/api`, `/apis/...`, `/version`, `/healthz` …) is open to every
authenticated user (the default `system:discovery` binding). A server-side apply that creates
its object is also authorized as `create` (kube-apiserver's `patch.go`,
`createAuthorizerAttributes`). A denial is a 403 `Forbidden` Status worded like the real one.

Simplifications: ClusterRoles and ClusterRoleBindings are not served, so a RoleBinding to a
ClusterRole grants nothing and cluster-scoped requests are the admin's alone; RBAC escalation
checks (creating a Role with more than one holds) are not made. Every decision is kept in
`decisions` (an audit log) so a test can see exactly what an identity was allowed to do.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .resources import by_kind
from .rest import Request
from .store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
DISCOVERY_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")
_VERB_BY_METHOD = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: its name and groups, as the authenticator hands them on."""

    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups


ADMIN = Identity("kubernetes-admin", (MASTERS, AUTHENTICATED))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks to do (`authorizer.AttributesRecord`)."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def resource_path(self) -> str:
        """`pods/log`, `deployments/scale`, `deployments`: how RBAC rules and messages name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True, slots=True)
class Decision:
    """One authorization decision (the audit log's `authorization.k8s.io/decision`)."""

    user: str
    attributes: Attributes
    allowed: bool


def request_attributes(method: str, path: str, query: Mapping[str, list[str]]) -> Attributes:
    """kube-apiserver's RequestInfoFactory, for the URL forms the double serves."""
    parts = [p for p in path.split("/") if p]
    verb = _VERB_BY_METHOD.get(method.upper(), method.lower())
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return Attributes(verb=method.lower(), path=path, resource_request=False)
    if parts[0] == "apis":
        group, rest = parts[1], parts[3:]
        if len(parts) < 4:  # /apis/<group>/<version>: discovery
            return Attributes(verb=method.lower(), path=path, resource_request=False)
    else:
        group, rest = "", parts[2:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if (query.get("watch") or [""])[0].lower() in ("true", "1") else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, path, True, group, resource, subresource, namespace, name)


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(value in ("*", wanted) for value in values)


def _resource_matches(rule_resources: Iterable[str], attrs: Attributes) -> bool:
    for value in rule_resources:
        if value in ("*", attrs.resource_path):
            return True
        if attrs.subresource and value == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """`rbac.RuleAllows`: verbs, API groups, resources (with subresources) and resource names."""
    if not _matches(rule.get("verbs") or [], attrs.verb):
        return False
    if not attrs.resource_request:
        return any(
            url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    if not _matches(rule.get("apiGroups") or [], attrs.api_group):
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: Mapping[str, Any], user: Identity) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace")
        return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{name}"
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    return False


def _is_discovery(attrs: Attributes) -> bool:
    if attrs.resource_request or attrs.verb not in ("get", "head"):
        return False
    return any(attrs.path == p or attrs.path.startswith(p + "/") for p in DISCOVERY_PATHS)


def forbidden(user: Identity, attrs: Attributes) -> ApiError:
    """The 403 kube-apiserver answers (`responsewriters.forbiddenMessage` + `NewForbidden`)."""
    if not attrs.resource_request:
        message = f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, "Forbidden", message, {})
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    reason = (
        f'User "{user.name}" cannot {attrs.verb} resource "{attrs.resource_path}" '
        f'in API group "{attrs.api_group}" {where}'
    )
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {reason}", details)


class Authenticator:
    """Bearer tokens: the admin token, and tokens minted for ServiceAccounts."""

    def __init__(self, store: Store, admin_token: str) -> None:
        self._store = store
        self._admin = admin_token.encode()
        self._lock = threading.Lock()
        self._minted: dict[str, tuple[str, str, str]] = {}  # token -> (namespace, name, uid)

    def mint(self, namespace: str, name: str) -> str:
        """A token for an existing ServiceAccount (404 when it does not exist)."""
        account = self._store.require(by_kind("ServiceAccount"), namespace, name)
        token = "sa." + secrets.token_urlsafe(32)
        with self._lock:
            self._minted[token] = (namespace, name, str(account["metadata"]["uid"]))
        return token

    def authenticate(self, credential: str) -> Identity | None:
        raw = credential.encode()
        if hmac.compare_digest(raw, self._admin):
            return ADMIN
        with self._lock:
            bound = next((v for k, v in self._minted.items() if hmac.compare_digest(k.encode(), raw)), None)
        if bound is None:
            return None
        namespace, name, uid = bound
        account = self._store.get(by_kind("ServiceAccount"), namespace, name)
        if account is None or account["metadata"].get("uid") != uid:
            return None  # a bound token dies with its ServiceAccount
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED)
        return Identity(f"system:serviceaccount:{namespace}:{name}", groups)


class Authorizer:
    """RBAC over the stored Roles and RoleBindings, with an audit log of every decision."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._decisions: list[Decision] = []

    def _rules(self, user: Identity, namespace: str) -> list[dict[str, Any]]:
        if not namespace:
            return []
        rules: list[dict[str, Any]] = []
        with self._store.transaction():
            for binding in self._store.list(by_kind("RoleBinding"), namespace):
                ref = binding.get("roleRef") or {}
                if ref.get("kind") != "Role" or ref.get("apiGroup") != RBAC_GROUP:
                    continue  # ClusterRoles are not served: such a binding grants nothing here
                if not any(_subject_matches(s, user) for s in binding.get("subjects") or []):
                    continue
                role = self._store.get(by_kind("Role"), namespace, str(ref.get("name")))
                if role is not None:
                    rules += [r for r in role.get("rules") or [] if isinstance(r, dict)]
        return rules

    def allowed(self, user: Identity, attrs: Attributes) -> bool:
        if user.is_admin or _is_discovery(attrs):
            return True
        return any(rule_allows(rule, attrs) for rule in self._rules(user, attrs.namespace))

    def authorize(self, user: Identity, attrs: Attributes) -> None:
        """Record the decision; raise the 403 when denied."""
        allowed = self.allowed(user, attrs)
        with self._lock:
            self._decisions.append(Decision(user.name, attrs, allowed))
        if not allowed:
            raise forbidden(user, attrs)

    def authorize_request(self, request: Request) -> None:
        if request.user is not None:
            self.authorize(request.user, request_attributes(request.method, request.path, request.query))

    def authorize_create_by_apply(self, request: Request, name: str) -> None:
        """A server-side apply that creates its object needs `create` too (patch.go)."""
        if request.user is None:
            return
        attrs = request_attributes(request.method, request.path, request.query)
        self.authorize(
            request.user,
            Attributes(
                "create",
                attrs.path,
                True,
                attrs.api_group,
                attrs.resource,
                attrs.subresource,
                attrs.namespace,
                name,
            ),
        )

    def decisions(self) -> list[Decision]:
        with self._lock:
            return list(self._decisions)

    def clear(self) -> None:
        with self._lock:
            self._decisions.clear()
