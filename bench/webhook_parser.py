"""The webhook server's own cost per admission before and after its HTTP/1.1 parser changed
(hand-written, then llhttp through ``manager/http1.py``), in one run: the old ``manager`` is taken
from git (the revision before ``manager/http1.py`` was added, or ``--old``) into a temp dir, and
each variant's ``WebhookServer`` runs in a process of its own on loopback TLS, the two
interleaved round by round. The client (this process) sends the apiserver's request (its
headers, a pod's AdmissionReview) on one kept-alive connection at a time, to a handler that
only allows, so what differs is the server's HTTP handling.

    python bench/webhook_parser.py [--requests 2000] [--rounds 6] [--old <revision>]

Then, as many rounds, each variant's framing alone (best of 5 passes over 20,000 copies of the
request, in a fresh process: no socket, TLS or handler), the figure least moved by a busy machine.

Final line: per variant the median over rounds of the server's CPU per request, of the
client's median round trip and of the framing alone, and new/old ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_NAME = "kruise-webhook-service.kruise-system.svc"


def review() -> bytes:
    """A pod CREATE review about the size the apiserver sends (~3 KB)."""
    containers = [{"name": f"c{i}", "image": f"registry.local/app-{i}:1", "resources": {},
                   "env": [{"name": f"E{j}", "value": "x" * 20} for j in range(8)],
                   "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
                  for i in range(3)]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "bench",
                                                           "labels": {"app": "bench", "pod-template-hash": "abc"}},
           "spec": {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "7f0c1b8e-0000-4000-8000-000000000000", "operation": "CREATE",
                                   "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "resource": {"group": "", "version": "v1", "resource": "pods"},
                                   "namespace": "bench", "object": pod}}).encode()


def apiserver_request(body: bytes) -> bytes:
    """The head Go's net/http client writes for the apiserver's webhook call."""
    return (b"POST /allow?timeout=10s HTTP/1.1\r\nHost: " + SERVER_NAME.encode() + b":9876\r\n"
            b"User-Agent: kube-apiserver-admission\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            b"Accept: application/json, */*\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n") + body


# ---- the server process ------------------------------------------------------------------
def serve(cert_dir: str) -> None:
    """Runs with the variant's root first on sys.path: its manager, this checkout's the rest."""
    from manager.admission import allowed
    from manager.options import parse
    from manager.webhook import WebhookServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = parse(["--webhook-bind-address=127.0.0.1", f"--webhook-port={port}", f"--webhook-cert-dir={cert_dir}"],
                    environ={})
    server = WebhookServer(options, {"/allow": lambda r: allowed()}).start()
    print(port, flush=True)
    for line in sys.stdin:  # "mark": print the CPU time so far; EOF: stop
        if line.strip() == "mark":
            print(time.process_time(), flush=True)
    server.stop(drain=0)


def framing(cert_dir: str, count: int) -> None:
    """Prints the best of 5 passes (microseconds per request) at framing the apiserver's request
    alone, as the variant's server does it between recv and handler: no socket, no TLS, no
    handler, so the least noisy figure of the two parsers."""
    from manager.options import parse
    from manager.webhook import WebhookServer

    options = parse(["--webhook-bind-address=127.0.0.1", f"--webhook-cert-dir={cert_dir}"], environ={})
    server = WebhookServer(options, {})
    data = apiserver_request(review())
    try:
        from manager.http1 import Requests
    except ImportError:  # the hand parser: head up to the blank line, then Content-Length bytes
        def frame() -> bytes:
            end = data.find(b"\r\n\r\n")
            request = server._parse_head(None, data[:end])
            return server._body(None, request, data[end + 4:], 0.0)[0]
    else:
        requests = Requests(options.webhook_max_body_bytes)

        def frame() -> bytes:
            requests.feed(data)
            return b"".join(requests.ready.popleft().body)
    assert json.loads(frame())["kind"] == "AdmissionReview"
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            frame()
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    print(best, flush=True)


# ---- the client --------------------------------------------------------------------------
def old_tree(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "manager", "kubekit"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def default_old() -> str:
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", "manager/http1.py"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("error: manager/http1.py is not in git history: pass --old <revision>")
    return added[-1] + "^"


class Server:
    def __init__(self, root: Path, cert_dir: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])}
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(cert_dir)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir())
        self.port = int(self.process.stdout.readline())

    def cpu(self) -> float:
        self.process.stdin.write("mark\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


def connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return context.wrap_socket(sock, server_hostname=SERVER_NAME)


def answer(tls: ssl.SSLSocket) -> bool:
    """Read one answer; whether the server keeps the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += tls.recv(65536)
    return b"connection: close" not in head.lower()


