"""The hostlet's nodes: creating them (each with its own network-namespace host as InternalIP),
their kubelet credential (``system:node:<name>``, so the Node authorizer holds the hostlet to a
kubelet's rights), and their heartbeat (a kube-node-lease Lease and Ready conditions)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import requests

from ..cluster import REGION_LABEL, ZONE_LABEL, LocalCluster
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
    session = cluster.session()
    for i, name in enumerate(names):
        host = cluster.add_host(name)
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "hostlet"}
        if zones:
            node_labels[ZONE_LABEL] = zones[i % len(zones)]
            node_labels[REGION_LABEL] = region
        node_labels.update(labels or {})
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels},
            "spec": {"taints": list(taints or [])},
            "status": _node_status(host.ip, name, cpu, memory, pods),
        }
        response = session.post(f"{cluster.server}/api/v1/nodes", json=body, timeout=API_TIMEOUT)
        if response.status_code != 201:
            raise HostletError(f"creating node {name}: {response.status_code} {response.text[:300]}")
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

    def session(self, cluster: LocalCluster) -> requests.Session:
        """A new API session as this node (one per thread)."""
        session = requests.Session()
        session.cert = tuple(str(p) for p in self.credential)
        session.verify = str(cluster.ca_file)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace the cluster's CA
        return session


def heartbeat(cluster: LocalCluster, node: NodeAgent, session: requests.Session, lease_duration: int) -> None:
    """One kubelet heartbeat of ``node``: renew its Lease, then post its Ready conditions."""
    renew_lease(cluster, node, session, lease_duration)
    body = {"status": {"conditions": node_conditions()}}
    response = session.patch(f"{cluster.server}/api/v1/nodes/{node.name}/status", data=json.dumps(body),
                             headers={"Content-Type": "application/strategic-merge-patch+json"},
                             timeout=API_TIMEOUT)
    if response.status_code != 200:
        log.warning("node %s status: %s %s", node.name, response.status_code, response.text[:200])


def renew_lease(cluster: LocalCluster, node: NodeAgent, session: requests.Session, lease_duration: int) -> None:
    base = f"{cluster.server}/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases"
    spec = {"holderIdentity": node.name, "leaseDurationSeconds": lease_duration, "renewTime": now_micro()}
    response = session.get(f"{base}/{node.name}", timeout=API_TIMEOUT)
    if response.status_code == 404:
        owner = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
        body = {"metadata": {"name": node.name, "ownerReferences": [owner]}, "spec": spec}
        response = session.post(base, json=body, timeout=API_TIMEOUT)
    elif response.status_code == 200:
        lease = response.json()
        lease["spec"].update(spec)
        response = session.put(f"{base}/{node.name}", json=lease, timeout=API_TIMEOUT)
    if response.status_code not in (200, 201):
        log.warning("node %s lease: %s %s", node.name, response.status_code, response.text[:200])
