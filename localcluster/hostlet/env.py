"""A container's environment as the kubelet builds it (env, envFrom, the downward API, Secrets
and ConfigMaps read as the node), its ServiceAccount credential (a TokenRequest bound to the
pod, renewed at 80% of its life, as a kubeconfig) and its emptyDir mounts."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

from kubekit.api import ApiError

from .spec import API_TIMEOUT, ROOT, HostletError, expand, field_path_value, resource_field_value

if TYPE_CHECKING:
    from .runtime import Container

TOKEN_SECONDS = 3607  # what the kubelet requests for projected ServiceAccount tokens


def container_env(worker, container: Container) -> dict[str, str]:
    pod = pod_with_addresses(worker)
    cluster = worker.hostlet.cluster
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(worker.dir),
           "HOSTNAME": worker.pod["spec"].get("hostname") or worker.name, "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1", "LANG": os.environ.get("LANG", "C.UTF-8")}
    if cluster.net is not None and worker.pod["spec"].get("enableServiceLinks", True) is not False:
        env.update({"KUBERNETES_SERVICE_HOST": cluster.net.gateway,
                    "KUBERNETES_SERVICE_PORT": str(cluster.apiserver_port)})
    if worker.kubeconfig is not None:
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
        found = worker.api.get(f"/api/v1/namespaces/{worker.namespace}/{resource}/{name}", timeout=API_TIMEOUT)
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
        granted = worker.api.request("POST", f"/api/v1/namespaces/{worker.namespace}/serviceaccounts/{account}/token",
                                     body=body, timeout=API_TIMEOUT)
    except ApiError as err:
        raise HostletError(f"TokenRequest for serviceaccount {worker.namespace}/{account}: {str(err)[:200]}") from err
    path = worker.dir / "kubeconfig"
    scratch = worker.dir / "kubeconfig.new"
    cluster.write_token_kubeconfig(scratch, granted["status"]["token"], for_hosts=True)
    scratch.replace(path)  # atomic: a reader never sees half a file
    worker.kubeconfig = path
    worker.token_refresh_at = now + 0.8 * TOKEN_SECONDS


def emptydir_mounts(worker, container: Container) -> list[tuple[str, str]]:
    volumes = {v["name"]: v for v in worker.pod["spec"].get("volumes") or []}
    mounts = []
    for mount in container.spec.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None or "emptyDir" not in volume:
            continue
        source = worker.dir / "volumes" / mount["name"]
        source.mkdir(parents=True, exist_ok=True)
        worker.hostlet.mount_point(mount["mountPath"])
        mounts.append((str(source), mount["mountPath"]))
    return mounts
