"""The leader-only SidecarSet status controller.

It watches pods (slim copies only) and SidecarSets and keeps each SidecarSet's status
(matchedPods, updatedPods, readyPods, updatedReadyPods, observedGeneration, latestRevision,
collisionCount, in upstream's form) current. Every write passes the lease gate first and is
bounded by what is left of it, so a replica that lost or may have lost the Lease never writes.
"""

from __future__ import annotations

import logging

from . import metrics, sidecarset
from .workloadspread import status as workloadspread_status
from .informer import Informer
from kubekit import paths
from kubekit.api import ApiError, Client
from .lease import LeaderElector
from .reconciler import NotLeading, Reconciler

log = logging.getLogger("manager.controller")

WORKLOADSPREAD_OWNERS = ("ReplicaSet", "Job", "Deployment")


def slim_pod(obj: dict) -> dict:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    annotations = meta.get("annotations") or {}
    kept = {k: annotations[k] for k in (sidecarset.HASH_ANNOTATION, sidecarset.WORKING_HOT_UPGRADE_ANNOTATION)
            if k in annotations}
    slim = {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "namespace": meta.get("namespace"), "labels": meta.get("labels") or {}, "annotations": kept,
            "ready": ready and not meta.get("deletionTimestamp")}
    if sidecarset.WORKING_HOT_UPGRADE_ANNOTATION in annotations:  # status reads its containers' images
        slim["images"] = {c.get("name"): c.get("image") for c in (obj.get("spec") or {}).get("containers") or []}
    # One pod cache for both controllers: what the WorkloadSpread controller reads, for the
    # pods of the workloads it handles only.
    if any(ref.get("kind") in WORKLOADSPREAD_OWNERS for ref in meta.get("ownerReferences") or []):
        slim["workloadspread"] = workloadspread_status.slim_pod(obj)
    return slim


class StatusController(Reconciler):
    thread_name = "sidecarset status"

    def __init__(self, client: Client, elector: LeaderElector, sidecarsets: Informer, namespaces: Informer,
                 resync: float = 30.0, min_interval: float = 0.5):
        super().__init__(client, elector, resync, min_interval)
        self.sidecarsets = sidecarsets
        self.namespaces = namespaces
        self.pods: Informer | None = None
        self.pod_listeners: list = []  # others reading the same pod cache (the WorkloadSpread controller)

    def _pod_changed(self, *args) -> None:
        self._dirty.set()
        for listener in self.pod_listeners:
            listener(*args)

    def caches(self) -> tuple:
        return self.pods, self.sidecarsets, self.namespaces

    def start(self) -> None:
        """Called once this replica leads; runs until :meth:`stop` or the lease is lost."""
        self.sidecarsets.on_change = self._changed
        self.pods = Informer(self.client, paths.pods(), transform=slim_pod, on_change=self._pod_changed,
                             name="pods").start()
        self.start_loop()

    def stop(self) -> None:
        super().stop()
        if self.pods is not None:
            self.pods.stop()

    def sync_all(self) -> None:
        pods = self.pods.snapshot()
        ns_labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in self.namespaces.snapshot()}
        for obj in self.sidecarsets.snapshot():
            wanted = sidecarset.compute_status(obj, pods, ns_labels)
            current = {k: obj.get("status", {}).get(k) for k in wanted}
            if current == wanted:
                continue
            if not self._write_status(obj, wanted):
                self._dirty.set()

    def _write_status(self, obj: dict, status: dict) -> bool:
        name = obj["metadata"]["name"]
        body = {"apiVersion": sidecarset.GROUP_VERSION, "kind": "SidecarSet",
                "metadata": {"name": name, "resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": obj.get("spec") or {}, "status": status}
        try:
            self.write("PUT", paths.sidecarsets(name, "status"), body=body)
        except NotLeading:
            return False  # not (surely) the leader: never write
        except ApiError as err:
            if not err.conflict:
                log.warning("status of SidecarSet %s not written: %s", name, err)
            return False
        metrics.STATUS_WRITES.inc()
        log.info("status of SidecarSet %s written", name,
                 extra={"sidecarset": name, "holder": self.elector.config.identity, **status})
        return True
