"""WorkloadSpread pods in the drill's load: real pod creates that a WorkloadSpread's subsets,
each limited by ``maxReplicas``, must hold to their limits while the manager is disrupted.

Why real creates: the WorkloadSpread part of the pod webhook passes a dry run over (ours as
upstream v1.8.3's: a dry run must not take a place in a subset), so only a stored pod takes
one. The pods are owned by a Job that no controller manages (``spec.managedBy`` names the
drill: the built-in Job controller leaves it alone, Kubernetes >= 1.32) and carry its
selector, so both managers' WorkloadSpread controllers count them as the Job's pods, as
they would a real workload's. They never run: a scheduling gate keeps them Pending (and an
unscheduled pod is deleted at once). Each one is deleted ``lifetime_s`` after it was
created, so places free and fill all through a scenario and the limit keeps mattering; what
is left is deleted after each scenario (``clear``), the Job and the WorkloadSpread at the
end (and the Job's garbage collection takes any pod left behind).

A *violation* is a moment when a subset holds more live pods (the annotation
``apps.kruise.io/matched-workloadspread`` names it) than its ``maxReplicas``, not counting
pods the drill has asked to delete by the time the list answered (their deletion frees the
place at admission, before the pod is gone). The pods are listed while the scenario runs (every ``interval``)
and once more at its end; a scenario's ``workloadspread_violations`` is the largest excess
seen at once, summed over the subsets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubekit import paths
from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION

from .scenarios import DrillRefused

SPREAD_LABEL = "kruisectl.io/drill-spread"
SPREAD_LABEL_SELECTOR = SPREAD_LABEL  # every drill's spread objects and pods
MANAGED_BY = "kruisectl.io/drill"  # the Job's controller: nobody
GATE = "kruisectl.io/drill-never-scheduled"
SUBSETS = (("a", 2), ("b", 2), ("c", 2))  # (name, maxReplicas): 6 places for pods that want more
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"


def lifetime_for(rate: float, share: float) -> float:
    """How long each pod lives: about twice as many pods alive as the subsets have places, so
    they stay full and every freed place is fought over."""
    return max(1.0, 2 * sum(m for _n, m in SUBSETS) / max(rate * share, 1e-9))


def job_body(name: str, spread_id: str) -> dict:
    """The WorkloadSpread's target: a Job only the drill manages (never run)."""
    labels = {SPREAD_LABEL: spread_id}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"managedBy": MANAGED_BY, "parallelism": sum(m for _n, m in SUBSETS),
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"restartPolicy": "Never", "schedulingGates": [{"name": GATE}],
                                           "containers": [{"name": "app",
                                                           "image": "kruisectl.invalid/app:never-pulled"}]}}}}


def workloadspread_body(name: str, job: str, spread_id: str) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread",
            "metadata": {"name": name, "labels": {SPREAD_LABEL: spread_id}},
            "spec": {"targetRef": {"apiVersion": "batch/v1", "kind": "Job", "name": job},
                     "subsets": [{"name": n, "maxReplicas": m} for n, m in SUBSETS]}}


def spread_pod(job: dict, labels: dict[str, str], generate_name: str = "kruisectl-drill-spread-") -> dict:
    """A pod of ``job`` (its selector's labels, the Job as its controller) with ``labels`` too
    (the probe SidecarSet's); never scheduled."""
    meta, spec = job["metadata"], job["spec"]
    own = {**((spec.get("selector") or {}).get("matchLabels") or {}), **(meta.get("labels") or {}), **labels}
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"], "controller": True}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": generate_name, "labels": own, "ownerReferences": [owner]},
            "spec": {"restartPolicy": "Never", "schedulingGates": [{"name": GATE}],
                     "containers": [{"name": "app", "image": "kruisectl.invalid/app:never-pulled"}]}}


