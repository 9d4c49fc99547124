"""The WorkloadSpread controller in a real manager on the real local control plane (scheduler,
controller-manager, kwok nodes in zones a, b, c): the scenarios of :mod:`.scenarios`, which
test_upstream_parity.py runs unchanged against upstream v1.8.3's manager."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster.fleet import Fleet
from tests.conftest import wait_for
from tests.manager.conftest import start_cluster
from tests.workloadspread import scenarios

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def spread_api():
    local = start_cluster()
    local.create_nodes(3)
    fleet = Fleet(local).install(1)
    api = local.api()
    client.CoreV1Api(api).create_namespace({"metadata": {"name": scenarios.NS}})
    fleet.start_all()
    fleet.wait_ready(timeout=90)
    wait_for(fleet.leader, timeout=30, what="a leader")
    yield api
    fleet.stop_all()
    local.stop()


def test_status_deletion_cost_and_scale_down_order(spread_api):
    scenarios.status_deletion_cost_and_scale_down_order(spread_api)


def test_creating_pods_kept_until_their_timeout(spread_api):
    scenarios.creating_pods_kept_until_their_timeout(spread_api)


def test_adaptive_reschedules_a_pod_unschedulable_in_its_subset(spread_api):
    scenarios.adaptive_reschedules_a_pod_unschedulable_in_its_subset(spread_api)


def test_pods_created_before_the_spread_are_adopted_by_node(spread_api):
    scenarios.pods_created_before_the_spread_are_adopted_by_node(spread_api)


def test_pods_beyond_max_replicas_are_adopted_at_the_next_reconcile(spread_api):
    scenarios.pods_beyond_max_replicas_are_adopted_at_the_next_reconcile(spread_api)


def test_target_filter_replicas_paths_resolve_percent_subsets(spread_api):
    scenarios.target_filter_replicas_paths_resolve_percent_subsets(spread_api)


def test_target_filter_selector_keeps_only_the_pods_it_selects(spread_api):
    scenarios.target_filter_selector_keeps_only_the_pods_it_selects(spread_api)
