"""The runner of the SidecarSet differential test: combinations (sidecarset_gen) sent to the
real upstream manager and to ours (test_injection_parity's ``Side``), in batches, both sides
at once, and compared: each SidecarSet's verdict (accepted / refused), each SidecarSet as
stored, each dry-run pod (refused, or the pod after normalize_pod).

Batching is what makes hundreds of combinations take minutes: a batch's SidecarSets are
created together (one combination's in order, since a SidecarSet may be refused for what an
earlier one declares), waited for together (one list per side), and deleted together (one
delete-collection per side, by a batch label). Combinations never select each other's pods
(sidecarset_gen's ``fuzz`` label), so a batch is as good as one combination at a time.

Upstream's own nondeterminism: the order of SidecarSets filed under one namespace group comes
from its cache's map iteration, so with several SidecarSets on one pod upstream is asked
again (up to ``_attempts``) until its pod equals ours; ours must be one of upstream's
answers. The injection time and the ServiceAccount volume's suffix are normalised
(normalize_pod); nothing else is."""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubekit.api import ApiError
from tests.upstream import sidecarset_gen as gen
from tests.upstream.test_injection_parity import SIDECARSETS, Side, diff, injected, normalize_pod, normalize_sidecarset

BATCH_LABEL = "fuzz-batch"
SETTLE_TIMEOUT = 60.0
CACHE_GRACE = 1.0  # both webhooks' caches hold a batch's SidecarSets once their status is written
# Both validating webhooks check a new SidecarSet against the others in their caches: one
# created a moment after another may be checked without it, on either side (a race upstream
# has with itself). The parity cases wait the same before each refusal.
BETWEEN_SIDECARSETS = 0.5


@dataclass
class Outcome:
    """One combination's comparison: ``kind`` is None when identical, else "verdict",
    "stored" or "pod" (the first difference found), with a readable ``detail``."""

    comb: dict
    kind: str | None = None
    detail: str = ""
    refused: list[str] = field(default_factory=list)  # refused by both
    inject: dict[str, list[str]] = field(default_factory=dict)  # upstream's, per pod

    @property
    def identical(self) -> bool:
        return self.kind is None


def _refusal(err: ApiError) -> bool:
    """A webhook's or the apiserver's verdict (not a transport failure, not a webhook that
    could not be called)."""
    if err.status == 0 or "failed calling webhook" in err.message:
        return False
    return 400 <= err.status < 500 or "denied the request" in err.message


def _attempts(comb: dict, accepted: set[str]) -> int:
    """Upstream tries for one pod: 2 for at most one SidecarSet (its pod is determined), else
    enough that every order of 2 or 3 SidecarSets shows up (miss odds below 1e-6)."""
    n = sum(1 for s in comb["sidecarsets"] if s["metadata"]["name"] in accepted)
    return {0: 1, 1: 2, 2: 24}.get(n, 90)


def renamed(comb: dict, new_id: str) -> dict:
    """The combination under another id (names and selection label), so a retried one never
    meets a deleted SidecarSet of the same name."""
    old = comb["id"]
    text = json.dumps(comb)
    text = re.sub(rf'"{re.escape(old)}((?:[-.]s\d+)?)"', lambda m: f'"{new_id}{m.group(1)}"', text)
    out = json.loads(text)
    out["id"] = new_id
    return out


def unordered(pod: dict, sent: dict, comb: dict) -> dict:
    """The pod with what the order of its SidecarSets decides put in one order: the injected
    containers before and after the pod's own grouped by SidecarSet (by name; each group in
    its own order), the injected volumes and pull secrets (after the pod's own) by name.

    Why: upstream takes the SidecarSets of one group in its cache's map iteration order, and
    for a few keys Go iterates a map in a rotation of one fixed slot order: with 3 SidecarSets
    only 3 of the 6 orders ever come out of one manager process, so asking upstream again
    cannot always reach the order ours uses (by name). Used only when no exact match came out
    of the retries, and only with 2 or more SidecarSets injected; counted in the summary."""
    pod = copy.deepcopy(pod)
    owner = {c["name"]: s["metadata"]["name"] for s in comb["sidecarsets"]
             for c in s["spec"].get("containers") or [] if isinstance(c, dict) and "name" in c}
    own = {c["name"] for c in sent["spec"].get("containers") or []}
    containers = pod["spec"].get("containers") or []

    def injected_here(c):
        return c["name"] in owner and c["name"] not in own

    start = 0
    while start < len(containers) and injected_here(containers[start]):
        start += 1
    end = len(containers)
    while end > start and injected_here(containers[end - 1]):
        end -= 1

    def by_set(block):
        return sorted(block, key=lambda c: owner[c["name"]])  # stable: a set's own order kept

    pod["spec"]["containers"] = by_set(containers[:start]) + containers[start:end] + by_set(containers[end:])
    for key, own_names in (("volumes", {v["name"] for v in sent["spec"].get("volumes") or []}),
                           ("imagePullSecrets", {s["name"] for s in sent["spec"].get("imagePullSecrets") or []})):
        items = pod["spec"].get(key) or []
        head = [i for i in items if i["name"] in own_names or i["name"].startswith("kube-api-access-")]
        tail = sorted((i for i in items if i not in head), key=lambda i: i["name"])
        if items:
            pod["spec"][key] = head + tail
    return pod


