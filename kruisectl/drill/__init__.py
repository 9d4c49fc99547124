"""HA drills: disrupt the kruise-manager on purpose while pods are being admitted, and measure
what the design promises — pods keep being admitted, with their sidecars.

A drill runs one *scenario* (a disruption) under a steady *load*: server-side dry-run creates
(``dryRun=All``, nothing is stored) of pods that a temporary probe SidecarSet selects, at
``rate`` per second in a namespace the pod webhook intercepts. Every answer is classified:
admitted with the probe sidecar, admitted WITHOUT it (a silent loss), failed (the apiserver's
message kept), or slower than the webhook's timeout. At the same time *observers* record the
Lease (every change, by watch), the Service's ready endpoints and the Deployment's ready
count, so the report says how long leadership was vacant, how long the victim stayed a ready
endpoint, and when the full ready count was back.

Only the manager's own pods and Deployment are touched; each scenario restores itself (the
Deployment replaces what was deleted). The probe SidecarSet is deleted at the end, on error
and on Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, NamedTuple

from .. import rollout
from ..inventory import Names
from ..kube import request_json
from ..leader import resolve_holder
from ..probe import PROBE_CONTAINER, probe_pod, probe_sidecarset
from ..status import pod_ready

ADMITTED, NOT_INJECTED, FAILED = "admitted", "not-injected", "failed"


# ---- what a scenario may cost ------------------------------------------------------------
@dataclass
class Budget:
    """Breached when a scenario loses more than this. Defaults follow the design: nothing on a
    graceful path; on a crash, the requests in flight on the victim's connections."""

    failed: int
    not_injected: int = 0
    leader_gap_s: float | None = None  # None: leadership is not expected to move
    # A death proven at once (a worker's SIGKILL or OOM kill): nothing lost beyond the admissions
    # in flight when it struck, where that instant is known (ScenarioResult.in_flight).
    within_in_flight: bool = False

    def to_dict(self) -> dict:
        data = {"failed": self.failed, "notInjected": self.not_injected, "leaderGapS": self.leader_gap_s}
        if self.within_in_flight:
            data["failedBeyondInFlight"] = 0
        return data

    def breaches(self, result: "ScenarioResult") -> list[str]:
        found = []
        if result.failed > self.failed:
            found.append(f"{result.failed} failed admissions (budget {self.failed})")
        if self.within_in_flight and result.in_flight is not None and result.failed > result.in_flight:
            found.append(f"{result.failed} failed admissions, {result.failed - result.in_flight} beyond the "
                         f"{result.in_flight} in flight when it died (budget 0)")
        if result.not_injected > self.not_injected:
            found.append(f"{result.not_injected} pods admitted without their sidecar (budget {self.not_injected})")
        if self.leader_gap_s is not None and result.leader_gap_s is not None and result.leader_gap_s > self.leader_gap_s:
            found.append(f"leadership vacant {result.leader_gap_s:.2f}s (budget {self.leader_gap_s:g}s)")
        if result.recovery_s is None:
            found.append("the Deployment did not get back to its full ready count in time")
        return found


# ---- the load ----------------------------------------------------------------------------
@dataclass
class Outcome:
    started: float  # monotonic
    latency_s: float
    kind: str  # ADMITTED / NOT_INJECTED / FAILED
    message: str = ""


def _error_message(err) -> str:
    try:
        return json.loads(err.body).get("message", str(err))
    except (ValueError, TypeError, AttributeError):
        return str(getattr(err, "reason", None) or err)


class AdmissionLoad:
    """Open-loop dry-run pod creates at ``rate``/s: a slow or failing answer never lowers the
    offered rate (each request runs on its own worker, up to ``max_in_flight``)."""

    def __init__(self, api, namespace: str, labels: dict[str, str], rate: float, timeout: float,
                 max_in_flight: int = 256, prefix: str = "kruisectl-drill-"):
        self.api, self.namespace, self.labels, self.prefix = api, namespace, labels, prefix
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="drill-load")
        self._ticker: threading.Thread | None = None
        self.skipped = 0  # ticks dropped because max_in_flight requests were outstanding
        self._in_flight = threading.BoundedSemaphore(max_in_flight)

    def one(self) -> Outcome:
        from kubernetes.client.exceptions import ApiException

        started = time.monotonic()
        try:
            pod = request_json(self.api, "POST", f"/api/v1/namespaces/{self.namespace}/pods", self.timeout,
                               body=probe_pod(self.labels, self.prefix), dryRun="All")
        except ApiException as err:
            return Outcome(started, time.monotonic() - started, FAILED, _error_message(err))
        except Exception as err:  # noqa: BLE001 - a transport error is a failed admission too
            return Outcome(started, time.monotonic() - started, FAILED, f"{err.__class__.__name__}: {err}")
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        kind = ADMITTED if PROBE_CONTAINER in names else NOT_INJECTED
        return Outcome(started, time.monotonic() - started, kind)

    def _record(self) -> None:
        try:
            outcome = self.one()
            with self._lock:
                self.outcomes.append(outcome)
        finally:
            self._in_flight.release()

    def _tick(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            if self._in_flight.acquire(blocking=False):
                self._pool.submit(self._record)
            else:
                self.skipped += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> "AdmissionLoad":
        self._ticker = threading.Thread(target=self._tick, name="drill-ticker", daemon=True)
        self._ticker.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.started < end]


