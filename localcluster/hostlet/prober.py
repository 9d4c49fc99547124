"""Probes, as the kubelet's prober runs them: a probe's state (thresholds, verdict, next run)
and one run of an httpGet, tcpSocket or exec probe against the harness's own hosts only."""

from __future__ import annotations

import ipaddress
import socket
import subprocess

import requests

from .env import container_env
from .model import Container
from .spec import container_port, probe_url, resolve_program


PROBE_NETWORKS = (ipaddress.ip_network("198.18.0.0/15"),)  # the harness's hosts: never probe elsewhere


def probe_allowed(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in PROBE_NETWORKS)


def run_probe(worker, container: Container, spec: dict) -> tuple[bool, str]:
    """One httpGet, tcpSocket or exec probe of ``container`` of ``worker``'s pod, as the kubelet
    runs it (only against the harness's own hosts); (ok, message)."""
    timeout = float(spec.get("timeoutSeconds", 1))
    host = worker.node.host.ip
    if "httpGet" in spec:
        get = spec["httpGet"]
        target = get.get("host") or host
        if not probe_allowed(target):
            return False, f"probe host {target} is outside the harness's hosts"
        port = container_port(container.spec, get.get("port"))
        scheme = (get.get("scheme") or "HTTP").lower()
        url = probe_url(scheme, target, port, get.get("path"))
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/1.31")
        try:
            response = worker.probe_http.get(url, timeout=timeout, verify=False, headers=headers)
        except requests.RequestException as err:
            return False, f"Get {url!r}: {type(err).__name__}"
        if 200 <= response.status_code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {response.status_code}"
    if "tcpSocket" in spec:
        port = container_port(container.spec, spec["tcpSocket"].get("port"))
        target = spec["tcpSocket"].get("host") or host
        if not probe_allowed(target):
            return False, f"probe host {target} is outside the harness's hosts"
        try:
            with socket.create_connection((target, port), timeout=timeout):
                return True, ""
        except OSError as err:
            return False, f"dial tcp {target}:{port}: {err}"
    if "exec" in spec:
        command = spec["exec"].get("command") or []
        argv = resolve_program({"command": command}, worker.pod, worker.hostlet.programs)
        if not argv:
            return False, f"no local program is mapped to exec probe command {command!r}"
        try:
            result = subprocess.run(worker.node.host.wrap(argv), env=container_env(worker, container), cwd=str(worker.dir),
                                    capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"command timed out after {timeout:.0f}s"
        return result.returncode == 0, result.stdout[-200:].decode(errors="replace")
    return False, "unsupported probe handler (httpGet, tcpSocket and exec are)"
