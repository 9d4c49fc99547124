"""Process- and machine-level faults for drills on hostlet nodes: what a real kubelet and kernel
would do to the manager, as :class:`kruisectl.drill.Scenario` objects.

- crash: SIGKILL of a replica's processes (the hostlet restarts the container, as a kubelet);
- hang: SIGSTOP for longer than the readiness budget, then SIGCONT;
- node loss / zone loss: the node's processes killed, its heartbeats stopped, its host cut off
  the network (connections time out, as to a dead machine), restored after a while;
- node partition: the same with the processes left running (healed after a while); peer
  partition: the leader's node cut off from its peers' nodes only;
- total outage: every manager process killed at once (the hostlet brings them back);
- worker crash / hang / OOM: only the manager's worker process (under ``manager.supervisor``)
  killed, stopped, or chosen by the OOM killer; its supervisor replaces it in the same
  container.

The same faults whether the hostlet runs a container in the OCI runtime (the image's
processes: the supervisor as its PID 1, the worker its child) or as a plain process: signals
reach the container's processes, a memory hog joins the container's own memory cgroup.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable

from kruisectl.drill import Scenario, Target, worker_scenario
from kruisectl.status import pod_ready
from .hostlet import Hostlet

log = logging.getLogger("kruisectl.faults")


def _victim(target: Target, leader: bool) -> dict:
    pods = target.pods()
    current = target.leader_pod(pods)
    if leader:
        if current is None:
            raise RuntimeError("no pod holds the Lease")
        return current
    others = [p for p in pods if pod_ready(p) and (current is None or p["metadata"]["name"] != current["metadata"]["name"])]
    if not others:
        raise RuntimeError("no ready replica other than the leader")
    return others[0]


class _Later:
    """Something to do after a delay on a thread of its own; ``done`` once it ran."""

    def __init__(self):
        self.done = threading.Event()

    def run(self, delay: float, action) -> None:
        def later():
            try:
                time.sleep(delay)
                action()
            except Exception:  # a fault left half undone: said, not lost with the thread
                log.exception("undoing a fault failed")
                raise
            finally:
                self.done.set()

        threading.Thread(target=later, daemon=True).start()


def _main_pid(container) -> int:
    """The container's first process: PID 1 inside an OCI container (not its shim), else the
    process the hostlet started."""
    if container.runtime is not None and container.runtime.pid is not None:
        return container.runtime.pid
    return container.process.pid


def _restarted(hostlet: Hostlet, namespace: str, names: list[str], counts: dict[tuple[str, str], int]) -> bool:
    """Every victim container (``counts``: restart count before the fault, by (pod name,
    container name)) restarted since and is ready again."""
    for name in names:
        worker = hostlet.worker(namespace, name)
        if worker is None:
            return False
        for container in worker.containers:
            before = counts.get((name, container.name))
            if before is not None and (container.restart_count <= before or not container.ready):
                return False
    return True


def _count_restarts(hostlet: Hostlet, namespace: str, name: str, counts: dict[tuple[str, str], int]):
    """Note the restart count of pod ``name``'s first container (the manager) in ``counts``; return it."""
    container = hostlet.worker(namespace, name).containers[0]
    counts[(name, container.name)] = container.restart_count
    return container


def process_crash(hostlet: Hostlet, namespace: str, leader: bool) -> Scenario:
    killed: list[str] = []
    counts: dict[tuple[str, str], int] = {}

    def act(target: Target, deadline: float) -> list[str]:
        name = _victim(target, leader)["metadata"]["name"]
        _count_restarts(hostlet, namespace, name, counts)
        began = time.monotonic()
        hostlet.signal_pod(namespace, name, signal.SIGKILL)
        target.strike(began)
        killed.append(name)
        return [name]

    who = "the leader's" if leader else "a non-leader's"
    return Scenario(f"process-crash-{'leader' if leader else 'replica'}",
                    f"SIGKILL {who} manager process (the hostlet restarts it)", graceful=False,
                    moves_leader=leader, act=act, replaces_victims=False, restarts_in_place=True,
                    settled=lambda: _restarted(hostlet, namespace, killed, counts))


