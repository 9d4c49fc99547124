"""The supervisor: the container's main process (``kruise-manager`` by default). It holds the
listening sockets, runs the manager as a worker process, and replaces a worker the moment it
dies, so a crash costs about a second instead of the Lease's whole duration.

What it does (``--supervise=false`` runs the manager as one process instead):

- It binds the webhook, health and metrics ports once and passes them to every worker (fd
  inheritance). While a worker restarts, new connections wait in the listen backlog: none is
  refused, and the new worker accepts them once its caches are synced (``WebhookServer``'s
  ``serve_when``). Kubelet probes wait there as well instead of failing at once.
- With a socket holder in the pod (``--socket-holder``, :mod:`manager.sockets`) it takes the
  sockets the holder keeps from the pod's previous container, binds only what is missing, and
  gives the holder a copy of each (again whenever the holder restarts), so a death of this
  whole container refuses nothing either; a deliberate stop (SIGTERM, the crash-loop exit)
  releases the holder's copies first.
- It starts the worker, reaps it with ``waitpid`` and starts the next one at once, telling it
  the identities of the workers it reaped (see *Safety*) in a :class:`Handoff`. A worker is a
  ``fork`` of the supervisor without ``exec`` (named ``kruise-worker``): the supervisor
  imported the worker's modules before (:func:`manager.app.preload`), so a restart costs no
  interpreter start and no imports (0.9–2.2 s of the crash path measured on a busy machine;
  the forked worker tries the Lease 0.03–0.06 s after the death). That
  is safe because the supervisor has one thread when it forks (it starts none; checked before
  every fork, and with another thread present it falls back to ``python -m manager`` with
  the :class:`Handoff` in ``$KRUISE_MANAGER_WORKER``), and the child, before it runs the
  worker, resets the supervisor's signal handlers (stop signals are blocked across the fork,
  so none is lost to them) and closes every descriptor but stdio, its sockets and its
  heartbeat pipe, as ``exec`` would have.
- It kills a worker whose liveness checks (the ones ``/healthz`` serves) have not passed for
  ``--worker-heartbeat-timeout`` (the worker beats on a pipe while they pass, so a stopped or
  deadlocked process is noticed as well as a wedged loop), and replaces it: a hung worker costs
  the worker, not the container. The kubelet's liveness probe, on the same checks, needs
  several failed periods (20 s and more with the chart's values), so it only fires when the
  supervisor itself is stuck.
- Past ``--worker-restart-limit`` restarts within ``--worker-restart-window`` the next death
  exits the supervisor with the worker's status (128+signal when killed), so the kubelet's
  back-off and ``restartCount`` still mean a crash loop.
- SIGTERM and SIGINT go to the worker, which shuts down gracefully (it releases the Lease and
  drains); the supervisor closes its copies of the sockets at once, so the worker's own drain
  decides when the ports close, and it exits with the worker's code.
- It holds no API credential and writes nothing: the new worker counts the restarts in its
  metrics (``kruise_manager_worker_restarts_total``) and records a ``WorkerRestarted`` Event on
  its Pod from what the supervisor handed it.

Safety: no two leaders act at once.

1. A worker takes the Lease early only while it still names a worker this supervisor reaped (or
   one from an earlier container of this pod: 4)
   (:class:`manager.lease.Succession`). ``waitpid`` returned for that process: every thread
   of it is gone and its sockets are closed, it sends nothing any more.
2. What it sent before dying: the manager's API connections abort when closed (SO_LINGER 0,
   ``Client.from_kubeconfig(abort_on_close=True)``), so at its death the kernel drops what it
   still held for them instead of delivering it later. A request the apiserver had already
   received finishes there within milliseconds; the successor writes the Lease no sooner than
   ``--worker-succession-delay`` (0.5 s) after the death, and acts only after that write. This
   is the margin the election itself relies on for a leader's last write (lease duration
   minus renew deadline), much shortened because here the death is proven, not presumed. It
   is not shorter still: what it waits for is an apiserver finishing a request it already
   has, which is what slows down on a loaded machine, and nothing bounds it more tightly.
3. Any other candidate: the take-over is an update on the resourceVersion that named the dead
   worker. A candidate that wrote since makes it fail (409) and the successor waits as any
   standby; a standby acts only after its own successful write, which would have changed that
   resourceVersion. So at most one leads, as in any election.

4. A kill of the whole container (SIGKILL of this process, the kubelet's liveness probe, an
   OOM kill of the supervisor): the kubelet starts the container again in the same pod, and
   the Lease says which pod its holder ran in (``kruise.io/leader-pod-uid``, written with
   every take and renewal). The kubelet starts a container only after its previous instance
   exited; the workers died with it (its PID namespace, and PR_SET_PDEATHSIG where there is
   none). So the new container's first worker takes a Lease held from this pod under another
   identity ``--worker-succession-delay`` after the supervisor started (the death was earlier
   still), by the same update on the resourceVersion read as in 3.

What gives no such proof keeps the lease duration: a pod deleted with grace 0 or killed
whole (the next pod has another UID), a lost node or a partition: a replica elsewhere cannot
tell a dead leader from one cut off, so it waits ``leaseDuration`` as before (a graceful stop
releases the Lease and waits for nothing).

Refused connections: none while a worker restarts (this process holds the sockets), none while
the whole container restarts when the pod has a socket holder (it holds them: the connections
sent before the endpoint leaves wait in the backlog for the next container, ~2 s, within the
webhook's 10 s timeout). Without a holder that restart refuses the connections the Service sends
in the ~0.4 s before the endpoint leaves. Still refused or failed: a lost node, a pod deleted
or killed whole (holder and manager go together), and the requests in flight on a dead
process's own connections (reset with it).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable

from .options import Options
from .sockets import HolderLink

log = logging.getLogger("manager.supervisor")

ENV = "KRUISE_MANAGER_WORKER"
WORKER_NAME = "kruise-worker"  # a forked worker's name (/proc/<pid>/comm, ``ps``)
HEARTBEAT_INTERVAL = 1.0
KEEP_DEAD = 16  # identities of reaped workers handed on (a Lease naming an older one has long expired)


def new_identity() -> str:
    """A Lease identity as client-go makes one: ``<pod>_<uuid>`` (kruisectl maps it to the pod)."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4()}"


