"""An upstream-like kruise-manager layout (localcluster.upstream_layout) in a fresh
namespace of the shared cluster, run by kwok."""

from __future__ import annotations

import pytest
from kubernetes import client
from click.testing import CliRunner

from kruisectl.cli import cli

from localcluster import upstream_layout

HOSTS = ["node-0", "node-1", "node-6"]  # zone-a, zone-b, and a bare-metal node without a zone


@pytest.fixture
def layout(cluster, api, namespace):
    mutating, validating = f"m-{namespace}", f"v-{namespace}"
    yield upstream_layout.create(api, namespace, HOSTS, mutating, validating)
    upstream_layout.delete_webhooks(api, mutating, validating)


def run_on_layout(cluster, layout, command: str, *extra):
    """``kruisectl <command>`` against ``layout`` (its namespace and webhook configurations)."""
    args = [command, "--kubeconfig", str(cluster.kubeconfig), "-n", layout["namespace"],
            "--mutating-webhook-configuration", layout["mutating"],
            "--validating-webhook-configuration", layout["validating"], *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.fixture
def viewer(cluster, api, layout, tmp_path):
    """A kubeconfig of a ServiceAccount bound to the `view` ClusterRole in the layout's namespace."""
    ns = layout["namespace"]
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "viewer"}})
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(ns, {
        "metadata": {"name": "viewer"}, "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
    token = core.create_namespaced_service_account_token("viewer", ns, {"spec": {"expirationSeconds": 600}}).status.token
    return cluster.write_token_kubeconfig(tmp_path / "viewer.kubeconfig", token)
