"""How long the local control plane takes: a cold build of every binary (empty Go build cache
and binary cache, modules already downloaded), a warm start of all components with cached
binaries, and the apiserver's own time to ready.

    python bench/cluster_startup.py [--skip-cold]

Final line: {"cold_build_s": …, "warm_start_s": …, "apiserver_ready_s": …, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localcluster import build  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402


def cold_build() -> tuple[float, float]:
    """Seconds and peak RSS (MiB, largest single build process) of a build from nothing."""
    with tempfile.TemporaryDirectory(prefix="kruisectl-cold-") as scratch:
        env = dict(os.environ, GOCACHE=f"{scratch}/gocache", KRUISECTL_CACHE_DIR=f"{scratch}/cache")
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "localcluster", "build"], env=env, check=True,
                       cwd=build.REPO_ROOT, stdout=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, peak_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold build (takes minutes)")
    parser.add_argument("--runs", type=int, default=3, help="warm starts to take the median of")
    args = parser.parse_args()

    result: dict[str, float | int | None] = {"cold_build_s": None, "build_peak_rss_mib": None}
    if not args.skip_cold:
        cold, peak = cold_build()
        result.update(cold_build_s=round(cold, 1), build_peak_rss_mib=round(peak))

    build.ensure_binaries()
    warm, ready = [], []
    for _ in range(max(1, args.runs)):
        started = time.monotonic()
        cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, kwok=True))
        warm.append(time.monotonic() - started)
        ready.append(cluster.apiserver_ready_s)
        cluster.stop()
    warm.sort()
    ready.sort()
    result.update(
        warm_start_s=round(warm[len(warm) // 2], 2),
        apiserver_ready_s=round(ready[len(ready) // 2], 2),
        warm_runs=len(warm),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
