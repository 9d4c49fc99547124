"""`helm kruise …` under the real helm: the plugin installs from the checkout, and helm's
-n/--kube-context/--kubeconfig reach kruisectl through the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import build, upstream_layout

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory):
    """helm with its plugin, data, config and cache folders in a temp dir, the plugin installed."""
    helm = str(build.ensure_binaries(log=sys.stderr)["helm"])
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ, "HELM_PLUGINS": str(home / "plugins"), "HELM_DATA_HOME": str(home / "data"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache")}
    for name in ("KUBECONFIG", "HELM_NAMESPACE", "HELM_KUBECONTEXT"):
        env.pop(name, None)
    result = subprocess.run([helm, "plugin", "install", str(ROOT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Installed plugin: kruise" in result.stdout
    listed = subprocess.run([helm, "plugin", "list"], env=env, capture_output=True, text=True, timeout=30).stdout
    assert listed.splitlines()[1].split()[:2] == ["kruise", "0.1.0"]
    return helm, env


@pytest.fixture
def layout(cluster, api, namespace):
    mutating, validating = f"m-{namespace}", f"v-{namespace}"
    yield upstream_layout.create(api, namespace, ["node-0", "node-1", "node-2"], mutating, validating)
    upstream_layout.delete_webhooks(api, mutating, validating)


def helm_kruise(helm_env, *args, timeout=60):
    helm, env = helm_env
    return subprocess.run([helm, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_namespace_context_and_kubeconfig_pass_through_helm(helm_env, cluster, layout):
    result = helm_kruise(helm_env, "--kubeconfig", str(cluster.kubeconfig), "--kube-context", "local",
                         "-n", layout["namespace"], "kruise", "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["namespace"] == layout["namespace"]
    assert report["leader"]["pod"] == layout["leader"]


def test_a_context_that_does_not_exist_fails_in_one_line(helm_env, cluster, layout):
    result = helm_kruise(helm_env, "--kubeconfig", str(cluster.kubeconfig), "--kube-context", "nope",
                         "-n", layout["namespace"], "kruise", "status")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope" in errors[0]
    assert "Traceback" not in result.stderr


def test_label_zones_runs_as_a_plugin(helm_env, cluster, api):
    result = helm_kruise(helm_env, "--kubeconfig", str(cluster.kubeconfig), "kruise", "label-zones",
                         "--zone", "zone-x", "node-6", "node-7", "-o", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    assert {(row["node"], row["zone"]) for row in plan} == {("node-6", "zone-x"), ("node-7", "zone-x")}
    from kubernetes import client

    node = client.CoreV1Api(api).read_node("node-6")
    assert "topology.kubernetes.io/zone" not in node.metadata.labels  # a plan only: nothing applied