def hang(hostlet: Hostlet, namespace: str, seconds: float = 20.0) -> Scenario:
    later = _Later()

    def act(target: Target, deadline: float) -> list[str]:
        name = _victim(target, leader=False)["metadata"]["name"]
        hostlet.signal_pod(namespace, name, signal.SIGSTOP)
        later.run(seconds, lambda: hostlet.signal_pod(namespace, name, signal.SIGCONT))
        return [name]

    return Scenario("hang", f"SIGSTOP a non-leader's process for {seconds:g}s, then SIGCONT", graceful=False,
                    moves_leader=False, act=act, replaces_victims=False, settled=later.done.is_set)


def _node_fault(name: str, summary: str, namespace: str, seconds: float, leader: bool,
                cut: Callable[[str], list[str]], undo: Callable[[str], None]) -> Scenario:
    """The node of the leader (or of a non-leader) taken by ``cut`` (which names the pods on
    it, as namespace/name), given back by ``undo`` after ``seconds``; the manager's pods there
    are the victims, and the same pods come back."""
    later = _Later()

    def act(target: Target, deadline: float) -> list[str]:
        node = _victim(target, leader)["spec"]["nodeName"]
        hit = cut(node)
        later.run(seconds, lambda: undo(node))
        return [p.split("/", 1)[1] for p in hit if p.startswith(namespace + "/")]

    return Scenario(f"{name}{'-leader' if leader else ''}", summary, graceful=False, moves_leader=leader, act=act,
                    replaces_victims=False, settled=later.done.is_set)


def node_loss(hostlet: Hostlet, namespace: str, seconds: float = 70.0, leader: bool = False) -> Scenario:
    return _node_fault("node-loss", f"lose the node of {'the leader' if leader else 'a non-leader'} for "
                       f"{seconds:g}s (processes killed, heartbeats stopped, host cut off the network)",
                       namespace, seconds, leader, hostlet.fail_node, hostlet.restore_node)


def node_partition(hostlet: Hostlet, namespace: str, seconds: float = 30.0, leader: bool = True) -> Scenario:
    """The node of the leader (or of a non-leader) cut off the network with its processes still
    running: they reach neither the apiserver nor their peers, and nothing reaches them; healed
    (the same processes go on) after ``seconds``."""
    return _node_fault("node-partition", f"cut the node of {'the leader' if leader else 'a non-leader'} off the "
                       f"network for {seconds:g}s (processes still running, heartbeats stopped)",
                       namespace, seconds, leader, hostlet.partition_node, hostlet.heal_node)


def peer_partition(hostlet: Hostlet, namespace: str, seconds: float = 20.0) -> Scenario:
    """The leader's node cut off from the other replicas' nodes only: it still reaches the
    apiserver (and keeps its Lease), the apiserver still reaches every replica, but the leader
    and its peers cannot reach each other: to the leader, every peer looks lost. Undone after
    ``seconds``."""
    later = _Later()

    def act(target: Target, deadline: float) -> list[str]:
        pods = target.pods()
        leader = _victim(target, True)
        host = hostlet.nodes[leader["spec"]["nodeName"]].host
        others = sorted({p["status"]["podIP"] for p in pods if p["status"].get("podIP")} - {host.ip})
        host.isolate_from(others)
        later.run(seconds, lambda: host.rejoin(others))
        return [leader["metadata"]["name"]]

    return Scenario("peer-partition-leader", f"cut the leader's node off its peers' nodes for {seconds:g}s (the "
                    "apiserver still reaches everyone)", graceful=False, moves_leader=False, act=act,
                    replaces_victims=False, settled=later.done.is_set)


def zone_loss(hostlet: Hostlet, namespace: str, zone: str | None, zone_of: dict[str, str],
              seconds: float = 70.0) -> Scenario:
    """Every node of ``zone`` lost as in :func:`node_loss`, restored after ``seconds``; ``zone``
    None: the zone of the leader's node when it strikes (``zone-loss-leader``)."""
    later = _Later()

    def act(target: Target, deadline: float) -> list[str]:
        lost_zone = zone if zone is not None else zone_of[_victim(target, True)["spec"]["nodeName"]]
        nodes = [n for n, z in zone_of.items() if z == lost_zone and n in hostlet.nodes]
        lost = [p for node in nodes for p in hostlet.fail_node(node)]
        later.run(seconds, lambda: [hostlet.restore_node(node) for node in nodes])
        return [p.split("/", 1)[1] for p in lost if p.startswith(namespace + "/")]

    which = zone if zone is not None else "the leader's zone"
    return Scenario(f"zone-loss-{zone if zone is not None else 'leader'}", f"lose every node of {which} for "
                    f"{seconds:g}s", graceful=False, moves_leader=zone is None, act=act, replaces_victims=False,
                    settled=later.done.is_set)