def round_trips(server: Server, context: ssl.SSLContext, raw: bytes, count: int) -> tuple[list[float], float]:
    """Round trips (seconds) of ``count`` requests and the server's CPU seconds for them."""
    tls = connect(server.port, context)
    before = server.cpu()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        tls.sendall(raw)
        keep = answer(tls)
        times.append(time.perf_counter() - started)
        if not keep:
            tls.close()
            tls = connect(server.port, context)
    tls.close()
    return times, server.cpu() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--old", help="the revision whose manager is the old variant (default: before http1.py)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--frame", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.frame:
        framing(args.frame, 20000)
        return 0
    sys.path.insert(0, str(ROOT))
    from localcluster.pki import LocalCA
    from manager.certs import service_dns_names

    revision = args.old or default_old()
    with tempfile.TemporaryDirectory(prefix="webhook-parser-bench-") as work:
        work = Path(work)
        ca = LocalCA("bench-ca")
        cert, key = ca.issue("kruise-webhook-service", server=True,
                             dns_names=tuple(service_dns_names("kruise-webhook-service", "kruise-system")))
        (work / "tls.crt").write_bytes(cert)
        (work / "tls.key").write_bytes(key)
        (work / "ca.crt").write_bytes(ca.cert_pem)
        context = ssl.create_default_context(cafile=str(work / "ca.crt"))
        variants = {"old": old_tree(revision, work / "old"), "new": ROOT}
        servers = {name: Server(root, work) for name, root in variants.items()}
        raw = apiserver_request(review())
        try:
            for server in servers.values():  # warm-up: imports, first TLS contexts, metric children
                round_trips(server, context, raw, 200)
            results: dict[str, dict[str, list[float]]] = {name: {"cpu_us": [], "p50_us": []} for name in servers}
            for index in range(args.rounds):
                order = list(servers) if index % 2 == 0 else list(reversed(servers))
                for name in order:
                    times, cpu = round_trips(servers[name], context, raw, args.requests)
                    results[name]["cpu_us"].append(cpu / args.requests * 1e6)
                    results[name]["p50_us"].append(statistics.median(times) * 1e6)
                print(f"round {index + 1}: " + ", ".join(
                    f"{name} {results[name]['cpu_us'][-1]:.1f} us CPU/request, p50 {results[name]['p50_us'][-1]:.0f} us"
                    for name in servers), file=sys.stderr, flush=True)
        finally:
            for server in servers.values():
                server.stop()
        frame_us: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(args.rounds):
            for name in (list(variants) if index % 2 == 0 else list(reversed(variants))):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(variants[name]), str(ROOT)])}
                out = subprocess.run([sys.executable, __file__, "--frame", str(work)], capture_output=True, text=True,
                                     env=env, cwd=tempfile.gettempdir(), check=True, timeout=300).stdout
                frame_us[name].append(float(out))
    for name, values in frame_us.items():
        results[name]["frame_us"] = values
    summary = {name: {key: round(statistics.median(values), 2) for key, values in figures.items()}
               for name, figures in results.items()}
    summary.update(old_revision=subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision],
                                               capture_output=True, text=True).stdout.strip(),
                   requests=args.requests, rounds=args.rounds,
                   cpu_ratio=round(summary["new"]["cpu_us"] / summary["old"]["cpu_us"], 3),
                   p50_ratio=round(summary["new"]["p50_us"] / summary["old"]["p50_us"], 3),
                   frame_ratio=round(summary["new"]["frame_us"] / summary["old"]["frame_us"], 3))
    print(json.dumps({"bench": "webhook_parser", **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