# ---- the observers -----------------------------------------------------------------------
def parse_micro(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Sample:
    at: float  # monotonic
    ready_endpoints: frozenset[str]
    ready_replicas: int
    desired: int
    pods: dict[str, tuple[str | None, bool, str | None]]  # name -> (ip, ready, node)
    rolled_out: bool


class Observer:
    """The Lease by watch (every record), and endpoints / Deployment / pods by polling."""

    def __init__(self, api, names: Names, timeout: float, interval: float = 0.2):
        self.api, self.names, self.timeout, self.interval = api, names, timeout, interval
        self.lease_records: list[tuple[float, dict]] = []  # (monotonic received, spec)
        self.samples: list[Sample] = []
        self.read_errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Observer":
        for target, name in ((self._watch_lease, "drill-lease"), (self._poll, "drill-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(3)

    def _watch_lease(self) -> None:
        from ..kube import api

        ns, name = self.names.namespace, self.names.lease
        path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        client = api(self.api)
        while not self._stop.is_set():
            try:
                listing = request_json(self.api, "GET", path, self.timeout, fieldSelector=f"metadata.name={name}")
                for item in listing.get("items", []):
                    self.lease_records.append((time.monotonic(), item.get("spec") or {}))
                for event in client.watch(path, listing["metadata"].get("resourceVersion", ""), 60,
                                          fieldSelector=f"metadata.name={name}"):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.lease_records.append((time.monotonic(), event["object"].get("spec") or {}))
                    if self._stop.is_set():
                        break
            except Exception as err:  # noqa: BLE001 - recorded; the watch restarts
                self.read_errors.append(f"lease watch: {err}")
                self._stop.wait(0.5)

    def _poll(self) -> None:
        ns, names = self.names.namespace, self.names
        while not self._stop.is_set():
            try:
                slices = request_json(self.api, "GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                                      self.timeout, labelSelector=f"kubernetes.io/service-name={names.service}")
                deployment = request_json(self.api, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/"
                                          f"{names.deployment}", self.timeout)
                pods = request_json(self.api, "GET", f"/api/v1/namespaces/{ns}/pods", self.timeout,
                                    labelSelector=names.selector)
            except Exception as err:  # noqa: BLE001 - a missed sample, recorded
                self.read_errors.append(f"poll: {err}")
                self._stop.wait(self.interval)
                continue
            ready = frozenset(address for s in slices.get("items", []) for e in s.get("endpoints") or []
                              if (e.get("conditions") or {}).get("ready") for address in e.get("addresses") or [])
            status, spec = deployment.get("status") or {}, deployment.get("spec") or {}
            desired = int(spec.get("replicas", 1))
            rolled_out = (status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
                          and status.get("updatedReplicas", 0) == desired and status.get("replicas", 0) == desired
                          and status.get("availableReplicas", 0) == desired)
            self.samples.append(Sample(
                time.monotonic(), ready, int(status.get("readyReplicas") or 0), desired,
                {p["metadata"]["name"]: (p.get("status", {}).get("podIP"), pod_ready(p), p["spec"].get("nodeName"))
                 for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")},
                rolled_out))
            self._stop.wait(self.interval)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def holder_at(self, moment: float) -> str:
        holder = ""
        for received, spec in self.lease_records:
            if received > moment:
                break
            holder = spec.get("holderIdentity") or ""
        return holder


def leader_gap(records: list[tuple[float, dict]], since: float) -> tuple[float | None, str | None, str | None]:
    """(gap seconds, old holder, new holder) of the first change of holder after ``since``:
    from the old holder's last renewal (or its release) to the new holder's acquireTime, on
    the Lease's own timestamps. (None, old, None) when no one new took it."""
    before = [spec for received, spec in records if received <= since]
    old = (before[-1].get("holderIdentity") or "") if before else ""
    last_old = parse_micro(before[-1].get("renewTime")) if before else None
    for received, spec in records:
        if received <= since:
            continue
        holder = spec.get("holderIdentity") or ""
        if holder == old or not holder:
            last_old = parse_micro(spec.get("renewTime")) or last_old  # a renewal, or the release
            continue
        acquired = parse_micro(spec.get("acquireTime"))
        if acquired is None or last_old is None:
            return None, old, holder
        return max(0.0, (acquired - last_old).total_seconds()), old, holder
    return None, old, None


# ---- scenarios ---------------------------------------------------------------------------
@dataclass
class Target:
    """The manager a drill acts on, and how to reach the API."""

    api: object
    names: Names
    timeout: float
    # When a fault struck, as (not before, not after) on the monotonic clock, where the scenario
    # knows: the requests outstanding then are all a crash may cost (ScenarioResult.in_flight).
    struck: list[tuple[float, float]] = field(default_factory=list)

    def strike(self, not_before: float, not_after: float | None = None) -> None:
        self.struck.append((not_before, time.monotonic() if not_after is None else not_after))

    def pods(self) -> list[dict]:
        listing = request_json(self.api, "GET", f"/api/v1/namespaces/{self.names.namespace}/pods", self.timeout,
                               labelSelector=self.names.selector)
        return [p for p in listing.get("items", []) if not p["metadata"].get("deletionTimestamp")]

    def lease(self) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return request_json(self.api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{self.names.namespace}/"
                                f"leases/{self.names.lease}", self.timeout)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def leader_pod(self, pods: list[dict] | None = None) -> dict | None:
        """The pod of the Lease holder: by pod name, else (host network: the identity is the
        node's hostname) the manager pod on that node."""
        pods = self.pods() if pods is None else pods
        lease = self.lease() or {}
        identity = (lease.get("spec") or {}).get("holderIdentity") or ""
        if not identity:
            return None
        return resolve_holder(identity, pods)[0]

    def delete_pod(self, name: str, grace: int | None) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        request_json(self.api, "DELETE", f"/api/v1/namespaces/{self.names.namespace}/pods/{name}", self.timeout,
                     body=body)

    def evict(self, name: str, deadline: float) -> None:
        """Evict through the Eviction API; a PDB that blocks (429) is retried until ``deadline``."""
        from kubernetes.client.exceptions import ApiException

        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": self.names.namespace}}
        while True:
            try:
                request_json(self.api, "POST", f"/api/v1/namespaces/{self.names.namespace}/pods/{name}/eviction",
                             self.timeout, body=body)
                return
            except ApiException as err:
                if err.status != 429 or time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def restart(self) -> None:
        """As ``kubectl rollout restart``: a new pod-template annotation."""
        rollout.restart(self.api, self.names.namespace, self.names.deployment, self.timeout)


Action = Callable[[Target, float], list[str]]  # (target, deadline) -> the victim pods' names


@dataclass
class Scenario:
    name: str
    summary: str
    graceful: bool  # no admission may fail
    moves_leader: bool
    act: Action
    replaces_victims: bool = True  # the victims' pods are deleted and replaced (else they come back)
    settled: Callable[[], bool] | None = None  # more to wait for before "recovered" (a fault undone)
    worker_fault: str | None = None  # a fault of the worker process only (WORKER_FAULTS): its supervisor proves it
    rights: tuple[tuple[str, str, str], ...] = ()  # (verb, resource, subresource) it needs beyond the drill's own


def _leader_or_fail(target: Target) -> dict:
    pod = target.leader_pod()
    if pod is None:
        raise DrillRefused("no pod holds the Lease: nothing to disrupt")
    return pod


def _leader_crash(target: Target, deadline: float) -> list[str]:
    name = _leader_or_fail(target)["metadata"]["name"]
    target.delete_pod(name, grace=0)
    return [name]


def _non_leader(target: Target) -> str:
    pods = target.pods()
    leader = target.leader_pod(pods)
    others = [p for p in pods if pod_ready(p) and (leader is None or p["metadata"]["name"] != leader["metadata"]["name"])]
    if not others:
        raise DrillRefused("no ready replica other than the leader")
    return others[0]["metadata"]["name"]


def _replica_crash(target: Target, deadline: float) -> list[str]:
    name = _non_leader(target)
    target.delete_pod(name, grace=0)
    return [name]


def _leader_delete(target: Target, deadline: float) -> list[str]:
    name = _leader_or_fail(target)["metadata"]["name"]
    target.delete_pod(name, grace=None)
    return [name]


def _replica_delete(target: Target, deadline: float) -> list[str]:
    name = _non_leader(target)
    target.delete_pod(name, grace=None)
    return [name]


def _eviction(target: Target, deadline: float) -> list[str]:
    name = _leader_or_fail(target)["metadata"]["name"]
    target.evict(name, deadline)
    return [name]


def _rollout(target: Target, deadline: float) -> list[str]:
    names = [p["metadata"]["name"] for p in target.pods()]
    target.restart()
    return names


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("leader-crash", "delete the leader's pod with grace period 0 (a crash: no SIGTERM handling)",
             graceful=False, moves_leader=True, act=_leader_crash),
    Scenario("replica-crash", "delete a ready non-leader pod with grace period 0", graceful=False,
             moves_leader=False, act=_replica_crash),
    Scenario("leader-delete", "delete the leader's pod gracefully (SIGTERM, then its grace period)", graceful=True,
             moves_leader=True, act=_leader_delete),
    Scenario("replica-delete", "delete a ready non-leader pod gracefully", graceful=True, moves_leader=False,
             act=_replica_delete),
    Scenario("eviction", "evict the leader's pod through the Eviction API (honours the PDB; SIGTERM, then the "
             "grace period)", graceful=True, moves_leader=True, act=_eviction),
    Scenario("rollout", "restart the Deployment (a template annotation, as kubectl rollout restart) and wait "
             "until it is rolled out", graceful=True, moves_leader=True, act=_rollout),
)}


class DrillRefused(Exception):
    """The drill will not start (or cannot go on): the reason is for the user."""


# ---- faults of the manager's worker process (under manager.supervisor) -------------------
# The container's main process is a supervisor that reaps a dead worker with waitpid and
# starts the next one, which takes the Lease from its proven-dead predecessor at once. So a
# fault of the worker alone is held to a budget of its own, not the Lease's duration.
PROVEN_DEATH_GAP_S = 3.0  # leadership back within this once the worker's death is proven (issue 21)
WORKER_HEARTBEAT_TIMEOUT_S = 5.0  # manager's --worker-heartbeat-timeout default
WORKER_HEARTBEAT_INTERVAL_S = 1.0  # manager.supervisor.HEARTBEAT_INTERVAL: the worker's beat, half of it the watchdog's poll
# How long a hang takes to tell: the timeout, counted from the last beat (up to an interval
# before the worker stopped), noticed at the watchdog's next poll.
WORKER_HANG_DETECT_S = WORKER_HEARTBEAT_TIMEOUT_S + 1.5 * WORKER_HEARTBEAT_INTERVAL_S


@dataclass(frozen=True)
class WorkerFault:
    signal: str | None  # what is sent to the worker process (None: the kernel's OOM killer does it)
    summary: str  # "{who}": the leader's / a non-leader's
    detect_s: float  # until the supervisor knows the worker is gone (a hang: its heartbeat timeout)


WORKER_FAULTS: dict[str, WorkerFault] = {
    "worker-crash": WorkerFault("KILL", "SIGKILL {who} manager worker process (a panic; its supervisor restarts "
                                "it in the same container)", 0.0),
    "worker-hang": WorkerFault("STOP", "SIGSTOP {who} manager worker process (a hang; its supervisor kills and "
                               "restarts it after --worker-heartbeat-timeout)", WORKER_HANG_DETECT_S),
    "worker-oom": WorkerFault(None, "push {who} container past limits.memory with the worker as the OOM killer's "
                              "choice (its supervisor restarts it)", 0.0),
}

# Signalling a process inside the manager's container takes an exec into it: a websocket GET
# the apiserver authorizes as get and (from Kubernetes 1.30) create on pods/exec.
EXEC_RIGHTS = (("create", "pods", "exec"), ("get", "pods", "exec"))

WorkerAction = Callable[[Target, str], None]  # (target, victim pod) -> the fault applied to its worker


def worker_scenario(fault: str, leader: bool, apply: WorkerAction, settled: Callable[[], bool] | None = None,
                    rights: tuple[tuple[str, str, str], ...] = ()) -> Scenario:
    """``fault`` (a WORKER_FAULTS key) of the leader's or a ready non-leader's worker, applied by
    ``apply``: the harness signals the process itself, a user's cluster through pods/exec."""
    spec = WORKER_FAULTS[fault]

    def act(target: Target, deadline: float) -> list[str]:
        pod = _leader_or_fail(target)["metadata"]["name"] if leader else _non_leader(target)
        began = time.monotonic()
        apply(target, pod)
        if spec.signal == "KILL" and not target.struck:  # a death at once (apply may know it better)
            target.strike(began)
        return [pod]

    who = "the leader's" if leader else "a non-leader's"
    return Scenario(f"{fault}-{'leader' if leader else 'replica'}", spec.summary.format(who=who), graceful=False,
                    moves_leader=leader, act=act, replaces_victims=False, settled=settled, worker_fault=fault,
                    rights=rights)


# Run inside the manager's container (its own python3): signal the supervised worker, found by
# its name (a forked worker: manager.supervisor.WORKER_NAME) or the environment the supervisor
# hands a worker it starts by exec (manager.supervisor.ENV), and print its pid.
WORKER_NAME = "kruise-worker"
SIGNAL_WORKER = """
import os, signal, sys
marker = b"KRUISE_MANAGER_WORKER="
for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    try:
        named = open(f"/proc/{pid}/comm", "rb").read().strip() == b"kruise-worker"
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\\0")
    except OSError:
        continue
    if pid != os.getpid() and (named or any(e.startswith(marker) for e in environ)):
        os.kill(pid, getattr(signal, "SIG" + sys.argv[1]))
        print(f"signalled {pid}")
        sys.exit(0)
print("no supervised worker in this container (--supervise=false?)")
sys.exit(3)
"""


def exec_signal(sig: str) -> WorkerAction:
    """The worker of the victim pod signalled through pods/exec (python3 in the manager's
    container); DrillRefused with the reason when the exec fails or finds no worker."""

    def apply(target: Target, pod: str) -> None:
        from kubernetes import client
        from kubernetes.stream import stream

        spec = request_json(target.api, "GET", f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}",
                            target.timeout)["spec"]
        containers = [c["name"] for c in spec.get("containers") or []]
        container = "manager" if "manager" in containers else containers[0]
        # A client of its own: stream() swaps the transport of the client it is given while it
        # runs, and the load's requests share the drill's.
        own = client.ApiClient(target.api.configuration)
        try:
            session = stream(client.CoreV1Api(own).connect_get_namespaced_pod_exec, pod, target.names.namespace,
                             container=container, command=["python3", "-c", SIGNAL_WORKER, sig], stdin=False,
                             stdout=True, stderr=True, tty=False, _request_timeout=target.timeout,
                             _preload_content=False)
            session.run_forever(timeout=target.timeout)
            out = (session.read_stdout() or "") + (session.read_stderr() or "")
            status = session.read_channel(3)  # the exec's outcome: a Status, as kubectl reads it
            session.close()
        except Exception as err:  # noqa: BLE001 - the reason, in one line
            raise DrillRefused(f"cannot exec into {pod} to signal its worker: "
                               f"{' '.join(str(getattr(err, 'reason', None) or err).split())[:200]}") from None
        finally:
            own.close()
        if "signalled" in out:
            return
        failure = exec_failure(status)
        if failure:
            raise DrillRefused(f"cannot exec into {pod} to signal its worker: {failure}")
        raise DrillRefused(f"{pod}: {' '.join((out or 'the exec printed nothing').split())[:200]}")

    return apply


def exec_failure(status: str) -> str | None:
    """Why an exec never ran the command, from the Status on its error channel (the apiserver
    could not reach the kubelet, the container is gone, ...); None when the command ran (it may
    have exited non-zero: its output says why) or nothing was said."""
    try:
        parsed = json.loads(status) if status else {}
    except ValueError:
        return " ".join(status.split())[:200]
    if not parsed or not isinstance(parsed, dict) or parsed.get("status") == "Success" \
            or parsed.get("reason") == "NonZeroExitCode":
        return None
    return " ".join(str(parsed.get("message") or parsed.get("reason") or status).split())[:200]


def worker_restarts(target: Target, pod: str) -> float | None:
    """The pod's ``kruise_manager_worker_restarts_total`` (every reason) through the apiserver's
    pod proxy; None when it cannot be read."""
    from ..kube import api as api_of

    try:
        spec = request_json(target.api, "GET", f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}",
                            target.timeout)["spec"]
        port = next((p.get("containerPort") for c in spec.get("containers") or [] for p in c.get("ports") or []
                     if p.get("name") == "metrics"), 8080)
        text = api_of(target.api).get_text(f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}:{port}/proxy/"
                                           "metrics", target.timeout)
    except Exception:  # noqa: BLE001 - unknown: not restarted as far as anyone can tell
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kruise_manager_worker_restarts_total{"))


def exec_scenario(fault: str, leader: bool) -> Scenario:
    """A worker fault on a user's cluster: signalled through pods/exec; settled once the
    victim's supervisor counted a restart of its worker (its metrics, through the pod proxy)."""
    before: dict[str, float | None] = {}
    signal_worker = exec_signal(WORKER_FAULTS[fault].signal)
    target_of: list[Target] = []

    def apply(target: Target, pod: str) -> None:
        before.clear()
        target_of[:] = [target]
        before[pod] = worker_restarts(target, pod)
        signal_worker(target, pod)

    def settled() -> bool:
        for pod, count in before.items():
            now = worker_restarts(target_of[0], pod)
            if now is None or count is None or now <= count:
                return False
        return True

    return worker_scenario(fault, leader, apply, settled=settled, rights=EXEC_RIGHTS)


def missing_rights(api, names: Names, scenarios: list[Scenario], timeout: float) -> list[str]:
    """Each scenario's rights this user lacks in the manager's namespace (SelfSubjectAccessReview),
    as "<scenario> needs <verb> <resource>/<subresource>"."""
    missing = []
    for scenario in scenarios:
        for verb, resource, sub in scenario.rights:
            review = request_json(api, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", timeout,
                                  body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                        "spec": {"resourceAttributes": {
                                            "namespace": names.namespace, "verb": verb, "resource": resource,
                                            "subresource": sub}}})
            if not (review.get("status") or {}).get("allowed"):
                missing.append(f"{scenario.name} needs {verb} {resource}/{sub} in {names.namespace}")
    return missing


