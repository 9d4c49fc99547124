"""label-zones at scale: 5,000 kwok nodes without zone labels, each with a rack label.

Compares, in the same run on the same cluster:
  * ``kruisectl label-zones --from-label RACK --apply`` (process start to exit);
  * ``kubectl label node N zone=…`` once per node, as an operator would script it: timed on
    the first ``--sample`` nodes and scaled to all of them (``--sample 0``: every node, no
    scaling; on this machine about 80 ms a call, so 5,000 calls take ~7 minutes);
  * ``kubectl label nodes -l RACK=r zone=r`` once per rack value (the selector form).

Every form must label every node it is given, or the bench fails.

    python bench/label_zones.py [--nodes 5000] [--racks 10] [--sample 50]

Final line: {"nodes": 5000, "kruisectl_s": …, "kubectl_per_node_s": …,
"kubectl_per_node_sampled_nodes": 50, "kubectl_per_node_extrapolated": true,
"kubectl_selector_s": …, "speedup_vs_per_node": …}; when extrapolated, ``kubectl_per_node_s``
and ``speedup_vs_per_node`` are the sample's mean per call times ``nodes``, not a timed run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client  # noqa: E402

from localcluster.cluster import KWOK_ANNOTATION, ClusterOptions, LocalCluster  # noqa: E402
from kubekit import kruise

RACK = "example.com/rack"


def create_nodes(cluster: LocalCluster, count: int, racks: int) -> None:
    core = client.CoreV1Api(cluster.api())

    def make(i: int) -> None:
        name = f"bm-{i:05d}"
        core.create_node({
            "metadata": {"name": name, "annotations": {KWOK_ANNOTATION: "fake"},
                         "labels": {"kubernetes.io/hostname": name, RACK: f"rack-{i % racks}", "bench": "zones"}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}},
        }, _preload_content=False)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(make, range(count)))


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--racks", type=int, default=10)
    parser.add_argument("--sample", type=int, default=50,
                        help="per-node kubectl calls timed, then scaled to --nodes (0: every node, no scaling)")
    args = parser.parse_args()
    if args.nodes < 1 or args.racks < 1 or args.sample < 0:
        raise SystemExit("error: --nodes and --racks must be at least 1, --sample at least 0")
    sampled = args.nodes if args.sample == 0 else min(args.sample, args.nodes)

    cluster = LocalCluster.start(ClusterOptions(kwok=True))
    try:
        create_nodes(cluster, args.nodes, args.racks)
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        kubectl = str(cluster.binary("kubectl"))
        unlabel = [kubectl, "label", "nodes", "-l", "bench=zones", f"{kruise.ZONE_LABEL}-", "--overwrite"]

        kruisectl_s = timed([sys.executable, "-m", "kruisectl", "label-zones", "--from-label", RACK,
                             "-l", "bench=zones", "--apply", "-o", "json"], env)
        core = client.CoreV1Api(cluster.api())

        def labelled(what: str, expected: int) -> None:
            count = len(json.loads(core.list_node(label_selector=f"bench=zones,{kruise.ZONE_LABEL}",
                                                  _preload_content=False).data)["items"])
            if count != expected:
                raise SystemExit(f"error: {what} labelled {count} of {expected} nodes")

        labelled("kruisectl", args.nodes)

        timed(unlabel, env)
        labelled("the unlabelling", 0)
        kubectl_selector_s = sum(
            timed([kubectl, "label", "nodes", "-l", f"{RACK}=rack-{r}", f"{kruise.ZONE_LABEL}=rack-{r}"], env)
            for r in range(args.racks)
        )
        labelled("kubectl label -l", args.nodes)

        timed(unlabel, env)
        labelled("the unlabelling", 0)
        sample = [f"bm-{i:05d}" for i in range(sampled)]
        started = time.monotonic()
        for i, name in enumerate(sample):
            subprocess.run([kubectl, "label", "node", name, f"{kruise.ZONE_LABEL}=rack-{i % args.racks}"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        sample_s = time.monotonic() - started
        labelled("kubectl label node", sampled)
        kubectl_per_node_s = sample_s / sampled * args.nodes
    finally:
        cluster.stop()

    print(json.dumps({
        "nodes": args.nodes,
        "kruisectl_s": round(kruisectl_s, 2),
        "kubectl_per_node_s": round(kubectl_per_node_s, 1),
        "kubectl_per_node_sampled_nodes": sampled,
        "kubectl_per_node_sample_s": round(sample_s, 2),
        "kubectl_per_node_extrapolated": sampled < args.nodes,
        "kubectl_selector_s": round(kubectl_selector_s, 2),
        "kubectl_selector_calls": args.racks,
        "speedup_vs_per_node": round(kubectl_per_node_s / kruisectl_s, 1),
    }))


if __name__ == "__main__":
    main()
