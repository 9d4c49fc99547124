"""The admission handlers: SidecarSet injection into new pods, SidecarSet defaulting (the
object stored as upstream's webhook stores it) and SidecarSet validation.

They read the watched caches of SidecarSets and namespaces (never the API on the request
path), so an admission costs no extra round trip; pod answers are reused across pods that
differ only in identity (``memo``), so a ReplicaSet's pods cost one injection, not one each.
"""

from __future__ import annotations

import logging
from typing import Callable

from kubekit import quantity

from . import gojson, sidecarset
from .admission import allowed, errored, json_patch, patched, refused
from .informer import Informer
from .memo import Memo, State

log = logging.getLogger("manager.handlers")

SKIPPED_NAMESPACES = ("kube-system",)


def slim_namespace(obj: dict) -> dict:
    meta = obj.get("metadata", {})
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}}}


def slim_sidecarset(obj: dict) -> dict:
    """What injection and status need: the spec, the revision annotations, the status."""
    meta = obj.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k in (sidecarset.HASH_ANNOTATION, sidecarset.HASH_WITHOUT_IMAGE_ANNOTATION)}
    return {"metadata": {"name": meta.get("name"), "generation": meta.get("generation"),
                         "resourceVersion": meta.get("resourceVersion"), "uid": meta.get("uid"),
                         "annotations": annotations},
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


class SidecarSetAdmission:
    def __init__(self, sidecarsets: Informer, namespaces: Informer, own_namespace: str,
                 configuration: Callable[[], dict | None] = lambda: None, gates: dict[str, bool] | None = None):
        """``configuration()``: the data of the ``kruise-configuration`` ConfigMap in the
        manager's namespace (None when absent), read when a SidecarSet with patchPodMetadata is
        validated; ``gates``: the feature gates (options.gate_values)."""
        self.sidecarsets = sidecarsets
        self.namespaces = namespaces
        self.skipped = set(SKIPPED_NAMESPACES) | {own_namespace}
        self.configuration = configuration
        self.gates = gates or {}
        self._memo = Memo(self._mutate_pod)
        self._state: State | None = None

    def _current_state(self) -> State:
        """The SidecarSets the pod rules read; any change to the watched SidecarSets or
        namespaces (a status write too) is a new token, so no reused answer outlives it."""
        versions = (self.sidecarsets.version, self.namespaces.version)
        if self._state is None or self._state.token != versions:
            self._state = State(versions, self.sidecarsets.snapshot())  # read after the versions: never older
        return self._state

    def _namespace_labels(self, name: str) -> dict:
        found = self.namespaces.get(f"/{name}")
        return (found or {}).get("metadata", {}).get("labels") or {"kubernetes.io/metadata.name": name}

    def mutate_pod(self, request: dict) -> dict:
        """Inject every matching, unpaused SidecarSet into a pod being created."""
        return self._memo.answer(request, self._current_state())

    def _mutate_pod(self, request: dict, sidecarsets: list[dict]) -> dict:
        if request.get("operation") != "CREATE" or (request.get("kind") or {}).get("kind") != "Pod":
            return allowed()
        pod = request.get("object")
        if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
            return errored(400, "request.object is not a pod")
        injected = self._inject(request, pod, sidecarsets)
        if not isinstance(injected, tuple):
            return injected
        ops = sidecarset.patch_for(request["object"], injected[0])
        if not ops:
            return allowed()
        return patched(ops, sidecarsets=",".join(injected[1]))

    def _inject(self, request: dict, pod: dict, sidecarsets: list[dict]) -> tuple[dict, list[str]] | dict:
        """(the pod with every matching, unpaused SidecarSet injected, their names), or the
        answer when there is nothing to inject or injection fails."""
        namespace = request.get("namespace") or pod.get("metadata", {}).get("namespace") or ""
        if namespace in self.skipped:
            return allowed()  # never mutate the control plane's own pods
        if not pod.get("metadata", {}).get("namespace"):
            pod = {**pod, "metadata": {**(pod.get("metadata") or {}), "namespace": namespace or "default"}}
        labels = pod.get("metadata", {}).get("labels") or {}
        ns_labels = self._namespace_labels(namespace)
        matching = [s for s in sidecarsets
                    if not ((s.get("spec") or {}).get("injectionStrategy") or {}).get("paused")
                    and sidecarset.selects(s, namespace, labels, ns_labels)]
        if not matching:
            return allowed()
        try:
            return sidecarset.inject(pod, matching)
        except sidecarset.InjectionError as err:
            return errored(500, err)

    def mutate_changed_pod(self, request: dict, pod: dict) -> dict:
        """Inject into ``pod``, the request's pod as an earlier mutation (WorkloadSpread) left
        it; the patch leads from the request's object to the result. Never reused: the
        earlier mutation's answer is this pod's own."""
        if request.get("operation") != "CREATE" or (request.get("kind") or {}).get("kind") != "Pod":
            return allowed()
        if not isinstance(pod.get("spec"), dict):
            return errored(400, "request.object is not a pod")
        injected = self._inject(request, pod, self._current_state().value)
        names: list[str] = []
        if isinstance(injected, tuple):
            pod, names = injected
        elif not injected.get("allowed"):
            return injected
        original = request["object"]
        if not (original.get("metadata") or {}).get("namespace"):
            original = {**original, "metadata": {**(original.get("metadata") or {}),
                                                 "namespace": (pod.get("metadata") or {}).get("namespace")}}
        return patched(json_patch(original, pod), **({"sidecarsets": ",".join(names)} if names else {}))

    def mutate_sidecarset(self, request: dict) -> dict:
        """Default a SidecarSet being created or updated and add its revision hashes, so the
        stored object is the one upstream's webhook has stored."""
        if request.get("operation") not in ("CREATE", "UPDATE"):
            return allowed()
        obj = request.get("object")
        if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict):
            return errored(400, "request.object is not a SidecarSet")
        try:
            stored = sidecarset.defaulted(obj)
        except (gojson.DecodeError, quantity.QuantityError) as err:
            return errored(400, err)
        ops = []
        if stored["spec"] != obj["spec"]:
            ops.append({"op": "add", "path": "/spec", "value": stored["spec"]})
        if stored["metadata"].get("annotations") != (obj.get("metadata") or {}).get("annotations"):
            ops.append({"op": "add", "path": "/metadata/annotations", "value": stored["metadata"]["annotations"]})
        return patched(ops)

    def validate_sidecarset(self, request: dict) -> dict:
        """Upstream's verdict: a refusal is an error answer with code 500, as upstream's
        handler returns (admission.Errored(http.StatusInternalServerError, ...))."""
        if request.get("operation") not in ("CREATE", "UPDATE"):
            return allowed()
        obj = request.get("object")
        if not isinstance(obj, dict):
            return errored(400, "request.object is not a SidecarSet")
        previous = request.get("oldObject") if request.get("operation") == "UPDATE" else None
        try:
            configuration = self.configuration() if (obj.get("spec") or {}).get("patchPodMetadata") else None
        except Exception as err:  # noqa: BLE001 - the API's answer, whatever it is, is the reason
            return errored(500, f"spec.patchPodMetadata: cannot read ConfigMap {sidecarset.CONFIGURATION_NAME}: {err}")

        def namespace_labels(name: str) -> dict | None:
            found = self.namespaces.get(f"/{name}")
            return None if found is None else (found.get("metadata") or {}).get("labels") or {}

        errors = sidecarset.validate(
            obj, self.sidecarsets.snapshot(), previous=previous if isinstance(previous, dict) else None,
            configuration=configuration, defaults_allowed=self.gates.get(sidecarset.PATCH_METADATA_DEFAULTS_ALLOWED, False),
            namespace_labels=namespace_labels)
        if errors:
            name = (obj.get("metadata") or {}).get("name", "")
            return refused(f"SidecarSet {name} is invalid: " + "; ".join(errors[:10]))
        return allowed()