# ---- pure decisions ----------------------------------------------------------------------
class RestartWindow:
    """At most ``limit`` restarts within any ``window`` seconds."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.times: list[float] = []

    def allow(self, now: float) -> bool:
        """Count a restart at ``now``; False (not counted) when it would be one too many."""
        self.times = [t for t in self.times if now - t < self.window]
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


def describe(status: int) -> tuple[str, str, int]:
    """(reason, words, exit code as a shell reports it) of a ``waitpid`` status."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return "killed", f"killed by {name}", 128 - code
    return "exited", f"exited with code {code}", code


def addresses(options: Options) -> dict[str, tuple[str, int]]:
    """The ports the manager listens on, by name, as the worker would bind them."""
    found = {}
    if options.role in ("all", "webhook"):
        found["webhook"] = (options.webhook_bind_address, options.webhook_port)
    for name, address in (("health", options.health_probe_addr), ("metrics", options.metrics_addr)):
        if address in ("0", ""):
            continue
        host, _, port = address.rpartition(":")
        found[name] = (host.strip("[]") or "0.0.0.0", int(port))
    return found


# ---- the worker's side -------------------------------------------------------------------
@dataclass
class Handoff:
    """What the supervisor tells a worker: its identity, the identities of the workers reaped
    before it (proven dead) and when the last one died, its sockets and heartbeat pipe, and
    the restarts so far."""

    identity: str
    dead: list[str] = field(default_factory=list)
    died_at: float | None = None  # CLOCK_MONOTONIC (one clock for every process of the machine)
    succession_delay: float = 0.0
    sockets: dict[str, int] = field(default_factory=dict)
    heartbeat_fd: int | None = None
    restarts: dict[str, int] = field(default_factory=dict)  # reason -> count
    last: dict | None = None  # how the previous worker ended
    started: float | None = None  # CLOCK_MONOTONIC when the supervisor (this container) started

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_environ(cls, environ=None) -> "Handoff | None":
        text = (os.environ if environ is None else environ).get(ENV)
        return cls(**json.loads(text)) if text else None

    def listener(self, name: str) -> socket.socket | None:
        """The listening socket the supervisor bound for ``name``, or None (taken once: the
        socket object owns the descriptor)."""
        fd = self.sockets.pop(name, None)
        return socket.socket(fileno=fd) if fd is not None else None

    def succession(self, pod_uid: str = ""):
        """The elector's :class:`~manager.lease.Succession`: this container's reaped workers
        and, with ``pod_uid``, holders from earlier containers of this pod; None when there is
        neither."""
        from .lease import Succession

        if self.dead and self.died_at is not None:
            return Succession(frozenset(self.dead), self.died_at + self.succession_delay, pod_uid)
        if pod_uid and self.started is not None:
            return Succession(frozenset(), self.started + self.succession_delay, pod_uid)
        return None

    def start_heartbeat(self, healthy: Callable[[], bool], interval: float = HEARTBEAT_INTERVAL) -> None:
        """Beat on the supervisor's pipe every ``interval`` while ``healthy()`` (the liveness
        checks) holds."""
        if self.heartbeat_fd is None:
            return
        fd = self.heartbeat_fd
        os.set_blocking(fd, False)

        def beat():
            while True:
                try:
                    if healthy():
                        os.write(fd, b".")
                except BlockingIOError:
                    pass  # the supervisor is not reading (stopped): nothing to tell it
                except OSError:
                    return
                except Exception:  # noqa: BLE001 - a broken check is a missed beat
                    log.exception("liveness evaluation failed")
                time.sleep(interval)

        threading.Thread(target=beat, name="supervisor heartbeat", daemon=True).start()

    def report(self, client, namespace: str) -> None:
        """Count the restarts in the metrics and, after a restart, record a Warning Event on
        the Pod (best effort; the supervisor writes nothing itself)."""
        from . import metrics

        for reason, count in self.restarts.items():
            metrics.WORKER_RESTARTS.labels(reason).inc(count)
        if not self.last:
            return
        pod = os.environ.get("POD_NAME")
        if not pod:
            return
        last = self.last
        message = (f"kruise-manager worker {last['identity']} (pid {last['pid']}) {last['how']} after "
                   f"{last['ran_s']:.1f}s; restarted at once as {self.identity}")
        from .events import WARNING, EventRecorder, involved

        pod_object = {"metadata": {"name": pod, "namespace": namespace, "uid": os.environ.get("POD_UID")}}
        EventRecorder(client, repeat_after=0).record(involved(pod_object, "v1", "Pod"), WARNING, "WorkerRestarted",
                                                     message)


