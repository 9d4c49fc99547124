"""The socket holder (manager.sockets): its pure decisions table-driven, then real processes
on loopback (no cluster): a supervisor killed whole while the holder keeps its sockets
refuses nothing, and without the holder the same kill refuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from manager.sockets import HolderLink, Store, same_address, usable


@pytest.mark.parametrize("bound, wanted, expected", [
    (("0.0.0.0", 9876), ("0.0.0.0", 9876), True),
    (("0.0.0.0", 9876), ("", 9876), True),              # "" binds every address
    (("0.0.0.0", 9876), ("0.0.0.0", 9877), False),      # another port
    (("127.0.0.1", 9876), ("0.0.0.0", 9876), False),    # another address
    (("::", 9876, 0, 0), ("::", 9876), True),
    (("::", 9876, 0, 0), ("0:0::0", 9876), True),       # spelled differently, the same address
    (("::1", 8000, 0, 0), ("::", 8000), False),
])
def test_a_held_socket_is_taken_only_for_its_own_address(bound, wanted, expected):
    assert same_address(bound, wanted) is expected


def listening(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    return sock


def test_only_a_listening_tcp_socket_is_usable():
    sock, idle = listening(), socket.socket()
    idle.bind(("127.0.0.1", 0))
    try:
        assert usable(sock, ("127.0.0.1", sock.getsockname()[1]))
        assert not usable(idle, ("127.0.0.1", idle.getsockname()[1]))  # bound, not listening
        assert not usable(sock, ("127.0.0.1", sock.getsockname()[1] + 1))
    finally:
        sock.close()
        idle.close()


def dup_of(sock: socket.socket) -> int:
    return os.dup(sock.fileno())


@pytest.mark.parametrize("request_, give, want_found, reply_key", [
    ({"op": "swap", "give": ["webhook"], "want": {}}, True, [], "sockets"),
    ({"op": "swap", "give": ["webhook"], "want": {"webhook": None}}, True, ["webhook"], "sockets"),
    ({"op": "swap", "give": [], "want": {"webhook": None}}, False, [], "sockets"),  # empty holder: nothing
    ({"op": "swap", "give": ["webhook", "health"]}, True, [], "error"),            # 2 names, 1 descriptor
    ({"op": "bind"}, False, [], "error"),                                             # it never binds
])
def test_the_store_answers_each_request(request_, give, want_found, reply_key):
    sock = listening()
    port = sock.getsockname()[1]
    want = {n: ["127.0.0.1", port] for n in (request_.get("want") or {})}
    store = Store()
    try:
        reply, fds = store.handle({**request_, "want": want}, [dup_of(sock)] if give else [])
        assert reply_key in reply, reply
        assert reply.get("sockets", []) == want_found
        assert len(fds) == len(want_found)
        if reply_key == "error":
            assert store.held == {}  # what it refused, it closed
    finally:
        store.close()
        sock.close()


def test_a_socket_given_again_replaces_the_copy_and_release_closes_every_copy():
    sock = listening()
    port = sock.getsockname()[1]
    store = Store()
    store.handle({"op": "swap", "give": ["webhook"]}, [dup_of(sock)])
    store.handle({"op": "swap", "give": ["webhook"]}, [dup_of(sock)])
    assert list(store.held) == ["webhook"]
    sock.close()
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the copy alone keeps it listening
    assert store.handle({"op": "release"}, []) == ({"released": 1}, [])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


# ---- real processes ------------------------------------------------------------------------
SUPERVISED = """
import os, sys
from manager.logs import setup_logging
from manager.options import parse
from manager.supervisor import Supervisor

def worker(options, handoff):  # answers every connection with its pid
    sock = handoff.listener("webhook")
    while True:
        conn, _ = sock.accept()
        conn.sendall(str(os.getpid()).encode())
        conn.close()

