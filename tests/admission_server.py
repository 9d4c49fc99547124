"""A TLS admission webhook for tests on the standard library alone, so a test can run it in a
thread or as a script in a host's network namespace (tests/webhook_echo.py): each
AdmissionReview's request goes to ``answer``, and its response (the request's uid added) is
sent back."""

import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def admission_server(host: str, port: int, cert, key, answer) -> ThreadingHTTPServer:
    """A server bound to ``host``:``port`` (0: a free one) with TLS from ``cert``/``key``, not yet
    serving; ``answer(request) -> response``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["request"]
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                               "response": {"uid": request["uid"], **answer(request)}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
