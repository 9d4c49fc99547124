"""The apiserver connection log's reading of /proc (tests/drill/connections.py), on real
loopback sockets of this process: no cluster needed."""

from __future__ import annotations

import os
import socket
import time

import pytest

from .connections import ConnectionLog, _address, connections_to


@pytest.mark.parametrize("hex_address, expected", [
    ("010612C6:2694", ("198.18.6.1", 9876)),
    ("0100007F:0050", ("127.0.0.1", 80)),
    ("00000000:0000", ("0.0.0.0", 0)),
])
def test_proc_net_tcp_addresses_are_read_in_host_byte_order(hex_address, expected):
    assert _address(hex_address) == expected


def _table() -> str:
    with open(f"/proc/{os.getpid()}/net/tcp") as table:
        return table.read()


def test_it_finds_this_process_connections_to_the_port_and_nothing_else():
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_server(("127.0.0.1", 0)) as other:
        port = listener.getsockname()[1]
        ours = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        elsewhere = socket.create_connection(other.getsockname())
        try:
            found = connections_to(os.getpid(), port, _table())
            assert sorted(local for local, _ in found) == sorted(s.getsockname()[1] for s in ours)
            assert set(found.values()) == {"127.0.0.1"}
            # the accepting ends (remote port: the client's) and the listener are not connections to the port
            assert connections_to(os.getpid(), elsewhere.getsockname()[1], _table()) == {}
        finally:
            for s in [*ours, elsewhere]:
                s.close()
        assert connections_to(os.getpid(), port, _table()) == {}


def test_the_log_counts_connections_alive_after_the_fault_and_within_the_window():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with ConnectionLog(os.getpid(), port=port, interval=0.01) as log:
            before = socket.create_connection(("127.0.0.1", port))
            time.sleep(0.1)
            before.close()  # gone before the fault: not counted
            held = socket.create_connection(("127.0.0.1", port))
            time.sleep(0.1)
            log.mark_fault()
            dialled = socket.create_connection(("127.0.0.1", port))
            time.sleep(0.1)
            late_at = time.monotonic()
            time.sleep(0.1)
            late = socket.create_connection(("127.0.0.1", port))
            time.sleep(0.1)
        for s in (held, dialled, late):
            s.close()
    assert len(log.seen) == 4
    assert log.held_during_fault({"127.0.0.1"}, window_s=late_at - log.fault_at) == 2  # held, dialled
    assert log.held_during_fault({"127.0.0.1"}, window_s=60) == 3
    assert log.held_during_fault({"198.18.6.1"}, window_s=60) == 0
