"""Real kruise-manager processes on the local control plane, without a kubelet.

Each replica is ``python -m manager`` in its own network-namespace host, authenticated as a
real ServiceAccount whose RBAC is exactly ``manager.rbac``. It runs unsupervised (one process,
``--supervise=false``) unless ``supervise``: then the process started is the supervisor and
:meth:`Fleet.worker_pid` finds its worker. The apiserver reaches the
webhooks through Service ``kruise-webhook-service`` (no selector; Endpoints and an
EndpointSlice list the replicas' host addresses) and the two upstream-named webhook
configurations. Used by the manager's tests and benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from manager import rbac

from kubekit import kruise, paths
from kubekit.api import ApiError

from .cluster import LocalCluster
from .processes import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "charts" / "kruise" / "crds"
HEALTH_PORT, METRICS_PORT = 8000, 8080


def _create(client, path: str, body: dict) -> dict | None:
    """POST ``body``; None when it exists already (409)."""
    try:
        return client.request("POST", path, body=body, timeout=30)
    except ApiError as err:
        if not err.conflict:
            raise
        return None


def install_crd(client, timeout: float = 30) -> None:
    """Create the chart's CRDs (SidecarSet, WorkloadSpread; each if absent) with ``client`` (a
    kubekit client) and wait until each is served."""
    crds = [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]
    for crd in crds:
        _create(client, paths.custom_resource_definitions(), crd)
    deadline = time.monotonic() + timeout
    for crd in crds:
        while not _served(client, crd):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the CRD {crd['metadata']['name']} was not established in time")
            time.sleep(0.2)


def _served(client, crd: dict) -> bool:
    """Established, and its objects can be listed."""
    spec = crd["spec"]
    read = client.get(paths.custom_resource_definitions(crd["metadata"]["name"]), timeout=10)
    if not any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (read.get("status") or {}).get("conditions") or []):
        return False
    version = next(v["name"] for v in spec["versions"] if v.get("served"))
    try:
        client.get(paths.path(f"{spec['group']}/{version}", spec["names"]["plural"]), timeout=10)
        return True
    except ApiError:
        return False


@dataclass
class Replica:
    index: int
    host: object  # network.Host
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def ip(self) -> str:
        return self.host.ip

    def url(self, path: str, port: int = HEALTH_PORT) -> str:
        return f"http://{self.ip}:{port}{path}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Signal the manager itself (not the ``ip netns exec`` wrapper, which has exec'd)."""
        os.kill(self.process.pid, sig)


