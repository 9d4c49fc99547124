"""Pod-create latency with a WorkloadSpread on the admission path: this project's manager
against upstream's kruise-manager v1.8.3, in ONE run on ONE cluster (the set-up, the Service
swap and the CPU reading of ``bench/webhook_latency.py``), so the machine's drift hits both
alike. A WorkloadSpread's webhook writes the spread's status (``creatingPods``) before it
allows a pod, so its latency is a status write's, not an injection's.

    python bench/workloadspread_latency.py [--rounds 8] [--per-round 100] [--c1-rounds 8] [--c1-per-round 30] [--before REV] [--skip-upstream]

Two kinds of pods, the same pod owned by a ReplicaSet (``pod-template-hash`` set, a
generateName, as a ReplicaSet makes them):

- ``ws``: in a namespace whose WorkloadSpread targets that ReplicaSet with limited subsets
  (``maxReplicas`` larger than any turn creates), so every admission takes a place in a
  subset and writes the status;
- ``plain``: in a namespace without a WorkloadSpread (the baseline: the pod webhook without
  WorkloadSpread's work), so ``ws`` minus ``plain`` is what the status write costs.

Creates are real (no ``dryRun``): upstream's webhook, and ours as it, skips WorkloadSpread on
a dry run (``pkg/webhook/pod/mutating/workloadspread.go``: "Operation is a dry run, then
admit"), so a dry run would write nothing. The pods are never scheduled (a scheduler name
nobody serves), the ReplicaSet never exists and the garbage collector is off, so no
controller deletes a pod (a deletion would take the pod webhook's other path). Every side's
turn starts with a fresh WorkloadSpread (the previous one deleted), so the status each write
sends back grows only with the turn's own pods; the warm-up waits until the serving side
matches pods to it.

Sides: ``floor`` (the same creates in a namespace the pod webhook skips), ``ours`` (three
replicas), ``upstream`` (three replicas on hostlet nodes) and, with ``--before REV``, this
manager at revision REV (three more replicas); rounds interleave them, as in
``webhook_latency.py``. Both managers' leaders run their WorkloadSpread controllers
throughout (they watch the same objects whoever serves), so neither side's turn is quieter.
A ws create the webhook refuses (its status write still conflicting after upstream's four
tries) is counted per side and its time is in the quantiles.

Final line: per concurrency and kind, p50/p95/p99 per side, the same less the floor, ratios
of ours over upstream; per side the status write's cost (``ws`` minus ``plain``) and its
ratio; CPU per admission; the status entries found against the admissions. A timed create
that fails, a ``ws`` pod not matched to the turn's WorkloadSpread, a ``plain`` pod matched, a
request served by a side that was not serving, or a turn whose status recorded none of its
pods makes the exit status 1 (the figures are printed).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import webhook_latency as base  # noqa: E402
from webhook_latency import Side, percentile, ratio  # noqa: E402

from kubekit import paths  # noqa: E402
from kubekit.api import ApiError  # noqa: E402
from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION, ZONE_LABEL  # noqa: E402
from localcluster.cluster import ClusterOptions  # noqa: E402
from localcluster.fleet import Fleet  # noqa: E402

SIDES = ("floor", "ours", "upstream")  # and "before" with --before
BEFORE_ACCOUNT = "kruise-manager-py-before"
KINDS = ("ws", "plain")
WS_NS, PLAIN_NS, FLOOR_NS = "bench-ws", "bench-plain", base.FLOOR_NS
NAMESPACE_OF = {"ws": WS_NS, "plain": PLAIN_NS}
TARGET = "bench-rs"
OWNER_UID = "00000000-0000-4000-8000-0000000000b5"  # no such ReplicaSet: no controller adopts the pods
VERSION = "bench"  # the pods' pod-template-hash
SUBSETS = ("subset-a", "subset-b")
MAX_REPLICAS = 100000  # never reached: every admission takes a place and writes
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def workloadspread(name: str, max_replicas: int = MAX_REPLICAS) -> dict:
    """The turn's spread: two limited subsets on zone labels; the first takes every pod."""
    def subset(name: str, zone: str) -> dict:
        return {"name": name, "maxReplicas": max_replicas,
                "requiredNodeSelectorTerm": {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In",
                                                                   "values": [zone]}]}}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread", "metadata": {"name": name},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": TARGET},
                     "subsets": [subset(SUBSETS[0], "zone-a"), subset(SUBSETS[1], "zone-b")]}}