def matched(pod: dict) -> dict:
    """The webhook's matched-workloadspread annotation of ``pod`` read back ({} when absent or
    unreadable)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(MATCHED_WORKLOADSPREAD_ANNOTATION)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def subset_of(pod: dict) -> str | None:
    """The subset the webhook put ``pod`` in (its matched-workloadspread annotation), or None."""
    return matched(pod).get("subset") or None


def excess(pods: list[dict], limits: dict[str, int], leaving: set[str] = frozenset()) -> dict[str, int]:
    """Per subset, how many live pods it holds beyond its limit (only subsets over it): pods
    being deleted, or whose deletion the drill has sent (``leaving``), do not count."""
    counts: dict[str, int] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or meta.get("name") in leaving:
            continue
        subset = subset_of(pod)
        if subset is not None:
            counts[subset] = counts.get(subset, 0) + 1
    return {s: n - limits[s] for s, n in sorted(counts.items()) if s in limits and n > limits[s]}


def evidence(pods: list[dict], subset: str, ws: dict | None) -> str:
    """What a subset over its limit held, for the one who looks into it: its live pods (name,
    creation, the id the webhook generated) and the WorkloadSpread's status of that subset as
    the API had it just after: the overall one the leader writes, and each workload version's,
    where the webhooks take and free places."""
    held = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or subset_of(pod) != subset:
            continue
        uid = matched(pod).get("uid") or ""
        held.append(f"{meta.get('name')}@{meta.get('creationTimestamp', '?')}" + (f" uid {uid}" if uid else ""))
    status = (ws or {}).get("status") or {}
    said = [f"overall {_subset_said(status.get('subsetStatuses'), subset)}"]
    said += [f"version {version!r} {_subset_said(statuses, subset)}"  # where the webhooks take places
             for version, statuses in sorted((status.get("versionedSubsetStatuses") or {}).items())]
    version = ((ws or {}).get("metadata") or {}).get("resourceVersion", "?")
    return f"subset {subset} held {', '.join(held) or 'nothing'}; status at resourceVersion {version}: {'; '.join(said)}"


def status_line(ws: dict, subset: str) -> str:
    """One WorkloadSpread status, for a subset's history: its resourceVersion and what the
    overall and each version's status say of the subset (missingReplicas, creatingPods and
    deletingPods keys)."""
    status = ws.get("status") or {}

    def said(statuses) -> str:
        found = _subset_status(statuses, subset)
        if found is None:
            return "none"
        return (f"missing {found.get('missingReplicas')} creating {sorted(found.get('creatingPods') or {})} "
                f"deleting {sorted(found.get('deletingPods') or {})}")

    overall = status.get("subsetStatuses")
    parts = [f"overall replicas {(_subset_status(overall, subset) or {}).get('replicas')} {said(overall)}"]
    parts += [f"{version!r} {said(statuses)}" for version, statuses in sorted((status.get("versionedSubsetStatuses") or {}).items())]
    return f"status rv {(ws.get('metadata') or {}).get('resourceVersion', '?')}: " + " | ".join(parts)


def _subset_status(statuses: list[dict] | None, subset: str) -> dict | None:
    return next((s for s in statuses or [] if s.get("name") == subset), None)


def _subset_said(statuses: list[dict] | None, subset: str) -> str:
    status = _subset_status(statuses, subset)
    if status is None:
        return "none"
    return (f"missingReplicas {status.get('missingReplicas')}, creatingPods "
            f"{sorted((status.get('creatingPods') or {}).items())}, deletingPods "
            f"{sorted((status.get('deletingPods') or {}).items())}")


@dataclass
class SpreadFigures:
    """One scenario's WorkloadSpread figures (``ScenarioResult.workloadspread_*``)."""

    pods: int = 0  # created (admitted)
    unplaced: int = 0  # of them, admitted into no subset (every one full, or the WorkloadSpread unseen)
    violations: int = 0  # the most pods beyond maxReplicas at once, summed over the subsets
    delete_failed: int = 0  # deletions (the churn, the clean-up) refused or lost
    details: list[str] = field(default_factory=list)


