"""The runner of the WorkloadSpread differential test: combinations (workloadspread_gen) played
on two control planes of the same kind (scheduler, controller-manager, kwok nodes in zones a,
b, c and nodes without a zone label), one managed by upstream v1.8.3's kruise-manager, the
other by ours. The two managers cannot share a cluster: both would admit and re-cost the same
pods.

A valid combination runs in a namespace of its own on both sides at once: the WorkloadSpread
(its verdict compared), its Deployment created at 0 replicas and scaled through the steps; at
each step, once both sides are settled (the replicas exist, none terminating, each pod running
or unschedulable, the status observed), a snapshot of each side must be equal and stay equal
for :data:`STABLE_FOR` seconds. An invalid combination compares the verdicts of both
validating webhooks (allowed or refused) on the real apiserver.

What the snapshot holds, per side: every live pod (its subset, the matched-workloadspread
annotation, the other annotations (the deletion cost among them), its labels, affinity,
tolerations, and whether it runs, is unschedulable or waits), as a multiset; and the
WorkloadSpread's status field by field. What is normalised, and why (nothing else is):

- the ``uid`` in the matched-workloadspread annotation: the WorkloadSpread's UID, random per
  object;
- pod names, where the status keys creatingPods / deletingPods by them: the ReplicaSet's
  5-character suffix is random (``web-<template hash>-*``; the template hash is the same on
  both sides, so it stays);
- the values of creatingPods / deletingPods and the conditions' lastTransitionTime:
  timestamps of the moment either manager acted;
- a pod's ``topology.kubernetes.io/zone`` and ``region`` labels: the apiserver copies them
  from the node on binding (PodTopologyLabelsAdmission), and the scheduler picks among
  equally fit nodes at random. Which zones a pod may land in is what its affinity says, and
  that is compared.

Nudges: upstream's controller reconciles a WorkloadSpread on a change to it, to its workload's
replicas, or to an annotated pod's deletion, activity or version; not on a pod being bound or
becoming unschedulable, and not on any change of a pod without the annotation. So a pod the
webhook left outside every subset is adopted (by its node) only at upstream's next reconcile,
and an Adaptive pod stuck unschedulable is moved on only then; ours reconciles on every pod
change (docs/workloadspread-controller.md). The final state after a reconcile is what is
compared: while the two sides are not equal, and while a pod of an Adaptive spread waits
unschedulable in its subset, both sides' WorkloadSpreads get an annotation touched every
:data:`NUDGE_EVERY` seconds (the event upstream needs), as
scenarios.adaptive_reschedules_a_pod_unschedulable_in_its_subset does by hand.

A scale-up that moves a percent limit is a race in upstream itself: the ReplicaSet creates the
new pods while its controller writes the status with the new limits, and a pod admitted first
takes a place by the old ones (on a loaded machine upstream's controller lost it three times
in a row). So such a step is played in order on both sides: the pods' ServiceAccount
(:data:`GATE_ACCOUNT`) is deleted, which makes the apiserver refuse the ReplicaSet's creates
before any webhook sees them; the Deployment is scaled; once each side's WorkloadSpread status
counts the places from the new replicas (:func:`limits_written`) the
ServiceAccount comes back and the ReplicaSet's retries create the pods.

A difference is played again (fresh namespaces, both sides) up to :data:`RETRIES` times: one
that goes away is upstream's or ours' own race (e.g. pods of equal cost in two subsets when a
percent limit drops with a scale-down, which the ReplicaSet breaks by node and age), counted in
the summary as ``equal_on_retry`` and logged, not reported as a difference."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubekit import kruise
from kubekit.api import ApiError
from manager.workloadspread.status import scaled_value
from tests.upstream import workloadspread_gen as gen

SETTLE_TIMEOUT = 60.0  # per step; Adaptive gets more (see _deadline)
STABLE_FOR = 1.5  # an equal snapshot must still be equal this much later (a cost, a status write in flight)
DIFFER_FOR = 10.0  # both sides settled and still unequal this long: a difference
POLL = 0.5
NUDGE_EVERY = 3.0
RETRIES = 2
CACHE_GRACE = 1.0  # both webhooks read WorkloadSpreads from their caches
MATCHED = kruise.MATCHED_WORKLOADSPREAD_ANNOTATION
TOPOLOGY_LABELS = (kruise.ZONE_LABEL, kruise.REGION_LABEL)
UID = re.compile(r'"uid":"[0-9a-f-]{36}"')
POD_SUFFIX = re.compile(r"^(web-[a-z0-9]+)-[a-z0-9]{5}$")
SPREADS = "/apis/apps.kruise.io/v1alpha1/namespaces/{ns}/workloadspreads"
GATE_ACCOUNT = "fuzz-pods"  # the pods' ServiceAccount: deleted, it holds a scale-up's creates back
GATE_TIMEOUT = 15.0  # the most a scale-up waits for a side's status with its new limits


class Side:
    """One manager's control plane, spoken to as a user does (admin credentials, plain JSON)."""

    def __init__(self, name: str, cluster):
        self.name = name
        self.cluster = cluster
        self.client = cluster.client("ws-fuzz", pool_size=16)

    def call(self, method: str, path: str, body=None, **kwargs) -> dict:
        return self.client.request(method, path, body=body, timeout=15, **kwargs)

    def namespace(self, ns: str) -> None:
        self.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        self.gate_open(ns)
        deadline = time.monotonic() + 30
        while True:  # pods of a namespace without its ServiceAccount are refused
            try:
                self.call("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
                return
            except ApiError as err:
                if not err.not_found or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def create_spread(self, ns: str, comb: dict) -> str | None:
        """None when created, else the refusal (the schema's or a webhook's)."""
        try:
            self.call("POST", SPREADS.format(ns=ns), gen.workloadspread(comb))
            return None
        except ApiError as err:
            if err.status == 0 or "failed calling webhook" in err.message or not 400 <= err.status < 500:
                raise
            return f"{err.status}: {err.message}"

    def gate_open(self, ns: str) -> None:
        self.call("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": GATE_ACCOUNT}})

    def gate_close(self, ns: str) -> None:
        """Pods are refused from now on."""
        self.call("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/{GATE_ACCOUNT}")

    def pod_count(self, ns: str) -> int:
        return len(self.call("GET", f"/api/v1/namespaces/{ns}/pods").get("items") or [])

    def has_limits_of(self, ns: str, replicas: int) -> bool:
        """Whether the status's percent subsets count their places from ``replicas``."""
        spread = self.call("GET", f"{SPREADS.format(ns=ns)}/{gen.SPREAD}")
        return limits_written(spread, replicas)

    def scale(self, ns: str, replicas: int) -> None:
        self.call("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{gen.TARGET}/scale",
                  {"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    def nudge(self, ns: str, count: int) -> None:
        self.call("PATCH", f"{SPREADS.format(ns=ns)}/{gen.SPREAD}",
                  {"metadata": {"annotations": {"fuzz.kruise.io/nudge": str(count)}}},
                  content_type="application/merge-patch+json")

    def snapshot(self, ns: str, replicas: int) -> tuple[bool, dict, bool]:
        """(settled, the normalised state, whether an annotated pod waits unschedulable)."""
        deploy = self.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{gen.TARGET}")
        spread = self.call("GET", f"{SPREADS.format(ns=ns)}/{gen.SPREAD}")
        pods = self.call("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        stuck = False
        settled = (len(live) == len(pods) == replicas
                   and deploy["status"].get("observedGeneration") == deploy["metadata"]["generation"]
                   and (deploy["status"].get("replicas") or 0) == replicas
                   and (spread.get("status") or {}).get("observedGeneration") == spread["metadata"]["generation"])
        records = []
        for pod in live:
            state = _pod_state(pod)
            if state == "waiting":
                settled = False
            if state == "unschedulable" and MATCHED in (pod["metadata"].get("annotations") or {}):
                stuck = True  # under Adaptive, may be moved on (see FuzzRunner._settle)
            records.append(_pod_record(pod, state))
        state = {"pods": sorted(records, key=lambda r: json.dumps(r, sort_keys=True)),
                 "status": normalize_status(spread.get("status") or {})}
        return settled, state, stuck


def _pod_state(pod: dict) -> str:
    if pod["spec"].get("nodeName") and pod.get("status", {}).get("phase") == "Running":
        return "running"
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return "unschedulable"
    return "waiting"


def _pod_record(pod: dict, state: str) -> dict:
    meta, spec = pod["metadata"], pod["spec"]
    annotations = dict(meta.get("annotations") or {})
    matched = annotations.pop(MATCHED, None)
    subset = None
    if matched is not None:
        try:
            subset = json.loads(matched).get("subset")
        except ValueError:
            subset = "<not JSON>"
        matched = UID.sub('"uid":"<uid>"', matched)
    return {"subset": subset, "state": state, "matched": matched, "annotations": annotations,
            "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k not in TOPOLOGY_LABELS},
            "affinity": spec.get("affinity"),
            "tolerations": spec.get("tolerations")}


def _pod_key(name: str) -> str:
    m = POD_SUFFIX.match(name)
    return f"{m.group(1)}-*" if m else name


def _subset_status(s: dict) -> dict:
    out = dict(s)
    for key in ("creatingPods", "deletingPods"):
        if key in out:
            out[key] = sorted(_pod_key(n) for n in out[key] or {})
    if "conditions" in out:
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in out["conditions"] or []]
    return out


def normalize_status(status: dict) -> dict:
    """The status with only what is random by nature normalised (see the module's docstring)."""
    out = dict(status)
    if "subsetStatuses" in out:
        out["subsetStatuses"] = [_subset_status(s) for s in out["subsetStatuses"] or []]
    if "versionedSubsetStatuses" in out:
        out["versionedSubsetStatuses"] = {v: [_subset_status(s) for s in subsets or []]
                                          for v, subsets in (out["versionedSubsetStatuses"] or {}).items()}
    return out


def tally(state: dict) -> dict:
    """Pods counted by subset, state and deletion cost: a difference at a glance."""
    counts: dict[str, int] = {}
    for p in state.get("pods") or []:
        key = f"{p['subset'] or '-'}/{p['state']}/{p['annotations'].get(kruise.POD_DELETION_COST_ANNOTATION, '-')}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def diff(a, b) -> str:
    """Pods by subset/state/cost on each side, then the unified diff of the snapshots."""
    import difflib
    head = f"upstream {json.dumps(tally(a))}\nours     {json.dumps(tally(b))}\n"
    left = json.dumps(a, indent=1, sort_keys=True).splitlines()
    right = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return head + "\n".join(difflib.unified_diff(left, right, "upstream", "ours", lineterm="", n=2))


@dataclass
class Outcome:
    """One combination: ``kind`` None when identical, else "verdict", "settle" or "state" (the
    first difference), with a readable ``detail``; ``expected`` is upstream's verdict or its
    snapshot at each step (what a hand case asserts)."""

    comb: dict
    kind: str | None = None
    detail: str = ""
    expected: list = field(default_factory=list)
    refused: bool = False  # by both
    pods: int = 0  # upstream pods compared, summed over the steps
    in_subsets: int = 0  # of them, pods a subset took

    @property
    def identical(self) -> bool:
        return self.kind is None


class FuzzRunner:
    def __init__(self, theirs: Side, ours: Side, workers: int = 6, log=None):
        self.theirs, self.ours = theirs, ours
        self.sides = (theirs, ours)
        self.workers = workers
        self.log = log or (lambda *_: None)
        self.runs = itertools.count()
        self.equal_on_retry = 0
        self.retried: list[dict] = []  # the first outcome of each, for the report
        self.refused = 0  # WorkloadSpreads both refused
        self.pods = 0
        self.in_subsets = 0

    def _both(self, fn, *args):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(fn, side, *args) for side in self.sides]
            return [f.result() for f in futures]

    def play(self, comb: dict) -> Outcome:
        """Play the combination once, in fresh namespaces."""
        ns = f"{comb['id']}-{next(self.runs)}"
        out = Outcome(comb)
        try:
            self._both(Side.namespace, ns)
            if not comb["valid"] and comb.get("deployment_first"):
                self._both(lambda side: side.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                                                  gen.deployment(comb, 0)))
            theirs, mine = self._both(Side.create_spread, ns, comb)
            out.expected = [{"refused": theirs is not None}] if not comb["valid"] else []
            if (theirs is None) != (mine is None):
                out.kind = "verdict"
                out.detail = (f"upstream {'allowed' if theirs is None else 'refused (' + theirs + ')'}, "
                              f"ours {'allowed' if mine is None else 'refused (' + mine + ')'}")
                out.expected = [{"refused": theirs is not None}]
                return out
            if theirs is not None or not comb["valid"]:
                out.refused = theirs is not None
                return out
            time.sleep(CACHE_GRACE)
            self._both(lambda side: side.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                                              gated_deployment(comb)))
            previous = 0
            for step, replicas in enumerate(comb["steps"]):
                if limits_move(comb["spread"], previous, replicas) and replicas > previous:
                    self._scale_in_order(ns, replicas)
                else:
                    self._both(Side.scale, ns, replicas)
                previous = replicas
                kind, detail, state = self._settle(ns, replicas, comb["spread"])
                out.expected.append({"replicas": replicas, **(state or {})})
                if state:
                    out.pods += len(state["pods"])
                    out.in_subsets += sum(1 for p in state["pods"] if p["subset"])
                if kind:
                    out.kind, out.detail = kind, f"step {step} ({replicas} replicas): {detail}"
                    return out
            return out
        finally:
            for side in self.sides:
                with contextlib.suppress(ApiError):
                    side.call("DELETE", f"/api/v1/namespaces/{ns}")

    def _scale_in_order(self, ns: str, replicas: int) -> None:
        """Scale up with the pods held back until each side's status has its new limits (or
        GATE_TIMEOUT passed: then what follows shows the difference)."""
        self._both(Side.gate_close, ns)
        try:
            before = self._both(Side.pod_count, ns)
            self._both(Side.scale, ns, replicas)
            began = time.monotonic()
            deadline = began + GATE_TIMEOUT
            for side in self.sides:
                while not side.has_limits_of(ns, replicas) and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.log(f"fuzz: {ns} scaled to {replicas} with its pods held {time.monotonic() - began:.1f}s "
                     f"for the new limits{' (timed out)' if time.monotonic() >= deadline else ''}")
            after = self._both(Side.pod_count, ns)
            assert after == before, f"{ns}: pods were created while their ServiceAccount was gone ({before} -> {after})"
        finally:
            self._both(Side.gate_open, ns)

    def _settle(self, ns: str, replicas: int, spec: dict):
        """(None, "", upstream's state) once both sides are settled and equal for STABLE_FOR;
        else the kind of difference, its detail and upstream's last state."""
        strategy = spec.get("scheduleStrategy") or {}
        adaptive = strategy.get("type") == "Adaptive"
        budget = SETTLE_TIMEOUT + (60 if adaptive else 0)
        deadline = time.monotonic() + budget
        # An Adaptive pod unschedulable in its subset is deleted after rescheduleCriticalSeconds
        # (or never, e.g. in the last subset): a state with one must hold past that, nudges included.
        seconds = (strategy.get("adaptive") or {}).get("rescheduleCriticalSeconds", 0)
        adaptive_stable = STABLE_FOR + seconds + 2 * NUDGE_EVERY
        equal_since = unequal_since = None
        last_nudge, nudges = time.monotonic(), 0
        while True:
            (s1, a, stuck1), (s2, b, stuck2) = self._both(Side.snapshot, ns, replicas)
            now = time.monotonic()
            waiting = adaptive and (stuck1 or stuck2)
            if s1 and s2 and a == b:
                equal_since = equal_since or now
                if now - equal_since >= (adaptive_stable if waiting else STABLE_FOR):
                    return None, "", a
            else:
                equal_since = None
            if s1 and s2 and a != b:
                unequal_since = unequal_since or now
                if now - unequal_since >= DIFFER_FOR + (adaptive_stable if waiting else 0):
                    return "state", diff(a, b), a
            else:
                unequal_since = None
            if now > deadline:
                if not (s1 and s2):
                    unsettled = [side.name for side, s in zip(self.sides, (s1, s2)) if not s]
                    return "settle", f"not settled after {budget:.0f}s: {', '.join(unsettled)}\n" + diff(a, b), a
                return "state", diff(a, b), a
            if (not (s1 and s2 and a == b) or waiting) and now - last_nudge >= NUDGE_EVERY:
                nudges += 1
                last_nudge = now
                self._both(Side.nudge, ns, nudges)
            time.sleep(POLL)

    def run_one(self, comb: dict) -> Outcome:
        """Play it; a difference again up to RETRIES times (see the module's docstring)."""
        first = self.play(comb)
        if first.identical:
            return first
        for attempt in range(RETRIES):
            again = self.play(comb)
            if again.identical:
                self.equal_on_retry += 1
                self.retried.append({"id": comb["id"], "kind": first.kind, "detail": first.detail,
                                     "combination": comb})
                self.log(f"fuzz: {comb['id']} equal on retry {attempt + 1} after {first.kind}: "
                         + "\n".join(first.detail.splitlines()[:40]))
                return again
        return first

    def run(self, seed: int, count: int) -> tuple[dict, list[tuple[Outcome, str]]]:
        """``count`` combinations of ``seed``: the summary and each difference with its case."""
        started = time.monotonic()
        combs = [gen.combination(seed, i) for i in range(count)]
        found, done = [], 0
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for outcome in pool.map(self.run_one, combs):
                done += 1
                self.refused += outcome.refused
                self.pods += outcome.pods
                self.in_subsets += outcome.in_subsets
                if not outcome.identical:
                    found.append(outcome)
                    self.log(f"fuzz: {outcome.comb['id']} differs ({outcome.kind}): {outcome.detail}")
                self.log(f"fuzz: {done}/{count} combinations, {len(found)} difference(s), "
                         f"{time.monotonic() - started:.0f}s")
        differences = [(o, gen.as_case(o.comb, o.expected, f"{o.kind}: {o.detail.splitlines()[0]}")) for o in found]
        summary = {"combinations": count, "identical": count - len(found), "differences": len(found), "seed": seed,
                   "valid": sum(c["valid"] for c in combs), "refused_by_both": self.refused,
                   "pods_compared": self.pods, "pods_in_subsets": self.in_subsets,
                   "equal_on_retry": self.equal_on_retry, "seconds": round(time.monotonic() - started, 1)}
        return summary, differences


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def gated_deployment(comb: dict) -> dict:
    """The combination's Deployment at 0 replicas, its pods under :data:`GATE_ACCOUNT` (no
    token mounted: nothing else about the pod changes)."""
    body = gen.deployment(comb, 0)
    spec = body["spec"]["template"]["spec"]
    spec["serviceAccountName"] = GATE_ACCOUNT
    spec["automountServiceAccountToken"] = False
    return body


