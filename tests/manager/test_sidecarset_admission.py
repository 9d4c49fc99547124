"""SidecarSet through the real apiserver and real manager replicas: injection on pod CREATE,
validation of SidecarSets, and the leader's status."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import wait_for
from tests.namespaces import fresh_namespace

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

GROUP, VERSION, PLURAL = "apps.kruise.io", "v1alpha1", "sidecarsets"


def sidecarset(name: str, selector: dict, containers: list[dict], **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": {"selector": selector, "containers": containers, **spec}}


@pytest.fixture
def api(fleet):
    return fleet.cluster.api()


@pytest.fixture
def objects(api):
    return client.CustomObjectsApi(api)


@pytest.fixture
def ns(api):
    with fresh_namespace(client.CoreV1Api(api), "t", labels={"team": "web"}) as name:
        yield name


@pytest.fixture
def logger_set(objects):
    name = f"logger-{uuid.uuid4().hex[:6]}"
    objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, sidecarset(
        name, {"matchLabels": {"app": name}},
        [{"name": "logger", "image": "registry.local/logger:1", "podInjectPolicy": "BeforeAppContainer",
          "shareVolumePolicy": {"type": "enabled"},
          "transferEnv": [{"sourceContainerName": "app", "envName": "TZ"}],
          "volumeMounts": [{"name": "log-cfg", "mountPath": "/etc/logger"}]}],
        initContainers=[{"name": "init-logger", "image": "registry.local/logger-init:1"}],
        volumes=[{"name": "log-cfg", "emptyDir": {}}, {"name": "data", "emptyDir": {"medium": "Memory"}}]))
    wait_for(lambda: all(name in {s["metadata"]["name"] for s in _sidecarsets_seen(objects)} for _ in [0]),
             timeout=10, what="SidecarSet listed")
    yield name
    objects.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def _sidecarsets_seen(objects):
    return objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]


def app_pod(name: str, labels: dict) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "containers": [{"name": "app", "image": "registry.local/app:1", "env": [{"name": "TZ", "value": "UTC"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "hostPath": {"path": "/srv/data"}}]}}


def create_until_injected(core, namespace: str, labels: dict, expect_container: str):
    """The manager's SidecarSet cache fills within moments of the create; retry until then."""
    attempt = 0

    def created():
        nonlocal attempt
        attempt += 1
        pod = core.create_namespaced_pod(namespace, app_pod(f"p{attempt}", labels))
        return pod if expect_container in [c.name for c in pod.spec.containers] else None

    return wait_for(created, timeout=20, interval=0.3, what="a pod with the sidecar")


def test_matching_pod_gets_its_sidecar_through_the_apiserver(api, ns, logger_set):
    core = client.CoreV1Api(api)
    pod = create_until_injected(core, ns, {"app": logger_set}, "logger")
    assert [c.name for c in pod.spec.containers] == ["logger", "app"]  # BeforeAppContainer
    assert [c.name for c in pod.spec.init_containers] == ["init-logger"]
    logger = pod.spec.containers[0]
    assert {(e.name, e.value) for e in logger.env} >= {("TZ", "UTC"), ("IS_INJECTED", "true")}
    assert {m.mount_path for m in logger.volume_mounts} >= {"/etc/logger", "/data"}  # shared app volumes
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["data"].host_path.path == "/srv/data"  # the pod's own volume is not clobbered
    assert "log-cfg" in volumes
    hashes = json.loads(pod.metadata.annotations["kruise.io/sidecarset-hash"])
    assert hashes[logger_set]["sidecarList"] == ["logger"]
    assert pod.metadata.annotations["kruise.io/sidecarset-injected-list"] == logger_set

    other = core.create_namespaced_pod(ns, app_pod("unmatched", {"app": "other"}))
    assert [c.name for c in other.spec.containers] == ["app"]


@pytest.mark.parametrize("namespace", ["kube-system", "kruise-system"])
def test_pods_of_the_control_plane_are_never_mutated(api, ns, logger_set, namespace):
    core = client.CoreV1Api(api)
    create_until_injected(core, ns, {"app": logger_set}, "logger")  # the cache has the SidecarSet
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
             timeout=30, what=f"default ServiceAccount in {namespace}")
    name = f"skip-{uuid.uuid4().hex[:6]}"
    pod = core.create_namespaced_pod(namespace, app_pod(name, {"app": logger_set}))
    try:
        assert [c.name for c in pod.spec.containers] == ["app"]
        assert "kruise.io/sidecarset-hash" not in (pod.metadata.annotations or {})
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_paused_and_namespace_scoped_sidecarsets_are_honoured(api, objects, ns):
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:6]
    objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, sidecarset(
        f"paused-{tag}", {"matchLabels": {"app": tag}}, [{"name": "paused", "image": "x"}],
        injectionStrategy={"paused": True}))
    objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, sidecarset(
        f"elsewhere-{tag}", {"matchLabels": {"app": tag}}, [{"name": "elsewhere", "image": "x"}], namespace="nope"))
    objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, sidecarset(
        f"team-{tag}", {"matchLabels": {"app": tag}}, [{"name": "team", "image": "x"}],
        namespaceSelector={"matchLabels": {"team": "web"}}))
    try:
        pod = create_until_injected(core, ns, {"app": tag}, "team")
        assert [c.name for c in pod.spec.containers] == ["team", "app"]  # defaulted to BeforeAppContainer
    finally:
        for name in ("paused", "elsewhere", "team"):
            objects.delete_cluster_custom_object(GROUP, VERSION, PLURAL, f"{name}-{tag}")


