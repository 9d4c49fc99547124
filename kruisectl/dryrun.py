"""Dry runs that are real: what ``install`` / ``upgrade`` would change, validated by the
apiserver, shown as a diff against what runs now (as helm-diff does).

1. helm renders the release with its server dry run (``--dry-run=server``: lookups see the
   cluster, nothing is stored);
2. every rendered object is sent as a server-side apply with ``dryRun=All``, so the apiserver
   runs its validation and admission on it exactly as the real run would, and stores nothing;
3. the object it would store is compared with the live one (metadata the server owns left out).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

import yaml

from kubekit import paths

FIELD_MANAGER = "kruisectl-dry-run"
_SERVER_OWNED = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


@dataclass
class Change:
    kind: str
    namespace: str | None
    name: str
    action: str  # create | update | unchanged | invalid
    diff: str = ""
    error: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")


def manifests(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind")]


class Resources:
    """kind -> (plural, namespaced) per group-version, from the apiserver's discovery."""

    def __init__(self, client, timeout: float):
        self.client, self.timeout = client, timeout
        self._cache: dict[str, dict[str, tuple[str, bool]]] = {}

    def lookup(self, api_version: str, kind: str) -> tuple[str, bool]:
        if api_version not in self._cache:
            listing = self.client.get(paths.group_version(api_version), self.timeout)
            self._cache[api_version] = {r["kind"]: (r["name"], r["namespaced"])
                                        for r in listing.get("resources", []) if "/" not in r["name"]}
        found = self._cache[api_version].get(kind)
        if found is None:
            raise LookupError(f"the cluster does not serve {kind} in {api_version}")
        return found

    def path(self, obj: dict, namespace: str) -> tuple[str, str | None]:
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural, namespaced = self.lookup(api_version, kind)
        ns = (obj["metadata"].get("namespace") or namespace) if namespaced else None
        return paths.path(api_version, plural, ns, obj["metadata"]["name"]), ns


def _comparable(obj: dict | None) -> str:
    if obj is None:
        return ""
    obj = json.loads(json.dumps(obj))
    for key in _SERVER_OWNED:
        obj.get("metadata", {}).pop(key, None)
    obj.pop("status", None)
    return yaml.safe_dump(obj, sort_keys=True)


def plan(client, manifest_text: str, namespace: str, timeout: float, crds_text: str = "") -> list[Change]:
    """Each rendered object validated by a server-side dry-run apply and compared with the
    live one. ``crds_text``: CRDs helm creates when absent and never changes after."""
    from kubekit.api import ApiError

    resources = Resources(client, timeout)
    changes = []
    for obj in manifests(crds_text):
        try:
            client.get(paths.custom_resource_definitions(obj["metadata"]["name"]), timeout)
            changes.append(Change(obj["kind"], None, obj["metadata"]["name"], "unchanged"))  # helm keeps it as it is
            continue
        except ApiError as err:
            if err.status != 404:
                changes.append(Change(obj["kind"], None, obj["metadata"]["name"], "invalid", error=_message(err)))
                continue
        manifest_text = yaml.safe_dump(obj) + "\n---\n" + manifest_text
    for obj in manifests(manifest_text):
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            path, ns = resources.path(obj, namespace)
        except (LookupError, ApiError) as err:
            changes.append(Change(kind, namespace, name, "invalid", error=str(err)))
            continue
        try:
            live = client.get(path, timeout)
        except ApiError as err:
            if err.status != 404:
                changes.append(Change(kind, ns, name, "invalid", error=_message(err)))
                continue
            live = None
        if ns and live is None and not _namespace_exists(client, ns, timeout):
            changes.append(Change(kind, ns, name, "create", diff=_diff(None, obj, f"{kind}/{name}")))
            continue  # created together with its namespace: helm's server dry run validated it
        try:
            would_be = client.request("PATCH", path, body=obj, timeout=timeout, content_type="application/apply-patch+yaml",
                                      dryRun="All", fieldManager=FIELD_MANAGER, force="true")
        except ApiError as err:
            changes.append(Change(kind, ns, name, "invalid", error=_message(err)))
            continue
        before, after = _comparable(live), _comparable(would_be)
        action = "create" if live is None else ("unchanged" if before == after else "update")
        changes.append(Change(kind, ns, name, action, diff=_diff(live, would_be, f"{kind}/{name}")
                              if action != "unchanged" else ""))
    return changes


def _namespace_exists(client, namespace: str, timeout: float) -> bool:
    from kubekit.api import ApiError

    try:
        client.get(paths.namespaces(namespace), timeout)
        return True
    except ApiError as err:
        return err.status != 404


def _diff(live: dict | None, would_be: dict, label: str) -> str:
    lines = difflib.unified_diff(_comparable(live).splitlines(), _comparable(would_be).splitlines(),
                                 fromfile=f"live {label}" if live else "/dev/null", tofile=f"dry-run {label}",
                                 lineterm="")
    return "\n".join(lines)


def _message(err) -> str:
    try:
        return json.loads(err.body).get("message") or str(err.reason)
    except (ValueError, TypeError, AttributeError):
        return str(getattr(err, "reason", err))


def release_manifest(helm_run, binary: str, args: list[str]) -> str:
    """The manifest of a helm server dry run (``-o json``), without the CRDs helm never
    upgrades."""
    result = helm_run(binary, [*args, "--dry-run=server", "-o", "json"])
    return json.loads(result.stdout).get("manifest") or ""
