"""The Helm release that installed the manager, addressed the way helm needs it.

A release often lives elsewhere than the manager: upstream's ``helm install kruise
openkruise/kruise`` (no ``-n``) keeps the release in ``default`` while its chart puts the
manager in ``kruise-system``. A fix that says ``-n kruise-system`` then fails with "has no
deployed releases". So every printed chart fix is rendered here, from what helm recorded:
the ``meta.helm.sh/release-name`` / ``-namespace`` annotations on the objects it made, and
its release record (Secret ``sh.helm.release.v1.<name>.v<revision>`` in the release
namespace) for the chart's name and version. A chart reference that is not certain (a
repository alias, a version that could not be read) is said to be so in the fix itself.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import shlex
from dataclasses import dataclass

RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
CHART_LABEL = "helm.sh/chart"

# Where upstream OpenKruise publishes its chart, and the alias its instructions add it under.
UPSTREAM_REPOSITORY = "https://openkruise.github.io/charts/"
UPSTREAM_ALIAS = "openkruise"
UPSTREAM_CHART_NAME = "kruise"


@dataclass(frozen=True)
class Release:
    """One helm release: its own name and namespace, and the chart it records (None: unknown,
    with ``record_error`` saying why)."""

    name: str
    namespace: str
    chart: str | None = None
    chart_version: str | None = None
    record_error: str | None = None

    def kruisectl_upgrade(self, pairs: list[str] = (), why: str = "") -> str:
        """This project's chart: ``kruisectl upgrade`` brings the chart it ships (a reference
        that always exists) and keeps the release's other values."""
        command = ["kruisectl", "upgrade", "-n", self.namespace, "--release", self.name]
        for pair in pairs:
            command += ["--set", pair]
        return with_note(shlex.join(command), why)

    def helm_upgrade(self, pairs: list[str] = ()) -> str:
        """Upstream's chart: ``helm upgrade`` of the same chart version from upstream's
        repository, under the alias its instructions use (a guess, said so)."""
        chart = f"{UPSTREAM_ALIAS}/{self.chart or UPSTREAM_CHART_NAME}"
        command = ["helm", "upgrade", self.name, chart]
        if self.chart_version:
            command += ["--version", self.chart_version]
        command += ["-n", self.namespace, "--reuse-values"]
        for pair in pairs:
            command += ["--set", pair]
        notes = [f"{chart} assumes the repository alias {UPSTREAM_ALIAS} for {UPSTREAM_REPOSITORY} "
                 f"(helm repo add {UPSTREAM_ALIAS} {UPSTREAM_REPOSITORY}; or use your own alias)"]
        if not self.chart_version:
            notes.append(f"chart version unknown ({self.record_error or 'no release record read'}): add --version "
                         f"<the release's chart version, helm -n {self.namespace} list> or helm takes the newest chart")
        return with_note(shlex.join(command), "; ".join(notes))


def with_note(command: str, note: str) -> str:
    """A note after the command as a shell comment: the whole line stays paste-able."""
    return f"{command}  # {note}" if note else command


def split_note(fix: str) -> tuple[str, str]:
    """(command, note) of a fix rendered here."""
    command, _, note = fix.partition("  # ")
    return command, note


_CHART_LABEL = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d+\.\d+\.\d+\S*)$")


def chart_of_label(value: str | None) -> tuple[str | None, str | None]:
    """``helm.sh/chart: kruise-0.1.0`` → (``kruise``, ``0.1.0``); (None, None) if not of that form."""
    found = _CHART_LABEL.match(value or "")
    return (found["name"], found["version"]) if found else (None, None)


def of(obj: dict | None, record: dict | None = None, record_error: str | None = None) -> Release | None:
    """The release ``obj`` belongs to, from helm's annotations on it (None: not made by helm);
    the chart from ``record`` (the release record's summary), else from the chart label."""
    metadata = (obj or {}).get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    name = annotations.get(RELEASE_NAME)
    if not name:
        return None
    # Helm writes both annotations; without the namespace one the release is where the object is.
    namespace = annotations.get(RELEASE_NAMESPACE) or metadata.get("namespace") or "default"
    if record and record.get("name") == name and record.get("namespace") == namespace:
        return Release(name, namespace, record.get("chart"), record.get("chartVersion"))
    chart, version = chart_of_label((metadata.get("labels") or {}).get(CHART_LABEL))
    return Release(name, namespace, chart, version, None if version else record_error)


# --- helm's release record ---------------------------------------------------------------------

def decode_record(secret: dict) -> dict:
    """Helm's release (gzipped JSON, base64 inside the Secret's own base64) as a summary:
    name, namespace, revision, status, chart, chartVersion, appVersion. ValueError if not one."""
    try:
        inner = base64.b64decode(((secret.get("data") or {}).get("release") or ""), validate=True)
        raw = base64.b64decode(inner, validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        release = json.loads(raw)
    except (binascii.Error, OSError, EOFError, ValueError) as err:
        raise ValueError(f"secret {(secret.get('metadata') or {}).get('name')}: not a helm release record ({err})") from None
    chart = (release.get("chart") or {}).get("metadata") or {}
    return {"name": release.get("name"), "namespace": release.get("namespace"), "revision": release.get("version"),
            "status": (release.get("info") or {}).get("status"), "chart": chart.get("name"),
            "chartVersion": chart.get("version"), "appVersion": chart.get("appVersion")}


def latest(secrets: list[dict]) -> dict | None:
    """The record helm upgrades from: the newest deployed revision, else the newest one."""
    def revision(secret: dict) -> int:
        value = ((secret.get("metadata") or {}).get("labels") or {}).get("version", "0")
        return int(value) if value.isdigit() else 0

    deployed = [s for s in secrets if ((s.get("metadata") or {}).get("labels") or {}).get("status") == "deployed"]
    candidates = deployed or secrets
    return decode_record(max(candidates, key=revision)) if candidates else None


def read_record(client, release_namespace: str, name: str, timeout: float) -> dict:
    """The summary of release ``name``'s record; ValueError with a one-line reason when there is
    none (another storage driver) or it cannot be read (e.g. no permission on Secrets there)."""
    from kubekit import paths

    from .errors import describe_api_error

    try:
        listing = client.get(paths.secrets(release_namespace), timeout, labelSelector=f"owner=helm,name={name}")
    except Exception as err:  # noqa: BLE001 - the reason goes into the fix's note
        raise ValueError(f"release record of {release_namespace}/{name} not read: {describe_api_error(err)}") from None
    record = latest(listing.get("items") or [])
    if record is None:
        raise ValueError(f"no release record Secret of {release_namespace}/{name} (owner=helm)")
    return record
