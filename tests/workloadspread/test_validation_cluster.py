"""The WorkloadSpread validating webhook through the real apiserver: manager.webhook's server
(in this process, on loopback) answers vworkloadspread.kb.io with validation.validate_request,
reading the namespace's WorkloadSpreads and the target workload from the API, and objects are
created and updated with kubectl's client. The CRD's schema and the webhook meet as in a real
installation: what the schema lets through, the webhook judges as upstream does."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubekit import kruise
from localcluster import fleet
from localcluster.pki import LocalCA
from manager.webhook import WebhookServer
from manager.workloadspread.validation import UNSUPPORTED_TARGET, validate_request

from manager.options import parse
from localcluster.cluster import free_port

from ..conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

GROUP, VERSION, PLURAL = "apps.kruise.io", "v1alpha1", "workloadspreads"
ZONE = "topology.kubernetes.io/zone"
READ_TARGET = {"Deployment": "read_namespaced_deployment", "ReplicaSet": "read_namespaced_replica_set"}


def spread(name: str, target: str = "web", kind: str = "Deployment", api_version: str = "apps/v1", **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadSpread", "metadata": {"name": name},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": target},
                     "subsets": [{"name": "a", "maxReplicas": 1, "requiredNodeSelectorTerm": {"matchExpressions": [
                         {"key": ZONE, "operator": "In", "values": ["zone-a"]}]}}, {"name": "rest"}], **spec}}


@pytest.fixture
def webhook(cluster, api, namespace, tmp_path):
    """vworkloadspread.kb.io for ``namespace`` only, served here; yields a function that
    creates a WorkloadSpread and returns the apiserver's refusal message (None: created)."""
    fleet.install_crd(cluster.client())
    objects, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)

    def others(ns: str) -> list[dict]:
        return objects.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]

    def workload(ns: str, ref: dict) -> dict | None:
        try:
            read = (getattr(apps, READ_TARGET[ref["kind"]]) if ref["kind"] in READ_TARGET
                    else client.BatchV1Api(api).read_namespaced_job)
            return api.sanitize_for_serialization(read(ref["name"], ns))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    ca = LocalCA("workloadspread-webhook-ca")
    cert, key = ca.issue("webhook", ips=("127.0.0.1",), server=True)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    options = parse(["--webhook-bind-address=127.0.0.1", f"--webhook-port={free_port()}",
                     f"--webhook-cert-dir={tmp_path}"], environ={})  # the manager's own defaults
    server = WebhookServer(options, {
        kruise.VALIDATE_WORKLOADSPREAD_PATH: lambda request: validate_request(request, others, workload)}).start()
    admission = client.AdmissionregistrationV1Api(api)
    name = f"vworkloadspread-{namespace}"
    admission.create_validating_webhook_configuration({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "vworkloadspread.kb.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "timeoutSeconds": 5,
            "clientConfig": {"url": f"https://127.0.0.1:{server.port}{kruise.VALIDATE_WORKLOADSPREAD_PATH}",
                             "caBundle": base64.b64encode(ca.cert_pem).decode()},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [GROUP], "apiVersions": [VERSION],
                       "resources": [PLURAL]}]}]})

    def create(body: dict) -> str | None:
        try:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        except ApiException as err:
            return json.loads(err.body)["message"]
        return None

    # the apiserver picks the configuration up within a moment: until it refuses, it has not
    wait_for(lambda: "vworkloadspread.kb.io" in (create(spread("probe", kind="CloneSet",
                                                                api_version=f"{GROUP}/{VERSION}")) or ""),
             timeout=30, interval=0.5, what="the apiserver to call the webhook")
    objects.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    try:
        yield create
    finally:
        admission.delete_validating_webhook_configuration(name)
        server.stop(drain=0)


def test_refusals_reach_the_user_in_upstreams_words(api, namespace, webhook):
    prefix = 'admission webhook "vworkloadspread.kb.io" denied the request: '
    message = webhook(spread("cs", kind="CloneSet", api_version=f"{GROUP}/{VERSION}"))
    assert message == (f'{prefix}spec.targetRef: Invalid value: v1alpha1.TargetReference{{APIVersion:"apps.kruise.io/'
                       f'v1alpha1", Kind:"CloneSet", Name:"web"}}: {UNSUPPORTED_TARGET}')
    percent = spread("pct")
    percent["spec"]["subsets"] = [{"name": "a", "maxReplicas": "40%"}, {"name": "b", "maxReplicas": "70%"}]
    assert webhook(percent) == (f'{prefix}spec.subsets[1].maxReplicas: Invalid value: intstr.IntOrString{{Type:1, '
                                f'IntVal:0, StrVal:"70%"}}: the sum of all subset\'s maxReplicas exceeds 100% is no '
                                "permitted")
    adaptive = spread("adaptive", scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 400}})
    adaptive["spec"]["subsets"][1]["maxReplicas"] = 3
    assert webhook(adaptive) == (
        f"{prefix}[spec.scheduleStrategy.adaptive: Invalid value: 400: the last subset's maxReplicas must be not "
        "specified when using adaptive scheduleStrategy, spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds: "
        "Invalid value: 400: rescheduleCriticalSeconds < 0 or rescheduleCriticalSeconds > 295 is not permitted]")
    # what the schema lets through and upstream accepts: a percentage written without '%'
    loose = spread("loose")
    loose["spec"]["subsets"] = [{"name": "a", "maxReplicas": "30"}, {"name": "rest"}]
    assert webhook(loose) is None


def test_one_workloadspread_per_workload_and_a_fixed_target(api, namespace, webhook):
    objects = client.CustomObjectsApi(api)
    assert webhook(spread("first")) is None
    assert webhook(spread("second")).endswith("ws.spec.targetRef is in conflict with other WorkloadSpread first")
    assert webhook(spread("second", target="other")) is None
    assert webhook(spread("job", kind="Job", api_version="batch/v1")) is None  # another kind, same name
    with pytest.raises(ApiException) as refused:
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "first",
                                               {"spec": {"targetRef": {"name": "renamed"}}})
    assert "change TargetReference is not permitted for WorkloadSpread" in json.loads(refused.value.body)["message"]
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "first",
                                           {"spec": {"subsets": [{"name": "b", "maxReplicas": 2}, {"name": "rest"}]}})
    assert [s["name"] for s in objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "first")
            ["spec"]["subsets"]] == ["b", "rest"]


def test_a_patch_is_judged_against_the_target_when_it_exists(api, namespace, webhook):
    client.AppsV1Api(api).create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "registry.local/web:1"}]}}}})
    no_image = spread("sidecar")
    no_image["spec"]["subsets"][0]["patch"] = {"spec": {"containers": [{"name": "sidecar"}]}}
    assert webhook(no_image).endswith("spec.subsets[0].patch.containers[0].image: Required value")
    resources = spread("sized")
    resources["spec"]["subsets"][0]["patch"] = {
        "metadata": {"labels": {"subset": "a"}},
        "spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}}
    assert webhook(resources) is None
    # as upstream: with no workload to patch (yet), nothing to check
    no_image["metadata"]["name"], no_image["spec"]["targetRef"]["name"] = "ghost", "ghost"
    assert webhook(no_image) is None
