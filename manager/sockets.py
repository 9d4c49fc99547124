"""The socket holder: keeps the manager's listening sockets open while its whole container is dead.

The supervisor holds the webhook, health and metrics sockets across a worker's death, but a
death of the whole container (SIGKILL or OOM kill of the supervisor, the liveness probe) closes
them with it, and until the replica's endpoint leaves the Service (~0.4 s) the connections sent
to it are refused. The holder is a second container of the manager's pod (same image,
``kruise-manager socket-holder --path DIR/holder.sock``, an emptyDir at DIR shared with the
manager; a pod's containers share one network namespace) that keeps a copy of each listening
socket the supervisor hands it (SCM_RIGHTS over a unix socket in that emptyDir). While the
manager's container is dead the kernel still completes handshakes into the backlog; the
restarted supervisor fetches the same sockets and its worker accepts the waiting connections
once ready: "connection refused" becomes "wait about 2 s" (the webhook's timeout is 10 s).

Why it is safe:

- It never binds. The supervisor binds, as it does alone, and hands the sockets over; the
  kernel refuses a second listener on a port (no SO_REUSEPORT), so there is never a listening
  socket nobody accepts from. A restarted holder starts empty: the supervisor sees its
  connection end and hands the sockets over again (at once, or as its retries find it).
- Holder absent (``--socket-holder`` empty, an upstream-style one-container install, the holder
  not up yet): the supervisor binds alone as before and tries the path again (every second,
  backing off to 8 s while it stays absent).
  ``--supervise=false`` binds in the manager itself and uses no holder.
- Only a death keeps the ports open. A deliberate stop releases the holder's copies first
  (SIGTERM to the manager, or the supervisor's exit after a crash loop), so the worker's drain
  alone decides when the ports close, as without a holder; SIGTERM to the holder (the pod
  deleted) closes its copies at once.
- The kubelet restarts each container alone, and memory limits are per container (its own
  cgroup, where the OOM killer picks): the manager's death leaves the holder running. The
  holder has no probes: the manager's own readiness and liveness say whether the replica
  serves; a probe sent while the manager is dead waits in the backlog and times out, as it was
  refused before, so the pod still leaves the endpoints at once (its manager is not ready).
- Its cost: a pod is Ready only while every container runs, so a crash of the holder itself
  takes the replica out of the endpoints until the kubelet has restarted it (a second or so).
- What still refuses: the holder gone with the manager (the node lost, the pod deleted or
  killed whole, the holder itself crashed at the same time); those keep today's costs.

Small on purpose: the standard library only, one thread, about 10 MiB.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import select
import signal
import socket
import sys

log = logging.getLogger("manager.sockets")

MAX_MESSAGE = 64 << 10
MAX_FDS = 16
# A holder that does not answer within this is treated as absent: it answers in microseconds,
# and the supervisor's loop (which reaps workers) waits for it meanwhile.
TIMEOUT = 0.5


# ---- pure parts --------------------------------------------------------------------------
def same_address(bound: tuple, wanted: tuple[str, int]) -> bool:
    """Whether a socket bound at ``bound`` (``getsockname()``) is the one to listen on
    ``wanted`` (host, port) as :func:`manager.supervisor.addresses` names it."""
    if bound[1] != wanted[1]:
        return False
    host = wanted[0] or "0.0.0.0"
    try:
        return ipaddress.ip_address(bound[0]) == ipaddress.ip_address(host)
    except ValueError:
        return bound[0] == host


def usable(sock: socket.socket, wanted: tuple[str, int]) -> bool:
    """A received socket is taken only if it is a listening TCP socket at ``wanted``."""
    try:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
                and same_address(sock.getsockname(), wanted))
    except OSError:
        return False


def encode(message: dict) -> bytes:
    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too long")
    return data


def decode(data: bytes) -> dict:
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("not an object")
    return message


class Store:
    """The holder's state: one listening socket per name, as the supervisor gave them."""

    def __init__(self):
        self.held: dict[str, socket.socket] = {}

    def handle(self, request: dict, fds: list[int]) -> tuple[dict, list[int]]:
        """Answer one request; every received descriptor is either kept or closed.

        ``{"op": "swap", "give": [names], "want": {name: [host, port]}}`` with one descriptor
        per given name: keep those (replacing what was held under the name), answer the held
        sockets that match ``want``. ``{"op": "release"}``: close every copy."""
        op = request.get("op")
        if op == "swap":
            given = request.get("give") or []
            if len(given) != len(fds) or not all(isinstance(n, str) for n in given):
                for fd in fds:
                    os.close(fd)
                return {"error": f"{len(given)} names for {len(fds)} descriptors"}, []
            for name, fd in zip(given, fds):
                old = self.held.pop(name, None)
                if old is not None:
                    old.close()
                self.held[name] = socket.socket(fileno=fd)
            want = request.get("want") or {}
            names = [n for n, address in sorted(want.items())
                     if n in self.held and usable(self.held[n], (address[0], int(address[1])))]
            if given:
                log.info("holding sockets", extra={"sockets": sorted(self.held)})
            return {"sockets": names}, [self.held[n].fileno() for n in names]
        for fd in fds:
            os.close(fd)
        if op == "release":
            count = self.close()
            log.info("released sockets", extra={"count": count})
            return {"released": count}, []
        return {"error": f"unknown op {op!r}"}, []

    def close(self) -> int:
        count = len(self.held)
        for sock in self.held.values():
            sock.close()
        self.held = {}
        return count


