"""localcluster.cluster.free_port: ports for parallel workers' clusters (pure enough to run
without a cluster: it only binds and closes sockets on this machine)."""

from __future__ import annotations

import socket
from concurrent.futures import ProcessPoolExecutor

from localcluster import cluster


def _ports(count: int) -> list[int]:
    return [cluster.free_port() for _ in range(count)]


def test_ports_are_below_the_ephemeral_range_bindable_and_never_handed_twice():
    with ProcessPoolExecutor(max_workers=4) as pool:  # four processes at once, as test workers
        batches = list(pool.map(_ports, [25] * 4))
    ports = [p for batch in batches for p in batch]
    assert len(set(ports)) == len(ports), "a port was handed to two callers"
    low = cluster._ephemeral_low()
    if low >= 12000:
        assert all(10000 <= p < low for p in ports), ports
    with socket.socket() as sock:
        sock.bind(("", ports[-1]))  # free at the end of its pick
