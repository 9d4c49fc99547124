"""SidecarSet selection, injection and validation as pure functions (no cluster): every
selector operator, namespace and namespaceSelector, what injection adds and what it never
overwrites, and each validation rule. Through the apiserver: test_sidecarset_admission.py."""

from __future__ import annotations

import json

import pytest

from manager.sidecarset import (HASH_ANNOTATION, HASH_WITHOUT_IMAGE_ANNOTATION, INJECTED_LIST_ANNOTATION,
                                InjectionError, compute_status, defaulted, inject, injection_order, patch_for, selects, validate)


def sidecarset(name="logs", **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                  "containers": [{"name": "logger", "image": "logger:1"}], **spec}}


@pytest.mark.parametrize("spec, namespace, ns_labels, selected", [
    ({}, "shop", {}, True),
    ({"namespace": "shop"}, "shop", {}, True),
    ({"namespace": "shop"}, "other", {}, False),
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, "shop", {"team": "a"}, True),
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, "shop", {"team": "b"}, False),
    ({"selector": None}, "shop", {}, False),  # no selector selects nothing
])
def test_namespace_and_selector_decide_which_pods(spec, namespace, ns_labels, selected):
    assert selects(sidecarset(**spec), namespace, {"app": "web"}, ns_labels) is selected


def pod(**spec) -> dict:
    return {"metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "app:1",
                                     "env": [{"name": "REGION", "value": "eu"}, {"name": "OTHER", "value": "x"}],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "emptyDir": {}}], **spec}}


def names(containers) -> list[str]:
    return [c["name"] for c in containers]


def test_injection_adds_containers_by_policy_and_records_the_revision():
    s = sidecarset(containers=[{"name": "before", "image": "b:1", "podInjectPolicy": "BeforeAppContainer"},
                               {"name": "after", "image": "a:1", "podInjectPolicy": "AfterAppContainer"}])
    injected, which = inject(pod(), [s], now="2026-01-01T00:00:00Z")
    assert which == ["logs"]
    assert names(injected["spec"]["containers"]) == ["before", "app", "after"]
    for container in injected["spec"]["containers"][::2]:
        assert container["env"] == [{"name": "IS_INJECTED", "value": "true"}]
        assert "podInjectPolicy" not in container
    annotations = injected["metadata"]["annotations"]
    assert annotations[INJECTED_LIST_ANNOTATION] == "logs"
    assert json.loads(annotations[HASH_ANNOTATION])["logs"]["sidecarList"] == ["after", "before"]  # sorted


def test_transfer_env_and_shared_volumes_come_from_the_app_container():
    s = sidecarset(containers=[{"name": "logger", "image": "l:1", "shareVolumePolicy": {"type": "enabled"},
                                "transferEnv": [{"sourceContainerName": "app", "envName": "REGION"}]}])
    injected, _ = inject(pod(), [s])
    logger = injected["spec"]["containers"][-1]
    env = {e["name"]: e.get("value") for e in logger["env"]}
    assert env["REGION"] == "eu" and "OTHER" not in env
    assert {"name": "data", "mountPath": "/data"} in logger["volumeMounts"]