def test_a_sidecarset_is_stored_defaulted_with_its_revision_hashes(objects):
    from manager.sidecarset import defaulted

    body = sidecarset(f"stored-{uuid.uuid4().hex[:6]}", {"matchLabels": {"app": "stored"}},
                      [{"name": "s", "image": "registry.local/s", "resources": {"limits": {"cpu": "0.5"}}}],
                      volumes=[{"name": "v"}])
    objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    try:
        stored = objects.get_cluster_custom_object(GROUP, VERSION, PLURAL, body["metadata"]["name"])
        container = stored["spec"]["containers"][0]
        assert (container["podInjectPolicy"], container["imagePullPolicy"], container["resources"]) == \
            ("BeforeAppContainer", "Always", {"limits": {"cpu": "500m"}})
        assert stored["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
        assert stored["spec"]["updateStrategy"] == {"type": "RollingUpdate", "partition": 0, "maxUnavailable": 1}
        expected = defaulted(body)
        assert stored["spec"] == expected["spec"]
        for key in ("kruise.io/sidecarset-hash", "kruise.io/sidecarset-hash-without-image"):
            assert stored["metadata"]["annotations"][key] == expected["metadata"]["annotations"][key]
    finally:
        objects.delete_cluster_custom_object(GROUP, VERSION, PLURAL, body["metadata"]["name"])


@pytest.mark.parametrize("spec, reason", [
    ({"selector": {"matchLabels": {"a": "b"}}, "containers": [{"name": "x", "image": "i"}, {"name": "x", "image": "j"}]},
     "duplicate container name 'x'"),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}, "containers": [{"name": "x", "image": "i"}]},
     "unknown operator 'Near'"),
    ({"selector": {"matchLabels": {"a": "not a value!"}}, "containers": [{"name": "x", "image": "i"}]},
     "is not a valid label value"),
    ({"containers": [{"name": "x", "image": "i"}]}, "spec.selector: required"),
    ({"selector": {"matchLabels": {"a": "b"}}, "containers": [{"name": "Bad_Name", "image": "i"}]}, "DNS-1123"),
    ({"selector": {"matchLabels": {"a": "b"}}, "containers": [{"name": "x", "image": "i", "podInjectPolicy": "Last"}]},
     "podInjectPolicy"),
    ({"selector": {"matchLabels": {"a": "b"}}, "initContainers": [
        {"name": "x", "image": "i", "restartPolicy": "Always"}]}, "spec.updateStrategy"),
    ({"selector": {"matchLabels": {"a": "b"}}, "containers": [{"name": "x", "image": "i"}],
      "injectionStrategy": {"revision": {"customVersion": "v1"}}}, "spec.injectionStrategy.revision"),
    ({"selector": {"matchLabels": {"a": "b"}}, "containers": [{"name": "x", "image": "i"}],
      "patchPodMetadata": [{"annotations": {"k": "v"}}]}, "whitelist not found"),
])
def test_invalid_sidecarsets_are_rejected_with_the_reason(objects, fleet, spec, reason):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SidecarSet", "metadata": {"name": f"bad-{uuid.uuid4().hex[:6]}"},
            "spec": spec}
    with pytest.raises(ApiException) as caught:
        objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    assert caught.value.status == 500  # upstream's handler answers a refusal with admission.Errored(500, ...)
    message = json.loads(caught.value.body)["message"]
    assert "vsidecarset.kb.io" in message and reason in message


def test_a_container_name_two_sidecarsets_would_inject_into_one_pod_is_rejected(objects, logger_set):
    clash = sidecarset(f"clash-{uuid.uuid4().hex[:6]}", {"matchLabels": {"app": logger_set}},
                       [{"name": "logger", "image": "other"}])
    with pytest.raises(ApiException) as caught:
        wait_for(lambda: objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, clash) and
                 objects.delete_cluster_custom_object(GROUP, VERSION, PLURAL, clash["metadata"]["name"]) and False,
                 timeout=10, what="the clash to be seen")
    assert f"already exist in SidecarSet {logger_set}" in json.loads(caught.value.body)["message"]


def test_leader_keeps_status_current_from_watched_pods(api, objects, ns, logger_set):
    core = client.CoreV1Api(api)
    create_until_injected(core, ns, {"app": logger_set}, "logger")  # p1 (maybe more) with the sidecar
    for i in range(3):
        core.create_namespaced_pod(ns, {**app_pod(f"pre-{i}", {"app": logger_set}),
                                        "metadata": {"name": f"pre-{i}", "labels": {"app": logger_set},
                                                     "annotations": {}}})
    pods = [p for p in core.list_namespaced_pod(ns).items if (p.metadata.labels or {}).get("app") == logger_set]

    def status():
        got = objects.get_cluster_custom_object(GROUP, VERSION, PLURAL, logger_set).get("status") or {}
        return got if got.get("matchedPods") == len(pods) and got.get("readyPods") == len(pods) else None

    got = wait_for(status, timeout=60, what="status with all matched pods ready (kwok runs them)")
    assert got["updatedPods"] == len(pods) and got["updatedReadyPods"] == len(pods)
    assert got["observedGeneration"] == 1
    core.delete_namespaced_pod("pre-0", ns, grace_period_seconds=0)
    wait_for(lambda: (objects.get_cluster_custom_object(GROUP, VERSION, PLURAL, logger_set)["status"]
                      ["matchedPods"] == len(pods) - 1), timeout=30, what="status after a pod is deleted")
