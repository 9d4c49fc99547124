"""The status report: leader, replicas, zone spread and webhook summary, from one Inventory.

Pure functions over API JSON, so the same report is built for this project's manager and for
an upstream OpenKruise installation (same names), and is testable without a cluster.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import Counter

from kubekit import kruise

from . import workloadspreads
from .inventory import Inventory
from .leader import interpret

NO_ZONE = "<none>"
UNKNOWN_ZONE = "<unknown>"  # the node could not be read


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def pod_ready(pod: dict) -> bool:
    """The pod's Ready condition is True (what puts it in the Service's endpoints)."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions") or [])


WEBHOOK_GATE = "kruise.io/webhook-reachable"  # the chart's readiness gate (manager/peers.py)


def webhook_gate(pod: dict) -> str | None:
    """The status of the readiness gate the manager's leader writes ("True", "False", "" while
    unset), None for a pod that does not declare it (upstream's chart, or peer probes off)."""
    if not any(g.get("conditionType") == WEBHOOK_GATE for g in pod.get("spec", {}).get("readinessGates") or []):
        return None
    return next((c.get("status", "") for c in pod.get("status", {}).get("conditions") or []
                 if c.get("type") == WEBHOOK_GATE), "")


def _restarts(pod: dict) -> int:
    return sum(int(c.get("restartCount", 0)) for c in pod.get("status", {}).get("containerStatuses") or [])


def _zone_of(nodes: dict[str, dict], node_name: str | None) -> str | None:
    node = nodes.get(node_name or "")
    return ((node or {}).get("metadata", {}).get("labels") or {}).get(kruise.ZONE_LABEL) if node else None


def serving_certificate(secret: dict | None) -> dict:
    """CA and serving cert facts from the webhook Secret (upstream keys, else tls.crt/ca.crt)."""
    from cryptography import x509

    data = (secret or {}).get("data") or {}
    facts: dict = {"ca": None, "notAfter": None, "dnsNames": []}
    ca = data.get("ca-cert.pem") or data.get("ca.crt")
    cert = data.get("cert.pem") or data.get("tls.crt")
    if ca:
        facts["ca"] = base64.b64decode(ca)
    if cert:
        try:
            parsed = x509.load_pem_x509_certificate(base64.b64decode(cert))
            facts["notAfter"] = parsed.not_valid_after_utc
            try:
                san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                facts["dnsNames"] = san.value.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                pass
        except ValueError:
            facts["notAfter"] = None
    return facts


def ca_bundle_state(configurations: list[dict | None], ca: bytes | None) -> str:
    """ok | mismatch | empty | missing (configuration absent) | unknown (no CA to compare)."""
    if any(c is None for c in configurations):
        return "missing"
    bundles = [w.get("clientConfig", {}).get("caBundle") for c in configurations for w in c.get("webhooks") or []]
    if not bundles or any(not b for b in bundles):
        return "empty"
    if ca is None:
        return "unknown"
    return "ok" if all(base64.b64decode(b).strip() == ca.strip() for b in bundles) else "mismatch"


def ready_endpoints(slices: list[dict]) -> list[str]:
    addresses = set()
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True):
                addresses.update(endpoint.get("addresses") or [])
    return sorted(addresses)


