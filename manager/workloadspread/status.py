"""What the leader's WorkloadSpread controller writes, as pure functions of the WorkloadSpread,
its workload's replicas and pods, and the time: upstream v1.8.3's status calculation
(workloadspread_controller.go), pod deletion cost (update_pod_deletion_cost.go) and the
Adaptive strategy's rescheduling (reschedule.go). The clock is a parameter so that every
timeout (creatingPods 30 s, deletingPods 15 s, an unschedulable subset's 300 s) is testable.

Pods are API-shaped dicts (:func:`slim_pod` keeps only the fields read here).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from typing import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION, POD_DELETION_COST_ANNOTATION
from kubekit.labels import requirement_matches
from kubekit.timestamps import metav1_time

from ..events import NORMAL, WARNING
from .subsets import pod_version

CREATE_POD_TIMEOUT = 30.0  # a creatingPods entry whose pod never showed up is dropped after this
DELETE_POD_TIMEOUT = 15.0  # a deletingPods entry whose pod is still active is dropped after this
MAX_SCHEDULED_FAILED_DURATION = 300.0  # an unschedulable subset becomes schedulable again after this
FAKE_SUBSET = "kruise.io/workloadspread-fake-subset-name"  # pods that match no subset
SCHEDULABLE = "Schedulable"
IGNORE_PATCH_EXISTING_PODS = "workloadspread.kruise.io/ignore-patch-existing-pods-metadata"
MAX_INT32 = 2**31 - 1
# Kinds whose pods carry a deletion cost (upstream's isEffectiveKindForDeletionCost, CloneSet aside)
DELETION_COST_KINDS = frozenset({"Deployment", "ReplicaSet"})
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---------------------------------------------------------------- time and pods


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None for an absent (Go's zero) time."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def format_time(epoch: float) -> str:
    """As metav1.Time serialises: whole seconds, UTC."""
    return metav1_time(epoch)


def _meta(pod: dict) -> dict:
    return pod.get("metadata") or {}


def _status(pod: dict) -> dict:
    return pod.get("status") or {}


def _node(pod: dict) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def is_active(pod: dict) -> bool:
    """kubecontroller.IsPodActive: not Succeeded, not Failed, not being deleted."""
    return _status(pod).get("phase") not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


def _ready_condition(pod: dict) -> dict | None:
    for c in _status(pod).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: dict) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def injected(pod: dict) -> dict | None:
    """The matched-workloadspread annotation ({"name", "subset", "uid"}), read as Go's
    json.Unmarshal reads it (keys match case-insensitively); None when absent or malformed."""
    raw = (_meta(pod).get("annotations") or {}).get(MATCHED_WORKLOADSPREAD_ANNOTATION)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    out = {"name": "", "subset": "", "uid": ""}
    for key, value in data.items():
        if key.lower() in out and isinstance(value, str):
            out[key.lower()] = value
    return out


def slim_pod(obj: dict) -> dict:
    """The fields of a pod this module reads, in the pod's own shape (a pod cache keeps this).
    A subset patch that touches more than labels is compared against this copy, so such a pod
    never scores as already patched (a tie-breaker between subsets its node fits)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    return {
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "labels": meta.get("labels") or {},
            "annotations": {k: annotations[k] for k in (MATCHED_WORKLOADSPREAD_ANNOTATION, POD_DELETION_COST_ANNOTATION)
                            if k in annotations},
            "ownerReferences": [{k: r.get(k) for k in ("kind", "name", "uid", "controller")}
                                for r in meta.get("ownerReferences") or []],
            "creationTimestamp": meta.get("creationTimestamp"), "deletionTimestamp": meta.get("deletionTimestamp")},
        "spec": {"nodeName": spec.get("nodeName") or "", "tolerations": spec.get("tolerations") or [],
                 "affinity": {"nodeAffinity": (spec.get("affinity") or {}).get("nodeAffinity") or {}}},
        "status": {
            "phase": status.get("phase"),
            "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "lastTransitionTime")}
                           for c in status.get("conditions") or []],
            "containerStatuses": [{"restartCount": c.get("restartCount") or 0}
                                  for c in status.get("containerStatuses") or []]},
    }