# What `kruisectl drill` can do to a worker on a user's cluster: a signal through pods/exec. The
# OOM kill is not offered there (it would run a memory hog in the user's container); the
# harness (localcluster.faults) runs it.
WORKER_SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    exec_scenario(fault, leader) for fault in ("worker-crash", "worker-hang") for leader in (True, False))}


# ---- running one -------------------------------------------------------------------------
class Request(NamedTuple):
    at_s: float  # when it was sent, seconds from the disruption (negative before it)
    latency_s: float
    kind: str  # ADMITTED / NOT_INJECTED / FAILED
    message: str = ""  # the apiserver's, for a failure


class Point(NamedTuple):
    at_s: float  # seconds from the disruption
    value: object  # the Lease's holder ("" vacant) or the count of ready endpoints


@dataclass
class Timeline:
    """What one scenario's observers and load saw, moment by moment, for a report drawn
    afterwards (``kruisectl drill run --report``): the same records the figures come from,
    on one clock whose zero is the disruption. Not part of the JSON output."""

    started_at: float  # unix time of the disruption
    start_s: float  # the load's first moment (negative)
    end_s: float  # the load's last moment
    requests: list[Request] = field(default_factory=list)
    holders: list[Point] = field(default_factory=list)  # at each change of holder
    ready_endpoints: list[Point] = field(default_factory=list)  # at each change of the count
    desired: int | None = None  # the Deployment's replicas at the disruption
    vacancies: list[tuple[float, float]] = field(default_factory=list)  # no leader: last renewal -> next acquire


