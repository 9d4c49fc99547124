"""WorkloadSpread's part of the pod webhook, as upstream v1.8.3's: on a pod's creation, find
the WorkloadSpread of its workload, take a place in a subset by writing ``creatingPods`` to
the WorkloadSpread's status (optimistic concurrency, retried on conflict) *before* the pod is
allowed, and inject the subset; on a pod's deletion or eviction, write ``deletingPods``.

The WorkloadSpreads come from a watched cache, so a pod in a namespace without any costs no
API call; the pod's owners (ReplicaSet -> Deployment) and the target's replicas are read from
the API (upstream reads its own caches). Errors decide as upstream's: a failed status write or
owner lookup refuses the pod's creation (500) or deletion (400); a WorkloadSpread that cannot
be evaluated is passed over.

Beyond upstream: a WorkloadSpread whose target this manager does not serve (anything but a
Deployment, ReplicaSet or Job; its validating webhook refuses them) is passed over, and
owners of kinds this manager has no API for (CloneSet, Advanced StatefulSet) are not read.
A status write that conflicts is retried while the apiserver still waits for the answer (its
``?timeout=``; 3 s without one), not only 4 times (``conflict_delays``, ``retry_budget``).
And the admissions of one WorkloadSpread that wait on this replica while its status is being
written share the next write (:class:`_Queue`): each is applied to the status in the order
they came, exactly as that many writes one after another would have been, and one PUT carries
them all. Upstream writes once per pod, and at 50 concurrent creates most of its writes
conflict with each other.
"""

from __future__ import annotations

import copy
import itertools
import logging
import random
import threading
import time
import uuid
from typing import Callable

from kubekit.api import ApiError, Client, resource_version
from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION, WORKLOADSPREADS_PATH

from ..admission import allowed, answer_by, answering_by, errored
from ..informer import Informer
from . import subsets
from .strategicpatch import PatchError

log = logging.getLogger("manager.workloadspread")

GROUP_PATH = WORKLOADSPREADS_PATH.rsplit("/", 1)[0]  # /apis/apps.kruise.io/v1alpha1
# client-go's retry.DefaultBackoff: 4 tries, 10 ms growing fivefold, 10% jitter
RETRY_STEPS, RETRY_FIRST_DELAY, RETRY_FACTOR, RETRY_JITTER = 4, 0.010, 5.0, 0.1
# Beyond upstream: past those 4 tries (about 0.3 s), a conflict is retried every 250 ms while
# the apiserver still waits for the answer: a try starts until ``ANSWER_RESERVE_S`` before the
# deadline its request gave (``?timeout=``, the webhook's timeoutSeconds), each call bounded by
# what is left; without a deadline, until 3 s after the first try. Upstream refuses the pod
# after its 4th conflict; on a loaded machine, with every replica and the leader writing the
# same status, drills saw that refusal during a rollout (once after 3 s of conflicts). The
# place is still taken by a write on the resourceVersion read, so only a refusal becomes an
# admission, never a second place.
RETRY_MAX_DELAY, RETRY_BUDGET_S = 0.25, 3.0
ANSWER_RESERVE_S = 1.5  # the last try's room before the apiserver's deadline (a GET, a PUT, the answer)
ANSWER_MARGIN_S = 0.5  # no call runs into the last half second: the refusal must still arrive


def retry_budget(deadline: float | None, began: float) -> float:
    """Seconds after the first try in which another may start: until ``ANSWER_RESERVE_S``
    before the apiserver's deadline (``answer_by``), or ``RETRY_BUDGET_S`` without one."""
    return RETRY_BUDGET_S if deadline is None else max(0.0, deadline - began - ANSWER_RESERVE_S)


def call_timeout(deadline: float | None, now: float, cap: float) -> float:
    """A status read or write's timeout: ``cap``, less when the deadline comes sooner (never
    into its last ``ANSWER_MARGIN_S``, at least 0.1 s)."""
    if deadline is None:
        return cap
    return max(0.1, min(cap, deadline - now - ANSWER_MARGIN_S))


