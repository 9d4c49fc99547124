"""The few reads every on-call command needs, done in parallel, each with its own timeout.

Objects are kept as the API's JSON (camelCase), exactly as ``kubectl get -o json`` shows
them. A read that fails is recorded in ``errors`` instead of stopping the others, so one slow
or forbidden call never stalls the whole report; ``fatal()`` says when nothing can be trusted
(cluster unreachable, credentials rejected).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubekit import kruise, paths

from .errors import describe_api_error


@dataclass
class Names:
    """Object names, upstream OpenKruise's by default."""

    namespace: str
    lease: str = kruise.LEASE
    deployment: str = kruise.DEPLOYMENT
    service: str = kruise.SERVICE
    secret: str = kruise.SECRET
    mutating: str = kruise.MUTATING_CONFIGURATION
    validating: str = kruise.VALIDATING_CONFIGURATION
    selector: str = ",".join(f"{k}={v}" for k, v in kruise.MANAGER_LABELS.items())


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
    # Read only for doctor: prometheus-operator's API (its discovery document; 404 when not
    # served), every PrometheusRule, ServiceMonitor and PodMonitor, the namespace's Services.
    monitoring: dict | None = None
    prometheus_rules: list[dict] | None = None
    service_monitors: list[dict] | None = None
    pod_monitors: list[dict] | None = None
    services: list[dict] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # read -> one-line reason
    statuses: dict[str, int] = field(default_factory=dict)  # read -> HTTP status of a failed read
    absent: list[str] = field(default_factory=list)  # reads answered 404 (the object does not exist)
    namespace_exists: bool = True
    # kube-system and the manager's namespace as read (their labels decide what a webhook's
    # namespaceSelector skips); a namespace not read here is judged by the label the apiserver
    # always sets, kubernetes.io/metadata.name.
    namespaces: dict[str, dict] = field(default_factory=dict)
    # Read only for doctor: the helm release record of the Deployment's release (its summary by
    # kruisectl.release: the chart's name and version for a printed ``helm upgrade``), or why it
    # was not read. Not one of ``errors``: without it a fix lacks the chart version (and says
    # so), no verdict is unknown.
    helm_release: dict | None = None
    helm_release_error: str | None = None
    # Every WorkloadSpread (doctor's subset checks, status's missing pods); None when not read,
    # [] when the CRD is not installed (the list answers 404).
    workloadspreads: list[dict] | None = None

    def namespace_labels(self, name: str) -> dict[str, str]:
        read = self.namespaces.get(name)
        if read is not None:
            return (read.get("metadata") or {}).get("labels") or {}
        return {"kubernetes.io/metadata.name": name}

    def to_dict(self) -> dict:
        """The inventory as JSON-ready data (recorded from a cluster for tests and reports)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Inventory":
        return cls(**{**data, "names": Names(**data["names"])})

    def denied(self, *reads: str) -> str | None:
        """``forbidden: <verb> <resource>`` when any of ``reads`` was refused (403), else None.
        ``node`` stands for every per-node read, ``namespace`` for every namespace read."""
        refused = []
        for read, status in self.statuses.items():
            key = read.split("/", 1)[0]
            if status == 403 and key in reads:
                refused.append(permission(key, self.names.namespace))
        return f"forbidden: {', '.join(dict.fromkeys(refused))}" if refused else None

    def forbidden(self) -> list[str]:
        """Every permission a refused read needed, as ``kubectl auth can-i`` names them."""
        keys = {r.split("/", 1)[0] for r, status in self.statuses.items() if status == 403}
        return sorted({permission(key, self.names.namespace) for key in keys})

    def fatal(self) -> str | None:
        """A reason when nothing can be trusted: the credentials were rejected, or no read
        reached the apiserver at all. (Refused reads are not fatal: their verdicts are unknown.)"""
        if all(key in self.errors and self.statuses.get(key) == 0 for key in READS):
            return self.errors[READS[0]]
        for read, status in self.statuses.items():
            if status == 401:
                return self.errors[read]
        return None


MONITORING_API = paths.MONITORING  # prometheus-operator's CRDs (PrometheusRule, ServiceMonitor)

READS = ("lease", "deployment", "pods", "service", "endpoint_slices", "secret", "mutating", "validating")

# What each read needs, as `kubectl auth can-i` takes it: (verb, resource, namespaced).
PERMISSIONS = {
    "lease": ("get", "leases.coordination.k8s.io", True),
    "deployment": ("get", "deployments.apps", True),
    "pods": ("list", "pods", True),
    "service": ("get", "services", True),
    "endpoint_slices": ("list", "endpointslices.discovery.k8s.io", True),
    "secret": ("get", "secrets", True),
    "mutating": ("get", "mutatingwebhookconfigurations.admissionregistration.k8s.io", False),
    "validating": ("get", "validatingwebhookconfigurations.admissionregistration.k8s.io", False),
    "node": ("get", "nodes", False),
    "namespace": ("get", "namespaces", False),
    "all_nodes": ("list", "nodes", False),
    "all_pods": ("list", "pods --all-namespaces", False),
    "pdbs": ("list", "poddisruptionbudgets.policy", True),
    "monitoring": ("get", "/apis/monitoring.coreos.com/v1 (discovery)", False),
    "prometheus_rules": ("list", "prometheusrules.monitoring.coreos.com --all-namespaces", False),
    "service_monitors": ("list", "servicemonitors.monitoring.coreos.com --all-namespaces", False),
    "pod_monitors": ("list", "podmonitors.monitoring.coreos.com --all-namespaces", False),
    "services": ("list", "services", True),
    "workloadspreads": ("list", "workloadspreads.apps.kruise.io --all-namespaces", False),
}


def permission(read: str, namespace: str) -> str:
    verb, resource, namespaced = PERMISSIONS[read]
    return f"{verb} {resource}" + (f" -n {namespace}" if namespaced else "")


# collect reads at most this many objects at once; a client made for it keeps as many
# connections (urllib3 warns, and reconnects, when a pool is smaller than its readers).
PARALLEL_READS = 32


def collect(client, names: Names, timeout: float = 5.0, extended: bool = False) -> Inventory:
    """Read everything in parallel with ``client`` (a kubekit.api.Client): one round for the
    objects, one for the pods' nodes and, where its API is served, prometheus-operator's objects."""
    from kubekit.api import ApiError

    ns = names.namespace

    def get(path: str, **query):
        return lambda: client.get(path, timeout, **query)

    def items(path: str, **query):
        return lambda: client.get(path, timeout, **query)["items"]

    calls = {
        "lease": get(paths.leases(ns, names.lease)),
        "deployment": get(paths.deployments(ns, names.deployment)),
        "pods": items(paths.pods(ns), labelSelector=names.selector),
        "service": get(paths.services(ns, names.service)),
        "endpoint_slices": items(paths.endpoint_slices(ns), labelSelector=f"kubernetes.io/service-name={names.service}"),
        "secret": get(paths.secrets(ns, names.secret)),
        "mutating": get(paths.mutating_webhook_configurations(names.mutating)),
        "validating": get(paths.validating_webhook_configurations(names.validating)),
        "workloadspreads": items(kruise.WORKLOADSPREADS_PATH),
    }
    if extended:
        calls.update({
            "all_nodes": items(paths.nodes()),
            "all_pods": items(paths.pods(), fieldSelector="status.phase!=Succeeded,status.phase!=Failed"),
            "pdbs": items(paths.pod_disruption_budgets(ns)),
            "monitoring": get(paths.group_version(MONITORING_API)),
            "services": items(paths.services(ns)),
        })
    inventory = Inventory(names=names)

    def run(key, call):
        try:
            return key, call(), None, None
        except ApiError as err:
            return key, None, err.status, describe_api_error(err)
        except Exception as err:  # noqa: BLE001 - recorded, never raised
            return key, None, 0, describe_api_error(err)

    for name in dict.fromkeys(("kube-system", ns)):
        calls[f"namespace/{name}"] = get(paths.namespaces(name))
    def keep(key, value, status, reason):
        if key.startswith("namespace/"):
            if key == f"namespace/{ns}":
                inventory.namespace_exists = status != 404
            if reason is None:
                inventory.namespaces[value["metadata"]["name"]] = value
            elif status not in (404, None):
                inventory.errors[key] = reason
                inventory.statuses[key] = status or 0
        elif reason is None:
            setattr(inventory, key, value)
        elif status == 404:  # absent is a finding for the caller, not a read error
            inventory.absent.append(key)
            if key == "workloadspreads":
                inventory.workloadspreads = []  # no CRD: no WorkloadSpread
        else:
            inventory.errors[key] = reason
            inventory.statuses[key] = status or 0

    with ThreadPoolExecutor(max_workers=min(len(calls), PARALLEL_READS)) as pool:
        for result in pool.map(lambda item: run(*item), calls.items()):
            keep(*result)
        # prometheus-operator's objects only where its API is served: asking a cluster without
        # it would need list rights on resources that do not exist (403 comes before 404).
        monitors = {} if inventory.monitoring is None else {
            "prometheus_rules": items(paths.prometheus_rules()),
            "service_monitors": items(paths.service_monitors()),
            "pod_monitors": items(paths.pod_monitors()),
        }
        pending_monitors = pool.map(lambda item: run(*item), monitors.items())
        node_names = sorted({p["spec"].get("nodeName") for p in inventory.pods if p["spec"].get("nodeName")})
        record = pool.submit(_read_release_record, client, inventory, timeout) if extended else None
        for key, value, status, reason in pool.map(
            lambda name: run(f"node/{name}", get(paths.nodes(name))), node_names
        ):
            if reason is None:
                inventory.nodes[value["metadata"]["name"]] = value
            elif status != 404:
                inventory.errors[key] = reason
                inventory.statuses[key] = status or 0
        for result in pending_monitors:
            keep(*result)
        if record is not None:
            record.result()
    return inventory


def _read_release_record(client, inventory: Inventory, timeout: float) -> None:
    from . import release

    found = release.of(inventory.deployment)
    if found is None:
        return
    try:
        inventory.helm_release = release.read_record(client, found.namespace, found.name, timeout)
    except ValueError as err:
        inventory.helm_release_error = str(err)


_OBJECT_KINDS = {"lease": ("lease", "lease"), "deployment": ("deployment", "deployment"),
                 "service": ("service", "service"), "secret": ("secret", "secret"),
                 "mutating": ("mutatingwebhookconfiguration", "mutating"),
                 "validating": ("validatingwebhookconfiguration", "validating")}


def installs_elsewhere(client, names: Names, timeout: float) -> list[str]:
    """Namespaces other than ``names.namespace`` with pods labelled as the manager's."""
    try:
        pods = client.get(paths.pods(), timeout, labelSelector=names.selector)["items"]
    except Exception:  # noqa: BLE001 - only a hint: nothing to add when it cannot be read
        return []
    return sorted({p["metadata"]["namespace"] for p in pods} - {names.namespace})


