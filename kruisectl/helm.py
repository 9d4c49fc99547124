"""The real helm binary, driven for the manager's chart: finding it and the chart, building
its arguments from kruisectl's HA flags, and turning its failures into one-line reasons."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import yaml

from .errors import KruisectlError

# The chart is package data (kruisectl/_chart: in a checkout a link to charts/kruise, in a
# wheel its copy), so an installed kruisectl finds it wherever it was installed.
BUNDLED_CHART = Path(str(resources.files(__package__) / "_chart")).resolve()
RELEASE = "kruise"
# A source checkout kruisectl runs from (None when installed): `make build` leaves a helm here.
_CHECKOUT = Path(__file__).resolve().parents[1]
CHECKOUT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "localcluster").is_dir() else None


def bundled_chart() -> str:
    """The chart kruisectl ships, as a directory helm reads; a one-line error when this
    installation lacks it (e.g. the manager image's kruisectl, built without the chart)."""
    if not (BUNDLED_CHART / "Chart.yaml").is_file():
        raise KruisectlError(f"this kruisectl has no bundled chart ({BUNDLED_CHART} has no Chart.yaml): pass --chart "
                       "with a chart directory or reference (e.g. charts/kruise of a checkout)")
    return str(BUNDLED_CHART)


def find_helm(explicit: str | None = None) -> str:
    """``--helm-binary``, else ``$KRUISECTL_HELM``, else ``$HELM_BIN`` (set when run as a helm
    plugin), else ``helm`` on PATH, else the one the local control plane built."""
    for candidate in (explicit, os.environ.get("KRUISECTL_HELM"), os.environ.get("HELM_BIN")):
        if candidate:
            found = shutil.which(candidate)
            if not found:
                raise KruisectlError(f"helm binary {candidate!r} not found or not executable")
            return found
    found = shutil.which("helm")
    if found:
        return found
    if CHECKOUT is not None:
        # A source checkout's `make build` leaves one in .cache/bin (found without importing the
        # local-cluster harness, which is not part of the installed CLI).
        built = sorted((CHECKOUT / ".cache" / "bin").glob("helm-*/helm"), key=lambda path: path.stat().st_mtime)
        if built and os.access(built[-1], os.X_OK):
            return str(built[-1])
    raise KruisectlError("helm not found: install Helm 3 (https://helm.sh/docs/intro/install/) and put it on PATH, "
                   "or pass --helm-binary PATH (or set $KRUISECTL_HELM)"
                   + (f"; in this checkout, make build builds one into {CHECKOUT / '.cache' / 'bin'}" if CHECKOUT else ""))


def ha_values(*, replicas=None, strict_zone_spread=None, max_surge=None, max_unavailable=None,
              host_network=None, failure_policy=None) -> list[str]:
    """``--set`` pairs for the HA flags the user gave (None: leave the chart's or release's value)."""
    pairs = []
    if replicas is not None:
        pairs.append(f"manager.replicas={replicas}")
    if strict_zone_spread is not None:
        spread = "DoNotSchedule" if strict_zone_spread else "ScheduleAnyway"
        pairs.append(f"manager.topologySpread.whenUnsatisfiable={spread}")
    if max_surge is not None:
        pairs.append(f"manager.updateStrategy.rollingUpdate.maxSurge={max_surge}")
    if max_unavailable is not None:
        pairs.append(f"manager.updateStrategy.rollingUpdate.maxUnavailable={max_unavailable}")
    if host_network is not None:
        pairs.append(f"manager.hostNetwork={'true' if host_network else 'false'}")
    if failure_policy is not None:
        pairs.append(f"webhook.failurePolicy={failure_policy}")
    return pairs


def manager_namespace(manifest: str, deployment: str, default: str) -> str:
    """The namespace a release's manifest puts the manager Deployment in (the chart's
    installation.namespace), ``default`` (the release's) when the manifest does not say."""
    for doc in yaml.safe_load_all(manifest):
        if isinstance(doc, dict) and doc.get("kind") == "Deployment" \
                and (doc.get("metadata") or {}).get("name") == deployment:
            return doc["metadata"].get("namespace") or default
    return default


def connection_args(target) -> list[str]:
    args = ["--namespace", target.namespace]
    if target.kubeconfig:
        args += ["--kubeconfig", target.kubeconfig]
    if target.context:
        args += ["--kube-context", target.context]
    return args


# helm's own failure texts -> what to tell the user
_KNOWN = (
    ("kubernetes cluster unreachable", "cluster unreachable"),
    ("cannot re-use a name that is still in use", "a release of that name exists: use kruisectl upgrade"),
    ("has no deployed releases", "no such release: use kruisectl install"),
    ("release: not found", "no such release"),
    ("values don't meet the specifications of the schema", "invalid values"),
    ("execution error at", "invalid values"),
    ("forbidden", "forbidden"),
)


def explain(stderr: str) -> str:
    """One line out of helm's error output."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    text = " ".join(lines).removeprefix("Error: ").strip()
    text = text.replace("Error: ", "")
    if len(text) > 400:  # helm may quote whole objects; the cause is at the start
        text = text[:400] + "…"
    lowered = text.lower()
    for marker, label in _KNOWN:
        if marker in lowered:
            return f"{label}: {text}" if label not in lowered else text
    return text or "helm failed without a message"


def run(helm: str, args: list[str], *, capture: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run helm; a KruisectlError with helm's reason in one line when it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("HELM_NAMESPACE", "HELM_KUBECONTEXT")}
    try:
        result = subprocess.run([helm, *args], capture_output=capture, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise KruisectlError(f"helm binary {helm} not found") from None
    except subprocess.TimeoutExpired:
        raise KruisectlError(f"helm {args[0]} did not finish within {timeout:g}s") from None
    if result.returncode != 0:
        raise KruisectlError(f"helm {args[0]}: {explain(result.stderr or '')}")
    return result
