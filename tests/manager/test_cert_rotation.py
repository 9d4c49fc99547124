"""Certificate rotation under a stream of pod creates (failurePolicy Fail: any failed
admission fails a create), and the external-certificate mode."""

from __future__ import annotations

import base64
import threading
import time
import uuid

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster.fleet import Fleet
from localcluster.pki import LocalCA
from manager.certs import service_dns_names
from tests.conftest import wait_for

from kubekit import kruise

from .conftest import start_cluster

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

# The CA lives 40 s and certificates 15 s, renewed 8 s before expiry: within the stream
# below the serving certificate rotates several times and the CA once.
ROTATING = ("--webhook-ca-validity=40s", "--webhook-cert-validity=15s", "--webhook-cert-renew-before=8s")


@pytest.fixture(scope="module")
def cluster_only():
    local = start_cluster()
    yield local
    local.stop()


def _secret(api, namespace) -> dict[str, bytes]:
    secret = client.CoreV1Api(api).read_namespaced_secret("kruise-webhook-certs", namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def test_rotation_under_a_stream_of_pod_creates_loses_no_admission(cluster_only):
    fleet = Fleet(cluster_only, extra_args=ROTATING).install(3)
    api = cluster_only.api()
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        fleet.start_all()
        fleet.wait_ready(timeout=90)
        label = f"rot-{uuid.uuid4().hex[:6]}"
        objects.create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": label},
            "spec": {"selector": {"matchLabels": {"app": label}}, "containers": [{"name": "side", "image": "s"}]}})
        ns = f"rot-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})
        wait_for(lambda: core.list_namespaced_service_account(ns, field_selector="metadata.name=default").items,
                 timeout=30, what="default ServiceAccount")
        wait_for(lambda: objects.get_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", label)
                 .get("status"), timeout=20, what="the SidecarSet seen by the leader")

        serving, cas = set(), set()
        stop = threading.Event()

        def watch_secret():
            while not stop.is_set():
                data = _secret(api, fleet.namespace)
                serving.add(x509.load_pem_x509_certificate(data["tls.crt"]).serial_number)
                cas.add(x509.load_pem_x509_certificates(data["ca-cert.pem"])[0].serial_number)
                stop.wait(0.5)

        watcher = threading.Thread(target=watch_secret, daemon=True)
        watcher.start()
        created, failures, missing = 0, [], 0
        started = time.monotonic()
        deadline = started + 60
        try:
            # Until the CA and, after it, the serving certificate have rotated (bounded). A steady
            # stream of at most 100 creates/s: the CA rotates ~30 s in, before the count bound.
            while time.monotonic() < deadline and created < 5000 and not (len(cas) >= 2 and len(serving) >= 5):
                time.sleep(max(0.0, started + created / 100 - time.monotonic()))
                try:
                    pod = core.create_namespaced_pod(ns, {
                        "metadata": {"name": f"p{created}", "labels": {"app": label}},
                        "spec": {"containers": [{"name": "app", "image": "a"}]}})
                    missing += "side" not in [c.name for c in pod.spec.containers]
                except ApiException as err:
                    failures.append(err.body)
                created += 1
        finally:
            stop.set()
            watcher.join(5)
        assert not failures, failures[:3]
        assert missing == 0
        assert created > 50
        assert len(serving) >= 3, f"serving certificate rotated {len(serving) - 1} times"
        assert len(cas) >= 2, "the CA did not rotate"
    finally:
        fleet.uninstall()


def test_external_mode_reports_a_ca_bundle_mismatch_and_never_writes_the_secret(cluster_only):
    namespace = "kruise-external"
    wait_for(lambda: not _namespace_exists(cluster_only.api(), "kruise-system"), timeout=60,
             what="the previous install's namespace to go")
    fleet = Fleet(cluster_only, namespace=namespace, extra_args=("--webhook-cert-mode=external",)).install(1)
    api = cluster_only.api()
    core, admission = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    ca = LocalCA("cert-manager-like")
    cert, key = ca.issue("kruise-webhook-service", dns_names=tuple(service_dns_names("kruise-webhook-service", namespace)),
                         server=True)
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    core.create_namespaced_secret(namespace, {"metadata": {"name": "kruise-webhook-certs"}, "type": "kubernetes.io/tls",
                                              "data": {"ca.crt": b64(ca.cert_pem), "tls.crt": b64(cert), "tls.key": b64(key)}})
    try:
        replica = fleet.start(fleet.replicas[0])
        wait_for(lambda: "does not hold the CA" in fleet.readyz_report(replica), timeout=30,
                 what="the mismatch reported by readiness")
        time.sleep(3)
        assert replica.alive()  # reported, not crash-looping
        assert set(_secret(api, namespace)) == {"ca.crt", "tls.crt", "tls.key"}  # read-only
        webhooks = admission.read_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION).webhooks
        assert [w.name for w in webhooks] == ["mpod.kb.io", "msidecarset.kb.io"]
        admission.patch_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION, [  # as a CA injector does: every webhook
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": b64(ca.cert_pem)}
            for i in range(len(webhooks))])
        admission.patch_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION, [
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": b64(ca.cert_pem)}])
        fleet.wait_ready([replica], timeout=30)
    finally:
        fleet.uninstall()


def _namespace_exists(api, name) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(name)
        return True
    except ApiException:
        return False