def ensure_target(client, inventory: Inventory, explicit: set[str], timeout: float) -> None:
    """A KruisectlError (exit 2, and no other claim) when the namespace does not exist or an object the
    user named explicitly is not there; says where a manager was found instead."""
    from .errors import KruisectlError

    names = inventory.names
    wrong = []
    if not inventory.namespace_exists:
        wrong.append(f"namespace {names.namespace} does not exist")
    else:
        for key in sorted(explicit & set(inventory.absent)):
            kind, attr = _OBJECT_KINDS[key]
            scope = "" if kind.endswith("webhookconfiguration") else f"{names.namespace}/"
            wrong.append(f"{kind} {scope}{getattr(names, attr)} not found")
    if not wrong:
        return
    elsewhere = installs_elsewhere(client, names, timeout)
    hint = f" (pods labelled {names.selector} run in: {', '.join(elsewhere)}; pass -n)" if elsewhere else ""
    raise KruisectlError("; ".join(wrong) + hint)


def watch_changes(client, names: Names, changed, stop, timeout_s: int = 300) -> list:
    """Start threads that WATCH the manager's pods and its Lease and set ``changed`` (an
    Event) on every event, until ``stop`` is set. Watches restart when the server ends them."""
    import threading

    ns = names.namespace
    streams = [
        (paths.pods(ns), {"labelSelector": names.selector}),
        (paths.leases(ns), {"fieldSelector": f"metadata.name={names.lease}"}),
        (paths.deployments(ns), {"fieldSelector": f"metadata.name={names.deployment}"}),
    ]

    def follow(path: str, query: dict) -> None:
        while not stop.is_set():
            try:
                listing = client.get(path, 10, **query)
                changed.set()  # anything that changed before this watch began is drawn too
                for _ in client.watch(path, listing["metadata"].get("resourceVersion", ""), timeout_s, **query):
                    changed.set()
                    if stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a broken watch is retried; the report shows read errors
                stop.wait(2)

    threads = [threading.Thread(target=follow, args=stream, daemon=True) for stream in streams]
    for thread in threads:
        thread.start()
    return threads

