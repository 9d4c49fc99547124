"""The end-to-end admission probe of ``kruisectl webhook check``: prove the apiserver really
calls the kruise webhooks, not just that their pieces look right.

1. A probe SidecarSet (``kruisectl-probe-<id>``, selecting only pods labelled with that id,
   only in the probe namespace) is created for a few seconds; a server-side dry-run create of
   a pod it matches must come back with the probe sidecar: the mutating webhook ran.
2. A server-side dry-run create of a SidecarSet with two containers of one name must be
   rejected by the validating webhook.

Dry runs persist nothing; the probe SidecarSet is deleted before returning, whatever happens.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from .errors import KruisectlError
from .findings import Finding
from kubekit import paths

PROBE_CONTAINER = "kruisectl-probe"


def _sidecarset(name: str, spec: dict) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name}, "spec": spec}


def _error_text(err) -> str:
    import json

    try:
        return json.loads(err.body).get("message", str(err))
    except (ValueError, TypeError, AttributeError):
        return str(getattr(err, "reason", err))


@dataclass
class ProbeSidecarSet:
    id: str
    name: str
    labels: dict[str, str]
    deleted: bool = False


@contextlib.contextmanager
def probe_sidecarset(client, namespace: str, timeout: float):
    """A SidecarSet that injects ``PROBE_CONTAINER`` into pods labelled
    ``kruisectl.io/probe=<id>`` in ``namespace`` only. Deleted on leaving, whatever happens
    (``deleted`` says whether that worked); an ApiError creating it propagates."""
    from kubekit.api import ApiError

    probe_id = uuid.uuid4().hex[:8]
    probe = ProbeSidecarSet(probe_id, f"kruisectl-probe-{probe_id}", {"kruisectl.io/probe": probe_id})
    client.request("POST", paths.sidecarsets(), timeout=timeout, body=_sidecarset(probe.name, {
        "namespace": namespace, "selector": {"matchLabels": probe.labels},
        "containers": [{"name": PROBE_CONTAINER, "image": "kruisectl.invalid/probe:never-pulled"}]}))
    try:
        yield probe
    finally:
        for attempt in range(3):
            try:
                client.request("DELETE", paths.sidecarsets(probe.name), timeout=timeout)
                probe.deleted = True
                break
            except ApiError as err:
                if err.status == 404:
                    probe.deleted = True
                    break
                time.sleep(0.5 * (attempt + 1))


def probe_pod(labels: dict[str, str], generate_name: str = "kruisectl-probe-") -> dict:
    """A pod the probe SidecarSet selects; never run (created as a dry run only)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": generate_name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "kruisectl.invalid/app:never-pulled"}]}}


def run(client, namespace: str, timeout: float, wait: float = 10.0, explain=lambda text: (text, "")) -> list[Finding]:
    """Findings ``probe/mutating`` and ``probe/validating``. Raises KruisectlError (exit 2) when the
    SidecarSet CRD is not installed."""
    from kubekit.api import ApiError

    findings = []
    try:
        with probe_sidecarset(client, namespace, timeout) as probe:
            findings.append(_probe_mutating(client, namespace, probe.labels, timeout, wait, explain))
    except ApiError as err:
        if err.status == 404:
            raise KruisectlError("the SidecarSet CRD (sidecarsets.apps.kruise.io) is not installed: "
                           "install the chart (kruisectl install) or OpenKruise's CRDs") from None
        if err.status == 403 and "vsidecarset" not in _error_text(err):
            return [Finding("probe", "warning", "end-to-end probe skipped: not allowed to create a SidecarSet",
                            "run with rights to create sidecarsets.apps.kruise.io, or pass --no-probe")]
        cause, fix = explain(_error_text(err))
        return [Finding("probe/validating", "error", f"the probe SidecarSet was refused: {cause}", fix)]
    if not probe.deleted:
        findings.append(Finding("probe/cleanup", "warning", f"could not delete SidecarSet {probe.name}",
                                f"kubectl delete sidecarset {probe.name}"))
    findings.append(_probe_validating(client, probe.id, timeout, explain))
    return findings


def _probe_mutating(client, namespace, labels, timeout, wait, explain) -> Finding:
    from kubekit.api import ApiError

    pod = probe_pod(labels)
    deadline = time.monotonic() + wait
    started = time.monotonic()
    while True:
        try:
            created = client.request("POST", paths.pods(namespace), body=pod, timeout=timeout, dryRun="All")
        except ApiError as err:
            cause, fix = explain(_error_text(err))
            return Finding("probe/mutating", "error", f"dry-run pod create in {namespace} failed: {cause}", fix,
                           {"error": _error_text(err)[:300]})
        names = [c["name"] for c in created.get("spec", {}).get("containers", [])]
        if PROBE_CONTAINER in names:
            ms = round((time.monotonic() - started) * 1000)
            return Finding("probe/mutating", "ok", f"a dry-run pod in {namespace} got the probe sidecar ({ms} ms)",
                           evidence={"namespace": namespace, "containers": names})
        if time.monotonic() > deadline:
            return Finding("probe/mutating", "error",
                           f"a dry-run pod in {namespace} came back without the probe sidecar after {wait:g}s",
                           "the pod webhook is not called for this namespace or does not inject: check the "
                           "namespaceSelector, failurePolicy Ignore hiding errors, and the manager's logs",
                           {"namespace": namespace, "containers": names})
        time.sleep(0.5)  # the manager's SidecarSet cache takes a moment


def _probe_validating(client, probe_id, timeout, explain) -> Finding:
    from kubekit.api import ApiError

    invalid = _sidecarset(f"kruisectl-probe-invalid-{probe_id}", {
        "selector": {"matchLabels": {"kruisectl.io/probe": probe_id}},
        "containers": [{"name": "twin", "image": "x"}, {"name": "twin", "image": "x"}]})
    try:
        client.request("POST", paths.sidecarsets(), body=invalid, timeout=timeout, dryRun="All")
    except ApiError as err:
        text = _error_text(err)
        if "denied the request" in text:
            return Finding("probe/validating", "ok", "an invalid SidecarSet was rejected by the validating webhook",
                           evidence={"message": text[:300]})
        cause, fix = explain(text)
        return Finding("probe/validating", "error", f"dry-run SidecarSet create failed: {cause}", fix,
                       {"error": text[:300]})
    return Finding("probe/validating", "error", "an invalid SidecarSet (duplicate container names) was accepted",
                   "the validating webhook is not called: check kruise-validating-webhook-configuration and its "
                   "failurePolicy")
