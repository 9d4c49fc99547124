"""Running a drill: the preflight, each scenario under load with its observers, and the wait
until the manager has recovered."""

from __future__ import annotations

import contextlib
import time
from typing import Callable

from ..inventory import Names
from ..probe import probe_sidecarset
from ..status import pod_ready
from .load import ADMITTED, AdmissionLoad
from .observe import Observer, ReplicaCounters, endpoint_removal, leader_gap, shares_of
from .results import ScenarioResult, in_flight, summarise, timeline
from .scenarios import Budget, DrillOptions, DrillRefused, Scenario, Target, default_budget
from .spread import Spread, lifetime_for


def preflight(api, names: Names, timeout: float, force: bool, explicit: set[str] = frozenset()) -> list[str]:
    """Reasons not to drill (empty: go): fewer than 2 ready replicas, doctor errors. A missing
    namespace or explicitly named object raises KruisectlError."""
    from .. import inventory as inv
    from ..doctor import diagnose

    inventory = inv.collect(api, names, timeout=timeout, extended=True)
    fatal = inventory.fatal()
    if fatal:
        raise DrillRefused(fatal)
    inv.ensure_target(api, inventory, explicit, timeout)
    if inventory.deployment is None:
        raise DrillRefused(f"deployment {names.namespace}/{names.deployment} not found")
    ready = sum(1 for p in inventory.pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))
    reasons = []
    if ready < 2:
        reasons.append(f"only {ready} ready replica(s): a drill needs at least 2")
    if not force:
        reasons += [f"doctor: {f.check}: {f.message}" for f in diagnose(inventory) if f.level == "error"]
    return reasons


def lease_duration(api, names: Names, timeout: float) -> float:
    try:
        lease = Target(api, names, timeout).lease() or {}
    except Exception:  # noqa: BLE001 - the upstream default then
        return 15.0
    return float((lease.get("spec") or {}).get("leaseDurationSeconds") or 15)