def conflict_delays(elapsed: Callable[[], float], budget: float = RETRY_BUDGET_S):
    """The pause before each try of a status write: none before the first, client-go's
    DefaultBackoff for the next three, then ``RETRY_MAX_DELAY`` while a try can still start
    within ``budget`` seconds of the first (``elapsed()``: seconds since it; jitter 10%)."""
    delay = RETRY_FIRST_DELAY
    yield 0.0
    for step in itertools.count(1):
        if step >= RETRY_STEPS and elapsed() + delay > budget:
            return
        yield delay * (1 + RETRY_JITTER * random.random())
        delay = min(delay * RETRY_FACTOR, RETRY_MAX_DELAY)
def _decide(turns: list[_Turn], applied: list) -> None:
    """Give each turn what applying it gave: its answer, or its own refusal."""
    for turn, (_changed, outcome) in zip(turns, applied):
        if turn.done:
            continue
        if isinstance(outcome, Refused):
            turn.refused = outcome
        else:
            turn.answer = outcome


def _refuse(turns: list[_Turn], refused: Refused) -> None:
    """Refuse every turn not decided yet (the write they needed failed)."""
    for turn in turns:
        if not turn.done:
            turn.refused = refused


# the owners read on the way from a pod to its target (a StatefulSet, CloneSet or Advanced
# StatefulSet owner can lead to none of these targets: not read)
_READABLE = {("apps", "ReplicaSet"): ("apps/v1", "replicasets"), ("apps", "Deployment"): ("apps/v1", "deployments"),
             ("batch", "Job"): ("batch/v1", "jobs")}


class Refused(Exception):
    """Upstream's handler returns this error: the request is refused with its message."""


class _Turn:
    """One admission's change to a WorkloadSpread's status, waiting for a write to carry it."""

    def __init__(self, pod: dict, operation: str, injected_subset: str, deadline: float | None):
        self.pod, self.operation, self.injected_subset, self.deadline = pod, operation, injected_subset, deadline
        self.answer: tuple[str, str] | None = None  # (subset name, generated id) once decided
        self.refused: Refused | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.refused is not None


class _Queue:
    """One WorkloadSpread's turns on this replica: ``writing`` is held by the one thread that
    writes the status; whoever holds it takes every turn queued so far."""

    def __init__(self):
        self.writing = threading.Lock()
        self._pending: list[_Turn] = []
        self._mutex = threading.Lock()

    def join(self, turn: _Turn) -> None:
        with self._mutex:
            self._pending.append(turn)

    def take(self) -> list[_Turn]:
        with self._mutex:
            taken, self._pending = self._pending, []
        return taken