def vacancies(lease_records: list[tuple[float, dict]], began_unix: float) -> list[tuple[float, float]]:
    """Each span without a leader, as ``leader_gap`` measures it (the old holder's last renewal
    or its release, to the new holder's acquireTime, on the Lease's own timestamps), in seconds
    from the disruption."""
    spans, holder, last = [], None, None
    for _received, spec in lease_records:
        identity = spec.get("holderIdentity") or ""
        if holder is None or identity == holder or not identity:
            holder = identity if holder is None else holder
            last = parse_micro(spec.get("renewTime")) or last
            continue
        acquired = parse_micro(spec.get("acquireTime"))
        if last is not None and acquired is not None and acquired > last:
            spans.append((round(last.timestamp() - began_unix, 3), round(acquired.timestamp() - began_unix, 3)))
        holder, last = identity, parse_micro(spec.get("renewTime")) or acquired
    return spans


def timeline(outcomes: list[Outcome], lease_records: list[tuple[float, dict]], samples: list[Sample],
             began: float, began_unix: float, start: float, end: float) -> Timeline:
    """The records of a scenario as changes on the disruption's clock (``began``, monotonic)."""
    line = Timeline(began_unix, round(start - began, 3), round(end - began, 3))
    line.requests = [Request(round(o.started - began, 3), round(o.latency_s, 4), o.kind, o.message)
                     for o in sorted(outcomes, key=lambda o: o.started)]
    for received, spec in lease_records:
        holder = spec.get("holderIdentity") or ""
        if not line.holders or line.holders[-1].value != holder:
            line.holders.append(Point(round(received - began, 3), holder))
    for sample in samples:
        count = len(sample.ready_endpoints)
        if not line.ready_endpoints or line.ready_endpoints[-1].value != count:
            line.ready_endpoints.append(Point(round(sample.at - began, 3), count))
    before = [s for s in samples if s.at <= began]
    line.desired = (before[-1] if before else samples[0]).desired if samples else None
    line.vacancies = vacancies(lease_records, began_unix)
    return line


