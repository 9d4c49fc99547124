"""One pod's worker, as the kubelet's pod workers: it starts, reaps and restarts the pod's
containers by its restartPolicy (init containers first), schedules their probes, and stops
them gracefully on deletion; status, environment, probes and the process runtime live in
their own modules."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

from kubekit.api import ApiError

from .env import container_env, container_mounts, refresh_token
from .node import NodeAgent
from .model import Backoff, Container, ProbeState, WorkerContext
from .prober import run_probe
from .runtime import signal_container, start_process
from .spec import API_TIMEOUT, HostletError, expand, now_rfc3339, pod_hostname, resolve_program
from .status import pod_url, post_event, write_status


log = logging.getLogger("kruisectl.hostlet")


class PodWorker:
    """Runs one pod: its containers, their probes and restarts, its status, its termination."""

    def __init__(self, hostlet: WorkerContext, node: NodeAgent, pod: dict):
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
        self.last_written_version: int | None = None  # the pod's resourceVersion after that write
        self.token_refresh_at = 0.0
        self.kubeconfig: Path | None = None
        self.api = node.client(hostlet.cluster)
        self.probe_http = requests.Session()
        self.probe_http.trust_env = False  # no proxy, no CA bundle from the environment
        self.thread = threading.Thread(target=self._run, name=f"hostlet-pod-{self.namespace}/{self.name}", daemon=True)

    # -- inputs from the node's watch ------------------------------------------------------
    def update(self, pod: dict) -> None:
        with self.lock:
            self.pod = pod
        self.changed.set()

    def resume_later(self) -> None:
        """A fresh loop for a pod whose node was cut off (the old one ended with the partition),
        to be started once the node is back; its status is written again in full."""
        self.last_status = None
        self.thread = threading.Thread(target=self._run, name=f"hostlet-pod-{self.namespace}/{self.name}", daemon=True)

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
        stop = self.hostlet.stopping
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
            self.hostlet.forget(self)

    def _step(self) -> None:
        now = time.monotonic()
        refresh_token(self, now)
        pending_init = [c for c in self.init if not c.completed]
        if pending_init:
            self._drive(pending_init[0], now)
        else:
            for container in self.containers:
                self._drive(container, now)
                self._probe(container, now)
        write_status(self)

    def _drive(self, container: Container, now: float) -> None:
        """Start, reap and restart one container according to the pod's restartPolicy."""
        if container.kill_at is not None and container.alive() and now >= container.kill_at:
            signal_container(container, signal.SIGKILL)
        if container.process is not None and not container.alive():
            self._reap(container, now)
        if container.process is None and now >= container.restart_at and not self.stays_exited(container):
            self._start(container, now)

    def stays_exited(self, container: Container) -> bool:
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
                post_event(self, "OOMKilling", f"Memory cgroup out of memory: killed container {container.name}",
                            "Warning")
            container.cgroup.remove()
            container.cgroup = container.runtime = None
        container.process, container.kill_at = None, None
        container.terminated = state
        if container.init and code == 0:
            container.completed = True
        if not self.deleting and not self.stays_exited(container):
            delay = container.backoff.next_delay(now - container.started_at)
            container.restart_at = now + delay
            if delay:
                container.waiting = ("CrashLoopBackOff",
                                     f"back-off {delay:.0f}s restarting failed container={container.name} "
                                     f"pod={self.name}_{self.namespace}({self.uid})")
                post_event(self, "BackOff", f"Back-off restarting failed container {container.name}", "Warning")

    def _start(self, container: Container, now: float) -> None:
        spec = container.spec
        restart = container.restart_count + (1 if container.terminated else 0)
        logdir = self.dir / container.name
        logdir.mkdir(exist_ok=True)
        oci = self.hostlet.oci if self.hostlet.oci is not None and self.hostlet.oci.runs(spec.get("image")) else None
        try:
            if oci is not None:  # the image is here: the OCI runtime runs it
                handle = oci.start(self, container, restart, logdir / f"{restart}.log")
                container.process, container.cgroup, container.runtime = handle.process, handle, handle
            else:
                env = container_env(self, container)
                expanded = {**spec, "command": [expand(a, env) for a in spec.get("command") or []],
                            "args": [expand(a, env) for a in spec.get("args") or []]}
                argv = resolve_program(expanded, self.pod, self.hostlet.programs)
                if not argv:
                    raise HostletError(f"no local program is mapped to image {spec.get('image')!r} "
                                       f"or command {spec.get('command')!r}")
                mounts = container_mounts(self, container)
        except HostletError as err:
            if container.waiting != ("CreateContainerError", str(err)):
                post_event(self, "Failed", f"Error: {err}", "Warning")
            container.waiting = ("CreateContainerError", str(err))
            container.restart_at = now + 2.0
            return
        container.log = logdir / f"{restart}.log"
        if oci is None:
            workdir = spec.get("workingDir") if spec.get("workingDir") and os.path.isdir(spec["workingDir"]) else self.dir
            cgroup = self.hostlet.memory_cgroup(f"{self.uid[:8]}-{container.name}-{restart}", container.memory_limit)
            container.process = start_process(argv, host=self.node.host, hostname=pod_hostname(self.pod), env=env,
                                              cwd=workdir, log=container.log, mounts=mounts, cgroup=cgroup)
            container.cgroup, container.runtime = cgroup, None
        if container.terminated is not None:
            container.restart_count = restart
            container.last_terminated, container.terminated = container.terminated, None
        container.started_at, container.started_stamp = time.monotonic(), now_rfc3339()
        container.waiting = ("", "")
        for probe in container.probes.values():
            probe.reset(container.started_at)
        post_event(self, "Started", f"Started container {container.name}")

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
            ok, message = run_probe(self, container, probe.spec)
            flipped = probe.record(ok, message)
            if not ok and (flipped or probe.failures == 1):
                post_event(self, "Unhealthy", f"{kind.capitalize()} probe failed: {message}", "Warning")
            if kind != "readiness" and not probe.passing and probe.failures >= int(probe.spec.get("failureThreshold", 3)):
                post_event(self, "Killing", f"Container {container.name} failed {kind} probe, will be restarted")
                self._stop_container(container, self._grace(probe.spec))
                return

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
        signal_container(container, signal.SIGCONT)
        signal_container(container, signal.SIGTERM if grace > 0 else signal.SIGKILL)

    def _terminate(self) -> None:
        """Graceful deletion: SIGTERM, SIGKILL after the grace period, then finalize."""
        grace = 0.0 if self.gone else self._grace()
        for container in self.init + self.containers:
            self._stop_container(container, grace)
        now = time.monotonic()
        for container in self.init + self.containers:
            if container.alive() and container.kill_at is not None and now >= container.kill_at:
                signal_container(container, signal.SIGKILL)
        if any(c.alive() for c in self.init + self.containers):
            return
        for container in self.init + self.containers:
            if container.process is not None:
                container.process.wait()
                self._reap(container, now)
        if not self.gone:
            write_status(self)
            try:
                self.api.request("DELETE", pod_url(self), body={"gracePeriodSeconds": 0,
                                                                "preconditions": {"uid": self.uid}}, timeout=API_TIMEOUT)
            except ApiError as err:
                if err.status not in (404, 409):
                    raise HostletError(f"finalizing: {str(err)[:200]}") from err
        self.finished = True

    def kill_all(self) -> None:
        for container in self.init + self.containers:
            if container.alive():
                signal_container(container, signal.SIGCONT)
                signal_container(container, signal.SIGKILL)
        for container in self.init + self.containers:
            if container.process is not None:
                try:
                    container.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.error("pod %s/%s: pid %s survived SIGKILL", self.namespace, self.name, container.process.pid)
            if container.cgroup is not None:
                container.cgroup.remove()