# ---------------------------------------------------------------- int-or-percent


def scaled_value(value, total: int, strict: bool = True) -> int:
    """intstr.GetScaledValueFromIntOrPercent (strict: a string must end in %) or, with
    ``strict=False``, the deprecated GetValueFromIntOrPercent (any string is a percentage);
    percentages round up. ValueError for what Go refuses."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid value {value!r}")
    if strict:
        if not value.endswith("%"):
            raise ValueError(f"invalid value {value!r}: not a percentage")
        text = value[:-1]
    else:
        text = value.replace("%", "")
    try:
        percent = int(text, 10)
    except ValueError:
        raise ValueError(f"invalid value {value!r}") from None
    return int(math.ceil(float(percent) * float(total) / 100))


# ---------------------------------------------------------------- conditions


def _condition(status: str, now: float) -> dict:
    return {"type": SCHEDULABLE, "status": status, "lastTransitionTime": format_time(now)}


def get_condition(subset_status: dict | None, kind: str = SCHEDULABLE) -> dict | None:
    for c in (subset_status or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def set_condition(subset_status: dict, condition: dict) -> None:
    """Same status and reason: keep the current one; same status: keep its transition time."""
    current = get_condition(subset_status, condition["type"])
    if current is not None and current.get("status") == condition.get("status") \
            and current.get("reason", "") == condition.get("reason", ""):
        return
    if current is not None and current.get("status") == condition.get("status"):
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    kept = [c for c in subset_status.get("conditions") or [] if c.get("type") != condition["type"]]
    subset_status["conditions"] = kept + [condition]


def remove_condition(subset_status: dict, kind: str) -> None:
    kept = [c for c in subset_status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        subset_status["conditions"] = kept
    else:
        subset_status.pop("conditions", None)


# ---------------------------------------------------------------- grouping


def node_term_matches(term: dict, node: dict) -> bool:
    """One NodeSelectorTerm: its label expressions and its metadata.name fields all hold."""
    meta = node.get("metadata") or {}
    if not all(requirement_matches(meta.get("labels") or {}, r) for r in term.get("matchExpressions") or []):
        return False
    fields = {"metadata.name": meta["name"]} if meta.get("name") else {}
    if fields:
        for r in term.get("matchFields") or []:
            values = r.get("values") or []
            if r.get("key") != "metadata.name" or r.get("operator") not in ("In", "NotIn") or len(values) != 1:
                return False  # what the field selector refuses to parse never matches
            if (fields["metadata.name"] == values[0]) != (r.get("operator") == "In"):
                return False
    return True


def _empty_term(term: dict | None) -> bool:
    return not (term or {}).get("matchExpressions") and not (term or {}).get("matchFields")


def node_terms_match(terms: list[dict], node: dict) -> bool:
    """NodeSelectorTerms, ORed; an empty term selects nothing."""
    return any(node_term_matches(t, node) for t in terms if not _empty_term(t))


def tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def _contains(current, patch) -> bool:
    """Whether strategic-merging ``patch`` into ``current`` changes nothing (lists of named
    items merge by name; null deletes)."""
    if isinstance(patch, dict):
        if not isinstance(current, dict):
            return False
        for key, value in patch.items():
            if value is None:
                if key in current:
                    return False
            elif key not in current or not _contains(current[key], value):
                return False
        return True
    if isinstance(patch, list) and isinstance(current, list) and all(isinstance(p, dict) and "name" in p for p in patch):
        named = {c.get("name"): c for c in current if isinstance(c, dict)}
        return all(p["name"] in named and _contains(named[p["name"]], p) for p in patch)
    return current == patch


def subset_score(pod: dict, node: dict, subset: dict, missing: int) -> int:
    """matchesSubset: -1 when the pod could not run there (an untolerated taint, the required
    term); else preferred node weight * 100 + 10 if the pod already looks patched + 1 if the
    subset still misses pods."""
    tolerations = list((pod.get("spec") or {}).get("tolerations") or []) + list(subset.get("tolerations") or [])
    for taint in (node.get("spec") or {}).get("taints") or []:
        if not any(tolerates(t, taint) for t in tolerations):
            return -1
    required = subset.get("requiredNodeSelectorTerm")
    if required is not None:
        affinity = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
        terms = [dict(t) for t in ((affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
                                   .get("nodeSelectorTerms") or [])]
        if not terms:
            terms = [required]
        else:
            terms = [{"matchExpressions": list(t.get("matchExpressions") or []) + list(required.get("matchExpressions") or []),
                      "matchFields": list(t.get("matchFields") or []) + list(required.get("matchFields") or [])}
                     for t in terms]
        if not node_terms_match(terms, node):
            return -1
    node_score = sum(int(t.get("weight") or 0) for t in subset.get("preferredNodeSelectorTerms") or []
                     if t.get("weight") and not _empty_term(t.get("preference"))
                     and node_term_matches(t["preference"], node))
    pod_score = 0
    if subset.get("patch"):
        patch = copy.deepcopy(subset["patch"])
        if isinstance(patch.get("metadata"), dict):
            patch["metadata"].pop("annotations", None)  # annotations are not compared
        pod_score = 1 if _contains(pod, patch) else 0
    return node_score * 100 + pod_score * 10 + (1 if missing > 0 else 0)


def adoption_patch(ws: dict, subset: dict) -> dict:
    """patchFavoriteSubsetMetadataToPod: the subset patch's metadata (unless the spread says
    to ignore it for existing pods) and the matched-workloadspread annotation."""
    metadata: dict = {}
    ignore = ((_meta(ws).get("annotations") or {}).get(IGNORE_PATCH_EXISTING_PODS, "")).lower() == "true"
    if subset.get("patch") and not ignore and isinstance(subset["patch"].get("metadata"), dict):
        metadata = copy.deepcopy(subset["patch"]["metadata"])
    value = json.dumps({"name": _meta(ws).get("name"), "subset": subset["name"]}, separators=(",", ":"))
    if isinstance(metadata.get("annotations"), dict):
        metadata["annotations"][MATCHED_WORKLOADSPREAD_ANNOTATION] = value
    else:
        metadata["annotations"] = {MATCHED_WORKLOADSPREAD_ANNOTATION: value}
    return {"metadata": metadata}


def group_by_subset(ws: dict, pods: list[dict], replicas: int = 0, nodes: Callable[[str], dict | None] | None = None,
                    adopted: dict[str, dict] | None = None) -> dict[str, list[dict]]:
    """groupPodBySubset: the subset a pod's annotation names. A pod without one for this
    spread (created before it, or annotated for another) joins the subset that suits its node
    best (``nodes`` looks nodes up; the annotation to write goes to ``adopted``); a pod of no
    subset, or of one no longer in the spec, goes to :data:`FAKE_SUBSET`."""
    name = _meta(ws).get("name")
    subsets = (ws.get("spec") or {}).get("subsets") or []
    groups: dict[str, list[dict]] = {FAKE_SUBSET: []}
    missing: dict[str, int] = {}
    for subset in subsets:
        groups[subset["name"]] = []
        try:
            limit = subset.get("maxReplicas")
            missing[subset["name"]] = scaled_value(MAX_INT32 if limit is None else limit, replicas, strict=True)
        except ValueError:
            missing[subset["name"]] = 0
    matched = {}
    for pod in pods:
        inj = injected(pod)
        if inj and inj["name"] == name and inj["subset"]:
            matched[id(pod)] = inj["subset"]
            if inj["subset"] in missing:
                missing[inj["subset"]] -= 1
    for pod in pods:
        subset_name = matched.get(id(pod))
        if subset_name is None:
            subset_name = FAKE_SUBSET
            node = nodes(_node(pod)) if nodes is not None and _node(pod) else None
            if node is not None:
                best, best_score = None, -1
                for subset in subsets:
                    score = subset_score(pod, node, subset, missing[subset["name"]])
                    if score > best_score:
                        best, best_score = subset, score
                if best is not None:
                    if adopted is not None:
                        adopted[_meta(pod)["name"]] = adoption_patch(ws, best)
                    missing[best["name"]] -= 1
                    subset_name = best["name"]
        groups.get(subset_name, groups[FAKE_SUBSET]).append(pod)
    return groups


def group_versioned(ws: dict, pods: list[dict], replicas: int = 0, nodes: Callable[[str], dict | None] | None = None,
                    adopted: dict[str, dict] | None = None
                    ) -> tuple[dict[str, dict[str, list[dict]]], dict[str, list[dict]]]:
    """groupVersionedPods: {version: {subset: pods}} and {subset: pods} over all versions."""
    by_version: dict[str, list[dict]] = {}
    for pod in pods:
        by_version.setdefault(pod_version(pod), []).append(pod)
    versioned, overall = {}, {}
    for version, members in by_version.items():
        groups = group_by_subset(ws, members, replicas, nodes, adopted)
        for subset, ps in groups.items():
            overall.setdefault(subset, []).extend(ps)
        versioned[version] = groups
    return versioned, overall


# ---------------------------------------------------------------- status


@dataclass
class Plan:
    """One sync's outcome: pods to annotate into a subset, the deletion cost each pod should
    carry (only pods whose annotation must change), the status to write, the pods to delete
    (Adaptive), when to look again."""
    status: dict
    costs: dict[str, str] = field(default_factory=dict)
    adopt: dict[str, dict] = field(default_factory=dict)  # pod name -> metadata patch (pods matched by node)
    reschedule: list[dict] = field(default_factory=list)
    requeue_after: float | None = None
    # upstream's Events of this status (type, reason, message), each once: recorded once the
    # status that drops the entry or changes the condition is written
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def requeue(self, seconds: float) -> None:
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds

    def event(self, type_: str, reason: str, message: str) -> None:
        if (type_, reason, message) not in self.events:
            self.events.append((type_, reason, message))


def _critical_seconds(ws: dict) -> int:
    strategy = (ws.get("spec") or {}).get("scheduleStrategy") or {}
    if strategy.get("type") != "Adaptive":
        return 0
    return int((strategy.get("adaptive") or {}).get("rescheduleCriticalSeconds") or 0)


def unscheduled_timeout(pod: dict, critical: int, now: float) -> tuple[bool, float | None]:
    """GetTimeBeforePendingTimeout: a pending pod the scheduler found unschedulable, past
    ``critical`` seconds since its creation; else the seconds until it would be."""
    if _meta(pod).get("deletionTimestamp") or _status(pod).get("phase") != "Pending" or _node(pod):
        return False, None
    for c in _status(pod).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            expect = (parse_time(_meta(pod).get("creationTimestamp")) or 0.0) + critical
            if expect < now:
                return True, None
            return False, expect - now
    return False, None


def subset_status(ws: dict, pods: list[dict], subset: dict, old: dict | None, replicas: int, now: float,
                  plan: Plan) -> dict | None:
    """calculateWorkloadSpreadSubsetStatus; None when maxReplicas cannot be read."""
    out = {"name": subset["name"], "replicas": 0, "missingReplicas": 0, "creatingPods": {}, "deletingPods": {}}
    if subset.get("maxReplicas") is None:
        max_replicas = -1
    else:
        try:
            max_replicas = scaled_value(subset["maxReplicas"], replicas, strict=True)
        except ValueError:
            return None
        if max_replicas < 0:
            return None
    missing = max_replicas
    old_creating = dict((old or {}).get("creatingPods") or {})
    old_deleting = (old or {}).get("deletingPods") or {}
    active = 0

    def leaving_until(name: str | None) -> float | None:
        """When a pod recorded in deletingPods stops counting as on its way out; None when it
        is not recorded or already timed out."""
        if name not in old_deleting:
            return None
        expected = (parse_time(old_deleting[name]) or 0.0) + DELETE_POD_TIMEOUT
        return None if expected < now else expected

    namespace = _meta(ws).get("namespace")

    # Beyond upstream: the pods still leaving are counted first. Upstream walks its cache's
    # order, and a pod's -1 stops at 0 while a leaving pod's +1 does not: with a leaving pod
    # still in the cache beside the pod that took its place, a leaving pod listed after the
    # others gives its place back twice, so the subset reads a free place it does not have and
    # the webhook over-fills it. A new leader's fresh list (in name order) made that order
    # likely; counted first, the result is what upstream gives in its favourable order.
    for pod in sorted(pods, key=lambda p: leaving_until(_meta(p).get("name")) is None):
        name = _meta(pod).get("name")
        inj = injected(pod)
        old_creating.pop(inj["uid"] if inj and inj["uid"] else name, None)
        if not is_active(pod):
            # Beyond upstream: a pod being deleted keeps its deletingPods entry while it is
            # here (up to 15 s), counted as nothing, as before. The apiserver validates a
            # deletion twice: when it marks the pod deleted, then when it removes it, that
            # time on its watch cache's copy, which may still show the pod live. Upstream
            # drops the entry once the pod is marked, so a second validation after that
            # recorded the deletion again: a second place freed for one pod (a drill's
            # rollout over-filled a subset so).
            until = leaving_until(name)
            if until is not None:
                out["deletingPods"][name] = old_deleting[name]
                plan.requeue(until - now)
            continue
        active += 1
        if missing > 0:
            missing -= 1
        expected = leaving_until(name)
        if expected is None and name in old_deleting:
            plan.event(WARNING, "DeletePodFailed", f"Pod {namespace}/{name} was expected to be deleted but it wasn't")
        if expected is not None:  # not yet timed out: still counted as on its way out
            out["deletingPods"][name] = old_deleting[name]
            if missing < max_replicas:
                missing += 1
            plan.requeue(expected - now)
    out["replicas"] = active
    for pod_id, created in old_creating.items():
        expected = (parse_time(created) or 0.0) + CREATE_POD_TIMEOUT
        if expected < now:
            plan.event(WARNING, "CreatePodFailed", f"Pod {namespace}/{pod_id} was expected to be created but it wasn't")
        else:
            out["creatingPods"][pod_id] = created
            if missing > 0:
                missing -= 1
            plan.requeue(expected - now)
    out["missingReplicas"] = missing
    return out


def reschedule_subset(ws: dict, pods: list[dict], status: dict, old: dict | None, critical: int, now: float,
                      plan: Plan) -> list[dict]:
    """rescheduleSubset: the subset's pods unschedulable past the deadline (to delete), and
    its Schedulable condition: False while it has such pods, True again 300 s later."""
    failed = []
    for pod in pods:
        timed_out, after = unscheduled_timeout(pod, critical, now)
        if after is not None and after > 0:
            plan.requeue(after)
        if timed_out:
            failed.append(pod)
    old_condition = get_condition(old)
    if old_condition is None:
        set_condition(status, _condition("False" if failed else "True", now))
        return failed
    set_condition(status, old_condition)
    if failed:
        set_condition(status, _condition("False", now))
    elif old_condition.get("status") == "False":
        recover = (parse_time(old_condition.get("lastTransitionTime")) or 0.0) + MAX_SCHEDULED_FAILED_DURATION
        if recover < now:
            plan.event(NORMAL, "RecoverSchedulable",
                       f"Subset {status['name']} of WorkloadSpread {_meta(ws).get('namespace')}/{_meta(ws).get('name')} "
                       "is recovered from unschedulable to schedulable")
            set_condition(status, _condition("True", now))
        else:
            plan.requeue(recover - now)
    return failed


def subset_statuses(ws: dict, old_statuses: list[dict] | None, groups: dict[str, list[dict]], replicas: int,
                    now: float, plan: Plan) -> tuple[list[dict] | None, dict[str, list[dict]]]:
    """calculateWorkloadSpreadSubsetStatuses: one status per subset in spec order (old ones
    found by name: reordering subsets keeps them), and the pods to reschedule per subset."""
    subsets = (ws.get("spec") or {}).get("subsets") or []
    old_by_name = {s.get("name"): s for s in old_statuses or []}
    critical = _critical_seconds(ws)
    out, failed = [], {}
    for index, subset in enumerate(subsets):
        old = old_by_name.get(subset["name"])
        status = subset_status(ws, groups.get(subset["name"], []), subset, old, replicas, now, plan)
        if status is None:
            return None, {}
        if critical > 0:
            if index != len(subsets) - 1:  # the last subset is never rescheduled away from
                failed[subset["name"]] = reschedule_subset(ws, groups.get(subset["name"], []), status, old,
                                                           critical, now, plan)
            else:
                old_condition = get_condition(old)
                if old_condition is not None:
                    set_condition(status, old_condition)
                set_condition(status, _condition("True", now))
        else:
            remove_condition(status, SCHEDULABLE)
        out.append(status)
    return out, failed


def _empty(statuses: list[dict] | None) -> bool:
    return sum(s.get("replicas", 0) + len(s.get("creatingPods") or {}) + len(s.get("deletingPods") or {})
               for s in statuses or []) == 0


def compute_status(ws: dict, versioned: dict[str, dict[str, list[dict]]], overall: dict[str, list[dict]],
                   replicas: int, now: float, plan: Plan) -> tuple[dict, dict[str, list[dict]]]:
    """calculateWorkloadSpreadStatus: observedGeneration, subsetStatuses and, per pod
    version, versionedSubsetStatuses (a version whose pods are gone stays while it still
    counts anything: the webhook may have admitted a pod the cache has not seen)."""
    old = ws.get("status") or {}
    old_versioned = old.get("versionedSubsetStatuses") or {}
    status: dict = {"observedGeneration": _meta(ws).get("generation", 0)}
    status["subsetStatuses"], failed = subset_statuses(ws, old.get("subsetStatuses"), overall, replicas, now, plan)
    out_versioned = {}
    for version, groups in versioned.items():
        out_versioned[version], _ = subset_statuses(ws, old_versioned.get(version), groups, replicas, now, plan)
    for version, statuses in old_versioned.items():
        if version in versioned:
            continue
        kept, _ = subset_statuses(ws, statuses, {}, replicas, now, plan)
        if not _empty(kept):
            out_versioned[version] = kept
    status["versionedSubsetStatuses"] = out_versioned
    return prune(status), failed


def prune(value):
    """Drop what Go's JSON omits or what semantic equality treats as absent (nil or empty
    maps and lists, zero observedGeneration), so two statuses compare as upstream compares."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = prune(v)
            if v is None or v == {} or v == []:
                continue
            if k == "observedGeneration" and v == 0:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def status_equal(a: dict | None, b: dict | None) -> bool:
    return prune(a or {}) == prune(b or {})


