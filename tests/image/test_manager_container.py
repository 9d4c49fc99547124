"""The built image's manager, run by the OCI runtime (crun or runc) on hostlet nodes through the
real chart: Ready through /readyz, one replica leads, a pod gets its sidecar; inside, it runs as
65532 on a read-only root, writes only its cert dir, and has the chart's memory limit as its
cgroup's."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from kruisectl.cli import cli
from kubekit.api import ApiError
from localcluster import cgroups
from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.hostlet import Hostlet, create_hostlet_nodes
from tests.conftest import require, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.image]

NS = "kruise-system"
NODES = [f"oci-{i}" for i in range(3)]
VALUES = {"manager": {"nodeSelector": {"type": "hostlet"}}}
SIDECARSET = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "oci-sidecar"},
              "spec": {"selector": {"matchLabels": {"app": "oci-shop"}},
                       "containers": [{"name": "log-shipper", "image": "registry.example/log-shipper:1"}]}}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, manager_image):
    require("netns")
    cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, network=True), log=sys.stderr)
    hostlet = None
    try:
        create_hostlet_nodes(cluster, NODES, zones=("zone-a", "zone-b", "zone-c"))
        hostlet = Hostlet(cluster, NODES, images=[manager_image.oci_archive], heartbeat_interval=2).start()
        require("oci", None if hostlet.oci is not None else hostlet.oci_unavailable or "none found")
        values = tmp_path_factory.mktemp("oci") / "values.yaml"
        values.write_text(yaml.safe_dump(VALUES))
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["install", "--wait", "--timeout", "240", "-f", str(values),
                                          "--kubeconfig", str(cluster.kubeconfig)],
                                    env={"KRUISECTL_HELM": str(cluster.binary("helm"))}, catch_exceptions=False)
        assert result.exit_code == 0, result.output + _logs(hostlet)
        print(f"3 replicas ready under {hostlet.oci.name} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        yield cluster, hostlet
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()


def _logs(hostlet) -> str:
    return "\n".join(path.read_text(errors="replace")[-1500:] for path in
                     sorted((hostlet.workdir / "pods").glob("kruise-system_*/manager/*.log")))


def _api(cluster, method: str, path: str, body: dict | None = None, **query) -> dict:
    return cluster.client().request(method, path, body=body, timeout=10, **query)


def _or_none(call):
    """The answer, or None while the API refuses (not there yet, webhook not ready)."""
    try:
        return call()
    except ApiError:
        return None


def _pods(cluster) -> list[dict]:
    body = _api(cluster, "GET", f"/api/v1/namespaces/{NS}/pods", labelSelector="control-plane=controller-manager")
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def _container(hostlet, pod: str):
    return hostlet.worker(NS, pod).containers[0]


def _exec(hostlet, pod: str, *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` in the pod's container as the container's user."""
    handle = _container(hostlet, pod).runtime
    config = json.loads((handle.bundle / "config.json").read_text())
    user = config["process"]["user"]
    return hostlet.oci.command("exec", "--user", f"{user['uid']}:{user['gid']}", handle.cid, *argv)


def test_replicas_run_in_the_oci_runtime_ready_through_readyz(deployed):
    cluster, hostlet = deployed
    pods = _pods(cluster)
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert all(c["ready"] for c in pod["status"]["containerStatuses"])
        container = _container(hostlet, pod["metadata"]["name"])
        assert container.runtime is not None, "the manager ran as a plain process"
        state = hostlet.oci.command("state", container.runtime.cid)
        assert json.loads(state.stdout)["status"] == "running"


def test_one_replica_leads(deployed):
    cluster, _ = deployed
    names = {p["metadata"]["name"] for p in _pods(cluster)}
    lease = wait_for(lambda: _or_none(lambda: _api(cluster, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/"
                                                                    "leases/kruise-manager")),
                     timeout=60, what="the kruise-manager Lease")
    assert lease["spec"]["holderIdentity"].split("_")[0] in names


