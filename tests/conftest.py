"""Shared fixtures: the real local control plane (see localcluster)."""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.network import available as network_unavailable_reason


def pytest_configure(config):
    """Tests that need the local control plane (or its built binaries) carry the ``cluster``
    mark, set in their module. When a run deselects them (``make test-unit``), starting a
    cluster or building binaries raises, so an unmarked cluster test cannot hide in the
    fast tier."""
    if "not cluster" in (config.getoption("markexpr", "") or ""):
        os.environ["KRUISECTL_TEST_TIER"] = "unit"


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def cluster():
    """One full control plane for the session: etcd, apiserver, controller-manager, scheduler,
    kwok; 6 kwok nodes over zone-a/b/c and 2 bare-metal nodes without a zone label, each a
    network-namespace host when this machine allows it. Tests share it: use their own
    namespaces (``namespace`` fixture) and never change these nodes."""
    network = network_unavailable_reason() is None
    options = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=network)
    local = LocalCluster.start(options, log=sys.stderr)
    try:
        local.create_nodes(6, bare_metal=2, with_hosts=network)
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def private():
    """A full control plane of the test module's own, for tests that change nodes or other
    cluster-wide state."""
    local = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, kwok=True), log=sys.stderr)
    yield local
    local.stop()


@pytest.fixture
def make_cluster():
    """Factory for a private control plane (for tests that change cluster-wide state)."""
    started: list[LocalCluster] = []

    def make(**options) -> LocalCluster:
        local = LocalCluster.start(ClusterOptions(**options), log=sys.stderr)
        started.append(local)
        return local

    yield make
    for local in started:
        local.stop()


@pytest.fixture
def api(cluster):
    return cluster.api()


@pytest.fixture
def namespace(cluster, api):
    """A fresh namespace, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30, what=f"default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")
