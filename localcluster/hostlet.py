"""The hostlet: a kubelet for the local control plane whose containers are local processes.

kwok simulates pods; some pods must really run (the kruise-manager replicas, so that the Lease
holder is a pod on a node in a zone and the apiserver calls their webhooks). The hostlet is the
kubelet of nodes created without kwok's annotation (:func:`create_hostlet_nodes`): it keeps them
Ready (status and a kube-node-lease Lease, renewed as a kubelet does) and runs every container of
every pod bound to them as a process inside the node's network-namespace host, reporting pod
status from the processes and from their real probes.

Where it differs from a kubelet, on purpose:
- Nothing is pulled. A container runs only if a local program is mapped to its command or image
  (``programs``; ``kruise-manager`` maps to ``python -m manager``). Any other container stays
  Waiting with reason CreateContainerError: nothing from a pod spec is executed unmapped.
- Pods share their node's network: podIP is the node's address, hostNetwork or not.
- emptyDir volumes are bind-mounted at their mountPath in the container's own mount namespace
  (the mountPath directory is created on this machine if missing); other volumes are not mounted.
  The ServiceAccount credential is a kubeconfig in $KUBECONFIG instead of a mounted token.
- Container restarts back off from ``backoff_initial`` (first restart immediate), doubling up to
  ``backoff_max``, reset after a container ran longer than ``backoff_max``.
- Processes run as this machine's user, without cgroups: securityContext and resource limits
  are not enforced (resourceFieldRef env values are still reported).

It talks to the API as each node (``system:node:<name>`` client certificates), so the Node
authorizer holds it to a kubelet's rights.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Union

import requests

from .cluster import KWOK_ANNOTATION, REGION_LABEL, ZONE_LABEL, LocalCluster, _die_with_parent
from .pki import LocalCA

log = logging.getLogger("kruisectl.hostlet")

ROOT = Path(__file__).resolve().parents[1]
MANAGER_PROGRAM = [sys.executable, "-m", "manager"]
NODE_LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.31.0-hostlet"
TOKEN_SECONDS = 3607  # what the kubelet requests for projected ServiceAccount tokens
PROBE_NETWORKS = (ipaddress.ip_network("198.18.0.0/15"),)  # the harness's hosts: never probe elsewhere
API_TIMEOUT = 10.0

# A program for a container: a mapping {command or image name: argv prefix}, or a callable
# (container, pod) -> argv (None when it does not apply).
ProgramHook = Callable[[dict, dict], Union[list, None]]
Programs = Union[Mapping[str, list], ProgramHook]


class HostletError(RuntimeError):
    """A node or pod cannot be run by the hostlet; the message says why."""


# ---- pure helpers (unit-tested) ----------------------------------------------------------
def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_VAR_REF = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.-]*)\))")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined references are replaced, undefined ones are kept
    verbatim, and ``$$`` escapes a ``$``."""
    def replace(match: re.Match) -> str:
        if match.group(1) == "$":
            return "$"
        name = match.group(2)
        return variables[name] if name in variables else match.group(0)

    return _VAR_REF.sub(replace, text)


def image_name(image: str) -> str:
    """``registry:5000/openkruise/kruise-manager:v1.5@sha256:…`` -> ``kruise-manager``."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve_program(container: dict, pod: dict, programs: Programs | None) -> list[str] | None:
    """The argv for a container (command and args already expanded), or None when no local
    program is mapped to it. A mapping's key matches the command's first word (or its base
    name) or the image name; its value replaces that first word (the image's entrypoint when
    the container gives no command)."""
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    if callable(programs):
        argv = programs(container, pod)
        if argv:
            return list(argv)
        programs = None
    table = {"kruise-manager": MANAGER_PROGRAM, **(programs or {})}
    if command:
        for key in (command[0], os.path.basename(command[0])):
            if key in table:
                return [*table[key], *command[1:], *args]
    name = image_name(container.get("image") or "")
    if name in table:
        # The image's own program; a command naming its entrypoint (e.g. /manager) is that program.
        return [*table[name], *command[1:], *args]
    return None


def probe_url(scheme: str, host: str, port, path: str | None) -> str:
    """The URL a kubelet probes: a path without a leading '/' (upstream's 'healthz') is rooted."""
    path = path or "/"
    return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"


def field_path_value(pod: dict, path: str) -> str:
    """A downward-API fieldRef, as the kubelet resolves it."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise HostletError(f"unsupported fieldRef {path!r}")
    return simple[path]


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20,
           "Gi": 1 << 30, "Ti": 1 << 40}


def quantity(text: str) -> float:
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise HostletError(f"invalid quantity {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def resource_field_value(container: dict, ref: dict, allocatable: Mapping[str, str]) -> str:
    """resourceFieldRef: the container's limit (node allocatable when unset) or request, divided
    by the divisor and rounded up, as the kubelet does."""
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        value = allocatable.get(name, "0") if kind == "limits" else "0"
    divisor = quantity(ref.get("divisor") or "1")
    result = -(-quantity(value) // divisor) if divisor else 0
    return str(int(result))


class Backoff:
    """Crash-loop back-off: the first restart is immediate, then initial, 2×initial, … max."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum
        self.delay = 0.0

    def next_delay(self, ran_for: float) -> float:
        if ran_for > self.maximum:
            self.delay = 0.0
        delay = self.delay
        self.delay = self.initial if self.delay == 0 else min(self.maximum, self.delay * 2)
        return delay


# ---- nodes -------------------------------------------------------------------------------
def create_hostlet_nodes(cluster: LocalCluster, names: list[str], *, zones: tuple[str, ...] = (),
                         region: str = "region-1", labels: Mapping[str, str] | None = None,
                         taints: list[dict] | None = None, cpu: str = "8", memory: str = "32Gi",
                         pods: str = "110") -> list[str]:
    """Nodes for a :class:`Hostlet` (no kwok annotation), each with its own network-namespace
    host as InternalIP; zone labels round-robin over ``zones`` (none when empty)."""
    session = cluster.session()
    for i, name in enumerate(names):
        host = cluster.add_host(name)
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "hostlet"}
        if zones:
            node_labels[ZONE_LABEL] = zones[i % len(zones)]
            node_labels[REGION_LABEL] = region
        node_labels.update(labels or {})
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels},
            "spec": {"taints": list(taints or [])},
            "status": _node_status(host.ip, name, cpu, memory, pods),
        }
        response = session.post(f"{cluster.server}/api/v1/nodes", json=body, timeout=API_TIMEOUT)
        if response.status_code != 201:
            raise HostletError(f"creating node {name}: {response.status_code} {response.text[:300]}")
    return list(names)


