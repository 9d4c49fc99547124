"""Random WorkloadSpread combinations for the differential test (workloadspread_fuzz): a seed
and an index name one combination, so a difference found in a long run is replayed by its
two numbers.

A combination is either ``valid`` (a WorkloadSpread upstream's rules accept, a Deployment
``web`` and its replicas, scaled 0 -> N -> M -> K) or ``invalid`` (one WorkloadSpread broken
in one way; only the verdict of both webhooks is compared). Spreads draw on the nodes of
:data:`ZONES` (kwok nodes in zones a, b, c and :data:`BARE` nodes without a zone label) and on
zone-d, which no node has. Targets other than Deployment are never drawn: this manager
refuses them at admission by design (no CloneSet / Advanced StatefulSet controller), upstream
does not."""

from __future__ import annotations

import copy
import json
import pprint
import random

ZONE = "topology.kubernetes.io/zone"
ZONES = ("zone-a", "zone-b", "zone-c")
NODES_PER_ZONE = 2
BARE = 2  # kwok nodes with no zone label
ABSENT_ZONE = "zone-d"
KWOK = {"type": "kwok"}  # every kwok node's label: workload pods never land on a manager's node
SPREAD, TARGET = "spread", "web"
MAX_REPLICAS = 7
PERCENTS = (10, 20, 25, 30, 40, 50, 60)
LABEL_KEYS = ("subset", "tier", "fuzz.kruise.io/pool")
ANNOTATION_KEYS = ("fuzz.kruise.io/note", "owner", "fuzz.kruise.io/subset")


def _term(rng: random.Random) -> dict | None:
    """A requiredNodeSelectorTerm on the zone label, or None."""
    pick = rng.random()
    zones = sorted(rng.sample(ZONES + (ABSENT_ZONE,), rng.randint(1, 2)))
    if pick < 0.45:
        return {"matchExpressions": [{"key": ZONE, "operator": "In", "values": zones}]}
    if pick < 0.55:
        return {"matchExpressions": [{"key": ZONE, "operator": "NotIn", "values": zones}]}
    if pick < 0.62:
        return {"matchExpressions": [{"key": ZONE, "operator": "Exists"}]}
    if pick < 0.7:
        return {"matchExpressions": [{"key": ZONE, "operator": "DoesNotExist"}]}
    return None


