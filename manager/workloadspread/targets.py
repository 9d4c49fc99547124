"""A WorkloadSpread's target: its pods and replicas as upstream v1.8.3's controller finds them
(a Deployment's pods through the ReplicaSets it controls, a ReplicaSet's, a Job's by selector
and owner) and the version its newest pods carry, from the leader's caches (slim copies)."""

from __future__ import annotations

import copy

from kubekit.labels import selector_matches

from .status import POD_TEMPLATE_HASH, VERSION_IGNORED, controller_of, prune

GROUPS = {"Deployment": "apps", "ReplicaSet": "apps", "Job": "batch"}


def slim_workload(obj: dict) -> dict:
    """A Deployment, ReplicaSet or Job as kept in a cache: what finding its pods and its latest
    version reads (a Deployment's and ReplicaSet's pod template: which ReplicaSet is current)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "ownerReferences",
                                                     "deletionTimestamp")},
            "spec": {k: spec[k] for k in ("replicas", "parallelism", "selector", "template") if k in spec}}


def scale_of(workload: dict | None) -> tuple | None:
    """What sets a workload's pod count (None for one absent): a change of it is urgent."""
    if workload is None:
        return None
    spec = workload.get("spec") or {}
    return spec.get("replicas"), spec.get("parallelism")


def reference(ws: dict) -> dict | None:
    """The targetRef if it names a kind this manager handles, in its API group."""
    ref = (ws.get("spec") or {}).get("targetRef")
    if not ref:
        return None
    kind = ref.get("kind")
    group = str(ref.get("apiVersion", "")).rpartition("/")[0]
    return ref if kind in GROUPS and GROUPS[kind] == group else None


def _deleting(obj: dict | None) -> bool:
    return obj is None or bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _uid(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def owned_replicasets(deployment: dict, replicasets: list[dict]) -> list[dict]:
    """getReplicaSetsForObject: the ReplicaSets the Deployment's selector selects and it
    controls, not being deleted (scaled to 0 or not: they may still have pods)."""
    ns = deployment["metadata"].get("namespace")
    selector = (deployment.get("spec") or {}).get("selector")
    out = []
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        if meta.get("namespace") != ns or _deleting(rs) or not selector_matches(selector, meta.get("labels")):
            continue
        owner = controller_of(rs)
        if owner is not None and owner.get("uid") == _uid(deployment):
            out.append(rs)
    return out


def _owned_by(pod: dict, uids: set[str]) -> bool:
    return any(r.get("uid") in uids for r in (pod.get("metadata") or {}).get("ownerReferences") or [])


def target_pods(ws: dict, workload: dict | None, replicasets: list[dict], pods: list[dict]) -> tuple[list[dict], int]:
    """getPodsForWorkloadSpread: (pods, workload replicas). No workload, one being deleted or
    an unhandled kind: no pods, 0. A Deployment or ReplicaSet scaled to 0: no pods at all
    (upstream lists none), a Job's replicas are its parallelism. Then targetFilter.selector."""
    ref = reference(ws)
    if ref is None or _deleting(workload):
        return [], 0
    ns = (ws.get("metadata") or {}).get("namespace")
    spec = workload.get("spec") or {}
    pods = [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns]
    if ref["kind"] == "Job":
        replicas = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        selector = spec.get("selector")
        found = [p for p in pods if selector is not None and _owned_by(p, {_uid(workload)})
                 and selector_matches(selector, p["metadata"].get("labels"))]
    else:
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        if ref["kind"] == "Deployment":
            uids = {_uid(rs) for rs in owned_replicasets(workload, replicasets)} or {_uid(workload)}
        else:
            uids = {_uid(workload)}
        found = [] if replicas == 0 else [p for p in pods if _owned_by(p, uids)]
    target_filter = (ws.get("spec") or {}).get("targetFilter") or {}
    if target_filter.get("selector") is not None:
        found = [p for p in found if selector_matches(target_filter["selector"], p["metadata"].get("labels"))]
    return found, replicas


def _template_without_hash(template: dict | None) -> dict:
    template = copy.deepcopy(template or {})
    ((template.get("metadata") or {}).get("labels") or {}).pop(POD_TEMPLATE_HASH, None)
    return prune(template)


def latest_version(ws: dict, workload: dict | None, replicasets: list[dict]) -> str | None:
    """getWorkloadLatestVersion: a ReplicaSet's pod-template-hash; for a Deployment, that of the
    ReplicaSet whose template equals the Deployment's (hash aside): None while there is none
    (just after a template change), "" when the workload is gone; a Job has no versions."""
    ref = reference(ws)
    if ref is None or workload is None:
        return ""
    if ref["kind"] == "ReplicaSet":
        return ((workload.get("metadata") or {}).get("labels") or {}).get(POD_TEMPLATE_HASH, "")
    if ref["kind"] == "Deployment":
        wanted = _template_without_hash((workload.get("spec") or {}).get("template"))
        for rs in owned_replicasets(workload, replicasets):
            if _template_without_hash((rs.get("spec") or {}).get("template")) == wanted:
                return ((rs.get("metadata") or {}).get("labels") or {}).get(POD_TEMPLATE_HASH, "")
        return None
    return VERSION_IGNORED
