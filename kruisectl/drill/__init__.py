"""HA drills: disrupt the kruise-manager on purpose while pods are being admitted, and measure
what the design promises — pods keep being admitted, with their sidecars.

A drill runs one *scenario* (a disruption) under a steady *load*: server-side dry-run creates
(``dryRun=All``, nothing is stored) of pods that a temporary probe SidecarSet selects, at
``rate`` per second in a namespace the pod webhook intercepts. Every answer is classified:
admitted with the probe sidecar, admitted WITHOUT it (a silent loss), failed (the apiserver's
message kept), or slower than the webhook's timeout. At the same time *observers* record the
Lease (every change, by watch), the Service's ready endpoints and the Deployment's ready
count, so the report says how long leadership was vacant, how long the victim stayed a ready
endpoint, and when the full ready count was back.

Only the manager's own pods and Deployment are touched; each scenario restores itself (the
Deployment replaces what was deleted). The probe SidecarSet is deleted at the end, on error
and on Ctrl-C.

The package, one concern a module: ``load`` (the dry-run creates and their verdicts),
``observe`` (the Lease, endpoints, pods and each replica's counter, and the figures read off
them), ``scenarios`` (the disruptions, their options and default budgets), ``results`` (a
scenario's figures, the budget they are held to, its timeline), ``runner`` (preflight, one
scenario under load, the whole run), ``spread`` (WorkloadSpread pods in the load, optional:
real creates, and no subset over its maxReplicas) and ``report`` (the HTML page drawn from the
results).
"""

from __future__ import annotations

from .load import ADMITTED, FAILED, NOT_INJECTED, AdmissionLoad, Outcome
from .observe import (CounterRead, Observer, ReplicaCounters, ReplicaSeries, Sample, endpoint_removal, leader_gap,
                      parse_micro, replica_counts, serving, shares_of, vacancies)
from .results import Budget, Point, Request, ScenarioResult, Timeline, in_flight, percentile, summarise, timeline
from .runner import lease_duration, measure, preflight, run, wait_injecting, webhook_timeout, workloadspread_load
from .scenarios import (EXEC_RIGHTS, PROVEN_DEATH_GAP_S, SCENARIOS, SIGNAL_WORKER, WORKER_FAULTS, WORKER_HANG_DETECT_S,
                        WORKER_HEARTBEAT_INTERVAL_S, WORKER_HEARTBEAT_TIMEOUT_S, WORKER_NAME, WORKER_SCENARIOS, Action,
                        DrillOptions, DrillRefused, Scenario, Target, WorkerAction, WorkerFault, default_budget,
                        exec_failure, exec_scenario, exec_signal, missing_rights, plan, worker_restarts,
                        worker_scenario)
from .spread import SPREAD_LABEL_SELECTOR, SUBSETS, Spread, SpreadFigures, excess, lifetime_for, spread_pod, subset_of

__all__ = [
    "ADMITTED", "FAILED", "NOT_INJECTED", "AdmissionLoad", "Outcome",
    "CounterRead", "Observer", "ReplicaCounters", "ReplicaSeries", "Sample", "endpoint_removal", "leader_gap",
    "parse_micro", "replica_counts", "serving", "shares_of", "vacancies",
    "Point", "Request", "ScenarioResult", "Timeline", "in_flight", "percentile", "summarise", "timeline",
    "lease_duration", "measure", "preflight", "run", "wait_injecting", "webhook_timeout", "workloadspread_load",
    "SPREAD_LABEL_SELECTOR", "SUBSETS", "Spread", "SpreadFigures", "excess", "lifetime_for", "spread_pod", "subset_of",
    "EXEC_RIGHTS", "PROVEN_DEATH_GAP_S", "SCENARIOS", "SIGNAL_WORKER", "WORKER_FAULTS", "WORKER_HANG_DETECT_S",
    "WORKER_HEARTBEAT_INTERVAL_S", "WORKER_HEARTBEAT_TIMEOUT_S", "WORKER_NAME", "WORKER_SCENARIOS", "Action",
    "Budget", "DrillOptions", "DrillRefused", "Scenario", "Target", "WorkerAction", "WorkerFault", "default_budget",
    "exec_failure", "exec_scenario", "exec_signal", "missing_rights", "plan", "worker_restarts", "worker_scenario",
]
