"""The OCI runtime: a container whose image is present locally runs from that image, by crun or
runc, as a kubelet's container runtime would run it.

- Images are OCI archives given to the hostlet (``make image``'s ``dist/*.oci.tar``), found by
  their reference; each is unpacked once (umoci) into a root filesystem shared, read-only, by
  its containers (a writable root gets an overlay of its own).
- The runtime spec comes from the image config and the pod: argv (command/args over
  entrypoint/cmd), env (the image's, then the pod's), the user (runAsUser/runAsGroup over the
  image's USER, runAsNonRoot checked), readOnlyRootFilesystem, allowPrivilegeEscalation and
  capabilities, the emptyDir volumes and the ServiceAccount volume as bind mounts, the node's
  network namespace (pods share their node's network, as with hostNetwork), and
  ``limits.memory`` as the container cgroup's limit, so an OOM kill is the kernel's.
- A shim per container (``python -m localcluster.hostlet.oci shim``, as containerd's) creates
  and starts it, forwards TERM/INT/HUP to it, reaps it as a subreaper, records its exit and
  whether the kernel OOM-killed it (before the runtime removes its cgroup), then deletes it.
  The shim is the container's process for the pod worker; KILL, STOP and CONT go to every
  process of the container through the runtime (``kill --all``).

:meth:`OciRuntime.detect` runs a probe container first; when none of the runtimes can run it
here, the hostlet keeps running plain processes and says why. Not enforced: seccomp, CPU
limits; exec probes still run on the host.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import cgroups
from .env import ETC_HOSTS, SERVICEACCOUNT_PATH, container_env, emptydir_mounts
from .spec import ROOT, HostletError, etc_hosts, expand, pod_hostname
from ..processes import alive

if TYPE_CHECKING:
    from .runtime import Container

RUNTIMES = ("crun", "runc")  # in order of preference
STATE_ROOT = Path("/run/kruisectl-hostlet")  # the runtimes' --root: only this harness's containers
DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")  # containerd's default set
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
PARENT_GONE = signal.SIGPWR  # the shim's death signal: its hostlet is gone, so is the container


# ---- pure parts (unit-tested) ------------------------------------------------------------
def normalize_reference(image: str) -> str:
    """``kruisectl/kruise-manager:0.1.0`` and ``docker.io/kruisectl/kruise-manager:0.1.0`` are
    the same image; ``busybox`` is ``docker.io/library/busybox:latest``."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    return name + (f"@{digest}" if digest else "")


def container_argv(image_config: dict, container: dict, env: dict[str, str]) -> list[str]:
    """The kubelet's rule: ``command`` replaces the entrypoint (and drops the image's cmd),
    ``args`` replace the cmd; $(VAR) references are expanded."""
    settings = image_config.get("config") or {}
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return command + args
    return list(settings.get("Entrypoint") or []) + (args or list(settings.get("Cmd") or []))