def _node_status(ip: str, name: str, cpu: str, memory: str, pods: str) -> dict:
    capacity = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "capacity": capacity, "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": _node_conditions(),
        "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
                     "architecture": "amd64", "containerRuntimeVersion": "hostlet://1", "osImage": "hostlet",
                     "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "", "bootID": ""},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    }


def _node_conditions() -> list[dict]:
    stamp = now_rfc3339()
    pressure = [("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "KubeletHasSufficientPID")]
    conditions = [{"type": kind, "status": "False", "reason": reason, "message": reason,
                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp} for kind, reason in pressure]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "hostlet is posting ready status", "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp})
    return conditions


def node_credential(cluster: LocalCluster, name: str) -> tuple[Path, Path]:
    """A client certificate for ``system:node:<name>`` in group ``system:nodes``: the hostlet
    calls the API as that node's kubelet, so the Node authorizer holds it to what a kubelet may
    do (its own Node and Lease, status of pods bound to it, tokens for their ServiceAccounts)."""
    pki = cluster.workdir / "pki"
    cert_path, key_path = pki / f"node-{name}.crt", pki / f"node-{name}.key"
    # Issued afresh every time: a workdir reused by a new cluster (make demo) has a new CA.
    ca = LocalCA.load(cluster.ca_file.read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = ca.issue(f"system:node:{name}", organizations=("system:nodes",))
    key_path.write_bytes(key)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert)
    return cert_path, key_path


@dataclass
class NodeAgent:
    name: str
    host: object  # network.Host
    credential: tuple[Path, Path]
    allocatable: dict = field(default_factory=dict)
    uid: str = ""
    failed: bool = False  # lost (Hostlet.fail_node): no heartbeat, no pods, off the network

    def session(self, cluster: LocalCluster) -> requests.Session:
        """A new API session as this node (one per thread)."""
        session = requests.Session()
        session.cert = tuple(str(p) for p in self.credential)
        session.verify = str(cluster.ca_file)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace the cluster's CA
        return session


# ---- containers --------------------------------------------------------------------------
@dataclass
class ProbeState:
    spec: dict
    kind: str  # readiness | liveness | startup
    successes: int = 0
    failures: int = 0
    passing: bool = False
    next_at: float = 0.0
    last_message: str = ""

    def reset(self, started: float) -> None:
        self.successes = self.failures = 0
        self.passing = self.kind == "liveness"
        self.next_at = started + float(self.spec.get("initialDelaySeconds", 0))

    def record(self, ok: bool, message: str) -> bool:
        """Count one result; True when the probe's verdict changed."""
        before = self.passing
        self.last_message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.spec.get("successThreshold", 1)):
                self.passing = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= int(self.spec.get("failureThreshold", 3)):
                self.passing = False
        return before != self.passing


@dataclass
class Container:
    spec: dict
    init: bool = False
    process: subprocess.Popen | None = None
    restart_count: int = 0
    started_at: float = 0.0
    started_stamp: str = ""
    waiting: tuple[str, str] = ("ContainerCreating", "")
    last_terminated: dict | None = None
    terminated: dict | None = None  # the current state when not restarting (or not yet)
    restart_at: float = 0.0
    kill_at: float | None = None  # SIGKILL deadline of a stop in progress
    completed: bool = False  # an init container that succeeded
    log: Path | None = None
    probes: dict[str, ProbeState] = field(default_factory=dict)
    backoff: Backoff | None = None
    cgroup: object | None = None  # cgroups.MemoryCgroup of the running process, when limited

    @property
    def memory_limit(self) -> int | None:
        limit = ((self.spec.get("resources") or {}).get("limits") or {}).get("memory")
        return int(quantity(limit)) if limit else None

    @property
    def name(self) -> str:
        return self.spec["name"]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def started(self) -> bool:
        startup = self.probes.get("startup")
        return self.alive() and (startup is None or startup.passing)

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        readiness = self.probes.get("readiness")
        return readiness is None or readiness.passing


class PodWorker:
    """Runs one pod: its containers, their probes and restarts, its status, its termination."""

    def __init__(self, hostlet: "Hostlet", node: NodeAgent, pod: dict):
        self.hostlet, self.node = hostlet, node
        self.pod = pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = hostlet.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = pod["spec"]
        restartable_init = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        self.init = [Container(c, init=True) for c in spec.get("initContainers") or [] if c not in restartable_init]
        self.containers = [Container(c) for c in restartable_init + list(spec.get("containers") or [])]
        for container in self.init + self.containers:
            container.backoff = Backoff(hostlet.backoff_initial, hostlet.backoff_max)
            for kind in ("readiness", "liveness", "startup"):
                probe = container.spec.get(f"{kind}Probe")
                if probe and not container.init:
                    container.probes[kind] = ProbeState(probe, kind)
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.gone = False  # the pod object no longer exists
        self.finished = False
        self.start_stamp = now_rfc3339()
        self.transitions: dict[str, tuple[str, str]] = {}
        self.last_status: dict | None = None
        self.token_refresh_at = 0.0
        self.kubeconfig: Path | None = None
        self.api = node.session(hostlet.cluster)
        self.probe_http = requests.Session()
        self.probe_http.trust_env = False  # no proxy, no CA bundle from the environment
        self.thread = threading.Thread(target=self._run, name=f"hostlet-pod-{self.namespace}/{self.name}", daemon=True)

    # -- inputs from the node's watch ------------------------------------------------------
    def update(self, pod: dict) -> None:
        with self.lock:
            self.pod = pod
        self.changed.set()

    def deleted(self) -> None:
        self.gone = True
        self.changed.set()

    @property
    def restart_policy(self) -> str:
        return self.pod["spec"].get("restartPolicy", "Always")

    @property
    def deleting(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        stop = self.hostlet._stopping
        while not stop.is_set() and not self.finished and not self.node.failed:
            try:
                if self.deleting:
                    self._terminate()
                    continue
                self._step()
            except Exception as err:  # keep the pod's loop alive: report and retry
                log.warning("pod %s/%s: %s", self.namespace, self.name, err, exc_info=True)
                stop.wait(1.0)
            self.changed.wait(self.hostlet.sync_interval)
            self.changed.clear()
        if self.finished:
            with self.hostlet._workers_lock:
                self.hostlet.workers.pop(self.uid, None)

    def _step(self) -> None:
        now = time.monotonic()
        self._refresh_token(now)
        pending_init = [c for c in self.init if not c.completed]
        if pending_init:
            self._drive(pending_init[0], now)
        else:
            for container in self.containers:
                self._drive(container, now)
                self._probe(container, now)
        self._write_status()

    def _drive(self, container: Container, now: float) -> None:
        """Start, reap and restart one container according to the pod's restartPolicy."""
        if container.kill_at is not None and container.alive() and now >= container.kill_at:
            self._signal(container, signal.SIGKILL)
        if container.process is not None and not container.alive():
            self._reap(container, now)
        if container.process is None and now >= container.restart_at and not self._done(container):
            self._start(container, now)

    def _done(self, container: Container) -> bool:
        """Whether an exited container stays exited."""
        if container.terminated is None:
            return False
        if container.init:
            return container.completed or self.restart_policy == "Never"
        if self.restart_policy == "Never":
            return True
        return self.restart_policy == "OnFailure" and container.terminated["exitCode"] == 0

    def _reap(self, container: Container, now: float) -> None:
        code = container.process.returncode
        state = {"exitCode": 128 - code if code < 0 else code, "startedAt": container.started_stamp,
                 "finishedAt": now_rfc3339(), "containerID": f"hostlet://{container.process.pid}",
                 "reason": "Completed" if code == 0 else "Error"}
        if code < 0:
            state["signal"] = -code
        if container.cgroup is not None:
            if container.cgroup.oom_killed_since_start():
                state.update(reason="OOMKilled", exitCode=137)
                self._event("OOMKilling", f"Memory cgroup out of memory: killed container {container.name}",
                            "Warning")
            container.cgroup.remove()
            container.cgroup = None
        container.process, container.kill_at = None, None
        container.terminated = state
        if container.init and code == 0:
            container.completed = True
        if not self.deleting and not self._done(container):
            delay = container.backoff.next_delay(now - container.started_at)
            container.restart_at = now + delay
            if delay:
                container.waiting = ("CrashLoopBackOff",
                                     f"back-off {delay:.0f}s restarting failed container={container.name} "
                                     f"pod={self.name}_{self.namespace}({self.uid})")
                self._event("BackOff", f"Back-off restarting failed container {container.name}", "Warning")

    def _start(self, container: Container, now: float) -> None:
        spec = container.spec
        try:
            env = self._env(container)
            expanded = {**spec, "command": [expand(a, env) for a in spec.get("command") or []],
                        "args": [expand(a, env) for a in spec.get("args") or []]}
            argv = resolve_program(expanded, self.pod, self.hostlet.programs)
            if not argv:
                raise HostletError(f"no local program is mapped to image {spec.get('image')!r} "
                                   f"or command {spec.get('command')!r}")
            mounts = self._mounts(container)
        except HostletError as err:
            if container.waiting != ("CreateContainerError", str(err)):
                self._event("Failed", f"Error: {err}", "Warning")
            container.waiting = ("CreateContainerError", str(err))
            container.restart_at = now + 2.0
            return
        restart = container.restart_count + (1 if container.terminated else 0)
        logdir = self.dir / container.name
        logdir.mkdir(exist_ok=True)
        container.log = logdir / f"{restart}.log"
        workdir = spec.get("workingDir") if spec.get("workingDir") and os.path.isdir(spec["workingDir"]) else self.dir
        cgroup = self.hostlet.memory_cgroup(f"{self.uid[:8]}-{container.name}-{restart}", container.memory_limit)
        prepare = _die_with_parent if cgroup is None else lambda: (_die_with_parent(), cgroup.join(os.getpid()))
        with open(container.log, "ab") as out:
            container.process = subprocess.Popen(
                self.node.host.wrap(_with_mounts(mounts, [str(a) for a in argv])),
                env=env, cwd=str(workdir), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=prepare)
        container.cgroup = cgroup
        # PR_SET_PDEATHSIG fires when the starting *thread* ends: only this pod's own long-lived
        # thread starts its processes, and it ends only after they are gone.
        if container.terminated is not None:
            container.restart_count = restart
            container.last_terminated, container.terminated = container.terminated, None
        container.started_at, container.started_stamp = time.monotonic(), now_rfc3339()
        container.waiting = ("", "")
        for probe in container.probes.values():
            probe.reset(container.started_at)
        self._event("Started", f"Started container {container.name}")

    # -- probes --------------------------------------------------------------------------
    def _probe(self, container: Container, now: float) -> None:
        if not container.alive() or container.kill_at is not None:
            return
        startup = container.probes.get("startup")
        kinds = ["startup"] if startup is not None and not startup.passing else ["liveness", "readiness"]
        for kind in kinds:
            probe = container.probes.get(kind)
            if probe is None or now < probe.next_at:
                continue
            probe.next_at = now + float(probe.spec.get("periodSeconds", 10))
            ok, message = self._run_probe(container, probe.spec)
            flipped = probe.record(ok, message)
            if not ok and (flipped or probe.failures == 1):
                self._event("Unhealthy", f"{kind.capitalize()} probe failed: {message}", "Warning")
            if kind != "readiness" and not probe.passing and probe.failures >= int(probe.spec.get("failureThreshold", 3)):
                self._event("Killing", f"Container {container.name} failed {kind} probe, will be restarted")
                self._stop_container(container, self._grace(probe.spec))
                return

    def _run_probe(self, container: Container, spec: dict) -> tuple[bool, str]:
        timeout = float(spec.get("timeoutSeconds", 1))
        host = self.node.host.ip
        if "httpGet" in spec:
            get = spec["httpGet"]
            target = get.get("host") or host
            if not _probe_allowed(target):
                return False, f"probe host {target} is outside the harness's hosts"
            port = _container_port(container.spec, get.get("port"))
            scheme = (get.get("scheme") or "HTTP").lower()
            url = probe_url(scheme, target, port, get.get("path"))
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/1.31")
            try:
                response = self.probe_http.get(url, timeout=timeout, verify=False, headers=headers)
            except requests.RequestException as err:
                return False, f"Get {url!r}: {type(err).__name__}"
            if 200 <= response.status_code < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {response.status_code}"
        if "tcpSocket" in spec:
            port = _container_port(container.spec, spec["tcpSocket"].get("port"))
            target = spec["tcpSocket"].get("host") or host
            if not _probe_allowed(target):
                return False, f"probe host {target} is outside the harness's hosts"
            try:
                with socket.create_connection((target, port), timeout=timeout):
                    return True, ""
            except OSError as err:
                return False, f"dial tcp {target}:{port}: {err}"
        if "exec" in spec:
            command = spec["exec"].get("command") or []
            argv = resolve_program({"command": command}, self.pod, self.hostlet.programs)
            if not argv:
                return False, f"no local program is mapped to exec probe command {command!r}"
            try:
                result = subprocess.run(self.node.host.wrap(argv), env=self._env(container), cwd=str(self.dir),
                                        capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return False, f"command timed out after {timeout:.0f}s"
            return result.returncode == 0, result.stdout[-200:].decode(errors="replace")
        return False, "unsupported probe handler (httpGet, tcpSocket and exec are)"

    # -- stopping ------------------------------------------------------------------------
    def _grace(self, probe_spec: dict | None = None) -> float:
        seconds = (probe_spec or {}).get("terminationGracePeriodSeconds")
        if seconds is None:
            seconds = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if seconds is None:
            seconds = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(seconds)

    def _stop_container(self, container: Container, grace: float) -> None:
        if not container.alive() or container.kill_at is not None:
            return
        container.kill_at = time.monotonic() + grace
        self._signal(container, signal.SIGCONT)
        self._signal(container, signal.SIGTERM if grace > 0 else signal.SIGKILL)

    def _signal(self, container: Container, sig: int) -> None:
        """TERM/INT go to the container's main process (as to PID 1); STOP, CONT and KILL to
        its whole process group (as the freezer and the runtime do to the cgroup)."""
        if not container.alive():
            return
        try:
            if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                os.kill(container.process.pid, sig)
            else:
                os.killpg(container.process.pid, sig)
        except ProcessLookupError:
            pass

    def _terminate(self) -> None:
        """Graceful deletion: SIGTERM, SIGKILL after the grace period, then finalize."""
        grace = 0.0 if self.gone else self._grace()
        for container in self.init + self.containers:
            self._stop_container(container, grace)
        now = time.monotonic()
        for container in self.init + self.containers:
            if container.alive() and container.kill_at is not None and now >= container.kill_at:
                self._signal(container, signal.SIGKILL)
        if any(c.alive() for c in self.init + self.containers):
            return
        for container in self.init + self.containers:
            if container.process is not None:
                container.process.wait()
                self._reap(container, now)
        if not self.gone:
            self._write_status()
            response = self.api.delete(self._url(), json={"gracePeriodSeconds": 0,
                                                          "preconditions": {"uid": self.uid}}, timeout=API_TIMEOUT)
            if response.status_code not in (200, 404, 409):
                raise HostletError(f"finalizing: {response.status_code} {response.text[:200]}")
        self.finished = True

    def kill_all(self) -> None:
        for container in self.init + self.containers:
            if container.alive():
                self._signal(container, signal.SIGCONT)
                self._signal(container, signal.SIGKILL)
        for container in self.init + self.containers:
            if container.process is not None:
                try:
                    container.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.error("pod %s/%s: pid %s survived SIGKILL", self.namespace, self.name, container.process.pid)
            if container.cgroup is not None:
                container.cgroup.remove()

    # -- environment, credential, mounts ---------------------------------------------------
    def _env(self, container: Container) -> dict[str, str]:
        pod = self._pod_with_addresses()
        cluster = self.hostlet.cluster
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(self.dir),
               "HOSTNAME": self.pod["spec"].get("hostname") or self.name, "PYTHONPATH": str(ROOT),
               "PYTHONUNBUFFERED": "1", "LANG": os.environ.get("LANG", "C.UTF-8")}
        if cluster.net is not None and self.pod["spec"].get("enableServiceLinks", True) is not False:
            env.update({"KUBERNETES_SERVICE_HOST": cluster.net.gateway,
                        "KUBERNETES_SERVICE_PORT": str(cluster.apiserver_port)})
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        for source in container.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for key, value in self._source_data(source).items():
                env[prefix + key] = value
        for var in container.spec.get("env") or []:
            if "value" in var or "valueFrom" not in var:
                env[var["name"]] = expand(var.get("value", ""), env)
                continue
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                env[var["name"]] = field_path_value(pod, ref["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in ref:
                env[var["name"]] = resource_field_value(container.spec, ref["resourceFieldRef"], self.node.allocatable)
            else:
                kind = "configMapKeyRef" if "configMapKeyRef" in ref else "secretKeyRef"
                key_ref = ref[kind]
                data = self._object_data("configmaps" if kind == "configMapKeyRef" else "secrets",
                                         key_ref["name"], key_ref.get("optional", False))
                if key_ref["key"] in data:
                    env[var["name"]] = data[key_ref["key"]]
                elif not key_ref.get("optional", False):
                    raise HostletError(f"couldn't find key {key_ref['key']} in {kind[:-6]} {key_ref['name']}")
        return env

    def _pod_with_addresses(self) -> dict:
        ip = self.node.host.ip
        status = {**self.pod.get("status", {}), "hostIP": ip, "podIP": ip, "hostIPs": [{"ip": ip}], "podIPs": [{"ip": ip}]}
        return {**self.pod, "status": status}

    def _source_data(self, source: dict) -> dict[str, str]:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            return self._object_data("configmaps", ref["name"], ref.get("optional", False))
        ref = source.get("secretRef") or {}
        return self._object_data("secrets", ref["name"], ref.get("optional", False))

    def _object_data(self, resource: str, name: str, optional: bool) -> dict[str, str]:
        url = f"{self.hostlet.cluster.server}/api/v1/namespaces/{self.namespace}/{resource}/{name}"
        response = self.api.get(url, timeout=API_TIMEOUT)
        if response.status_code == 404 and optional:
            return {}
        if response.status_code != 200:
            raise HostletError(f"{resource[:-1]} {self.namespace}/{name}: {response.status_code}")
        data = response.json().get("data") or {}
        if resource == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        return data

    def _refresh_token(self, now: float) -> None:
        """A TokenRequest bound to this pod, renewed at 80% of its life, as a kubeconfig."""
        if self.pod["spec"].get("automountServiceAccountToken") is False or now < self.token_refresh_at:
            return
        account = self.pod["spec"].get("serviceAccountName") or "default"
        cluster = self.hostlet.cluster
        url = f"{cluster.server}/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}}
        response = self.api.post(url, json=body, timeout=API_TIMEOUT)
        if response.status_code != 201:
            raise HostletError(f"TokenRequest for serviceaccount {self.namespace}/{account}: "
                               f"{response.status_code} {response.text[:200]}")
        path = self.dir / "kubeconfig"
        scratch = self.dir / "kubeconfig.new"
        cluster.write_token_kubeconfig(scratch, response.json()["status"]["token"], for_hosts=True)
        scratch.replace(path)  # atomic: a reader never sees half a file
        self.kubeconfig = path
        self.token_refresh_at = now + 0.8 * TOKEN_SECONDS

    def _mounts(self, container: Container) -> list[tuple[str, str]]:
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        mounts = []
        for mount in container.spec.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None or "emptyDir" not in volume:
                continue
            source = self.dir / "volumes" / mount["name"]
            source.mkdir(parents=True, exist_ok=True)
            self.hostlet._mount_point(mount["mountPath"])
            mounts.append((str(source), mount["mountPath"]))
        return mounts

    # -- status ----------------------------------------------------------------------------
    def _url(self, sub: str = "") -> str:
        return f"{self.hostlet.cluster.server}/api/v1/namespaces/{self.namespace}/pods/{self.name}{sub}"

    def status(self) -> dict:
        ip = self.node.host.ip
        init_done = all(c.completed for c in self.init)
        all_ready = init_done and all(c.ready for c in self.containers)
        conditions = []
        for kind, value in (("PodReadyToStartContainers", True), ("Initialized", init_done),
                            ("ContainersReady", all_ready), ("Ready", all_ready and self._gates_pass())):
            state = "True" if value else "False"
            previous = self.transitions.get(kind)
            if previous is None or previous[0] != state:
                self.transitions[kind] = (state, now_rfc3339())
            condition = {"type": kind, "status": state, "lastProbeTime": None,
                         "lastTransitionTime": self.transitions[kind][1]}
            if not value and kind in ("ContainersReady", "Ready"):
                unready = [c.name for c in self.containers if not c.ready]
                condition.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(unready)}]")
            conditions.append(condition)
        return {
            "phase": self._phase(), "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": self.start_stamp, "conditions": conditions,
            "initContainerStatuses": [self._container_status(c) for c in self.init],
            "containerStatuses": [self._container_status(c) for c in self.containers],
        }

    def _gates_pass(self) -> bool:
        conditions = {c.get("type"): c.get("status") for c in self.pod.get("status", {}).get("conditions") or []}
        return all(conditions.get(g["conditionType"]) == "True" for g in self.pod["spec"].get("readinessGates") or [])

    def _phase(self) -> str:
        if self.init and not all(c.completed for c in self.init):
            failed = any(c.terminated and self._done(c) for c in self.init)
            return "Failed" if failed else "Pending"
        if any(c.alive() or not self._done(c) for c in self.containers):
            return "Running" if any(c.process is not None or c.terminated or c.last_terminated
                                    for c in self.containers) else "Pending"
        return "Succeeded" if all(c.terminated["exitCode"] == 0 for c in self.containers) else "Failed"

    def _container_status(self, container: Container) -> dict:
        spec = container.spec
        status = {"name": container.name, "image": spec.get("image", ""), "imageID": "",
                  "ready": container.ready, "restartCount": container.restart_count,
                  "started": container.started}
        last = container.last_terminated
        if container.alive():
            status["containerID"] = f"hostlet://{container.process.pid}"
            status["state"] = {"running": {"startedAt": container.started_stamp}}
        elif container.terminated is not None and (self._done(container) or self.deleting or not container.waiting[0]):
            status["state"] = {"terminated": container.terminated}
        else:
            reason, message = container.waiting
            status["state"] = {"waiting": {"reason": reason or "ContainerCreating",
                                           **({"message": message} if message else {})}}
            last = container.terminated or last  # waiting to restart: the exit is the last state
        status["lastState"] = {"terminated": last} if last else {}
        return status

    def _write_status(self) -> None:
        status = self.status()
        if status == self.last_status:
            return
        body = {"metadata": {"uid": self.uid}, "status": status}
        response = self.api.patch(self._url("/status"), data=json.dumps(body), timeout=API_TIMEOUT,
                                  headers={"Content-Type": "application/strategic-merge-patch+json"})
        if response.status_code == 200:
            self.last_status = status
        elif response.status_code in (404, 409):
            self.gone = True  # deleted, or replaced by a pod of the same name
        else:
            raise HostletError(f"status update: {response.status_code} {response.text[:200]}")

    def _event(self, reason: str, message: str, kind: str = "Normal") -> None:
        """A kubelet-style Event on the pod (best effort: a lost Event changes nothing)."""
        stamp = now_rfc3339()
        body = {"metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
                "involvedObject": {"kind": "Pod", "namespace": self.namespace, "name": self.name,
                                   "uid": self.uid, "apiVersion": "v1"},
                "reason": reason, "message": message, "type": kind, "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp,
                "source": {"component": "kubelet", "host": self.node.name}}
        try:
            self.api.post(f"{self.hostlet.cluster.server}/api/v1/namespaces/{self.namespace}/events",
                          json=body, timeout=2)
        except requests.RequestException:
            pass


def _container_port(container: dict, port) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise HostletError(f"probe port {port!r} is not a declared container port")


def _probe_allowed(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in PROBE_NETWORKS)


_MOUNT_SCRIPT = 'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 125; shift 2; done; shift; exec "$@"'


def _with_mounts(mounts: list[tuple[str, str]], argv: list[str]) -> list[str]:
    """argv that first bind-mounts each (source, target) in the process's mount namespace (the
    one ``ip netns exec`` makes, which does not propagate back), then execs ``argv``."""
    if not mounts:
        return argv
    pairs = [path for pair in mounts for path in pair]
    return ["sh", "-c", _MOUNT_SCRIPT, "hostlet-mount", *pairs, "--", *argv]


# ---- the hostlet -------------------------------------------------------------------------
class Hostlet:
    """The kubelet of ``nodes``: start with :meth:`start`, end with :meth:`stop` (which kills
    every container process it started)."""

    def __init__(self, cluster: LocalCluster, nodes: list[str], *, programs: Programs | None = None,
                 backoff_initial: float = 10.0, backoff_max: float = 300.0, heartbeat_interval: float = 10.0,
                 lease_duration: int = 40, sync_interval: float = 0.25, workdir: Path | None = None):
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
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: set = set()
        self._made_dirs: list[Path] = []  # mount points created on this machine, removed by stop()
        from . import cgroups

        self.memory_limits_unavailable = cgroups.available()  # why limits.memory is not enforced
        if self.memory_limits_unavailable:
            log.warning("limits.memory is not enforced: %s", self.memory_limits_unavailable)

    def __enter__(self) -> "Hostlet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Hostlet":
        session = self.cluster.session()
        for name in self.node_names:
            response = session.get(f"{self.cluster.server}/api/v1/nodes/{name}", timeout=API_TIMEOUT)
            if response.status_code != 200:
                raise HostletError(f"node {name}: {response.status_code} {response.text[:200]}")
            node = response.json()
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
        self._stopping.set()
        for stream in list(self._streams):
            _interrupt(stream)
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
        for made in reversed(self._made_dirs):
            try:
                made.rmdir()  # only when empty: never remove what someone else put there
            except OSError:
                pass

    def _mount_point(self, path: str) -> None:
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

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def memory_cgroup(self, name: str, limit_bytes: int | None):
        """A memory cgroup enforcing ``limit_bytes`` for one container run, or None (no limit,
        or limits cannot be enforced here)."""
        if limit_bytes is None or self.memory_limits_unavailable:
            return None
        from .cgroups import MemoryCgroup

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
        worker._signal(found, sig)
        worker.changed.set()

    def log_path(self, namespace: str, pod_name: str, container: str | None = None) -> Path | None:
        """The current log file of a pod's container (``<n>.log`` for its n-th restart)."""
        return self._container(namespace, pod_name, container).log

    def fail_node(self, name: str) -> list[str]:
        """Lose a node as a machine is lost: its heartbeats stop, every process of its pods is
        killed at once (no SIGTERM, no status update), and its host is cut off the network.
        The pods stay bound to it until the control plane acts. Returns their names."""
        node = self.nodes[name]
        node.failed = True
        with self._workers_lock:
            lost = [w for w in self.workers.values() if w.node is node]
        for worker in lost:
            worker.changed.set()
            worker.thread.join(5)
            worker.kill_all()
        with self._workers_lock:
            for worker in lost:
                self.workers.pop(worker.uid, None)
        node.host.unplug()
        return [f"{w.namespace}/{w.name}" for w in lost]

    def restore_node(self, name: str) -> None:
        """The lost node is back: on the network, heartbeating, running its pods again."""
        node = self.nodes[name]
        node.host.plug()
        node.failed = False
        session = node.session(self.cluster)
        listing = session.get(f"{self.cluster.server}/api/v1/pods?fieldSelector=spec.nodeName%3D{name}",
                              timeout=API_TIMEOUT)
        listing.raise_for_status()
        for pod in listing.json()["items"]:
            self._pod_event(node, "ADDED", pod)

    # -- nodes -----------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        sessions = {name: node.session(self.cluster) for name, node in self.nodes.items()}
        while not self._stopping.wait(self.heartbeat_interval):
            try:
                self._heartbeat_all(sessions)
            except Exception as err:
                log.warning("node heartbeat: %s", err)

    def _heartbeat_all(self, sessions: dict[str, requests.Session] | None = None) -> None:
        for node in self.nodes.values():
            if node.failed:
                continue
            session = (sessions or {}).get(node.name) or node.session(self.cluster)
            self._renew_lease(session, node)
            body = {"status": {"conditions": _node_conditions()}}
            response = session.patch(f"{self.cluster.server}/api/v1/nodes/{node.name}/status", data=json.dumps(body),
                                     headers={"Content-Type": "application/strategic-merge-patch+json"},
                                     timeout=API_TIMEOUT)
            if response.status_code != 200:
                log.warning("node %s status: %s %s", node.name, response.status_code, response.text[:200])

    def _renew_lease(self, session: requests.Session, node: NodeAgent) -> None:
        base = f"{self.cluster.server}/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases"
        spec = {"holderIdentity": node.name, "leaseDurationSeconds": self.lease_duration, "renewTime": now_micro()}
        response = session.get(f"{base}/{node.name}", timeout=API_TIMEOUT)
        if response.status_code == 404:
            owner = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
            body = {"metadata": {"name": node.name, "ownerReferences": [owner]}, "spec": spec}
            response = session.post(base, json=body, timeout=API_TIMEOUT)
        elif response.status_code == 200:
            lease = response.json()
            lease["spec"].update(spec)
            response = session.put(f"{base}/{node.name}", json=lease, timeout=API_TIMEOUT)
        if response.status_code not in (200, 201):
            log.warning("node %s lease: %s %s", node.name, response.status_code, response.text[:200])

    # -- pods ------------------------------------------------------------------------------
    def _watch_loop(self, node: NodeAgent) -> None:
        """List and watch the pods bound to ``node`` (as the kubelet's pod config source does)."""
        session = node.session(self.cluster)
        base = f"{self.cluster.server}/api/v1/pods?fieldSelector=spec.nodeName%3D{node.name}"
        while not self._stopping.is_set():
            try:
                listing = session.get(base, timeout=API_TIMEOUT)
                listing.raise_for_status()
                body = listing.json()
                seen = {pod["metadata"]["uid"] for pod in body["items"]}
                for pod in body["items"]:
                    self._pod_event(node, "ADDED", pod)
                with self._workers_lock:
                    vanished = [w for uid, w in self.workers.items() if w.node is node and uid not in seen]
                for worker in vanished:
                    worker.deleted()
                self._watch(session, node, base, body["metadata"]["resourceVersion"])
            except Exception as err:
                if not self._stopping.is_set():
                    log.warning("node %s pod watch: %s", node.name, err)
                    self._stopping.wait(1.0)

    def _watch(self, session: requests.Session, node: NodeAgent, base: str, version: str) -> None:
        while not self._stopping.is_set():
            url = f"{base}&watch=1&allowWatchBookmarks=true&timeoutSeconds=10&resourceVersion={version}"
            with session.get(url, stream=True, timeout=(API_TIMEOUT, 20)) as stream:
                self._streams.add(stream)
                try:
                    stream.raise_for_status()
                    for line in stream.iter_lines():
                        if self._stopping.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            return  # e.g. 410 Gone: list again
                        version = event["object"]["metadata"].get("resourceVersion", version)
                        if event["type"] != "BOOKMARK":
                            self._pod_event(node, event["type"], event["object"])
                finally:
                    self._streams.discard(stream)

    def _pod_event(self, node: NodeAgent, kind: str, pod: dict) -> None:
        if node.failed:
            return  # a lost machine runs nothing; restore_node's next list picks the pods up
        uid = pod["metadata"]["uid"]
        with self._workers_lock:
            worker = self.workers.get(uid)
            if worker is None:
                finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
                if kind == "DELETED" or finished or self._stopping.is_set():
                    return
                worker = self.workers[uid] = PodWorker(self, node, pod)
                worker.thread.start()
                return
        if kind == "DELETED":
            worker.deleted()
        else:
            worker.update(pod)


def _interrupt(stream: requests.Response) -> None:
    """Wake a thread blocked reading a watch: shut its socket down, then close it."""
    connection = getattr(stream.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        stream.close()
    except Exception:
        pass
