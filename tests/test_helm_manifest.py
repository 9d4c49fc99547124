"""Where a release's manifest puts the manager (``kruisectl install --wait`` waits there)."""

from __future__ import annotations

import pytest

from kruisectl.helm import manager_namespace

DEPLOYMENT = "kruise-controller-manager"


def doc(kind: str, name: str, namespace: str | None = None) -> str:
    meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    return f"apiVersion: v1\nkind: {kind}\nmetadata:\n{meta}"


@pytest.mark.parametrize("manifest, expected", [
    (doc("Deployment", DEPLOYMENT, "kruise-mgr"), "kruise-mgr"),  # installation.namespace
    (doc("Deployment", DEPLOYMENT), "rel"),  # no namespace written: the release's
    ("---\n" + doc("Service", DEPLOYMENT, "elsewhere") + "---\n" + doc("Deployment", DEPLOYMENT, "mgr"), "mgr"),
    (doc("Deployment", "another", "other") + "---\n" + doc("Deployment", DEPLOYMENT, "mgr"), "mgr"),
    (doc("Deployment", "another", "other"), "rel"),  # no manager in the manifest
    ("", "rel"),
    ("---\n# Source: kruise/templates/notes.yaml\n---\n" + doc("Deployment", DEPLOYMENT, "x"), "x"),
])
def test_manager_namespace(manifest, expected):
    assert manager_namespace(manifest, DEPLOYMENT, "rel") == expected
