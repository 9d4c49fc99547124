"""The pod webhook's rules of WorkloadSpread, as upstream v1.8.3's pkg/util/workloadspread:
which WorkloadSpread a pod's workload belongs to, which subset a new pod joins, what the
subset injects, and the creatingPods/deletingPods bookkeeping in the status. Pure: the clock
and the generated ids come in as arguments, the API reads are the caller's.

Upstream keeps the bookkeeping per pod version (``status.versionedSubsetStatuses``, keyed by
the pod's ``pod-template-hash`` for Deployment and ReplicaSet pods, ``versionIgnored`` for
others); the webhook never reads ``status.subsetStatuses`` nor ``status.observedGeneration``
(a status of an older generation is used as it is: the controller reconciles it).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Callable

from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION
from kubekit.labels import selector_matches
from kubekit.timestamps import metav1_time

from . import strategicpatch

VERSION_IGNORED = "versionIgnored"
TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_HASH_LABEL = "controller-revision-hash"
VERSIONED_KINDS = ("deployment", "replicaset")  # upstream's --ws-enabled-versioned-status default
SCHEDULABLE = "Schedulable"
CREATE, DELETE, EVICTION = "Create", "Delete", "Eviction"

# upstream's list of workloads a pod's owner may be (a pod owned by anything else is skipped)
WORKLOADS = (("Deployment", ("apps",)), ("CloneSet", ("apps.kruise.io",)), ("ReplicaSet", ("apps",)),
             ("Job", ("batch",)), ("StatefulSet", ("apps", "apps.kruise.io")))
# the targets this manager serves (and the owners it may read to reach them)
SUPPORTED = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("batch", "Job")}


class BadValue(ValueError):
    """A value upstream's parsers refuse (an apiVersion, an IntOrString, a replicas path)."""


def group_of(api_version) -> str:
    """schema.ParseGroupVersion's group: "" and "v1" have none; more than one '/' is an error."""
    text = api_version or ""
    if text in ("", "/"):
        return ""
    parts = text.split("/")
    if len(parts) == 1:
        return ""
    if len(parts) == 2:
        return parts[0]
    raise BadValue(f"unexpected GroupVersion string: {text}")


def controller_of(obj: dict) -> dict | None:
    """metav1.GetControllerOf: the owner reference with ``controller: true``."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def is_active(pod: dict) -> bool:
    """kubecontroller.IsPodActive."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_workload(ref: dict | None) -> bool:
    """matchReference: the owner is one of upstream's workload kinds (a bad apiVersion: no)."""
    if not ref:
        return False
    try:
        group = group_of(ref.get("apiVersion"))
    except BadValue:
        return False
    return any(ref.get("kind") == kind and group in groups for kind, groups in WORKLOADS)


def same_reference(target: dict, owner: dict) -> bool:
    """isReferenceEqual's first test: same group, kind and name (BadValue on a bad apiVersion)."""
    return (group_of(target.get("apiVersion")) == group_of(owner.get("apiVersion"))
            and target.get("kind") == owner.get("kind") and target.get("name") == owner.get("name"))


def is_supported(target: dict | None) -> bool:
    try:
        return bool(target) and (group_of(target.get("apiVersion")), target.get("kind")) in SUPPORTED
    except BadValue:
        return False


def pod_selected(target_filter: dict | None, labels: dict | None) -> bool:
    """IsPodSelected: no filter selects all; a filter without selector selects nothing."""
    if target_filter is None:
        return True
    selector = target_filter.get("selector")
    if selector is None:
        return False
    return selector_matches(selector, labels)


def pod_version(pod: dict) -> str:
    """GetPodVersion: the pod's template hash when its controller is a Deployment or ReplicaSet."""
    owner = controller_of(pod)
    if str(pod.get("kind") or "").lower() not in VERSIONED_KINDS and \
            (owner is None or str(owner.get("kind") or "").lower() not in VERSIONED_KINDS):
        return VERSION_IGNORED
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if TEMPLATE_HASH_LABEL in labels:
        return labels[TEMPLATE_HASH_LABEL]
    if REVISION_HASH_LABEL in labels:
        return labels[REVISION_HASH_LABEL].split("-")[-1]
    return VERSION_IGNORED


