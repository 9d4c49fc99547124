"""Readiness and liveness on the health port (``--health-probe-addr``, default ``:8000``).

``/readyz`` passes only when every readiness check does: the webhook credential is ready
(files on disk, caBundles hold the CA) AND an HTTPS ``GET /healthz`` to this replica's own
webhook server, verified against that CA under the Service's DNS name, answers within
a second (``webhook_self_check``'s timeout). So a replica whose webhook is stopped, wedged or saturated leaves the
Service's endpoints.

``/healthz`` (liveness) fails when a registered loop stopped beating: a wedged webhook
accept loop or controller worker restarts the container, rather than answering 200 forever.
Both answer ``?verbose`` with one line per check.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

log = logging.getLogger("manager.health")

Check = Callable[[], "str | None"]  # None when healthy, else the reason


def webhook_self_check(host: str, port: int, ca_file: Callable[[], str], server_name: str, timeout: float) -> Check:
    """A readiness check: this replica's webhook answers /healthz over verified TLS."""

    def check() -> str | None:
        try:
            context = ssl.create_default_context(cafile=ca_file())
        except (OSError, ssl.SSLError) as err:
            return f"no CA to verify the webhook with: {err}"
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw:
                raw.settimeout(max(0.05, timeout - (time.monotonic() - started)))
                with context.wrap_socket(raw, server_hostname=server_name) as tls:
                    tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
                    status = tls.recv(64).split(b"\r\n", 1)[0]
        except (OSError, ssl.SSLError) as err:
            return f"webhook https://{host}:{port}/healthz: {err.__class__.__name__}: {err}"
        if b" 200 " not in status + b" ":
            return f"webhook /healthz answered {status.decode(errors='replace')!r}"
        return None

    return check


def heartbeat_check(last_beat: Callable[[], float], max_age: float, what: str) -> Check:
    def check() -> str | None:
        age = time.monotonic() - last_beat()
        return f"{what} has not made progress for {age:.0f}s" if age > max_age else None

    return check


class Health:
    def __init__(self):
        self.readiness: dict[str, Check] = {}
        self.liveness: dict[str, Check] = {}
        self._server: ThreadingHTTPServer | None = None

    @staticmethod
    def evaluate(checks: dict[str, Check]) -> tuple[bool, str]:
        lines, ok = [], True
        for name, check in list(checks.items()):
            try:
                problem = check()
            except Exception as err:  # a broken check is a failed check
                problem = f"check raised {err.__class__.__name__}: {err}"
            ok = ok and problem is None
            lines.append(f"[+]{name} ok" if problem is None else f"[-]{name} failed: {problem}")
        return ok, "\n".join(lines)

    def serve(self, address: str, sock: socket.socket | None = None) -> None:
        """Serve on ``address``, or on ``sock`` (a listening socket the supervisor keeps)."""
        host, _, port = address.rpartition(":")
        health = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                checks = {"/readyz": health.readiness, "/healthz": health.liveness}.get(path)
                if checks is None:
                    self.send_error(404)
                    return
                ok, report = health.evaluate(checks)
                body = (report + ("\nok" if ok else f"\n{path[1:]} check failed")).encode()
                if ok and "verbose" not in self.path:
                    body = b"ok"
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        if sock is None:
            self._server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
        else:
            from .listeners import adopt

            self._server = adopt(ThreadingHTTPServer, Handler, sock)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()
        log.info("health probes on %s (/readyz, /healthz)", address)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