# ---------------------------------------------------------------- deletion cost


def _less(a: dict, b: dict) -> bool:
    """kubecontroller.ActivePods.Less: which of two pods a ReplicaSet would delete first."""
    na, nb = _node(a), _node(b)
    if na != nb and (not na or not nb):
        return not na
    pa, pb = _PHASE_ORDINAL.get(_status(a).get("phase"), 0), _PHASE_ORDINAL.get(_status(b).get("phase"), 0)
    if pa != pb:
        return pa < pb
    ra, rb = is_ready(a), is_ready(b)
    if ra != rb:
        return not ra
    if ra and rb:
        ta = parse_time(_ready_condition(a).get("lastTransitionTime"))
        tb = parse_time(_ready_condition(b).get("lastTransitionTime"))
        if ta != tb:
            return _after_or_zero(ta, tb)
    ca = max([c.get("restartCount") or 0 for c in _status(a).get("containerStatuses") or []], default=0)
    cb = max([c.get("restartCount") or 0 for c in _status(b).get("containerStatuses") or []], default=0)
    if ca != cb:
        return ca > cb
    ta, tb = parse_time(_meta(a).get("creationTimestamp")), parse_time(_meta(b).get("creationTimestamp"))
    if ta != tb:
        return _after_or_zero(ta, tb)
    return False