def webhook_timeout(api, names: Names, timeout: float) -> float:
    """The pod webhook's timeoutSeconds (an answer slower than that failed anyway)."""
    try:
        config = api.request("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                              f"{names.mutating}", timeout=timeout)
    except Exception:  # noqa: BLE001 - the default then
        return 10.0
    for webhook in config.get("webhooks") or []:
        for rule in webhook.get("rules") or []:
            if "pods" in (rule.get("resources") or []):
                return float(webhook.get("timeoutSeconds") or 10)
    return 10.0


def run(api, names: Names, scenarios: list[Scenario], options: DrillOptions,
        on_progress: Callable[[str], None] = lambda text: None,
        budgets: dict[str, Budget] | None = None) -> list[ScenarioResult]:
    """Every scenario in turn under one probe SidecarSet (and, with WorkloadSpread pods in the
    load, one WorkloadSpread and its Job), deleted at the end whatever happens
    (KeyboardInterrupt included). The probe's cache warm-up is waited for first, so the first
    requests are not counted as losses."""
    timeout = min(options.webhook_timeout_s, 10.0)
    duration = lease_duration(api, names, timeout)
    results = []
    with probe_sidecarset(api, options.probe_namespace, timeout) as probe, \
            workloadspread_load(api, options, timeout) as spread:
        wait_injecting(api, options.probe_namespace, probe.labels, timeout, on_progress)
        if spread is not None:
            spread.warm(probe.labels)
        for scenario in scenarios:
            budget = (budgets or {}).get(scenario.name) or default_budget(scenario, options, duration)
            results.append(measure(api, names, scenario, options, probe.labels, budget, on_progress, spread))
            wait_injecting(api, options.probe_namespace, probe.labels, timeout, on_progress)
    return results


@contextlib.contextmanager
def workloadspread_load(api, options: DrillOptions, timeout: float):
    """The Spread of ``options.workloadspread_share`` (None when there is none), its objects
    deleted on leaving."""
    if options.workloadspread_share <= 0:
        yield None
        return
    with Spread(api, options.probe_namespace, timeout,
                lifetime_for(options.rate, options.workloadspread_share)) as spread:
        yield spread


def wait_injecting(api, namespace: str, labels: dict[str, str], timeout: float, on_progress, wait: float = 60) -> None:
    """Until a dry-run pod comes back with the probe sidecar (the replicas' caches have it)."""
    # Named apart from the measured load's pods, so an audit log tells the two apart.
    load = AdmissionLoad(api, namespace, labels, rate=1.0, timeout=timeout, prefix="kruisectl-warmup-")
    deadline = time.monotonic() + wait
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if load.one().kind == ADMITTED else 0
        if streak >= 5:
            time.sleep(1.0)  # the other replicas' caches catch up as well
            return
        time.sleep(0.2)
    raise DrillRefused(f"dry-run pods in {namespace} did not get the probe sidecar within {wait:g}s: "
                       "run `kruisectl webhook check` first")


def measure(api, names: Names, scenario: Scenario, options: DrillOptions, labels: dict[str, str],
            budget: Budget, on_progress: Callable[[str], None] = lambda text: None,
            spread: Spread | None = None) -> ScenarioResult:
    """One scenario under load, with the probe SidecarSet's ``labels`` already in place (and
    ``spread``'s WorkloadSpread: a share ``options.workloadspread_share`` of the load its
    pods, checked against its subsets' maxReplicas, deleted afterwards)."""
    target = Target(api, names, min(options.webhook_timeout_s, 10.0))
    observer = Observer(api, names, target.timeout).start()
    counters = ReplicaCounters(api, names, target.timeout).start()  # its window holds the whole load
    if spread is not None:
        spread.start()
    load = AdmissionLoad(api, options.probe_namespace, labels, options.rate,
                         timeout=options.webhook_timeout_s + 20, spread=spread,
                         share=options.workloadspread_share).start()
    result = ScenarioResult(scenario.name, victims=[], budget=budget)
    loaded = time.monotonic()
    try:
        time.sleep(options.before_s)
        on_progress(f"{scenario.name}: {scenario.summary}")
        counters.read_now()
        began, began_unix = time.monotonic(), time.time()
        deadline = began + options.timeout_s
        result.victims = scenario.act(target, deadline)
        recovered_at = _wait_recovered(observer, scenario, set(result.victims), began, deadline, on_progress)
        result.recovery_s = round(recovered_at - began, 2) if recovered_at is not None else None
        time.sleep(options.settle_s)
        ended = time.monotonic()
    finally:
        load.stop()
        observer.stop()
        counters.stop()
        figures = spread_figures(spread, result)
    outcomes = load.between(0.0, float("inf"))
    summarise(result, outcomes, options.webhook_timeout_s)
    result.timeline = timeline(outcomes, observer.lease_records, observer.samples, began, began_unix, loaded, ended)
    if target.struck:
        result.in_flight = in_flight(outcomes, target.struck)
        result.died_s = round(min(before for before, _after in target.struck) - began, 3)
    result.leader_gap_s, result.old_leader, result.new_leader = leader_gap(observer.lease_records, began) \
        if scenario.moves_leader else (None, None, None)
    if result.leader_gap_s is not None:
        result.leader_gap_s = round(result.leader_gap_s, 3)
    result.endpoint_removal_s = endpoint_removal(observer, result.victims, began, ended)
    during = [len(s.ready_endpoints) for s in observer.samples if began <= s.at <= ended]
    result.min_ready_endpoints = min(during) if during else None
    counters.mark_ready({name for s in observer.samples for name, (_ip, ok, _node) in s.pods.items() if ok})
    counts, errors = counters.counts()
    result.errors += errors
    if not errors:
        result.replica_counts = counts
        result.shares = shares_of(counts)
        if result.shares is None:
            result.errors.append(f"no replica counted an admission ({result.admitted} admitted): no shares")
    if figures is not None:
        result.workloadspread_pods, result.workloadspread_unplaced = figures.pods, figures.unplaced
        result.workloadspread_violations = figures.violations
        result.workloadspread_delete_failed = figures.delete_failed
        result.workloadspread_details = figures.details
    result.breaches = budget.breaches(result)
    return result


def spread_figures(spread: Spread | None, result: ScenarioResult):
    """The scenario's WorkloadSpread figures once its load stopped (its last look at the
    subsets included), and its pods deleted for the next; None without a spread or when the
    last look failed (the reason in ``result.errors``)."""
    if spread is None:
        return None
    try:
        figures = spread.stop()
    except Exception as err:  # noqa: BLE001 - the figure is unknown then, and said so
        result.errors.append(f"the WorkloadSpread's pods could not be listed after the scenario: {err}")
        figures = None
    spread.clear()
    return figures


def _wait_recovered(observer: Observer, scenario: Scenario, victims: set[str], began: float, deadline: float,
                    on_progress) -> float | None:
    """When the Deployment is back to its full ready count with none of the victims left
    (a rollout: rolled out), someone holds the Lease (a new holder where the leader was hit),
    and the scenario's own fault is undone."""
    last_note = 0.0
    while time.monotonic() < deadline:
        sample = observer.latest()
        if sample is not None and sample.at > began + 0.5:
            ready = [n for n, (_ip, ok, _node) in sample.pods.items() if ok]
            done = (sample.ready_replicas >= sample.desired and len(ready) >= sample.desired
                    and observer.holder_at(time.monotonic())
                    and (not scenario.moves_leader or leader_gap(observer.lease_records, began)[2] is not None)
                    and (not scenario.replaces_victims or not victims & set(sample.pods))
                    and (scenario.settled is None or scenario.settled()))
            if scenario.name == "rollout":
                done = done and sample.rolled_out
            if done:
                return sample.at
            if time.monotonic() - last_note > 5:
                on_progress(f"  waiting: {sample.ready_replicas}/{sample.desired} ready, "
                            f"{len(sample.ready_endpoints)} ready endpoints")
                last_note = time.monotonic()
        time.sleep(0.1)
    return None
