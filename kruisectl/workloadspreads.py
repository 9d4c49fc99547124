"""WorkloadSpreads as on-call sees them: subsets whose node labels the cluster does not carry.

A WorkloadSpread spreads a workload's pods over subsets that select nodes by label (most often
``topology.kubernetes.io/zone``, which ``kruisectl label-zones`` writes). A schedulable node
without a label a subset selects on is where the spread silently breaks: a subset that requires
the label can never place a pod there, and one whose term matches no schedulable node at all
can never be filled, so its pods stay Pending. ``status`` mentions what the objects' own status
says is missing. Pure functions over the API's JSON. Neither check warns where it cannot be
sure: a node tainted against a subset is not a gap, a tainted node matching a term fills it.
"""

from __future__ import annotations

from kubekit import kruise
from kubekit.labels import requirement_matches

from .capacity import tolerates

ZONE_KEYS = (kruise.ZONE_LABEL, kruise.REGION_LABEL)  # what `kruisectl label-zones` writes


def _name(ws: dict) -> str:
    meta = ws.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _subsets(ws: dict) -> list[dict]:
    subsets = (ws.get("spec") or {}).get("subsets")
    return [s for s in subsets if isinstance(s, dict)] if isinstance(subsets, list) else []


def schedulable(nodes: list[dict]) -> list[dict]:
    """Nodes the scheduler may place new pods on (not cordoned)."""
    return [n for n in nodes if not (n.get("spec") or {}).get("unschedulable")]


def _admits(node: dict, subsets: list[dict]) -> bool:
    """Some of ``subsets`` tolerates every NoSchedule/NoExecute taint of ``node``. The
    workload's own tolerations are not read: a node tainted against the subsets is left out
    rather than warned about."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return any(all(tolerates(s.get("tolerations") or [], t) for t in taints) for s in subsets)


def _labels(node: dict) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def term_matches(term, node: dict) -> bool:
    """A NodeSelectorTerm against a node, as the scheduler evaluates it: every expression on
    the labels, every field requirement on metadata.name; an empty term matches no node."""
    if not isinstance(term, dict):
        return False
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False
    name = (node.get("metadata") or {}).get("name")
    for field in fields:
        if field.get("key") != "metadata.name" or not requirement_matches({"metadata.name": name}, field):
            return False
    return all(requirement_matches(_labels(node), e) for e in expressions)


def selected_keys(subset: dict) -> list[str]:
    """The node label keys a subset selects on: its required term's and its preferred terms'."""
    terms = [subset.get("requiredNodeSelectorTerm")]
    terms += [(p or {}).get("preference") for p in subset.get("preferredNodeSelectorTerms") or [] if isinstance(p, dict)]
    keys = [e.get("key") for t in terms if isinstance(t, dict) for e in t.get("matchExpressions") or []
            if isinstance(e, dict) and e.get("key")]
    return list(dict.fromkeys(keys))


def label_gaps(workloadspreads: list[dict], nodes: list[dict]) -> list[dict]:
    """For each WorkloadSpread and label key its subsets select on: the schedulable nodes
    without that label (only where some lack it)."""
    ready = schedulable(nodes)
    gaps = []
    for ws in workloadspreads:
        by_key: dict[str, list[dict]] = {}
        for subset in _subsets(ws):
            for key in selected_keys(subset):
                by_key.setdefault(key, []).append(subset)
        for key, subsets in by_key.items():
            admitting = [n for n in ready if _admits(n, subsets)]
            without = sorted((n.get("metadata") or {}).get("name", "") for n in admitting if key not in _labels(n))
            if without:
                gaps.append({"workloadSpread": _name(ws), "key": key, "subsets": [s.get("name") or "" for s in subsets],
                             "nodesWithout": without, "schedulableNodes": len(admitting)})
    return gaps


def unfillable(workloadspreads: list[dict], nodes: list[dict]) -> list[dict]:
    """Subsets whose requiredNodeSelectorTerm matches no schedulable node: no pod put in them
    can ever be scheduled. Taints are not counted (the workload may tolerate them)."""
    ready = schedulable(nodes)
    found = []
    for ws in workloadspreads:
        for subset in _subsets(ws):
            term = subset.get("requiredNodeSelectorTerm")
            if term is not None and not any(term_matches(term, n) for n in ready):
                found.append({"workloadSpread": _name(ws), "subset": subset.get("name") or "",
                              "maxReplicas": subset.get("maxReplicas")})
    return found


def missing_pods(workloadspreads: list[dict]) -> list[dict]:
    """WorkloadSpreads whose status says subsets still miss pods (missingReplicas > 0; -1
    means no limit), with those subsets' counts."""
    found = []
    for ws in sorted(workloadspreads, key=_name):
        subsets = {}
        for status in (ws.get("status") or {}).get("subsetStatuses") or []:
            missing = (status or {}).get("missingReplicas")
            if isinstance(missing, int) and missing > 0:
                subsets[status.get("name") or ""] = missing
        if subsets:
            found.append({"workloadSpread": _name(ws), "missingReplicas": subsets})
    return found


def label_fix(key: str) -> str:
    if key in ZONE_KEYS:
        return "label them: kruisectl label-zones --from-label <rack-label> --apply (or --map nodes.csv)"
    return f"label them: kubectl label node <node> {key}=<value>"