def replicaset_pod() -> dict:
    """A pod as a ReplicaSet creates it (generateName, pod-template-hash, controller reference)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{TARGET}-", "labels": {"app": "bench-ws", "pod-template-hash": VERSION},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": TARGET,
                                              "uid": OWNER_UID, "controller": True}]},
            "spec": {"automountServiceAccountToken": False, "schedulerName": "bench-none",
                     "containers": [{"name": "app", "image": "registry.local/app:1"}]}}


def matched(pod: dict) -> dict | None:
    """The pod's matched-workloadspread annotation ({"name", "subset", ...}), None without one."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(MATCHED_WORKLOADSPREAD_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def creating_entries(ws: dict) -> int:
    """Pods recorded in the status's creatingPods, over every version and subset."""
    status = (ws or {}).get("status") or {}
    names = set()
    for statuses in (status.get("versionedSubsetStatuses") or {}).values():
        for subset in statuses or []:
            names.update((subset.get("creatingPods") or {}).keys())
    return len(names)


def status_puts(metrics: str) -> dict[str, float]:
    """The apiserver's count of WorkloadSpread status PUTs by outcome ("ok", "conflict",
    "other") from its /metrics text: every webhook's and controller's write."""
    counts = {"ok": 0.0, "conflict": 0.0, "other": 0.0}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if (labels.get("resource"), labels.get("subresource"), labels.get("verb")) != ("workloadspreads", "status", "PUT"):
            continue
        code = labels.get("code", "")
        key = "ok" if code.startswith("2") else "conflict" if code == "409" else "other"
        counts[key] += float(line.rsplit(" ", 1)[1])
    return counts


