"""Pod logs: lines that tests add, served like the kubelet serves them through the API.

`GET /api/v1/namespaces/{ns}/pods/{name}/log` answers plain text, honouring `container`,
`tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes` and `previous`, with the
real server's 400 errors for an ambiguous or unknown container.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import bad_request

LogKey = tuple[str, str, str, bool]  # namespace, pod, container, previous


@dataclass(frozen=True, slots=True)
class LogLine:
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class LogQuery:
    container: str | None = None
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


class PodLogs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[LogKey, list[LogLine]] = {}

    def add(
        self,
        namespace: str,
        pod: str,
        container: str,
        text: str,
        *,
        previous: bool = False,
        at: datetime | None = None,
    ) -> None:
        """Append lines (split on newlines) stamped `at` (default: now)."""
        stamp = at or datetime.now(UTC)
        lines = text.splitlines()
        with self._lock:
            self._lines.setdefault((namespace, pod, container, previous), []).extend(
                LogLine(stamp, line) for line in lines
            )

    def has_previous(self, namespace: str, pod: str, container: str) -> bool:
        with self._lock:
            return (namespace, pod, container, True) in self._lines

    def read(
        self, namespace: str, pod: dict[str, Any], query: LogQuery, *, now: datetime | None = None
    ) -> str:
        """Render the log of one container of `pod` (the stored Pod object)."""
        name = pod["metadata"]["name"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.container
        if container is None:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if query.previous and not self.has_previous(namespace, name, container):
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        with self._lock:
            lines = list(self._lines.get((namespace, name, container, query.previous), []))
        current = now or datetime.now(UTC)
        if query.since_seconds is not None:
            lines = [ln for ln in lines if ln.at >= current - timedelta(seconds=query.since_seconds)]
        if query.since_time is not None:
            lines = [ln for ln in lines if ln.at >= query.since_time]
        if query.tail_lines is not None:
            lines = lines[-query.tail_lines :] if query.tail_lines > 0 else []
        rendered = "".join(
            (f"{ln.at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} " if query.timestamps else "") + ln.text + "\n"
            for ln in lines
        )
        if query.limit_bytes is not None:
            rendered = rendered.encode()[: query.limit_bytes].decode(errors="ignore")
        return rendered
