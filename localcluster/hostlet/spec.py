"""What the hostlet reads from a pod spec, as a kubelet reads it: $(VAR) expansion, the
downward API, resource quantities, probe URLs and ports, and which local program runs a
container (nothing is pulled: a container runs only when a program is mapped to it)."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable, Mapping, Union

from kubekit.quantity import parse as parse_quantity

ROOT = Path(__file__).resolve().parents[2]
MANAGER_PROGRAM = [sys.executable, "-m", "manager"]
API_TIMEOUT = 10.0

# A program for a container: a mapping {command or image name: argv prefix}, or a callable
# (container, pod) -> argv (None when it does not apply).
ProgramHook = Callable[[dict, dict], Union[list, None]]
Programs = Union[Mapping[str, list], ProgramHook]
# The other names an image's entrypoint goes by: upstream's kruise-manager image runs /manager
# (its /kruise-daemon is another program of the same image, run by nothing here).
ENTRYPOINTS = {"kruise-manager": ("manager",)}


class HostletError(RuntimeError):
    """A node or pod cannot be run by the hostlet; the message says why."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_VAR_REF = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.-]*)\))")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined references are replaced, undefined ones are kept
    verbatim, and ``$$`` escapes a ``$``."""
    def replace(match: re.Match) -> str:
        if match.group(1) == "$":
            return "$"
        name = match.group(2)
        return variables[name] if name in variables else match.group(0)

    return _VAR_REF.sub(replace, text)


def image_name(image: str) -> str:
    """``registry:5000/openkruise/kruise-manager:v1.5@sha256:…`` -> ``kruise-manager``."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve_program(container: dict, pod: dict, programs: Programs | None) -> list[str] | None:
    """The argv for a container (command and args already expanded), or None when no local
    program is mapped to it. A mapping's key matches the command's first word (or its base
    name) or the image name; its value replaces that first word (the image's entrypoint when
    the container gives no command). An image's program runs only for its entrypoint: a
    command naming another program of the image matches nothing."""
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    if callable(programs):
        argv = programs(container, pod)
        if argv:
            return list(argv)
        programs = None
    table = {"kruise-manager": MANAGER_PROGRAM, **(programs or {})}
    if command:
        for key in (command[0], os.path.basename(command[0])):
            if key in table:
                return [*table[key], *command[1:], *args]
    name = image_name(container.get("image") or "")
    if name in table:
        if command and os.path.basename(command[0]) not in (name, *ENTRYPOINTS.get(name, ())):
            return None
        # The image's own program; a command naming its entrypoint (e.g. /manager) is that program.
        return [*table[name], *command[1:], *args]
    return None


HOSTNAME_MAX = 63


def pod_hostname(pod: dict) -> str:
    """The hostname a kubelet gives a pod: its node's with host network, else ``spec.hostname``
    or the pod's name, cut to 63 characters without a trailing '-' or '.'."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return spec.get("nodeName", "")
    name = spec.get("hostname") or (pod.get("metadata") or {}).get("name", "")
    return name[:HOSTNAME_MAX].rstrip("-.")


def etc_hosts(pod: dict, ip: str, machine_hosts: str) -> str:
    """The /etc/hosts a container sees: with host network its node's (this machine's file plus
    the node's own name, as a machine resolves its hostname), else the kubelet-managed file
    naming the pod's hostname. Without it, resolving the hostname (Go's and Python's HTTP
    servers do on start) waits for a DNS server that a harness host cannot reach."""
    hostname = pod_hostname(pod)
    if (pod.get("spec") or {}).get("hostNetwork"):
        return f"{machine_hosts.rstrip()}\n{ip}\t{hostname}\n"
    return ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            f"{ip}\t{hostname}\n")


def probe_url(scheme: str, host: str, port, path: str | None) -> str:
    """The URL a kubelet probes: a path without a leading '/' (upstream's 'healthz') is rooted."""
    path = path or "/"
    return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"


def field_path_value(pod: dict, path: str) -> str:
    """A downward-API fieldRef, as the kubelet resolves it."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise HostletError(f"unsupported fieldRef {path!r}")
    return simple[path]


def quantity(text: str) -> Fraction:
    """A resource quantity's exact value, parsed as apimachinery does (kubekit.quantity)."""
    try:
        return parse_quantity(str(text).strip()).value
    except ValueError as err:
        raise HostletError(f"invalid quantity {text!r}") from err


def resource_field_value(container: dict, ref: dict, allocatable: Mapping[str, str]) -> str:
    """resourceFieldRef: the container's limit (node allocatable when unset) or request, divided
    by the divisor and rounded up, as the kubelet does."""
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        value = allocatable.get(name, "0") if kind == "limits" else "0"
    divisor = quantity(ref.get("divisor") or "1")
    result = -(-quantity(value) // divisor) if divisor else 0
    return str(int(result))


def container_port(container: dict, port) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise HostletError(f"probe port {port!r} is not a declared container port")
