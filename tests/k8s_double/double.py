"""`K8sDouble`: a Kubernetes API server double on 127.0.0.1 for tests of code that uses the official client.

    with K8sDouble(token="test-token", converge_delay=0.2) as k8s:
        api = kubernetes.client.AppsV1Api(k8s.api_client())
        ...
        k8s.wait_converged()

It is a real HTTP server speaking the Kubernetes REST wire format (discovery, CRUD, the three
patch types and server-side apply, `dryRun=All`, the `scale`/`status`/`log`/`token`
subresources, label and field selectors, `Status` errors, a streaming watch, RBAC for
ServiceAccount tokens), plus a simulated controller that rolls Deployments, StatefulSets,
ReplicaSets and DaemonSets out into Pods and Events.

Direct state access (`create`, `get`, `list`, `delete`) bypasses HTTP and is not recorded; every
HTTP request is recorded in `requests`, every authorization decision in `decisions()`. Fault
knobs: `fail_rollouts`, `heal_rollouts`, `set_pod_unready`, `set_pod_ready`,
`pause_controller`/`resume_controller`.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .api import Api
from .controller import Controller
from .errors import ApiError
from .logs import PodLogs
from .rbac import Authenticator, Authorizer, Decision
from .resources import ResourceType, by_api_version_kind, by_kind
from .server import HttpServer, RecordedRequest
from .store import Store
from .watch import WatchStreams

Records = list[RecordedRequest]  # an alias: `list` is also a method name here
Decisions = list[Decision]
_READS = frozenset({"GET", "HEAD"})


class K8sDouble:
    """A started-on-enter, stopped-on-exit Kubernetes API double. Thread-safe."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        converge_delay: float = 0.2,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.converge_delay = converge_delay
        self.store = Store()
        self.logs = PodLogs()
        self.controller = Controller(self.store, converge_delay)
        self._watches = WatchStreams(self.store)
        self.authenticator = Authenticator(self.store, token)
        self.authorizer = Authorizer(self.store)
        self.api = Api(
            self.store,
            self.logs,
            lambda: f"{self._host}:{self._port}",
            self._watches.stream,
            authenticator=self.authenticator,
            authorizer=self.authorizer,
        )
        self._http = HttpServer(self.api, self.authenticator, host, port)
        self._host, self._port = self._http.address
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> K8sDouble:
        self.controller.start()
        self._http.start()
        return self

    def stop(self) -> None:
        """Close handed-out clients, end watches, stop HTTP and the controller (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._watches.close()
        self._http.stop()
        self.controller.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> K8sDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- connection ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def write_kubeconfig(
        self,
        path: str | Path,
        context: str = "double",
        namespace: str = "default",
        *,
        token: str | None = None,
    ) -> Path:
        """Write a kubeconfig whose current context points at the double with a bearer token.

        The token is the admin's unless `token` says otherwise (e.g. a ServiceAccount's, from
        `service_account_token`, to act as a pod with that account would).
        """
        target = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": f"{context}-user", "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return target

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for the double (closed when the double stops)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": f"Bearer {self.token}"}
        api_client = client.ApiClient(configuration)
        with self._clients_lock:
            self._clients.append(api_client)
        return api_client

    def dynamic_client(self) -> Any:
        """A `kubernetes.dynamic.DynamicClient` with a private discovery cache file.

        DynamicClient caches discovery in the system temp dir keyed by host URL; a port reused by
        a later double would otherwise read a stale cache.
        """
        from kubernetes import dynamic

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="k8s-double-")
        cache = str(Path(self._tmp.name) / "discovery.json")
        factory: Any = dynamic.DynamicClient  # untyped library class
        return factory(self.api_client(), cache_file=cache)

    # -- direct state access (not recorded) ---------------------------------------------------

    @staticmethod
    def _type_of(manifest: dict[str, Any]) -> ResourceType:
        rt = by_api_version_kind(str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
        if rt is None:
            raise ValueError(f"the double does not serve {manifest.get('apiVersion')}/{manifest.get('kind')}")
        return rt

    def create(
        self, manifest: dict[str, Any], *, field_manager: str | None = "kubectl-create"
    ) -> dict[str, Any]:
        """Create an object as `kubectl create -f` would (validated; managed by `kubectl-create`).

        Raises `ApiError` (with `.code`, `.reason`) for what the server would refuse.
        """
        rt = self._type_of(manifest)
        namespace = (manifest.get("metadata") or {}).get("namespace") or (
            "default" if rt.namespaced else None
        )
        return self.store.create(rt, manifest, namespace=namespace, manager=field_manager)

    def get(self, kind: str, name: str, namespace: str | None = "default") -> dict[str, Any] | None:
        """The stored object (kind: `Deployment`, `deployment`, `deploy`, `deployments.apps`, …) or None."""
        return self.store.get(by_kind(kind), namespace, name)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of `kind`, in every namespace when `namespace` is None."""
        return self.store.list(by_kind(kind), namespace)

    def delete(
        self, kind: str, name: str, namespace: str = "default", propagation: str | None = None
    ) -> bool:
        """Delete an object (as the API would, with its dependents handled by the controller)."""
        try:
            self.store.delete(by_kind(kind), namespace, name, propagation=propagation)
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return True

    @property
    def resource_version(self) -> int:
        """The global resourceVersion counter (unchanged by dry-run and by reads)."""
        return self.store.resource_version

    # -- recorded requests --------------------------------------------------------------------

    @property
    def requests(self) -> Records:
        """Every HTTP request received, in completion order (a snapshot copy)."""
        return self._http.records()

    def writes(self) -> Records:
        """The recorded requests that are not reads (POST, PUT, PATCH, DELETE)."""
        return [r for r in self._http.records() if r.method not in _READS]

    def clear_requests(self) -> None:
        self._http.clear_records()

    # -- identities and RBAC ------------------------------------------------------------------

    def service_account_token(self, name: str, namespace: str = "default") -> str:
        """A bearer token for an existing ServiceAccount (as a TokenRequest or a pod mount gives).

        Requests with it are authorized by RBAC (the Roles its RoleBindings grant); it stops
        working when the ServiceAccount is deleted. Raises `ApiError` 404 for a missing account.
        """
        return self.authenticator.mint(namespace, name)

    def decisions(self) -> Decisions:
        """Every authorization decision so far (user, attributes, allowed), in order."""
        return self.authorizer.decisions()

    def clear_decisions(self) -> None:
        self.authorizer.clear()

    # -- pod logs -----------------------------------------------------------------------------

    def add_pod_log(
        self,
        pod: str,
        text: str,
        namespace: str = "default",
        container: str | None = None,
        *,
        previous: bool = False,
        at: datetime | None = None,
    ) -> None:
        """Append log lines to a pod's container (default: its only/first container).

        `previous=True` fills the log of the previous (terminated) instance; `at` backdates the
        lines (timezone-aware) for `sinceSeconds`/`sinceTime` tests. The pod may be created later.
        """
        if container is None:
            obj = self.store.get(by_kind("Pod"), namespace, pod)
            containers = [c.get("name") for c in ((obj or {}).get("spec") or {}).get("containers") or []]
            if not containers:
                raise ValueError(f"pod {namespace}/{pod} does not exist yet: pass container=")
            container = str(containers[0])
        self.logs.add(namespace, pod, container, text, previous=previous, at=at)

    # -- controller and fault knobs ----------------------------------------------------------

    def wait_converged(self, timeout: float = 5.0) -> bool:
        """Block until the simulated controller has nothing pending; True, or TimeoutError."""
        return self.controller.wait_converged(timeout)

    def pause_controller(self) -> None:
        """Stop converging (changes queue up) until `resume_controller`."""
        self.controller.pause()

    def resume_controller(self) -> None:
        self.controller.resume()

    def fail_rollouts(
        self,
        name: str,
        namespace: str = "default",
        *,
        kind: str = "Deployment",
        progress_deadline: bool = True,
    ) -> None:
        """Make the rollouts of one workload fail from now on.

        Pods created for it never become ready (Running, Ready=False, a `Unhealthy` warning event);
        a Deployment keeps its old ReplicaSet up, and with `progress_deadline=True` reports
        `Progressing=False` with reason `ProgressDeadlineExceeded` (as if `progressDeadlineSeconds`
        had passed); with `progress_deadline=False` it stays `Progressing=True/ReplicaSetUpdated`
        forever (a hung rollout).
        """
        self.controller.fail_rollouts(kind, namespace, name, progress_deadline=progress_deadline)

    def heal_rollouts(self, name: str, namespace: str = "default", *, kind: str = "Deployment") -> None:
        """Undo `fail_rollouts`: the workload's pods become ready and the rollout completes."""
        self.controller.heal_rollouts(kind, namespace, name)

    def set_pod_unready(self, pod: str, namespace: str = "default") -> None:
        """Make one pod's readiness probe fail (Ready=False); its owner's status follows."""
        self.controller.set_pod_ready(namespace, pod, False)

    def set_pod_ready(self, pod: str, namespace: str = "default") -> None:
        self.controller.set_pod_ready(namespace, pod, True)
