"""`kruisectl status` on the real upstream manager: leader → pod → node → zone as the
cluster has them, and the replicas and webhook as kubectl sees them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster


def pods_and_zones(upstream):
    from kubernetes import client

    core = client.CoreV1Api(upstream.api())
    pods = core.list_namespaced_pod(upstream.namespace, label_selector="control-plane=controller-manager").items
    zones = {n.metadata.name: n.metadata.labels.get("topology.kubernetes.io/zone") for n in core.list_node().items}
    return {p.metadata.name: p for p in pods}, zones


def test_status_maps_the_leader_to_its_pod_node_and_zone(upstream_install):
    code, report = upstream_install.report("status")
    assert code == 0, report
    pods, zones = pods_and_zones(upstream_install)
    leader = report["leader"]
    lease = upstream_install.kubectl("-n", "kruise-system", "get", "lease", "kruise-manager",
                                     "-o", "jsonpath={.spec.holderIdentity}").stdout
    holder_pod = lease.rsplit("_", 1)[0]  # controller-runtime: <hostname>_<uuid>, the hostname the pod's name
    assert leader["holder"] == lease and leader["pod"] == holder_pod and leader["holderFoundBy"] == "pod"
    assert leader["node"] == pods[holder_pod].spec.node_name
    assert leader["zone"] == zones[leader["node"]] and leader["zone"].startswith("zone-")
    assert leader["exists"] and not leader["stale"] and leader["unknown"] is None
    assert leader["renewedAgoSeconds"] < leader["leaseDurationSeconds"] == 15  # upstream's default lease
    assert {r["pod"]: (r["node"], r["zone"], r["ready"], r["leader"]) for r in report["replicas"]} == {
        name: (pod.spec.node_name, zones[pod.spec.node_name], True, name == holder_pod) for name, pod in pods.items()}
    assert sorted(report["webhook"]["readyEndpoints"]) == sorted(p.status.pod_ip for p in pods.values())
    assert report["webhook"]["caBundle"] == "ok"
    text = upstream_install.kruisectl("status").output
    leader_row = next(line for line in text.splitlines() if line.startswith(holder_pod))
    assert leader_row.rstrip().endswith("*") and f"{leader['node']} / {leader['zone']}" in text

