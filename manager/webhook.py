"""The webhook server: HTTPS (TLS >= 1.2) serving admission.k8s.io/v1 AdmissionReviews.

Routes POSTed reviews to handlers by path and answers ``GET /healthz``. Hostile or broken
input never takes it down: bodies over ``max_body`` get 413, non-JSON or a wrong
kind/version 400, a client that stalls is cut off after ``io_timeout``, a handler that
raises yields a denied response with the reason. Connections are capped
(``max_connections``): past the cap new ones wait in the listen backlog, which the
readiness self-check notices.

One thread per connection, as Go's one goroutine per connection: a slow handler holds only
its own connection. Threads are reused: the apiserver keeps fewer idle connections than it
opens at high concurrency, so it reconnects all the time, and a new thread per connection cost
more than the TLS handshake. HTTP/1.1 is framed by llhttp (``http1``; ``http.server``'s header
parsing through ``email`` cost more than the rest of an admission); a body is read only with a
Content-Length. Review parsing and the answers live in ``admission``; the certificate reload in
``certwatcher``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import select
import socket
import ssl
import struct
import termios
import threading
import time
from typing import Callable

from . import metrics
from .http1 import Request, Requests
from .admission import BadReview, Handler, answering_by, errored, parse_review, result_of, review_body
from .certwatcher import CertWatcher
from .options import Options

log = logging.getLogger("manager.webhook")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required", 413: "Content Too Large",
            414: "URI Too Long", 415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}
_TEXT = "text/plain; charset=utf-8"
_CLOSE = "Connection: close\r\n"
# Past the drain delay the listener closes once no admission has come for this long: the
# apiserver still routing here means the endpoint's removal has not reached it yet.
LISTEN_QUIET_S = 1.0


class _Closed(Exception):
    """The client went away or stalled past the I/O timeout: close without an answer."""


class _Connection:
    """What the server knows of one connection, from its accept on: its socket (TLS once the
    handshake is done), age, answers, and whether a request is being read or answered (busy) or
    it waits for the next one."""

    __slots__ = ("socket", "opened", "requests", "busy", "http", "deadline")

    def __init__(self, sock: socket.socket, body_limit: int):
        self.socket = sock
        self.opened = time.monotonic()
        self.requests = 0
        self.busy = False
        self.http = Requests(body_limit)  # holds what was read past the current request (pipelined ones)
        self.deadline = 0.0  # when the request being read must be whole

    def idle(self) -> bool:
        """Closing it now loses nothing: it answered every request it carried, none is on its way,
        and its last answer has reached the client. A connection with no answer yet was opened for
        a request (the apiserver dials for one): it is not idle, however quiet."""
        return not self.busy and self.requests > 0 and not self.pending_input() and _unacknowledged(self.socket) <= 0

    def pending_input(self) -> bool:
        """Bytes of a next request already here (closing now would lose that request)."""
        sock = self.socket
        if self.http.ready or self.http.mid_request():
            return True
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return True
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that the peer has not acknowledged yet (Linux SIOCOUTQ); -1 when it
    cannot be read (a socket already closed: nothing left to lose)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return -1


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (its owner's recv wakes to the end, its close sends RST). A
    client that writes on it later fails in the write, before anything is sent, which Go's
    transport retries on another connection; after a FIN its write would go out and it would read
    EOF, which it does not retry for a POST. Only for an idle connection: a reset drops what the
    peer has not acknowledged."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.shutdown(socket.SHUT_RD)


class WebhookServer:
    """Start with :meth:`start`. :meth:`shutdown` is Go's ``Server.Shutdown`` after a delay:
    every answer closes its connection (``Connection: close``) so the apiserver reconnects to
    another endpoint, new connections are still served for ``delay`` (while the endpoint's
    removal reaches the apiserver) and after it until no admission has come for
    ``LISTEN_QUIET_S`` (the removal is slower on a loaded machine), then what waits in the
    backlog is accepted and the listener closes, idle connections are reset, and it returns
    once no connection is left (one still in its handshake, or not past its first request,
    counts: it carries a request). A connection is also closed after
    ``--webhook-max-requests-per-connection`` answers or ``--webhook-max-connection-age``
    (between two requests), so the apiserver, which picks an endpoint only when it connects,
    spreads its calls over every ready replica."""

    def __init__(self, options: Options, handlers: dict[str, Handler]):
        """Every setting comes from the manager's own :class:`~manager.options.Options`, so a
        server built here (or in a test) is the one ``kruise-manager`` runs: no second set of
        defaults."""
        self.options = options
        self.bind, self.port = options.webhook_bind_address, options.webhook_port
        self.handlers = handlers
        self.max_body = options.webhook_max_body_bytes
        self.io_timeout = options.webhook_io_timeout
        self.idle_timeout = options.webhook_idle_timeout
        self.max_requests_per_connection = options.webhook_max_requests_per_connection
        self.max_connection_age = options.webhook_max_connection_age
        cert_dir = options.webhook_cert_dir
        self.tls = CertWatcher(os.path.join(cert_dir, "tls.crt"), os.path.join(cert_dir, "tls.key"))
        self._slots = threading.BoundedSemaphore(options.webhook_max_connections)
        self._connections: set[_Connection] = set()  # from accept to close
        self._connections_lock = threading.Lock()
        self._metrics: dict[tuple[str, str], tuple] = {}
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()  # accepted sockets for idle workers
        self._idle_workers = 0
        self._workers_lock = threading.Lock()
        self.draining = threading.Event()
        self._drain_lock = threading.Lock()
        self._drained = threading.Event()  # set once a drain has ended
        self._stop = threading.Event()
        self._wake: socket.socket | None = None  # a byte on it ends the accept loop's wait (on _woken)
        self._woken: socket.socket | None = None
        self._backlog_deadline = 0.0
        self._listener: socket.socket | None = None
        self._owns_listener = False
        self._serve_when: Callable[[], bool] | None = None
        self._thread: threading.Thread | None = None
        self.last_heartbeat = time.monotonic()
        self.last_admission = 0.0  # monotonic time the last POST arrived

    def should_close(self, state: _Connection) -> bool:
        """Close the connection after the answer being sent now?"""
        if self.draining.is_set():
            return True
        if self.max_requests_per_connection and state.requests + 1 >= self.max_requests_per_connection:
            return True
        return bool(self.max_connection_age) and time.monotonic() - state.opened >= self.max_connection_age

    def start(self, listener: socket.socket | None = None,
              serve_when: Callable[[], bool] | None = None) -> "WebhookServer":
        """Listen (on ``listener`` when given: a socket the supervisor bound and keeps, so
        connections wait in its backlog while no worker accepts) and serve. Nothing is accepted
        before ``serve_when()`` holds (the caches are synced): what waits, waits in the backlog."""
        self._owns_listener = listener is None
        if listener is None:
            family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.bind, self.port))
            listener.listen(1024)
        listener.setblocking(False)  # the accept loop waits in select, with the wake-up socket
        self._serve_when = serve_when
        self._listener = listener
        self._stop.clear()
        self.draining.clear()
        self._drained.clear()
        self._wake, self._woken = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="webhook accept", daemon=True)
        self._thread.start()
        log.info("webhook server listening on %s:%d", self.bind, self.port)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            self.last_heartbeat = time.monotonic()
            if self._serve_when is not None:
                if not self._serve_when():
                    self._stop.wait(0.02)
                    continue
                self._serve_when = None
                log.info("webhook server accepting")
            if not self._slots.acquire(timeout=0.5):
                continue  # at the cap: leave new connections in the backlog
            try:
                readable = select.select([self._listener, self._woken], [], [], 0.5)[0]
            except (OSError, ValueError):
                readable = []
            if self._listener not in readable or not self._accept_one():
                self._slots.release()
        if self._serve_when is None:
            self._take_backlog()

    def _accept_one(self) -> bool:
        """Accept one connection (its slot already taken) and hand it over; False when none waited."""
        try:
            conn, _address = self._listener.accept()
        except OSError:  # none waiting (another process took it), or the listener is gone
            return False
        conn.setblocking(True)
        metrics.WEBHOOK_CONNECTIONS.inc()
        state = _Connection(conn, self.max_body)
        with self._connections_lock:  # counted from here: a drain waits for it
            self._connections.add(state)
        self._dispatch(state)
        return True

    def _take_backlog(self) -> None:
        """Accept what already waits in the listen backlog, a slot each, until the drain's
        deadline: closing the listener would reset every one of them (the apiserver, which dialed
        before it learnt the endpoint was leaving, reads "connection reset by peer")."""
        while self._slots.acquire(timeout=max(0.0, self._backlog_deadline - time.monotonic())):
            if not self._accept_one():
                self._slots.release()
                return

    def _dispatch(self, state: _Connection) -> None:
        """Hand the connection to an idle worker thread, or start one."""
        with self._workers_lock:
            if self._idle_workers:
                self._idle_workers -= 1
                self._handoff.put(state)
                return
        threading.Thread(target=self._worker, args=(state,), name="webhook connection", daemon=True).start()

    def _worker(self, state: _Connection | None) -> None:
        while state is not None:
            self._serve_connection(state)
            state = self._next_connection()

    def _next_connection(self) -> _Connection | None:
        """The next connection handed over, or None when none came within the idle timeout."""
        with self._workers_lock:
            self._idle_workers += 1
        while True:
            try:
                return self._handoff.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._workers_lock:
                    if self._handoff.empty():  # else one was handed over as the wait ended: take it
                        self._idle_workers -= 1
                        return None

    def _serve_connection(self, state: _Connection) -> None:
        conn = state.socket
        try:
            context = self.tls.context()
            if context is None:
                conn.close()
                return
            conn.settimeout(self.io_timeout)
            # Answers are small: never let Nagle hold one back waiting for a delayed ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                tls = context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
            state.socket = tls
            try:
                while self._serve_one(state):
                    pass
            except (_Closed, OSError, ssl.SSLError, ValueError):
                pass
            finally:
                try:
                    tls.close()
                except OSError:
                    pass
        finally:
            with self._connections_lock:
                self._connections.discard(state)
            self._slots.release()

    # ---- one request -----------------------------------------------------------------
    def _serve_one(self, state: _Connection) -> bool:
        """Read and answer one request; False when the connection is to be closed. The wait
        for a request is bounded by the idle timeout; once its first byte is here, the whole
        request must arrive within the I/O timeout (keep-alive outlives the client's idle
        timeout, a stalled request does not)."""
        request = self._next_request(state)
        if request is None:
            return False
        if request.method == "POST":
            keep = self._post(state, request)
        else:
            keep = self._other(state, request)
        state.requests += 1
        state.busy = False
        return keep

    def _next_request(self, state: _Connection) -> Request | None:
        """The next request whose head is complete; None when the connection is to be closed
        (the client left, or its input got its HTTP error)."""
        sock, http = state.socket, state.http
        if not http.ready and http.error is None and not http.mid_request():
            sock.settimeout(self.idle_timeout)
            try:
                data = sock.recv(65536)
            finally:
                state.busy = True  # from here on closing this connection would lose a request
            if not data:
                return None
            http.feed(data)
        state.busy = True
        state.deadline = time.monotonic() + self.io_timeout
        while not http.ready and http.error is None:
            http.feed(self._recv(sock, state.deadline))
        if http.ready:
            return http.ready.popleft()
        status, text = http.error
        self._text(state, status, text + "\n", close=True)
        return None

    def _recv(self, sock, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Closed()
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise _Closed() from None
        if not chunk:
            raise _Closed()
        return chunk

    def _body(self, state: _Connection, request: Request) -> bytes:
        """The whole body (of a request whose Content-Length is within ``max_body``)."""
        while not request.complete:
            if state.http.error is not None:
                raise _Closed()
            state.http.feed(self._recv(state.socket, state.deadline))
        return b"".join(request.body)

    def _other(self, state: _Connection, request: Request) -> bool:
        if request.chunked or (request.length or 0) > self.max_body:
            request.keep_alive = False  # a body we will not read: nothing after it can be framed
        elif request.length:
            self._body(state, request)
        if request.method != "GET":
            return self._text(state, 501, f"unsupported method {request.method!r}\n", request=request)
        if request.path == "/healthz":
            return self._text(state, 200, "ok", request=request)
        return self._text(state, 404, "not found\n", request=request)

    def _post(self, state: _Connection, request: Request) -> bool:
        path = request.path
        handler = self.handlers.get(path)
        framed = request.length is not None and not request.chunked
        started = time.perf_counter()
        self.last_admission = time.monotonic()
        if framed and request.keep_body:
            body = self._body(state, request)
        else:
            body, request.keep_alive = b"", False  # a body we will not read: nothing after it can be framed
        if handler is None:
            return self._error(state, request, 404, f"no webhook at {path}", "other")
        if not framed:
            return self._error(state, request, 411, "Content-Length required", path)
        if not request.keep_body:
            return self._error(state, request, 413, f"body over {self.max_body} bytes", path)
        if "json" not in request.content_type:
            return self._error(state, request, 415, "Content-Type must be application/json", path)
        try:
            review = parse_review(body)
        except BadReview as err:
            return self._error(state, request, 400, str(err), path)
        try:
            with answering_by(self.last_admission + request.timeout if request.timeout else None):
                response = handler(review)
        except Exception as err:  # a handler bug denies this one request, nothing more
            log.exception("handler for %s failed", path)
            response = errored(500, f"internal error in {path}: {err.__class__.__name__}: {err}")
        result = result_of(response)
        keep = self._send(state, 200, review_body(review, response), "application/json", request.keep_alive)
        counter, histogram = self._metric(path, result)
        counter.inc()
        histogram.observe(time.perf_counter() - started)
        return keep

    # ---- answers -----------------------------------------------------------------------
    def _metric(self, path: str, result: str) -> tuple:
        """The request counter and latency histogram of (path, result), looked up once."""
        found = self._metrics.get((path, result))
        if found is None:
            found = self._metrics[(path, result)] = (metrics.WEBHOOK_REQUESTS.labels(path, result),
                                                     metrics.WEBHOOK_LATENCY.labels(path, result))
        return found

    def _error(self, state: _Connection, request: Request, code: int, message: str, path: str) -> bool:
        self._metric(path, "bad_request")[0].inc()
        return self._send(state, code, (message + "\n").encode(), _TEXT, request.keep_alive)

    def _text(self, state: _Connection, code: int, text: str, request: Request | None = None,
              close: bool = False) -> bool:
        keep = request is not None and request.keep_alive and not close
        return self._send(state, code, text.encode(), _TEXT, keep)

    def _send(self, state: _Connection, code: int, body: bytes, content_type: str, keep_alive: bool) -> bool:
        """Status line, headers and body in one write: one TLS record and one syscall per
        answer. Returns whether the connection stays open."""
        if keep_alive and self.should_close(state):
            keep_alive = False  # the client reconnects, to whichever endpoint is ready
        head = (f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n{'' if keep_alive else _CLOSE}\r\n")
        state.socket.settimeout(self.io_timeout)
        state.socket.sendall(head.encode("latin-1") + body)
        return keep_alive

    # ---- stopping ----------------------------------------------------------------------
    def _close_listener(self, deadline: float) -> None:
        """Stop accepting: the accept loop takes what waits in the backlog (until ``deadline``)
        and ends, then the listener closes (a lent one too: the supervisor's copy, if it still
        holds one, keeps the port for the next worker)."""
        self._backlog_deadline = deadline
        self._stop.set()
        if self._wake is not None:
            try:
                self._wake.send(b"x")
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(2.0, deadline - time.monotonic() + 1.0))
        for sock in (self._listener, self._wake, self._woken):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def close_idle_connections(self) -> int:
        """Reset the idle connections (:meth:`_Connection.idle`); the others finish their request
        first. The number closed."""
        closed = 0
        with self._connections_lock:
            states = list(self._connections)
        for state in states:
            if not state.idle():
                continue
            try:
                _reset(state.socket)
                closed += 1
            except OSError:
                pass
        return closed

    def connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def shutdown(self, delay: float | None = None, timeout: float | None = None) -> None:
        """Drain: see the class docstring. Returns when every connection is closed, or after
        ``delay + timeout`` (by default ``--webhook-drain-delay`` and ``--webhook-io-timeout``)."""
        delay = self.options.webhook_drain_delay if delay is None else delay
        timeout = self.io_timeout if timeout is None else timeout
        with self._drain_lock:
            first = not self.draining.is_set()
            self.draining.set()
        if not first:  # a second call (SIGTERM during a drain) returns with the first
            self._drained.wait(delay + timeout + 3.0)
            return
        log.info("webhook draining: answers close their connections; listening %.1fs more", delay)
        self._stop.wait(delay)
        deadline = time.monotonic() + timeout
        while delay and time.monotonic() < deadline and time.monotonic() - self.last_admission < LISTEN_QUIET_S:
            time.sleep(0.05)  # admissions still come: the endpoint's removal has not reached the apiserver
        self._close_listener(deadline)
        while self.connections() and time.monotonic() < deadline:
            self.close_idle_connections()
            time.sleep(0.02)
        log.info("webhook drained", extra={"connections_left": self.connections()})
        self._drained.set()

    def stop(self, drain: float | None = None) -> None:
        """Stop at once: no delay, in-flight requests get up to ``drain`` seconds (by default
        the I/O timeout)."""
        self.shutdown(delay=0.0, timeout=drain)
