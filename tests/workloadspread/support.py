"""What a manager fleet needs beyond the SidecarSet manager's RBAC to serve WorkloadSpread's
pod webhook (the chart's rules are another change's): WorkloadSpreads and their status, the
pods' owners (evicted pods are listed by name: the manager lists pods already)."""

from __future__ import annotations

from kubernetes import client

GROUP = "apps.kruise.io"
RULES = [
    {"apiGroups": [GROUP], "resources": ["workloadspreads"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": ["workloadspreads/status"], "verbs": ["get", "update"]},
    {"apiGroups": ["apps"], "resources": ["replicasets", "deployments"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
]


def grant(api, fleet, name: str = "kruise-manager-workloadspread-test") -> None:
    """Bind :data:`RULES` to the fleet's ServiceAccount (before its replicas start)."""
    rbac_api = client.RbacAuthorizationV1Api(api)
    rbac_api.create_cluster_role({"metadata": {"name": name}, "rules": RULES})
    rbac_api.create_cluster_role_binding({
        "metadata": {"name": name},
        "subjects": [{"kind": "ServiceAccount", "name": fleet.account, "namespace": fleet.namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