def test_a_pod_gets_its_sidecar(deployed):
    cluster, _ = deployed
    _api(cluster, "POST", "/apis/apps.kruise.io/v1alpha1/sidecarsets", SIDECARSET)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "oci-shop", "labels": {"app": "oci-shop"}},
           "spec": {"containers": [{"name": "shop", "image": "registry.example/shop:1"}]}}

    def injected():
        created = _or_none(lambda: _api(cluster, "POST", "/api/v1/namespaces/default/pods", pod, dryRun="All"))
        return created and "log-shipper" in [c["name"] for c in created["spec"]["containers"]]

    wait_for(injected, timeout=60, interval=1, what="the sidecar from the manager's webhook")


def test_the_container_runs_as_65532_and_writes_only_its_cert_dir(deployed):
    cluster, hostlet = deployed
    pod = _pods(cluster)[0]["metadata"]["name"]
    handle = _container(hostlet, pod).runtime
    pid = json.loads(hostlet.oci.command("state", handle.cid).stdout)["pid"]
    uids = next(line.split()[1:] for line in open(f"/proc/{pid}/status") if line.startswith("Uid:"))
    assert set(uids) == {"65532"}
    cert_dir = "/tmp/kruise-webhook-certs"
    listing = _exec(hostlet, pod, "ls", cert_dir)
    assert listing.returncode == 0 and "tls.crt" in listing.stdout, listing  # the manager wrote its pair there
    assert _exec(hostlet, pod, "touch", f"{cert_dir}/probe").returncode == 0
    for path in ("/probe", "/tmp/probe", "/usr/local/probe", "/nonexistent/probe", "/var/run/secrets/kubernetes.io/serviceaccount/x"):
        denied = _exec(hostlet, pod, "touch", path)
        assert denied.returncode != 0, path
        assert "Read-only file system" in denied.stderr or "No such file" in denied.stderr, denied.stderr


def test_limits_memory_is_the_containers_cgroup_limit(deployed):
    cluster, hostlet = deployed
    pod = _pods(cluster)[0]
    limit = pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit == "512Mi"
    handle = _container(hostlet, pod["metadata"]["name"]).runtime
    config = json.loads((handle.bundle / "config.json").read_text())
    directory = cgroups.memory_dir(hostlet.oci.cgroup_version, config["linux"]["cgroupsPath"])
    name = "memory.max" if hostlet.oci.cgroup_version == "v2" else "memory.limit_in_bytes"
    assert int((directory / name).read_text()) == 512 << 20
    pid = json.loads(hostlet.oci.command("state", handle.cid).stdout)["pid"]
    assert str(pid) in (directory / "cgroup.procs").read_text().split()


def test_exceeding_limits_memory_is_an_oom_kill_by_the_kernel(deployed):
    """A container of the same image that allocates past its limit is killed by the kernel in
    its cgroup, and the pod says OOMKilled (exit 137)."""
    cluster, hostlet = deployed
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "oci-oom", "namespace": "default"},
           "spec": {"nodeSelector": {"type": "hostlet"}, "restartPolicy": "Never",
                    "containers": [{"name": "hog", "image": "kruisectl/kruise-manager:0.1.0",
                                    "command": ["python3", "-c", "b = bytearray(256 << 20); print('survived')"],
                                    "resources": {"limits": {"memory": "64Mi"}}}]}}
    _api(cluster, "POST", "/api/v1/namespaces/default/pods", pod)

    def terminated():
        status = _api(cluster, "GET", "/api/v1/namespaces/default/pods/oci-oom")["status"]
        states = status.get("containerStatuses") or [{}]
        return states[0].get("state", {}).get("terminated")

    state = wait_for(terminated, timeout=60, what="the memory hog to end")
    assert state["reason"] == "OOMKilled" and state["exitCode"] == 137, state
    log = (hostlet.workdir / "pods").glob("default_oci-oom_*/hog/0.log")
    assert "survived" not in "".join(path.read_text() for path in log)
