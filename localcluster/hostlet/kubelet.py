"""The hostlet's kubelet loop: it lists and watches the pods bound to each of its nodes (as the
kubelet's pod config source does) and gives each its :class:`PodWorker`, heartbeats the nodes,
and offers the fault hooks tests and drills use (signal a container, lose and restore a node)."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

from kubekit import paths
from kubekit.api import ApiError, Client, Watch

from ..cluster import KWOK_ANNOTATION, LocalCluster
from .node import NodeAgent, heartbeat, node_credential
from .model import Container
from .runtime import signal_container
from .spec import API_TIMEOUT, HostletError, Programs
from .worker import PodWorker

log = logging.getLogger("kruisectl.hostlet")


class Hostlet:
    """The kubelet of ``nodes``: start with :meth:`start`, end with :meth:`stop` (which kills
    every container process it started)."""

    def __init__(self, cluster: LocalCluster, nodes: list[str], *, programs: Programs | None = None,
                 backoff_initial: float = 10.0, backoff_max: float = 300.0, heartbeat_interval: float = 10.0,
                 lease_duration: int = 40, sync_interval: float = 0.25, workdir: Path | None = None,
                 images: list[Path] | None = None):
        if cluster.net is None:
            raise HostletError("the hostlet needs a cluster started with network=True (hosts for its nodes)")
        self.cluster = cluster
        self.node_names = list(nodes)
        self.programs = programs
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.heartbeat_interval, self.lease_duration = heartbeat_interval, lease_duration
        self.sync_interval = sync_interval
        self.workdir = Path(workdir or cluster.workdir / "hostlet")
        self.nodes: dict[str, NodeAgent] = {}
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._workers_lock = threading.Lock()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: set[Watch] = set()  # open pod watches, closed by stop()
        self._made_dirs: list[Path] = []  # mount points created on this machine, removed by stop()
        from .. import cgroups

        self.memory_limits_unavailable = cgroups.available()  # why limits.memory is not enforced
        if self.memory_limits_unavailable:
            log.warning("limits.memory is not enforced: %s", self.memory_limits_unavailable)
        self.oci, self.oci_unavailable = None, "no image given"  # the OCI runtime, else why containers are processes
        if images:
            from .oci import LocalImages, OciRuntime

            self.oci, self.oci_unavailable = OciRuntime.detect(LocalImages(list(images), self.workdir / "images"))
            if self.oci is None:
                log.warning("containers run as plain processes: no OCI runtime runs them here (%s)",
                            self.oci_unavailable)

    def __enter__(self) -> "Hostlet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Hostlet":
        client = self.cluster.client()
        for name in self.node_names:
            try:
                node = client.get(paths.nodes(name), timeout=API_TIMEOUT)
            except ApiError as err:
                raise HostletError(f"node {name}: {str(err)[:200]}") from err
            if KWOK_ANNOTATION in (node["metadata"].get("annotations") or {}):
                raise HostletError(f"node {name} is kwok's (annotation {KWOK_ANNOTATION}); the hostlet runs other nodes")
            address = next((a["address"] for a in node["status"].get("addresses") or [] if a["type"] == "InternalIP"), "")
            host = self.cluster.net.hosts.get(name)
            if host is None or host.ip != address:
                raise HostletError(f"node {name}: its InternalIP {address or '(none)'} is not a host of this cluster")
            self.nodes[name] = NodeAgent(name, host, node_credential(self.cluster, name),
                                         dict(node["status"].get("allocatable") or {}), node["metadata"]["uid"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._heartbeat_all()
        self._spawn(self._heartbeat_loop, "hostlet-heartbeat")
        for node in self.nodes.values():
            self._spawn(lambda node=node: self._watch_loop(node), f"hostlet-pods-{node.name}")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Kill every container process, stop all threads; nodes stop heartbeating."""
        self.stopping.set()
        for watch in list(self._watches):
            watch.close()
        with self._workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.changed.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads + [w.thread for w in workers]:
            if thread.is_alive():
                thread.join(max(0.1, deadline - time.monotonic()))
        for worker in workers:  # after the loops stopped: nothing restarts what is killed here
            worker.kill_all()
        if self.oci is not None:
            self.oci.close()
        for made in reversed(self._made_dirs):
            try:
                made.rmdir()  # only when empty: never remove what someone else put there
            except OSError:
                pass

    def mount_point(self, path: str) -> None:
        """Create an emptyDir's mountPath on this machine if it is missing (a bind mount needs
        one), remembering what was created."""
        target = Path(path)
        if not target.is_absolute():
            raise HostletError(f"mountPath {path!r} is not absolute")
        missing = []
        while not target.exists():
            missing.append(target)
            target = target.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            with self._workers_lock:
                self._made_dirs.append(directory)

    def forget(self, worker: PodWorker) -> None:
        """A finished pod's worker leaves the table (its pod may be created again)."""
        with self._workers_lock:
            self.workers.pop(worker.uid, None)

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def memory_cgroup(self, name: str, limit_bytes: int | None):
        """A memory cgroup enforcing ``limit_bytes`` for one container run, or None (no limit,
        or limits cannot be enforced here)."""
        if limit_bytes is None or self.memory_limits_unavailable:
            return None
        from ..cgroups import MemoryCgroup

        try:
            return MemoryCgroup(name, limit_bytes)
        except OSError as err:
            log.warning("limits.memory not enforced for %s: %s", name, err)
            return None

    # -- fault hooks and inspection --------------------------------------------------------
    def worker(self, namespace: str, pod_name: str) -> PodWorker | None:
        with self._workers_lock:
            for worker in self.workers.values():
                if worker.namespace == namespace and worker.name == pod_name and not worker.finished:
                    return worker
        return None

    def _container(self, namespace: str, pod_name: str, container: str | None) -> Container:
        worker = self.worker(namespace, pod_name)
        if worker is None:
            raise HostletError(f"pod {namespace}/{pod_name} is not run by this hostlet")
        for candidate in worker.containers:
            if container is None or candidate.name == container:
                return candidate
        raise HostletError(f"pod {namespace}/{pod_name} has no container {container!r}")

    def process_of(self, namespace: str, pod_name: str, container: str | None = None) -> subprocess.Popen | None:
        """The running process of a pod's container (the first one by default), else None."""
        found = self._container(namespace, pod_name, container)
        return found.process if found.alive() else None

    def signal_pod(self, namespace: str, pod_name: str, sig: int, container: str | None = None) -> None:
        """Send ``sig`` to a container as a fault would: KILL/STOP/CONT reach its whole process
        group, TERM its main process."""
        found = self._container(namespace, pod_name, container)
        worker = self.worker(namespace, pod_name)
        if not found.alive():
            raise HostletError(f"pod {namespace}/{pod_name}: container {found.name} is not running")
        signal_container(found, sig)
        worker.changed.set()

    def log_path(self, namespace: str, pod_name: str, container: str | None = None) -> Path | None:
        """The current log file of a pod's container (``<n>.log`` for its n-th restart)."""
        return self._container(namespace, pod_name, container).log

    def _detach(self, node: NodeAgent) -> list[PodWorker]:
        """Mark ``node`` failed and wait for each of its pod workers to see it and stop acting
        (no more status reports), its processes left as they are. Returns those workers."""
        node.failed = True
        with self._workers_lock:
            workers = [w for w in self.workers.values() if w.node is node]
        for worker in workers:
            worker.changed.set()
            worker.thread.join(5)
        return workers

    def fail_node(self, name: str) -> list[str]:
        """Lose a node as a machine is lost: its heartbeats stop, every process of its pods is
        killed at once (no SIGTERM, no status update), and its host is cut off the network.
        The pods stay bound to it until the control plane acts. Returns their names.

        Off the network before its processes die: a machine that is lost sends nothing more, but
        a host still plugged in answers a connection to a port whose process was just killed
        with a reset ("connection refused"), which no lost machine does."""
        node = self.nodes[name]
        lost = self._detach(node)
        node.host.unplug()
        for worker in lost:
            worker.kill_all()
        with self._workers_lock:
            for worker in lost:
                self.workers.pop(worker.uid, None)
        return [f"{w.namespace}/{w.name}" for w in lost]

    def restore_node(self, name: str) -> None:
        """The lost node is back: on the network, heartbeating, running its pods again."""
        node = self.nodes[name]
        node.host.plug()
        node.failed = False
        self._relist(node)

    def _relist(self, node: NodeAgent, within: float = 15.0) -> None:
        """The pods bound to a node just back on the network, each to its worker. Tried again
        for ``within`` seconds if the apiserver does not answer (the node's client reaches it
        from the harness, not through the node's cable, so only a busy or restarting apiserver
        fails it); then left to the node's watch loop, which lists again after its own errors."""
        deadline = time.monotonic() + within
        while True:
            try:
                listing = node.client(self.cluster).get(paths.pods(), timeout=API_TIMEOUT,
                                                        fieldSelector=f"spec.nodeName={node.name}")
                break
            except Exception as err:  # noqa: BLE001 - any failure to reach the apiserver
                if time.monotonic() >= deadline or self.stopping.is_set():
                    log.warning("node %s back, its pods not listed (its watch loop will): %s", node.name, err)
                    return
                self.stopping.wait(0.5)
        for pod in listing["items"]:
            self._pod_event(node, "ADDED", pod)

    def partition_node(self, name: str) -> list[str]:
        """Cut a node off the network with everything on it still running, as a machine behind a
        failed link: its heartbeats and pod status reports stop (its kubelet cannot reach the
        apiserver either), its pods' processes go on, unreachable. Returns their names."""
        node = self.nodes[name]
        cut = self._detach(node)
        node.host.unplug()
        return [f"{w.namespace}/{w.name}" for w in cut]

    def heal_node(self, name: str) -> None:
        """The partition is over: the node reports again and resumes its pods, whose processes
        ran through it (their status is written afresh from what the apiserver holds now).

        Every pod worker of the node is resumed, whatever happens to the listing: one left
        paused would never again probe, restart or report its pod (a replica the peers took
        out would stay NotReady for good)."""
        node = self.nodes[name]
        with self._workers_lock:
            workers = [w for w in self.workers.values() if w.node is node]
        for worker in workers:  # each loop ends once it sees node.failed; one still in a call ends after it
            worker.changed.set()
            worker.thread.join(API_TIMEOUT + 5)
        paused = [w for w in workers if not w.thread.is_alive()]
        for worker in set(workers) - set(paused):
            log.warning("pod %s/%s: its loop did not end during the partition of %s", worker.namespace, worker.name, name)
        for worker in paused:
            worker.resume_later()
        try:
            self.restore_node(name)
        finally:
            for worker in paused:
                worker.thread.start()

    # -- nodes -----------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        clients = {name: node.client(self.cluster) for name, node in self.nodes.items()}
        while not self.stopping.wait(self.heartbeat_interval):
            try:
                self._heartbeat_all(clients)
            except Exception as err:
                log.warning("node heartbeat: %s", err)

    def _heartbeat_all(self, clients: dict[str, Client] | None = None) -> None:
        for node in self.nodes.values():
            if not node.failed:
                heartbeat(node, (clients or {}).get(node.name) or node.client(self.cluster), self.lease_duration)

    # -- pods ------------------------------------------------------------------------------
    def _watch_loop(self, node: NodeAgent) -> None:
        """List and watch the pods bound to ``node`` (as the kubelet's pod config source does)."""
        client = node.client(self.cluster)
        selector = f"spec.nodeName={node.name}"
        while not self.stopping.is_set():
            try:
                listing = client.get(paths.pods(), timeout=API_TIMEOUT, fieldSelector=selector)
                seen = {pod["metadata"]["uid"] for pod in listing["items"]}
                for pod in listing["items"]:
                    self._pod_event(node, "ADDED", pod)
                with self._workers_lock:
                    vanished = [w for uid, w in self.workers.items() if w.node is node and uid not in seen]
                for worker in vanished:
                    worker.deleted()
                self._watch(client, node, selector, listing["metadata"]["resourceVersion"])
            except Exception as err:
                if not self.stopping.is_set():
                    log.warning("node %s pod watch: %s", node.name, err)
                    self.stopping.wait(1.0)

    def _watch(self, client: Client, node: NodeAgent, selector: str, version: str) -> None:
        """Follow the pods from ``version`` until stopped; an expired version (410) returns to
        list again, as a watch error does."""
        while not self.stopping.is_set():
            try:
                watch = client.open_watch(paths.pods(), version, timeout_s=10, fieldSelector=selector)
            except ApiError as err:
                if err.status == 410:
                    return
                raise
            self._watches.add(watch)
            try:
                for event in watch:
                    if self.stopping.is_set():
                        return
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        self._pod_event(node, event["type"], event["object"])
            except ApiError as err:
                if err.status == 410 or self.stopping.is_set():
                    return
                raise
            finally:
                self._watches.discard(watch)
                watch.close()

    def _pod_event(self, node: NodeAgent, kind: str, pod: dict) -> None:
        if node.failed:
            return  # a lost machine runs nothing; restore_node's next list picks the pods up
        uid = pod["metadata"]["uid"]
        with self._workers_lock:
            worker = self.workers.get(uid)
            if worker is None:
                finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
                if kind == "DELETED" or finished or self.stopping.is_set():
                    return
                worker = self.workers[uid] = PodWorker(self, node, pod)
                worker.thread.start()
                return
        if kind == "DELETED":
            worker.deleted()
        else:
            worker.update(pod)

