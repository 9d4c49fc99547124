"""`kruisectl rollout` against the real control plane: the capacity check refuses a surge the
scheduler could not place, the recommendation is accepted, and a real rolling update with
maxUnavailable 0 (run by the real deployment controller, pods made ready by kwok) never has
fewer available replicas than desired."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kubernetes import client


from kubekit import kruise

from ..conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


@pytest.fixture
def manager(private):
    """Three zoned kwok nodes of this test's own and a 2-replica host-network manager Deployment
    pinned to them (so only one node is left for surge pods)."""
    api = private.api()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    batch = f"r{uuid.uuid4().hex[:6]}"
    nodes = private.create_nodes(3, prefix=batch, labels={"batch": batch})
    core.create_namespace({"metadata": {"name": batch}})
    wait_for(lambda: core.list_namespaced_service_account(batch).items, timeout=30, what="default ServiceAccount")
    apps.create_namespaced_deployment(batch, {
        "metadata": {"name": kruise.DEPLOYMENT, "labels": kruise.MANAGER_LABELS},
        "spec": {
            "replicas": 2,
            "minReadySeconds": 3,  # kwok readies pods at once; this makes a rollout observable
            "selector": {"matchLabels": kruise.MANAGER_LABELS},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": kruise.MANAGER_LABELS},
                "spec": {
                    "hostNetwork": True,
                    "nodeSelector": {"batch": batch},
                    "containers": [{"name": "manager", "image": "registry.local/kruise-manager:1",
                                    "ports": [{"containerPort": 9876, "name": "webhook"}],
                                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                },
            },
        },
    })
    wait_for(lambda: (apps.read_namespaced_deployment(kruise.DEPLOYMENT, batch).status.available_replicas or 0) == 2,
             timeout=90, what="2 available manager replicas")
    yield private, batch
    core.delete_namespace(batch, propagation_policy="Background")
    for node in nodes:
        core.delete_node(node["metadata"]["name"])


def kruisectl(private, namespace, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "kruisectl", *args, "--kubeconfig", str(private.kubeconfig),
                           "-n", namespace], capture_output=True, text=True, timeout=timeout)


def strategy(private, namespace):
    deployment = client.AppsV1Api(private.api()).read_namespaced_deployment(kruise.DEPLOYMENT, namespace)
    rolling = deployment.spec.strategy.rolling_update
    return rolling.max_surge, rolling.max_unavailable


def test_tune_refuses_a_surge_that_cannot_fit_then_accepts_the_recommendation(manager):
    private, ns = manager
    refused = kruisectl(private, ns, "rollout", "tune", "--max-surge", "100%", "--max-unavailable", "0")
    assert refused.returncode == 1, refused.stderr
    assert "only 1 of 2 surge pods can be scheduled now" in refused.stderr
    assert "--max-surge 1" in refused.stderr
    assert "free ports" in refused.stdout  # the reason: host-network port conflicts
    assert strategy(private, ns) == ("25%", "25%")  # nothing changed

    dry = kruisectl(private, ns, "rollout", "tune", "--max-surge", "1", "--max-unavailable", "0", "--dry-run",
                    "-o", "json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["applied"] is False and report["capacity"] == {
        "wanted": 1, "fits": 1, "recommendedMaxSurge": 1, "reasons": []}
    assert {c["field"] for c in report["changes"]} == {"spec.strategy.rollingUpdate.maxSurge",
                                                       "spec.strategy.rollingUpdate.maxUnavailable"}
    assert strategy(private, ns) == ("25%", "25%")

    accepted = kruisectl(private, ns, "rollout", "tune", "--max-surge", "1", "--max-unavailable", "0")
    assert accepted.returncode == 0, accepted.stderr
    assert "surge 1" in accepted.stdout and "at least 2 available" in accepted.stdout
    assert strategy(private, ns) == (1, 0)
    again = kruisectl(private, ns, "rollout", "tune", "--max-surge", "1")
    assert again.returncode == 0 and "no change" in again.stdout

    forced = kruisectl(private, ns, "rollout", "tune", "--max-surge", "2", "--force", "-o", "json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["applied"] is True
    assert strategy(private, ns) == (2, 0)


@pytest.mark.parametrize("args,message", [
    (["--max-surge", "0", "--max-unavailable", "0"], "may not both be 0"),
    (["--max-surge", "0%", "--max-unavailable", "0"], "may not both be 0"),
    (["--max-unavailable", "150%"], "must not be greater than 100%"),
    (["--max-surge", "ten%"], "must be an integer or a percentage"),
    (["--max-surge", "-1"], "must be an integer or a percentage"),
])
def test_invalid_strategies_are_rejected_in_one_line(manager, args, message):
    private, ns = manager
    result = kruisectl(private, ns, "rollout", "tune", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert strategy(private, ns) == ("25%", "25%")


def test_rolling_update_with_max_unavailable_0_keeps_desired_replicas_available(manager):
    private, ns = manager
    assert kruisectl(private, ns, "rollout", "tune", "--max-surge", "1", "--max-unavailable", "0").returncode == 0
    api = private.api()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    before = {p.metadata.name for p in core.list_namespaced_pod(ns).items}

    def pods_now() -> tuple[int, int]:
        """(live, ready) manager pods: the pods themselves, not the Deployment's status.replicas,
        which sums the ReplicaSets' statuses and lags a scale-down (a ReplicaSet writes the
        status of the pods it listed before deleting one), so it can read 4 while 3 exist."""
        pods = core.list_namespaced_pod(ns, label_selector="control-plane=controller-manager").items
        live = [p for p in pods if not p.metadata.deletion_timestamp]
        return len(live), sum(1 for p in live if any(
            c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])))

    samples: list[tuple[int, int, int]] = []  # (available, ready, live)
    stop = threading.Event()

    def observe():
        deadline = time.monotonic() + 150
        while not stop.is_set() and time.monotonic() < deadline:
            d = apps.read_namespaced_deployment(kruise.DEPLOYMENT, ns)
            live, ready = pods_now()
            samples.append((d.status.available_replicas or 0, ready, live))
            time.sleep(0.1)

    watcher = threading.Thread(target=observe)
    watcher.start()
    try:
        restarted = kruisectl(private, ns, "rollout", "restart")
        assert restarted.returncode == 0, restarted.stderr
        status = kruisectl(private, ns, "rollout", "status", "--watch", "--timeout", "120", timeout=150)
    finally:
        time.sleep(0.5)
        stop.set()
        watcher.join()
    assert status.returncode == 0, status.stdout + status.stderr
    assert 'successfully rolled out' in status.stdout.splitlines()[-1]
    assert "Waiting for deployment" in status.stdout  # it did watch a rollout in progress
    after = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
    assert before.isdisjoint(after) and len(after) == 2  # every replica was replaced
    assert max(live for _, _, live in samples) == 3  # the surge pod existed, and never a second one
    assert min(available for available, _, _ in samples) >= 2
    assert min(ready for _, ready, _ in samples) >= 2


def test_status_reports_a_progress_deadline_exceeded(manager):
    private, ns = manager
    apps = client.AppsV1Api(private.api())
    # A template no node can take, with a short deadline: the controller gives up on it.
    apps.patch_namespaced_deployment(kruise.DEPLOYMENT, ns, {"spec": {
        "progressDeadlineSeconds": 5, "template": {"spec": {"nodeSelector": {"batch": "nowhere"}}}}})
    result = kruisectl(private, ns, "rollout", "status", "--watch", "--timeout", "60", timeout=90)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "exceeded its progress deadline" in result.stdout
    now = kruisectl(private, ns, "rollout", "status", "-o", "json")
    assert now.returncode == 1 and json.loads(now.stdout)["failed"] is True


def test_missing_deployment_is_one_line_exit_2(private):
    result = kruisectl(private, "no-such-ns", "rollout", "status")
    assert result.returncode == 2 and result.stderr.startswith("error: deployment no-such-ns/")
    assert result.stderr.count("\n") == 1


def test_a_plan_made_before_someone_else_edited_the_deployment_is_rejected(manager):
    """The tune patch tests the resourceVersion it was planned against: a concurrent edit wins."""
    from kubernetes.client.exceptions import ApiException

    from kruisectl import rollout

    private, ns = manager
    apps = client.AppsV1Api(private.api())
    planned_on = json.loads(apps.read_namespaced_deployment(kruise.DEPLOYMENT, ns, _preload_content=False).data)
    plan = rollout.plan_tune(planned_on, max_surge=1, max_unavailable=0)
    apps.patch_namespaced_deployment(kruise.DEPLOYMENT, ns, {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "50%"}}}})
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment(kruise.DEPLOYMENT, ns, plan.patch)
    assert raised.value.status == 422, raised.value.body
    assert strategy(private, ns) == ("50%", "25%")  # the other edit stands
