"""The admission handlers: SidecarSet injection into new pods, and SidecarSet validation.

They read the watched caches of SidecarSets and namespaces (never the API on the request
path), so an admission costs no extra round trip.
"""

from __future__ import annotations

import logging

from . import sidecarset
from .admission import allowed, denied, errored, patched
from .informer import Informer

log = logging.getLogger("manager.handlers")

SKIPPED_NAMESPACES = ("kube-system",)


def slim_namespace(obj: dict) -> dict:
    meta = obj.get("metadata", {})
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}}}


def slim_sidecarset(obj: dict) -> dict:
    meta = obj.get("metadata", {})
    return {"metadata": {"name": meta.get("name"), "generation": meta.get("generation"),
                         "resourceVersion": meta.get("resourceVersion"), "uid": meta.get("uid")},
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


class SidecarSetAdmission:
    def __init__(self, sidecarsets: Informer, namespaces: Informer, own_namespace: str):
        self.sidecarsets = sidecarsets
        self.namespaces = namespaces
        self.skipped = set(SKIPPED_NAMESPACES) | {own_namespace}

    def _namespace_labels(self, name: str) -> dict:
        found = self.namespaces.get(f"/{name}")
        return (found or {}).get("metadata", {}).get("labels") or {"kubernetes.io/metadata.name": name}

    def mutate_pod(self, request: dict) -> dict:
        """Inject every matching, unpaused SidecarSet into a pod being created."""
        if request.get("operation") != "CREATE" or (request.get("kind") or {}).get("kind") != "Pod":
            return allowed()
        pod = request.get("object")
        if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
            return errored(400, "request.object is not a pod")
        namespace = request.get("namespace") or pod.get("metadata", {}).get("namespace") or ""
        if namespace in self.skipped:
            return allowed()  # never mutate the control plane's own pods
        labels = pod.get("metadata", {}).get("labels") or {}
        ns_labels = self._namespace_labels(namespace)
        matching = [s for s in self.sidecarsets.snapshot()
                    if not ((s.get("spec") or {}).get("injectionStrategy") or {}).get("paused")
                    and sidecarset.selects(s, namespace, labels, ns_labels)]
        if not matching:
            return allowed()
        injected_pod, names = sidecarset.inject(pod, matching)
        ops = sidecarset.patch_for(pod, injected_pod)
        if not ops:
            return allowed()
        return patched(ops, sidecarsets=",".join(names))

    def validate_sidecarset(self, request: dict) -> dict:
        if request.get("operation") not in ("CREATE", "UPDATE"):
            return allowed()
        obj = request.get("object")
        if not isinstance(obj, dict):
            return errored(400, "request.object is not a SidecarSet")
        errors = sidecarset.validate(obj, self.sidecarsets.snapshot())
        if errors:
            name = (obj.get("metadata") or {}).get("name", "")
            return denied(f"SidecarSet {name} is invalid: " + "; ".join(errors[:10]))
        return allowed()
