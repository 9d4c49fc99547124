"""The hostlet's nodes: creating them (each with its own network-namespace host as InternalIP),
their kubelet credential (``system:node:<name>``, so the Node authorizer holds the hostlet to a
kubelet's rights), and their heartbeat (a kube-node-lease Lease and Ready conditions)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from kubekit import kruise, paths
from kubekit.api import ApiError, Client

from ..cluster import LocalCluster
from ..pki import LocalCA
from .spec import API_TIMEOUT, HostletError, now_micro, now_rfc3339

log = logging.getLogger("kruisectl.hostlet")

NODE_LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.31.0-hostlet"


def create_hostlet_nodes(cluster: LocalCluster, names: list[str], *, zones: tuple[str, ...] = (),
                         region: str = "region-1", labels: Mapping[str, str] | None = None,
                         taints: list[dict] | None = None, cpu: str = "8", memory: str = "32Gi",
                         pods: str = "110") -> list[str]:
    """Nodes for a :class:`Hostlet` (no kwok annotation), each with its own network-namespace
    host as InternalIP; zone labels round-robin over ``zones`` (none when empty)."""
    client = cluster.client()
    for i, name in enumerate(names):
        host = cluster.add_host(name)
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "hostlet"}
        if zones:
            node_labels[kruise.ZONE_LABEL] = zones[i % len(zones)]
            node_labels[kruise.REGION_LABEL] = region
        node_labels.update(labels or {})
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels},
            "spec": {"taints": list(taints or [])},
            "status": _node_status(host.ip, name, cpu, memory, pods),
        }
        try:
            client.request("POST", paths.nodes(), body=body, timeout=API_TIMEOUT)
        except ApiError as err:
            raise HostletError(f"creating node {name}: {str(err)[:300]}") from err
    return list(names)


def _node_status(ip: str, name: str, cpu: str, memory: str, pods: str) -> dict:
    capacity = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "capacity": capacity, "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": node_conditions(),
        "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
                     "architecture": "amd64", "containerRuntimeVersion": "hostlet://1", "osImage": "hostlet",
                     "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "", "bootID": ""},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    }


def node_conditions() -> list[dict]:
    stamp = now_rfc3339()
    pressure = [("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "KubeletHasSufficientPID")]
    conditions = [{"type": kind, "status": "False", "reason": reason, "message": reason,
                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp} for kind, reason in pressure]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "hostlet is posting ready status", "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp})
    return conditions


def node_credential(cluster: LocalCluster, name: str) -> tuple[Path, Path]:
    """A client certificate for ``system:node:<name>`` in group ``system:nodes``: the hostlet
    calls the API as that node's kubelet, so the Node authorizer holds it to what a kubelet may
    do (its own Node and Lease, status of pods bound to it, tokens for their ServiceAccounts)."""
    pki = cluster.workdir / "pki"
    cert_path, key_path = pki / f"node-{name}.crt", pki / f"node-{name}.key"
    # Issued afresh every time: a workdir reused by a new cluster (make demo) has a new CA.
    ca = LocalCA.load(cluster.ca_file.read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = ca.issue(f"system:node:{name}", organizations=("system:nodes",))
    key_path.write_bytes(key)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert)
    return cert_path, key_path


@dataclass
class NodeAgent:
    name: str
    host: object  # network.Host
    credential: tuple[Path, Path]
    allocatable: dict = field(default_factory=dict)
    uid: str = ""
    failed: bool = False  # lost (Hostlet.fail_node): no heartbeat, no pods, off the network

    def client(self, cluster: LocalCluster) -> Client:
        """An API client as this node's kubelet (``system:node:<name>``)."""
        cert, key = self.credential
        return Client.for_certificate(cluster.server, str(cluster.ca_file), str(cert), str(key),
                                      f"hostlet/{self.name}", pool_size=8)


def heartbeat(node: NodeAgent, client: Client, lease_duration: int) -> None:
    """One kubelet heartbeat of ``node``: renew its Lease, then post its Ready conditions."""
    try:
        renew_lease(node, client, lease_duration)
    except ApiError as err:
        log.warning("node %s lease: %s", node.name, str(err)[:200])
    try:
        client.request("PATCH", paths.nodes(node.name, "status"), body={"status": {"conditions": node_conditions()}},
                       content_type="application/strategic-merge-patch+json", timeout=API_TIMEOUT)
    except ApiError as err:
        log.warning("node %s status: %s", node.name, str(err)[:200])


def renew_lease(node: NodeAgent, client: Client, lease_duration: int) -> None:
    path = paths.leases(NODE_LEASE_NAMESPACE)
    spec = {"holderIdentity": node.name, "leaseDurationSeconds": lease_duration, "renewTime": now_micro()}
    try:
        lease = client.get(f"{path}/{node.name}", timeout=API_TIMEOUT)
    except ApiError as err:
        if not err.not_found:
            raise
        owner = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
        client.request("POST", path, body={"metadata": {"name": node.name, "ownerReferences": [owner]}, "spec": spec},
                       timeout=API_TIMEOUT)
        return
    lease["spec"].update(spec)
    client.request("PUT", f"{path}/{node.name}", body=lease, timeout=API_TIMEOUT)
