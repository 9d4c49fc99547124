"""The webhook credential across real replicas: one CA for all, caBundles kept, readiness
that follows the webhook server, and hostile input at the webhook port."""

from __future__ import annotations

import base64
import http.client
import json
import random
import socket
import ssl
import time

import pytest
from cryptography import x509
from kubernetes import client

from localcluster.fleet import Fleet
from tests.conftest import wait_for
from kubekit import kruise

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def secret_data(fleet: Fleet) -> dict[str, bytes]:
    secret = client.CoreV1Api(fleet.cluster.api()).read_namespaced_secret("kruise-webhook-certs", fleet.namespace)
    return {k: base64.b64decode(v) for k, v in secret.data.items()}


def ca_bundles(fleet: Fleet) -> list[bytes]:
    admission = client.AdmissionregistrationV1Api(fleet.cluster.api())
    configs = [admission.read_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION),
               admission.read_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION)]
    return [base64.b64decode(w.client_config.ca_bundle or "") for c in configs for w in c.webhooks]


def served_certificate(ip: str, ca_file: str, server_name: str) -> x509.Certificate:
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((ip, kruise.WEBHOOK_PORT), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_replicas_started_together_agree_on_one_ca(fleet, tmp_path):
    data = secret_data(fleet)
    assert set(data) >= {"ca-cert.pem", "ca-key.pem", "cert.pem", "key.pem", "tls.crt", "tls.key"}
    assert all(bundle == data["ca-cert.pem"] for bundle in ca_bundles(fleet))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(data["ca-cert.pem"])
    serials = set()
    for replica in fleet.replicas:
        cert_dir = fleet.cluster.workdir / "managers" / f"{fleet.namespace}-m{replica.index}-certs"
        assert (cert_dir / "ca-cert.pem").read_bytes() == data["ca-cert.pem"]
        cert = served_certificate(replica.ip, str(ca_file), "kruise-webhook-service.kruise-system.svc")
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert set(names) == {"kruise-webhook-service.kruise-system.svc",
                              "kruise-webhook-service.kruise-system.svc.cluster.local", "localhost"}
        serials.add(cert.serial_number)
    assert len(serials) == 1  # everyone serves the Secret's certificate


def test_a_reset_ca_bundle_is_patched_back(fleet):
    """What a helm upgrade of a chart without lookup does (kruise#374)."""
    admission = client.AdmissionregistrationV1Api(fleet.cluster.api())
    admission.patch_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION, [
        {"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": base64.b64encode(b"stale").decode()}])
    expected = secret_data(fleet)["ca-cert.pem"]
    wait_for(lambda: all(b == expected for b in ca_bundles(fleet)), timeout=15, what="caBundle patched back")


def test_readiness_fails_while_the_webhook_is_saturated_and_recovers(fleet):
    """A wedged webhook (every connection slot held by clients that never speak) takes the
    replica out of readiness; it comes back once they are gone. Liveness stays up."""
    replica = fleet.replicas[2]
    fleet.stop(replica)
    fleet.start(replica, "--webhook-max-connections=4", "--webhook-io-timeout=30s")
    fleet.wait_ready([replica])
    stuck = [socket.create_connection((replica.ip, kruise.WEBHOOK_PORT), timeout=5) for _ in range(4)]
    try:
        wait_for(lambda: not fleet.ready(replica), timeout=10, what="readiness to fail")
        assert "webhook-server failed" in fleet.readyz_report(replica)
        import requests
        assert requests.get(replica.url("/healthz"), timeout=2).status_code == 200
    finally:
        for sock in stuck:
            sock.close()
    wait_for(lambda: fleet.ready(replica), timeout=15, what="readiness to recover")


# ---- hostile input at the webhook port ------------------------------------------------------
def _post(ip: str, path: str, body: bytes, headers: dict | None = None, context=None) -> tuple[int, bytes]:
    context = context or _insecure()
    conn = http.client.HTTPSConnection(ip, kruise.WEBHOOK_PORT, context=context, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _insecure() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the target is the harness's own host; the payload is the point
    return context


def _review(obj, **request) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "default", "object": obj, **request}}).encode()


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b"[]", 400),
    (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}).encode(), 400),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400),
    (b"\xff\xfe\x00garbage", 400),
])
def test_malformed_reviews_get_400(fleet, body, status):
    got, text = _post(fleet.replicas[0].ip, "/mutate-pod", body)
    assert got == status, text


def test_wrong_shapes_get_an_answer_with_a_reason(fleet):
    ip = fleet.replicas[0].ip
    status, text = _post(ip, "/mutate-pod", _review("a string, not a pod"))
    response = json.loads(text)["response"]
    assert status == 200 and response["uid"] == "u-1" and response["allowed"] is False
    assert "not a pod" in response["status"]["message"]
    status, text = _post(ip, "/validate-apps-kruise-io-v1alpha1-sidecarset", _review({"spec": {"selector": 5}}))
    response = json.loads(text)["response"]
    assert response["allowed"] is False and "spec.selector" in response["status"]["message"]


def test_oversized_unlengthed_and_wrong_type_bodies_are_refused(fleet):
    ip = fleet.replicas[0].ip
    conn = http.client.HTTPSConnection(ip, kruise.WEBHOOK_PORT, context=_insecure(), timeout=10)
    conn.putrequest("POST", "/mutate-pod")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(64 << 20))
    conn.endheaders()
    assert conn.getresponse().status == 413  # refused before a byte of the body is read
    conn.close()
    conn = http.client.HTTPSConnection(ip, kruise.WEBHOOK_PORT, context=_insecure(), timeout=10)
    conn.putrequest("POST", "/mutate-pod")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    assert _post(ip, "/mutate-pod", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert _post(ip, "/no-such-hook", _review({}))[0] == 404


def test_a_slow_client_is_cut_off_and_others_are_served(fleet):
    replica = fleet.replicas[1]
    fleet.stop(replica)
    fleet.start(replica, "--webhook-io-timeout=1s")
    fleet.wait_ready([replica])
    tls = _insecure().wrap_socket(socket.create_connection((replica.ip, kruise.WEBHOOK_PORT), timeout=10))
    tls.sendall(b"POST /mutate-pod HTTP/1.1\r\nContent-Length: 100\r\n")  # ...and nothing more
    started = time.monotonic()
    assert tls.recv(1024) == b""  # the server hangs up
    assert time.monotonic() - started < 5
    tls.close()
    assert _post(replica.ip, "/mutate-pod", _review({"metadata": {}, "spec": {"containers": []}}))[0] == 200


def test_fuzzed_bodies_never_crash_the_server(fleet):
    """Bounded: 300 random mutations of a valid review, at most 60 s."""
    rng = random.Random(20261124)
    ip = fleet.replicas[0].ip
    valid = _review({"metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}})
    deadline = time.monotonic() + 60
    statuses = set()
    for _ in range(300):
        if time.monotonic() > deadline:
            break
        body = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.2:
            body = body[: rng.randrange(len(body))]
        status, _ = _post(ip, rng.choice(["/mutate-pod", "/validate-apps-kruise-io-v1alpha1-sidecarset"]), bytes(body))
        assert status in (200, 400), status
        statuses.add(status)
    assert 400 in statuses
    assert fleet.ready(fleet.replicas[0]) and fleet.replicas[0].alive()
