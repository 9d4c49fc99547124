"""The webhook server in this process over loopback TLS, for the tests of it
(test_webhook_server.py, test_webhook_drain.py): a server with the manager's defaults and a few
test handlers (the fixtures ``make_server`` and ``server`` are in conftest.py), and raw HTTP/1.1
over a TLS client connection."""

from __future__ import annotations

import json
import socket
import ssl
import time

from localcluster.pki import LocalCA
from manager.admission import allowed, answer_by, patched
from manager.certs import service_dns_names

SERVER_NAME = "kruise-webhook-service.kruise-system.svc"
OPS = [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]


def write_pair(directory, ca: LocalCA) -> None:
    cert, key = ca.issue("kruise-webhook-service",
                         dns_names=tuple(service_dns_names("kruise-webhook-service", "kruise-system")), server=True)
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)
    (directory / "ca.crt").write_bytes(ca.cert_pem)


def review(uid: str = "u-1", **request) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "operation": "CREATE", **request}}).encode()


def fail(request: dict) -> dict:
    raise KeyError("spec")


def slow(request: dict) -> dict:
    time.sleep(float(request.get("seconds", 1.0)))
    return allowed()


def deadline(request: dict) -> dict:
    """Allowed, with the seconds left until the apiserver's deadline as the handler sees it."""
    by = answer_by()
    return {"allowed": True, "warnings": ["none" if by is None else f"{by - time.monotonic():.3f}"]}


HANDLERS = {"/patch": lambda r: patched(OPS, by="test"), "/allow": lambda r: allowed(), "/fail": fail,
            "/slow": slow, "/deadline": deadline}


def connect(server, ca_file=None, **context_options) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca_file or server.cert_dir / "ca.crt"))
    for name, value in context_options.items():
        setattr(context, name, value)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return context.wrap_socket(sock, server_hostname=SERVER_NAME)


def exchange(tls: ssl.SSLSocket, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP request; read one answer (status, headers, body)."""
    tls.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += tls.recv(65536)
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, content_type: str = "application/json", length: int | None = None) -> bytes:
    length_header = f"Content-Length: {len(body) if length is None else length}\r\n" if length != -1 else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{length_header}\r\n").encode() + body


def closed_by_server(tls: ssl.SSLSocket, within: float = 3.0) -> bool:
    tls.settimeout(within)
    try:
        return tls.recv(1024) == b""
    except (ConnectionError, ssl.SSLError):
        return True
