"""Real kruise-manager processes (localcluster.fleet) on a private control plane
of the test module's own: the webhook configurations carry upstream's cluster-wide names."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from localcluster.cluster import ClusterOptions, LocalCluster, free_port
from localcluster.fleet import Fleet
from localcluster.pki import LocalCA
from manager.webhook import WebhookServer
from tests.conftest import require
from manager.options import Options, parse

from .webhook_harness import HANDLERS, write_pair

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Request", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
         "verbs": ["create", "update", "patch"]},
        {"level": "Metadata", "resources": [{"group": "apps.kruise.io", "resources": ["sidecarsets/status"]}],
         "verbs": ["create", "update", "patch"]},
        {"level": "None"},
    ],
}


def webhook_options(cert_dir, *flags: str) -> Options:
    """The manager's options made as its command line makes them (no environment), for a
    webhook server on a free loopback port: a server built from them in a test is the one
    ``kruise-manager`` runs, with the same defaults."""
    return parse(["--webhook-bind-address=127.0.0.1", f"--webhook-port={free_port()}",
                  f"--webhook-cert-dir={cert_dir}", *flags], environ={})


def start_cluster(audit_log: Path | None = None) -> LocalCluster:
    require("netns")
    extra = ()
    if audit_log is not None:
        policy = Path(tempfile.mkdtemp(prefix="kruise-audit-")) / "policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        extra = (f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}", "--audit-log-mode=blocking")
    options = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=True,
                             extra_apiserver_args=extra)
    return LocalCluster.start(options, log=sys.stderr)


def audited_fleet(tmp_path_factory, ready_timeout: float, **fleet_options):
    """Three ready replicas on a cluster of their own whose apiserver logs every Lease and
    status write (AUDIT_POLICY): a module fixture's body, yielding (fleet, audit log path)."""
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    local = start_cluster(audit_log=audit)
    fleet = Fleet(local, **fleet_options).install(3)
    fleet.start_all()
    fleet.wait_ready(timeout=ready_timeout)
    yield fleet, audit
    fleet.stop_all()
    local.stop()


@pytest.fixture(scope="module")
def manager_cluster():
    local = start_cluster()
    local.create_nodes(2)
    yield local
    local.stop()


@pytest.fixture(scope="module")
def fleet(manager_cluster):
    """Three manager replicas, installed and ready."""
    fleet = Fleet(manager_cluster).install(3)
    fleet.start_all()
    fleet.wait_ready(timeout=90)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def make_server(tmp_path):
    """Webhook servers in this process over loopback TLS (test_webhook_server.py, test_webhook_drain.py)."""
    write_pair(tmp_path, LocalCA("server-test-ca"))
    started = []

    def make(*flags: str) -> WebhookServer:
        """The manager's defaults, a small body limit and a short I/O timeout, then ``flags``."""
        options = webhook_options(tmp_path, "--webhook-max-body-bytes=4096", "--webhook-io-timeout=500ms", *flags)
        srv = WebhookServer(options, HANDLERS)
        srv.start()
        srv.cert_dir = tmp_path
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop(drain=0)


@pytest.fixture
def server(make_server):
    return make_server()
