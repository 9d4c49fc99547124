"""The HA design under disruption: admissions lost per scenario, with the chart's real managers
(3 replicas, chart defaults: lease 15s/10s/2s, failurePolicy Fail) on hostlet nodes in three
zones, and a steady load of server-side dry-run pod creates that a probe SidecarSet selects.

    python bench/ha_drills.py [--rate 20] [--steady 60] [--scenarios NAME ...] [--skip-machine-loss]
                              [--workloadspread-share FRACTION]

The replicas are containers of ``make image``'s image (built or found in .cache/image) under
the OCI runtime, as ``make demo`` runs them: the process faults below reach the container's
processes (its PID 1, the supervisor, or the worker under it). Only where no runtime can run
them here do they run as plain processes, and the final line says so: ``"runtime"`` is the
runtime's name or ``"process (<why>)"``.

Scenarios: the API-level ones of `kruisectl drill` (leader-crash, replica-crash, eviction,
rollout), `kruisectl upgrade` with a template change, and what a kubelet and kernel would do:
SIGKILL of every process of the leader's / a replica's container (supervisor and worker: the
container restarts, no death proven, the Lease waited out), SIGSTOP past the readiness budget,
the kernel's OOM kill of the container past limits.memory, every container killed at once
(total outage: kube-system and the manager's namespace must still admit), the loss of a node
and of a whole zone (doctor's prediction compared with what happened; zone-loss-leader: the
zone of the leader's node), the leader's node partitioned (processes running) and the leader cut off from its peers only; and faults of the
manager's worker process alone, which its supervisor replaces in the same container
(worker-crash-leader/-replica: SIGKILL, worker-hang-leader/-replica: SIGSTOP,
worker-oom-leader: the OOM killer; budgets from ``drill.default_budget``: leadership back
within 3 s of a proven death). Final line: JSON with "runtime", and per scenario requests,
failed, refused (connection refused, of the failed), in_flight (outstanding when a crash
struck), not_injected, p99_ms, leader_gap_s, recovery_s, its budget and breaches;
total_failed / total_not_injected over every scenario whose own budget allows none (the
scenarios named beside them), total_refused over all, rollout_leader_gap_s,
leader_worker_crash_gap_s, worker_crash_failed and worker_crash_in_flight (over the worker's
SIGKILL and OOM kill: the admissions outstanding when it died are all it may cost),
endpoint_removal_s of each machine loss and partition, and
min_replica_share under steady load (every replica ready during it, a starved one at 0).
With ``--workloadspread-share`` that share of the creates are real pods a WorkloadSpread
spreads over subsets of maxReplicas 2 (``kruisectl.drill.spread``): per scenario
workloadspread_pods / _unplaced / _violations / _delete_failed, and total_workloadspread_violations
(budget 0 in every scenario).
A figure that could not be measured is null and its reason is in "errors"; then the exit
status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from kruisectl import drill  # noqa: E402
from kruisectl.cli import cli  # noqa: E402
from kruisectl.inventory import Names, collect  # noqa: E402
from kubekit import paths  # noqa: E402
from localcluster import faults  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402
from localcluster.hostlet import Hostlet, create_hostlet_nodes  # noqa: E402
from kruisectl.probe import probe_pod, probe_sidecarset  # noqa: E402

NODES = [f"ha-{i}" for i in range(6)]
ZONES = ("zone-a", "zone-b", "zone-c")
NAMESPACE = "kruise-system"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def kruisectl(cluster: LocalCluster, *args: str):
    env = {"KRUISECTL_HELM": str(cluster.binary("helm"))}
    return CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig)], env=env, catch_exceptions=False)


def steady(seconds: float) -> drill.Scenario:
    return drill.Scenario("steady", f"no disruption for {seconds:g}s (traffic shares)", graceful=True,
                          moves_leader=False, act=lambda target, deadline: time.sleep(seconds) or [])


def upgrade(cluster: LocalCluster) -> drill.Scenario:
    def act(target, deadline):
        names = [p["metadata"]["name"] for p in target.pods()]
        result = kruisectl(cluster, "upgrade", "--set", f"manager.podAnnotations.drill={int(time.time())}")
        if result.exit_code != 0:
            raise RuntimeError(f"kruisectl upgrade failed: {result.output}")
        return names

    return drill.Scenario("upgrade", "kruisectl upgrade with a pod-template change (surge-first rollout)",
                          graceful=True, moves_leader=True, act=act)


class ExcludedNamespaces:
    """Dry-run creates in namespaces the webhook skips, while every manager is down, on a thread
    of their own (started once the outage is under way). Figures only once it finished."""

    def __init__(self, api, namespaces: tuple[str, ...], seconds: float):
        self.api, self.namespaces, self.seconds = api, namespaces, seconds
        self.counts = {ns: {"requests": 0, "failed": 0} for ns in namespaces}
        self.crashed: str | None = None
        self._thread = threading.Thread(target=self._run, name="outage-check", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                for ns in self.namespaces:
                    self.counts[ns]["requests"] += 1
                    try:
                        self.api.request("POST", paths.pods(ns), body=probe_pod({"app": "outage-check"}), timeout=10,
                                         dryRun="All")
                    except Exception:  # noqa: BLE001 - counted
                        self.counts[ns]["failed"] += 1
                time.sleep(0.2)
        except BaseException as err:  # noqa: BLE001 - reported: the figures are then unknown
            self.crashed = f"{err.__class__.__name__}: {err}"

    def finish(self, timeout: float) -> tuple[dict | None, list[str]]:
        """(per namespace: requests and failed, errors); None when the check did not finish."""
        if not self._thread.ident:
            return None, ["the excluded-namespace check never started"]
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None, [f"the excluded-namespace check did not finish within {timeout:g}s"]
        if self.crashed:
            return None, [f"the excluded-namespace check failed: {self.crashed}"]
        return self.counts, [f"no create was sent to {ns} during the outage" for ns, c in self.counts.items()
                             if not c["requests"]]


# A worker's death the supervisor proves at once (SIGKILL, the OOM killer): what it may cost is
# what was in flight when it died (worker_crash_failed <= worker_crash_in_flight).
WORKER_DEATHS = ("worker-crash-", "worker-oom-")
# A process crash: of the worker alone, or of the whole container (restarted in its pod).
PROCESS_CRASHES = WORKER_DEATHS + ("process-crash-",)


def summarise(rows: dict[str, dict]) -> dict:
    """The final figures from each scenario's report (``ScenarioResult.to_dict``): totals over
    every scenario whose own budget allows no loss, each scenario's breaches of its budget, and
    every figure that could not be measured (null, its reason in ``errors``)."""
    zero_failed = [name for name, r in rows.items() if r["budget"]["failed"] == 0]
    zero_not_injected = [name for name, r in rows.items() if r["budget"]["notInjected"] == 0]
    steady_shares = (rows.get("steady") or {}).get("shares")
    deaths = [r for name, r in rows.items() if name.startswith(WORKER_DEATHS)]
    crashes = [r for name, r in rows.items() if name.startswith(PROCESS_CRASHES)]
    return {
        "scenarios": {name: {"requests": r["requests"], "failed": r["failed"], "refused": r.get("refused"),
                             "in_flight": r.get("inFlight"), "not_injected": r["notInjected"],
                             "p99_ms": r["p99Ms"], "leader_gap_s": r["leaderGapS"], "recovery_s": r["recoveryS"],
                             "endpoint_removal_s": r["endpointRemovalS"], "min_ready_endpoints": r["minReadyEndpoints"],
                             "min_share": min(r["shares"].values()) if r["shares"] else None,
                             "budget_failed": r["budget"]["failed"],
                             **({"excluded_namespaces": r["excludedNamespaces"]} if "excludedNamespaces" in r else {}),
                             **({"workloadspread_pods": r["workloadspreadPods"],
                                 "workloadspread_unplaced": r["workloadspreadUnplaced"],
                                 "workloadspread_violations": r["workloadspreadViolations"],
                                 "workloadspread_delete_failed": r["workloadspreadDeleteFailed"]}
                                if r.get("workloadspreadPods") is not None else {}),
                             **({"breaches": r["breaches"]} if r["breaches"] else {}),
                             **({"failures": r["failures"]} if r["failures"] else {})}
                      for name, r in rows.items()},
        "total_failed": sum(rows[name]["failed"] for name in zero_failed),
        "total_failed_over": zero_failed,
        "total_not_injected": sum(rows[name]["notInjected"] for name in zero_not_injected),
        "total_not_injected_over": zero_not_injected,
        "breaches": {name: r["breaches"] for name, r in rows.items() if r["breaches"]},
        "total_refused": sum(r.get("refused") or 0 for r in rows.values()),
        # every replica down at once leaves nobody to hold a port: refusals there are expected
        "refused_outside_total_outage": sum(r.get("refused") or 0 for name, r in rows.items()
                                            if name != "total-outage"),
        "leader_process_crash_gap_s": (rows.get("process-crash-leader") or {}).get("leaderGapS"),
        "process_crash_failed": sum(r["failed"] for r in crashes) if crashes else None,
        "process_crash_in_flight": sum(r["inFlight"] for r in crashes)
        if crashes and all(r.get("inFlight") is not None for r in crashes) else None,
        "rollout_leader_gap_s": (rows.get("rollout") or {}).get("leaderGapS"),
        "leader_worker_crash_gap_s": (rows.get("worker-crash-leader") or {}).get("leaderGapS"),
        "worker_crash_failed": sum(r["failed"] for r in deaths) if deaths else None,
        "worker_crash_in_flight": sum(r["inFlight"] for r in deaths)
        if deaths and all(r.get("inFlight") is not None for r in deaths) else None,
        # how long a lost (or partitioned) machine's replica stayed a ready endpoint
        "endpoint_removal_s": {name: r["endpointRemovalS"] for name, r in rows.items()
                               if name.startswith(("node-loss", "zone-loss", "node-partition"))},
        **_spread_totals(rows),
        "steady_shares": sorted(steady_shares.values()) if steady_shares else None,
        "min_replica_share": min(steady_shares.values()) if steady_shares else None,
        "errors": [f"{name}: {e}" for name, r in rows.items() for e in r["errors"]],
    }


def _spread_totals(rows: dict[str, dict]) -> dict:
    """With WorkloadSpread pods in the load: the pods over maxReplicas, summed over the scenarios."""
    spread = [r for r in rows.values() if r.get("workloadspreadPods") is not None]
    if not spread:
        return {}
    return {"total_workloadspread_pods": sum(r["workloadspreadPods"] for r in spread),
            "total_workloadspread_violations": sum(r["workloadspreadViolations"] or 0 for r in spread)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of undisturbed load for the shares")
    parser.add_argument("--scenarios", "--only", dest="only", nargs="*", metavar="NAME",
                        help="run only these scenarios (names as in the final line)")
    parser.add_argument("--skip-machine-loss", action="store_true", help="no node or zone loss, no partition (each takes ~60-90s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a chart value for the install (repeatable), e.g. "
                             "--set manager.webhookServer.maxConnectionAge=2s")
    parser.add_argument("--workloadspread-share", type=float, default=0.0, metavar="FRACTION",
                        help="of the creates, this share real pods of a WorkloadSpread (subsets of maxReplicas 2)")
    args = parser.parse_args()
    if not 0 <= args.workloadspread_share <= 1:
        parser.error("--workloadspread-share must be between 0 and 1")
    started = time.monotonic()
    runtime = None
    cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, network=True))
    hostlet = None
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}  # scenario -> why it did not run
    extra: dict = {}
    try:
        create_hostlet_nodes(cluster, NODES, zones=ZONES)
        zone_of = {n: ZONES[i % len(ZONES)] for i, n in enumerate(NODES)}
        archives, no_image = manager_image()
        hostlet = Hostlet(cluster, NODES, backoff_initial=1, backoff_max=10, heartbeat_interval=5,
                          images=archives).start()
        runtime = hostlet.oci.name if hostlet.oci is not None else f"process ({no_image or hostlet.oci_unavailable})"
        log(f"manager replicas run as: {runtime}")
        values = cluster.workdir / "ha-values.yaml"
        values.write_text(yaml.safe_dump({"manager": {"nodeSelector": {"type": "hostlet"}}}))
        installed = kruisectl(cluster, "install", "--wait", "--timeout", "300", "-f", str(values),
                              *[arg for value in args.set for arg in ("--set", value)])
        if installed.exit_code:
            raise SystemExit(f"install failed: {installed.output}")
        api = cluster.client("ha-drills", pool_size=64)  # as many connections as kruisectl drill keeps
        names = Names(namespace=NAMESPACE)
        options = drill.DrillOptions(rate=args.rate, before_s=3, settle_s=3, timeout_s=240,
                                     webhook_timeout_s=drill.webhook_timeout(api, names, 10),
                                     workloadspread_share=args.workloadspread_share)
        inventory = collect(api, names, timeout=10, extended=True)
        from kruisectl.doctor import diagnose

        per_zone = next(f.evidence for f in diagnose(inventory) if f.check == "zone-failure")["readyReplicasPerZone"]
        scenarios = [steady(args.steady), *drill.SCENARIOS.values(), upgrade(cluster),
                     faults.process_crash(hostlet, NAMESPACE, leader=True),
                     faults.process_crash(hostlet, NAMESPACE, leader=False),
                     faults.hang(hostlet, NAMESPACE, seconds=20), faults.total_outage(hostlet, NAMESPACE),
                     faults.worker_crash(hostlet, NAMESPACE, leader=True),
                     faults.worker_crash(hostlet, NAMESPACE, leader=False),
                     faults.worker_hang(hostlet, NAMESPACE, leader=True),
                     faults.worker_hang(hostlet, NAMESPACE, leader=False)]
        if hostlet.memory_limits_unavailable:
            skipped["oom, worker-oom-leader"] = hostlet.memory_limits_unavailable
            log(f"oom skipped: {hostlet.memory_limits_unavailable}")
        else:
            scenarios += [faults.oom(hostlet, NAMESPACE), faults.worker_oom(hostlet, NAMESPACE, leader=True)]
        lost_zone = ZONES[0]  # zone-loss-zone-a; zone-loss-leader: the leader's, whichever it is
        if args.skip_machine_loss:
            skipped["node-loss, zone-loss, zone-loss-leader, node-partition-leader, peer-partition-leader"] = \
                "--skip-machine-loss"
        else:
            extra["zone_loss_predicted_ready_left"] = sum(per_zone.values()) - per_zone.get(lost_zone, 0)
            scenarios += [faults.node_loss(hostlet, NAMESPACE, seconds=75),
                          faults.zone_loss(hostlet, NAMESPACE, lost_zone, zone_of, seconds=75),
                          faults.zone_loss(hostlet, NAMESPACE, None, zone_of, seconds=75),
                          faults.node_partition(hostlet, NAMESPACE, seconds=45, leader=True),
                          faults.peer_partition(hostlet, NAMESPACE, seconds=20)]
        if args.only:
            skipped.update({s.name: "not in --scenarios" for s in scenarios if s.name not in args.only})
            scenarios = [s for s in scenarios if s.name in args.only]
        duration = drill.lease_duration(api, names, 10)
        with probe_sidecarset(api, options.probe_namespace, 10) as probe, \
                drill.workloadspread_load(api, options, 10) as spread:
            if spread is not None:
                spread.warm(probe.labels, wait=240)
            for scenario in scenarios:
                drill.wait_injecting(api, options.probe_namespace, probe.labels, 10, log, wait=240)
                kruisectl_settled(cluster)
                budget = drill.default_budget(scenario, options, duration)
                log(f"== {scenario.name}: {scenario.summary}")
                checker = None
                if scenario.name == "total-outage":
                    checker = ExcludedNamespaces(api, ("kube-system", NAMESPACE), 8)
                    original = scenario.act

                    def act(target, deadline, original=original, checker=checker):
                        victims = original(target, deadline)
                        checker.start()
                        return victims

                    scenario.act = act
                result = drill.measure(api, names, scenario, options, probe.labels, budget, log, spread)
                row = result.to_dict()
                if checker is not None:
                    row["excludedNamespaces"], checker_errors = checker.finish(15)
                    row["errors"] += checker_errors
                if scenario.name == f"zone-loss-{lost_zone}":
                    extra["zone_loss_observed_ready_left"] = result.min_ready_endpoints
                results[scenario.name] = row
                log(json.dumps(row))
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()
    summary = {"rate": args.rate, "runtime": runtime, "chart_set": args.set, "skipped": skipped,
               **({"workloadspread_share": args.workloadspread_share} if args.workloadspread_share else {}),
               **summarise(results), **extra,
               "bench_s": round(time.monotonic() - started, 1)}
    print(json.dumps(summary))
    if summary["errors"]:
        sys.exit(1)


def manager_image() -> tuple[list[Path], str | None]:
    """([``make image``'s OCI archive], None) (built or found cached), or ([], why not) when it
    cannot be built here: then the replicas run as plain processes, and the report says why."""
    from localcluster import image

    try:
        return [image.build(log_to=sys.stderr).oci_archive], None
    except image.ImageError as err:
        return [], f"no manager image: {str(err).splitlines()[0]}"


def kruisectl_settled(cluster: LocalCluster, timeout: float = 300) -> None:
    """Between scenarios: the Deployment rolled out with every replica ready."""
    client = cluster.client("ha-drills")
    names = Names(namespace=NAMESPACE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = client.get(paths.deployments(NAMESPACE, names.deployment), 10)
        s, want = d.get("status") or {}, d["spec"]["replicas"]
        if (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("readyReplicas") == want
                and s.get("replicas") == want and s.get("updatedReplicas") == want):
            return
        time.sleep(1)
    try:
        why = unsettled(client)
    except Exception as err:  # noqa: BLE001 - the error below matters more than its details
        why = f"(pods not read: {err})"
    raise RuntimeError(f"the manager did not settle between scenarios: {why}")


def unsettled(client) -> str:
    """What kept the manager from settling, for the error: each manager pod's phase, node, the
    conditions not True (readiness gate included, with reason) and its containers' states."""
    pods = client.get(paths.pods(NAMESPACE), 10, labelSelector="control-plane=controller-manager")["items"]
    described = []
    for pod in pods:
        status = pod.get("status") or {}
        conditions = [f"{c['type']}={c['status']}({c.get('reason', '')})" for c in status.get("conditions") or []
                      if c.get("status") != "True"]
        containers = [f"{c['name']}:ready={c.get('ready')},restarts={c.get('restartCount')},"
                      f"{','.join((c.get('state') or {}).keys())}" for c in status.get("containerStatuses") or []]
        deleting = " deleting" if pod["metadata"].get("deletionTimestamp") else ""
        described.append(f"{pod['metadata']['name']}{deleting} on {pod['spec'].get('nodeName')}: "
                         f"{status.get('phase')} {' '.join(conditions)} [{' '.join(containers)}]")
    return "; ".join(described)


if __name__ == "__main__":
    main()
