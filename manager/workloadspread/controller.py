"""The leader-only WorkloadSpread controller: for every WorkloadSpread, each pass annotates
the pods it adopts (created before it: matched by node), patches its workload's pods'
deletion cost, writes its status (optimistic concurrency: a 409 means the
webhook wrote first, so the next pass recomputes from the newer object) and deletes the pods
the Adaptive strategy reschedules, in upstream v1.8.3's order. The decisions are
:mod:`.status`'s; this module only reads caches and writes.

It reuses the SidecarSet controller's cluster-wide pod cache (its slim pods carry a
``workloadspread`` part, :func:`.status.slim_pod`) and watches Deployments, ReplicaSets and
Jobs itself (whole objects but managedFields: ``targetFilter.replicasPathList`` may name any
field), only while leading. Every write passes the lease gate first.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from kubekit.api import ApiError, Client
from kubekit.kruise import POD_DELETION_COST_ANNOTATION

from ..events import WARNING, EventRecorder, involved
from ..informer import Informer
from ..reconciler import NotLeading, Reconciler
from . import status as ws_status
from . import subsets, targets

log = logging.getLogger("manager.workloadspread")

GROUP_VERSION = "apps.kruise.io/v1alpha1"
COMPONENT = "workloadspread-controller"  # upstream's controller name: its Events' source
WORKLOADS = {"Deployment": "/apis/apps/v1/deployments", "ReplicaSet": "/apis/apps/v1/replicasets",
             "Job": "/apis/batch/v1/jobs"}


def status_path(namespace: str, name: str) -> str:
    return f"/apis/apps.kruise.io/v1alpha1/namespaces/{namespace}/workloadspreads/{name}/status"


class WorkloadSpreadController(Reconciler):
    """``pods``: returns the pod Informer in use (the SidecarSet controller starts a new one each
    time this replica leads); ``clock``: epoch seconds, for the status's timeouts."""

    thread_name = "workloadspread controller"

    def __init__(self, client: Client, elector, workloadspreads: Informer, pods: Callable[[], Informer | None],
                 resync: float = 30.0, min_interval: float = 0.5, clock: Callable[[], float] = time.time,
                 configuration: Callable[[], dict | None] | None = None):
        super().__init__(client, elector, resync, min_interval)
        self.configuration = configuration  # the kruise-configuration ConfigMap's data (None: none)
        self._config: tuple | None = None  # this pass's read: (data, None) or (None, error)
        self.workloadspreads = workloadspreads
        self.pods_source = pods
        self.clock = clock
        self.workloads: dict[str, Informer] = {}
        self.pods: Informer | None = None
        self._nodes: dict[str, dict | None] = {}  # this pass's node reads
        self._due: dict[str, float] = {}  # WorkloadSpread key -> monotonic time it must be looked at again
        self.recorder = EventRecorder(client, component=COMPONENT)
        self._spread: dict | None = None  # the WorkloadSpread this pass syncs, for its Events

    def caches(self) -> tuple:
        return self.pods, self.workloadspreads, *self.workloads.values()

    def due(self, now: float) -> bool:
        return any(at <= now for at in self._due.values())

    def start(self) -> None:
        """Called once this replica leads (after the SidecarSet controller, whose pod cache it reads)."""
        self.workloadspreads.on_change = self._changed
        self.pods = self.pods_source()
        self.workloads = {kind: Informer(self.client, path, transform=targets.slim_workload, on_change=self.workload_changed,
                                         name=kind.lower() + "s").start()
                          for kind, path in WORKLOADS.items()}
        self.start_loop()

    def stop(self) -> None:
        super().stop()
        for informer in self.workloads.values():
            informer.stop()

    def workload_changed(self, _kind: str, old: dict | None, new: dict | None) -> None:
        """A target's replicas changed: percent limits and missingReplicas move with them, and
        the webhook admits the workload's new pods against the status written next, so that
        pass runs at once (upstream's controller reconciles on the event too)."""
        if targets.scale_of(old) != targets.scale_of(new):
            self._changed_urgently()
        else:
            self._changed()

    def pod_changed(self, *_args) -> None:
        """The pod cache's handler (a pod came, went, or changed)."""
        self._dirty.set()

    def sync_all(self) -> None:
        pods = self.pods.snapshot() if self.pods is not None else []
        by_namespace: dict[str, list[dict]] = {}
        for pod in pods:
            part = pod.get("workloadspread")
            if part is not None:
                by_namespace.setdefault(part["metadata"].get("namespace"), []).append(part)
        replicasets = self.workloads["ReplicaSet"].snapshot() if "ReplicaSet" in self.workloads else []
        self._nodes = {}
        self._config = None
        seen = set()
        for ws in self.workloadspreads.snapshot():
            key = Informer.key(ws)
            seen.add(key)
            self._due.pop(key, None)
            try:
                self.sync_one(ws, by_namespace.get(ws["metadata"].get("namespace"), []), replicasets)
            except Exception:  # one WorkloadSpread's bug must not stop the others
                log.exception("WorkloadSpread %s not synced", key)
                self._retry(key, 5.0)
        for key in list(self._due):
            if key not in seen:
                self._due.pop(key, None)

    def _retry(self, key: str, seconds: float) -> None:
        at = time.monotonic() + max(0.0, seconds)
        self._due[key] = min(self._due.get(key, at), at)

    def sync_one(self, ws: dict, pods: list[dict], replicasets: list[dict]) -> None:
        """syncWorkloadSpread: deletion costs first, then the status, then the rescheduled pods."""
        meta = ws["metadata"]
        key = Informer.key(ws)
        if meta.get("deletionTimestamp"):
            return
        ref = targets.reference(ws)
        if ref is None:
            return  # no target, or a kind this manager does not handle (refused at admission)
        ns = meta.get("namespace")
        self._spread = ws
        workload = self.workloads[ref["kind"]].get(f"{ns}/{ref.get('name')}")
        try:
            found, replicas = targets.target_pods(ws, workload, replicasets, pods, configuration=self._whitelist_data)
        except subsets.BadValue as err:  # a replicas path or whitelist upstream cannot read either
            log.warning("WorkloadSpread %s not synced (as upstream's reconcile fails): %s", key, err)
            self._retry(key, 5.0)
            return
        latest = targets.latest_version(ws, workload, replicasets) if ref["kind"] in ws_status.DELETION_COST_KINDS else ""
        try:
            plan = ws_status.plan(ws, found, replicas, self.clock(), target_kind=ref["kind"], latest_version=latest,
                                  nodes=self._node)
        except ValueError as err:  # a Deployment's new ReplicaSet not seen yet: upstream retries
            log.info("WorkloadSpread %s waits: %s", key, err)
            self._retry(key, 1.0)
            return
        for name, patch in plan.adopt.items():
            if not self._patch_pod(ns, name, patch, "adopted into its node's subset"):
                self._retry(key, 1.0)
                return
        for name, cost in plan.costs.items():
            if not self._patch_cost(ns, name, cost):
                self._retry(key, 1.0)
                return
        if not ws_status.status_equal(plan.status, ws.get("status")):
            if not self._write_status(ws, plan.status):
                self._dirty.set()
                return
        for type_, reason, message in plan.events:  # the status they explain is written: once each
            self._event(type_, reason, message)
        for pod in plan.reschedule:
            self._delete(pod)
        if plan.requeue_after is not None:
            self._retry(key, plan.requeue_after)

    def _whitelist_data(self) -> dict | None:
        """The kruise-configuration ConfigMap's data for the custom-workload whitelist (read at
        most once a pass, only for a spread without replicasPathList); a failed read fails
        those spreads' passes, as upstream's getReplicasPathList does."""
        if self.configuration is None:
            return None
        if self._config is None:
            try:
                self._config = (self.configuration(), None)
            except Exception as err:  # noqa: BLE001 - an unreadable ConfigMap fails the pass, whatever the cause
                self._config = (None, err)
        data, err = self._config
        if err is not None:
            raise subsets.BadValue(f"kruise-configuration not read: {err}")
        return data

    def _node(self, name: str) -> dict | None:
        """A node, for pods the spread adopts (read once per pass; None when it is gone)."""
        if name not in self._nodes:
            try:
                self._nodes[name] = self.client.request("GET", f"/api/v1/nodes/{name}", timeout=5.0)
            except ApiError as err:
                if not err.not_found:
                    raise
                self._nodes[name] = None
        return self._nodes[name]

    def _event(self, type_: str, reason: str, message: str) -> None:
        """An Event on the WorkloadSpread this pass syncs, while this replica leads."""
        if self._spread is not None and self.write_timeout() is not None:
            self.recorder.record(involved(self._spread, GROUP_VERSION, "WorkloadSpread"), type_, reason, message)

    def _spread_key(self) -> str:
        return Informer.key(self._spread) if self._spread is not None else ""

    def _patch_cost(self, namespace: str, name: str, cost: str) -> bool:
        if self._patch_pod(namespace, name, {"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: cost}}},
                           f"deletion cost {cost}"):
            return True
        self._event(WARNING, "PatchPodDeletionCostFailed", f"WorkloadSpread {self._spread_key()} failed to patch "
                    f"deletion-cost annotation to {cost} for Pod {namespace}/{name}")
        return False

    def _patch_pod(self, namespace: str, name: str, body: dict, what: str) -> bool:
        try:
            self.write("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body,
                       content_type="application/strategic-merge-patch+json")
        except NotLeading:
            return False
        except ApiError as err:
            if err.not_found:
                return True  # gone meanwhile: nothing to annotate
            log.warning("pod %s/%s not patched (%s): %s", namespace, name, what, err)
            return False
        log.info("pod %s/%s: %s", namespace, name, what)
        return True

    def _write_status(self, ws: dict, status: dict) -> bool:
        meta = ws["metadata"]
        body = {"apiVersion": GROUP_VERSION, "kind": "WorkloadSpread",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "resourceVersion": meta["resourceVersion"]},
                "spec": ws.get("spec") or {}, "status": status}
        try:
            self.write("PUT", status_path(meta["namespace"], meta["name"]), body=body)
        except NotLeading:
            return False
        except ApiError as err:
            if not err.conflict and not err.not_found:
                log.warning("status of WorkloadSpread %s/%s not written: %s", meta["namespace"], meta["name"], err)
            return False
        log.info("status of WorkloadSpread %s/%s written", meta["namespace"], meta["name"],
                 extra={"workloadspread": f"{meta['namespace']}/{meta['name']}", "holder": self.elector.config.identity,
                        "subsets": json.dumps([(s["name"], s["replicas"], s["missingReplicas"])
                                               for s in status.get("subsetStatuses", [])])})
        return True

    def _delete(self, pod: dict) -> None:
        """An Adaptive reschedule: the workload recreates the pod, and the webhook skips the
        subset now marked unschedulable. The uid precondition spares a namesake."""
        meta = pod["metadata"]
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": meta.get("uid")}}
        try:
            self.write("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body=body)
        except NotLeading:
            return
        except ApiError as err:
            if not err.not_found and not err.conflict:
                log.warning("unschedulable pod %s/%s not deleted: %s", meta["namespace"], meta["name"], err)
                subset = (ws_status.injected(pod) or {}).get("subset", "")
                self._event(WARNING, "DeletePodFailed", f"Failed to delete unschedulable Pod {meta['namespace']}/"
                            f"{meta['name']} in Subset {subset} of WorkloadSpread {self._spread_key()}")
            return
        log.info("unschedulable pod %s/%s deleted to be rescheduled", meta["namespace"], meta["name"])
