"""The real upstream OpenKruise kruise-manager on the local cluster: built from the Go module
proxy's copy of its source at one pinned release, installed from that release's own files.

Binary and CRDs come from the same release (a newer manager denies every pod create against
older CRDs). The module's source directory is read-only (Go's module cache); the binary is
cached under ``.cache/bin/kruise-<version>-<key>/manager``, the key hashing the version, the
module's checksum, the Go version and the build flags.

:func:`install_upstream` applies upstream's kustomize install (``config/default``: namespace,
its CRDs from ``config/crd/bases``, RBAC, Deployment, kruise-daemon DaemonSet, Service, Secret,
webhook configurations) as rendered by the built kubectl, changing only what the local cluster
needs: the image (a name the hostlet maps to the built binary, :func:`programs`), the replica
count, placement on hostlet nodes (one replica per node: the hostlet's pods share their
node's network, so two replicas on a node would share ports) and, on request, host network.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


from kubekit import kruise, paths

from . import build

MODULE = "github.com/openkruise/kruise"
VERSION = "v1.8.3"
LDFLAGS = "-s -w"
IMAGE = f"openkruise/kruise-manager:{VERSION}"  # what installs name; the hostlet runs the binary for it


@dataclass(frozen=True)
class UpstreamBuild:
    """The built manager and the module source it came from (CRDs, kustomize install)."""

    version: str
    manager: Path
    source: Path

    @property
    def crds(self) -> Path:
        return self.source / "config" / "crd" / "bases"

    @property
    def kustomize_default(self) -> Path:
        return self.source / "config" / "default"


def download(version: str = VERSION) -> dict:
    """``go mod download -json`` of the pinned module: its read-only ``Dir`` and ``Sum``."""
    with tempfile.TemporaryDirectory(prefix="kruise-mod-") as outside_any_module:
        result = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{version}"], cwd=outside_any_module,
                                env=build.go_env(), capture_output=True, text=True)
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or not info.get("Dir"):
        reason = info.get("Error") or result.stderr.strip()[-300:] or f"exit {result.returncode}"
        raise build.BuildError(f"go mod download {MODULE}@{version}: {reason}")
    return info


def cache_key(version: str, module_sum: str, go_version: str) -> str:
    digest = hashlib.sha256()
    for part in (MODULE, version, module_sum, go_version, LDFLAGS, json.dumps(build.GO_ENV, sort_keys=True)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def build_upstream(version: str = VERSION, log=sys.stderr) -> UpstreamBuild:
    """The upstream manager binary of ``version`` (built first when not cached; about 4 minutes
    on 2 cores with progress lines, a relink from Go's build cache otherwise) and its source."""
    build.refuse_in_unit_tier("the upstream kruise-manager was requested")
    go_version = build._go_version()
    info = download(version)
    source = Path(info["Dir"])
    target = build.CACHE_DIR / "bin" / f"kruise-{version}-{cache_key(version, info.get('Sum', ''), go_version)}"
    manager = target / "manager"
    if not manager.is_file():
        build.build_staged("kruise", target, [("manager", ["-ldflags", LDFLAGS, "main.go"], source)],
                           f"upstream kruise-manager ({MODULE} {version})", log)
    return UpstreamBuild(version, manager, source)


# ---- installing it -----------------------------------------------------------------------
ENTRYPOINT = "/manager"  # the image's manager command; /kruise-daemon is its other program


class InstallError(RuntimeError):
    """The upstream install did not come up; the message says what was missing."""


def programs(built: UpstreamBuild) -> dict[str, list[str]]:
    """The hostlet's program table entry: the image's ``/manager`` is the built binary."""
    return {ENTRYPOINT: [str(built.manager)]}


def render(built: UpstreamBuild, kubectl: Path) -> list[dict]:
    """Upstream's kustomize install as the built kubectl renders it."""
    import yaml

    result = subprocess.run([str(kubectl), "kustomize", str(built.kustomize_default)], capture_output=True, text=True)
    if result.returncode != 0:
        raise InstallError(f"kubectl kustomize {built.kustomize_default}: {result.stderr.strip()[-300:]}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def localize(objects: list[dict], *, replicas: int = 2, node_selector: dict | None = None,
             tolerations: list[dict] | None = None, host_network: bool = False,
             extra_args: list[str] | None = None) -> list[dict]:
    """Upstream's objects with only what the local cluster needs changed (a new list; the
    input is untouched). See the module's docstring."""
    import copy

    changed = copy.deepcopy(objects)
    found = set()
    for obj in changed:
        kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
        if kind == "Deployment" and name == kruise.DEPLOYMENT:
            found.add(kind)
            obj["spec"]["replicas"] = replicas
            pod = obj["spec"]["template"]["spec"]
            if node_selector:
                pod["nodeSelector"] = dict(node_selector)
            if tolerations:
                pod["tolerations"] = list(tolerations)
            pod["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": dict(kruise.MANAGER_LABELS)}}]}}
            if host_network:
                pod["hostNetwork"] = True
                pod["dnsPolicy"] = "ClusterFirstWithHostNet"
            manager = next(c for c in pod["containers"] if c["name"] == "manager")
            manager["image"] = IMAGE
            manager["args"] = list(manager.get("args") or []) + list(extra_args or [])
        elif kind == "DaemonSet" and name == kruise.DAEMONSET:
            found.add(kind)
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["image"] = IMAGE  # as upstream releases it: the manager's image
    missing = {"Deployment", "DaemonSet"} - found
    if missing:
        raise InstallError(f"upstream's install has no {' or '.join(sorted(missing))} named as expected "
                           f"({kruise.DEPLOYMENT}, {kruise.DAEMONSET})")
    return changed