@dataclass
class ScenarioResult:
    scenario: str
    victims: list[str]
    requests: int = 0
    admitted: int = 0
    failed: int = 0
    not_injected: int = 0
    refused: int = 0  # of the failed: "connection refused" (a port nobody held)
    in_flight: int | None = None  # admissions outstanding when the fault struck (None: instant unknown)
    slow: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    leader_gap_s: float | None = None
    old_leader: str | None = None
    new_leader: str | None = None
    endpoint_removal_s: float | None = None
    min_ready_endpoints: int | None = None  # the Service's ready endpoints at the worst moment
    recovery_s: float | None = None
    replica_counts: dict[str, float] | None = None  # admissions each replica counted in the window
    shares: dict[str, float] | None = None  # None: a count is unknown (see errors)
    failures: list[str] = field(default_factory=list)
    budget: Budget | None = None
    breaches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # figures that could not be measured
    timeline: Timeline | None = field(default=None, repr=False, compare=False)  # for the report only

    def to_dict(self) -> dict:
        data = {_camel(k): v for k, v in asdict(replace(self, timeline=None)).items() if k != "timeline"}
        data["budget"] = self.budget.to_dict() if self.budget is not None else None
        return data


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class DrillOptions:
    probe_namespace: str = "default"
    rate: float = 20.0
    before_s: float = 3.0  # load before the disruption
    settle_s: float = 3.0  # load after recovery
    timeout_s: float = 300.0  # per scenario, until recovered
    webhook_timeout_s: float = 10.0
    crash_budget: int = 1
    leader_gap_budget_s: float | None = None  # default: lease duration + 2s on a crash, 1s otherwise


