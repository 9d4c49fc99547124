"""A WorkloadSpread's target: its pods and replicas as upstream v1.8.3's controller finds them
(a Deployment's pods through the ReplicaSets it controls, a ReplicaSet's, a Job's by selector
and owner; ``targetFilter``'s selector and ``replicasPathList`` applied after) and the version
its newest pods carry, from the leader's caches."""

from __future__ import annotations

import copy
import json
from typing import Callable

from kubekit.labels import selector_matches

from .status import prune
from .subsets import TEMPLATE_HASH_LABEL, VERSION_IGNORED, BadValue, controller_of, replicas_from_paths

WHITELIST_KEY = "WorkloadSpread_Watch_Custom_Workload_WhiteList"  # in the kruise-configuration ConfigMap

GROUPS = {"Deployment": "apps", "ReplicaSet": "apps", "Job": "batch"}


def slim_workload(obj: dict) -> dict:
    """A Deployment, ReplicaSet or Job as kept in a cache: the whole object but its
    managedFields. ``targetFilter.replicasPathList`` may name any field (upstream's controller
    reads it from its cache of whole objects), so nothing else can be left out."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


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


def target_pods(ws: dict, workload: dict | None, replicasets: list[dict], pods: list[dict],
                configuration: Callable[[], dict | None] | None = None) -> tuple[list[dict], int]:
    """getPodsForWorkloadSpread: (pods, workload replicas). No workload or an unhandled kind:
    no pods, 0. A Job (getPodJob): its parallelism and the pods it owns that its selector
    selects, being deleted or not. A Deployment or ReplicaSet (GetPodsForRef): being deleted
    or scaled to 0, no pods at all (upstream lists none); else its replicas and the pods of
    the ReplicaSets it controls, or its own. Then filterWorkload: a non-empty
    ``targetFilter.replicasPathList`` (else getReplicasPathList's fallback, the custom-workload
    whitelist's ``replicasPath`` for the target's group, version and kind: ``configuration()``
    gives the kruise-configuration ConfigMap's data, None without one) replaces the replicas
    with the sum at its paths (read from the workload even while it is being deleted; BadValue
    when a path does not resolve to an integer or the whitelist cannot be read: upstream's
    reconcile fails and writes nothing), and a ``selector`` keeps only the pods it selects."""
    ref = reference(ws)
    if ref is None:
        return [], 0
    target_filter = (ws.get("spec") or {}).get("targetFilter") or {}
    paths = target_filter.get("replicasPathList") or (whitelist_paths(configuration(), ref) if configuration else [])
    if workload is None:
        return [], 0
    ns = (ws.get("metadata") or {}).get("namespace")
    spec = workload.get("spec") or {}
    pods = [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns]
    if ref["kind"] == "Job":
        replicas = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        selector = spec.get("selector")
        found = [p for p in pods if selector is not None and _owned_by(p, {_uid(workload)})
                 and selector_matches(selector, p["metadata"].get("labels"))]
    elif _deleting(workload):
        replicas, found = 0, []
    else:
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        if ref["kind"] == "Deployment":
            uids = {_uid(rs) for rs in owned_replicasets(workload, replicasets)} or {_uid(workload)}
        else:
            uids = {_uid(workload)}
        found = [] if replicas == 0 else [p for p in pods if _owned_by(p, uids)]
    if paths:
        replicas = replicas_from_paths(workload, paths)
    if target_filter.get("selector") is not None:
        found = [p for p in found if selector_matches(target_filter["selector"], p["metadata"].get("labels"))]
    return found, replicas


def _template_without_hash(template: dict | None) -> dict:
    template = copy.deepcopy(template or {})
    ((template.get("metadata") or {}).get("labels") or {}).pop(TEMPLATE_HASH_LABEL, None)
    return prune(template)


def latest_version(ws: dict, workload: dict | None, replicasets: list[dict]) -> str | None:
    """getWorkloadLatestVersion: a ReplicaSet's pod-template-hash; for a Deployment, that of the
    ReplicaSet whose template equals the Deployment's (hash aside): None while there is none
    (just after a template change), "" when the workload is gone; a Job has no versions."""
    ref = reference(ws)
    if ref is None or workload is None:
        return ""
    if ref["kind"] == "ReplicaSet":
        return ((workload.get("metadata") or {}).get("labels") or {}).get(TEMPLATE_HASH_LABEL, "")
    if ref["kind"] == "Deployment":
        wanted = _template_without_hash((workload.get("spec") or {}).get("template"))
        for rs in owned_replicasets(workload, replicasets):
            if _template_without_hash((rs.get("spec") or {}).get("template")) == wanted:
                return ((rs.get("metadata") or {}).get("labels") or {}).get(TEMPLATE_HASH_LABEL, "")
        return None
    return VERSION_IGNORED


def whitelist_paths(data: dict | None, ref: dict) -> list[str]:
    """getReplicasPathList's fallback (upstream's controller only; its pod webhook reads a
    native workload's own replicas): the ``replicasPath`` of the first whitelist entry whose
    group, version and kind are the target's, as a one-path list (an entry without one: [""],
    0 replicas); [] when none matches. BadValue where upstream's read errs: the whitelist is
    not the JSON Go decodes into its type, or the target's apiVersion does not parse."""
    text = (data or {}).get(WHITELIST_KEY)
    if text is None:
        return []
    workloads = decode_whitelist(text)
    group, version = parse_group_version(ref.get("apiVersion"))
    for entry in workloads:
        if (entry["group"], entry["version"], entry["kind"]) == (group, version, ref.get("kind")):
            return [entry["replicasPath"]]
    return []


