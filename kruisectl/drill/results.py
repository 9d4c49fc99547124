"""What one scenario came to: its figures (``ScenarioResult``, the JSON output), the budget they
are held to (``Budget``) and its records on the disruption's clock (``Timeline``, for the report)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

from .load import ADMITTED, FAILED, NOT_INJECTED, Outcome
from .observe import Sample, vacancies


@dataclass
class Budget:
    """Breached when a scenario loses more than this. Defaults follow the design: nothing on a
    graceful path; on a crash, the requests in flight on the victim's connections."""

    failed: int
    not_injected: int = 0
    leader_gap_s: float | None = None  # None: leadership is not expected to move
    # A death proven at once (a worker's SIGKILL or OOM kill, a container killed in its pod while
    # its socket holder keeps the port): nothing lost beyond the admissions in flight when it
    # struck, where that instant is known (ScenarioResult.in_flight); ``failed`` applies otherwise.
    within_in_flight: bool = False
    # A fault the kernel strikes in its own time (the OOM killer, once reclaim gives up): the
    # gap budget is counted from the death the drill saw (ScenarioResult.died_s), not from the
    # disruption, as a hang's is from its detection; a death never seen gets no allowance.
    gap_after_death: bool = False
    workloadspread_violations: int | None = None  # None: no WorkloadSpread pods in the load

    def to_dict(self) -> dict:
        data = {"failed": self.failed, "notInjected": self.not_injected, "leaderGapS": self.leader_gap_s}
        if self.within_in_flight:
            data["failedBeyondInFlight"] = 0
        if self.gap_after_death:
            data["leaderGapFromDeath"] = True
        if self.workloadspread_violations is not None:
            data["workloadspreadViolations"] = self.workloadspread_violations
        return data

    def gap_budget(self, result: ScenarioResult) -> float | None:
        """The most the Lease may stay vacant in ``result`` (None: not held to any)."""
        if self.leader_gap_s is None:
            return None
        if self.gap_after_death and result.died_s is not None:
            return round(self.leader_gap_s + max(0.0, result.died_s), 3)
        return self.leader_gap_s

    def breaches(self, result: ScenarioResult) -> list[str]:
        found = []
        if self.within_in_flight and result.in_flight is not None:
            # The instant is known: what was on the dead process's connections then may be lost,
            # however many that was, and nothing else; the fixed count is for unknown instants.
            if result.failed > result.in_flight:
                found.append(f"{result.failed} failed admissions, {result.failed - result.in_flight} beyond the "
                             f"{result.in_flight} in flight when it died (budget 0)")
        elif result.failed > self.failed:
            found.append(f"{result.failed} failed admissions (budget {self.failed})")
        if result.not_injected > self.not_injected:
            found.append(f"{result.not_injected} pods admitted without their sidecar (budget {self.not_injected})")
        gap_budget = self.gap_budget(result)
        if gap_budget is not None and result.leader_gap_s is not None and result.leader_gap_s > gap_budget:
            after = f" from the death at {result.died_s:g}s" if gap_budget != self.leader_gap_s else ""
            found.append(f"leadership vacant {result.leader_gap_s:.2f}s (budget {self.leader_gap_s:g}s{after})")
        if self.workloadspread_violations is not None and result.workloadspread_violations is not None \
                and result.workloadspread_violations > self.workloadspread_violations:
            found.append(f"{result.workloadspread_violations} pods over a WorkloadSpread subset's maxReplicas "
                         f"(budget {self.workloadspread_violations})")
        if result.recovery_s is None:
            found.append("the Deployment did not get back to its full ready count in time")
        return found


class Request(NamedTuple):
    at_s: float  # when it was sent, seconds from the disruption (negative before it)
    latency_s: float
    kind: str  # ADMITTED / NOT_INJECTED / FAILED
    message: str = ""  # the apiserver's, for a failure


class Point(NamedTuple):
    at_s: float  # seconds from the disruption
    value: object  # the Lease's holder ("" vacant) or the count of ready endpoints


@dataclass
class Timeline:
    """What one scenario's observers and load saw, moment by moment, for a report drawn
    afterwards (``kruisectl drill run --report``): the same records the figures come from,
    on one clock whose zero is the disruption. Not part of the JSON output."""

    started_at: float  # unix time of the disruption
    start_s: float  # the load's first moment (negative)
    end_s: float  # the load's last moment
    requests: list[Request] = field(default_factory=list)
    holders: list[Point] = field(default_factory=list)  # at each change of holder
    ready_endpoints: list[Point] = field(default_factory=list)  # at each change of the count
    desired: int | None = None  # the Deployment's replicas at the disruption
    vacancies: list[tuple[float, float]] = field(default_factory=list)  # no leader: last renewal -> next acquire