def quantiles(samples: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 in ms (None without samples)."""
    return {name: round(percentile(samples, q) * 1000, 3) if samples else None for name, q in QUANTILES}


def minus(a: dict, b: dict) -> dict:
    return {k: round(a[k] - b[k], 3) if a.get(k) is not None and b.get(k) is not None else None for k in a}


def ratios(a: dict, b: dict) -> dict:
    return {k: ratio(a.get(k), b.get(k)) for k in a}


def phase_figures(samples: dict[str, dict[str, list[float]]]) -> dict:
    """One concurrency's figures from ``samples[kind][side]`` (seconds): per kind, each side's
    quantiles, the same less the floor's (a p99 is the difference of two p99s), ours over
    upstream on both; per side, the status write (ws less plain) and its ratio."""
    out: dict = {}
    sides = list(samples[KINDS[0]])
    servers = [side for side in sides if side != "floor"]
    raw = {kind: {side: quantiles(samples[kind][side]) for side in sides} for kind in KINDS}
    for kind in KINDS:
        added = {side: minus(raw[kind][side], raw[kind]["floor"]) for side in servers}
        out[kind] = {"ms": raw[kind], "added_ms": added,
                     "ratio": ratios(raw[kind]["ours"], raw[kind]["upstream"]),
                     "added_ratio": ratios(added["ours"], added["upstream"]),
                     "creates": {side: len(samples[kind][side]) for side in sides}}
        if "before" in servers:
            out[kind]["before_ratio"] = ratios(raw[kind]["before"], raw[kind]["upstream"])
            out[kind]["ours_over_before"] = ratios(raw[kind]["ours"], raw[kind]["before"])
    write = {side: minus(raw["ws"][side], raw["plain"][side]) for side in servers}
    out["status_write_ms"] = write
    out["status_write_ratio"] = ratios(write["ours"], write["upstream"])
    if "before" in servers:
        out["status_write_before_ratio"] = ratios(write["before"], write["upstream"])
        out["status_write_ours_over_before"] = ratios(write["ours"], write["before"])
    return out


def turn_problems(side: str, admitted: int, recorded: int | None) -> list[str]:
    """What a turn's status says against the pods the side matched to its spread: a turn whose
    status records none of them measured no status write."""
    if admitted and not recorded:
        return [f"{side}: the WorkloadSpread's status recorded none of the {admitted} pods matched to it"]
    return []


class WorkloadSpreadBench(base.Bench):
    def __init__(self, args):
        args.shapes, args.manager_arg = 2, list(args.manager_arg)
        super().__init__(args)
        self.current: str | None = None
        self.sequence = 0
        self.matched_in_turn = 0
        self.before_fleet: Fleet | None = None
        self.order = SIDES + (("before",) if args.before else ())
        self.servers = self.order[1:]
        self.recorded: dict[str, list[float]] = {side: [] for side in self.servers}
        self.turn_problems: list[str] = []
        self.refused = dict.fromkeys(self.servers, 0)  # ws creates the webhook refused, timed and warm-up
        self.refusals: list[str] = []

    def cluster_options(self) -> ClusterOptions:
        # No garbage collector: the pods' owner does not exist, and a pod it deleted would take
        # the webhook's deletion path (deletingPods) in the middle of the creates.
        return ClusterOptions(scheduler=True, controller_manager=True, network=True,
                              extra_controller_manager_args=("--controllers=-garbage-collector-controller",))

    def install_managers(self) -> None:
        """Beside ours, with --before, three replicas of this manager at an earlier revision
        (its files from git, the same flags): the same run measures a change."""
        super().install_managers()
        if not self.args.before:
            return
        root = Path(tempfile.mkdtemp(prefix="ws-bench-before-"))
        archive = subprocess.run(["git", "-C", str(base.ROOT), "archive", self.args.before],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        extra = ("--webhook-cert-mode=external", f"--leader-election-id={BEFORE_ACCOUNT}", *self.args.manager_arg)
        self.before_fleet = Fleet(self.cluster, namespace=base.NAMESPACE, account=BEFORE_ACCOUNT,
                                  lease_id=BEFORE_ACCOUNT, code_root=root, extra_args=extra)
        self.before_fleet.install(3, webhook_objects=False)
        self.before_fleet.start_all()
        self.before_fleet.wait_ready(timeout=90)
        self.sides["before"] = Side("before", [r.host for r in self.before_fleet.replicas],
                                    [r.process.pid for r in self.before_fleet.replicas], base.ours_count)

    def stop(self) -> None:
        if self.before_fleet is not None:
            self.before_fleet.stop_all()
        super().stop()

    def setup(self) -> None:
        self.install_managers()
        self._wait_secret()
        for ns in (WS_NS, PLAIN_NS, FLOOR_NS):
            self.api.request("POST", paths.namespaces(), body={"metadata": {"name": ns}})
        self._exclude_floor_namespace()
        self._take_over_service()
        self.sides["floor"] = Side("floor", [], [], lambda host: 0.0)
        if self.args.skip_upstream:
            self.sides["upstream"] = Side("upstream", [], [], lambda host: 0.0)
        deadline = time.monotonic() + 60
        for ns in (WS_NS, PLAIN_NS, FLOOR_NS):  # pods need their namespace's default ServiceAccount
            while True:
                try:
                    self.api.get(paths.service_accounts(ns, "default"))
                    break
                except ApiError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"namespace {ns} has no default ServiceAccount") from None
                    time.sleep(0.3)

    # ---- a side's turn ---------------------------------------------------------------------
    def fresh_workloadspread(self) -> None:
        """Delete the last turn's spread and create this turn's (the serving side's validating
        webhook refuses a second spread of the same target until its cache has dropped the old)."""
        if self.current is not None:
            try:
                self.api.request("DELETE", paths.workloadspreads(WS_NS, self.current))
            except ApiError as err:
                if not err.not_found:
                    raise
        self.sequence += 1
        name = f"spread-{self.sequence:04d}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api.request("POST", paths.workloadspreads(WS_NS), body=workloadspread(name))
                break
            except ApiError as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create WorkloadSpread {name}: {err}") from None
                time.sleep(0.2)
        self.current, self.matched_in_turn = name, 0
        time.sleep(0.5)  # every replica's cache, not only those the warm-up happens to reach

    def create(self, namespace: str, kind: str, check: bool) -> tuple[float, bool]:
        """One real create of a ``kind`` pod: seconds taken, and whether it was admitted as the
        kind must be (with ``check``, a ``ws`` pod matched to the turn's spread, a ``plain``
        pod to none; every failure, and with ``check`` every mismatch, is an error)."""
        started = time.perf_counter()
        try:
            pod = self.api.request("POST", paths.pods(namespace), body=replicaset_pod(), timeout=30)
        except ApiError as err:
            if kind == "ws" and check and err.status == 500 and "denied the request" in str(err):
                with self._lock:  # the webhook gave up (its status write failed), as upstream's may
                    self.refused[self.serving] += 1
                    self.refusals.append(str(err)[:300])
            else:
                self.errors.append(f"{kind} ({self.serving}): {str(err)[:300]}")
            return time.perf_counter() - started, False
        elapsed = time.perf_counter() - started
        found = matched(pod)
        if kind == "ws":
            good = found is not None and found.get("name") == self.current and found.get("subset") == SUBSETS[0]
            if good and check:
                with self._lock:
                    self.matched_in_turn += 1
        else:
            good = found is None
        if check and not good:
            self.errors.append(f"{kind} pod admitted as {found} ({self.serving}, spread {self.current})")
        return elapsed, good

    def warm_up(self, pool, concurrency: int, timeout: float = 60) -> None:
        """Creates of both kinds until a batch has every pod admitted as its kind must be (a
        ws pod refused after its retries aside) and some ws pod matched to this turn's spread:
        the serving side's caches have the spread. Their errors are reported apart."""
        deadline = time.monotonic() + timeout
        while True:
            kept, matched_before = len(self.errors), self.matched_in_turn
            list(pool.map(lambda i: self.create(NAMESPACE_OF[KINDS[i % 2]], KINDS[i % 2], True),
                          range(max(concurrency, 10))))
            clean = len(self.errors) == kept
            self.warmup_errors += self.errors[kept:]
            del self.errors[kept:]
            if clean and self.matched_in_turn > matched_before:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.serving}: pods not admitted as expected: {self.warmup_errors[-1:]}")
            time.sleep(0.3)

    def rounds(self, concurrency: int, rounds: int, per_round: int) -> dict:
        """Per kind and side, the create times; per side, CPU and admissions in its timed
        rounds."""
        sides, servers = self.order, self.servers
        samples = {kind: {side: [] for side in sides} for kind in KINDS}
        puts = {side: dict.fromkeys(("ok", "conflict", "other"), 0.0) for side in servers}
        ws_admitted = dict.fromkeys(servers, 0)
        refused = dict.fromkeys(servers, 0)
        cpu = {side: [0.0] * len(self.sides[side].pids) for side in sides}
        admitted = {side: [0.0] * len(self.sides[side].hosts) for side in sides}
        with ThreadPoolExecutor(concurrency) as pool:
            for r in range(rounds):
                order = sides[r % len(sides):] + sides[:r % len(sides)]
                kinds = KINDS if r % 2 == 0 else KINDS[::-1]
                for side in order:
                    if side != "floor" and not self.sides[side].hosts:
                        continue  # --skip-upstream
                    if side != "floor":
                        self.serve(side)
                        self.fresh_workloadspread()
                        self.warm_up(pool, concurrency)
                    for kind in kinds:
                        namespace = FLOOR_NS if side == "floor" else NAMESPACE_OF[kind]
                        before = {s: (self.sides[s].cpu(), self.sides[s].admissions()) for s in sides}
                        if side != "floor" and kind == "ws":
                            puts_before = status_puts(self.api.get_text("/metrics", timeout=30))
                        refused_before = dict(self.refused)
                        results = list(pool.map(lambda _: self.create(namespace, kind, side != "floor"),
                                                range(per_round)))
                        time.sleep(0.1)  # servers count an admission after sending its answer
                        if side != "floor":
                            refused[side] += self.refused[side] - refused_before[side]
                        if side != "floor" and kind == "ws":
                            puts_after = status_puts(self.api.get_text("/metrics", timeout=30))
                            for key in puts[side]:
                                puts[side][key] += puts_after[key] - puts_before[key]
                            ws_admitted[side] += sum(good for _, good in results)
                        samples[kind][side] += [elapsed for elapsed, _ in results]
                        for s in sides:
                            cpu_now, count_now = self.sides[s].cpu(), self.sides[s].admissions()
                            delta = [b - a for a, b in zip(before[s][1], count_now)]
                            if s == side:
                                cpu[s] = [c + b - a for c, a, b in zip(cpu[s], before[s][0], cpu_now)]
                                admitted[s] = [x + d for x, d in zip(admitted[s], delta)]
                            else:
                                self.misrouted += int(sum(d for d in delta if d > 0))
                    if side != "floor":
                        recorded = creating_entries(self.api.get(paths.workloadspreads(WS_NS, self.current)))
                        print(f"{side} c{concurrency} round {r}: {self.current} {self.matched_in_turn} pods matched, "
                              f"{recorded} in creatingPods", file=sys.stderr)
                        self.recorded[side].append(recorded / self.matched_in_turn if self.matched_in_turn else 0.0)
                        self.turn_problems += turn_problems(side, self.matched_in_turn, recorded)
        cpu_per = {side: round(sum(cpu[side]) * 1000 / sum(admitted[side]), 3) if sum(admitted[side]) else None
                   for side in servers}
        per_pod = {side: {key: round(n / ws_admitted[side], 3) if ws_admitted[side] else None
                          for key, n in puts[side].items()} for side in puts}
        shares = {side: [round(a / sum(admitted[side]), 3) for a in admitted[side]] if sum(admitted[side]) else None
                  for side in servers}
        return {"samples": samples, "cpu_ms_per_admission": cpu_per, "status_puts_per_ws_pod": per_pod,
                "replica_share": shares, "refused": refused,
                "admitted": {side: round(sum(admitted[side])) for side in servers}}

    def pods_left(self) -> int:
        """The bench's pods still stored (all of them, if nothing deleted one)."""
        return sum(len(self.api.get(paths.pods(ns), timeout=60, labelSelector="app=bench-ws")["items"])
                   for ns in (WS_NS, PLAIN_NS, FLOOR_NS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    base.add_round_arguments(parser, rounds=8, per_round=100, c1_rounds=8, c1_per_round=30)
    parser.add_argument("--manager-arg", action="append", default=[], metavar="ARG",
                        help="an extra flag for our replicas (repeatable)")
    parser.add_argument("--before", metavar="REV",
                        help="a fourth side: this manager at git revision REV (three more replicas), to measure a change")
    parser.add_argument("--skip-upstream", action="store_true",
                        help="only the floor and ours (a quicker run; the ratios to upstream stay null)")
    args = parser.parse_args()
    if base.rounds_problem(args):
        return 2
    bench = WorkloadSpreadBench(args)
    started = time.monotonic()
    created = 0
    try:
        bench.setup()
        print(f"set up in {time.monotonic() - started:.0f}s", file=sys.stderr)
        high = bench.rounds(args.concurrency, args.rounds, args.per_round)
        print(json.dumps({"concurrency": args.concurrency, **phase_figures(high["samples"])}), file=sys.stderr)
        low = bench.rounds(1, args.c1_rounds, args.c1_per_round)
        print(json.dumps({"concurrency": 1, **phase_figures(low["samples"])}), file=sys.stderr)
        left = bench.pods_left()
        created = sum(len(v) for phase in (high, low) for kind in phase["samples"].values() for v in kind.values())
    finally:
        bench.stop()
    for error in sorted(set(bench.refusals))[:2] + sorted(set(bench.errors + bench.warmup_errors))[:5]:
        print(f"error: {error}", file=sys.stderr)
    problems = list(dict.fromkeys(bench.turn_problems))
    if bench.errors:
        problems.append(f"{len(bench.errors)} timed creates failed or were not admitted as their kind must be")
    if bench.misrouted:
        problems.append(f"{bench.misrouted} admissions reached a side that was not serving")
    if left < created:  # warm-up pods come on top
        problems.append(f"{created - left} pods were deleted during the run")
    recorded = {side: round(min(v), 3) if v else None for side, v in bench.recorded.items()}
    return base.finish({
        "concurrency": args.concurrency,
        "creates_per_side_and_kind": args.rounds * args.per_round,
        "c1_creates_per_side_and_kind": args.c1_rounds * args.c1_per_round,
        "c50" if args.concurrency == 50 else f"c{args.concurrency}": phase_figures(high["samples"]),
        "c1": phase_figures(low["samples"]),
        "cpu_ms_per_admission": high["cpu_ms_per_admission"], "c1_cpu_ms_per_admission": low["cpu_ms_per_admission"],
        "cpu_ratio": ratio(high["cpu_ms_per_admission"]["ours"], high["cpu_ms_per_admission"]["upstream"]),
        "status_puts_per_ws_pod": high["status_puts_per_ws_pod"], "c1_status_puts_per_ws_pod": low["status_puts_per_ws_pod"],
        "replica_share": high["replica_share"],
        "refused": high["refused"], "c1_refused": low["refused"],
        "status_recorded_min": recorded, "spreads": bench.sequence,
    }, bench, problems, started)


if __name__ == "__main__":
    sys.exit(main())
