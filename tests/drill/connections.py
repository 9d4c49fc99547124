"""The apiserver's own TCP connections to the manager pods' webhook port, sampled from /proc
while a drill runs: what a fault on a replica can cost, counted from the side that pays.

The apiserver speaks HTTP/1.1 to a webhook, one request at a time per connection, and closes a
connection whose request timed out. So a replica that stops answering (hung, partitioned, lost,
or a worker killed mid-answer) can fail at most one admission per connection the apiserver held
or dialled to it while it was gone: its keep-alive connections in the apiserver's pool, and the
new ones the Service sent there before its endpoint left. A failure the apiserver reports
without an address (a timeout, or ``EOF`` on a connection closed under a request) is charged to
those connections; if there are more such failures than connections, something else failed.

Only this harness can count them: the apiserver runs in the root network namespace of this
machine (localcluster) and every replica has its own address (hostlet), so the apiserver's
sockets to ``<pod IP>:<port>`` are its connections to that replica.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ESTABLISHED_OR_DIALLING = {"01", "02"}  # /proc/net/tcp states: ESTABLISHED, SYN_SENT


def _address(hex_address: str) -> tuple[str, int]:
    """'010612C6:2694' -> ('198.18.6.1', 9876): /proc/net/tcp's IPv4 in host byte order."""
    ip, port = hex_address.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(ip, 16))), int(port, 16)


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open."""
    found = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def connections_to(pid: int, port: int, table: str) -> dict[tuple[int, int], str]:
    """The connections of process ``pid`` to ``port`` in one reading of /proc/net/tcp
    (``table``): {(local port, inode): remote IP}, established or being dialled."""
    owned = socket_inodes(pid)
    found = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] not in ESTABLISHED_OR_DIALLING:
            continue
        remote_ip, remote_port = _address(fields[2])
        inode = int(fields[9])
        if remote_port == port and inode in owned:
            found[(_address(fields[1])[1], inode)] = remote_ip
    return found


@dataclass
class ConnectionLog:
    """Every connection of the apiserver (``pid``) to ``port`` seen by a poll every
    ``interval`` seconds, with when it was first and last seen (monotonic clock)."""

    pid: int
    port: int = 9876
    interval: float = 0.05
    seen: dict[tuple[int, int], tuple[str, float, float]] = field(default_factory=dict)
    fault_at: float | None = None  # marked by the test when the fault struck
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _poll(self) -> None:
        path = f"/proc/{self.pid}/net/tcp"
        while not self._stop.is_set():
            now = time.monotonic()
            with open(path) as table:
                current = connections_to(self.pid, self.port, table.read())
            for key, ip in current.items():
                first = self.seen[key][1] if key in self.seen else now
                self.seen[key] = (ip, first, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> "ConnectionLog":
        self._thread = threading.Thread(target=self._poll, name="apiserver-connections", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def mark_fault(self) -> None:
        self.fault_at = time.monotonic()

    def held_during_fault(self, ips: set[str], window_s: float) -> int:
        """Connections to ``ips`` alive at some poll within ``window_s`` after the fault: those a
        replica that stopped answering then could cost one admission each."""
        assert self.fault_at is not None, "the fault's instant was never marked"
        end = self.fault_at + window_s
        return sum(1 for ip, first, last in self.seen.values()
                   if ip in ips and last >= self.fault_at - self.interval and first <= end)