def timeline(outcomes: list[Outcome], lease_records: list[tuple[float, dict]], samples: list[Sample],
             began: float, began_unix: float, start: float, end: float) -> Timeline:
    """The records of a scenario as changes on the disruption's clock (``began``, monotonic)."""
    line = Timeline(began_unix, round(start - began, 3), round(end - began, 3))
    line.requests = [Request(round(o.started - began, 3), round(o.latency_s, 4), o.kind, o.message)
                     for o in sorted(outcomes, key=lambda o: o.started)]
    for received, spec in lease_records:
        holder = spec.get("holderIdentity") or ""
        if not line.holders or line.holders[-1].value != holder:
            line.holders.append(Point(round(received - began, 3), holder))
    for sample in samples:
        count = len(sample.ready_endpoints)
        if not line.ready_endpoints or line.ready_endpoints[-1].value != count:
            line.ready_endpoints.append(Point(round(sample.at - began, 3), count))
    before = [s for s in samples if s.at <= began]
    line.desired = (before[-1] if before else samples[0]).desired if samples else None
    line.vacancies = vacancies(lease_records, began_unix)
    return line


@dataclass
class ScenarioResult:
    scenario: str
    victims: list[str]
    requests: int = 0
    admitted: int = 0
    failed: int = 0
    not_injected: int = 0
    refused: int = 0  # of the failed: "connection refused" (a port nobody held)
    in_flight: int | None = None  # admissions outstanding when the fault struck (None: instant unknown)
    died_s: float | None = None  # seconds from the disruption to the earliest the seen death can have been
    slow: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    leader_gap_s: float | None = None
    old_leader: str | None = None
    new_leader: str | None = None
    endpoint_removal_s: float | None = None
    min_ready_endpoints: int | None = None  # the Service's ready endpoints at the worst moment
    recovery_s: float | None = None
    replica_counts: dict[str, float] | None = None  # admissions each replica counted in the window
    shares: dict[str, float] | None = None  # None: a count is unknown (see errors)
    # WorkloadSpread pods in the load (None: none were): created, placed in no subset, the most
    # pods over maxReplicas at once (summed over the subsets), deletions that failed; what was seen
    workloadspread_pods: int | None = None
    workloadspread_unplaced: int | None = None
    workloadspread_violations: int | None = None
    workloadspread_delete_failed: int | None = None
    workloadspread_details: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    budget: Budget | None = None
    breaches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # figures that could not be measured
    timeline: Timeline | None = field(default=None, repr=False, compare=False)  # for the report only

    def to_dict(self) -> dict:
        data = {_camel(k): v for k, v in asdict(replace(self, timeline=None)).items() if k != "timeline"}
        data["budget"] = self.budget.to_dict() if self.budget is not None else None
        return data


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def in_flight(outcomes: list[Outcome], struck: list[tuple[float, float]]) -> int:
    """The admissions sent before a fault struck and not answered before it: only these can be
    on a dying process's connections (what comes later waits in the listen backlog the
    supervisor holds), so a crash that fails more lost what it should not have."""
    return sum(any(o.started <= after and o.started + o.latency_s >= before for before, after in struck)
               for o in outcomes)


def summarise(result: ScenarioResult, outcomes: list[Outcome], webhook_timeout_s: float) -> None:
    result.requests = len(outcomes)
    result.admitted = sum(o.kind == ADMITTED for o in outcomes)
    result.failed = sum(o.kind == FAILED for o in outcomes)
    result.not_injected = sum(o.kind == NOT_INJECTED for o in outcomes)
    result.refused = sum(o.kind == FAILED and "connection refused" in o.message for o in outcomes)
    result.slow = sum(o.latency_s > webhook_timeout_s for o in outcomes)
    answered = [o.latency_s for o in outcomes if o.kind != FAILED]
    if answered:
        result.p50_ms = round(statistics.median(answered) * 1000, 1)
        result.p99_ms = round(percentile(answered, 0.99) * 1000, 1)
        result.max_ms = round(max(answered) * 1000, 1)
    messages: dict[str, int] = {}
    for o in outcomes:
        if o.kind == FAILED:
            messages[o.message[:300]] = messages.get(o.message[:300], 0) + 1
    result.failures = [f"{n}x {m}" for m, n in sorted(messages.items(), key=lambda item: -item[1])][:5]
