"""The scenarios of :mod:`.scenarios` against upstream v1.8.3's kruise-manager (built and
installed by localcluster.upstream on hostlet nodes; workload pods on kwok nodes in zones
a, b, c): the assertions test_controller.py makes of our manager hold for upstream's too."""

from __future__ import annotations

import sys

import pytest
from kubernetes import client

from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.hostlet import Hostlet, create_hostlet_nodes
from localcluster.upstream import build_upstream, install_upstream, programs
from tests.conftest import require
from tests.workloadspread import scenarios

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def upstream_api():
    require("netns")
    built = build_upstream(log=sys.stderr)
    cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, network=True, kwok=True),
                                 log=sys.stderr)
    hostlet = None
    try:
        create_hostlet_nodes(cluster, ["up-0"])
        cluster.create_nodes(3)
        hostlet = Hostlet(cluster, ["up-0"], programs=programs(built), backoff_initial=1, backoff_max=4,
                          heartbeat_interval=2).start()
        install_upstream(cluster, built, replicas=1, log=sys.stderr)
        api = cluster.api()
        client.CoreV1Api(api).create_namespace({"metadata": {"name": scenarios.NS}})
        yield api
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()


def test_status_deletion_cost_and_scale_down_order(upstream_api):
    scenarios.status_deletion_cost_and_scale_down_order(upstream_api)


def test_creating_pods_kept_until_their_timeout(upstream_api):
    scenarios.creating_pods_kept_until_their_timeout(upstream_api)


def test_adaptive_reschedules_a_pod_unschedulable_in_its_subset(upstream_api):
    scenarios.adaptive_reschedules_a_pod_unschedulable_in_its_subset(upstream_api)


def test_pods_created_before_the_spread_are_adopted_by_node(upstream_api):
    scenarios.pods_created_before_the_spread_are_adopted_by_node(upstream_api)


def test_pods_beyond_max_replicas_are_adopted_at_the_next_reconcile(upstream_api):
    scenarios.pods_beyond_max_replicas_are_adopted_at_the_next_reconcile(upstream_api)


def test_target_filter_replicas_paths_resolve_percent_subsets(upstream_api):
    scenarios.target_filter_replicas_paths_resolve_percent_subsets(upstream_api)


def test_target_filter_selector_keeps_only_the_pods_it_selects(upstream_api):
    scenarios.target_filter_selector_keeps_only_the_pods_it_selects(upstream_api)