# ---- the supervisor's side ---------------------------------------------------------------
def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl, parent: int) -> None:
    """In the forked child: SIGKILL when the supervisor dies (a container runtime kills the
    whole PID namespace with it; without one this keeps the worker from outliving it)."""
    if prctl is not None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def _close_all_but(keep: set[int]) -> None:
    """Close every descriptor not in ``keep``, as ``exec`` closes the non-inheritable ones."""
    low = 0
    for fd in [*sorted(keep), max(os.sysconf("SC_OPEN_MAX"), 65536)]:
        if low < fd:  # closerange(n, n) would close everything from n on
            os.closerange(low, fd)
        low = fd + 1


@dataclass
class _Worker:
    pid: int
    identity: str
    started: float
    heartbeat: int  # read end of its heartbeat pipe; -1 once it reached EOF
    last_beat: float | None = None  # None until its first beat: the watchdog starts then
    hung: bool = False
    signalled: bool = False


class Supervisor:
    def __init__(self, options: Options, argv: list[str], clock: Callable[[], float] = time.monotonic,
                 worker: Callable[[Options, Handoff], int] | None = None):
        """``worker``: the worker's main (:func:`manager.app.run`), run in a forked child;
        None starts every worker by exec of ``python -m manager`` instead."""
        self.options, self.argv, self.clock, self.worker_main = options, list(argv), clock, worker
        self.started = clock()
        self.wake: tuple[int, int] | None = None  # the signal wakeup pipe, closed in a child
        self.window = RestartWindow(options.worker_restart_limit, options.worker_restart_window)
        self.sockets: dict[str, socket.socket] = {}
        self.worker: _Worker | None = None
        self.dead: list[str] = []
        self.died_at: float | None = None
        self.restarts: dict[str, int] = {}
        self.last: dict | None = None
        self.stop_signals: list[int] = []
        self.stopping = False
        self.exit_code: int | None = None
        self.holder = HolderLink(options.socket_holder) if options.socket_holder else None
        self.holder_retry_at = 0.0
        self.holder_backoff = 1.0  # doubles up to 8 s while the holder is absent or does not answer

    # ---- sockets -------------------------------------------------------------------------
    def bind(self) -> None:
        """The sockets the holder keeps (a previous container of this pod bound them), the
        others bound here; the holder then gets a copy of each."""
        wanted = addresses(self.options)
        if self.holder is not None:
            if not self.holder.connect():
                log.info("no socket holder at %s: listening alone (trying it again from time to time)", self.holder.path)
            self.sockets.update(self.holder.fetch(wanted))
            if self.sockets:
                log.info("listening sockets taken from the socket holder", extra={"sockets": sorted(self.sockets)})
        for name, (host, port) in wanted.items():
            if name in self.sockets:
                continue
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as err:
                sock.close()
                raise OSError(f"{name} port {host}:{port}: {err.strerror or err}") from None
            sock.listen(1024)
            self.sockets[name] = sock
        self._hand_to_holder()

    def _hand_to_holder(self) -> None:
        """Give the holder a copy of every socket (it may have restarted empty); without one,
        try again a second later."""
        if self.holder is None or self.stopping or not self.sockets:
            return
        if self.holder.connect() and self.holder.give(self.sockets):
            log.info("the socket holder keeps the listening sockets", extra={"path": self.holder.path})
            self.holder_backoff = 1.0
            return
        self.holder_retry_at = self.clock() + self.holder_backoff
        self.holder_backoff = min(self.holder_backoff * 2, 8.0)

    def _tend_holder(self) -> None:
        if self.holder is None or self.holder.conn is not None or self.clock() < self.holder_retry_at:
            return
        self._hand_to_holder()

    def _release_holder(self) -> None:
        """A deliberate stop: the holder's copies go first, so the worker's drain alone decides
        when the ports close (a death, not this, keeps them open)."""
        if self.holder is not None:
            self.holder.release()
            self.holder.drop()
            self.holder = None

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets = {}

    # ---- the worker ----------------------------------------------------------------------
    def _spawn(self) -> None:
        identity = new_identity()
        read_end, write_end = os.pipe()
        handoff = Handoff(identity, self.dead[-KEEP_DEAD:], self.died_at, self.options.worker_succession_delay,
                          {name: s.fileno() for name, s in self.sockets.items()}, write_end, dict(self.restarts),
                          self.last, self.started)
        prctl, parent = _prctl(), os.getpid()
        fork_only = self.worker_main is not None and threading.active_count() == 1
        if self.worker_main is not None and not fork_only:
            log.warning("the supervisor runs %d threads: starting the worker by exec", threading.active_count())
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the child: nothing here may return into the supervisor's code
            code = 127
            try:
                _die_with_parent(prctl, parent)
                self._become_worker(handoff, read_end, blocked, prctl if fork_only else None)
                if fork_only:
                    code = self._run_worker(handoff)
                else:
                    env = {**os.environ, ENV: handoff.dumps()}
                    os.execve(sys.executable, [sys.executable, "-m", "manager", *self.argv], env)
            except BaseException:  # noqa: BLE001 - said, then the child ends (127)
                traceback.print_exc()
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.worker = _Worker(pid, identity, self.clock(), read_end)
        log.info("worker started", extra={"pid": pid, "identity": identity, "dead_predecessors": len(handoff.dead),
                                          "exec": not fork_only})

    def _become_worker(self, handoff: Handoff, heartbeat_read: int, mask, prctl) -> None:
        """In the child: drop what is the supervisor's (its signal handlers, wakeup pipe,
        heartbeat read end, socket objects: the worker owns the descriptors now), then take
        stop signals again; ``prctl`` given (no exec follows), also the worker's name."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for sock in self.sockets.values():
            sock.detach()
        if self.holder is not None:
            self.holder.detach()
        os.close(heartbeat_read)
        inherited = {*handoff.sockets.values(), handoff.heartbeat_fd}
        for fd in inherited:
            os.set_inheritable(fd, True)
        if prctl is not None:
            _close_all_but({0, 1, 2, *inherited})
            prctl(15, WORKER_NAME.encode(), 0, 0, 0)  # PR_SET_NAME
        elif self.wake is not None:
            for fd in self.wake:
                os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _run_worker(self, handoff: Handoff) -> int:
        """The worker's main in this forked child; its exit code (an uncaught exception is
        printed and exits 1, as the interpreter would)."""
        try:
            code = self.worker_main(self.options, handoff)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:  # noqa: BLE001 - the process ends here either way
            traceback.print_exc()
            code = 1
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        return code

    def _died(self, status: int) -> None:
        worker, now = self.worker, self.clock()
        self.worker = None
        if worker.heartbeat >= 0:
            os.close(worker.heartbeat)
        reason, how, code = describe(status)
        if worker.hung:
            reason, how = "hung", (f"was killed after its liveness checks had not passed for "
                                   f"{self.options.worker_heartbeat_timeout:g}s")
        self.dead.append(worker.identity)
        self.died_at = now
        ran = now - worker.started
        if self.stopping:
            log.info("worker %s", how, extra={"pid": worker.pid, "identity": worker.identity})
            self.exit_code = code
            return
        if not self.window.allow(now):
            log.error("worker %s; the restart limit (%d within %gs) is reached: exiting so the kubelet backs off", how,
                      self.options.worker_restart_limit, self.options.worker_restart_window,
                      extra={"pid": worker.pid, "identity": worker.identity})
            self.exit_code = code or 1
            self._release_holder()
            self._close_sockets()
            return
        log.warning("worker %s after %.1fs; restarting it", how, ran,
                    extra={"pid": worker.pid, "identity": worker.identity, "reason": reason})
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self.last = {"pid": worker.pid, "identity": worker.identity, "how": how, "reason": reason,
                     "ran_s": round(ran, 3)}
        self._spawn()

    def _reap(self) -> None:
        """Reap every child that exited (as PID 1 it inherits orphans too)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.worker is not None and pid == self.worker.pid:
                self._died(status)

    def _read_heartbeat(self) -> None:
        worker = self.worker
        if worker is None or worker.heartbeat < 0:
            return
        try:
            data = os.read(worker.heartbeat, 4096)
        except BlockingIOError:
            return
        if data:
            worker.last_beat = self.clock()
        else:  # EOF: it closed the pipe or is dying; waitpid tells which
            os.close(worker.heartbeat)
            worker.heartbeat = -1

    def _watchdog(self) -> None:
        worker, timeout = self.worker, self.options.worker_heartbeat_timeout
        if worker is None or worker.hung or self.stopping or not timeout or worker.last_beat is None:
            return
        if self.clock() - worker.last_beat > timeout:
            log.error("worker hung: its liveness checks have not passed for %gs; killing it", timeout,
                      extra={"pid": worker.pid, "identity": worker.identity})
            worker.hung = True
            os.kill(worker.pid, signal.SIGKILL)

    def _forward(self) -> None:
        """Pass SIGTERM/SIGINT on to the worker (woken first, should it be stopped)."""
        while self.stop_signals:
            sig = self.stop_signals.pop(0)
            first = not self.stopping
            if first:
                self.stopping = True
                self._close_sockets()  # the worker's drain decides when the ports close
                log.info("stopping the worker", extra={"signal": signal.Signals(sig).name})
            if self.worker is not None:
                try:
                    os.kill(self.worker.pid, signal.SIGCONT)
                    os.kill(self.worker.pid, sig)
                except ProcessLookupError:
                    pass
            if first:  # after the worker has its signal: a stuck holder delays nothing
                self._release_holder()

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.bind()
        except OSError as err:
            log.error("cannot listen: %s", err)
            return 1
        wake_read, wake_write = self.wake = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda sig, _frame: self.stop_signals.append(sig))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the loop
        log.info("supervising the manager", extra={"sockets": {n: s.getsockname()[:2] for n, s in self.sockets.items()},
                                                   "restart_limit": self.options.worker_restart_limit,
                                                   "restart_window_s": self.options.worker_restart_window})
        self._spawn()
        while True:
            self._forward()
            self._reap()
            if self.worker is None:
                return self.exit_code if self.exit_code is not None else 1
            self._watchdog()
            self._tend_holder()
            watched = [wake_read] + ([self.worker.heartbeat] if self.worker.heartbeat >= 0 else [])
            if self.holder is not None and self.holder.conn is not None:
                watched.append(self.holder.fileno())
            readable, _, _ = select.select(watched, [], [], HEARTBEAT_INTERVAL / 2)
            if self.holder is not None and self.holder.fileno() in readable and self.holder.lost():
                log.warning("the socket holder went away; handing it the sockets again once it is back")
                self.holder_retry_at = self.clock()
            if wake_read in readable:
                try:
                    os.read(wake_read, 4096)
                except BlockingIOError:
                    pass
            self._read_heartbeat()
