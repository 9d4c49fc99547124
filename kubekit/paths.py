"""API paths of the resources the project reads and writes, built in one place so that a
resource's group, version and plural are spelled once.

Each builder takes the namespace (None: every namespace, for a namespaced resource) and
the name (None: the collection), and optionally a subresource: ``pods("ns", "p", "status")``
is ``/api/v1/namespaces/ns/pods/p/status``.
"""

from __future__ import annotations

MONITORING = "monitoring.coreos.com/v1"  # prometheus-operator's CRDs (PrometheusRule, ServiceMonitor)


def group_version(api_version: str) -> str:
    """The root of an ``apiVersion``: ``/api/v1`` for the core group, ``/apis/<group>/<version>``
    otherwise (also its discovery document)."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
         subresource: str | None = None) -> str:
    """Any resource's path: its collection, one object, or one object's subresource."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    tail = f"/{name}" + (f"/{subresource}" if subresource else "") if name else ""
    return f"{group_version(api_version)}{scope}/{plural}{tail}"


def _namespaced(api_version: str, plural: str):
    def build(namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        return path(api_version, plural, namespace, name, subresource)

    build.__doc__ = f"{plural} ({api_version}): a namespace's, or every namespace's when None."
    return build


def _cluster(api_version: str, plural: str):
    def build(name: str | None = None, subresource: str | None = None) -> str:
        return path(api_version, plural, None, name, subresource)

    build.__doc__ = f"{plural} ({api_version}), cluster-scoped."
    return build


namespaces = _cluster("v1", "namespaces")
nodes = _cluster("v1", "nodes")
pods = _namespaced("v1", "pods")
services = _namespaced("v1", "services")
secrets = _namespaced("v1", "secrets")
configmaps = _namespaced("v1", "configmaps")
events = _namespaced("v1", "events")
endpoints = _namespaced("v1", "endpoints")
service_accounts = _namespaced("v1", "serviceaccounts")
deployments = _namespaced("apps/v1", "deployments")
leases = _namespaced("coordination.k8s.io/v1", "leases")
endpoint_slices = _namespaced("discovery.k8s.io/v1", "endpointslices")
pod_disruption_budgets = _namespaced("policy/v1", "poddisruptionbudgets")
mutating_webhook_configurations = _cluster("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations")
validating_webhook_configurations = _cluster("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations")
custom_resource_definitions = _cluster("apiextensions.k8s.io/v1", "customresourcedefinitions")
self_subject_access_reviews = _cluster("authorization.k8s.io/v1", "selfsubjectaccessreviews")
cluster_roles = _cluster("rbac.authorization.k8s.io/v1", "clusterroles")
cluster_role_bindings = _cluster("rbac.authorization.k8s.io/v1", "clusterrolebindings")
roles = _namespaced("rbac.authorization.k8s.io/v1", "roles")
role_bindings = _namespaced("rbac.authorization.k8s.io/v1", "rolebindings")

# OpenKruise's own
sidecarsets = _cluster("apps.kruise.io/v1alpha1", "sidecarsets")
workloadspreads = _namespaced("apps.kruise.io/v1alpha1", "workloadspreads")

# prometheus-operator's
prometheus_rules = _namespaced(MONITORING, "prometheusrules")
service_monitors = _namespaced(MONITORING, "servicemonitors")
pod_monitors = _namespaced(MONITORING, "podmonitors")


def pod_proxy(namespace: str, name: str, port: int, target: str) -> str:
    """``target`` (e.g. ``metrics``) on ``port`` of a pod, through the apiserver's proxy."""
    return f"{pods(namespace, f'{name}:{port}')}/proxy/{target.lstrip('/')}"
