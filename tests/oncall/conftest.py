"""An upstream-like kruise-manager layout, built through the API and run by kwok."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from kubernetes import client

from kruisectl.localcluster.pki import LocalCA

from ..conftest import wait_for

HOSTS = ["node-0", "node-1", "node-6"]  # zone-a, zone-b, and a bare-metal node without a zone


def _now(offset_s: float = 0) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def layout(cluster, api, namespace):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    admission, leases = client.AdmissionregistrationV1Api(api), client.CoordinationV1Api(api)
    labels = {"control-plane": "controller-manager"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "kruise-controller-manager", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True,
                "containers": [{"name": "manager", "image": "openkruise/kruise-manager:v1.8.0"}],
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": HOSTS}]}]}},
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]},
                },
            }},
        },
    })
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "kruise-webhook-service"},
        "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 9876}]},
    })
    ca = LocalCA("kruise-webhook-ca")
    cert, key = ca.issue("kruise-webhook-service", dns_names=(f"kruise-webhook-service.{namespace}.svc",), server=True)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "kruise-webhook-certs"},
        "data": {"ca-cert.pem": b64(ca.cert_pem), "ca-key.pem": b64(ca.key_pem), "cert.pem": b64(cert),
                 "key.pem": b64(key), "tls.crt": b64(cert), "tls.key": b64(key)},
    })
    names = {"mutating": f"m-{namespace}", "validating": f"v-{namespace}"}
    webhook = {"clientConfig": {"service": {"namespace": namespace, "name": "kruise-webhook-service", "path": "/x"},
                                "caBundle": b64(ca.cert_pem)},
               "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
               # As upstream: skip kube-system and the manager's namespace. The extra label
               # matches no namespace, so other tests' pods are never sent to this webhook.
               "namespaceSelector": {
                   "matchLabels": {"no-such-label": "x"},
                   "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                         "values": ["kube-system", namespace]}]}}
    pod_rule = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    sidecarset_rule = {"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
                       "resources": ["sidecarsets"]}
    admission.create_mutating_webhook_configuration(
        {"metadata": {"name": names["mutating"]}, "webhooks": [{**webhook, "name": "mpod.kb.io", "rules": [pod_rule]}]})
    admission.create_validating_webhook_configuration(
        {"metadata": {"name": names["validating"]},
         "webhooks": [{**webhook, "name": "vsidecarset.kb.io", "rules": [sidecarset_rule]}]})
    wait_for(lambda: (apps.read_namespaced_deployment("kruise-controller-manager", namespace).status.ready_replicas or 0) == 3,
             timeout=90, what="3 ready manager pods")
    pods = sorted(core.list_namespaced_pod(namespace, label_selector="control-plane=controller-manager").items,
                  key=lambda p: p.metadata.name)
    leader = next(p for p in pods if p.spec.node_name == "node-0")
    leases.create_namespaced_lease(namespace, {"metadata": {"name": "kruise-manager"}, "spec": {
        "holderIdentity": f"{leader.metadata.name}_{uuid.uuid4()}", "leaseDurationSeconds": 15,
        "acquireTime": _now(-300), "renewTime": _now(), "leaseTransitions": 2}})
    yield {"namespace": namespace, "leader": leader.metadata.name, "pods": pods, "ca": ca, **names}
    admission.delete_mutating_webhook_configuration(names["mutating"])
    admission.delete_validating_webhook_configuration(names["validating"])