def _ids_from_passwd(passwd: str, user: str) -> tuple[int, int, str] | None:
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and user in (fields[0], fields[2]) and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def container_user(image_user: str, pod: dict, container: dict, passwd: str) -> tuple[int, int, str]:
    """(uid, gid, home): runAsUser/runAsGroup (the container's over the pod's) over the image's
    USER, names read from the image's /etc/passwd; runAsNonRoot refuses uid 0 as the kubelet
    does."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = {**pod_context, **(container.get("securityContext") or {})}
    user, _, group = (image_user or "0").partition(":")
    found = _ids_from_passwd(passwd, user)
    if found is None and not user.isdigit():
        raise HostletError(f"unable to find user {user}: no matching entries in the image's passwd file")
    uid, gid, home = found if found else (int(user), 0, "/")
    if group:
        gid = int(group) if group.isdigit() else gid
    if context.get("runAsUser") is not None:
        uid = int(context["runAsUser"])
        found = _ids_from_passwd(passwd, str(uid))
        gid, home = (found[1], found[2]) if found else (0, "/")
    if context.get("runAsGroup") is not None:
        gid = int(context["runAsGroup"])
    if context.get("runAsNonRoot") and uid == 0:
        raise HostletError("container has runAsNonRoot and image will run as root")
    return uid, gid, home


def capabilities(container: dict, uid: int) -> dict[str, list[str]]:
    """The runtime's capability sets: the default set less ``drop`` (``ALL`` drops every one)
    plus ``add``; a non-root process starts with none effective, as with containerd."""
    wanted = ((container.get("securityContext") or {}).get("capabilities")) or {}
    name = lambda cap: cap if cap.startswith("CAP_") else f"CAP_{cap.upper()}"  # noqa: E731
    drop = {name(c) for c in wanted.get("drop") or []}
    kept = [] if "CAP_ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in drop]
    kept += [name(c) for c in wanted.get("add") or [] if name(c) not in kept]
    running = kept if uid == 0 else []
    return {"bounding": kept, "effective": running, "permitted": running, "inheritable": [], "ambient": []}


def runtime_spec(*, argv: list[str], env: dict[str, str], cwd: str, uid: int, gid: int, rootfs: Path,
                 readonly: bool, hostname: str, netns: str | None, binds: list[tuple[str, str, bool]],
                 cgroups_path: str, memory_limit: int | None, no_new_privileges: bool,
                 caps: dict[str, list[str]], additional_gids: list[int] = ()) -> dict:
    """An OCI runtime spec (config.json). ``binds``: (source, destination, read_only)."""
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    mounts += [{"destination": destination, "type": "bind", "source": source,
                "options": ["rbind", "ro" if read_only else "rw", "nosuid", "nodev"]}
               for source, destination, read_only in binds]
    namespaces = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", **({"path": netns} if netns else {})})
    resources: dict = {"devices": [{"allow": False, "access": "rwm"}]}
    nofile = min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # no more than this machine lets us
    if memory_limit is not None:
        resources["memory"] = {"limit": memory_limit, "swap": memory_limit}  # no swap beyond the limit
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids)},
                    "args": list(argv), "env": [f"{k}={v}" for k, v in env.items()], "cwd": cwd or "/",
                    "capabilities": caps, "noNewPrivileges": no_new_privileges,
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]},
        "root": {"path": str(rootfs), "readonly": readonly},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {"namespaces": namespaces, "resources": resources, "cgroupsPath": cgroups_path,
                  "maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS)},
    }


# ---- images ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unpacked:
    rootfs: Path
    config: dict  # the image config, as ``skopeo inspect --config`` shows it

    @property
    def passwd(self) -> str:
        try:
            return (self.rootfs / "etc" / "passwd").read_text()
        except OSError:
            return ""


class LocalImages:
    """The images present on this machine: OCI archives, by the reference each carries; each
    unpacked once under ``cache`` (keyed by its manifest digest)."""

    def __init__(self, archives: list[Path], cache: Path):
        self.cache = cache
        self._lock = threading.Lock()
        self._unpacked: dict[str, Unpacked] = {}
        self.archives: dict[str, tuple[Path, str]] = {}  # normalized reference -> (archive, manifest digest)
        for archive in archives:
            with tarfile.open(archive) as tar:
                index = json.load(tar.extractfile("index.json"))
            for manifest in index.get("manifests") or []:
                name = (manifest.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                if name and not re.fullmatch(r"[\w.-]+", name):  # a full reference, not a bare tag
                    self.archives[normalize_reference(name)] = (Path(archive), manifest["digest"])

    def has(self, image: str | None) -> bool:
        return bool(image) and normalize_reference(image) in self.archives

    def unpack(self, image: str) -> Unpacked:
        archive, digest = self.archives[normalize_reference(image)]
        with self._lock:
            if digest in self._unpacked:
                return self._unpacked[digest]
            target = self.cache / f"rootfs-{digest.split(':', 1)[1][:16]}"
            if not (target / "config.json").exists():
                self._unpack_into(archive, normalize_reference(image), target)
            unpacked = Unpacked(target / "rootfs", json.loads((target / "config.json").read_text()))
            self._unpacked[digest] = unpacked
            return unpacked

    @staticmethod
    def _unpack_into(archive: Path, reference: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix="unpack-") as scratch:
            layout, bundle = Path(scratch) / "layout", Path(scratch) / "bundle"
            name = reference.rsplit("/", 1)[-1].split("@")[0].replace(":", "-")
            for argv in (["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{layout}:{name}"],
                         ["umoci", "unpack", "--image", f"{layout}:{name}", str(bundle)]):
                result = subprocess.run(argv, capture_output=True, text=True)
                if result.returncode != 0:
                    raise HostletError(f"unpacking {reference}: {argv[0]}: {result.stderr.strip()[:300]}")
            inspect = subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}:{name}"], capture_output=True,
                                     text=True, check=True).stdout
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            (bundle / "rootfs").rename(target / "rootfs")
            (target / "config.json").write_text(inspect)  # last: its presence marks a complete unpack


# ---- the runtime -------------------------------------------------------------------------
class OciContainer:
    """One run of a container in the OCI runtime, as the pod worker holds it: ``process`` is its
    shim, ``pid`` the container's own first process; :meth:`signal` reaches the container;
    :meth:`oom_killed_since_start`, :meth:`remove` and :meth:`join` are what the worker and
    faults ask of a container's cgroup."""

    def __init__(self, runtime: "OciRuntime", cid: str, bundle: Path, overlay: Path | None):
        self.runtime, self.cid, self.bundle, self.overlay = runtime, cid, bundle, overlay
        self.process: subprocess.Popen | None = None

    @property
    def state(self) -> dict:
        try:
            return json.loads((self.bundle / "exit.json").read_text())
        except (OSError, ValueError):
            return {}

    def signal(self, sig: int) -> None:
        """TERM/INT/HUP/QUIT/USR1/USR2 to the container's first process (the shim forwards
        them); KILL, STOP and CONT to all of its processes, as the runtime sends them."""
        if self.process is None or self.process.poll() is not None:
            return
        if sig in FORWARDED:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
            return
        self.runtime.command("kill", "--all", self.cid, str(int(sig)))

    def oom_killed_since_start(self) -> bool:
        return bool(self.state.get("oomKilled"))

    @property
    def pid(self) -> int | None:
        """The container's first process (its PID 1), as this machine numbers it; None before
        the runtime created it."""
        try:
            return int((self.bundle / "init.pid").read_text())
        except (OSError, ValueError):
            return None

    def join(self, pid: int) -> None:
        """Move ``pid`` into the container's memory cgroup, as ``MemoryCgroup.join`` does (a
        fault that makes the container exceed ``limits.memory``)."""
        config = json.loads((self.bundle / "config.json").read_text())
        directory = cgroups.memory_dir(self.runtime.cgroup_version, config["linux"]["cgroupsPath"])
        (directory / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """What the shim may not have done (it was killed): delete the container, and unmount
        its overlay."""
        self.runtime.command("delete", "--force", self.cid)
        if self.overlay is not None:
            subprocess.run(["umount", "-l", str(self.overlay / "merged")], capture_output=True)


class OciRuntime:
    """crun or runc running the containers whose image is in ``images``."""

    def __init__(self, binary: str, images: LocalImages):
        self.binary, self.images = binary, images
        self.name = os.path.basename(binary)
        owner = cgroups.own_memory_cgroup()
        self.cgroup_version = owner[0] if owner else "v1"
        self.cgroup_parent = f"{(owner[1] if owner else '').rstrip('/')}/kruisectl-oci-{os.getpid()}"
        self.prefix = f"h{os.getpid()}-"

    # -- detection -------------------------------------------------------------------------
    @classmethod
    def detect(cls, images: LocalImages) -> tuple["OciRuntime | None", str | None]:
        """The first runtime that runs a probe container here (from the first image, as user
        65532, read-only, with a memory limit in a cgroup), else None and why not."""
        if os.geteuid() != 0:
            return None, "running containers needs root here (rootless runtimes are not set up)"
        if not images.archives:
            return None, "no image is present locally (make image builds the manager's)"
        missing = [tool for tool in ("skopeo", "umoci") if not shutil.which(tool)]
        if missing:
            return None, f"{', '.join(missing)} not installed (make image-tools)"
        reasons = []
        for name in RUNTIMES:
            binary = shutil.which(name)
            if binary is None:
                reasons.append(f"{name}: not installed")
                continue
            runtime = cls(binary, images)
            failure = runtime.probe()
            if failure is None:
                runtime.clean_stale()
                return runtime, None
            runtime.close()
            reasons.append(f"{name}: {failure}")
        return None, "; ".join(reasons)

    def probe(self) -> str | None:
        """None when a container runs here, else the runtime's error."""
        reference = next(iter(self.images.archives))
        try:
            unpacked = self.images.unpack(reference)
        except (HostletError, OSError, subprocess.CalledProcessError) as err:
            return f"cannot unpack {reference}: {err}"
        with tempfile.TemporaryDirectory(prefix="kruisectl-oci-probe-") as scratch:
            cid = f"{self.prefix}probe"
            spec = runtime_spec(argv=["true"], env={"PATH": "/usr/local/bin:/usr/bin:/bin"}, cwd="/", uid=65532,
                                gid=65532, rootfs=unpacked.rootfs, readonly=True, hostname="probe", netns=None,
                                binds=[], cgroups_path=f"{self.cgroup_parent}/{cid}", memory_limit=64 << 20,
                                no_new_privileges=True, caps=capabilities({}, 65532))
            (Path(scratch) / "config.json").write_text(json.dumps(spec))
            self.command("delete", "--force", cid)
            try:
                result = subprocess.run([self.binary, "--root", str(STATE_ROOT), "run", "--bundle", scratch, cid],
                                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return "the probe container did not finish in 60s"
            finally:
                self.command("delete", "--force", cid)
        if result.returncode != 0:
            return (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()[-1]
        return None

    def command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "--root", str(STATE_ROOT), *args], capture_output=True, text=True,
                              timeout=30)

    def clean_stale(self) -> None:
        """Delete the containers of hostlets that are gone (their shims died with them)."""
        listing = self.command("list", "--format", "json")
        try:
            entries = json.loads(listing.stdout or "[]") or []
        except ValueError:
            return
        for entry in entries:
            match = re.match(r"h(\d+)-", entry.get("id", ""))
            if match and not alive(int(match.group(1))):
                self.command("delete", "--force", entry["id"])

    def close(self) -> None:
        """Remove the cgroup parents the runtime made for this hostlet's containers (when empty)."""
        for directory in sorted(Path("/sys/fs/cgroup").glob(f"*{self.cgroup_parent}")) + [
                Path("/sys/fs/cgroup" + self.cgroup_parent)]:
            try:
                directory.rmdir()
            except OSError:
                pass

    # -- containers ------------------------------------------------------------------------
    def runs(self, image: str | None) -> bool:
        return self.images.has(image)

    def start(self, worker, container: Container, restart: int, log_path: Path) -> OciContainer:
        """Prepare the bundle and start the shim; raises HostletError when the pod asks for what
        cannot run (the worker reports it as CreateContainerError)."""
        spec, pod = container.spec, worker.pod
        unpacked = self.images.unpack(spec["image"])
        settings = unpacked.config.get("config") or {}
        uid, gid, home = container_user(settings.get("User", ""), pod, spec, unpacked.passwd)
        hostname = pod_hostname(pod)
        base = dict(item.split("=", 1) for item in settings.get("Env") or [] if "=" in item)
        base.update(HOSTNAME=hostname)
        base.setdefault("HOME", home)
        env = container_env(worker, container, base=base)
        argv = container_argv(unpacked.config, spec, env)
        if not argv:
            raise HostletError(f"no command specified for image {spec['image']!r}")
        context = {**(pod["spec"].get("securityContext") or {}), **(spec.get("securityContext") or {})}
        cid = f"{self.prefix}{worker.uid[:8]}-{container.name}-{restart}"
        bundle = worker.dir / container.name / f"bundle-{restart}"
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir(parents=True)
        binds = self._binds(worker, container)
        readonly = bool(context.get("readOnlyRootFilesystem"))
        overlay = None if readonly else self._overlay(unpacked.rootfs, bundle)
        groups = [int(g) for g in (pod["spec"].get("securityContext") or {}).get("supplementalGroups") or []]
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        config = runtime_spec(
            argv=argv, env=env, cwd=spec.get("workingDir") or settings.get("WorkingDir") or "/", uid=uid, gid=gid,
            rootfs=overlay / "merged" if overlay else unpacked.rootfs, readonly=readonly, hostname=hostname,
            netns=f"/var/run/netns/{worker.node.host.netns}", binds=binds,
            cgroups_path=f"{self.cgroup_parent}/{cid}", memory_limit=container.memory_limit,
            no_new_privileges=context.get("allowPrivilegeEscalation") is False,
            caps=capabilities(spec, uid), additional_gids=groups + ([int(fs_group)] if fs_group is not None else []))
        (bundle / "config.json").write_text(json.dumps(config, indent=1))
        handle = OciContainer(self, cid, bundle, overlay)
        shim = [sys.executable, "-m", "localcluster.hostlet.oci", "shim", self.binary, str(STATE_ROOT), cid,
                str(bundle), self.cgroup_version, str(cgroups.memory_dir(self.cgroup_version, config["linux"]["cgroupsPath"]))]
        with open(log_path, "ab") as out:
            handle.process = subprocess.Popen(shim, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                         "PYTHONPATH": str(ROOT)},
                                              cwd=str(worker.dir), stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        return handle

    def _binds(self, worker, container: Container) -> list[tuple[str, str, bool]]:
        binds = []
        for source, destination in emptydir_mounts(worker, container, on_host=False):
            os.chmod(source, 0o777)  # as the kubelet makes an emptyDir: any user may write
            binds.append((source, destination, False))
        account = worker.dir / "serviceaccount"
        if worker.pod["spec"].get("automountServiceAccountToken") is not False and (account / "token").exists():
            binds.append((str(account), SERVICEACCOUNT_PATH, True))
        hosts = worker.dir / "etc-hosts"
        hosts.write_text(etc_hosts(worker.pod, worker.node.host.ip, ETC_HOSTS.read_text()))
        binds.append((str(hosts), "/etc/hosts", True))
        return binds

    @staticmethod
    def _overlay(lower: Path, bundle: Path) -> Path:
        """A writable root of the container's own over the shared read-only one."""
        overlay = bundle / "overlay"
        for part in ("upper", "work", "merged"):
            (overlay / part).mkdir(parents=True)
        result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                 f"lowerdir={lower},upperdir={overlay / 'upper'},workdir={overlay / 'work'}",
                                 str(overlay / "merged")], capture_output=True, text=True)
        if result.returncode != 0:
            raise HostletError(f"a writable root filesystem needs an overlay mount: {result.stderr.strip()}")
        return overlay


