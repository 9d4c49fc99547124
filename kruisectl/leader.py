"""Reading the controller's leader-election Lease the way an on-call engineer needs it.

A Lease is *stale* when now > renewTime + leaseDurationSeconds: its holder stopped renewing
and no replica has taken over yet, so no controller is reconciling. Upstream's holder identity
is ``<pod name>_<unique suffix>``; the pod name is what links the leader to a node and a zone.
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


def holder_pod(identity: str | None, pod_names: set[str] | None = None) -> str | None:
    """The pod behind a holder identity: the longest known pod name it starts with, else the
    part before the first ``_`` (client-go's ``<id>_<uuid>`` convention)."""
    if not identity:
        return None
    for name in sorted(pod_names or (), key=len, reverse=True):
        if identity == name or identity.startswith(name + "_"):
            return name
    return identity.split("_", 1)[0]


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

    def to_dict(self) -> dict:
        """camelCase, as every JSON/YAML output of kruisectl (and the API) spells its keys."""
        return {"holder": self.holder, "pod": self.pod, "acquiredAgoSeconds": self.acquired_ago_s,
                "renewedAgoSeconds": self.renewed_ago_s, "leaseDurationSeconds": self.lease_duration_s,
                "transitions": self.transitions, "stale": self.stale, "exists": self.exists}


def interpret(lease: dict | None, pod_names: set[str] | None = None, now: dt.datetime | None = None) -> LeaderState:
    """LeaderState of a Lease given as API JSON (camelCase); a missing Lease is stale."""
    if not lease:
        return LeaderState(None, None, None, None, None, None, stale=True, exists=False)
    now = now or dt.datetime.now(dt.timezone.utc)
    spec = lease.get("spec") or {}
    renew = _parse_time(spec.get("renewTime"))
    acquire = _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    holder = spec.get("holderIdentity") or None
    stale = holder is None or renew is None or duration is None or (now - renew).total_seconds() > duration
    return LeaderState(
        holder=holder,
        pod=holder_pod(holder, pod_names),
        acquired_ago_s=(now - acquire).total_seconds() if acquire else None,
        renewed_ago_s=(now - renew).total_seconds() if renew else None,
        lease_duration_s=duration,
        transitions=spec.get("leaseTransitions"),
        stale=stale,
    )
