"""Memory limits for the hostlet's containers, enforced by the kernel as a kubelet's runtime
does: each container with ``resources.limits.memory`` runs in a memory cgroup of its own, so
exceeding the limit gets it OOM-killed by the kernel (and the hostlet reports OOMKilled).

cgroup v2 (``memory.max``, ``memory.events``) where the unified hierarchy has the memory
controller, else cgroup v1 (``memory.limit_in_bytes``, ``memory.oom_control``) under this
process's own memory cgroup. :func:`available` says why neither works, when it does not.
"""

from __future__ import annotations

import os
from pathlib import Path

V2_ROOT = Path("/sys/fs/cgroup")
V1_ROOT = Path("/sys/fs/cgroup/memory")


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ('' for v2), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller == "" and controllers == "" and line.startswith("0::")) or controller in controllers.split(","):
            return path
    return None


def _base() -> tuple[str, Path] | None:
    """(version, the directory our container cgroups go under), or None."""
    controllers = V2_ROOT / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        own = _own_path("")
        if own is not None:
            return "v2", V2_ROOT / own.lstrip("/")
    if (V1_ROOT / "memory.limit_in_bytes").exists():
        own = _own_path("memory")
        if own is not None:
            return "v1", V1_ROOT / own.lstrip("/")
    return None


def own_memory_cgroup() -> tuple[str, str] | None:
    """(version, this process's memory cgroup as a path from its hierarchy's root): what an OCI
    runtime's absolute ``cgroupsPath`` starts with to put containers under this process."""
    base = _base()
    if base is None:
        return None
    version, directory = base
    return version, "/" + directory.relative_to(V2_ROOT if version == "v2" else V1_ROOT).as_posix().strip(".")


def memory_dir(version: str, cgroups_path: str) -> Path:
    """The directory of ``cgroups_path``'s memory controller."""
    return (V2_ROOT if version == "v2" else V1_ROOT) / cgroups_path.lstrip("/")


def oom_kill_count(directory: Path, version: str) -> int:
    """The kernel's count of OOM kills in the memory cgroup ``directory``."""
    name = "memory.events" if version == "v2" else "memory.oom_control"
    try:
        for line in (directory / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def available() -> str | None:
    """None when memory limits can be enforced here, else why not."""
    if os.geteuid() != 0:
        return "memory cgroups need root"
    base = _base()
    if base is None:
        return "no memory cgroup controller (neither cgroup v2 with memory nor cgroup v1 memory)"
    probe = base[1] / f"kruisectl-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        return f"cannot create a memory cgroup under {base[1]}: {err}"
    return None


class MemoryCgroup:
    """One container's memory cgroup: create, limit, join (from the child before exec), tell
    whether the kernel OOM-killed in it, remove."""

    def __init__(self, name: str, limit_bytes: int):
        base = _base()
        if base is None:
            raise OSError(available() or "no memory cgroup")
        self.version, parent = base
        self.path = parent / f"kruisectl-hostlet-{os.getpid()}" / name
        self.limit_bytes = limit_bytes
        self.path.mkdir(parents=True, exist_ok=True)
        if self.version == "v2":
            (self.path / "memory.max").write_text(str(limit_bytes))
            (self.path / "memory.swap.max").write_text("0") if (self.path / "memory.swap.max").exists() else None
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        self._ooms_at_start = self.oom_kills()

    def join(self, pid: int) -> None:
        """Move ``pid`` here (call with os.getpid() in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills in this cgroup."""
        return oom_kill_count(self.path, self.version)

    def oom_killed_since_start(self) -> bool:
        return self.oom_kills() > self._ooms_at_start

    def remove(self) -> None:
        for directory in (self.path, self.path.parent):
            try:
                directory.rmdir()  # only when empty of processes and children
            except OSError:
                return

