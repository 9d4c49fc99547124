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

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        # Status line, headers and body in one write: one TLS record and one syscall per answer.
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


class WebhookServer:
    """Start with :meth:`start`; :meth:`stop` closes the listener and lets in-flight
    requests finish (up to ``drain`` seconds)."""

    def __init__(self, bind: str, port: int, cert_dir: str, handlers: dict[str, Handler], *,
                 max_body: int = 8 << 20, io_timeout: float = 10.0, max_connections: int = 256):
        self.bind, self.port = bind, port
        self.handlers = handlers
        self.max_body = max_body
        self.io_timeout = io_timeout
        self.tls = CertWatcher(os.path.join(cert_dir, "tls.crt"), os.path.join(cert_dir, "tls.key"))
        self._handler = type("Handler", (_RequestHandler,), {"timeout": io_timeout})  # idle keep-alive cut-off
        self._slots = threading.BoundedSemaphore(max_connections)
        self._active: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.last_heartbeat = time.monotonic()

    def start(self) -> "WebhookServer":
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind, self.port))
        listener.listen(1024)
        listener.settimeout(0.5)
        self._listener = listener
        self._stop.clear()
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
            thread = threading.Thread(target=self._serve_connection, args=(conn, address), daemon=True)
            self._active.add(thread)
            thread.start()

    def _serve_connection(self, conn: socket.socket, address) -> None:
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
            try:
                self._handler(tls, address, self)  # serves every request of the connection
            except (OSError, ssl.SSLError, ValueError):
                pass
            finally:
                try:
                    tls.close()
                except OSError:
                    pass
        finally:
            self._active.discard(threading.current_thread())
            self._slots.release()

    def stop(self, drain: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + drain
        for thread in list(self._active):
            thread.join(max(0.0, deadline - time.monotonic()))