def _after_or_zero(t1: float | None, t2: float | None) -> bool:
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def delete_order(pods: list[dict]) -> list[dict]:
    """sortDeleteIndexes: a stable sort by :func:`_less` (unassigned, pending, not ready,
    recently ready, often restarted, young pods first)."""
    def cmp(a, b):
        return -1 if _less(a, b) else (1 if _less(b, a) else 0)
    return sorted(pods, key=functools.cmp_to_key(cmp))


def subset_costs(ws: dict, subset: dict | None, index: int, pods: list[dict], replicas: int) -> dict[str, str]:
    """syncSubsetPodDeletionCost: active pods within maxReplicas (or unlimited) cost
    100 * (subsets - index); those beyond it (the least healthy first) and pods of no subset
    cost -100 * (index + 1). Empty when maxReplicas cannot be read (upstream skips the subset)."""
    n = len((ws.get("spec") or {}).get("subsets") or [])
    active = [p for p in pods if is_active(p)]
    positive, negative = [], []
    if subset is None:
        negative = active
    elif subset.get("maxReplicas") is None:
        positive = active
    else:
        try:
            limit = scaled_value(subset["maxReplicas"], replicas, strict=False)
        except ValueError:
            return {}
        if limit < 0:
            return {}
        if len(active) <= limit:
            positive = active
        else:
            ordered = delete_order(active)
            negative, positive = ordered[:len(active) - limit], ordered[len(active) - limit:]
    out = {}
    for pods_, cost in ((positive, str(100 * (n - index))), (negative, str(-100 * (index + 1)))):
        for pod in pods_:
            out[_meta(pod)["name"]] = cost
    return out