def _subset(rng: random.Random, name: str) -> dict:
    subset = {"name": name}
    if (term := _term(rng)) is not None:
        subset["requiredNodeSelectorTerm"] = term
    if rng.random() < 0.3:
        subset["preferredNodeSelectorTerms"] = [
            {"weight": rng.randint(1, 100),
             "preference": {"matchExpressions": [{"key": ZONE, "operator": "In", "values": [rng.choice(ZONES)]}]}}
            for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.3:
        tolerations = []
        for _ in range(rng.randint(1, 2)):
            tol = {"key": rng.choice(["dedicated", "pool"]), "operator": rng.choice(["Equal", "Exists"])}
            if tol["operator"] == "Equal":
                tol["value"] = rng.choice(["a", "b"])
            if rng.random() < 0.7:
                tol["effect"] = rng.choice(["NoSchedule", "PreferNoSchedule", "NoExecute"])
            tolerations.append(tol)
        subset["tolerations"] = tolerations
    if rng.random() < 0.4:
        meta = {}
        if rng.random() < 0.7:
            meta["labels"] = {k: rng.choice([name, "x", "y"]) for k in rng.sample(LABEL_KEYS, rng.randint(1, 2))}
        if rng.random() < 0.6 or not meta:
            meta["annotations"] = {k: rng.choice([name, "v", "w"]) for k in rng.sample(ANNOTATION_KEYS, rng.randint(1, 2))}
        subset["patch"] = {"metadata": meta}
    return subset


def _max_replicas(rng: random.Random, subsets: list[dict], last_open: bool) -> None:
    """One type for all subsets, as upstream's validation wants: ints, or percents summing to
    100 (below 100 only when the last subset has none), or none at all."""
    kind = rng.choice(["int", "int", "percent", "none"])
    if kind == "none":
        return
    limited = subsets[:-1] if last_open else subsets
    if kind == "int":
        for s in limited:
            if rng.random() < 0.85:
                s["maxReplicas"] = rng.randint(0, 4)
        return
    left = 100
    for i, s in enumerate(limited):
        if not last_open and i == len(limited) - 1:
            s["maxReplicas"] = f"{left}%"
            break
        value = rng.choice([p for p in PERCENTS if p <= left] or [0])
        s["maxReplicas"] = f"{value}%"
        left -= value


def _template_extras(rng: random.Random) -> dict:
    """Pod template scheduling of the workload's own, merged with what a subset injects."""
    extras = {}
    if rng.random() < 0.2:
        extras["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ZONE, "operator": "NotIn", "values": [rng.choice(ZONES)]}]}]}}}
    if rng.random() < 0.15:
        extras["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    return extras


def valid_spread(rng: random.Random) -> dict:
    count = rng.choice([1, 2, 2, 3, 3, 4])
    names = rng.sample(["a", "b", "c", "d", "rest", "pool-1", "pool-2"], count)
    subsets = [_subset(rng, n) for n in names]
    strategy = rng.choice(["absent", "Fixed", "Adaptive", "Adaptive"])
    last_open = strategy == "Adaptive" and count > 1 or rng.random() < 0.6
    _max_replicas(rng, subsets, last_open)
    spec = {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET}, "subsets": subsets}
    if strategy == "Fixed":
        spec["scheduleStrategy"] = {"type": "Fixed"}
    elif strategy == "Adaptive":
        adaptive = {"rescheduleCriticalSeconds": rng.randint(1, 3)}
        if rng.random() < 0.25:
            adaptive["disableSimulationSchedule"] = True
        spec["scheduleStrategy"] = {"type": "Adaptive", "adaptive": adaptive}
    return spec


# ---- invalid spreads: one breakage each -------------------------------------------------
def _break(rng: random.Random, spec: dict) -> str:
    """Break ``spec`` in one way; returns what was done."""
    subsets = spec["subsets"]
    s = rng.choice(subsets)
    kinds = ["duplicate-name", "bad-name", "empty-name", "negative-max", "percent-over-100", "mixed-types",
             "bad-percent", "bad-operator", "in-without-values", "bad-weight", "bad-toleration", "bad-strategy",
             "adaptive-on-fixed", "reschedule-bounds", "adaptive-last-limited", "no-subsets", "bad-label-patch",
             "percent-under-100", "bad-key"]
    kind = rng.choice(kinds)
    if kind == "duplicate-name":
        subsets.append(copy.deepcopy(s))
    elif kind == "bad-name":
        s["name"] = rng.choice(["Upper", "a_b", "-a", "a" * 64])
    elif kind == "empty-name":
        s["name"] = ""
    elif kind == "negative-max":
        s["maxReplicas"] = -rng.randint(1, 3)
        for o in subsets:
            if isinstance(o.get("maxReplicas"), str):
                o["maxReplicas"] = 1
    elif kind == "percent-over-100":
        for o in subsets:
            o.pop("maxReplicas", None)
        s["maxReplicas"] = rng.choice(["101%", "150%"])
    elif kind == "mixed-types":
        if len(subsets) < 2:
            subsets.append({"name": "zz"})
        subsets[0]["maxReplicas"], subsets[1]["maxReplicas"] = 1, "50%"
    elif kind == "bad-percent":
        for o in subsets:
            o.pop("maxReplicas", None)
        s["maxReplicas"] = rng.choice(["abc", "-5%", "5.5%"])
    elif kind == "bad-operator":
        s["requiredNodeSelectorTerm"] = {"matchExpressions": [{"key": ZONE, "operator": rng.choice(["Near", "Gt"]),
                                                               "values": ["zone-a"]}]}
    elif kind == "in-without-values":
        s["requiredNodeSelectorTerm"] = {"matchExpressions": [{"key": ZONE, "operator": "In"}]}
    elif kind == "bad-weight":
        s["preferredNodeSelectorTerms"] = [{"weight": rng.choice([0, 101, -1]), "preference": {
            "matchExpressions": [{"key": ZONE, "operator": "In", "values": ["zone-a"]}]}}]
    elif kind == "bad-toleration":
        s["tolerations"] = [rng.choice([{"key": "bad key", "operator": "Exists"},
                                        {"key": "k", "operator": "Exists", "value": "v"},
                                        {"key": "k", "operator": "Like"},
                                        {"operator": "Equal", "value": "v"},
                                        {"key": "k", "operator": "Equal", "value": "v", "effect": "Evict"}])]
    elif kind == "bad-strategy":
        spec["scheduleStrategy"] = {"type": rng.choice(["random", "fixed", "Spread"])}
    elif kind == "adaptive-on-fixed":
        spec["scheduleStrategy"] = {"type": "Fixed", "adaptive": {"rescheduleCriticalSeconds": 10}}
    elif kind == "reschedule-bounds":
        for o in subsets[-1:]:
            o.pop("maxReplicas", None)
        n = len(subsets)
        limit = 2**31 - 1 if n <= 1 else (300 - 5) // (n - 1)
        spec["scheduleStrategy"] = {"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": rng.choice(
            [-1, limit + 1, limit] if n > 1 else [-1, -5])}}
    elif kind == "adaptive-last-limited":
        if len(subsets) < 2:
            subsets.append({"name": "zz"})
        for o in subsets:
            o.pop("maxReplicas", None)
        subsets[-1]["maxReplicas"] = 2
        spec["scheduleStrategy"] = {"type": "Adaptive"}
    elif kind == "no-subsets":
        spec["subsets"] = []
    elif kind == "bad-label-patch":
        s["patch"] = {"metadata": {"labels": {rng.choice(["bad key", "-x", "a/b/c"]): "v"}}}
    elif kind == "percent-under-100":
        for o in subsets:
            o["maxReplicas"] = f"{rng.choice([10, 20])}%"
    elif kind == "bad-key":
        s["requiredNodeSelectorTerm"] = {"matchExpressions": [{"key": rng.choice(["bad key", "a/b/c", "/x"]),
                                                               "operator": "Exists"}]}
    return kind


def combination(seed: int, index: int, invalid_share: float = 0.4) -> dict:
    """Combination ``index`` of ``seed``: {"id", "valid", "spread" (the WorkloadSpread's spec),
    "template" (extras of the pod spec), "steps" (the Deployment's replicas after 0), and for
    an invalid one "broken" (how) and "deployment_first" (its target exists before it, so a
    patch is checked against the template)}."""
    rng = random.Random(f"workloadspread-{seed}-{index}")
    comb = {"id": f"w{seed % 10**6}-{index}", "spread": valid_spread(rng), "template": _template_extras(rng)}
    if rng.random() < invalid_share:
        comb["valid"] = False
        comb["broken"] = _break(rng, comb["spread"])
        comb["deployment_first"] = rng.random() < 0.5
        comb["steps"] = []
    else:
        comb["valid"] = True
        comb["steps"] = [rng.randint(1, MAX_REPLICAS), rng.randint(0, MAX_REPLICAS), rng.randint(0, MAX_REPLICAS)]
    return comb


# ---- manifests ----------------------------------------------------------------------------
def workloadspread(comb: dict) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread", "metadata": {"name": SPREAD},
            "spec": copy.deepcopy(comb["spread"])}


def deployment(comb: dict, replicas: int) -> dict:
    labels = {"app": TARGET}
    spec = {"containers": [{"name": "app", "image": "registry.local/app:1"}], "nodeSelector": dict(KWOK),
            "terminationGracePeriodSeconds": 0, **copy.deepcopy(comb.get("template") or {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": TARGET},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def as_case(comb: dict, expected: list, note: str) -> str:
    """The combination as an entry of tests/workloadspread/scenarios.py's CASES: what upstream
    did (``expected``: the verdict, or each step's snapshot) is what the case asserts."""
    case = {"id": comb["id"], "note": note, "spread": comb["spread"], "template": comb.get("template") or {},
            "steps": comb["steps"], "expected": expected}
    if not comb["valid"]:
        case["deployment_first"] = comb.get("deployment_first", False)
    return pprint.pformat(json.loads(json.dumps(case)), width=110, sort_dicts=False) + ","
