"""Starting and stopping the local control plane leaves nothing behind: not on a clean stop,
not when the owning process is killed, not through `make cluster-up` / `cluster-down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from localcluster import build
from localcluster.processes import alive
from localcluster.network import Network, available as network_unavailable_reason

from .conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

REPO = build.REPO_ROOT


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


OWNER = """
import json, sys, time
from localcluster.cluster import ClusterOptions, LocalCluster
network = sys.argv[1] == "1"
c = LocalCluster.start(ClusterOptions(scheduler=True, kwok=True, network=network))
if network:
    c.add_host("h1")
print(json.dumps({"pids": [x.process.pid for x in c.components], "workdir": str(c.workdir),
                  "netns": [h.netns for h in (c.net.hosts.values() if c.net else [])]}), flush=True)
time.sleep(600)
"""


def test_killed_owner_takes_its_components_with_it():
    network = network_unavailable_reason() is None
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "1" if network else "0"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        started = json.loads(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait()
    assert len(started["pids"]) == 4  # etcd, apiserver, scheduler, kwok
    wait_for(lambda: not any(alive(pid) for pid in started["pids"]), timeout=15,
             what="components to die with their owner")
    if network:
        # The dead owner's network namespaces are cleared by the next network to take its slot.
        fresh = [Network.create() for _ in range(3)]
        try:
            assert not set(started["netns"]) & _netns_names()
        finally:
            for net in fresh:
                net.destroy()


def test_stop_ends_every_component(make_cluster):
    local = make_cluster(scheduler=True, controller_manager=True, kwok=True)
    pids = [c.process.pid for c in local.components]
    assert all(alive(pid) for pid in pids)
    workdir = local.workdir
    processes = {c.name: c.process for c in local.components}
    local.stop()
    assert not any(alive(pid) for pid in pids)
    assert not workdir.exists()
    # each ended on its TERM (kube-apiserver too: asked together with etcd, it hung until KILLed)
    assert {name: p.returncode for name, p in processes.items() if p.returncode == -signal.SIGKILL} == {}


def test_cluster_up_and_down_from_the_shell(tmp_path):
    workdir = tmp_path / "cluster"
    python = sys.executable
    up = subprocess.run([python, "-m", "localcluster", "up", "--dir", str(workdir), "--nodes", "3",
                         "--bare-metal", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    kubeconfig = workdir / "admin.kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in up.stdout
    state = json.loads((workdir / "state.json").read_text())
    kubectl = build.cached_binaries()["kubectl"]
    try:
        nodes = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
                               capture_output=True, text=True, timeout=60, check=True)
        items = json.loads(nodes.stdout)["items"]
        zones = sorted(n["metadata"]["labels"].get("topology.kubernetes.io/zone", "") for n in items)
        assert zones == ["", "zone-a", "zone-b", "zone-c"]
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == state["server"]
    finally:
        down = subprocess.run([python, "-m", "localcluster", "down", "--dir", str(workdir)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in state["pids"].values())


def test_a_reused_workdir_gets_node_credentials_from_its_new_ca(tmp_path):
    """make demo twice: the second cluster has a new CA, so a node certificate left by the first
    must not be reused (it would be 401)."""
    import requests

    from localcluster.cluster import LocalCluster
    from localcluster.hostlet import node_credential

    for _ in range(2):
        local = LocalCluster.start(workdir=tmp_path / "cluster", log=sys.stderr)
        try:
            cert = node_credential(local, "n1")
            response = requests.get(f"{local.server}/api/v1/nodes/n1", cert=tuple(map(str, cert)),
                                    verify=str(local.ca_file), timeout=10)
            assert response.status_code in (403, 404), response.text  # authenticated as the node
        finally:
            local.stop()


def test_the_next_holder_of_an_index_removes_a_cable_whose_namespace_lives_on():
    """A holder killed before its teardown can leave a host's cable whose far end is in a
    namespace that outlives its name (still referenced elsewhere, or not yet freed by the
    kernel): the next holder of the index sees no namespace of that name to delete, yet the
    cable's name is taken. It removes the cable, and cables its own hosts under the same names."""
    reason = network_unavailable_reason()
    assert reason is None, f"network namespaces are needed here: {reason}"
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])  # an unnamed namespace, kept alive
    try:
        ours = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != ours, timeout=5, what="unshare --net")
        killed = Network.create()
        killed.add_host("h0")
        inside = f"kc{killed.index}n10"
        subprocess.run(["ip", "-n", killed.hosts["h0"].netns, "link", "set", inside, "netns", str(holder.pid)],
                       check=True, capture_output=True)
        killed._lock.close()  # as for a killed process: the lock goes, the rest stays
        network = Network.create()
        try:
            assert network.index == killed.index
            assert network.add_host("h0").ip == killed.hosts["h0"].ip
        finally:
            network.destroy()
    finally:
        holder.kill()
        holder.wait(10)
