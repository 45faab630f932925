"""A wire-level Kubernetes API double for tests (see docs/testing-kubernetes.md).

from k8s_double import K8sDouble

with K8sDouble(token="test-token", converge_delay=0.2) as k8s:
    k8s.url, k8s.token, k8s.api_client(), k8s.write_kubeconfig(path)
    k8s.create(manifest); k8s.get("Deployment", "web"); k8s.list("Pod", "default")
    k8s.requests; k8s.writes(); k8s.add_pod_log("web-0", "line\\n")
    k8s.fail_rollouts("web"); k8s.set_pod_unready("web-abc-0"); k8s.wait_converged()
    k8s.service_account_token("wpk", "shop"); k8s.decisions()
"""

from .double import K8sDouble as K8sDouble
from .errors import ApiError as ApiError
from .rbac import Decision as Decision
from .server import RecordedRequest as RecordedRequest

__all__ = ["ApiError", "Decision", "K8sDouble", "RecordedRequest"]
