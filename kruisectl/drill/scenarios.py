"""The drill's scenarios: the disruptions of the manager (its pods deleted, crashed, evicted,
rolled; its worker process signalled) and what each may cost (its budget, by default)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import rollout
from ..inventory import Names
from ..leader import resolve_holder
from ..status import pod_ready
from .results import Budget


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
    workloadspread_share: float = 0.0  # of the creates: real pods of a WorkloadSpread (drill.spread)


def default_budget(scenario: Scenario, options: DrillOptions, lease_duration_s: float) -> Budget:
    """Nothing lost on a graceful path; on a crash the requests in flight on the victim: counted
    where the drill sent the fatal signal and the death is proven (a worker's, or a container's
    killed in its pod), else ``crash_budget``; and leadership back within the Lease's duration + 2 s, or, for a fault
    of the worker alone, within PROVEN_DEATH_GAP_S after the supervisor can tell it is gone (a
    hang: its detection time; the OOM killer: the death the drill saw), or, for a container
    restarted in its own pod, within PROVEN_DEATH_GAP_S + CONTAINER_RESTART_S.
    With WorkloadSpread pods in the load, no subset above its maxReplicas, ever."""
    budget = _budget(scenario, options, lease_duration_s)
    if options.workloadspread_share > 0:
        budget.workloadspread_violations = 0
    return budget


def _budget(scenario: Scenario, options: DrillOptions, lease_duration_s: float) -> Budget:
    if scenario.worker_fault is not None:
        spec = WORKER_FAULTS[scenario.worker_fault]
        own = options.leader_gap_budget_s is not None
        gap = options.leader_gap_budget_s if own else PROVEN_DEATH_GAP_S + (spec.detect_s or 0.0)
        return Budget(failed=options.crash_budget, leader_gap_s=gap if scenario.moves_leader else None,
                      within_in_flight=spec.signal != "STOP",
                      gap_after_death=scenario.moves_leader and not own and spec.detect_s is None)
    if scenario.restarts_in_place:
        gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None \
            else PROVEN_DEATH_GAP_S + CONTAINER_RESTART_S
        return Budget(failed=options.crash_budget, leader_gap_s=gap if scenario.moves_leader else None,
                      within_in_flight=True)
    if scenario.graceful:
        gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None else 1.0
        return Budget(failed=0, leader_gap_s=gap if scenario.moves_leader else None)
    gap = options.leader_gap_budget_s if options.leader_gap_budget_s is not None else lease_duration_s + 2.0
    return Budget(failed=options.crash_budget, leader_gap_s=gap if scenario.moves_leader else None)


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
        listing = self.api.request("GET", f"/api/v1/namespaces/{self.names.namespace}/pods",
                                   timeout=self.timeout, labelSelector=self.names.selector)
        return [p for p in listing.get("items", []) if not p["metadata"].get("deletionTimestamp")]

    def lease(self) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{self.names.namespace}/"
                                f"leases/{self.names.lease}", timeout=self.timeout)
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
        self.api.request("DELETE", f"/api/v1/namespaces/{self.names.namespace}/pods/{name}",
                         timeout=self.timeout, body=body)

    def evict(self, name: str, deadline: float) -> None:
        """Evict through the Eviction API; a PDB that blocks (429) is retried until ``deadline``."""
        from kubernetes.client.exceptions import ApiException

        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": self.names.namespace}}
        while True:
            try:
                self.api.request("POST", f"/api/v1/namespaces/{self.names.namespace}/pods/{name}/eviction",
                                 timeout=self.timeout, body=body)
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
    # the victim's container dies whole and is restarted in its own pod, whose next container
    # proves the death (the Lease names the holder's pod: manager.lease.Succession)
    restarts_in_place: bool = False
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
# A container restarted whole: the kubelet restarts a crashed container at once the first
# time; starting it and its interpreter is what this allows for.
CONTAINER_RESTART_S = 2.0
WORKER_HEARTBEAT_TIMEOUT_S = 5.0  # manager's --worker-heartbeat-timeout default
WORKER_HEARTBEAT_INTERVAL_S = 1.0  # manager.supervisor.HEARTBEAT_INTERVAL: the worker's beat, half of it the watchdog's poll
# How long a hang takes to tell: the timeout, counted from the last beat (up to an interval
# before the worker stopped), noticed at the watchdog's next poll.
WORKER_HANG_DETECT_S = WORKER_HEARTBEAT_TIMEOUT_S + 1.5 * WORKER_HEARTBEAT_INTERVAL_S


@dataclass(frozen=True)
class WorkerFault:
    signal: str | None  # what is sent to the worker process (None: the kernel's OOM killer does it)
    summary: str  # "{who}": the leader's / a non-leader's
    # Until the supervisor knows the worker is gone (a hang: its heartbeat timeout); None: when
    # the kernel kills it, measured (the drill watches for the death: Budget.gap_after_death).
    detect_s: float | None


WORKER_FAULTS: dict[str, WorkerFault] = {
    "worker-crash": WorkerFault("KILL", "SIGKILL {who} manager worker process (a panic; its supervisor restarts "
                                "it in the same container)", 0.0),
    "worker-hang": WorkerFault("STOP", "SIGSTOP {who} manager worker process (a hang; its supervisor kills and "
                               "restarts it after --worker-heartbeat-timeout)", WORKER_HANG_DETECT_S),
    "worker-oom": WorkerFault(None, "push {who} container past limits.memory with the worker as the OOM killer's "
                              "choice (its supervisor restarts it)", None),
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

        spec = target.api.request("GET", f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}",
                                  timeout=target.timeout)["spec"]
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
    try:
        spec = target.api.request("GET", f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}",
                                  timeout=target.timeout)["spec"]
        port = next((p.get("containerPort") for c in spec.get("containers") or [] for p in c.get("ports") or []
                     if p.get("name") == "metrics"), 8080)
        text = target.api.get_text(f"/api/v1/namespaces/{target.names.namespace}/pods/{pod}:{port}/proxy/"
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
            body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": {"namespace": names.namespace, "verb": verb,
                                                    "resource": resource, "subresource": sub}}}
            review = api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", timeout=timeout,
                                 body=body)
            if not (review.get("status") or {}).get("allowed"):
                missing.append(f"{scenario.name} needs {verb} {resource}/{sub} in {names.namespace}")
    return missing


# What `kruisectl drill` can do to a worker on a user's cluster: a signal through pods/exec. The
# OOM kill is not offered there (it would run a memory hog in the user's container); the
# harness (localcluster.faults) runs it.
WORKER_SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    exec_scenario(fault, leader) for fault in ("worker-crash", "worker-hang") for leader in (True, False))}


def plan(names: Names, scenarios: list[Scenario], options: DrillOptions, lease_duration_s: float = 15.0) -> list[dict]:
    rows = []
    for scenario in scenarios:
        budget = default_budget(scenario, options, lease_duration_s)
        row = {"scenario": scenario.name, "does": scenario.summary, "budget": budget.to_dict()}
        if scenario.rights:  # beyond the drill's own: the user's rights decide whether it can run
            row["needs"] = [f"{verb} {resource}/{sub} in {names.namespace}" for verb, resource, sub in scenario.rights]
        rows.append(row)
    return rows
