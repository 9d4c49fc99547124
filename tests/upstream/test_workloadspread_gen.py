"""The WorkloadSpread differential test's generator and normalisation (workloadspread_gen,
workloadspread_fuzz), without a cluster: a seed names its combinations, valid ones pass this
manager's validation (upstream's rules), invalid ones are refused by it, and the snapshot
normalises only what is random by nature."""

from __future__ import annotations

import json

import pytest

from manager.workloadspread.validation import validate
from tests.upstream import workloadspread_gen as gen
from tests.upstream.workloadspread_fuzz import (GATE_ACCOUNT, _pod_record, gated_deployment, limits_move,
                                               limits_written, normalize_status)


def _text(comb) -> str:
    return json.dumps(comb, sort_keys=True)


def test_valid_combinations_pass_and_invalid_ones_are_refused():
    combs = [gen.combination(3, i) for i in range(400)]
    valid = [c for c in combs if c["valid"]]
    invalid = [c for c in combs if not c["valid"]]
    assert 200 < len(valid) < 350 and invalid
    for comb in valid:  # (a patch is checked against the stored template on the cluster only)
        assert validate(gen.workloadspread(comb) | {"metadata": {"name": "spread", "namespace": "n"}}) == [], comb
        assert all(0 <= r <= gen.MAX_REPLICAS for r in comb["steps"]) and comb["steps"][0] > 0
    refused = [c for c in invalid if validate(gen.workloadspread(c) | {"metadata": {"name": "spread", "namespace": "n"}},
                                              )]
    # a breakage may leave a spread valid (a duplicate of a subset that another rule already
    # stops, a patch checked only when the target exists), but most are refused
    assert len(refused) > 0.8 * len(invalid)


def test_the_draw_covers_what_the_issue_names():
    specs = [c["spread"] for c in (gen.combination(9, i) for i in range(300)) if c["valid"]]
    subsets = [s for spec in specs for s in spec["subsets"]]
    kinds = {type(s.get("maxReplicas")).__name__ for s in subsets}
    assert kinds == {"int", "str", "NoneType"}
    operators = {e["operator"] for s in subsets for e in (s.get("requiredNodeSelectorTerm") or {}).get("matchExpressions", [])}
    assert operators == {"In", "NotIn", "Exists", "DoesNotExist"}
    assert any(gen.ABSENT_ZONE in json.dumps(s.get("requiredNodeSelectorTerm")) for s in subsets)
    assert any("preferredNodeSelectorTerms" in s for s in subsets) and any("tolerations" in s for s in subsets)
    assert any("labels" in (s.get("patch") or {}).get("metadata", {}) for s in subsets)
    assert any("annotations" in (s.get("patch") or {}).get("metadata", {}) for s in subsets)
    assert {(spec.get("scheduleStrategy") or {}).get("type") for spec in specs} == {None, "Fixed", "Adaptive"}


def test_only_random_parts_are_normalised():
    status = {"observedGeneration": 2, "subsetStatuses": [{
        "name": "a", "replicas": 2, "missingReplicas": 1,
        "creatingPods": {"web-5d8f7c9b6-x7k2p": "2026-12-04T10:00:00Z"},
        "deletingPods": {"web-5d8f7c9b6-q9w8e": "2026-12-04T10:00:01Z", "odd-name": "2026-12-04T10:00:01Z"},
        "conditions": [{"type": "Schedulable", "status": "False", "lastTransitionTime": "2026-12-04T10:00:00Z"}]}],
        "versionedSubsetStatuses": {"5d8f7c9b6": [{"name": "a", "replicas": 2, "missingReplicas": 0}]}}
    got = normalize_status(status)
    assert got == {"observedGeneration": 2, "subsetStatuses": [{
        "name": "a", "replicas": 2, "missingReplicas": 1, "creatingPods": ["web-5d8f7c9b6-*"],
        "deletingPods": ["odd-name", "web-5d8f7c9b6-*"], "conditions": [{"type": "Schedulable", "status": "False"}]}],
        "versionedSubsetStatuses": {"5d8f7c9b6": [{"name": "a", "replicas": 2, "missingReplicas": 0}]}}
    pod = {"metadata": {"name": "web-5d8f7c9b6-x7k2p", "annotations": {
        "apps.kruise.io/matched-workloadspread":
            '{"name":"spread","subset":"a","uid":"0f8c2a4e-1b2c-4d5e-8f90-123456789abc"}',
        "controller.kubernetes.io/pod-deletion-cost": "200"},
        "labels": {"app": "web", "subset": "a", "topology.kubernetes.io/zone": "zone-b",
                   "topology.kubernetes.io/region": "region-1"}},
        "spec": {"affinity": {"x": 1}, "tolerations": [{"key": "k", "operator": "Exists"}]}}
    assert _pod_record(pod, "running") == {
        "subset": "a", "state": "running", "matched": '{"name":"spread","subset":"a","uid":"<uid>"}',
        "annotations": {"controller.kubernetes.io/pod-deletion-cost": "200"},
        "labels": {"app": "web", "subset": "a"}, "affinity": {"x": 1},
        "tolerations": [{"key": "k", "operator": "Exists"}]}


def test_a_case_is_python_for_scenarios():
    comb = gen.combination(1, 0)
    case = gen.as_case(comb, [{"replicas": 1}], "state: x")
    assert eval(case.rstrip(","))["spread"] == comb["spread"]  # noqa: S307 - our own literal


@pytest.mark.parametrize("limits, before, after, moves", [
    (["20%"], 2, 7, True),  # 1 -> 2: the race a scale-up plays in order
    (["20%"], 2, 3, False),  # 1 -> 1
    (["20%"], 0, 2, True),  # the first step: 0 -> 1
    ([3, None], 2, 7, False),  # no percent: nothing moves
    (["bad%", "25%"], 4, 5, True),  # an unreadable limit is passed over, the next one moves (1 -> 2)
    ([], 0, 5, False),
])
def test_limits_move_when_a_percent_max_replicas_scales_to_another_value(limits, before, after, moves):
    spread = {"subsets": [{"name": f"s{i}", **({"maxReplicas": m} if m is not None else {})} for i, m in enumerate(limits)]}
    assert limits_move(spread, before, after) is moves


def test_the_gated_deployment_differs_only_in_its_pods_account():
    comb = gen.combination(3, 0)
    gated, plain = gated_deployment(comb), gen.deployment(comb, 0)
    spec = gated["spec"]["template"]["spec"]
    assert (spec.pop("serviceAccountName"), spec.pop("automountServiceAccountToken")) == (GATE_ACCOUNT, False)
    assert gated == plain


@pytest.mark.parametrize("statuses, replicas, written", [
    ([("c", 1, 1), ("b", 1, 1)], 7, True),  # 20% of 7 = 2 places: c holds 1, misses 1; b (25%) too
    ([("c", 1, 0), ("b", 1, 0)], 7, False),  # still the limits of 2 replicas
    ([("c", 3, 0), ("b", 1, 1)], 7, True),  # over its 2 places: never below 0
    ([("b", 1, 1)], 7, False),  # no status for c yet
])
def test_limits_written_reads_the_places_from_the_new_replicas(statuses, replicas, written):
    """``statuses``: (subset, replicas, missingReplicas)."""
    spread = {"spec": {"subsets": [{"name": "c", "maxReplicas": "20%"}, {"name": "b", "maxReplicas": "25%"},
                                   {"name": "a"}]},
              "status": {"subsetStatuses": [{"name": n, "replicas": r, "missingReplicas": m} for n, r, m in statuses]}}
    assert limits_written(spread, replicas) is written
