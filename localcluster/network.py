"""Test hosts in network namespaces, so the apiserver can reach local processes as it would pods.

The apiserver refuses loopback addresses in Endpoints, so a webhook behind a Service (routed by
``--enable-aggregator-routing``) cannot point at 127.0.0.1. Instead each *host* is a network
namespace with its own address on a bridge the harness creates; a process started in a host
listens on that address, the address goes into Endpoints (or is a host-network pod's IP), and
the apiserver connects to it over the bridge. Addresses come from 198.18.0.0/15 (RFC 2544
benchmarking space), one /24 per network, so nothing outside this machine is ever addressed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR = Path("/tmp/kruisectl-net")
MAX_NETWORKS = 250


class NetworkUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, or no iproute2)."""


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetworkUnavailable(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def available() -> str | None:
    """None when hosts can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 ('ip') is not installed"
    return None


@dataclass
class Host:
    """One network namespace with one address: a machine as far as the cluster can tell."""

    name: str
    netns: str
    ip: str

    def wrap(self, argv: list[str]) -> list[str]:
        """argv that runs ``argv`` inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    @property
    def cable(self) -> str:
        """The host's veth end on the bridge (``kc<net>h<n>`` for netns ``kc<net>-<n>``)."""
        network, number = self.netns[2:].split("-", 1)
        return f"kc{network}h{number}"

    def unplug(self) -> None:
        """Cut the host off the network as a dead machine is: packets to it are dropped, so
        connections time out instead of being refused."""
        _ip("link", "set", self.cable, "down")

    def plug(self) -> None:
        _ip("link", "set", self.cable, "up")

    def isolate_from(self, ips: list[str]) -> None:
        """Drop this host's packets to ``ips`` (blackhole routes): each side's connections to the
        other time out, while both still reach everything else, the apiserver included."""
        for ip in ips:
            _ip("route", "replace", "blackhole", f"{ip}/32", netns=self.netns)

    def rejoin(self, ips: list[str]) -> None:
        for ip in ips:
            _ip("route", "del", "blackhole", f"{ip}/32", netns=self.netns, check=False)


@dataclass
class Network:
    """A bridge with a /24 of 198.18.x.0; hosts attach to it, the root namespace is .1."""

    index: int
    _lock: object = field(repr=False)
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"kcbr{self.index}"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where hosts reach the apiserver."""
        return f"198.18.{self.index}.1"

    @classmethod
    def create(cls) -> "Network":
        reason = available()
        if reason:
            raise NetworkUnavailable(reason)
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for index in range(1, MAX_NETWORKS):
            lock = open(LOCK_DIR / f"{index}.lock", "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            network = cls(index=index, _lock=lock)
            network._clear_leftovers()
            _ip("link", "add", network.bridge, "type", "bridge")
            _ip("addr", "add", f"{network.gateway}/24", "dev", network.bridge)
            _ip("link", "set", network.bridge, "up")
            return network
        raise NetworkUnavailable("no free network index")

    def _clear_leftovers(self) -> None:
        """Remove what an earlier, killed holder of this index left behind."""
        prefix = f"kc{self.index}-"
        listing = _ip("netns", "list", check=False).stdout.split()
        for netns in listing:
            if netns.startswith(prefix):
                _kill_netns_processes(netns)
                _ip("netns", "del", netns, check=False)
        self._delete_cables()
        _ip("link", "del", self.bridge, check=False)

    def _delete_cables(self) -> None:
        """Delete this index's host-side veths. A deleted namespace frees its end of a pair only
        when the kernel gets to it (asynchronously), so the next holder of the index could
        find ``kc<index>h<n>`` still there ("File exists"); deleting one end deletes the pair
        at once."""
        pattern = re.compile(rf"^kc{self.index}h\d+$")
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            fields = line.split(":", 2)
            name = fields[1].strip().split("@", 1)[0] if len(fields) > 1 else ""
            if pattern.match(name):
                _ip("link", "del", name, check=False)

    def add_host(self, name: str) -> Host:
        """A new host on this network (addresses .10 upward, in order of creation)."""
        if name in self.hosts:
            return self.hosts[name]
        number = len(self.hosts) + 10
        if number > 254:
            raise NetworkUnavailable("a network holds at most 245 hosts")
        netns = f"kc{self.index}-{number}"
        ip = f"198.18.{self.index}.{number}"
        outside, inside = f"kc{self.index}h{number}", f"kc{self.index}n{number}"
        _ip("netns", "add", netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{ip}/24", "dev", inside, netns=netns)
        _ip("link", "set", inside, "up", netns=netns)
        _ip("route", "add", "default", "via", self.gateway, netns=netns)
        host = Host(name=name, netns=netns, ip=ip)
        self.hosts[name] = host
        return host

    def destroy(self) -> None:
        """Stop every process in the hosts and remove hosts and bridge."""
        for host in self.hosts.values():
            _kill_netns_processes(host.netns)
            _ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
        self._delete_cables()
        _ip("link", "del", self.bridge, check=False)
        try:
            self._lock.close()
        except Exception:
            pass


def _kill_netns_processes(netns: str) -> None:
    pids = _ip("netns", "pids", netns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
