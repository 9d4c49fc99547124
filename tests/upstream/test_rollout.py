"""A real rollout of the upstream manager: doctor's host-network fix applied as printed,
followed by `kruisectl rollout status`; afterwards controller-runtime names its leader by the
node's hostname, and status still maps it to its pod, node and zone."""

from __future__ import annotations

import json
import time

import pytest

from localcluster.upstream import wait_ready

from kubekit import kruise

from ..conftest import wait_for

pytestmark = pytest.mark.cluster


def test_rollout_status_before_during_and_after_the_host_network_fix(upstream_install):
    code, report = upstream_install.report("rollout", "status")
    assert code == 0 and report["done"], report
    _, doctor = upstream_install.report("doctor")
    fix = next(f["remediation"] for f in doctor["findings"] if f["check"] == "host-network")
    upstream_install.run_fix(fix)
    try:
        code, report = upstream_install.report("rollout", "status")
        assert code == 1 and not report["done"] and not report["failed"], report
        watched = upstream_install.kruisectl("rollout", "status", "--watch", "--timeout", "240s")
        assert watched.exit_code == 0, watched.output
        assert watched.output.rstrip().endswith(f'deployment "{kruise.DEPLOYMENT}" successfully rolled out')
        kubectl = upstream_install.kubectl("-n", kruise.NAMESPACE, "rollout", "status", f"deployment/{kruise.DEPLOYMENT}",
                                           "--timeout=5s")
        assert "successfully rolled out" in kubectl.stdout

        def led_by_node():
            leader = json.loads(upstream_install.kruisectl("status", "-o", "json").stdout)["leader"]
            return leader if leader["holderFoundBy"] == "node" and not leader["stale"] else None

        # Upstream does not release the Lease on shutdown: the new leader comes after it expires.
        leader = wait_for(led_by_node, timeout=60, interval=1, what="a leader named by its node")
        status = json.loads(upstream_install.kruisectl("status", "-o", "json").stdout)
        assert leader["holder"].rsplit("_", 1)[0] == leader["node"]  # <node's hostname>_<uuid>
        pod = next(r for r in status["replicas"] if r["pod"] == leader["pod"])
        assert (pod["node"], pod["zone"], pod["leader"], pod["hostNetwork"]) == (leader["node"], leader["zone"], True, True)
        assert all(r["hostNetwork"] for r in status["replicas"])
        _, doctor = upstream_install.report("doctor")
        by_check = {f["check"]: f for f in doctor["findings"]}
        assert by_check["host-network"]["level"] == "ok"
        assert by_check["leader"]["level"] == "ok" and "names the holder by its node" in by_check["leader"]["message"]
    finally:
        upstream_install.kubectl("-n", kruise.NAMESPACE, "patch", "deployment", kruise.DEPLOYMENT, "--type", "json", "-p",
                                 json.dumps([{"op": "remove", "path": "/spec/template/spec/hostNetwork"}]))
    watched = upstream_install.kruisectl("rollout", "status", "--watch", "--timeout", "240s")
    assert watched.exit_code == 0, watched.output

    def led_by_pod():
        leader = json.loads(upstream_install.kruisectl("status", "-o", "json").stdout)["leader"]
        # Until the old Lease runs out it names a node whose pod no longer has host network:
        # no pod leads then, whichever runs on that node.
        assert leader["holderFoundBy"] != "node", leader
        return leader if leader["holderFoundBy"] == "pod" and not leader["stale"] else None

    wait_for(led_by_pod, timeout=60, interval=0.5, what="a leader named by its pod again")
    wait_ready(upstream_install.cluster, upstream_install.install.replicas, deadline=time.monotonic() + 60)
