"""The Kubernetes adapter family (`k8s.*`): the front door (`adapter`), the client wrapper
(`client`), `reads`, `writes`, kubectl's rollout rules (`rollout`), `diff`, `jsonpath`, `resources`
and `target`. Importing it does not import `kubernetes`; the first step that talks to a cluster does.
"""

from .adapter import KubernetesAdapter

__all__ = ["KubernetesAdapter"]