def test_a_sidecar_named_like_a_pod_container_replaces_it_in_place_as_upstream_does():
    """Upstream's merge puts the sidecar where the pod's container of that name was; only
    the volumes the sidecars mount are added, and the pod's own volume wins a name clash."""
    s = sidecarset(containers=[{"name": "app", "image": "intruder:1", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                               {"name": "logger", "image": "l:1", "podInjectPolicy": "AfterAppContainer"}],
                   volumes=[{"name": "data", "hostPath": {"path": "/"}}, {"name": "extra", "emptyDir": {}}])
    injected, _ = inject(pod(), [s])
    assert names(injected["spec"]["containers"]) == ["app", "logger"]
    assert injected["spec"]["containers"][0]["image"] == "intruder:1"
    assert injected["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]  # "extra" is mounted by nobody


def test_transfer_env_may_name_its_source_container_in_a_label():
    s = sidecarset(containers=[{"name": "agent", "image": "a:1", "transferEnv": [
        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['main']"}}, "envNames": ["REGION"]}]}])
    assert validate(s) == []
    labelled = {**pod(), "metadata": {"name": "p", "labels": {"app": "web", "main": "app"}}}
    injected, _ = inject(labelled, [s])
    assert injected["spec"]["containers"][-1]["env"] == [{"name": "IS_INJECTED", "value": "true"},
                                                         {"name": "REGION", "value": "eu"}]
    unlabelled, _ = inject(pod(), [s])
    assert unlabelled["spec"]["containers"][-1]["env"] == [{"name": "IS_INJECTED", "value": "true"}]


def test_the_patch_touches_only_what_injection_changed():
    original = pod()
    injected, _ = inject(original, [sidecarset()])
    ops = patch_for(original, injected)
    assert {op["path"] for op in ops} == {"/metadata/annotations", "/spec/containers"}
    assert all(op["op"] == "add" for op in ops)
    assert patch_for(original, original) == []


def test_annotations_are_written_byte_for_byte_as_upstream_writes_them():
    s = sidecarset(containers=[{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}])
    s["metadata"]["annotations"] = {HASH_ANNOTATION: "H1", HASH_WITHOUT_IMAGE_ANNOTATION: "H2"}
    s["status"] = {"latestRevision": "logs-5f7d"}
    earlier = {HASH_ANNOTATION: '{"old":"plain-hash"}', INJECTED_LIST_ANNOTATION: "old"}
    p = {**pod(), "metadata": {"name": "p", "labels": {"app": "web"}, "annotations": earlier}}
    injected, _ = inject(p, [s], now="2026-01-02T03:04:05Z")
    annotations = injected["metadata"]["annotations"]
    assert annotations[HASH_ANNOTATION] == (
        '{"logs":{"updateTimestamp":"2026-01-02T03:04:05Z","hash":"H1","sidecarSetName":"logs",'
        '"sidecarList":["a","b"],"controllerRevision":"logs-5f7d"},'
        '"old":{"updateTimestamp":null,"hash":"plain-hash","sidecarSetName":"old","sidecarList":null}}')
    assert annotations[HASH_WITHOUT_IMAGE_ANNOTATION] == (
        '{"logs":{"updateTimestamp":"2026-01-02T03:04:05Z","hash":"H2","sidecarSetName":"logs","sidecarList":["a","b"]}}')
    assert annotations[INJECTED_LIST_ANNOTATION] == "logs,old"


INIT_POD = {"metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"}, "annotations": {"tier": "1"}},
            "spec": {"initContainers": [{"name": "m-own", "image": "own:1"}],
                     "containers": [{"name": "app", "image": "app:1",
                                     "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"},
                                             {"name": "SUB", "value": "x"}, {"name": "C", "value": "3"}],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data", "subPathExpr": "$(SUB)"}]},
                                    {"name": "side", "image": "s:1", "env": [{"name": "IS_INJECTED", "value": "true"}],
                                     "volumeMounts": [{"name": "old", "mountPath": "/old"}]}],
                     "volumes": [{"name": "data", "emptyDir": {}}, {"name": "old", "emptyDir": {}}],
                     "imagePullSecrets": [{"name": "own"}]}}


@pytest.mark.parametrize("case, expect", [
    ("init containers: after the pod's own, sorted by name; env IS_INJECTED, transferEnv, shared mounts",
     {"initContainers": ["m-own", "a-init", "z-init"],
      "a-init.env": ["IS_INJECTED", "A", "B", "SUB"], "a-init.mounts": ["/data"]}),
    ("containers: BeforeAppContainer unless said otherwise, in SidecarSet order",
     {"containers": ["first", "second", "app", "side", "last"]}),
    ("an app container already injected (IS_INJECTED=true) shares no mounts",
     {"first.mounts": ["/cfg", "/data"]}),
    ("own env first, then IS_INJECTED, then transferEnv; a declared name is not overwritten",
     {"second.env": ["C", "IS_INJECTED", "A", "B"], "second.env.C": "own"}),
    ("only mounted volumes, in mount order after the pod's own",
     {"volumes": ["data", "old", "cfg", "cache"]}),
    ("image pull secrets merged by name",
     {"imagePullSecrets": ["own", "registry"]}),
])
def test_injection_order_and_content_follow_upstream(case, expect):
    s = {"metadata": {"name": "mesh"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "initContainers": [
            {"name": "z-init", "image": "z:1", "podInjectPolicy": "AfterAppContainer"},
            {"name": "a-init", "image": "a:1", "podInjectPolicy": "AfterAppContainer",
             "shareVolumePolicy": {"type": "enabled"},
             "transferEnv": [{"sourceContainerName": "app", "envNames": ["B", "A", "MISSING"]}]}],
        "containers": [
            {"name": "first", "image": "f:1", "podInjectPolicy": "BeforeAppContainer", "shareVolumePolicy": {"type": "enabled"},
             "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "data", "mountPath": "/data"}]},
            {"name": "second", "image": "s:1", "env": [{"name": "C", "value": "own"}],
             "transferEnv": [{"sourceContainerName": "app", "envName": "C"}, {"sourceContainerName": "app", "envNames": ["B", "A"]}]},
            {"name": "last", "image": "l:1", "podInjectPolicy": "AfterAppContainer",
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
        "volumes": [{"name": "unused", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "c"}}, {"name": "data", "hostPath": {"path": "/x"}}],
        "imagePullSecrets": [{"name": "registry"}, {"name": "own"}]}}
    injected, _ = inject(INIT_POD, [defaulted(s)])  # as stored: podInjectPolicy defaulted
    spec = injected["spec"]
    by_name = {c["name"]: c for c in spec["containers"] + spec["initContainers"]}
    for key, want in expect.items():
        parts = key.split(".")
        if parts[0] in ("initContainers", "containers", "volumes", "imagePullSecrets"):
            assert [c["name"] for c in spec[parts[0]]] == want, case
        elif parts[1] == "mounts":
            assert [m["mountPath"] for m in by_name[parts[0]].get("volumeMounts") or []] == want, case
        elif len(parts) == 2:
            assert [e["name"] for e in by_name[parts[0]]["env"]] == want, case
        else:
            assert next(e["value"] for e in by_name[parts[0]]["env"] if e["name"] == parts[2]) == want, case


def test_sidecarsets_of_the_pods_namespace_go_first_then_cluster_scoped_ones_by_name():
    def ss(name, before, **spec):
        return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec,
                                                     "containers": [{"name": before, "image": "x:1",
                                                                     "podInjectPolicy": "BeforeAppContainer"}]}}
    sets = [ss("a-cluster", "c1"), ss("z-scoped", "s1", namespace="shop"),
            ss("b-cluster", "c2", namespaceSelector={"matchLabels": {"team": "x"}}),
            ss("m-by-name", "s2", namespaceSelector={"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "other"]}]})]
    assert [s["metadata"]["name"] for s in injection_order(sets, "shop")] == ["m-by-name", "z-scoped", "a-cluster",
                                                                               "b-cluster"]
    injected, which = inject(INIT_POD, sets)
    assert which == ["m-by-name", "z-scoped", "a-cluster", "b-cluster"]
    assert names(injected["spec"]["containers"])[:4] == ["s2", "s1", "c1", "c2"]


@pytest.mark.parametrize("selector, selected", [
    ({"matchLabels": {"app": "web"}}, True),
    ({}, False),  # upstream: an empty selector selects nothing
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
])
def test_an_empty_selector_selects_no_pod(selector, selected):
    assert selects({"spec": {"selector": selector}}, "shop", {"app": "web"}, {}) is selected


def test_a_mount_of_an_undeclared_volume_is_refused():
    s = sidecarset(containers=[{"name": "x", "image": "x:1", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]}])
    with pytest.raises(InjectionError):
        inject(pod(), [s])
    assert any("'nope' is not one of spec.volumes" in e for e in validate(s))


def test_an_unreadable_hash_annotation_is_refused():
    p = {**pod(), "metadata": {"name": "p", "annotations": {HASH_ANNOTATION: "{not json"}}}
    with pytest.raises(InjectionError):
        inject(p, [sidecarset()])


@pytest.mark.parametrize("spec, error", [
    ({"selector": None}, "spec.selector: required"),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "Like"}]}}, "spec.selector"),
    ({"namespace": "a", "namespaceSelector": {}}, "mutually exclusive"),
    ({"containers": []}, "at least one container"),
    ({"containers": [{"name": "Bad_Name", "image": "x"}]}, "DNS-1123 label"),
    ({"containers": [{"name": "a"}]}, "image: required"),
    ({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}, "duplicate container name"),
    ({"containers": [{"name": "a", "image": "x", "podInjectPolicy": "Sometimes"}]}, "podInjectPolicy"),
    ({"containers": [{"name": "a", "image": "x", "shareVolumePolicy": {"type": "maybe"}}]}, "shareVolumePolicy"),
    ({"containers": [{"name": "a", "image": "x", "transferEnv": [
        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}, "envName": "X"}]}]},
     "transferEnv[0].sourceContainerNameFrom.fieldRef: fieldPath 'spec.nodeName'"),
    ({"initContainers": [{"name": "n", "image": "x", "restartPolicy": "Always"}]}, "spec.updateStrategy"),
    ({"injectionStrategy": {"revision": {"customVersion": "v1"}}}, "spec.injectionStrategy.revision"),
    ({"patchPodMetadata": [{"annotations": {"a": "b"}, "patchPolicy": "Retain"}]}, "whitelist not found"),
    ({"updateStrategy": {"type": "RollingUpdate", "partition": 1, "selector": {"matchLabels": {"a": "b"}}}},
     "spec.updateStrategy: partition and selector"),
    ({"namespaceSelector": {}}, "spec.namespaceSelector: an empty selector"),
    ({"containers": [{"name": "a", "image": "x", "transferEnv": [
        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['bad key']"}}}]}]},
     "the key is not a valid label key"),
    ({"containers": [{"name": "a", "image": "x", "shareVolumePolicy": {"type": "Enabled"}}]}, "shareVolumePolicy"),
    ({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}]},
     "must be less than or equal to memory limit of 1Gi"),
    ({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"},
                                                                  {"name": "v", "mountPath": "/v"}]}],
      "volumes": [{"name": "v"}]}, "volumeMounts[1].mountPath: '/v' must be unique"),
    ({"initContainers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "/abs"}]}],
      "volumes": [{"name": "v"}]}, "subPath: '/abs' must be a relative path"),
    ({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v", "subPathExpr": "a/../b"}]}],
      "volumes": [{"name": "v"}]}, "subPathExpr: 'a/../b' must not contain '..'"),
    ({"containers": [{"name": "a", "image": "x", "env": [{"name": "1X", "value": "1"}]}]}, "env[0].name: '1X'"),
    ({"containers": [{"name": "a", "image": "x", "env": [{"name": "", "value": "1"}]}]}, "env[0].name: required"),
    ({"containers": [{"name": "a", "image": "x "}]}, "leading or trailing whitespace"),
    ({"volumes": [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/etc/x"}]}}]},
     "spec.volumes[0].secret.items: path '/etc/x' must be a relative path"),
    ({"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "c", "items": [{"key": "k", "path": "..x"}]}}]}}]},
     "must not start with .."),
    ({"volumes": [{"name": "v"}, {"name": "v"}]}, "duplicate volume name"),
    ({"injectionStrategy": {"paused": "yes"}}, "paused"),
])
def test_each_invalid_field_is_named(spec, error):
    errors = validate(sidecarset(**spec))
    assert any(error in e for e in errors), errors


@pytest.mark.parametrize("spec", [
    {"containers": [{"name": "a", "image": "x", "transferEnv": [{"envName": "X"}, {"sourceContainerName": "app"}, {}]}]},
    {"containers": [{"name": "a", "image": "x", "transferEnv": [
        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['Main']"}}, "envName": "X"}]}]},
    {"initContainers": [{"name": "a", "image": "x", "podInjectPolicy": "Middle", "shareVolumePolicy": {"type": "maybe"},
                         "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]},
    {"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "0.5"}},
                     "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "a/b..c"}]}],
     "volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "x/y"}]}}]},
])
def test_what_upstream_accepts_is_accepted(spec):
    """Found by the differential test: upstream checks these less than it seems."""
    assert validate(sidecarset(**spec)) == []


def test_an_update_may_not_add_a_container_nor_change_its_upgrade_type():
    old = sidecarset(containers=[{"name": "logger", "image": "l:1", "upgradeStrategy": {"upgradeType": "ColdUpgrade"}}])
    assert validate(sidecarset(containers=[{"name": "logger", "image": "l:2"}]), previous=old) == \
        ["spec.containers: the upgradeType of container 'logger' is immutable"]
    assert validate(sidecarset(containers=[{"name": "logger", "image": "l:2", "upgradeStrategy": {
        "upgradeType": "ColdUpgrade"}}]), previous=old) == []
    added = sidecarset(containers=[{"name": "logger", "image": "l:1", "upgradeStrategy": {"upgradeType": "ColdUpgrade"}},
                                   {"name": "new", "image": "n:1"}])
    assert any("'new' is not in the SidecarSet being updated" in e for e in validate(added, previous=old))
    assert validate(added) == []  # a create may have any containers


def test_a_valid_sidecarset_has_no_errors_and_a_clash_with_another_is_found():
    assert validate(sidecarset()) == []
    other = sidecarset(name="other")
    assert any("container logger already exist in SidecarSet other" in e for e in validate(sidecarset(), [other]))
    elsewhere = sidecarset(name="elsewhere", namespace="b")
    assert validate(sidecarset(namespace="a"), [elsewhere]) == []  # provably never on one pod


def test_status_counts_matched_updated_and_ready_pods():
    s = sidecarset()
    injected, _ = inject(pod(), [s])
    slim = lambda p, ready, ns="shop": {"namespace": ns, "labels": p["metadata"]["labels"],  # noqa: E731
                                        "annotations": p["metadata"].get("annotations") or {}, "ready": ready}
    status = compute_status(s, [slim(injected, True), slim(injected, False), slim(pod(), True),
                                {"namespace": "shop", "labels": {}, "annotations": {}, "ready": True}], {})
    assert (status["matchedPods"], status["updatedPods"], status["readyPods"], status["updatedReadyPods"]) == (3, 2, 2, 1)