def slim_workloadspread(obj: dict) -> dict:
    """The object as stored but its managedFields: a status write sends it back whole."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread", **obj, "metadata": meta}


def _dry_run(options) -> bool:
    return isinstance(options, dict) and bool(options.get("dryRun"))


class WorkloadSpreadAdmission:
    def __init__(self, client: Client, workloadspreads: Informer, *, skipped=(), clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, new_uid: Callable[[], str] = lambda: str(uuid.uuid1()),
                 timeout: float = 5.0, monotonic: Callable[[], float] = time.monotonic):
        """``skipped``: namespaces whose pods are never touched (the control plane's, as the
        SidecarSet handler's); ``clock``/``sleep``/``new_uid``/``monotonic``: injected for tests."""
        self.monotonic = monotonic
        self.client = client
        self.workloadspreads = workloadspreads
        self.skipped = set(skipped)
        self.clock, self.sleep, self.new_uid, self.timeout = clock, sleep, new_uid, timeout
        self._index: tuple[int, dict[str, list[dict]]] = (-1, {})
        self._queues: dict[str, _Queue] = {}
        self._queues_lock = threading.Lock()
        self._written: dict[str, dict] = {}  # upstream's GlobalCache: what this process wrote last

    # ---- reads ---------------------------------------------------------------------------
    def in_namespace(self, namespace: str) -> list[dict]:
        """The cached WorkloadSpreads of a namespace (an index rebuilt when the cache moves)."""
        if self.workloadspreads.absent.is_set():
            return []  # the CRD is not installed: there is none
        version, index = self._index
        if version != self.workloadspreads.version:
            version = self.workloadspreads.version
            index = {}
            for ws in self.workloadspreads.snapshot():
                index.setdefault((ws.get("metadata") or {}).get("namespace", ""), []).append(ws)
            for items in index.values():
                items.sort(key=lambda w: w["metadata"].get("name", ""))  # upstream's order is the cache's: any
            self._index = (version, index)
        return index.get(namespace, [])

    def _call_timeout(self) -> float:
        return call_timeout(answer_by(), self.monotonic(), self.timeout)

    def _get(self, path: str) -> dict:
        return self.client.request("GET", path, timeout=self._call_timeout())

    def target_workload(self, namespace: str, target_ref: dict) -> dict | None:
        """A WorkloadSpread's target read from the API (what its validation checks the subsets'
        patches against); None when it does not exist or is of a kind this manager reads none of."""
        try:
            return self._owner_object(target_ref, namespace, {})
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def _owner_object(self, owner: dict, namespace: str, fetched: dict) -> dict | None:
        """The owner read from the API (once per request: ``fetched``); None for kinds this
        manager has no API for."""
        found = _READABLE.get((subsets.group_of(owner.get("apiVersion")), owner.get("kind")))
        if found is None:
            return None
        api_version, plural = found
        path = f"/apis/{api_version}/namespaces/{namespace}/{plural}/{owner.get('name')}"
        if path not in fetched:
            fetched[path] = self._get(path)
        return fetched[path]

    def references(self, target: dict, owner: dict | None, namespace: str, fetched: dict | None = None) -> bool:
        """isReferenceEqual: the owner is the target, or its own controller is, recursively.
        ApiError (a 404 too) and BadValue propagate."""
        fetched = {} if fetched is None else fetched
        for _ in range(8):  # ReplicaSet -> Deployment is two; a cycle of owners ends here
            if owner is None:
                return False
            if subsets.same_reference(target, owner):
                return True
            if not subsets.is_workload(owner):
                return False
            obj = self._owner_object(owner, namespace, fetched)
            if obj is None:
                return False
            owner = subsets.controller_of(obj)
        return False

    def _replicas(self, ws: dict) -> int:
        """getWorkloadReplicas: read only when a subset's maxReplicas is a percent."""
        target = (ws.get("spec") or {}).get("targetRef")
        if not target or not subsets.has_percent_subset(ws):
            return 0
        found = _READABLE.get((subsets.group_of(target.get("apiVersion")), target.get("kind")))
        if found is None:
            raise subsets.BadValue(f"got unexpected workload type for workloadspread "
                                   f"{ws['metadata'].get('namespace')}/{ws['metadata'].get('name')}")
        api_version, plural = found
        try:
            workload = self._get(f"/apis/{api_version}/namespaces/{ws['metadata']['namespace']}/{plural}/"
                                 f"{target.get('name')}")
        except ApiError as err:
            if err.not_found:
                return 0
            raise
        return subsets.workload_replicas({**workload, "kind": target.get("kind")}, (ws.get("spec") or {}).get("targetFilter"))

    def _latest(self, ws: dict, refresh: bool) -> dict | None:
        """tryToGetTheLatestMatchedWS: after a conflict, the API's; before, the newer of what
        this process wrote and the cache's."""
        meta = ws["metadata"]
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if refresh:
            try:
                return self._get(f"{GROUP_PATH}/namespaces/{meta.get('namespace')}/workloadspreads/{meta.get('name')}")
            except ApiError as err:
                if err.not_found:
                    return None
                raise
        local = self._written.get(key)
        if local is None or (local.get("metadata") or {}).get("uid") != meta.get("uid"):
            local = ws
        cached = self.workloadspreads.get(key)
        if cached is not None and (resource_version(local) or 0) < (resource_version(cached) or 0):
            local = cached
        return copy.deepcopy(local)

    def _queue(self, uid: str) -> _Queue:
        with self._queues_lock:
            return self._queues.setdefault(uid, _Queue())

    # ---- the status write ----------------------------------------------------------------
    def acquire(self, ws: dict, pod: dict, operation: str, injected_subset: str = "") -> tuple[str, str]:
        """acquireSuitableSubset: (the subset's name or "", the id generated for a pod without
        a name). Refused when the status cannot be written."""
        spec_subsets = (ws.get("spec") or {}).get("subsets") or []
        if len(spec_subsets) == 1 and spec_subsets[0].get("maxReplicas") is None:
            return spec_subsets[0].get("name", ""), ""
        queue = self._queue((ws.get("metadata") or {}).get("uid") or ws["metadata"].get("name", ""))
        turn = _Turn(pod, operation, injected_subset, answer_by())
        queue.join(turn)
        with queue.writing:
            if not turn.done:  # no earlier writer took it: write it, with whatever else waits
                taken = queue.take()
                try:
                    self._write(ws, taken)
                finally:  # an unexpected error here must not leave the others undecided
                    _refuse(taken, Refused("the WorkloadSpread's status write failed"))
        if turn.refused is not None:
            raise Refused(str(turn.refused)) from None  # its own instance: others raise theirs
        return turn.answer

    def _write(self, ws: dict, turns: list[_Turn]) -> None:
        """Apply ``turns`` in order to the latest status and write it once (again on a conflict,
        within the earliest deadline among them); decide every turn."""
        deadlines = [t.deadline for t in turns if t.deadline is not None]
        deadline = min(deadlines) if deadlines else None
        refresh, last = False, None
        began = self.monotonic()
        with answering_by(deadline):
            for pause in conflict_delays(lambda: self.monotonic() - began, retry_budget(deadline, began)):
                if pause:
                    self.sleep(pause)
                try:
                    clone = self._latest(ws, refresh)
                except ApiError as err:
                    return _refuse(turns, Refused(err.message or str(err)))
                if clone is None:
                    for turn in turns:
                        turn.answer = ("", "")
                    return
                applied = self._apply(clone, turns)
                if not any(changed for changed, _ in applied):
                    return _decide(turns, applied)
                meta = clone["metadata"]
                try:
                    written = self.client.request(
                        "PUT", f"{GROUP_PATH}/namespaces/{meta['namespace']}/workloadspreads/{meta['name']}/status",
                        body=clone, timeout=self._call_timeout())
                except ApiError as err:
                    refresh, last = True, err
                    if err.conflict:
                        continue
                    # what came before the first change stands (it was decided on the
                    # latest status); the rest was decided on a status that was not written
                    first = next(i for i, (changed, _) in enumerate(applied) if changed)
                    _decide(turns[:first], applied[:first])
                    return _refuse(turns, Refused(err.message or str(err)))
                self._written[f"{meta['namespace']}/{meta['name']}"] = slim_workloadspread(written)
                return _decide(turns, applied)
        _refuse(turns, Refused(last.message if last is not None else "conflict"))

    def _apply(self, clone: dict, turns: list[_Turn]) -> list[tuple[bool, tuple[str, str] | Refused]]:
        """updateSubsetForPod for each turn in order on ``clone``: (changed, its answer or its
        refusal). A turn refused leaves the status as it found it (``update_for_pod`` changes
        nothing when it raises)."""
        applied = []
        for turn in turns:
            try:
                changed, chosen, uid = subsets.update_for_pod(
                    clone, turn.pod, turn.operation, injected_subset=turn.injected_subset,
                    replicas=lambda: self._replicas(clone), now=self.clock(), new_uid=self.new_uid)
            except (ApiError, subsets.BadValue) as err:
                applied.append((False, Refused(getattr(err, "message", None) or str(err))))
                continue
            applied.append((changed, ((chosen or {}).get("name", ""), uid)))
        return applied

    # ---- the handlers --------------------------------------------------------------------
    def mutate_pod(self, request: dict) -> dict | None:
        """The pod a CREATE request should store, or None when WorkloadSpread leaves it alone
        (then nothing about WorkloadSpread goes into the answer). Refused on upstream's errors."""
        if request.get("subResource") or (request.get("resource") or {}).get("resource") != "pods":
            return None
        if request.get("operation") != "CREATE" or _dry_run(request.get("options")):
            return None
        pod = request.get("object")
        if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
            return None
        namespace = pod["metadata"].get("namespace") or request.get("namespace") or ""
        if namespace in self.skipped or not subsets.is_active(pod):
            return None
        owner = subsets.controller_of(pod)
        if owner is None or not subsets.is_workload(owner):
            return None
        candidates = self.in_namespace(namespace)
        if not candidates:
            return None
        pod = {**pod, "metadata": {**pod["metadata"], "namespace": namespace}}
        labels = pod["metadata"].get("labels") or {}
        matched, fetched = None, {}
        for ws in candidates:
            spec = ws.get("spec") or {}
            target = spec.get("targetRef")
            if not target or ws["metadata"].get("deletionTimestamp") or not subsets.is_supported(target):
                continue
            try:
                same = self.references(target, owner, namespace, fetched)
            except ApiError as err:
                if err.not_found:
                    raise Refused(err.message or str(err)) from None
                log.warning("cannot tell whether WorkloadSpread %s/%s refers to pod %s's owner: %s",
                            namespace, ws["metadata"].get("name"), pod["metadata"].get("generateName", ""), err)
                continue
            except subsets.BadValue:
                continue
            if same and subsets.pod_selected(spec.get("targetFilter"), labels):
                matched = ws
                break
        if matched is None:
            return None
        subset, uid = self.acquire(matched, pod, subsets.CREATE)
        if not subset:
            return pod
        try:
            return subsets.inject(matched, pod, subset, uid)
        except PatchError as err:
            raise Refused(str(err)) from None

    def validate_pod(self, request: dict) -> dict:
        """Pod DELETE and pods/eviction CREATE: record deletingPods; upstream answers an error
        with code 400 (the deletion is refused)."""
        operation = request.get("operation")
        if operation == "DELETE":
            pod = request.get("oldObject")
            if request.get("subResource") or not isinstance(pod, dict) or _dry_run(request.get("options")):
                return allowed()
            kind = subsets.DELETE
        elif operation == "CREATE":
            if request.get("subResource") != "eviction":
                return allowed()
            eviction = request.get("object") if isinstance(request.get("object"), dict) else {}
            if _dry_run(eviction.get("deleteOptions")):
                return allowed()
            try:
                pod = self._evicted_pod(request.get("namespace") or "", request.get("name") or "")
            except ApiError as err:
                return errored(400, err.message or str(err))
            kind = subsets.EVICTION
        else:
            return allowed()
        try:
            self.handle_deletion(pod, kind, request.get("namespace") or "")
        except Refused as err:
            return errored(400, str(err))
        return allowed()

    def _evicted_pod(self, namespace: str, name: str) -> dict:
        """The pod being evicted, by a list of one name (the manager lists pods already; a
        GET would need a rule of its own). ApiError 404 when there is none, as upstream's."""
        found = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods", timeout=self._call_timeout(),
                                    fieldSelector=f"metadata.name={name}").get("items") or []
        if not found:
            raise ApiError(404, f'pods "{name}" not found')
        return found[0]

    def handle_deletion(self, pod: dict, operation: str, namespace: str) -> None:
        """HandlePodDeletion: a pod that names its WorkloadSpread is recorded as leaving its subset."""
        meta = pod.get("metadata") or {}
        text = (meta.get("annotations") or {}).get(MATCHED_WORKLOADSPREAD_ANNOTATION)
        if not text:
            return
        injected = subsets.parse_annotation(text)
        if injected is None or not subsets.is_active(pod) or subsets.controller_of(pod) is None:
            return
        ws = self.workloadspreads.get(f"{meta.get('namespace') or namespace}/{injected['name']}")
        if ws is None:
            return
        self.acquire(ws, pod, operation, injected["subset"])


class PodMutation:
    """The pod webhook's mutation in upstream's order: WorkloadSpread, then SidecarSet on the
    pod WorkloadSpread changed. A pod WorkloadSpread leaves alone takes the SidecarSet
    handler's path as it is (its reused answers); a pod it changed never does: its answer
    depends on the WorkloadSpread's status and has a side effect, so it is computed for that
    pod alone, and its patch is taken from the pod as the request holds it."""

    def __init__(self, workloadspread: WorkloadSpreadAdmission, sidecarset):
        self.workloadspread = workloadspread
        self.sidecarset = sidecarset

    def mutate_pod(self, request: dict) -> dict:
        try:
            changed = self.workloadspread.mutate_pod(request)
        except Refused as err:
            return errored(500, str(err))
        if changed is None:
            return self.sidecarset.mutate_pod(request)
        return self.sidecarset.mutate_changed_pod(request, changed)
