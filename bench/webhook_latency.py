"""Pod-create latency through the apiserver with the kruise-manager's pod webhook (3 real
replicas, a matching SidecarSet injected into every pod) minus without it.

    python bench/webhook_latency.py [--creates 1000] [--concurrency 50] [--server manager|go-baseline]

``--server go-baseline`` puts a minimal Go webhook (bench/baseline_webhook: allow, no patch)
behind the same Service instead of the managers: the floor any webhook pays on this machine.

Creates run from ``--concurrency`` threads in interleaved rounds, alternating a namespace the
webhook intercepts and one its namespaceSelector excludes, so drift of the machine hits both
alike. Final line: {"concurrency": 50, "creates": N, "added_p50_ms": …, "added_p99_ms": …,
"errors": 0} (plus the raw percentiles and the manager's own handling time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from kubernetes import client  # noqa: E402

from kruisectl.kube import request_json  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402
from localcluster.fleet import METRICS_PORT, Fleet  # noqa: E402
from manager import MUTATING_CONFIGURATION  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_go_baseline(fleet: Fleet, api) -> None:
    """Swap the managers for the minimal Go webhook, serving the managers' certificate."""
    import base64
    import subprocess

    source = Path(__file__).with_name("baseline_webhook")
    binary = Path(__file__).resolve().parents[1] / ".cache" / "bin" / "baseline-webhook"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, check=True,
                   env={**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"})
    secret = client.CoreV1Api(api).read_namespaced_secret("kruise-webhook-certs", fleet.namespace).data
    fleet.stop_all()
    certs = fleet.cluster.workdir / "baseline-certs"
    certs.mkdir(exist_ok=True)
    for key in ("tls.crt", "tls.key"):
        (certs / key).write_bytes(base64.b64decode(secret[key]))
    for replica in fleet.replicas:
        replica.process = subprocess.Popen(replica.host.wrap(
            [str(binary), f"{replica.ip}:9876", str(certs / "tls.crt"), str(certs / "tls.key")]))
    time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=1000, help="pod creates per side")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--server", choices=("manager", "go-baseline"), default="manager")
    args = parser.parse_args()
    cluster = LocalCluster.start(ClusterOptions(network=True))
    try:
        fleet = Fleet.running(cluster, 3)
        api = cluster.api()
        core = client.CoreV1Api(api)
        if args.server == "go-baseline":
            serve_go_baseline(fleet, api)
        for ns in ("with-webhook", "without-webhook"):
            core.create_namespace({"metadata": {"name": ns}})
            core.create_namespaced_service_account(ns, {"metadata": {"name": "default"}})
        admission = client.AdmissionregistrationV1Api(api)
        admission.patch_mutating_webhook_configuration(MUTATING_CONFIGURATION, [
            {"op": "add", "path": "/webhooks/0/namespaceSelector/matchExpressions/0/values/-", "value": "without-webhook"}])
        client.CustomObjectsApi(api).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "bench"},
            "spec": {"selector": {"matchLabels": {"app": "bench"}}, "containers": [{"name": "side", "image": "s"}]}})
        pool = client.ApiClient(api.configuration)
        pool.configuration.connection_pool_maxsize = args.concurrency * 2
        pool = client.ApiClient(pool.configuration)
        counter = iter(range(10**9))
        lock = threading.Lock()
        errors = []

        def create(ns: str) -> float:
            with lock:
                n = next(counter)
            body = {"metadata": {"name": f"p{n}", "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "app", "image": "a"}]}}
            started = time.perf_counter()
            try:
                pod = request_json(pool, "POST", f"/api/v1/namespaces/{ns}/pods", timeout=30, body=body)
                if ns == "with-webhook" and args.server == "manager" and "side" not in [c["name"] for c in pod["spec"]["containers"]]:
                    errors.append("not injected")
            except Exception as err:  # counted, reported in the final line
                errors.append(str(err)[:200])
            return time.perf_counter() - started

        # Warm up connections and the manager's caches on both sides.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            errors.clear()
            create("with-webhook")
            if not errors:
                break
            time.sleep(0.5)
        with ThreadPoolExecutor(args.concurrency) as executor:
            for ns in ("with-webhook", "without-webhook") * 2:
                list(executor.map(create, [ns] * args.concurrency * 2))
            errors.clear()
            samples = {"with-webhook": [], "without-webhook": []}
            rounds = max(1, args.creates // (args.concurrency * 2))
            cpu_before = sum(cpu_seconds(r.process.pid) for r in fleet.replicas)
            for _ in range(rounds):
                for ns in ("with-webhook", "without-webhook"):
                    samples[ns] += list(executor.map(create, [ns] * args.concurrency * 2))
        server_cpu_s = sum(cpu_seconds(r.process.pid) for r in fleet.replicas) - cpu_before
        handled = 0.0
        count = connections = 0
        for replica in fleet.replicas if args.server == "manager" else []:
            text = requests.get(f"http://{replica.ip}:{METRICS_PORT}/metrics", timeout=5).text
            for line in text.splitlines():
                if line.startswith("kruise_manager_webhook_request_duration_seconds_sum{path=\"/mutate-pod\""):
                    handled += float(line.split()[-1])
                if line.startswith("kruise_manager_webhook_request_duration_seconds_count{path=\"/mutate-pod\""):
                    count += int(float(line.split()[-1]))
                if line.startswith("kruise_manager_webhook_connections_total "):
                    connections += int(float(line.split()[-1]))
        fleet.stop_all()
    finally:
        cluster.stop()
    with_, without = samples["with-webhook"], samples["without-webhook"]
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    print(json.dumps({
        "with_p50_ms": ms(statistics.median(with_)), "with_p99_ms": ms(percentile(with_, 0.99)),
        "without_p50_ms": ms(statistics.median(without)), "without_p99_ms": ms(percentile(without, 0.99)),
        "manager_handling_mean_ms": ms(handled / count) if count else None,
        "admissions": count, "tls_connections": connections,
        "server_cpu_ms_per_admission": round(server_cpu_s * 1000 / len(samples["with-webhook"]), 3),
    }), file=sys.stderr)
    label = {"server": args.server} if args.server != "manager" else {}
    print(json.dumps({**label, "concurrency": args.concurrency, "creates": len(with_),
                      "added_p50_ms": ms(statistics.median(with_) - statistics.median(without)),
                      "added_p99_ms": ms(percentile(with_, 0.99) - percentile(without, 0.99)),
                      "errors": len(errors)}))


if __name__ == "__main__":
    main()
