"""The WorkloadSpread differential test with random combinations (workloadspread_gen, played by
workloadspread_fuzz) against upstream v1.8.3's kruise-manager: a fixed seed and a small count
in CI; ``make fuzz-workloadspread N=… SEED=…`` runs a longer search through the same test.
Every difference fails the test, printed as a case ready for tests/workloadspread/scenarios.py.

The two sides are control planes of one kind, started together for this module: scheduler,
controller-manager, kwok nodes in zones a, b, c and nodes without a zone label; upstream's
manager runs on a hostlet node of its own cluster (one replica), ours as one Fleet replica.

Environment (for the make target): FUZZ_N, FUZZ_SEED, FUZZ_REPORT (a file the summary JSON and
the differences are written to)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.fleet import Fleet
from localcluster.hostlet import Hostlet, create_hostlet_nodes
from localcluster.upstream import build_upstream, install_upstream, programs
from tests.conftest import require, wait_for
from tests.upstream import workloadspread_gen as gen
from tests.upstream.workloadspread_fuzz import FuzzRunner, Side, log

SEED = 20261204
COUNT = 16
# two control planes to start, then a combination takes up to ~30 s, six at a time
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900 + 20 * int(os.environ.get("FUZZ_N", COUNT)))]

OPTIONS = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=True)


def _nodes(cluster: LocalCluster) -> None:
    cluster.create_nodes(len(gen.ZONES) * gen.NODES_PER_ZONE, zones=gen.ZONES, bare_metal=gen.BARE)


@contextlib.contextmanager
def upstream_side():
    built = build_upstream(log=sys.stderr)
    cluster = LocalCluster.start(OPTIONS, log=sys.stderr)
    hostlet = None
    try:
        create_hostlet_nodes(cluster, ["up-0"])
        _nodes(cluster)
        hostlet = Hostlet(cluster, ["up-0"], programs=programs(built), backoff_initial=1, backoff_max=4,
                          heartbeat_interval=2).start()
        install_upstream(cluster, built, replicas=1, log=sys.stderr)
        yield Side("upstream", cluster)
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()


def add_workloadspread_webhooks(cluster: LocalCluster, fleet: Fleet) -> None:
    """The chart's three WorkloadSpread validating webhooks (charts/kruise, checked by
    tests/chart/test_chart_render.py), which Fleet's configuration lacks: the object's
    validation, and pod DELETE and pods/eviction for the status' deletingPods. The manager
    fills their caBundle as for the others."""
    from kubekit import kruise, paths

    api = cluster.client("ws-fuzz-install")
    path = paths.validating_webhook_configurations(kruise.VALIDATING_CONFIGURATION)
    config = api.request("GET", path, timeout=30)
    skip = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                  "values": ["kube-system", fleet.namespace]}]}

    def hook(name, path_, rules, selector=None):
        return {"name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "timeoutSeconds": 10, "rules": rules, **({"namespaceSelector": selector} if selector else {}),
                "clientConfig": {"service": {"namespace": fleet.namespace, "name": kruise.SERVICE, "path": path_,
                                             "port": 443}}}
    config["webhooks"] += [
        hook("vpod.kb.io", kruise.VALIDATE_POD_PATH, [{"operations": ["DELETE"], "apiGroups": [""],
                                                      "apiVersions": ["v1"], "resources": ["pods"]}], skip),
        hook("vpodeviction.kb.io", kruise.VALIDATE_POD_PATH, [{"operations": ["CREATE"], "apiGroups": [""],
                                                              "apiVersions": ["v1"], "resources": ["pods/eviction"]}],
             skip),
        hook("vworkloadspread.kb.io", kruise.VALIDATE_WORKLOADSPREAD_PATH, [{
            "operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
            "resources": ["workloadspreads"]}])]
    api.request("PUT", path, body=config, timeout=30)


@contextlib.contextmanager
def our_side():
    cluster = LocalCluster.start(OPTIONS, log=sys.stderr)
    fleet = None
    try:
        _nodes(cluster)
        fleet = Fleet(cluster).install(1)
        add_workloadspread_webhooks(cluster, fleet)
        fleet.start_all()
        fleet.wait_ready(timeout=90)
        wait_for(fleet.leader, timeout=30, what="a leader")
        yield Side("ours", cluster)
    finally:
        if fleet is not None:
            fleet.stop_all()
        cluster.stop()


@pytest.fixture(scope="module")
def sides():
    """Both control planes, started at once (each takes tens of seconds)."""
    require("netns")
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(stack.enter_context, make()) for make in (upstream_side, our_side)]
        errors = [f.exception() for f in futures]
        if any(errors):
            raise next(e for e in errors if e)
        yield futures[0].result(), futures[1].result()


def test_workloadspread_fuzz(sides):
    theirs, ours = sides
    count = int(os.environ.get("FUZZ_N", COUNT))
    seed = int(os.environ.get("FUZZ_SEED", SEED))
    runner = FuzzRunner(theirs, ours, log=log)
    summary, differences = runner.run(seed, count)
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as out:
            json.dump({"summary": summary, "differences": [
                {"kind": o.kind, "detail": o.detail, "case": case} for o, case in differences],
                "equal_on_retry": runner.retried}, out, indent=1)
    print(json.dumps(summary), file=sys.stderr)
    report = "\n\n".join(f"{o.comb['id']} ({o.kind}): {o.detail}\n{case}" for o, case in differences)
    assert not differences, f"{len(differences)} of {count} combinations differ:\n{report}"
    # the comparison is not vacuous: subsets took pods, and both sides refused WorkloadSpreads
    assert summary["pods_in_subsets"] >= count, summary
    assert summary["refused_by_both"] > 0, summary
