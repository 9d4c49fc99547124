"""kubekit.paths spells each resource's path as the apiserver serves it (group, version, plural,
scope, subresource); the cluster tests then use these paths against the real apiserver."""

from __future__ import annotations

import pytest

from kubekit import paths


@pytest.mark.parametrize("built,expected", [
    (paths.pods(), "/api/v1/pods"),
    (paths.pods("ns"), "/api/v1/namespaces/ns/pods"),
    (paths.pods("ns", "p"), "/api/v1/namespaces/ns/pods/p"),
    (paths.pods("ns", "p", "eviction"), "/api/v1/namespaces/ns/pods/p/eviction"),
    (paths.pod_proxy("ns", "p", 8080, "metrics"), "/api/v1/namespaces/ns/pods/p:8080/proxy/metrics"),
    (paths.nodes(), "/api/v1/nodes"),
    (paths.nodes("n1", "status"), "/api/v1/nodes/n1/status"),
    (paths.namespaces("kube-system"), "/api/v1/namespaces/kube-system"),
    (paths.service_accounts("ns", "sa", "token"), "/api/v1/namespaces/ns/serviceaccounts/sa/token"),
    (paths.deployments("ns", "d"), "/apis/apps/v1/namespaces/ns/deployments/d"),
    (paths.leases("kruise-system", "kruise-manager"),
     "/apis/coordination.k8s.io/v1/namespaces/kruise-system/leases/kruise-manager"),
    (paths.endpoint_slices("ns"), "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"),
    (paths.pod_disruption_budgets("ns"), "/apis/policy/v1/namespaces/ns/poddisruptionbudgets"),
    (paths.mutating_webhook_configurations("m"), "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/m"),
    (paths.custom_resource_definitions("sidecarsets.apps.kruise.io"),
     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sidecarsets.apps.kruise.io"),
    (paths.sidecarsets("s"), "/apis/apps.kruise.io/v1alpha1/sidecarsets/s"),
    (paths.workloadspreads("ns"), "/apis/apps.kruise.io/v1alpha1/namespaces/ns/workloadspreads"),
    (paths.workloadspreads(), "/apis/apps.kruise.io/v1alpha1/workloadspreads"),
    (paths.prometheus_rules(), "/apis/monitoring.coreos.com/v1/prometheusrules"),
    (paths.group_version("v1"), "/api/v1"),
    (paths.group_version("apps/v1"), "/apis/apps/v1"),
    (paths.path("batch/v1", "jobs", "ns", "j"), "/apis/batch/v1/namespaces/ns/jobs/j"),
])
def test_paths(built, expected):
    assert built == expected
