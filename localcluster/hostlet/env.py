"""A container's environment as the kubelet builds it (env, envFrom, the downward API, Secrets
and ConfigMaps read as the node), its ServiceAccount credential (a TokenRequest bound to the
pod, renewed at 80% of its life, as a kubeconfig) and its own paths (/tmp, emptyDir mounts)."""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path

from kubekit import paths
from kubekit.api import ApiError

from ..build import CACHE_DIR

from .model import Container
from .spec import (API_TIMEOUT, ROOT, HostletError, etc_hosts, expand, field_path_value, pod_hostname,
                   resource_field_value)


PRIVATE_TMP = Path("/tmp")
ETC_HOSTS = Path("/etc/hosts")
TOKEN_SECONDS = 3607  # what the kubelet requests for projected ServiceAccount tokens


def container_env(worker, container: Container, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a container: ``base`` (an OCI container's image environment, which
    reads its ServiceAccount from the mounted volume), else this machine's for a process (with
    the ServiceAccount as $KUBECONFIG), then what the pod spec defines."""
    pod = pod_with_addresses(worker)
    cluster = worker.hostlet.cluster
    env = dict(base) if base is not None else {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(worker.dir),
        "HOSTNAME": pod_hostname(worker.pod), "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1", "LANG": os.environ.get("LANG", "C.UTF-8")}
    if cluster.net is not None and worker.pod["spec"].get("enableServiceLinks", True) is not False:
        env.update({"KUBERNETES_SERVICE_HOST": cluster.net.gateway,
                    "KUBERNETES_SERVICE_PORT": str(cluster.apiserver_port)})
    if worker.kubeconfig is not None and base is None:
        env["KUBECONFIG"] = str(worker.kubeconfig)
    for source in container.spec.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, value in source_data(worker, source).items():
            env[prefix + key] = value
    for var in container.spec.get("env") or []:
        if "value" in var or "valueFrom" not in var:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[var["name"]] = field_path_value(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[var["name"]] = resource_field_value(container.spec, ref["resourceFieldRef"], worker.node.allocatable)
        else:
            kind = "configMapKeyRef" if "configMapKeyRef" in ref else "secretKeyRef"
            key_ref = ref[kind]
            data = object_data(worker, "configmaps" if kind == "configMapKeyRef" else "secrets",
                                     key_ref["name"], key_ref.get("optional", False))
            if key_ref["key"] in data:
                env[var["name"]] = data[key_ref["key"]]
            elif not key_ref.get("optional", False):
                raise HostletError(f"couldn't find key {key_ref['key']} in {kind[:-6]} {key_ref['name']}")
    return env


def pod_with_addresses(worker) -> dict:
    ip = worker.node.host.ip
    status = {**worker.pod.get("status", {}), "hostIP": ip, "podIP": ip, "hostIPs": [{"ip": ip}], "podIPs": [{"ip": ip}]}
    return {**worker.pod, "status": status}


def source_data(worker, source: dict) -> dict[str, str]:
    if "configMapRef" in source:
        ref = source["configMapRef"]
        return object_data(worker, "configmaps", ref["name"], ref.get("optional", False))
    ref = source.get("secretRef") or {}
    return object_data(worker, "secrets", ref["name"], ref.get("optional", False))


def object_data(worker, resource: str, name: str, optional: bool) -> dict[str, str]:
    try:
        found = worker.api.get(paths.path("v1", resource, worker.namespace, name), timeout=API_TIMEOUT)
    except ApiError as err:
        if err.not_found and optional:
            return {}
        raise HostletError(f"{resource[:-1]} {worker.namespace}/{name}: {err.status}") from err
    data = found.get("data") or {}
    if resource == "secrets":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
    return data


def refresh_token(worker, now: float) -> None:
    """A TokenRequest bound to this pod, renewed at 80% of its life, as a kubeconfig."""
    if worker.pod["spec"].get("automountServiceAccountToken") is False or now < worker.token_refresh_at:
        return
    account = worker.pod["spec"].get("serviceAccountName") or "default"
    cluster = worker.hostlet.cluster
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": TOKEN_SECONDS,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": worker.name, "uid": worker.uid}}}
    try:
        granted = worker.api.request("POST", paths.service_accounts(worker.namespace, account, "token"),
                                     body=body, timeout=API_TIMEOUT)
    except ApiError as err:
        raise HostletError(f"TokenRequest for serviceaccount {worker.namespace}/{account}: {str(err)[:200]}") from err
    token = granted["status"]["token"]
    path = worker.dir / "kubeconfig"
    scratch = worker.dir / "kubeconfig.new"
    cluster.write_token_kubeconfig(scratch, token, for_hosts=True)
    scratch.replace(path)  # atomic: a reader never sees half a file
    worker.kubeconfig = path
    serviceaccount_volume(worker, token)
    worker.token_refresh_at = now + 0.8 * TOKEN_SECONDS


SERVICEACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def serviceaccount_volume(worker, token: str) -> None:
    """The projected ServiceAccount volume as the kubelet writes it (``token``, ``ca.crt``,
    ``namespace``) in ``<pod dir>/serviceaccount``: an OCI container mounts it at
    :data:`SERVICEACCOUNT_PATH`. Each file is replaced atomically, so a renewed token is seen
    through the mount."""
    directory = worker.dir / "serviceaccount"
    directory.mkdir(mode=0o755, exist_ok=True)
    files = {"token": token, "ca.crt": worker.hostlet.cluster.ca_file.read_text(), "namespace": worker.namespace}
    for name, text in files.items():
        scratch = directory / f".{name}.new"
        scratch.write_text(text)
        scratch.chmod(0o644)  # readable by the container's user, as the kubelet's defaultMode
        scratch.replace(directory / name)


def kept_under_tmp(paths) -> list[Path]:
    """Of the folders the harness runs from (the checkout, its cache and virtualenv, the
    cluster's and the hostlet's folders), those under /tmp, outermost only: a container's own
    /tmp must still show them where they are, or a checkout cloned under /tmp could not run
    its manager."""
    found: list[Path] = []
    for path in sorted({Path(p).resolve() for p in paths}):
        if PRIVATE_TMP in path.parents and not any(outer == path or outer in path.parents for outer in found):
            found.append(path)
    return found


def container_mounts(worker, container: Container) -> list[tuple[str, str]]:
    """What a process container's own filesystem gives it, as (source on this machine, target),
    in mount order: an /etc/hosts naming its hostname, a fresh /tmp of its own for each run
    (upstream's manager writes its serving certificate to /tmp/kruise-webhook-certs: replicas
    on one machine must not share it) in which the harness's own folders stay where they are
    (the pod's kubeconfig and the cluster's CA live there), then its emptyDir volumes."""
    own = worker.dir / container.name
    hosts = own / "hosts"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(etc_hosts(worker.pod, worker.node.host.ip, ETC_HOSTS.read_text()))
    tmp = own / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tmp.chmod(0o1777)
    mounts = [(str(hosts), str(ETC_HOSTS))]
    harness = (worker.hostlet.cluster.workdir, worker.hostlet.workdir, ROOT, CACHE_DIR, Path(sys.prefix),
               Path(sys.base_prefix), Path(sys.executable).parent)
    for kept in kept_under_tmp(harness):
        inside = tmp / kept.relative_to(PRIVATE_TMP)
        inside.mkdir(parents=True, exist_ok=True)
        mounts.append((str(kept), str(inside)))
    mounts.append((str(tmp), str(PRIVATE_TMP)))
    return mounts + emptydir_mounts(worker, container, tmp=tmp)


def emptydir_mounts(worker, container: Container, on_host: bool = True, tmp: Path | None = None) -> list[tuple[str, str]]:
    """(source, mountPath) of the container's emptyDir volumes; ``on_host`` creates each
    mountPath on this machine (a process's bind mount needs one; an OCI runtime makes its own),
    or inside ``tmp`` for one under /tmp when the process has a /tmp of its own there."""
    mounts = []
    volumes = {v["name"]: v for v in worker.pod["spec"].get("volumes") or []}
    for mount in container.spec.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None or "emptyDir" not in volume:
            continue
        source = worker.dir / "volumes" / mount["name"]
        source.mkdir(parents=True, exist_ok=True)
        if on_host:
            target = Path(mount["mountPath"])
            if tmp is not None and (target == PRIVATE_TMP or PRIVATE_TMP in target.parents):
                (tmp / target.relative_to(PRIVATE_TMP)).mkdir(parents=True, exist_ok=True)
            else:
                worker.hostlet.mount_point(mount["mountPath"])
        mounts.append((str(source), mount["mountPath"]))
    return mounts