def parse_group_version(api_version) -> tuple[str, str]:
    """schema.ParseGroupVersion."""
    text = api_version or ""
    if text in ("", "/"):
        return "", ""
    parts = text.split("/")
    if len(parts) == 1:
        return "", text
    if len(parts) == 2:
        return parts[0], parts[1]
    raise BadValue(f"unexpected GroupVersion string: {text}")


_GVK = {"group": "string", "version": "string", "kind": "string"}
_ENTRY = {**_GVK, "subresources": [_GVK], "replicaspath": "string"}
_WHITELIST = {"workloads": [_ENTRY]}


def decode_whitelist(text: str) -> list[dict]:
    """json.Unmarshal of the whitelist into upstream's WSCustomWorkloadWhiteList: keys match
    field names case-insensitively (Go folds the Kelvin sign to k and the long s to s), the
    last of duplicate keys wins, unknown keys are ignored, null leaves a field empty; a value
    of another type, invalid JSON, NaN or Infinity is an error. The entries' group, version,
    kind and replicasPath."""
    def refuse(constant):
        raise ValueError(constant)
    try:
        value = json.loads(text, object_pairs_hook=_Pairs, parse_constant=refuse)
    except (TypeError, ValueError) as err:
        raise BadValue(f"custom workload whitelist: {err}") from None
    decoded = _decode(value, _WHITELIST, "whitelist")
    return [{k: (entry or {}).get(k) or "" for k in ("group", "version", "kind")}
            | {"replicasPath": (entry or {}).get("replicaspath") or ""} for entry in (decoded or {}).get("workloads") or []]


class _Pairs(list):
    """A JSON object as its (key, value) pairs, in order, duplicates kept."""


def _fold(name: str) -> str:
    return "".join("k" if c == "\u212a" else "s" if c == "\u017f" else c.lower() if c.isascii() else c for c in name)


def _decode(value, schema, where: str):
    if value is None:
        return None
    if schema == "string":
        if not isinstance(value, str):
            raise BadValue(f"custom workload whitelist: {where}: not a string")
        return value
    if isinstance(schema, list):
        if not isinstance(value, list) or isinstance(value, _Pairs):
            raise BadValue(f"custom workload whitelist: {where}: not an array")
        return [_decode(item, schema[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, _Pairs):
        raise BadValue(f"custom workload whitelist: {where}: not an object")
    out = {}
    for key, item in value:
        field = _fold(key)
        if field not in schema:
            continue
        if item is None:
            if isinstance(schema[field], list):
                out.pop(field, None)  # null sets a slice to nil; elsewhere it does nothing
            continue
        out[field] = _decode(item, schema[field], f"{where}.{key}")
    return out