@dataclass
class Fleet:
    cluster: LocalCluster
    namespace: str = "kruise-system"
    replicas: list[Replica] = field(default_factory=list)
    extra_args: tuple[str, ...] = ()
    failure_policy: str = "Fail"
    account: str = kruise.SERVICE_ACCOUNT  # ServiceAccount, Role and RoleBinding name
    lease_id: str = kruise.LEASE  # pass --leader-election-id too when changing it
    supervise: bool = False  # run each replica under manager.supervisor, as the chart does
    code_root: Path = ROOT  # the checkout whose manager runs (a bench's earlier revision beside this one)
    _kubeconfig: Path | None = None

    # ---- set-up ----------------------------------------------------------------------
    @classmethod
    def running(cls, cluster: LocalCluster, count: int = 3, timeout: float = 90, **fields) -> "Fleet":
        """Installed, ``count`` replicas started and ready."""
        fleet = cls(cluster, **fields).install(count)
        fleet.start_all()
        fleet.wait_ready(timeout=timeout)
        return fleet

    def install(self, count: int = 3, webhook_objects: bool = True) -> "Fleet":
        """Namespace, CRD, RBAC, ServiceAccount, Service, Endpoints, webhook configurations, and
        ``count`` hosts (replicas are started separately with :meth:`start`). Without
        ``webhook_objects`` the Service, its endpoints and the webhook configurations are left
        to someone else (another installation in the namespace)."""
        client, ns = self.cluster.client("fleet"), self.namespace
        install_crd(client)
        _create(client, paths.namespaces(), {"metadata": {"name": ns}})
        account = self.account
        client.request("POST", paths.service_accounts(ns), body={"metadata": {"name": account}}, timeout=30)
        rules = rbac.rules(self.lease_name, kruise.SECRET, kruise.MUTATING_CONFIGURATION, kruise.VALIDATING_CONFIGURATION)
        subject = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
        cluster_name = f"{account}-{ns}"
        for path, body in (
                (paths.roles(ns), {"metadata": {"name": account}, "rules": rules["namespaced"]}),
                (paths.role_bindings(ns), {"metadata": {"name": account}, "subjects": subject, "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account}}),
                (paths.cluster_roles(), {"metadata": {"name": cluster_name}, "rules": rules["cluster"]}),
                (paths.cluster_role_bindings(), {"metadata": {"name": cluster_name}, "subjects": subject, "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name}})):
            client.request("POST", path, body=body, timeout=30)
        token = client.request("POST", paths.service_accounts(ns, account, "token"), timeout=30, body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400}})["status"]["token"]
        prefix = self.prefix
        self._kubeconfig = self.cluster.write_token_kubeconfig(
            self.cluster.workdir / f"{prefix}-manager.kubeconfig", token, for_hosts=True)
        self.replicas = [Replica(i, self.cluster.add_host(f"{prefix}-m{i}")) for i in range(count)]
        if not webhook_objects:
            return self
        client.request("POST", paths.services(ns), timeout=30, body={
            "metadata": {"name": kruise.SERVICE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": kruise.WEBHOOK_PORT}]}})
        self.set_endpoints(self.replicas)
        self._create_webhook_configurations(client)
        return self

    @property
    def prefix(self) -> str:
        """Of its hosts' and files' names: two fleets in one namespace have other accounts."""
        return self.namespace if self.account == kruise.SERVICE_ACCOUNT else f"{self.namespace}-{self.account}"

    @property
    def lease_name(self) -> str:
        return self.lease_id

    def set_endpoints(self, replicas: list[Replica]) -> None:
        """Point the Service at these replicas (what the endpoints controller does for ready pods)."""
        client = self.cluster.client("fleet")
        addresses = [r.ip for r in replicas]
        endpoints = {"metadata": {"name": kruise.SERVICE},
                     "subsets": [{"addresses": [{"ip": ip} for ip in addresses],
                                  "ports": [{"name": "https", "port": kruise.WEBHOOK_PORT}]}] if addresses else []}
        slice_ = {"metadata": {"name": f"{kruise.SERVICE}-fleet", "labels": {"kubernetes.io/service-name": kruise.SERVICE}},
                  "addressType": "IPv4",
                  "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in addresses],
                  "ports": [{"name": "https", "port": kruise.WEBHOOK_PORT, "protocol": "TCP"}]}
        for resource, name, body in ((paths.endpoints, kruise.SERVICE, endpoints),
                                     (paths.endpoint_slices, f"{kruise.SERVICE}-fleet", slice_)):
            if _create(client, resource(self.namespace), body) is None:  # there already: replaced, unconditionally
                client.request("PUT", resource(self.namespace, name), body=body, timeout=30)

    def _create_webhook_configurations(self, client) -> None:
        common = {"sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": self.failure_policy,
                  "timeoutSeconds": 10}

        def service(path: str) -> dict:
            return {"service": {"namespace": self.namespace, "name": kruise.SERVICE, "path": path, "port": 443}}

        client.request("POST", paths.mutating_webhook_configurations(), timeout=30, body={"metadata": {"name": kruise.MUTATING_CONFIGURATION}, "webhooks": [{
            **common, "name": "mpod.kb.io", "clientConfig": service(kruise.MUTATE_POD_PATH),
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                        "values": ["kube-system", self.namespace]}]}}, {
            **common, "name": "msidecarset.kb.io", "clientConfig": service(kruise.MUTATE_SIDECARSET_PATH),
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"],
                       "apiVersions": ["v1alpha1"], "resources": ["sidecarsets"]}]}]})
        client.request("POST", paths.validating_webhook_configurations(), timeout=30, body={"metadata": {"name": kruise.VALIDATING_CONFIGURATION}, "webhooks": [{
            **common, "name": "vsidecarset.kb.io", "clientConfig": service(kruise.VALIDATE_SIDECARSET_PATH),
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"],
                       "apiVersions": ["v1alpha1"], "resources": ["sidecarsets"]}]}]})

    # ---- replicas --------------------------------------------------------------------
    def start(self, replica: Replica, *extra: str) -> Replica:
        logdir = self.cluster.workdir / "managers"
        logdir.mkdir(exist_ok=True)
        replica.log = logdir / f"{self.prefix}-m{replica.index}.log"
        env = {**os.environ, "POD_NAME": f"kruise-controller-manager-m{replica.index}", "POD_NAMESPACE": self.namespace,
               "POD_UID": self.pod_uid(replica),
               "KUBECONFIG": str(self._kubeconfig), "PYTHONPATH": str(self.code_root),
               "WEBHOOK_CERT_DIR": str(self.cluster.workdir / "managers" / f"{self.prefix}-m{replica.index}-certs")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = [sys.executable, "-m", "manager", f"--metrics-addr=:{METRICS_PORT}",
                f"--health-probe-addr=:{HEALTH_PORT}", f"--supervise={str(self.supervise).lower()}",
                *self.extra_args, *extra]
        with open(replica.log, "ab") as log:
            replica.process = subprocess.Popen(replica.host.wrap(argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                                               preexec_fn=die_with_parent, cwd=str(self.code_root))
        return replica

    def pod_uid(self, replica: Replica) -> str:
        """The replica's pod UID: a replica started again is its pod's container restarted
        (same name, same UID), as the kubelet restarts one."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kruise-fleet/{self.namespace}/m{replica.index}"))

    def worker_pid(self, replica: Replica) -> int | None:
        """The pid of a supervised replica's worker (the supervisor's child), or None."""
        pid = replica.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def start_all(self, *extra: str) -> "Fleet":
        for replica in self.replicas:
            self.start(replica, *extra)
        return self

    def ready(self, replica: Replica) -> bool:
        try:
            return requests.get(replica.url("/readyz"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, replicas: list[Replica] | None = None, timeout: float = 60) -> None:
        replicas = self.replicas if replicas is None else replicas
        deadline = time.monotonic() + timeout
        while not all(self.ready(r) for r in replicas):
            dead = [r for r in replicas if not r.alive()]
            if dead:
                raise RuntimeError(f"manager m{dead[0].index} exited: {self.tail(dead[0])}")
            if time.monotonic() > deadline:
                raise TimeoutError("managers not ready in time: " + "; ".join(
                    f"m{r.index}: {self.readyz_report(r)}" for r in replicas))
            time.sleep(0.2)

    def readyz_report(self, replica: Replica) -> str:
        try:
            return requests.get(replica.url("/readyz?verbose"), timeout=2).text.replace("\n", " | ")
        except requests.RequestException as err:
            return str(err)

    def tail(self, replica: Replica, lines: int = 15) -> str:
        try:
            return "\n".join(replica.log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def stop(self, replica: Replica, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if replica.process is None:
            return None
        if replica.alive():
            replica.signal(signal.SIGCONT)
            replica.signal(sig)
        try:
            return replica.process.wait(timeout)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            return replica.process.wait()

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.alive():
                replica.signal(signal.SIGCONT)
                replica.signal(signal.SIGKILL)
                replica.process.wait()

    def lease(self) -> dict:
        """The election's Lease: holder, transitions and renew time (RFC 3339 text)."""
        spec = self.cluster.client("fleet").get(paths.leases(self.namespace, self.lease_name), timeout=10).get("spec") or {}
        return {"holder": spec.get("holderIdentity") or "", "transitions": spec.get("leaseTransitions") or 0,
                "renew_time": spec.get("renewTime")}

    def leader(self) -> Replica | None:
        """The replica whose pod name the Lease holder carries, if any."""
        try:
            holder = self.lease()["holder"]
        except Exception:
            return None
        for replica in self.replicas:
            if holder.startswith(f"kruise-controller-manager-m{replica.index}_"):
                return replica
        return None

    def uninstall(self) -> None:
        self.stop_all()
        client = self.cluster.client("fleet")
        for path in (paths.mutating_webhook_configurations(kruise.MUTATING_CONFIGURATION),
                     paths.validating_webhook_configurations(kruise.VALIDATING_CONFIGURATION),
                     paths.cluster_role_bindings(f"{self.account}-{self.namespace}"),
                     paths.cluster_roles(f"{self.account}-{self.namespace}"),
                     paths.namespaces(self.namespace)):
            try:
                client.request("DELETE", path, timeout=30)
            except ApiError:
                pass