def wanted_costs(ws: dict, versioned: dict[str, dict[str, list[dict]]], replicas: int,
                 latest_version: str) -> dict[str, str]:
    """updateDeletionCost for every pod: the latest version's pods are removed from the last
    subset first, older versions' from the first subset first (a rollout keeps the spread)."""
    subsets = (ws.get("spec") or {}).get("subsets") or []
    out: dict[str, str] = {}
    for version, groups in versioned.items():
        reverse = version != latest_version
        for idx, subset in enumerate(subsets):
            index = len(subsets) - idx - 1 if reverse else idx
            out.update(subset_costs(ws, subset, index, groups.get(subset["name"], []), replicas))
        if groups.get(FAKE_SUBSET):
            out.update(subset_costs(ws, None, len(subsets), groups[FAKE_SUBSET], replicas))
    return out


def cost_patches(pods: list[dict], wanted: dict[str, str]) -> dict[str, str]:
    """patchPodDeletionCost's skip rule: only where the annotation differs (and never to add 0)."""
    out = {}
    for pod in pods:
        name = _meta(pod).get("name")
        if name not in wanted:
            continue
        current = (_meta(pod).get("annotations") or {}).get(POD_DELETION_COST_ANNOTATION)
        if current == wanted[name] or (current is None and wanted[name] == "0"):
            continue
        out[name] = wanted[name]
    return out


# ---------------------------------------------------------------- one sync


def plan(ws: dict, pods: list[dict], replicas: int, now: float, *, target_kind: str = "",
         latest_version: str | None = "", nodes: Callable[[str], dict | None] | None = None) -> Plan:
    """syncWorkloadSpread's decisions for a WorkloadSpread given its workload's pods and
    replicas: the annotation for pods it adopts (``nodes`` looks up their nodes), deletion
    costs (Deployment and ReplicaSet targets only; ``latest_version`` None means it could not
    be told, and upstream then gives up the whole sync: ValueError), the status and the pods
    to reschedule."""
    adopted: dict[str, dict] = {}
    versioned, overall = group_versioned(ws, pods, replicas, nodes, adopted)
    costs = {}
    if target_kind in DELETION_COST_KINDS:
        if latest_version is None:
            raise ValueError("the workload's latest version is not known yet")
        costs = cost_patches(pods, wanted_costs(ws, versioned, replicas, latest_version))
    result = Plan(status={}, costs=costs, adopt=adopted)
    result.status, failed = compute_status(ws, versioned, overall, replicas, now, result)
    result.reschedule = [p for subset in failed.values() for p in subset]
    return result
