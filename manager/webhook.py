"""The webhook server: HTTPS (TLS >= 1.2) serving admission.k8s.io/v1 AdmissionReviews.

Routes POSTed reviews to handlers by path and answers ``GET /healthz``. Hostile or broken
input never takes it down: bodies over ``max_body`` get 413, non-JSON or a wrong
kind/version 400, a client that stalls is cut off after ``io_timeout``, a handler that
raises yields a denied response with the reason. Connections are capped
(``max_connections``): past the cap new ones wait in the listen backlog, which the
readiness self-check notices.

Review parsing and the answers live in ``admission``; the certificate reload in
``certwatcher``.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler

from . import metrics
from .admission import BadReview, Handler, errored, parse_review, result_of, review_body
from .certwatcher import CertWatcher

log = logging.getLogger("manager.webhook")

class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kruise-manager"
    sys_version = ""

    def log_message(self, *args) -> None:  # requests are counted in metrics, not logged
        pass

    connection_state: "_Connection"

    def handle_one_request(self) -> None:
        """One request: wait for it up to the idle timeout, then read and answer it within the
        I/O timeout (so keep-alive outlives the client's idle timeout, a stalled request not)."""
        server: WebhookServer = self.server  # type: ignore[assignment]
        state = self.connection_state
        self.connection.settimeout(server.idle_timeout)
        try:
            line = self.rfile.readline(65537)
        finally:
            state.busy = True  # from here on closing this connection would lose a request
        self.connection.settimeout(server.io_timeout)
        if not line:
            self.close_connection = True
            return
        if len(line) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"unsupported method {self.command!r}")
            return
        method()
        self.wfile.flush()
        state.requests += 1
        state.busy = False

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        # Status line, headers and body in one write: one TLS record and one syscall per answer.
        server: WebhookServer = self.server  # type: ignore[assignment]
        if server.should_close(self.connection_state):
            self.close_connection = True  # the client reconnects, to whichever endpoint is ready
        reason = self.responses.get(code, ("",))[0]
        head = f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def _error(self, code: int, message: str, path: str) -> None:
        metrics.WEBHOOK_REQUESTS.labels(path, "bad_request").inc()
        self.close_connection = code in (411, 413) or self.close_connection
        self._send(code, (message + "\n").encode(), "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        server: WebhookServer = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0]
        handler = server.handlers.get(path)
        if handler is None:
            return self._error(404, f"no webhook at {path}", "other")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._error(411, "Content-Length required", path)
        if int(length) > server.max_body:
            return self._error(413, f"body over {server.max_body} bytes", path)
        if "json" not in (self.headers.get("Content-Type") or ""):
            self.rfile.read(int(length))
            return self._error(415, "Content-Type must be application/json", path)
        started = time.perf_counter()
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            self.close_connection = True
            return
        try:
            request = parse_review(body)
        except BadReview as err:
            return self._error(400, str(err), path)
        try:
            response = handler(request)
        except Exception as err:  # a handler bug denies this one request, nothing more
            log.exception("handler for %s failed", path)
            response = errored(500, f"internal error in {path}: {err.__class__.__name__}: {err}")
        result = result_of(response)
        self._send(200, review_body(request, response))
        metrics.WEBHOOK_REQUESTS.labels(path, result).inc()
        metrics.WEBHOOK_LATENCY.labels(path, result).observe(time.perf_counter() - started)


class _Connection:
    """What the server knows of one connection: its socket, age, answers, and whether a request
    is being read or answered (busy) or it waits for the next one (idle)."""

    __slots__ = ("socket", "opened", "requests", "busy")

    def __init__(self, sock: socket.socket):
        self.socket = sock
        self.opened = time.monotonic()
        self.requests = 0
        self.busy = False

    def pending_input(self) -> bool:
        """Bytes of a next request already here (closing now would lose that request)."""
        sock = self.socket
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return True
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False


class WebhookServer:
    """Start with :meth:`start`. :meth:`shutdown` is Go's ``Server.Shutdown`` after a delay:
    every answer closes its connection (``Connection: close``) so the apiserver reconnects to
    another endpoint, new connections are still served for ``delay`` (while the endpoint's
    removal reaches the apiserver), then the listener closes, idle connections are closed, and
    it returns once no request is in flight. A connection is also closed after
    ``max_requests_per_connection`` answers or ``max_connection_age`` seconds (between two
    requests), so the apiserver, which picks an endpoint only when it connects, spreads its
    calls over every ready replica."""

    def __init__(self, bind: str, port: int, cert_dir: str, handlers: dict[str, Handler], *,
                 max_body: int = 8 << 20, io_timeout: float = 10.0, idle_timeout: float = 120.0,
                 max_connections: int = 256, max_requests_per_connection: int = 0,
                 max_connection_age: float = 0.0):
        self.bind, self.port = bind, port
        self.handlers = handlers
        self.max_body = max_body
        self.io_timeout = io_timeout
        self.idle_timeout = idle_timeout
        self.max_requests_per_connection = max_requests_per_connection
        self.max_connection_age = max_connection_age
        self.tls = CertWatcher(os.path.join(cert_dir, "tls.crt"), os.path.join(cert_dir, "tls.key"))
        self._slots = threading.BoundedSemaphore(max_connections)
        self._connections: dict[threading.Thread, _Connection] = {}
        self._connections_lock = threading.Lock()
        self.draining = threading.Event()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.last_heartbeat = time.monotonic()

    def should_close(self, state: _Connection) -> bool:
        """Close the connection after the answer being sent now?"""
        if self.draining.is_set():
            return True
        if self.max_requests_per_connection and state.requests + 1 >= self.max_requests_per_connection:
            return True
        return bool(self.max_connection_age) and time.monotonic() - state.opened >= self.max_connection_age

    def start(self) -> "WebhookServer":
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind, self.port))
        listener.listen(1024)
        listener.settimeout(0.5)
        self._listener = listener
        self._stop.clear()
        self.draining.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="webhook accept", daemon=True)
        self._thread.start()
        log.info("webhook server listening on %s:%d", self.bind, self.port)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            self.last_heartbeat = time.monotonic()
            if not self._slots.acquire(timeout=0.5):
                continue  # at the cap: leave new connections in the backlog
            try:
                conn, address = self._listener.accept()
            except (socket.timeout, TimeoutError):
                self._slots.release()
                continue
            except OSError:
                self._slots.release()
                if self._stop.is_set():
                    break
                continue
            metrics.WEBHOOK_CONNECTIONS.inc()
            threading.Thread(target=self._serve_connection, args=(conn, address), daemon=True).start()

    def _serve_connection(self, conn: socket.socket, address) -> None:
        me = threading.current_thread()
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
            state = _Connection(tls)
            with self._connections_lock:
                self._connections[me] = state
            handler = type("Handler", (_RequestHandler,), {"connection_state": state})
            try:
                handler(tls, address, self)  # serves every request of the connection
            except (OSError, ssl.SSLError, ValueError):
                pass
            finally:
                try:
                    tls.close()
                except OSError:
                    pass
        finally:
            with self._connections_lock:
                self._connections.pop(me, None)
            self._slots.release()

    def _close_listener(self) -> None:
        self._stop.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def close_idle_connections(self) -> int:
        """Close connections that wait for a next request and have none arriving; busy ones
        finish their request first. The number closed."""
        closed = 0
        with self._connections_lock:
            states = list(self._connections.values())
        for state in states:
            if state.busy or state.pending_input():
                continue
            try:
                state.socket.shutdown(socket.SHUT_RDWR)  # wakes the thread waiting in readline
                closed += 1
            except OSError:
                pass
        return closed

    def in_flight(self) -> int:
        with self._connections_lock:
            return sum(1 for state in self._connections.values() if state.busy)

    def connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def shutdown(self, delay: float = 5.0, timeout: float = 10.0) -> None:
        """Drain: see the class docstring. Returns when every connection is closed, or after
        ``delay + timeout``."""
        self.draining.set()
        log.info("webhook draining: answers close their connections; listening %.1fs more", delay)
        self._stop.wait(delay)
        self._close_listener()
        deadline = time.monotonic() + timeout
        while self.connections() and time.monotonic() < deadline:
            self.close_idle_connections()
            time.sleep(0.02)
        log.info("webhook drained", extra={"connections_left": self.connections()})

    def stop(self, drain: float = 5.0) -> None:
        """Stop at once: no delay, in-flight requests get up to ``drain`` seconds."""
        self.shutdown(delay=0.0, timeout=drain)
