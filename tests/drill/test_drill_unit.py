"""The drill's arithmetic: leader gap from Lease records, budgets, classification summary,
endpoint removal from samples. No cluster."""

from __future__ import annotations

import pytest

from kruisectl.drill import (ADMITTED, FAILED, NOT_INJECTED, SCENARIOS, Budget, DrillOptions, Observer, Outcome,
                             Sample, ScenarioResult, _endpoint_removal, _pod_webhook_requests, _summarise,
                             default_budget, leader_gap)


def spec(holder: str, renew: str, acquire: str = "2026-01-01T00:00:00.000000Z") -> dict:
    return {"holderIdentity": holder, "renewTime": f"2026-01-01T00:00:{renew}Z", "acquireTime":
            acquire if acquire.endswith("Z") else f"2026-01-01T00:00:{acquire}Z"}


@pytest.mark.parametrize("case, records, since, expected", [
    ("release then takeover", [(1, spec("a_1", "01.000000")), (5, spec("a_1", "05.000000")),
                               (6, spec("", "06.000000")), (6.1, spec("b_2", "06.020000", "06.020000"))],
     5.5, (0.02, "a_1", "b_2")),
    ("crash: new holder after the lease ran out", [(1, spec("a_1", "01.000000")), (20, spec("b_2", "17.500000", "17.500000"))],
     2, (16.5, "a_1", "b_2")),
    ("renewals only: nobody new", [(1, spec("a_1", "01.000000")), (3, spec("a_1", "03.000000"))], 2, (None, "a_1", None)),
    ("renewals after the disruption count as the old holder's", [(1, spec("a_1", "01.000000")), (3, spec("a_1", "03.000000")),
                                                                  (9, spec("b_2", "08.000000", "08.000000"))],
     2, (5.0, "a_1", "b_2")),
])
def test_leader_gap(case, records, since, expected):
    gap, old, new = leader_gap(records, since)
    assert (None if gap is None else round(gap, 3), old, new) == expected, case


@pytest.mark.parametrize("name, failed, gap", [("leader-crash", 1, 17.0), ("replica-crash", 1, None),
                                               ("eviction", 0, 1.0), ("rollout", 0, 1.0)])
def test_default_budgets_follow_the_design(name, failed, gap):
    budget = default_budget(SCENARIOS[name], DrillOptions(), lease_duration_s=15)
    assert (budget.failed, budget.not_injected, budget.leader_gap_s) == (failed, 0, gap)


def test_overridden_budgets():
    options = DrillOptions(crash_budget=0, leader_gap_budget_s=3)
    assert default_budget(SCENARIOS["leader-crash"], options, 15) == Budget(failed=0, leader_gap_s=3)
    assert default_budget(SCENARIOS["eviction"], options, 15) == Budget(failed=0, leader_gap_s=3)


@pytest.mark.parametrize("result, breaches", [
    (ScenarioResult("x", [], failed=0, not_injected=0, leader_gap_s=0.5, recovery_s=3), []),
    (ScenarioResult("x", [], failed=2, recovery_s=3), ["2 failed admissions (budget 1)"]),
    (ScenarioResult("x", [], not_injected=1, recovery_s=3), ["1 pods admitted without their sidecar (budget 0)"]),
    (ScenarioResult("x", [], leader_gap_s=7.5, recovery_s=3), ["leadership vacant 7.50s (budget 6s)"]),
    (ScenarioResult("x", [], recovery_s=None), ["the Deployment did not get back to its full ready count in time"]),
])
def test_budget_breaches(result, breaches):
    assert Budget(failed=1, leader_gap_s=6).breaches(result) == breaches


def test_summary_classifies_and_keeps_the_apiservers_messages():
    outcomes = [Outcome(0, 0.004, ADMITTED)] * 97 + [Outcome(0, 0.5, NOT_INJECTED),
                                                    Outcome(0, 11.0, FAILED, "context deadline exceeded"),
                                                    Outcome(0, 0.1, FAILED, "connection reset by peer")]
    result = ScenarioResult("x", [])
    _summarise(result, outcomes, webhook_timeout_s=10)
    assert (result.requests, result.admitted, result.not_injected, result.failed, result.slow) == (100, 97, 1, 2, 1)
    assert result.p50_ms == 4.0 and result.max_ms == 500.0
    assert sorted(result.failures) == ["1x connection reset by peer", "1x context deadline exceeded"]


def sample(at: float, ready: set[str], pods: dict[str, str]) -> Sample:
    return Sample(at, frozenset(ready), len(ready), 3, {n: (ip, True, None) for n, ip in pods.items()}, True)


def test_endpoint_removal_is_when_the_victims_address_left_the_ready_endpoints():
    observer = Observer(api=None, names=None, timeout=1)
    pods = {"a": "198.18.1.2", "b": "198.18.1.3", "c": "198.18.1.4"}
    observer.samples = [sample(0.0, set(pods.values()), pods), sample(1.2, set(pods.values()), pods),
                        sample(1.4, {"198.18.1.3", "198.18.1.4"}, {"b": "198.18.1.3", "c": "198.18.1.4"})]
    assert _endpoint_removal(observer, ["a"], began=1.0, ended=5) == 0.4
    # A replacement on the victim's node (host network) reuses its address: nothing to time.
    observer.samples[-1] = sample(1.4, set(pods.values()), {"a2": "198.18.1.2", "b": "198.18.1.3", "c": "198.18.1.4"})
    assert _endpoint_removal(observer, ["a"], began=1.0, ended=5) is None


def test_pod_webhook_counters_of_both_managers():
    ours = ('kruise_manager_webhook_requests_total{path="/mutate-pod",result="patched"} 12.0\n'
            'kruise_manager_webhook_requests_total{path="/mutate-pod",result="allowed"} 3.0\n'
            'kruise_manager_webhook_requests_total{path="/validate-apps-kruise-io-v1alpha1-sidecarset",result="allowed"} 9.0\n')
    upstream = ('controller_runtime_webhook_requests_total{code="200",webhook="/mutate-pod"} 40\n'
                'controller_runtime_webhook_requests_total{code="200",webhook="/validate-pod"} 7\n')
    assert _pod_webhook_requests(ours) == 15.0
    assert _pod_webhook_requests(upstream) == 40.0