def default_budget(scenario: Scenario, options: DrillOptions, lease_duration_s: float) -> Budget:
    """Nothing lost on a graceful path; on a crash the requests in flight on the victim
    (``crash_budget``), and leadership back within the Lease's duration + 2 s, or, for a fault
    of the worker alone, within PROVEN_DEATH_GAP_S after the supervisor can tell it is gone."""
    if scenario.worker_fault is not None:
        gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None \
            else PROVEN_DEATH_GAP_S + WORKER_FAULTS[scenario.worker_fault].detect_s
        return Budget(failed=options.crash_budget, leader_gap_s=gap if scenario.moves_leader else None,
                      within_in_flight=WORKER_FAULTS[scenario.worker_fault].signal != "STOP")
    if scenario.graceful:
        gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None else 1.0
        return Budget(failed=0, leader_gap_s=gap if scenario.moves_leader else None)
    gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None else lease_duration_s + 2.0
    return Budget(failed=options.crash_budget, leader_gap_s=gap if scenario.moves_leader else None)


def webhook_timeout(api, names: Names, timeout: float) -> float:
    """The pod webhook's timeoutSeconds (an answer slower than that failed anyway)."""
    try:
        config = request_json(api, "GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                              f"{names.mutating}", timeout)
    except Exception:  # noqa: BLE001 - the default then
        return 10.0
    for webhook in config.get("webhooks") or []:
        for rule in webhook.get("rules") or []:
            if "pods" in (rule.get("resources") or []):
                return float(webhook.get("timeoutSeconds") or 10)
    return 10.0


# ---- each replica's share of the admissions ----------------------------------------------
@dataclass
class CounterRead:
    """One read of a replica's pod-webhook counter; ``value`` is None when it could not be read."""

    value: float | None
    started: float | None = None  # the process's start (unix time) when its metrics give it: a restart
    error: str = ""


@dataclass
class ReplicaSeries:
    """Every read of one replica's counter over a window, in order (one per round it was listed in)."""

    reads: list[CounterRead] = field(default_factory=list)
    at_start: bool = False  # listed in the window's first round
    at_end: bool = False  # listed, and not terminating, in the window's last round
    ready: bool = False  # ready at some moment of the window


def _restarted(previous: CounterRead, read: CounterRead) -> bool:
    if previous.started is not None and read.started is not None and abs(read.started - previous.started) > 1.0:
        return True
    return read.value < previous.value


def replica_counts(series: dict[str, ReplicaSeries], window_start: float) -> tuple[dict[str, float], list[str]]:
    """Admissions each replica answered during the window, from its own counter, for every
    replica that was ready during the window (zero included) or whose counter went up.

    A count that cannot be known is an error, never a gap: a replica listed at the start needs
    its read at the start (unless its process started inside the window: it counted from
    zero), one still there at the end its read at the end; one gone before the end keeps its
    last read. A restart (a new process start time, or a counter that went down) adds what the
    new process counted; what the old one counted after its last read (at most one interval of
    the poller) is not known and not counted."""
    counts: dict[str, float] = {}
    errors: list[str] = []
    for name, s in sorted(series.items()):
        known = [r for r in s.reads if r.value is not None]
        failed = [r.error for r in s.reads if r.value is None]
        if not known:
            if s.ready:
                why = failed[-1] if failed else "never listed"
                errors.append(f"replica {name}: its metrics could not be read ({why})")
            continue
        if s.at_start and s.reads[0].value is not None:
            previous, rest = s.reads[0], known[1:]
        elif not s.at_start or (known[0].started is not None and known[0].started >= window_start):
            previous, rest = CounterRead(0.0, known[0].started), known  # a process of the window: from zero
        else:
            errors.append(f"replica {name}: its metrics could not be read at the window's start "
                          f"({s.reads[0].error}): its count before is unknown")
            continue
        if s.at_end and s.reads[-1].value is None:
            errors.append(f"replica {name}: its metrics could not be read at the window's end ({s.reads[-1].error})")
            continue
        total = 0.0
        for read in rest:
            total += read.value if _restarted(previous, read) else read.value - previous.value
            previous = read
        if s.ready or total > 0:
            counts[name] = total
    return counts, errors


def shares_of(counts: dict[str, float]) -> dict[str, float] | None:
    """Each replica's part of what all counted (zeros kept); None when nothing was counted."""
    total = sum(counts.values())
    if total <= 0:
        return None
    return {name: round(value / total, 3) for name, value in sorted(counts.items())}


class ReplicaCounters:
    """Every replica's pod-webhook counter (this project's
    ``kruise_manager_webhook_requests_total`` or controller-runtime's
    ``controller_runtime_webhook_requests_total`` for upstream), read through the apiserver's
    pod proxy at the start of a window, every ``interval`` during it (so a replica deleted
    meanwhile keeps its last read) and at its end. Terminating replicas are read too: they may
    still be answering."""

    def __init__(self, api, names: Names, timeout: float, interval: float = 1.0, read_timeout: float = 3.0):
        from ..kube import api as api_of

        self.api, self.names, self.timeout = api, names, timeout
        self.interval, self.read_timeout = interval, read_timeout
        self.client = api_of(api)
        self.series: dict[str, ReplicaSeries] = {}
        self.errors: list[str] = []
        self.window_start = 0.0  # unix time of the first round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="drill-metrics")
        self._rounds = threading.Lock()  # one round at a time: each replica's reads stay in order

    def start(self) -> "ReplicaCounters":
        self.window_start = time.time()
        self._round(first=True)
        self._thread = threading.Thread(target=self._loop, name="drill-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The last round, once nothing else is being counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # a round in progress ends first (its requests have timeouts)
        self._round(last=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def counts(self) -> tuple[dict[str, float], list[str]]:
        counts, errors = replica_counts(self.series, self.window_start)
        return counts, self.errors + errors

    def mark_ready(self, names: set[str]) -> None:
        """Replicas another observer saw ready during the window."""
        for name in names:
            self.series.setdefault(name, ReplicaSeries()).ready = True

    def read_now(self) -> None:
        """A round out of turn: just before the disruption, so a victim's last read is its count."""
        self._round()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._round()

    def _read(self, pod: dict) -> CounterRead:
        port = next((p.get("containerPort") for c in pod["spec"].get("containers") or []
                     for p in c.get("ports") or [] if p.get("name") == "metrics"), 8080)
        name = pod["metadata"]["name"]
        try:
            text = self.client.get_text(f"/api/v1/namespaces/{self.names.namespace}/pods/{name}:{port}/proxy/metrics",
                                        self.read_timeout)
        except Exception as err:  # noqa: BLE001 - kept: an unknown count is reported, not skipped
            return CounterRead(None, error=f"{err.__class__.__name__}: {str(err)[:200]}")
        return CounterRead(_pod_webhook_requests(text), _process_start(text))

    def _round(self, first: bool = False, last: bool = False) -> None:
        with self._rounds:
            self._round_locked(first, last)

    def _round_locked(self, first: bool, last: bool) -> None:
        try:
            listing = request_json(self.api, "GET", f"/api/v1/namespaces/{self.names.namespace}/pods", self.timeout,
                                   labelSelector=self.names.selector)
        except Exception as err:  # noqa: BLE001 - the counts of this round are unknown
            if first or last:
                self.errors.append(f"the replicas could not be listed at the window's {'start' if first else 'end'} "
                                   f"({err.__class__.__name__}: {str(err)[:200]}): no count is known")
            return
        pods = listing.get("items", [])
        for pod, read in zip(pods, self._pool.map(self._read, pods)):
            s = self.series.setdefault(pod["metadata"]["name"], ReplicaSeries(at_start=first))
            s.reads.append(read)
            s.ready = s.ready or serving(pod)
            if last:
                s.at_end = not pod["metadata"].get("deletionTimestamp")


def serving(pod: dict) -> bool:
    """Ready and not terminating: what the Service sends new connections to (an EndpointSlice
    marks a terminating pod's endpoint not ready). A terminating replica's counter still counts
    when it can be read; one that closed its port while its pod lingers is no missing share."""
    return pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")


def _pod_webhook_requests(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kruise_manager_webhook_requests_total{") and 'path="/mutate-pod"' in line:
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("controller_runtime_webhook_requests_total{") and 'webhook="/mutate-pod"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _process_start(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("process_start_time_seconds "):
            return float(line.rsplit(" ", 1)[1])
    return None


def measure(api, names: Names, scenario: Scenario, options: DrillOptions, labels: dict[str, str],
            budget: Budget, on_progress: Callable[[str], None] = lambda text: None) -> ScenarioResult:
    """One scenario under load, with the probe SidecarSet's ``labels`` already in place."""
    target = Target(api, names, min(options.webhook_timeout_s, 10.0))
    observer = Observer(api, names, target.timeout).start()
    counters = ReplicaCounters(api, names, target.timeout).start()  # its window holds the whole load
    load = AdmissionLoad(api, options.probe_namespace, labels, options.rate,
                         timeout=options.webhook_timeout_s + 20).start()
    result = ScenarioResult(scenario.name, victims=[], budget=budget)
    loaded = time.monotonic()
    try:
        time.sleep(options.before_s)
        on_progress(f"{scenario.name}: {scenario.summary}")
        counters.read_now()
        began, began_unix = time.monotonic(), time.time()
        deadline = began + options.timeout_s
        result.victims = scenario.act(target, deadline)
        recovered_at = _wait_recovered(observer, scenario, set(result.victims), began, deadline, on_progress)
        result.recovery_s = round(recovered_at - began, 2) if recovered_at is not None else None
        time.sleep(options.settle_s)
        ended = time.monotonic()
    finally:
        load.stop()
        observer.stop()
        counters.stop()
    outcomes = load.between(0.0, float("inf"))
    _summarise(result, outcomes, options.webhook_timeout_s)
    result.timeline = timeline(outcomes, observer.lease_records, observer.samples, began, began_unix, loaded, ended)
    if target.struck:
        result.in_flight = in_flight(outcomes, target.struck)
    result.leader_gap_s, result.old_leader, result.new_leader = leader_gap(observer.lease_records, began) \
        if scenario.moves_leader else (None, None, None)
    if result.leader_gap_s is not None:
        result.leader_gap_s = round(result.leader_gap_s, 3)
    result.endpoint_removal_s = _endpoint_removal(observer, result.victims, began, ended)
    during = [len(s.ready_endpoints) for s in observer.samples if began <= s.at <= ended]
    result.min_ready_endpoints = min(during) if during else None
    counters.mark_ready({name for s in observer.samples for name, (_ip, ok, _node) in s.pods.items() if ok})
    counts, errors = counters.counts()
    result.errors += errors
    if not errors:
        result.replica_counts = counts
        result.shares = shares_of(counts)
        if result.shares is None:
            result.errors.append(f"no replica counted an admission ({result.admitted} admitted): no shares")
    result.breaches = budget.breaches(result)
    return result


def in_flight(outcomes: list[Outcome], struck: list[tuple[float, float]]) -> int:
    """The admissions sent before a fault struck and not answered before it: only these can be
    on a dying process's connections (what comes later waits in the listen backlog the
    supervisor holds), so a crash that fails more lost what it should not have."""
    return sum(any(o.started <= after and o.started + o.latency_s >= before for before, after in struck)
               for o in outcomes)


def _summarise(result: ScenarioResult, outcomes: list[Outcome], webhook_timeout_s: float) -> None:
    result.requests = len(outcomes)
    result.admitted = sum(o.kind == ADMITTED for o in outcomes)
    result.failed = sum(o.kind == FAILED for o in outcomes)
    result.not_injected = sum(o.kind == NOT_INJECTED for o in outcomes)
    result.refused = sum(o.kind == FAILED and "connection refused" in o.message for o in outcomes)
    result.slow = sum(o.latency_s > webhook_timeout_s for o in outcomes)
    answered = [o.latency_s for o in outcomes if o.kind != FAILED]
    if answered:
        result.p50_ms = round(statistics.median(answered) * 1000, 1)
        result.p99_ms = round(percentile(answered, 0.99) * 1000, 1)
        result.max_ms = round(max(answered) * 1000, 1)
    messages: dict[str, int] = {}
    for o in outcomes:
        if o.kind == FAILED:
            messages[o.message[:300]] = messages.get(o.message[:300], 0) + 1
    result.failures = [f"{n}x {m}" for m, n in sorted(messages.items(), key=lambda item: -item[1])][:5]


def _wait_recovered(observer: Observer, scenario: Scenario, victims: set[str], began: float, deadline: float,
                    on_progress) -> float | None:
    """When the Deployment is back to its full ready count with none of the victims left
    (a rollout: rolled out), someone holds the Lease (a new holder where the leader was hit),
    and the scenario's own fault is undone."""
    last_note = 0.0
    while time.monotonic() < deadline:
        sample = observer.latest()
        if sample is not None and sample.at > began + 0.5:
            ready = [n for n, (_ip, ok, _node) in sample.pods.items() if ok]
            done = (sample.ready_replicas >= sample.desired and len(ready) >= sample.desired
                    and observer.holder_at(time.monotonic())
                    and (not scenario.moves_leader or leader_gap(observer.lease_records, began)[2] is not None)
                    and (not scenario.replaces_victims or not victims & set(sample.pods))
                    and (scenario.settled is None or scenario.settled()))
            if scenario.name == "rollout":
                done = done and sample.rolled_out
            if done:
                return sample.at
            if time.monotonic() - last_note > 5:
                on_progress(f"  waiting: {sample.ready_replicas}/{sample.desired} ready, "
                            f"{len(sample.ready_endpoints)} ready endpoints")
                last_note = time.monotonic()
        time.sleep(0.1)
    return None


def _endpoint_removal(observer: Observer, victims: list[str], began: float, ended: float) -> float | None:
    """Seconds from the disruption until no victim's address was a ready endpoint any more
    (only addresses no surviving pod shares: with host network a replacement may reuse a
    node's address)."""
    before = [s for s in observer.samples if s.at <= began]
    if not before:
        return None
    victim_ips = {ip for name, (ip, _ok, _node) in before[-1].pods.items() if name in victims and ip}
    for sample in observer.samples:
        if sample.at <= began or sample.at > ended:
            continue
        others = {ip for name, (ip, _ok, _node) in sample.pods.items() if name not in victims}
        watched = victim_ips - others
        if not watched:
            return None
        if not watched & sample.ready_endpoints:
            return round(sample.at - began, 2)
    return None


# ---- preflight, plan, run ----------------------------------------------------------------
def preflight(api, names: Names, timeout: float, force: bool, explicit: set[str] = frozenset()) -> list[str]:
    """Reasons not to drill (empty: go): fewer than 2 ready replicas, doctor errors. A missing
    namespace or explicitly named object raises KruisectlError."""
    from .. import inventory as inv
    from ..doctor import diagnose

    inventory = inv.collect(api, names, timeout=timeout, extended=True)
    fatal = inventory.fatal()
    if fatal:
        raise DrillRefused(fatal)
    inv.ensure_target(api, inventory, explicit, timeout)
    if inventory.deployment is None:
        raise DrillRefused(f"deployment {names.namespace}/{names.deployment} not found")
    ready = sum(1 for p in inventory.pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))
    reasons = []
    if ready < 2:
        reasons.append(f"only {ready} ready replica(s): a drill needs at least 2")
    if not force:
        reasons += [f"doctor: {f.check}: {f.message}" for f in diagnose(inventory) if f.level == "error"]
    return reasons


def plan(names: Names, scenarios: list[Scenario], options: DrillOptions, lease_duration_s: float = 15.0) -> list[dict]:
    rows = []
    for scenario in scenarios:
        budget = default_budget(scenario, options, lease_duration_s)
        row = {"scenario": scenario.name, "does": scenario.summary, "budget": budget.to_dict()}
        if scenario.rights:  # beyond the drill's own: the user's rights decide whether it can run
            row["needs"] = [f"{verb} {resource}/{sub} in {names.namespace}" for verb, resource, sub in scenario.rights]
        rows.append(row)
    return rows


def lease_duration(api, names: Names, timeout: float) -> float:
    try:
        lease = Target(api, names, timeout).lease() or {}
    except Exception:  # noqa: BLE001 - the upstream default then
        return 15.0
    return float((lease.get("spec") or {}).get("leaseDurationSeconds") or 15)


def run(api, names: Names, scenarios: list[Scenario], options: DrillOptions,
        on_progress: Callable[[str], None] = lambda text: None,
        budgets: dict[str, Budget] | None = None) -> list[ScenarioResult]:
    """Every scenario in turn under one probe SidecarSet, deleted at the end whatever happens
    (KeyboardInterrupt included). The probe's cache warm-up is waited for first, so the first
    requests are not counted as losses."""
    timeout = min(options.webhook_timeout_s, 10.0)
    duration = lease_duration(api, names, timeout)
    results = []
    with probe_sidecarset(api, options.probe_namespace, timeout) as probe:
        wait_injecting(api, options.probe_namespace, probe.labels, timeout, on_progress)
        for scenario in scenarios:
            budget = (budgets or {}).get(scenario.name) or default_budget(scenario, options, duration)
            results.append(measure(api, names, scenario, options, probe.labels, budget, on_progress))
            wait_injecting(api, options.probe_namespace, probe.labels, timeout, on_progress)
    return results


def wait_injecting(api, namespace: str, labels: dict[str, str], timeout: float, on_progress, wait: float = 60) -> None:
    """Until a dry-run pod comes back with the probe sidecar (the replicas' caches have it)."""
    # Named apart from the measured load's pods, so an audit log tells the two apart.
    load = AdmissionLoad(api, namespace, labels, rate=1.0, timeout=timeout, prefix="kruisectl-warmup-")
    deadline = time.monotonic() + wait
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if load.one().kind == ADMITTED else 0
        if streak >= 5:
            time.sleep(1.0)  # the other replicas' caches catch up as well
            return
        time.sleep(0.2)
    raise DrillRefused(f"dry-run pods in {namespace} did not get the probe sidecar within {wait:g}s: "
                       "run `kruisectl webhook check` first")