def limits_written(spread: dict, replicas: int) -> bool:
    """Whether the status counts each percent subset's places from ``replicas``: with no pod
    coming or going (a gated scale-up from a settled step), missingReplicas is the limit at
    ``replicas`` less the subset's pods, never below 0 (both controllers' arithmetic in that
    case)."""
    statuses = {s.get("name"): s for s in (spread.get("status") or {}).get("subsetStatuses") or []}
    for subset in (spread.get("spec") or {}).get("subsets") or []:
        limit = subset.get("maxReplicas")
        if not (isinstance(limit, str) and limit.endswith("%")):
            continue
        status = statuses.get(subset.get("name"))
        if status is None:
            return False
        try:
            places = scaled_value(limit, replicas)
        except ValueError:
            continue
        if (status.get("missingReplicas") or 0) != max(0, places - (status.get("replicas") or 0)):
            return False
    return True


def limits_move(spread: dict, before: int, after: int) -> bool:
    """Whether a percent maxReplicas gives another limit at ``after`` replicas than at ``before``."""
    for subset in spread.get("subsets") or []:
        limit = subset.get("maxReplicas")
        if isinstance(limit, str) and limit.endswith("%"):
            try:
                if scaled_value(limit, before) != scaled_value(limit, after):
                    return True
            except ValueError:
                continue
    return False