options = parse(sys.argv[1:], environ={})
setup_logging("text", False)
sys.exit(Supervisor(options, sys.argv[1:], worker=worker).run())
"""


ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[2])
ENV = {**os.environ, "PYTHONPATH": ROOT}  # this checkout's manager, whatever the interpreter has installed


class Pod:
    """A supervisor (killed whole as a container is) and, optionally, a socket holder."""

    def __init__(self, tmp_path, holder: bool):
        from localcluster.cluster import free_port

        self.tmp, self.port = tmp_path, free_port()
        self.path = str(tmp_path / "holder.sock")
        self.script = tmp_path / "supervised.py"
        self.script.write_text(SUPERVISED)
        self.holder = self.start_holder() if holder else None
        self.supervisor: subprocess.Popen | None = None

    def start_holder(self) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "manager", "socket-holder", f"--path={self.path}",
                                    "--log-format=text"], stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 10
        while not HolderLink(self.path).connect():
            assert time.monotonic() < deadline and process.poll() is None, "the holder did not start"
            time.sleep(0.05)
        return process

    def start_supervisor(self) -> None:
        self.supervisor = subprocess.Popen(
            [sys.executable, str(self.script), "--log-format=text", "--webhook-bind-address=127.0.0.1",
             f"--webhook-port={self.port}", "--health-probe-addr=0", "--metrics-addr=0",
             f"--socket-holder={self.path}"],
            env=ENV, start_new_session=True, stderr=open(self.tmp / "supervisor.log", "ab"))
        self.answer(timeout=10)

    def kill_container(self) -> None:
        """SIGKILL of every process of the 'container' (its session), as a runtime kills one."""
        os.killpg(self.supervisor.pid, signal.SIGKILL)
        self.supervisor.wait()
        deadline = time.monotonic() + 5
        while True:  # its worker dies with it (PR_SET_PDEATHSIG)
            try:
                os.killpg(self.supervisor.pid, 0)
            except ProcessLookupError:
                return
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def answer(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    return conn.recv(64).decode()
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "refused"
                time.sleep(0.05)

    def close(self) -> None:
        for process in (self.supervisor, self.holder):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def pod(tmp_path, request):
    made = Pod(tmp_path, holder=request.param)
    yield made
    made.close()


@pytest.mark.parametrize("pod", [True], indirect=True, ids=["holder"])
def test_a_container_killed_whole_refuses_nothing_while_the_holder_keeps_its_sockets(pod):
    """One pod's life: its container killed whole, then its holder restarted, then its
    container killed again, then a graceful stop."""
    pod.start_supervisor()
    pod.kill_container()
    waiting = pod.connect()  # not refused: it waits in the holder's copy of the backlog
    pod.start_supervisor()   # the next "container" takes the same socket from the holder
    assert waiting.recv(64).decode().isdigit()
    waiting.close()
    assert "taken from the socket holder" in (pod.tmp / "supervisor.log").read_text()

    pod.holder.kill()
    pod.holder.wait()
    pod.holder = pod.start_holder()  # it starts empty and never binds
    deadline = time.monotonic() + 5
    while True:  # the supervisor hands the sockets over again within a second or so
        found = HolderLink(pod.path).fetch({"webhook": ("127.0.0.1", pod.port)})
        if found:
            found["webhook"].close()
            break
        assert time.monotonic() < deadline, "the supervisor did not give the restarted holder its sockets"
        time.sleep(0.1)
    pod.kill_container()
    waiting = pod.connect()
    pod.start_supervisor()
    assert waiting.recv(64).decode().isdigit()
    waiting.close()

    # SIGTERM: the holder lets go first, so the port closes with the worker, as without one.
    pod.supervisor.send_signal(signal.SIGTERM)
    pod.supervisor.wait(timeout=10)
    with pytest.raises(ConnectionRefusedError):
        pod.connect()


@pytest.mark.parametrize("pod", [False], indirect=True, ids=["no-holder"])
def test_without_the_holder_the_same_kill_refuses(pod):
    """The negative control: the supervisor alone (the holder's path absent) binds as before,
    and a kill of its container closes the port."""
    pod.start_supervisor()
    pod.kill_container()
    with pytest.raises(ConnectionRefusedError):
        pod.connect()