def total_outage(hostlet: Hostlet, namespace: str, whole_pods: bool = False) -> Scenario:
    """Every manager container killed at once: each pod's socket holder keeps its ports, so the
    apiserver's calls wait for the restart instead of failing. ``whole_pods`` kills the holders
    too: then nothing holds a port and failurePolicy Fail refuses until a replica is back."""
    killed: list[str] = []
    counts: dict[tuple[str, str], int] = {}

    def act(target: Target, deadline: float) -> list[str]:
        names = [p["metadata"]["name"] for p in target.pods()]
        containers = {name: hostlet.worker(namespace, name).containers for name in names}
        victims = [(name, c) for name in names for c in (containers[name] if whole_pods else containers[name][:1])]
        for name, container in victims:
            counts[(name, container.name)] = container.restart_count
        for name, container in victims:
            hostlet.signal_pod(namespace, name, signal.SIGKILL, container=container.name)
        killed.extend(names)
        return names

    name, summary = ("total-outage-whole-pods", "SIGKILL every container of every manager pod at once, socket "
                     "holders included (the hostlet restarts them)") if whole_pods else \
        ("total-outage", "SIGKILL every manager process at once (the hostlet restarts them)")
    return Scenario(name, summary, graceful=False, moves_leader=True, act=act, replaces_victims=False,
                    settled=lambda: _restarted(hostlet, namespace, killed, counts))


HOG = """
import sys, time
chunks, deadline = [], time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    chunks.append(bytearray(16 << 20))  # zero-filled: every page is really used
    time.sleep(0.02)
"""


