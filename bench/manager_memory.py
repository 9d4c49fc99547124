"""Resident memory of the leading kruise-manager replica with 1,000 pods and 50 SidecarSets
in its caches (every pod created through the webhook, so it also served 1,000 injections).

    python bench/manager_memory.py [--pods 1000] [--sidecarsets 50]

RSS is read from /proc after the leader's status for every SidecarSet is current; peak
(VmHWM) is reported beside it. Every pod must come back with the sidecars of the SidecarSets
selecting it (a webhook that failed open would leave the manager with less to hold), or the
bench fails. Final line: {"pods": 1000, "sidecarsets": 50, "rss_mib": …}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client  # noqa: E402

from kubekit import paths  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402
from localcluster.fleet import Fleet  # noqa: E402


def memory_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kib = lambda name: float(fields[name].split()[0])  # noqa: E731
    return kib("VmRSS") / 1024, kib("VmHWM") / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--sidecarsets", type=int, default=50)
    args = parser.parse_args()
    cluster = LocalCluster.start(ClusterOptions(network=True))
    try:
        fleet = Fleet.running(cluster, 3)
        api = cluster.api()
        admin = cluster.client("memory-bench", pool_size=16)
        objects = client.CustomObjectsApi(api)
        for i in range(args.sidecarsets):
            objects.create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": f"set-{i}"},
                "spec": {"selector": {"matchLabels": {"group": f"g{i % 10}"}},
                         "containers": [{"name": f"side-{i}", "image": f"registry.local/side:{i}",
                                         "env": [{"name": "LEVEL", "value": "info"}]}],
                         "volumes": [{"name": f"v-{i}", "emptyDir": {}}]}})
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "load"}})
        core.create_namespaced_service_account("load", {"metadata": {"name": "default"}})
        time.sleep(2)  # SidecarSets reach every replica's cache

        def create(i: int) -> bool:
            """Whether the pod came back with every sidecar of the SidecarSets selecting it."""
            pod = admin.request("POST", paths.pods("load"), timeout=30, body={
                "metadata": {"name": f"pod-{i}", "labels": {"group": f"g{i % 10}", "app": "load"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
                                         "env": [{"name": "K", "value": "v" * 64}]}]}})
            expected = {f"side-{j}" for j in range(args.sidecarsets) if j % 10 == i % 10}
            return expected <= {c["name"] for c in pod["spec"]["containers"]}

        with ThreadPoolExecutor(16) as executor:
            injected = sum(executor.map(create, range(args.pods)))
        if injected != args.pods:
            raise SystemExit(f"error: {args.pods - injected} of {args.pods} pods came back without their sidecars")
        matched = {f"set-{j}": sum(1 for i in range(args.pods) if i % 10 == j % 10) for j in range(args.sidecarsets)}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            items = objects.list_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets")["items"]
            if all((s.get("status") or {}).get("matchedPods") == matched[s["metadata"]["name"]] for s in items):
                break
            time.sleep(0.5)
        else:
            raise TimeoutError("SidecarSet status did not catch up")
        time.sleep(2)
        leader = fleet.leader()
        rss, peak = memory_mib(leader.process.pid)
        standby = [memory_mib(r.process.pid)[0] for r in fleet.replicas if r is not leader]
        fleet.stop_all()
    finally:
        cluster.stop()
    print(json.dumps({"leader_peak_mib": round(peak, 1), "standby_rss_mib": [round(s, 1) for s in standby]}),
          file=sys.stderr)
    print(json.dumps({"pods": args.pods, "sidecarsets": args.sidecarsets, "rss_mib": round(rss, 1)}))


if __name__ == "__main__":
    main()