@dataclass
class UpstreamInstall:
    """What a test needs to act on the install: the namespace, the leading pod, timings."""

    namespace: str
    deployment: str
    replicas: int
    leader: str  # the leading pod
    holder: str  # the Lease's holderIdentity
    ready_s: float  # from apply to ready replicas and a leader
    objects: list[dict] = field(default_factory=list, repr=False)  # what was applied


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise InstallError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()[-400:]}")
    return result.stdout


def install_upstream(cluster, built: UpstreamBuild | None = None, *, replicas: int = 2,
                     node_selector: dict | None = None, tolerations: list[dict] | None = None,
                     host_network: bool = False, extra_args: list[str] | None = None, timeout: float = 300,
                     log=sys.stderr) -> UpstreamInstall:
    """Install upstream's kruise-manager on ``cluster`` (a :class:`LocalCluster` whose hostlet
    runs :func:`programs`), wait until ``replicas`` pods are ready and one of them leads.
    ``node_selector`` defaults to the hostlet's nodes (``type=hostlet``)."""
    import yaml

    built = built or build_upstream(log=log)
    kubectl = cluster.binary("kubectl")
    objects = localize(render(built, kubectl), replicas=replicas,
                       node_selector=node_selector if node_selector is not None else {"type": "hostlet"},
                       tolerations=tolerations, host_network=host_network, extra_args=extra_args)
    started = time.monotonic()
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    # Server-side: the CRDs are too large for client-side apply's last-applied annotation.
    _kubectl(kubectl, cluster.kubeconfig, "apply", "--server-side", "--field-manager=localcluster", "-f", "-",
             stdin=yaml.safe_dump_all(crds))
    _kubectl(kubectl, cluster.kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
             *(f"crd/{o['metadata']['name']}" for o in crds), timeout=90)
    _kubectl(kubectl, cluster.kubeconfig, "apply", "--server-side", "--field-manager=localcluster", "-f", "-",
             stdin=yaml.safe_dump_all(rest))
    leader, holder = wait_ready(cluster, replicas, deadline=started + timeout)
    return UpstreamInstall(kruise.NAMESPACE, kruise.DEPLOYMENT, replicas, leader, holder, time.monotonic() - started, objects)


def wait_ready(cluster, replicas: int, deadline: float) -> tuple[str, str]:
    """Block until the Deployment has ``replicas`` ready, up-to-date pods and the Lease names
    one of them (by pod name, or by node name with host network: kruisectl's reading);
    return (leading pod, holder identity)."""
    from kubekit.api import ApiError
    from kruisectl.leader import resolve_holder
    from kruisectl.status import pod_ready

    client = cluster.client()
    last = "nothing read yet"
    while time.monotonic() < deadline:
        try:
            status = client.get(paths.deployments(kruise.NAMESPACE, kruise.DEPLOYMENT)).get("status") or {}
            pods = client.get(paths.pods(kruise.NAMESPACE), labelSelector=kruise.MANAGER_SELECTOR)
        except ApiError as err:
            last = str(err)
            time.sleep(0.5)
            continue
        try:
            holder = (client.get(paths.leases(kruise.NAMESPACE, kruise.LEASE))
                      .get("spec") or {}).get("holderIdentity", "")
        except ApiError:
            holder = ""
        ready = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp") and pod_ready(p)]
        leading, _ = resolve_holder(holder, ready)
        last = (f"{status.get('readyReplicas', 0)}/{replicas} ready, {status.get('updatedReplicas', 0)} updated, "
                f"lease holder {holder or '(none)'}")
        if (status.get("readyReplicas", 0) == replicas and status.get("updatedReplicas", 0) == replicas
                and len(ready) == replicas and leading):
            return leading["metadata"]["name"], holder
        time.sleep(0.5)
    raise InstallError(f"upstream kruise-manager not ready in time: {last}; logs: "
                       f"{cluster.workdir / 'hostlet' / 'pods'}/{kruise.NAMESPACE}_*/manager/")


def main() -> int:
    started = time.monotonic()
    try:
        built = build_upstream()
    except build.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"upstream kruise-manager {built.version} ready in {time.monotonic() - started:.1f}s:", file=sys.stderr)
    print(f"  manager: {built.manager}\n  source: {built.source}")
    return 0
