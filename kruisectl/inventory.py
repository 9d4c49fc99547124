"""The few reads every on-call command needs, done in parallel, each with its own timeout.

Objects are kept as the API's JSON (camelCase), exactly as ``kubectl get -o json`` shows
them. A read that fails is recorded in ``errors`` instead of stopping the others, so one slow
or forbidden call never stalls the whole report; ``fatal()`` says when nothing can be trusted
(cluster unreachable, credentials rejected).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import (DEPLOYMENT_NAME, LEASE_NAME, MANAGER_LABELS, MUTATING_WEBHOOK_CONFIGURATION, SECRET_NAME,
               SERVICE_NAME, VALIDATING_WEBHOOK_CONFIGURATION)
from .errors import describe_api_error


@dataclass
class Names:
    """Object names, upstream OpenKruise's by default."""

    namespace: str
    lease: str = LEASE_NAME
    deployment: str = DEPLOYMENT_NAME
    service: str = SERVICE_NAME
    secret: str = SECRET_NAME
    mutating: str = MUTATING_WEBHOOK_CONFIGURATION
    validating: str = VALIDATING_WEBHOOK_CONFIGURATION
    selector: str = ",".join(f"{k}={v}" for k, v in MANAGER_LABELS.items())


@dataclass
class Inventory:
    names: Names
    lease: dict | None = None
    deployment: dict | None = None
    pods: list[dict] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)  # only nodes hosting manager pods
    service: dict | None = None
    endpoint_slices: list[dict] = field(default_factory=list)
    secret: dict | None = None
    mutating: dict | None = None
    validating: dict | None = None
    # Read only for doctor (``extended``): every node, every pod (for the capacity check), PDBs.
    all_nodes: list[dict] | None = None
    all_pods: list[dict] | None = None
    pdbs: list[dict] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # read -> one-line reason
    statuses: dict[str, int] = field(default_factory=dict)  # read -> HTTP status of a failed read

    def fatal(self) -> str | None:
        """A reason when the cluster could not be read at all (unreachable, unauthorized)."""
        if self.errors and len(self.errors) >= len(READS):
            return next(iter(self.errors.values()))
        for read, status in self.statuses.items():
            if status == 401:
                return self.errors[read]
        return None


def _get(call, *args, timeout: float, **kwargs):
    response = call(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    return json.loads(response.data)


READS = ("lease", "deployment", "pods", "service", "endpoint_slices", "secret", "mutating", "validating")


def collect(api_client, names: Names, timeout: float = 5.0, extended: bool = False) -> Inventory:
    """Read everything in parallel: one round for the objects, one for the pods' nodes."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    coordination = client.CoordinationV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    admission = client.AdmissionregistrationV1Api(api_client)
    ns = names.namespace
    calls = {
        "lease": lambda: _get(coordination.read_namespaced_lease, names.lease, ns, timeout=timeout),
        "deployment": lambda: _get(apps.read_namespaced_deployment, names.deployment, ns, timeout=timeout),
        "pods": lambda: _get(core.list_namespaced_pod, ns, label_selector=names.selector, timeout=timeout)["items"],
        "service": lambda: _get(core.read_namespaced_service, names.service, ns, timeout=timeout),
        "endpoint_slices": lambda: _get(discovery.list_namespaced_endpoint_slice, ns,
                                        label_selector=f"kubernetes.io/service-name={names.service}",
                                        timeout=timeout)["items"],
        "secret": lambda: _get(core.read_namespaced_secret, names.secret, ns, timeout=timeout),
        "mutating": lambda: _get(admission.read_mutating_webhook_configuration, names.mutating, timeout=timeout),
        "validating": lambda: _get(admission.read_validating_webhook_configuration, names.validating, timeout=timeout),
    }
    if extended:
        policy = client.PolicyV1Api(api_client)
        calls.update({
            "all_nodes": lambda: _get(core.list_node, timeout=timeout)["items"],
            "all_pods": lambda: _get(core.list_pod_for_all_namespaces, field_selector="status.phase!=Succeeded,status.phase!=Failed",
                                     timeout=timeout)["items"],
            "pdbs": lambda: _get(policy.list_namespaced_pod_disruption_budget, ns, timeout=timeout)["items"],
        })
    inventory = Inventory(names=names)

    def run(key, call):
        try:
            return key, call(), None, None
        except ApiException as err:
            return key, None, err.status, describe_api_error(err)
        except Exception as err:  # noqa: BLE001 - recorded, never raised
            return key, None, 0, describe_api_error(err)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        for key, value, status, reason in pool.map(lambda item: run(*item), calls.items()):
            if reason is None:
                setattr(inventory, key, value)
            elif status != 404:  # absent is a finding for the caller, not a read error
                inventory.errors[key] = reason
                inventory.statuses[key] = status or 0
        node_names = sorted({p["spec"].get("nodeName") for p in inventory.pods if p["spec"].get("nodeName")})
        for key, value, status, reason in pool.map(
            lambda name: run(f"node/{name}", lambda: _get(core.read_node, name, timeout=timeout)), node_names
        ):
            if reason is None:
                inventory.nodes[value["metadata"]["name"]] = value
            elif status != 404:
                inventory.errors[key] = reason
    return inventory