# ---- the holder ----------------------------------------------------------------------------
def serve(path: str) -> int:
    """Serve the store on the unix socket ``path`` until SIGTERM or SIGINT (which close every
    copy at once)."""
    store = Store()
    try:
        os.unlink(path)  # a file left by a dead holder (the kubelet never runs two at once)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(8)
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda sig, _frame: stop.append(sig))
    clients: list[socket.socket] = []
    log.info("socket holder listening", extra={"path": path})
    while not stop:
        readable, _, _ = select.select([listener, wake_read, *clients], [], [])
        if listener in readable:
            try:
                client, _ = listener.accept()
                client.settimeout(TIMEOUT)
                clients.append(client)
            except OSError:
                pass
        for client in [c for c in clients if c in readable]:
            try:
                data, fds, _, _ = socket.recv_fds(client, MAX_MESSAGE, MAX_FDS)
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                clients.remove(client)
                client.close()
                continue
            try:
                reply, out = store.handle(decode(data), fds)
            except (ValueError, TypeError, IndexError) as err:
                reply, out = {"error": f"bad request: {err}"}, []
            try:
                socket.send_fds(client, [encode(reply)], out)
            except OSError:
                clients.remove(client)
                client.close()
    count = store.close()
    log.info("socket holder stopping", extra={"signal": signal.Signals(stop[0]).name, "released": count})
    listener.close()
    try:
        os.unlink(path)
    except OSError:
        pass
    return 0


# ---- the supervisor's end ------------------------------------------------------------------
class HolderLink:
    """The supervisor's connection to the holder; every failure means "no holder" (logged)."""

    def __init__(self, path: str, timeout: float = TIMEOUT):
        self.path, self.timeout = path, timeout
        self.conn: socket.socket | None = None

    def connect(self) -> bool:
        if self.conn is not None:
            return True
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(self.timeout)
        try:
            conn.connect(self.path)
        except OSError:
            conn.close()
            return False
        self.conn = conn
        return True

    def fileno(self) -> int:
        return self.conn.fileno() if self.conn is not None else -1

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def detach(self) -> None:
        """In a forked child: forget the descriptor without closing it (it is closed there anyway)."""
        if self.conn is not None:
            self.conn.detach()
            self.conn = None

    def _call(self, request: dict, fds: list[int]) -> tuple[dict, list[int]] | None:
        if not self.connect():
            return None
        try:
            socket.send_fds(self.conn, [encode(request)], fds)
            data, received, _, _ = socket.recv_fds(self.conn, MAX_MESSAGE, MAX_FDS)
            if not data:
                raise ConnectionError("the holder closed the connection")
            reply = decode(data)
        except (OSError, ValueError) as err:
            log.warning("socket holder %s: %s", self.path, err)
            self.drop()
            return None
        if "error" in reply:
            log.warning("socket holder %s: %s", self.path, reply["error"])
        return reply, received

    def fetch(self, wanted: dict[str, tuple[str, int]]) -> dict[str, socket.socket]:
        """The listening sockets the holder keeps for ``wanted``; those that do not match are closed."""
        answer = self._call({"op": "swap", "give": [], "want": {n: list(a) for n, a in wanted.items()}}, [])
        if answer is None:
            return {}
        reply, fds = answer
        names = reply.get("sockets") or []
        found = {}
        for index, fd in enumerate(fds):
            sock = socket.socket(fileno=fd)
            name = names[index] if index < len(names) else None
            if name in wanted and name not in found and usable(sock, wanted[name]):
                sock.setblocking(True)
                found[name] = sock
            else:
                sock.close()
        return found

    def give(self, sockets: dict[str, socket.socket]) -> bool:
        """Hand the holder a copy of each socket."""
        names = sorted(sockets)
        answer = self._call({"op": "swap", "give": names, "want": {}}, [sockets[n].fileno() for n in names])
        return answer is not None and "error" not in answer[0]

    def release(self) -> None:
        """Close the holder's copies: after this only the manager's own decide when the ports close."""
        self._call({"op": "release"}, [])

    def lost(self) -> bool:
        """Whether the holder closed the connection (it restarted): read when select says readable."""
        if self.conn is None:
            return True
        try:
            data = self.conn.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data:
            return False  # nothing is sent unasked; ignore it
        self.drop()
        return True


def main(argv: list[str] | None = None) -> int:
    from .logs import setup_logging

    parser = argparse.ArgumentParser(prog="kruise-manager socket-holder", description=(
        "keep a copy of the manager's listening sockets so a restart of its container refuses no connection"))
    parser.add_argument("--path", required=True, help="unix socket to serve (in an emptyDir shared with the manager)")
    parser.add_argument("--log-format", default="json", choices=("json", "text"))
    args = parser.parse_args(argv)
    setup_logging(args.log_format, False)
    directory = os.path.dirname(args.path) or "."
    if not os.path.isdir(directory):
        print(f"kruise-manager socket-holder: error: no directory {directory}", file=sys.stderr)
        return 2
    try:
        return serve(args.path)
    except OSError as err:
        print(f"kruise-manager socket-holder: error: {args.path}: {err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