class Spread:
    """The Job and WorkloadSpread of one drill, its pods' churn and the check of the limits."""

    def __init__(self, api, namespace: str, timeout: float, lifetime_s: float = 3.0, interval: float = 0.5):
        self.api, self.namespace, self.timeout = api, namespace, timeout
        self.lifetime_s, self.interval = lifetime_s, interval
        self.id = uuid.uuid4().hex[:8]
        self.name = f"kruisectl-drill-spread-{self.id}"
        self.job: dict | None = None
        self.limits = dict(SUBSETS)
        self._lock = threading.Lock()
        self._live: deque[tuple[float, str]] = deque()  # (created, name), oldest first
        self._leaving: set[str] = set()
        self._deletes = ThreadPoolExecutor(4, thread_name_prefix="drill-spread-delete")
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()
        self.figures = SpreadFigures()
        self._began = 0.0
        # what happened to the WorkloadSpread and its pods in this scenario, for the evidence:
        # (monotonic time, kind, payload), kinds "status" (the object), "created" (name, subset,
        # uid), "delete" / "deleted" (name); bounded
        self._history: deque[tuple[float, str, object]] = deque(maxlen=4000)
        self._status_watch = None

    # ---- the objects -----------------------------------------------------------------------
    def create(self) -> "Spread":
        """The Job, then the WorkloadSpread; DrillRefused (one line) when either cannot be."""
        from kubekit.api import ApiError

        jobs = JOBS.format(ns=self.namespace)
        try:
            self.job = self.api.request("POST", jobs, timeout=self.timeout, body=job_body(self.name, self.id))
        except ApiError as err:
            raise DrillRefused(f"cannot create the WorkloadSpread load's Job in {self.namespace}: {err}") from None
        if (self.job.get("spec") or {}).get("managedBy") != MANAGED_BY:
            self.delete()
            raise DrillRefused("the WorkloadSpread load needs Job spec.managedBy (Kubernetes >= 1.32): this "
                               "cluster dropped it, so the Job controller would run the Job's pods")
        try:
            self.api.request("POST", paths.workloadspreads(self.namespace), timeout=self.timeout,
                             body=workloadspread_body(self.name, self.name, self.id))
        except ApiError as err:
            self.delete()
            raise DrillRefused(f"cannot create WorkloadSpread {self.namespace}/{self.name}: {err}") from None
        return self

    def delete(self) -> None:
        """The WorkloadSpread, the pods left and the Job (its pods with it): best effort."""
        from kubekit.api import ApiError

        self._deletes.shutdown(wait=True)
        for path in (paths.workloadspreads(self.namespace, self.name), JOBS.format(ns=self.namespace) + "/" + self.name):
            try:
                self.api.request("DELETE", path, timeout=self.timeout,
                                 body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"})
            except ApiError:
                pass

    def __enter__(self) -> "Spread":
        return self.create()

    def __exit__(self, *_exc) -> None:
        try:
            self.clear(wait=10)
        finally:
            self.delete()

    # ---- the load's part -------------------------------------------------------------------
    def pod(self, labels: dict[str, str]) -> dict:
        return spread_pod(self.job, labels)

    def created(self, pod: dict) -> None:
        """A pod the apiserver stored: counted, and deleted after ``lifetime_s``."""
        with self._lock:
            self.figures.pods += 1
            if subset_of(pod) is None:
                self.figures.unplaced += 1
            self._live.append((time.monotonic(), pod["metadata"]["name"]))
            self._history.append((time.monotonic(), "created",
                                  (pod["metadata"]["name"], subset_of(pod), matched(pod).get("uid") or "")))

    def churn(self) -> None:
        """Delete (on threads of their own) the pods older than ``lifetime_s``."""
        now = time.monotonic()
        with self._lock:
            while self._live and now - self._live[0][0] >= self.lifetime_s:
                name = self._live.popleft()[1]
                self._leaving.add(name)
                self._history.append((now, "delete", name))
                self._deletes.submit(self._delete_pod, name)

    def _delete_pod(self, name: str) -> None:
        from kubekit.api import ApiError

        try:
            self.api.request("DELETE", paths.pods(self.namespace, name), timeout=self.timeout)
            with self._lock:
                self._history.append((time.monotonic(), "deleted", name))
        except ApiError as err:
            if err.not_found:
                return
            with self._lock:
                self.figures.delete_failed += 1
                self._leaving.discard(name)  # still there: it counts again
                self._live.appendleft((time.monotonic(), name))  # and is deleted again soon
                if len(self.figures.details) < 20:
                    self.figures.details.append(f"delete {name}: {str(err)[:400]}")

    def warm(self, labels: dict[str, str], wait: float = 60) -> None:
        """Until pods of the Job are placed in a subset 3 times in a row (the replicas' caches
        have the WorkloadSpread), then every place freed again."""
        from kubekit.api import ApiError

        deadline, streak = time.monotonic() + wait, 0
        while streak < 3:
            if time.monotonic() > deadline:
                raise DrillRefused(f"pods of the WorkloadSpread load's Job in {self.namespace} were not placed in a "
                                   f"subset within {wait:g}s: is the WorkloadSpread webhook served?")
            try:
                pod = self.api.request("POST", paths.pods(self.namespace), timeout=self.timeout,
                                       body=spread_pod(self.job, labels, "kruisectl-warmup-spread-"))
            except ApiError:
                streak = 0
            else:
                self.created(pod)
                streak = streak + 1 if subset_of(pod) is not None else 0
            time.sleep(0.2)
        time.sleep(1.0)  # the other replicas' caches catch up as well
        self.clear()

    # ---- the check -------------------------------------------------------------------------
    def pods(self) -> list[dict]:
        return self.api.request("GET", paths.pods(self.namespace), timeout=self.timeout,
                                labelSelector=f"{SPREAD_LABEL}={self.id}").get("items") or []

    def check(self) -> dict[str, int]:
        """One look at the subsets: what is over its limit now (recorded). The pods the drill
        asked to delete are read once the list has answered: a deletion sent while the list was
        on its way may have freed its place, and a new pod taken it, before the list read the
        pods (it counted both then); such a look is noted as one that could not tell, never
        as a violation (a lasting excess is seen by the next look)."""
        with self._lock:
            before = set(self._leaving)
        pods = self.pods()
        with self._lock:
            after = set(self._leaving)
        over = excess(pods, self.limits, after)
        racing = sorted(after - before)
        if racing and excess(pods, self.limits, before) != over:
            with self._lock:
                if len(self.figures.details) < 20:
                    self.figures.details.append(
                        f"at {time.monotonic() - self._began:+.1f}s: a look that could not tell (not a violation): "
                        f"the deletion of {', '.join(racing)} was sent while it listed")
        if over:
            with self._lock:
                first = not self.figures.violations
                total = sum(over.values())
                self.figures.violations = max(self.figures.violations, total)
                if len(self.figures.details) < 20:
                    self.figures.details.append(
                        f"at {time.monotonic() - self._began:+.1f}s: " + ", ".join(
                            f"subset {s} holds {self.limits[s] + n} pods (maxReplicas {self.limits[s]})"
                            for s, n in over.items()))
            if first:  # the first look that saw one: what was held, and what the status said
                ws = self.workloadspread()
                with self._lock:
                    self.figures.details += [evidence(pods, s, ws) for s in over]
                    self.figures.details += [self.history(s) for s in over]
        return over

    def workloadspread(self) -> dict | None:
        """The WorkloadSpread as the API has it now; None when it cannot be read (the evidence
        then says "no status"; the figure stands)."""
        from kubekit.api import ApiError

        try:
            return self.api.request("GET", paths.workloadspreads(self.namespace, self.name), timeout=self.timeout)
        except ApiError:
            return None

    def history(self, subset: str, seconds: float = 15.0) -> str:
        """The last ``seconds`` of the scenario as this subset saw it: each status the watch
        delivered, each pod created into it, each deletion sent and answered (called with the
        lock held)."""
        since = time.monotonic() - seconds
        placed = {payload[0] for _at, kind, payload in self._history if kind == "created" and payload[1] == subset}
        lines = []
        for at, kind, payload in self._history:
            if at < since:
                continue
            stamp = f"{at - self._began:+.2f}s"
            if kind == "status":
                lines.append(f"{stamp} {status_line(payload, subset)}")
            elif kind == "created" and payload[1] == subset:
                lines.append(f"{stamp} created {payload[0]} uid {payload[2]}")
            elif kind in ("delete", "deleted") and payload in placed:
                lines.append(f"{stamp} {'delete sent' if kind == 'delete' else 'deleted'} {payload}")
        return f"history of subset {subset}: " + "; ".join(lines)

    def _watch_status(self) -> None:
        """Record every status of the WorkloadSpread the API delivers until the scenario stops."""
        from kubekit.api import ApiError

        while not self._stop.is_set():
            try:
                with self.api.open_watch(paths.workloadspreads(self.namespace), "", timeout_s=60,
                                         fieldSelector=f"metadata.name={self.name}") as watch:
                    self._status_watch = watch
                    for event in watch:
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            obj = event.get("object") or {}
                            kept = {"metadata": {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion")},
                                    "status": obj.get("status") or {}}  # what status_line reads, no more
                            with self._lock:
                                self._history.append((time.monotonic(), "status", kept))
                        if self._stop.is_set():
                            return
            except ApiError:
                self._stop.wait(0.5)

    def start(self) -> "Spread":
        """A scenario begins: fresh figures, the pods checked every ``interval`` until ``stop``."""
        self.figures, self._began = SpreadFigures(), time.monotonic()
        self._stop.clear()
        with self._lock:
            self._history.clear()
        threading.Thread(target=self._watch_status, name="drill-spread-status", daemon=True).start()
        self._watch = threading.Thread(target=self._loop, name="drill-spread-check", daemon=True)
        self._watch.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a missed look; the final one is not optional
                pass

    def stop(self) -> SpreadFigures:
        """The scenario's load has ended: a last look (an error propagates: the figure would be
        unknown), then its figures."""
        self._stop.set()
        if self._status_watch is not None:
            self._status_watch.close()
        if self._watch is not None:
            self._watch.join(self.timeout + 1)
        self.check()
        return self.figures

    def clear(self, wait: float = 60) -> None:
        """Every pod of the load deleted (waited for): the next scenario starts with every
        place free."""
        with self._lock:
            names = [name for _at, name in self._live]
            self._live.clear()
            self._leaving.update(names)
        for name in names:
            self._deletes.submit(self._delete_pod, name)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            left = self.pods()
            if not left:
                with self._lock:
                    self._leaving.clear()
                    self._live.clear()
                return
            for pod in left:
                if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                    name = pod["metadata"]["name"]
                    with self._lock:
                        if name not in self._leaving:
                            self._leaving.add(name)
                            self._deletes.submit(self._delete_pod, name)
            time.sleep(0.5)
        raise DrillRefused(f"the WorkloadSpread load's pods in {self.namespace} were not all deleted within {wait:g}s")
