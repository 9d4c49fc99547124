"""What the hostlet's parts share: a container's state (its process, restarts, probes,
back-off) and the narrow view of the hostlet a pod worker gets. Kept apart so the runtime, the
prober, the environment and the worker depend on it and not on each other."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .spec import quantity


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
    runtime: object | None = None  # oci.OciContainer when an OCI runtime runs it (it also is the cgroup)

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


class WorkerContext(Protocol):
    """What a pod worker may use of its hostlet, and nothing more."""

    cluster: object  # the LocalCluster: its API and folders
    workdir: Path
    mount_point: Path
    programs: dict
    backoff_initial: float
    backoff_max: float
    sync_interval: float
    stopping: threading.Event
    oci: object | None  # oci.OciRuntime when containers can run from images

    def forget(self, worker) -> None: ...

    def memory_cgroup(self, name: str, limit_bytes: int | None): ...
