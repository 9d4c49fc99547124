"""`kruisectl label-zones` against the real control plane: plan, apply, re-run, overwrite,
server dry-run, a concurrent edit, interrupt-and-resume, and what labelling does for the
scheduler's zone spread."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner
from kubernetes import client

from kruisectl import zones
from kruisectl.cli import cli
from localcluster.pki import LocalCA

from kubekit import kruise

from ..admission_server import admission_server
from ..conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

RACK = "example.com/rack"


@pytest.fixture
def bare_nodes(private, request):
    """Nodes without zone labels, each with a rack label; removed afterwards."""
    core = client.CoreV1Api(private.api())
    prefix = f"bm{abs(hash(request.node.name)) % 10**6}"
    count = getattr(request, "param", 6)
    created = private.create_nodes(0, bare_metal=count, prefix=prefix)
    names = [n["metadata"]["name"] for n in created]
    for i, name in enumerate(names):
        core.patch_node(name, {"metadata": {"labels": {RACK: f"rack-{i % 3}", "batch": prefix}}})
    yield prefix, names
    for name in names:
        core.delete_node(name)


def run(private, *args):
    return CliRunner().invoke(cli, ["label-zones", "--kubeconfig", str(private.kubeconfig), *args],
                              catch_exceptions=False)


def zone_of(core, names):
    return {n: (core.read_node(n).metadata.labels or {}).get(kruise.ZONE_LABEL) for n in names}


def test_plan_changes_nothing_then_apply_then_rerun_is_a_no_op(private, bare_nodes):
    prefix, names = bare_nodes
    core = client.CoreV1Api(private.api())

    planned = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "-o", "json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert {row["node"]: row["zone"] for row in plan["plan"]} == {n: f"rack-{i % 3}" for i, n in enumerate(names)}
    assert plan["summary"]["label"] == len(names)
    assert set(zone_of(core, names).values()) == {None}, "a plan writes nothing"

    applied = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--apply")
    assert applied.exit_code == 0, applied.output
    assert f"labelled {len(names)} node(s)" in applied.output
    assert zone_of(core, names) == {n: f"rack-{i % 3}" for i, n in enumerate(names)}

    again = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--apply", "-o", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["applied"] == []


def test_different_value_is_kept_unless_overwrite_and_then_reported(private, bare_nodes):
    prefix, names = bare_nodes
    core = client.CoreV1Api(private.api())
    core.patch_node(names[0], {"metadata": {"labels": {kruise.ZONE_LABEL: "hand-set"}}})

    refused = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--apply")
    assert refused.exit_code == 1
    assert f"not labelled {names[0]}" in refused.output
    assert zone_of(core, [names[0]])[names[0]] == "hand-set"
    assert zone_of(core, [names[1]])[names[1]] == "rack-1", "the others are labelled"

    replaced = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--apply", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert f"{names[0]}: replaced {kruise.ZONE_LABEL}=hand-set" in replaced.output
    assert zone_of(core, [names[0]])[names[0]] == "rack-0"


def test_server_dry_run_validates_without_persisting(private, bare_nodes):
    prefix, names = bare_nodes
    core = client.CoreV1Api(private.api())
    result = run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--dry-run=server")
    assert result.exit_code == 0, result.output
    assert f"would label (server dry-run) {len(names)} node(s)" in result.output
    assert set(zone_of(core, names).values()) == {None}


def test_zone_for_named_nodes_and_unknown_node_is_an_error(private, bare_nodes):
    prefix, names = bare_nodes
    core = client.CoreV1Api(private.api())
    result = run(private, "--zone", "zone-x", names[0], names[1], "--apply")
    assert result.exit_code == 0, result.output
    assert zone_of(core, names[:3]) == {names[0]: "zone-x", names[1]: "zone-x", names[2]: None}
    missing = run(private, "--zone", "zone-x", "no-such-node", "--apply")
    assert missing.exit_code == 2 and "no such node(s): no-such-node" in missing.output


def test_node_changed_after_planning_is_reread_not_clobbered(private, bare_nodes):
    prefix, names = bare_nodes
    core = client.CoreV1Api(private.api())
    source = zones.FromLabel(RACK)
    rows = zones.plan(zones.list_nodes(private.client(), f"batch={prefix}"), source)
    assert all(r.action == zones.LABEL for r in rows)
    # Someone else sets a zone on one node between our plan and our write.
    core.patch_node(names[2], {"metadata": {"labels": {kruise.ZONE_LABEL: "set-by-someone-else"}}})

    outcomes = {o.node: o for o in zones.apply(zones.NodeWriter(private.client()), rows, source, include_region=False, overwrite=False)}
    assert not outcomes[names[2]].applied
    assert "changed meanwhile" in outcomes[names[2]].error
    assert zone_of(core, [names[2]])[names[2]] == "set-by-someone-else"
    assert all(outcomes[n].applied for n in names if n != names[2])


class PatchGate:
    """A validating webhook (on a loopback URL) for one batch's nodes that lets the first
    labelling patch through and holds the next until released: a run is then always part-way
    when it is interrupted, however fast the apiserver answers."""

    HOLD_S = 8  # under the CLI's 10 s request timeout: a forgotten release fails, not hangs

    def __init__(self, batch: str, tmp_path):
        self.batch, self.passed, self.lock = batch, 0, threading.Lock()
        self.probed, self.holding, self.released = threading.Event(), threading.Event(), threading.Event()
        ca = LocalCA("patch-gate-ca")
        cert, key = ca.issue("patch-gate", ips=("127.0.0.1",), server=True)
        (tmp_path / "gate.crt").write_bytes(cert)
        (tmp_path / "gate.key").write_bytes(key)
        self.ca_bundle = base64.b64encode(ca.cert_pem).decode()
        self.server = admission_server("127.0.0.1", 0, tmp_path / "gate.crt", tmp_path / "gate.key", self.answer)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: dict) -> dict:
        self.admit(request)
        return {"allowed": True}

    def admit(self, request: dict) -> None:
        if request.get("dryRun"):
            self.probed.set()
            return
        labelling = kruise.ZONE_LABEL in (request["object"]["metadata"].get("labels") or {}) and \
            kruise.ZONE_LABEL not in ((request.get("oldObject") or {}).get("metadata", {}).get("labels") or {})
        if not labelling:
            return
        with self.lock:
            self.passed += 1
            hold = self.passed > 1
        if hold:
            self.holding.set()
            self.released.wait(self.HOLD_S)

    def configuration(self) -> dict:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": f"gate-{self.batch}"},
            "webhooks": [{
                "name": "gate.kruisectl.test",
                "clientConfig": {"url": f"https://127.0.0.1:{self.server.server_address[1]}/",
                                 "caBundle": self.ca_bundle},
                "rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["nodes"]}],
                "objectSelector": {"matchLabels": {"batch": self.batch}},
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }],
        }

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("bare_nodes", [60], indirect=True)
def test_interrupted_run_resumes_and_converges(private, bare_nodes, tmp_path):
    prefix, names = bare_nodes
    api = private.api()
    core, admission = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)

    def labelled():
        return sum(1 for z in zone_of(core, names).values() if z)

    gate, first = PatchGate(prefix, tmp_path), None
    admission.create_validating_webhook_configuration(gate.configuration())
    try:
        # The apiserver picks a new configuration up within a moment: until it calls the gate
        # (a server dry-run patch reaches it), the run would not be held.
        wait_for(lambda: core.patch_node(names[0], {"metadata": {"labels": {"gate-probe": "1"}}}, dry_run="All")
                 and gate.probed.is_set(), timeout=30, interval=0.5, what="the apiserver to call the gate")
        argv = [sys.executable, "-m", "kruisectl", "label-zones", "--kubeconfig", str(private.kubeconfig),
                "--from-label", RACK, "-l", f"batch={prefix}", "--apply", "--concurrency", "1"]
        first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # One patch in flight at a time: the first goes through, the second waits in the gate.
        wait_for(lambda: gate.holding.is_set() or first.poll() is not None, timeout=60, interval=0.05,
                 what="the second patch to reach the gate")
        assert gate.holding.is_set(), f"the run ended before its second patch: {first.communicate(timeout=60)}"
        first.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the CLI's handler only sets a flag and runs at once; this is margin
        gate.released.set()  # from here on the gate lets every patch through
        out, err = first.communicate(timeout=60)
        assert "Traceback" not in err
        done_first = labelled()
        assert first.returncode == 130, err
        assert 0 < done_first < len(names)

        resumed = subprocess.run(argv + ["-o", "json"], capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert len(json.loads(resumed.stdout)["applied"]) == len(names) - done_first
        assert zone_of(core, names) == {n: f"rack-{i % 3}" for i, n in enumerate(names)}
    finally:
        if first is not None and first.poll() is None:
            first.kill()
        admission.delete_validating_webhook_configuration(f"gate-{prefix}")
        gate.stop()


@pytest.mark.parametrize("bare_nodes", [3], indirect=True)
def test_labelling_lets_a_strict_zone_spread_schedule(private, bare_nodes):
    """Before: no node has the zone key, so a DoNotSchedule spread cannot place anything.
    After label-zones, the real scheduler places one replica per zone."""
    prefix, names = bare_nodes
    api = private.api()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    # Only this test's nodes are eligible: the deployment selects them by label.
    core.create_namespace({"metadata": {"name": prefix}})
    wait_for(lambda: core.list_namespaced_service_account(prefix).items, timeout=30, what="default ServiceAccount")
    apps.create_namespaced_deployment(prefix, {
        "metadata": {"name": "spread"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "spread"}},
            "template": {
                "metadata": {"labels": {"app": "spread"}},
                "spec": {
                    "nodeSelector": {"batch": prefix},
                    "containers": [{"name": "c", "image": "registry.local/c:1"}],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": kruise.ZONE_LABEL, "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": "spread"}}, "matchLabelKeys": ["pod-template-hash"],
                    }],
                },
            },
        },
    })
    wait_for(lambda: len(core.list_namespaced_pod(prefix).items) == 3, timeout=60, what="3 pods")
    time.sleep(3)  # give the scheduler its chance: it must not place them
    assert all(not p.spec.node_name for p in core.list_namespaced_pod(prefix).items)

    # Pending pods would race the labelling (while only one zone exists, every pod fits it), so
    # scale down, label, and scale up again, as an operator would.
    apps.patch_namespaced_deployment_scale("spread", prefix, {"spec": {"replicas": 0}})
    wait_for(lambda: not core.list_namespaced_pod(prefix).items, timeout=60, what="pods to go")
    assert run(private, "--from-label", RACK, "-l", f"batch={prefix}", "--apply").exit_code == 0
    apps.patch_namespaced_deployment_scale("spread", prefix, {"spec": {"replicas": 3}})
    wait_for(lambda: len(core.list_namespaced_pod(prefix).items) == 3, timeout=60, what="3 pods again")
    wait_for(lambda: all(p.spec.node_name for p in core.list_namespaced_pod(prefix).items), timeout=90,
             what="the scheduler to place the pods after labelling")
    zones_by_node = zone_of(core, names)
    placed = Counter(zones_by_node[p.spec.node_name] for p in core.list_namespaced_pod(prefix).items)
    assert sorted(placed.values()) == [1, 1, 1] and set(placed) == {"rack-0", "rack-1", "rack-2"}
    core.delete_namespace(prefix)
