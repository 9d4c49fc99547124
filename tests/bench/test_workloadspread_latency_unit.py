"""bench/workloadspread_latency.py's pure parts: the objects it creates, how it reads an
admitted pod and a spread's status, and the figures of a phase. No cluster."""

from __future__ import annotations

import json

import pytest

from manager.workloadspread import subsets
from tests import bench_modules

bench = bench_modules.load("workloadspread_latency")


def test_the_spread_limits_every_subset_and_targets_the_pods_owner():
    ws = bench.workloadspread("spread-0001", max_replicas=7)
    pod = bench.replicaset_pod()
    assert [s["maxReplicas"] for s in ws["spec"]["subsets"]] == [7, 7]  # no subset is taken without a write
    assert [s["name"] for s in ws["spec"]["subsets"]] == list(bench.SUBSETS)
    owner = subsets.controller_of(pod)
    assert subsets.is_workload(owner) and subsets.same_reference(ws["spec"]["targetRef"], owner)
    assert subsets.is_active(pod)
    assert "name" not in pod["metadata"] and pod["metadata"]["generateName"]  # as a ReplicaSet asks
    assert pod["metadata"]["labels"]["pod-template-hash"] == bench.VERSION


def test_each_pod_body_is_a_new_object():
    a, b = bench.replicaset_pod(), bench.replicaset_pod()
    a["metadata"]["labels"]["x"] = "y"
    assert "x" not in b["metadata"]["labels"]


@pytest.mark.parametrize("annotations, expected", [
    (None, None),
    ({}, None),
    ({bench.MATCHED_WORKLOADSPREAD_ANNOTATION: ""}, None),
    ({bench.MATCHED_WORKLOADSPREAD_ANNOTATION: "{broken"}, None),
    ({bench.MATCHED_WORKLOADSPREAD_ANNOTATION: "[1]"}, None),
    ({bench.MATCHED_WORKLOADSPREAD_ANNOTATION: '{"name":"spread-0002","subset":"subset-a","uid":"u"}'},
     {"name": "spread-0002", "subset": "subset-a", "uid": "u"}),
])
def test_matched_reads_the_annotation(annotations, expected):
    assert bench.matched({"metadata": {"annotations": annotations}}) == expected


def test_creating_entries_counts_distinct_pods_over_versions_and_subsets():
    ws = {"status": {"versionedSubsetStatuses": {
        "bench": [{"name": "subset-a", "creatingPods": {"p1": "t", "p2": "t"}}, {"name": "subset-b"}],
        "other": [{"name": "subset-a", "creatingPods": {"p2": "t", "p3": "t"}, "deletingPods": {"p9": "t"}}]},
        "subsetStatuses": [{"name": "subset-a", "creatingPods": {"p8": "t"}}]}}
    assert bench.creating_entries(ws) == 3
    assert bench.creating_entries({"status": {}}) == 0
    assert bench.creating_entries({}) == 0


def test_quantiles_in_ms():
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert bench.quantiles(samples) == {"p50": 51.0, "p95": 95.0, "p99": 99.0}
    assert bench.quantiles([]) == {"p50": None, "p95": None, "p99": None}


def _samples(ms: dict) -> dict:
    """samples[kind][side]: 100 identical values per side and kind, in seconds."""
    return {kind: {side: [ms[kind][side] / 1000] * 100 for side in bench.SIDES} for kind in bench.KINDS}


