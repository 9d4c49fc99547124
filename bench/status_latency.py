"""`kruisectl status -o json` against the kubectl calls an on-call engineer would run by hand
for the same facts, on 1,000 kwok nodes and an upstream-like manager with 3 replicas.

    python bench/status_latency.py [--nodes 1000] [--runs 5]

Both are timed from process start to exit (median of --runs); every timed command must exit 0
(a failed kubectl call or a status with findings ends the bench with its output), so no
figure times an error. Final line:
{"nodes": 1000, "kruisectl_s": …, "kubectl_equivalent_s": …, "ratio": …}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client  # noqa: E402

from localcluster import upstream_layout  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402

NAMESPACE = "kruise-system"


def timed(argvs: list[list[str]], env: dict[str, str]) -> float:
    """Seconds for the commands in turn; one that does not exit 0 ends the bench."""
    started = time.monotonic()
    for argv in argvs:
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise SystemExit(f"error: {' '.join(argv[-6:])} exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()[-500:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, kwok=True))
    try:
        api = cluster.api()
        zones = ("zone-a", "zone-b", "zone-c")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: cluster.create_nodes(1, zones=(zones[i % 3],), prefix=f"n{i:04d}"),
                          range(args.nodes)))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        time.sleep(2)  # the namespace's default ServiceAccount
        upstream_layout.create(api, NAMESPACE, ["n0000-0", "n0001-0", "n0002-0"],
                               "kruise-mutating-webhook-configuration", "kruise-validating-webhook-configuration")
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        kubectl = str(cluster.binary("kubectl"))
        kruisectl = [[sys.executable, "-m", "kruisectl", "status", "-o", "json"]]
        by_hand = [
            [kubectl, "-n", NAMESPACE, "get", "lease", "kruise-manager", "-o", "yaml"],
            [kubectl, "-n", NAMESPACE, "get", "deployment", "kruise-controller-manager", "-o", "wide"],
            [kubectl, "-n", NAMESPACE, "get", "pods", "-l", "control-plane=controller-manager", "-o", "wide"],
            [kubectl, "get", "nodes", "-L", "topology.kubernetes.io/zone"],
            [kubectl, "-n", NAMESPACE, "get", "endpointslices", "-l",
             "kubernetes.io/service-name=kruise-webhook-service"],
            [kubectl, "get", "mutatingwebhookconfiguration,validatingwebhookconfiguration", "-o", "yaml"],
            [kubectl, "-n", NAMESPACE, "get", "secret", "kruise-webhook-certs", "-o", "yaml"],
        ]
        check = subprocess.run(kruisectl[0], env=env, capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"error: kruisectl status exited {check.returncode}: {check.stdout[-1500:]}{check.stderr[-500:]}")
        report = json.loads(check.stdout)
        assert report["leader"]["zone"] == "zone-a" and len(report["replicas"]) == 3, report
        ours = statistics.median(timed(kruisectl, env) for _ in range(args.runs))
        theirs = statistics.median(timed(by_hand, env) for _ in range(args.runs))
    finally:
        cluster.stop()
    print(json.dumps({"nodes": args.nodes, "kruisectl_s": round(ours, 3), "kubectl_equivalent_s": round(theirs, 3),
                      "kubectl_calls": len(by_hand), "ratio": round(ours / theirs, 3)}))


if __name__ == "__main__":
    main()