def has_percent_subset(ws: dict) -> bool:
    return any(isinstance(s.get("maxReplicas"), str) and s["maxReplicas"].endswith("%")
               for s in (ws.get("spec") or {}).get("subsets") or [])


def scaled_value(value, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent (BadValue where it errs)."""
    if isinstance(value, bool) or value is None:
        raise BadValue(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise BadValue("invalid type: neither int nor percentage")
    if not value.endswith("%"):
        raise BadValue("invalid type: string is not a percentage")
    try:
        number = _atoi(value[:-1])
    except ValueError:
        raise BadValue(f"invalid value {value!r}") from None
    scaled = float(number) * float(total) / 100
    return int(math.ceil(scaled) if round_up else math.floor(scaled))


def _atoi(text: str) -> int:
    """strconv.Atoi: optional sign, decimal digits only."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(text)
    return int(text)


def replicas_from_paths(workload: dict, paths: list[str]) -> int:
    """GetReplicasFromWorkloadWithTargetFilter (the pod webhook) and filterWorkload (the
    controller): the sum of the integers at dotted paths, each and the sum wrapped to int32
    (in a list a part is an index, parsed as strconv.Atoi does); a missing path is an error,
    an empty path is 0. A negative index (upstream: a panic) is an error here and refused at
    admission (:func:`negative_index`)."""
    total = 0
    for path in paths:
        if path == "":
            continue
        value = workload
        for part in path.split("."):
            if isinstance(value, dict):
                if part not in value:
                    raise BadValue(f'path "{part}" not exists')
                value = value[part]
            elif isinstance(value, list):
                try:
                    at = _atoi(part)  # not int(): it takes " 1", "1_0" and non-ASCII digits
                except ValueError:
                    raise BadValue(f'strconv.Atoi: parsing "{part}": invalid syntax') from None
                if at < 0:
                    # upstream indexes the slice with it and panics; refused at admission
                    raise BadValue(f"index {at} is negative")
                if len(value) < at + 1:
                    raise BadValue(f"index {at} out of range")
                value = value[at]
            else:
                raise BadValue("object is not deep enough")
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue("object type error")
        total += _int32(value)
    return _int32(total)


def negative_index(path: str) -> str | None:
    """The first part of ``path`` that strconv.Atoi reads as a negative number: where upstream
    would index a list with it, it panics (nothing is computed), so such a path is refused."""
    for part in path.split("."):
        try:
            if -2**63 <= _atoi(part) < 0:  # below int64, Atoi errs instead (no panic)
                return part
        except ValueError:
            continue
    return None


def _int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def workload_replicas(workload: dict | None, target_filter: dict | None) -> int:
    """getWorkloadReplicas given the target object (None: not found, 0 as upstream)."""
    if workload is None:
        return 0
    if target_filter and target_filter.get("replicasPathList"):
        return replicas_from_paths(workload, target_filter["replicasPathList"])
    spec = workload.get("spec") or {}
    field = "parallelism" if workload.get("kind") == "Job" else "replicas"
    return int(spec.get(field) or 0)


def initial_statuses(ws: dict, replicas: int) -> list[dict]:
    """initializedSubsetStatuses: one status per subset, missingReplicas from maxReplicas
    (a percent of the workload's replicas rounded up; -1 without maxReplicas)."""
    statuses = []
    for subset in (ws.get("spec") or {}).get("subsets") or []:
        status = {"name": subset.get("name", ""), "replicas": 0, "missingReplicas": -1}
        if subset.get("maxReplicas") is not None:
            try:
                status["missingReplicas"] = _int32(scaled_value(subset["maxReplicas"], replicas, True))
            except BadValue:
                status["missingReplicas"] = 0  # upstream ignores the error: the zero value
        statuses.append(status)
    return statuses


def schedulable(status: dict) -> bool:
    return not any(c.get("type") == SCHEDULABLE and c.get("status") == "False" for c in status.get("conditions") or [])


def suitable_subset(statuses: list[dict]) -> dict | None:
    """getSuitableSubset: the first schedulable subset that misses pods or has no limit."""
    for status in statuses:
        missing = status.get("missingReplicas", 0)
        if schedulable(status) and (missing > 0 or missing == -1):
            return status
    return None


def recorded(statuses: list[dict], pod_name: str) -> dict | None:
    """isPodRecordedInSubset: the subset whose creatingPods or deletingPods holds the pod."""
    for status in statuses:
        if pod_name in (status.get("creatingPods") or {}) or pod_name in (status.get("deletingPods") or {}):
            return status
    return None


def still_full(status: dict, limit: int | None) -> bool:
    """Beyond upstream: does the subset hold ``limit`` pods or more even without the ones
    leaving? Its pods are those the controller counted (``replicas``, the leaving ones among
    them) less those recorded as leaving, plus those admitted since (``creatingPods``); every
    write keeps that sum, but for a pod marked for deletion, whose entry the controller keeps
    while it no longer counts it: the sum is then one too few, and the deletion frees a place
    as upstream's does. Upstream frees a place on every deletion, so a subset over its limit (a deletion
    recorded that did not happen, a percent limit lowered) gave each place its pods left back
    to the next pod, and stayed over its limit for as long as pods were replaced; here the
    deletion of a pod of a subset that stays full frees nothing. ``limit`` None: not known
    (upstream's behaviour)."""
    if limit is None:
        return False
    held = status.get("replicas") or 0
    held += len(status.get("creatingPods") or {}) - len(status.get("deletingPods") or {})
    return held >= limit


def _limit(ws: dict, subset_name: str, replicas: Callable[[], int]) -> int | None:
    """The subset's maxReplicas as a number of pods (a percent of the workload's replicas,
    read only then); None when it has none or it cannot be read."""
    subset = next((s for s in (ws.get("spec") or {}).get("subsets") or [] if s.get("name") == subset_name), None)
    if subset is None or subset.get("maxReplicas") is None:
        return None
    value = subset["maxReplicas"]
    try:
        return scaled_value(value, replicas() if isinstance(value, str) else 0, True)
    except Exception:  # noqa: BLE001 - the workload unreadable, a bad value: upstream's behaviour then
        return None


def go_time(now: float) -> str:
    """metav1.Time as JSON: RFC 3339 in UTC, whole seconds."""
    return metav1_time(now)


def update_for_pod(ws: dict, pod: dict, operation: str, *, injected_subset: str = "",
                   replicas: Callable[[], int], now: float, new_uid: Callable[[], str]) -> tuple[bool, dict | None, str]:
    """updateSubsetForPod on ``ws`` (changed in place: the caller's copy): (changed, the
    subset's status, the id generated for a pod without a name). ``replicas()`` is asked only
    when the pod's version has no statuses yet; BadValue/ApiError from it propagate, and then
    ``ws`` is as it was (several pods are applied to one copy in turn: a refused one must leave
    it for the next)."""
    version = pod_version(pod)
    status = ws.get("status") or {}
    versioned = status.get("versionedSubsetStatuses") or {}
    statuses = versioned.get(version) or []
    if not statuses:
        statuses = initial_statuses(ws, replicas())
        versioned[version] = statuses
        status["versionedSubsetStatuses"] = versioned
        ws["status"] = status
    name = (pod.get("metadata") or {}).get("name") or ""
    generated = ""
    if operation == CREATE:
        if name:
            found = recorded(statuses, name)
            if found is not None:
                return False, found, ""
        chosen = suitable_subset(statuses)
        if chosen is None or chosen.get("missingReplicas") == -1:
            return False, chosen, ""
        if not name:
            generated = new_uid()
        chosen.setdefault("creatingPods", {})
        if chosen["creatingPods"] is None:
            chosen["creatingPods"] = {}
        chosen["creatingPods"][name or generated] = go_time(now)
        if chosen["missingReplicas"] > 0:
            chosen["missingReplicas"] -= 1
    elif operation in (DELETE, EVICTION):
        if recorded(statuses, name) is not None:
            return False, None, ""
        chosen = next((s for s in statuses if s.get("name") == injected_subset), None)
        if chosen is None or chosen.get("missingReplicas") == -1:
            return False, chosen, ""
        if chosen.get("deletingPods") is None:
            chosen["deletingPods"] = {}
        chosen["deletingPods"][name] = go_time(now)
        if chosen["missingReplicas"] >= 0 and not still_full(chosen, _limit(ws, injected_subset, replicas)):
            chosen["missingReplicas"] += 1
    else:
        return False, None, ""
    return True, chosen, generated


def _go_json(value) -> str:
    """encoding/json's compact output for strings and maps of strings: HTML characters and
    U+2028/U+2029 escaped as Go escapes them."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def annotation_value(ws_name: str, subset: str, uid: str = "") -> str:
    """The matched-workloadspread annotation: InjectWorkloadSpread as upstream marshals it."""
    value = {"name": ws_name, "subset": subset}
    if uid:
        value["uid"] = uid
    return _go_json(value)


def parse_annotation(text) -> dict | None:
    """The annotation read back (None when it is not a JSON object, as upstream ignores it)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    return {"name": str(value.get("name") or ""), "subset": str(value.get("subset") or ""),
            "uid": str(value.get("uid") or "")}


def inject(ws: dict, pod: dict, subset_name: str, uid: str = "") -> dict:
    """injectWorkloadSpreadIntoPod: the pod with the subset's tolerations, preferred and
    required node selector terms, its patch (strategic merge) and the annotation; ``pod``
    itself is not changed. PatchError when the patch does not apply."""
    subset = next((s for s in (ws.get("spec") or {}).get("subsets") or [] if s.get("name") == subset_name), None)
    if subset is None:
        return pod
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    if subset.get("tolerations"):
        spec["tolerations"] = (spec.get("tolerations") or []) + copy.deepcopy(subset["tolerations"])
    affinity = spec.get("affinity") or {}
    spec["affinity"] = affinity
    node = affinity.get("nodeAffinity") or {}
    affinity["nodeAffinity"] = node
    if subset.get("preferredNodeSelectorTerms"):
        node["preferredDuringSchedulingIgnoredDuringExecution"] = (
            (node.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
            + copy.deepcopy(subset["preferredNodeSelectorTerms"]))
    required = subset.get("requiredNodeSelectorTerm")
    if required is not None:
        selector = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        node["requiredDuringSchedulingIgnoredDuringExecution"] = selector
        terms = selector.get("nodeSelectorTerms") or []
        if not terms:
            selector["nodeSelectorTerms"] = [copy.deepcopy(required)]
        else:
            for term in terms:
                for field in ("matchExpressions", "matchFields"):
                    added = copy.deepcopy(required.get(field) or [])
                    if added or term.get(field):
                        term[field] = (term.get(field) or []) + added
    if subset.get("patch") is not None:
        before = spec.get("priorityClassName") or ""
        pod = strategicpatch.apply_to_pod(pod, subset["patch"])
        if ((pod.get("spec") or {}).get("priorityClassName") or "") != before:
            # the priority admission plugin runs again after the webhook and sets it anew
            (pod.get("spec") or {}).pop("priority", None)
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        meta = pod["metadata"] = {}
    meta["annotations"] = meta.get("annotations") or {}
    meta["annotations"][MATCHED_WORKLOADSPREAD_ANNOTATION] = annotation_value(
        (ws.get("metadata") or {}).get("name", ""), subset_name, uid)
    return pod
