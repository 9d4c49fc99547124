"""Reading the controller's leader-election Lease the way an on-call engineer needs it.

A Lease is *stale* when now > renewTime + leaseDurationSeconds: its holder stopped renewing
and no replica has taken over yet, so no controller is reconciling. Upstream's holder identity
is ``<hostname>_<unique suffix>``: the pod's name, or with host network the node's, which is
what links the leader to a pod, a node and a zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def _parse_time(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    text = str(value).replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def holder_identity_host(identity: str | None) -> str | None:
    """The part of a holder identity before client-go's ``_<uuid>`` suffix (a pod name, or with
    host network a hostname). Neither a pod name nor a node name may contain ``_``."""
    return identity.split("_", 1)[0] if identity else None


def resolve_holder(identity: str | None, pods: list[dict] | None) -> tuple[dict | None, str | None]:
    """The manager pod that holds the Lease, and how it was found: ``"pod"`` (the identity
    names the pod), ``"node"`` (host network: controller-runtime's identity is the hostname,
    i.e. the node's name; the host-network manager pod on that node), or ``(None, None)``."""
    host = holder_identity_host(identity)
    if not host:
        return None, None
    pods = pods or []
    for pod in pods:
        if pod["metadata"]["name"] == host:
            return pod, "pod"
    # Only a host-network pod's hostname is its node's: a pod without host network on that
    # node (say, after a rollout off host network) is not the holder.
    host_network = [p for p in pods if (p.get("spec") or {}).get("nodeName") == host
                    and (p.get("spec") or {}).get("hostNetwork")]
    on_node = [p for p in host_network if not (p.get("metadata") or {}).get("deletionTimestamp")] or host_network
    if len(on_node) == 1:
        return on_node[0], "node"
    return None, None


@dataclass
class LeaderState:
    holder: str | None
    pod: str | None
    acquired_ago_s: float | None
    renewed_ago_s: float | None
    lease_duration_s: int | None
    transitions: int | None
    stale: bool
    exists: bool = True
    found_by: str | None = None  # "pod" | "node": how the holder was matched to a manager pod

    def to_dict(self) -> dict:
        """camelCase, as every JSON/YAML output of kruisectl (and the API) spells its keys."""
        return {"holder": self.holder, "pod": self.pod, "acquiredAgoSeconds": self.acquired_ago_s,
                "renewedAgoSeconds": self.renewed_ago_s, "leaseDurationSeconds": self.lease_duration_s,
                "transitions": self.transitions, "stale": self.stale, "exists": self.exists,
                "holderFoundBy": self.found_by}


def interpret(lease: dict | None, pods: list[dict] | None = None, now: dt.datetime | None = None) -> LeaderState:
    """LeaderState of a Lease given as API JSON (camelCase), its holder matched to one of the
    manager ``pods``; a missing Lease is stale."""
    if not lease:
        return LeaderState(None, None, None, None, None, None, stale=True, exists=False)
    now = now or dt.datetime.now(dt.timezone.utc)
    spec = lease.get("spec") or {}
    renew = _parse_time(spec.get("renewTime"))
    acquire = _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    holder = spec.get("holderIdentity") or None
    stale = holder is None or renew is None or duration is None or (now - renew).total_seconds() > duration
    pod, found_by = resolve_holder(holder, pods)
    return LeaderState(
        holder=holder,
        pod=pod["metadata"]["name"] if pod else None,
        found_by=found_by,
        acquired_ago_s=(now - acquire).total_seconds() if acquire else None,
        renewed_ago_s=(now - renew).total_seconds() if renew else None,
        lease_duration_s=duration,
        transitions=spec.get("leaseTransitions"),
        stale=stale,
    )