def test_phase_figures_subtract_the_floor_and_the_baseline():
    figures = bench.phase_figures(_samples({"ws": {"floor": 10, "ours": 30, "upstream": 50},
                                            "plain": {"floor": 10, "ours": 14, "upstream": 20}}))
    json.dumps(figures)  # printable as the final line
    assert figures["ws"]["ms"]["ours"]["p50"] == 30.0
    assert figures["ws"]["added_ms"] == {"ours": {"p50": 20.0, "p95": 20.0, "p99": 20.0},
                                         "upstream": {"p50": 40.0, "p95": 40.0, "p99": 40.0}}
    assert figures["ws"]["ratio"]["p99"] == 0.6 and figures["ws"]["added_ratio"]["p50"] == 0.5
    assert figures["plain"]["added_ratio"]["p95"] == 0.4
    assert figures["status_write_ms"] == {"ours": {"p50": 16.0, "p95": 16.0, "p99": 16.0},
                                          "upstream": {"p50": 30.0, "p95": 30.0, "p99": 30.0}}
    assert figures["status_write_ratio"]["p50"] == 0.533
    assert figures["ws"]["creates"] == {"floor": 100, "ours": 100, "upstream": 100}


def test_phase_figures_without_upstream_leave_its_ratios_null():
    samples = _samples({"ws": {"floor": 10, "ours": 30, "upstream": 0}, "plain": {"floor": 10, "ours": 14, "upstream": 0}})
    for kind in bench.KINDS:
        samples[kind]["upstream"] = []
    figures = bench.phase_figures(samples)
    assert figures["ws"]["ms"]["upstream"]["p50"] is None
    assert figures["ws"]["ratio"] == {"p50": None, "p95": None, "p99": None}
    assert figures["status_write_ratio"] == {"p50": None, "p95": None, "p99": None}
    assert figures["status_write_ms"]["ours"]["p50"] == 16.0


@pytest.mark.parametrize("admitted, recorded, failing", [
    (50, 50, False), (50, 12, False), (0, 0, False), (50, 0, True), (50, None, True),
])
def test_a_turn_whose_status_recorded_nothing_is_a_problem(admitted, recorded, failing):
    assert bool(bench.turn_problems("ours", admitted, recorded)) is failing


def test_status_puts_counts_the_apiservers_workloadspread_status_writes_by_outcome():
    metrics = "\n".join([
        "# HELP apiserver_request_total Counter of apiserver requests",
        'apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps.kruise.io",resource="workloadspreads",'
        'scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 120',
        'apiserver_request_total{code="409",component="apiserver",dry_run="",group="apps.kruise.io",resource="workloadspreads",'
        'scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 30',
        'apiserver_request_total{code="404",component="apiserver",dry_run="",group="apps.kruise.io",resource="workloadspreads",'
        'scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 2',
        'apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps.kruise.io",resource="workloadspreads",'
        'scope="resource",subresource="",verb="PUT",version="v1alpha1"} 7',
        'apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps.kruise.io",resource="workloadspreads",'
        'scope="resource",subresource="status",verb="GET",version="v1alpha1"} 9',
        'apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",'
        'scope="resource",subresource="status",verb="PUT",version="v1"} 5',
    ])
    assert bench.status_puts(metrics) == {"ok": 120.0, "conflict": 30.0, "other": 2.0}
    assert bench.status_puts("") == {"ok": 0.0, "conflict": 0.0, "other": 0.0}


def test_phase_figures_with_an_earlier_revision_compare_it_to_upstream_and_to_ours():
    ms = {"ws": {"floor": 10, "ours": 30, "upstream": 50, "before": 60},
          "plain": {"floor": 10, "ours": 14, "upstream": 20, "before": 15}}
    samples = {kind: {side: [ms[kind][side] / 1000] * 10 for side in ms[kind]} for kind in bench.KINDS}
    figures = bench.phase_figures(samples)
    assert figures["ws"]["before_ratio"]["p50"] == 1.2
    assert figures["ws"]["ours_over_before"]["p50"] == 0.5
    assert figures["status_write_ms"]["before"]["p50"] == 45.0
    assert figures["status_write_ours_over_before"]["p95"] == round(16 / 45, 3)
    assert figures["status_write_before_ratio"]["p99"] == 1.5
    assert "before_ratio" not in bench.phase_figures(_samples(ms))["ws"]  # without the side, no figure