class FuzzRunner:
    def __init__(self, theirs: Side, ours: Side, workers: int = 8, log=None):
        self.theirs, self.ours = theirs, ours
        self.sides = (theirs, ours)
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.batches = itertools.count()
        self.log = log or (lambda *_: None)
        self.injected_pods = 0  # pods upstream gave sidecars (the comparison is not vacuous)
        self.refused_sidecarsets = 0  # SidecarSets both sides refused
        self.unordered_matches = 0  # pods equal only up to the order of their SidecarSets (see unordered)

    def prepare(self) -> None:
        """The namespaces every combination draws from, on both sides (see
        sidecarset_gen.EXCLUDED_NAMESPACES: kube-system labelled until ``close``)."""
        for side in self.sides:
            for name, labels in gen.NAMESPACES.items():
                side.namespace(name, labels)
            for name, labels in gen.EXCLUDED_NAMESPACES.items():
                if labels:
                    side.call("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}},
                              content_type="application/merge-patch+json")

    # ---- one batch ----------------------------------------------------------------------
    def _create_all(self, side: Side, comb: dict, batch: str) -> dict[str, str | None]:
        """Create the combination's SidecarSets in order: name -> None (accepted) or the refusal."""
        verdicts = {}
        for i, sidecarset in enumerate(comb["sidecarsets"]):
            if i:
                time.sleep(BETWEEN_SIDECARSETS)
            body = copy.deepcopy(sidecarset)
            body["metadata"].setdefault("labels", {})[BATCH_LABEL] = batch
            try:
                side.call("POST", SIDECARSETS, body)
                verdicts[sidecarset["metadata"]["name"]] = None
            except ApiError as err:
                if not _refusal(err):
                    raise
                verdicts[sidecarset["metadata"]["name"]] = f"{err.status}: {err.message}"
        return verdicts

    def _settled(self, side: Side, batch: str, expected: int) -> dict[str, dict]:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            items = side.call("GET", SIDECARSETS, labelSelector=f"{BATCH_LABEL}={batch}")["items"]
            done = {s["metadata"]["name"]: s for s in items
                    if (s.get("status") or {}).get("latestRevision")
                    and s["status"].get("observedGeneration") == s["metadata"].get("generation")}
            if len(done) >= expected:
                return done
            if time.monotonic() > deadline:
                raise AssertionError(f"{side.name}: {expected - len(done)} SidecarSet(s) of batch {batch} "
                                     "never got their status")
            time.sleep(0.2)

    def _dry_run(self, side: Side, namespace: str, pod: dict, revisions: dict[str, str]) -> dict:
        """The pod a dry-run create returns (normalised), or {"refused": message}; retried while
        the webhook's cache lacks a SidecarSet's current status (the recorded revision)."""
        deadline = time.monotonic() + 15
        while True:
            try:
                created = side.call("POST", f"/api/v1/namespaces/{namespace}/pods", copy.deepcopy(pod), dryRun="All")
            except ApiError as err:
                if not _refusal(err):
                    raise
                return {"refused": True}
            recorded = json.loads((created["metadata"].get("annotations") or {}).get(
                "kruise.io/sidecarset-hash") or "{}")
            if all(recorded[n].get("controllerRevision") == r for n, r in revisions.items() if n in recorded) \
                    or time.monotonic() > deadline:
                return normalize_pod(created)
            time.sleep(0.3)

    def _compare_pod(self, comb: dict, pod: dict, revisions: dict[str, str], accepted: set[str]):
        """(None or the difference, the containers upstream injected). A difference is looked
        at again after a pause, so a webhook cache a moment behind is not reported."""
        problem, names = self._compare_pod_once(comb, pod, revisions, accepted)
        if problem:
            time.sleep(2 * CACHE_GRACE)
            problem, names = self._compare_pod_once(comb, pod, revisions, accepted)
        return problem, names

    def _compare_pod_once(self, comb: dict, pod: dict, revisions: dict[str, str], accepted: set[str]):
        namespace = comb["namespace"]
        mine = self._dry_run(self.ours, namespace, pod, revisions)
        seen = []
        for _ in range(_attempts(comb, accepted)):
            got = self._dry_run(self.theirs, namespace, pod, revisions)
            if got == mine:
                return None, ([] if "refused" in got else injected(pod, got))
            if got not in seen:
                seen.append(got)
        if "refused" not in mine and any(unordered(g, pod, comb) == unordered(mine, pod, comb) for g in seen
                                         if "refused" not in g):
            self.unordered_matches += 1
            return None, injected(pod, seen[0])
        first = seen[0]
        return (f"pod {pod['metadata']['name']}: ours is none of upstream's {len(seen)} result(s):\n"
                + diff(first, mine)), ([] if "refused" in first else injected(pod, first))

    def run_batch(self, combs: list[dict]) -> list[Outcome]:
        batch = f"b{next(self.batches)}-{int(time.time() * 1000) % 10**9}"
        outcomes = [Outcome(c) for c in combs]
        try:
            created = {(side.name, i): self.pool.submit(self._create_all, side, c, batch)
                       for i, c in enumerate(combs) for side in self.sides}
            verdicts = {k: f.result() for k, f in created.items()}
            expected = {side.name: sum(v is None for (s, _), vs in verdicts.items() if s == side.name
                                       for v in vs.values()) for side in self.sides}
            stored = {side.name: self.pool.submit(self._settled, side, batch, expected[side.name])
                      for side in self.sides}
            stored = {k: f.result() for k, f in stored.items()}
            time.sleep(CACHE_GRACE)
            pod_jobs = []
            for i, (comb, out) in enumerate(zip(combs, outcomes)):
                theirs, mine = verdicts[("upstream", i)], verdicts[("ours", i)]
                differing = [n for n in theirs if (theirs[n] is None) != (mine[n] is None)]
                if differing:
                    # the case to add says what upstream does: its refusals, its pods
                    out.refused = [n for n in theirs if theirs[n] is not None]
                    for pod in comb["pods"]:
                        got = self.pool.submit(self._dry_run, self.theirs, comb["namespace"], pod, {})
                        pod_jobs.append((out, pod, got))
                    out.kind = "verdict"
                    out.detail = "; ".join(f"SidecarSet {n}: upstream {'accepted' if theirs[n] is None else 'refused (' + theirs[n] + ')'}"
                                           f", ours {'accepted' if mine[n] is None else 'refused (' + mine[n] + ')'}"
                                           for n in differing)
                    continue
                out.refused = [n for n in theirs if theirs[n] is not None]
                self.refused_sidecarsets += len(out.refused)
                accepted = {n for n in theirs if theirs[n] is None}
                a = [normalize_sidecarset(stored["upstream"][n]) for n in accepted]
                b = [normalize_sidecarset(stored["ours"][n]) for n in accepted]
                for x in a + b:
                    x["metadata"]["labels"].pop(BATCH_LABEL, None)
                if a != b:
                    out.kind = "stored"
                    out.detail = "stored SidecarSets differ:\n" + diff(a, b)
                    continue
                revisions = {n: stored["ours"][n]["status"]["latestRevision"] for n in accepted}
                for pod in comb["pods"]:
                    pod_jobs.append((out, pod, self.pool.submit(self._compare_pod, comb, pod, revisions, accepted)))
            for out, pod, job in pod_jobs:
                result = job.result()
                if out.kind == "verdict":  # upstream's pod only
                    out.inject[pod["metadata"]["name"]] = [] if "refused" in result else injected(pod, result)
                    continue
                problem, names = result
                out.inject[pod["metadata"]["name"]] = names
                self.injected_pods += bool(names)
                if problem and out.kind is None:
                    out.kind, out.detail = "pod", problem
        finally:
            for side in self.sides:
                side.call("DELETE", SIDECARSETS, labelSelector=f"{BATCH_LABEL}={batch}")
        return outcomes

    # ---- a run --------------------------------------------------------------------------
    def run(self, seed: int, count: int, features=gen.CI_FEATURES, batch_size: int = 25,
            shrink_budget: int = 60) -> tuple[dict, list[tuple[Outcome, Outcome, str]]]:
        """``count`` combinations of ``seed``: the summary, and each difference as (found,
        shrunk, ready-to-add parity case)."""
        started = time.monotonic()
        combs = [gen.combination(seed, i, features) for i in range(count)]
        found = []
        for start in range(0, count, batch_size):
            outcomes = self.run_batch(combs[start:start + batch_size])
            found += [o for o in outcomes if not o.identical]
            self.log(f"fuzz: {start + len(outcomes)}/{count} combinations, {len(found)} difference(s), "
                     f"{time.monotonic() - started:.0f}s")
        differences = []
        for outcome in found:
            small = self.shrink(outcome, budget=shrink_budget)
            case = gen.as_parity_case(small.comb, small.inject, small.refused,
                                      note=f"{small.kind}: {small.detail.splitlines()[0]}")
            differences.append((outcome, small, case))
        summary = {"combinations": count, "identical": count - len(found), "differences": len(found),
                   "seed": seed, "features": sorted(features), "seconds": round(time.monotonic() - started, 1),
                   "pods_equal_up_to_sidecarset_order": self.unordered_matches}
        return summary, differences

    def shrink(self, outcome: Outcome, budget: int = 60) -> Outcome:
        """The smallest combination (sidecarset_gen.shrink) that still differs the same way."""
        counter = itertools.count()
        last = {"outcome": outcome}

        def fails(candidate: dict) -> bool:
            trial = renamed(candidate, f"{outcome.comb['id']}-k{next(counter)}")
            got = self.run_batch([trial])[0]
            if got.kind == outcome.kind:
                last["outcome"] = got
                return True
            return False

        gen.shrink(outcome.comb, fails, budget=budget)
        return last["outcome"]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for side in self.sides:
            for name, labels in gen.EXCLUDED_NAMESPACES.items():
                if labels:
                    side.call("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": dict.fromkeys(labels)}},
                              content_type="application/merge-patch+json")
