"""The simulated control plane: a thread that converges the cluster `delay` seconds after a change.

A user write (HTTP or test code) arms a timer; when it fires, `Workloads.converge` runs under the
store lock until nothing changes any more (Deployment -> ReplicaSet -> Pods -> status), so
`converge_delay` after a change the cluster is settled, and before that the status still shows
the previous generation, which is what a poller must cope with on a real cluster.
"""

from __future__ import annotations

import threading
import time
import traceback

from .objects import POD, Knobs
from .resources import by_kind
from .store import Change, Store
from .workloads import Workloads

_MAX_ROUNDS = 12


class Controller:
    def __init__(self, store: Store, delay: float) -> None:
        self.store = store
        self.delay = delay
        self.knobs = Knobs()
        self._workloads = Workloads(store, self.knobs)
        self._cond = threading.Condition()
        self._due: float | None = None
        self._busy = False
        self._paused = False
        self._stopped = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="k8s-double-controller", daemon=True)
        store.subscribe(self._on_change)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _on_change(self, change: Change) -> None:
        if change.actor == "controller" or change.rt.kind == "Event":
            return
        self.kick()

    def kick(self) -> None:
        """Schedule a convergence `delay` seconds from the first unhandled change."""
        with self._cond:
            if self._due is None:
                self._due = time.monotonic() + self.delay
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    self._paused or self._due is None or time.monotonic() < self._due
                ):
                    timeout = (
                        None if self._due is None or self._paused else max(self._due - time.monotonic(), 0)
                    )
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                self._due = None
                self._busy = True
            try:
                self.converge_now()
            except Exception as exc:  # a bug in the double: keep it for wait_converged to report
                traceback.print_exc()
                self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def converge_now(self) -> None:
        """One convergence, to a fixed point (each round sees the previous round's writes)."""
        with self.store.transaction():
            for _ in range(_MAX_ROUNDS):
                before = self.store.resource_version
                self._workloads.converge()
                if self.store.resource_version == before:
                    return
        raise RuntimeError(f"k8s double: no fixed point after {_MAX_ROUNDS} rounds (a bug in the double)")

    def wait_converged(self, timeout: float) -> bool:
        """Block until no convergence is pending or running; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._due is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = "paused" if self._paused else "still converging"
                    raise TimeoutError(f"k8s double: cluster not converged after {timeout}s ({state})")
                self._cond.wait(remaining)
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("k8s double controller failed") from error
        return True

    # -- knobs --------------------------------------------------------------------------------

    def fail_rollouts(self, kind: str, namespace: str, name: str, *, progress_deadline: bool) -> None:
        with self.store.transaction():
            self.knobs.failing[(by_kind(kind).kind, namespace, name)] = progress_deadline
        self.kick()

    def heal_rollouts(self, kind: str, namespace: str, name: str) -> None:
        rt = by_kind(kind)
        with self.store.transaction():
            self.knobs.failing.pop((rt.kind, namespace, name), None)
            owner = self.store.get(rt, namespace, name)
            if owner is not None:
                uids = {owner["metadata"]["uid"]} | {
                    o["metadata"]["uid"] for _, o in self.store.dependents(owner["metadata"]["uid"])
                }
                for pod in self.store.list(POD, namespace):
                    refs = pod["metadata"].get("ownerReferences") or []
                    if any(r.get("uid") in uids for r in refs):
                        self.knobs.pod_ready[(namespace, pod["metadata"]["name"])] = True
        self.kick()

    def set_pod_ready(self, namespace: str, pod: str, ready: bool) -> None:
        with self.store.transaction():
            self.knobs.pod_ready[(namespace, pod)] = ready
        self.kick()
