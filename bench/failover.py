"""Leader failover of real kruise-manager replicas with upstream's default timings
(lease 15 s, renew deadline 10 s, retry 2 s).

    python bench/failover.py [--runs 5]

Each run: 3 replicas ready; SIGKILL the leader and time until the Lease names another
replica (target: <= leaseDuration + retryPeriod = 17 s); then SIGTERM the new leader and time
until a third holds it (target: <= 1 s). Killed replicas are restarted between runs.
Final line: {"runs": N, "crash_failover_s_p50": …, "crash_failover_s_max": …,
"graceful_handover_s_p50": …, "graceful_handover_s_max": …}
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402
from localcluster.fleet import Fleet  # noqa: E402


def wait_new_holder(fleet: Fleet, old: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        holder = fleet.lease()["holder"]
        if holder and holder != old:
            return time.monotonic() - started
        time.sleep(0.01)
    raise TimeoutError(f"no new leader within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = LocalCluster.start(ClusterOptions(network=True, controller_manager=True))
    crash, graceful = [], []
    try:
        fleet = Fleet.running(cluster, 3)
        for run in range(args.runs):
            leader = None
            while leader is None:
                leader = fleet.leader()
                time.sleep(0.05)
            old = fleet.lease()["holder"]
            leader.signal(signal.SIGKILL)
            crash.append(wait_new_holder(fleet, old, timeout=40))
            leader.process.wait()
            second, second_id = fleet.leader(), fleet.lease()["holder"]
            second.signal(signal.SIGTERM)
            graceful.append(wait_new_holder(fleet, second_id, timeout=20))
            second.process.wait(20)
            for replica in (leader, second):
                fleet.start(replica)
            fleet.wait_ready(timeout=60)
            print(f"run {run + 1}: crash {crash[-1]:.2f}s, graceful {graceful[-1]:.3f}s", file=sys.stderr)
        fleet.stop_all()
    finally:
        cluster.stop()
    print(json.dumps({"runs": len(crash), "crash_failover_s_p50": round(statistics.median(crash), 2),
                      "crash_failover_s_max": round(max(crash), 2),
                      "graceful_handover_s_p50": round(statistics.median(graceful), 3),
                      "graceful_handover_s_max": round(max(graceful), 3)}))


if __name__ == "__main__":
    main()
