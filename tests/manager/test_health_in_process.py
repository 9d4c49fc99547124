"""Readiness and liveness checks of health.py against a real WebhookServer in this process
(no cluster needed): stopping the server fails both, starting it again recovers."""

from __future__ import annotations

import time

import pytest

from localcluster.pki import LocalCA
from manager.certs import service_dns_names
from manager.health import Health, heartbeat_check, webhook_self_check
from manager.webhook import WebhookServer

from .conftest import webhook_options


@pytest.fixture
def cert_dir(tmp_path):
    ca = LocalCA("test-ca")
    cert, key = ca.issue("kruise-webhook-service", dns_names=tuple(service_dns_names("kruise-webhook-service", "kruise-system")),
                         server=True)
    (tmp_path / "ca-cert.pem").write_bytes(ca.cert_pem)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    return tmp_path


def test_readiness_and_liveness_follow_the_webhook_server(cert_dir):
    options = webhook_options(cert_dir)
    port = options.webhook_port
    server = WebhookServer(options, {}).start()
    ready = webhook_self_check("127.0.0.1", port, lambda: str(cert_dir / "ca-cert.pem"),
                               "kruise-webhook-service.kruise-system.svc", timeout=1.0)
    alive = heartbeat_check(lambda: server.last_heartbeat, 1.0, "the webhook accept loop")
    health = Health()
    health.readiness["webhook-server"] = ready
    health.liveness["webhook-server"] = alive
    try:
        assert health.evaluate(health.readiness) == (True, "[+]webhook-server ok")
        server.stop(drain=0)
        ok, report = health.evaluate(health.readiness)
        assert not ok and "ConnectionRefusedError" in report
        time.sleep(1.2)
        ok, report = health.evaluate(health.liveness)
        assert not ok and "has not made progress" in report
        server = WebhookServer(options, {}).start()
        assert health.evaluate(health.readiness)[0]
    finally:
        server.stop(drain=0)


def test_readiness_rejects_a_server_with_a_certificate_from_another_ca(cert_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    (other / "ca-cert.pem").write_bytes(LocalCA("someone-else").cert_pem)
    options = webhook_options(cert_dir)
    port = options.webhook_port
    server = WebhookServer(options, {}).start()
    try:
        problem = webhook_self_check("127.0.0.1", port, lambda: str(other / "ca-cert.pem"),
                                     "kruise-webhook-service.kruise-system.svc", timeout=1.0)()
        assert problem and "CERTIFICATE_VERIFY_FAILED" in problem
    finally:
        server.stop(drain=0)
