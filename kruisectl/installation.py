"""Which installation this is, and how a setting is changed on it.

A fix that names a value the installed chart does not have is wrong advice. The same manager
may come from this project's chart (``kruisectl upgrade``), from upstream OpenKruise's chart
(``helm upgrade`` with upstream's value names; some settings are fixed in its templates), or
from plain manifests such as upstream's kustomize install (``kubectl`` only). Detection reads
only the manager Deployment: helm's release annotation, this chart's labels, the image; the
release itself is addressed by kruisectl.release (its own namespace, its chart's version).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from kubekit import kruise

from .release import Release
from .release import of as release_of
from .release import with_note

KRUISECTL_CHART = "kruisectl-chart"
UPSTREAM_CHART = "upstream-chart"
MANIFESTS = "manifests"

# Settings every fix is about, and the value each chart names them by (None: not a value).
_VALUES = {
    "replicas": {KRUISECTL_CHART: "manager.replicas", UPSTREAM_CHART: "manager.replicas"},
    "hostNetwork": {KRUISECTL_CHART: "manager.hostNetwork", UPSTREAM_CHART: "manager.hostNetwork"},
    "podDisruptionBudget": {KRUISECTL_CHART: "podDisruptionBudget.enabled"},
    "webhookTimeout": {KRUISECTL_CHART: "webhook.timeoutSeconds", UPSTREAM_CHART: "webhookConfiguration.timeoutSeconds"},
    "whenUnsatisfiable": {KRUISECTL_CHART: "manager.topologySpread.whenUnsatisfiable"},
    "zoneSpread": {KRUISECTL_CHART: "manager.topologySpread.enabled"},
    "livenessProbe": {},  # this chart always sets one; upstream's chart has none to set
}


@dataclass(frozen=True)
class Installation:
    kind: str
    namespace: str  # the manager's, which need not be the release's
    deployment: str
    release: Release | None = None
    health_port: int | None = None

    def describe(self) -> str:
        where = f"{self.release.namespace}/{self.release.name}" if self.release else ""
        if self.kind == KRUISECTL_CHART:
            return f"kruisectl's chart (release {where})"
        if self.kind == UPSTREAM_CHART:
            return f"a helm release {where} (upstream OpenKruise's chart)"
        return "manifests (no helm release)"

    def to_dict(self) -> dict:
        release = self.release
        return {"kind": self.kind, "release": release.name if release else None,
                "releaseNamespace": release.namespace if release else None}

    def upgrade(self, pairs: list[str] = (), why: str = "") -> str | None:
        """The chart upgrade that applies ``pairs`` to this release (None: no release)."""
        if self.kind == KRUISECTL_CHART:
            return self.release.kruisectl_upgrade(pairs, why)
        if self.kind == UPSTREAM_CHART:
            return self.release.helm_upgrade(pairs)
        return None

    # --- fixes ---------------------------------------------------------------------------
    def set_value(self, setting: str, value) -> str | None:
        """The upgrade command that sets ``setting`` through the chart, or None when the
        installed chart has no value for it."""
        key = _VALUES[setting].get(self.kind)
        if key is None:
            return None
        return self.upgrade([f"{key}={json.dumps(value) if isinstance(value, bool) else value}"])

    def patch(self, patch: dict | list, kind: str = "strategic") -> str:
        """A paste-able ``kubectl patch`` of the manager Deployment."""
        body = shlex.quote(json.dumps(patch, separators=(",", ":")))
        kind_flag = "" if kind == "strategic" else f" --type {kind}"
        return f"kubectl -n {self.namespace} patch deployment {self.deployment}{kind_flag} -p {body}"

    def _note_outside_chart(self, command: str) -> str:
        """Upstream's chart has no value for this field and does not render it, so helm's
        three-way merge keeps the patch through ``helm upgrade`` (a test runs both)."""
        if self.kind == UPSTREAM_CHART:
            return with_note(command, "upstream's chart has no value for this; helm upgrade keeps this patch as "
                                      "long as the chart does not set the field (not with --force)")
        return command

    def fix_replicas(self, replicas: int) -> str:
        return self.set_value("replicas", replicas) or \
            f"kubectl -n {self.namespace} scale deployment {self.deployment} --replicas={replicas}"

    def fix_host_network(self) -> str:
        return self.set_value("hostNetwork", True) or self.patch({"spec": {"template": {"spec": {"hostNetwork": True}}}})

    def fix_pdb(self, selector: str) -> str:
        return self.set_value("podDisruptionBudget", True) or \
            (f"kubectl -n {self.namespace} create poddisruptionbudget {self.deployment} "
             f"--selector {shlex.quote(selector)} --max-unavailable 1")

    def fix_webhook_timeout(self, seconds: int, configurations: list[tuple[str, dict, list[int]]] = ()) -> str:
        """``configurations``: (kind, configuration, indices of the webhooks to change)."""
        changes = [patch_webhooks(kind, configuration, [
            {"op": "add", "path": f"/webhooks/{i}/timeoutSeconds", "value": seconds} for i in indices])
            for kind, configuration, indices in configurations if indices]
        return self.set_value("webhookTimeout", seconds) or "; ".join(changes) or \
            f"set timeoutSeconds: {seconds} on the pod webhooks"

    def fix_zone_spread(self, pod_labels: dict[str, str]) -> str:
        constraint = {"maxSkew": 1, "topologyKey": kruise.ZONE_LABEL, "whenUnsatisfiable": "ScheduleAnyway",
                      "labelSelector": {"matchLabels": pod_labels}, "matchLabelKeys": ["pod-template-hash"]}
        return self.set_value("zoneSpread", True) or self._note_outside_chart(
            self.patch({"spec": {"template": {"spec": {"topologySpreadConstraints": [constraint]}}}}))

    def fix_when_unsatisfiable(self, policy: str, constraint_index: int) -> str:
        return self.set_value("whenUnsatisfiable", policy) or self._note_outside_chart(self.patch(
            [{"op": "replace", "path": f"/spec/template/spec/topologySpreadConstraints/{constraint_index}/whenUnsatisfiable",
              "value": policy}], kind="json"))

    def fix_liveness_probe(self, container_index: int) -> str:
        if self.kind == KRUISECTL_CHART:
            return self.upgrade(why="the chart sets a liveness probe")
        probe = {"httpGet": {"path": "/healthz", "port": self.health_port or 8000},
                 "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3}
        return self._note_outside_chart(self.patch(
            [{"op": "add", "path": f"/spec/template/spec/containers/{container_index}/livenessProbe", "value": probe}],
            kind="json"))


def patch_webhooks(kind: str, configuration: dict, operations: list[dict]) -> str:
    """A paste-able JSON patch of a webhook configuration that lasts. Upstream's manager
    rewrites its configurations from a copy it keeps in their ``template`` annotation (a
    change is undone within a second) unless the same patch removes that annotation: it then
    keeps the configuration as it finds it as its new copy."""
    if "template" in ((configuration.get("metadata") or {}).get("annotations") or {}):
        operations = [{"op": "remove", "path": "/metadata/annotations/template"}, *operations]
    body = shlex.quote(json.dumps(operations, separators=(",", ":")))
    return f"kubectl patch {kind} {configuration['metadata']['name']} --type json -p {body}"


def manager_container(deployment: dict | None) -> tuple[int, dict] | None:
    """The manager container (index, spec): the one named ``manager``, else the first."""
    containers = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for index, container in enumerate(containers):
        if container.get("name") == "manager":
            return index, container
    return (0, containers[0]) if containers else None


def _health_port(container: dict) -> int | None:
    probe = container.get("readinessProbe") or container.get("livenessProbe") or {}
    port = (probe.get("httpGet") or {}).get("port")
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared.get("containerPort")
    return None


def _repository(image: str) -> str:
    """``registry:5000/a/b:tag@sha256:…`` → ``registry:5000/a/b``."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def detect(deployment: dict | None, namespace: str, deployment_name: str, record: dict | None = None,
           record_error: str | None = None) -> Installation:
    """How the manager Deployment was installed (manifests when it cannot be told); ``record``:
    the summary of its helm release record, if read (``record_error``: why not)."""
    metadata = (deployment or {}).get("metadata") or {}
    labels = metadata.get("labels") or {}
    release = release_of(deployment, record, record_error)
    found = manager_container(deployment)
    container = found[1] if found else {}
    ours = labels.get("app.kubernetes.io/name") == "kruise" and "helm.sh/chart" in labels \
        or _repository(container.get("image") or "").endswith("kruisectl/kruise-manager")
    if release and ours:
        kind = KRUISECTL_CHART
    elif release:
        kind = UPSTREAM_CHART
    else:
        kind = MANIFESTS
    return Installation(kind, namespace, deployment_name, release, _health_port(container))