def build(inventory: Inventory, now: dt.datetime | None = None) -> dict:
    now = now or dt.datetime.now(dt.timezone.utc)
    pods = sorted(inventory.pods, key=lambda p: p["metadata"]["name"])
    leader = interpret(inventory.lease, pods, now)
    leader_pod = next((p for p in pods if p["metadata"]["name"] == leader.pod), None)
    leader_node = (leader_pod or {}).get("spec", {}).get("nodeName")

    nodes_denied = inventory.denied("node")
    replicas = []
    for pod in pods:
        node = pod["spec"].get("nodeName")
        created = _time(pod["metadata"].get("creationTimestamp"))
        node_unread = bool(node) and node not in inventory.nodes and bool(nodes_denied)
        replicas.append({
            "pod": pod["metadata"]["name"],
            "node": node,
            "zone": UNKNOWN_ZONE if node_unread else _zone_of(inventory.nodes, node),
            "ready": pod_ready(pod),
            "restarts": _restarts(pod),
            "ageSeconds": (now - created).total_seconds() if created else None,
            "hostNetwork": bool(pod["spec"].get("hostNetwork")),
            "podIP": pod.get("status", {}).get("podIP"),
            "phase": pod.get("status", {}).get("phase"),
            "leader": pod["metadata"]["name"] == leader.pod,
            "webhookReachable": webhook_gate(pod),
        })

    scheduled = [r for r in replicas if r["node"]]
    per_zone = Counter(r["zone"] or NO_ZONE for r in scheduled)
    zoned_counts = [n for z, n in per_zone.items() if z not in (NO_ZONE, UNKNOWN_ZONE)]
    cert = serving_certificate(inventory.secret)
    deployment_status = (inventory.deployment or {}).get("status", {})
    endpoints = ready_endpoints(inventory.endpoint_slices)
    return {
        "namespace": inventory.names.namespace,
        "leader": {
            "lease": inventory.names.lease,
            **leader.to_dict(),
            "node": leader_node,
            "zone": _zone_of(inventory.nodes, leader_node),
            "unknown": inventory.denied("lease"),  # the Lease could not be read: no verdict on it
        },
        "deployment": None if inventory.deployment is None else {
            "name": inventory.names.deployment,
            "desired": (inventory.deployment.get("spec") or {}).get("replicas", 1),
            "ready": deployment_status.get("readyReplicas", 0),
            "updated": deployment_status.get("updatedReplicas", 0),
            "available": deployment_status.get("availableReplicas", 0),
        },
        "replicas": replicas,
        "zones": {
            "replicasPerZone": dict(sorted(per_zone.items())),
            "skew": (max(zoned_counts) - min(zoned_counts)) if zoned_counts else None,
            "replicasOnNodesWithoutZone": sorted(r["pod"] for r in scheduled if not r["zone"]),
            "unknown": nodes_denied,
        },
        "webhook": {
            "service": inventory.names.service if inventory.service is not None else None,
            "readyEndpoints": endpoints,
            "readyReplicas": sum(1 for r in replicas if r["ready"]),
            "caBundle": ("unknown (" + denied + ")") if (denied := inventory.denied("mutating", "validating", "secret"))
            else ca_bundle_state([inventory.mutating, inventory.validating], cert["ca"]),
            "certNotAfter": cert["notAfter"].isoformat() if cert["notAfter"] else None,
            "certExpiresInDays": round((cert["notAfter"] - now).total_seconds() / 86400, 1) if cert["notAfter"] else None,
        },
        "workloadSpreads": {
            "missingPods": workloadspreads.missing_pods(inventory.workloadspreads or []),
            "unknown": inventory.denied("workloadspreads"),
        },
        "readErrors": dict(sorted(inventory.errors.items())),
        "replicasUnknown": inventory.denied("pods"),
        "missingPermissions": inventory.forbidden(),
    }


def leader_not_found(report: dict) -> str | None:
    """Why a fresh Lease's holder matches no manager pod (a warning: the controller may still
    be leading from somewhere we cannot see), else None."""
    leader = report["leader"]
    if leader.get("unknown") or not leader["exists"] or leader["stale"] or leader["pod"] or not leader["holder"]:
        return None
    if report.get("replicasUnknown"):
        return None
    host = leader["holder"].split("_", 1)[0]
    return (f"holder {host} not found: no manager pod has that name or runs on a node of that name; "
            "its pod is gone while the Lease is still fresh (another replica takes over within "
            f"{leader['leaseDurationSeconds']}s), or the holder is not a pod of this Deployment")


def problems(report: dict) -> list[str]:
    """Error-level facts that make `status` exit 1."""
    found = []
    leader = report["leader"]
    if leader.get("unknown"):
        pass  # no verdict on a Lease that could not be read
    elif not leader["exists"]:
        found.append(f"no Lease {report['namespace']}/{leader['lease']}: no controller has ever led here")
    elif leader["stale"]:
        found.append("leader lease is STALE: no active leader is reconciling")
    if report.get("replicasUnknown"):
        return found  # no verdict on pods that could not be listed
    if report["deployment"] is None and not report["replicas"]:
        found.append("no manager Deployment or pods found")
    elif not any(r["ready"] for r in report["replicas"]):
        found.append("no ready manager replica: the webhook has no endpoint")
    return found