# ---- the shim ------------------------------------------------------------------------------
def shim(binary: str, root: str, cid: str, bundle: Path, cgroup_version: str, cgroup_dir: Path) -> int:
    """Create and start container ``cid`` from ``bundle``, forward signals to it, wait for it as
    a subreaper, write ``exit.json`` (exit code, whether the kernel OOM-killed it) and delete it;
    exit with its code (128 + signal when a signal ended it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the container's first process is ours to reap
    libc.prctl(1, int(PARENT_GONE), 0, 0, 0)  # PR_SET_PDEATHSIG
    runtime = [binary, "--root", root]
    pid_file = bundle / "init.pid"
    def parent_gone(*_):
        subprocess.run([*runtime, "kill", "--all", cid, "KILL"], capture_output=True)

    signal.signal(PARENT_GONE, parent_gone)
    created = subprocess.run([*runtime, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid],
                             stdin=subprocess.DEVNULL)
    if created.returncode != 0:
        (bundle / "exit.json").write_text(json.dumps({"exitCode": 128, "error": "create failed"}))
        subprocess.run([*runtime, "delete", "--force", cid], capture_output=True)
        return 128
    pid = int(pid_file.read_text())

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    subprocess.run([*runtime, "start", cid], stdin=subprocess.DEVNULL)
    status = 0
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if reaped == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    oom = cgroups.oom_kill_count(cgroup_dir, cgroup_version) > 0
    (bundle / "exit.json").write_text(json.dumps({"exitCode": code, "oomKilled": oom}))
    subprocess.run([*runtime, "delete", "--force", cid], capture_output=True)
    return code


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "shim":
    sys.exit(shim(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]), sys.argv[6], Path(sys.argv[7])))
