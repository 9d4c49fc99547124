"""Every API call the manager makes, as RBAC rules: the chart's Role/ClusterRole grant
exactly these, and tests check the ServiceAccount can do them and nothing more.

Names are filled from the manager's settings (``rules(...)``). ``list``/``watch`` of a single
object are made with ``fieldSelector=metadata.name=…``, which RBAC authorizes against
``resourceNames``; ``create`` cannot be limited by name.
"""

from __future__ import annotations


def rules(lease: str, secret: str, mutating: str, validating: str) -> dict[str, list[dict]]:
    """``{"namespaced": [...], "cluster": [...]}`` PolicyRules."""
    return {
        "namespaced": [
            # lease.py: read, take and renew the leader Lease; watch it while standing by
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease],
             "verbs": ["get", "list", "watch", "update"]},
            # certs.py: create the webhook Secret once, then read, watch and rotate it
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret],
             "verbs": ["get", "list", "watch", "update"]},
            # handlers.py: patchPodMetadata's whitelist, in upstream's kruise-configuration ConfigMap
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kruise-configuration"],
             "verbs": ["get"]},
            # peers.py: each replica's view and readiness gate (conditions of the replicas' pods)
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        ],
        "cluster": [
            # certs.py: keep the caBundle of both webhook configurations
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": [mutating], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
             "resourceNames": [validating], "verbs": ["get", "list", "watch", "patch"]},
            # handlers.py and controller.py: SidecarSets, and the status the leader keeps
            {"apiGroups": ["apps.kruise.io"], "resources": ["sidecarsets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps.kruise.io"], "resources": ["sidecarsets/status"], "verbs": ["get", "update", "patch"]},
            # controller.py: pods counted in status; handlers.py: namespaceSelector matching
            {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
            # workloadspread/: the evicted pod (admission), its deletion cost, Adaptive's reschedule
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch", "delete"]},
            # workloadspread/: the objects, and the creatingPods/deletingPods and subset status
            {"apiGroups": ["apps.kruise.io"], "resources": ["workloadspreads"],
             "verbs": ["get", "list", "watch", "update", "patch"]},
            {"apiGroups": ["apps.kruise.io"], "resources": ["workloadspreads/status"], "verbs": ["get", "update", "patch"]},
            # workloadspread/: a pod's owner chain to its target and the target's replicas
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
            # workloadspread/controller.py: a pod created before its spread joins the subset its node fits
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            # events.py: the Lease's and a replica's Events, and a WorkloadSpread's in its own namespace
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        ],
    }
