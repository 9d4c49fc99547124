"""The process runtime: a container is a local process in its node's network-namespace host,
in its own session (so STOP/CONT/KILL reach its whole process group as a cgroup freezer would),
with its own hostname (UTS namespace), its own /tmp and its emptyDir volumes bind-mounted in a
private mount namespace, and crash-loop back-off between restarts."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from ..processes import die_with_parent
from .model import Container


_SETUP_SCRIPT = ('hostname "$1" || exit 125; shift; '
                 'while [ "$1" != -- ]; do mount --rbind "$1" "$2" || exit 125; shift 2; done; shift; exec "$@"')


def container_argv(hostname: str, mounts: list[tuple[str, str]], argv: list[str]) -> list[str]:
    """argv that runs ``argv`` as a container sees the machine: in a UTS namespace of its own
    named ``hostname`` (as the runtime does; controller-runtime's leader identity is
    ``<hostname>_<uuid>``), with each (source, target) of ``mounts`` bind-mounted first, in order
    and with what is mounted below the source, in the mount namespace ``ip netns exec`` makes
    (which does not propagate back). Every step execs,
    so the process started is the container's process."""
    pairs = [path for pair in mounts for path in pair]
    return ["unshare", "--uts", "--", "sh", "-c", _SETUP_SCRIPT, "hostlet-container", hostname, *pairs, "--", *argv]


def start_process(argv: list[str], *, host, hostname: str, env: dict[str, str], cwd: Path, log: Path,
                  mounts: list[tuple[str, str]], cgroup=None) -> subprocess.Popen:
    """Start one container's process inside ``host`` (network.Host) named ``hostname``, its
    output appended to ``log``, joined to ``cgroup`` (cgroups.MemoryCgroup) when one limits its
    memory.

    PR_SET_PDEATHSIG fires when the starting *thread* ends: call this only from the pod's own
    long-lived thread, which ends only after its processes are gone."""
    prepare = die_with_parent if cgroup is None else lambda: (die_with_parent(), cgroup.join(os.getpid()))
    with open(log, "ab") as out:
        return subprocess.Popen(host.wrap(container_argv(hostname, mounts, [str(a) for a in argv])), env=env,
                                cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=prepare)


def signal_container(container: Container, sig: int) -> None:
    """TERM/INT/HUP go to the container's main process (as to PID 1); STOP, CONT and KILL to
    its whole process group (as the freezer and the runtime do to the cgroup)."""
    if not container.alive():
        return
    if container.runtime is not None:
        container.runtime.signal(sig)
        return
    try:
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(container.process.pid, sig)
        else:
            os.killpg(container.process.pid, sig)
    except ProcessLookupError:
        pass