def oom(hostlet: Hostlet, namespace: str, leader: bool = False, seconds: float = 30.0) -> Scenario:
    """Make a replica's container exceed its memory limit: a process that only allocates joins
    the container's memory cgroup, and the container's first process (the supervisor, PID 1 of
    an OCI container) is made the OOM killer's first choice (``oom_score_adj`` 1000), so the
    kernel kills the whole container as it would one that grew past ``limits.memory``: no
    worker's death to prove, the container restarts (the worker alone: ``worker_oom``)."""
    import subprocess
    import sys as _sys

    killed: list[str] = []
    counts: dict[tuple[str, str], int] = {}

    def act(target: Target, deadline: float) -> list[str]:
        name = _victim(target, leader)["metadata"]["name"]
        container = _count_restarts(hostlet, namespace, name, counts)
        if container.cgroup is None:
            raise RuntimeError(f"{name} runs without a memory cgroup ({hostlet.memory_limits_unavailable or 'no limit'})")
        cgroup = container.cgroup
        with open(f"/proc/{_main_pid(container)}/oom_score_adj", "w") as adj:
            adj.write("1000")
        hog = subprocess.Popen([_sys.executable, "-c", HOG, str(seconds)], preexec_fn=lambda: cgroup.join(os.getpid()),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + seconds
        while time.monotonic() < end and hostlet.worker(namespace, name).containers[0].restart_count \
                == counts[(name, container.name)] \
                and container.alive():
            time.sleep(0.05)
        hog.kill()
        hog.wait()
        killed.append(name)
        return [name]

    return Scenario(f"oom{'-leader' if leader else ''}", "push a replica's container past limits.memory: the "
                    "kernel OOM-kills the manager (the hostlet restarts it)", graceful=False, moves_leader=leader,
                    act=act, replaces_victims=False, settled=lambda: _restarted(hostlet, namespace, killed, counts))


# ---- the manager's worker process (under manager.supervisor) ------------------------------
def worker_pid(hostlet: Hostlet, namespace: str, pod: str) -> int | None:
    """The pid of the manager's worker in a pod's container: the container's process (or an
    OCI runtime's shim) and its descendants, the one named as the supervisor names a forked
    worker (or, started by exec, handed the worker's environment); None when there is none
    (unsupervised, or between two workers)."""
    from manager.supervisor import ENV, WORKER_NAME

    process = hostlet.process_of(namespace, pod)
    if process is None:
        return None
    marker = f"{ENV}=".encode()
    pending = [process.pid]
    while pending:
        pid = pending.pop()
        try:
            if open(f"/proc/{pid}/comm", "rb").read().strip() == WORKER_NAME.encode():
                return pid
            if any(entry.startswith(marker) for entry in open(f"/proc/{pid}/environ", "rb").read().split(b"\0")):
                return pid
            for task in os.listdir(f"/proc/{pid}/task"):
                pending += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            continue
    return None


def _worker_fault(hostlet: Hostlet, namespace: str, leader: bool, fault: str, act_on) -> Scenario:
    """``fault`` (``drill.WORKER_FAULTS``: its name and budget are the drill's) of one replica's
    worker process, applied by ``act_on(pod, pid)`` (which may return when the worker died, as
    (not before, not after)); settled once another worker runs in the same container (never
    restarted by the hostlet: that is for the test to check) and it is ready."""
    hit: dict[str, int] = {}

    def apply(target: Target, pod: str) -> None:
        pid = worker_pid(hostlet, namespace, pod)
        if pid is None:
            raise RuntimeError(f"{pod} runs no supervised worker (--supervise=false?)")
        hit.clear()
        hit[pod] = pid
        died = act_on(pod, pid)
        if died is not None:
            target.strike(*died)

    def settled() -> bool:
        for pod, pid in hit.items():
            worker = hostlet.worker(namespace, pod)
            now = worker_pid(hostlet, namespace, pod) if worker is not None else None
            if now is None or now == pid or not worker.containers[0].ready:
                return False
        return True

    return worker_scenario(fault, leader, apply, settled=settled)


def worker_crash(hostlet: Hostlet, namespace: str, leader: bool) -> Scenario:
    """SIGKILL of the manager's worker process only (a panic, the OOM killer): its supervisor
    restarts it in the same container."""
    return _worker_fault(hostlet, namespace, leader, "worker-crash", lambda pod, pid: os.kill(pid, signal.SIGKILL))


def worker_hang(hostlet: Hostlet, namespace: str, leader: bool) -> Scenario:
    """SIGSTOP of the manager's worker process only: it stops beating, its supervisor kills it
    after --worker-heartbeat-timeout and restarts it."""
    return _worker_fault(hostlet, namespace, leader, "worker-hang", lambda pod, pid: os.kill(pid, signal.SIGSTOP))


def worker_oom(hostlet: Hostlet, namespace: str, leader: bool, seconds: float = 30.0) -> Scenario:
    """Push a replica's container past limits.memory with the worker as the OOM killer's first
    choice (as its own growth would make it, the supervisor being small): the kernel kills the
    worker, its supervisor restarts it."""
    import subprocess
    import sys as _sys

    def oom_kill(pod: str, pid: int) -> tuple[float, float] | None:
        container = hostlet.worker(namespace, pod).containers[0]
        if container.cgroup is None:
            raise RuntimeError(f"{pod} runs without a memory cgroup ({hostlet.memory_limits_unavailable or 'no limit'})")
        cgroup = container.cgroup
        with open(f"/proc/{pid}/oom_score_adj", "w") as adj:
            adj.write("1000")
        hog = subprocess.Popen([_sys.executable, "-c", HOG, str(seconds)], preexec_fn=lambda: cgroup.join(os.getpid()),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        alive_at = time.monotonic()
        end = alive_at + seconds
        died = None
        while (now := time.monotonic()) < end:
            if worker_pid(hostlet, namespace, pod) != pid:
                died = (alive_at, now)  # between the last poll that saw it and this one
                break
            alive_at = now
            time.sleep(0.05)
        hog.kill()
        hog.wait()
        return died

    return _worker_fault(hostlet, namespace, leader, "worker-oom", oom_kill)
