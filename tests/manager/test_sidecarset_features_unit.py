"""HotUpgrade injection, patchPodMetadata (its policies, JSON merge patch and the whitelist),
native sidecar and the other admission rules of upstream v1.8.3, as pure functions (no
cluster). The same cases against the real upstream manager: tests/upstream/parity_cases.py."""

from __future__ import annotations

import json

import pytest

from manager.options import gate_values
from manager.sidecarset import (InjectionError, inject, merge_patch, patch_pod_metadata, selectors_overlap, validate,
                                whitelist_error)

WHITELIST = "SidecarSet_PatchPodMetadata_WhiteList"


def sidecarset(name="mesh", labels=None, **spec) -> dict:
    return {"metadata": {"name": name, **({"labels": labels} if labels else {})},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "containers": [{"name": "envoy", "image": "envoy:1"}], **spec}}


def pod(annotations=None) -> dict:
    return {"metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"},
                         **({"annotations": annotations} if annotations is not None else {})},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


HOT = {"name": "envoy", "image": "envoy:1", "podInjectPolicy": "BeforeAppContainer",
       "env": [{"name": "OWN", "value": "1"}],
       "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}


def version_env(name):
    return [{"name": "SIDECARSET_VERSION", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['version.sidecarset.kruise.io/{name}']"}}},
            {"name": "SIDECARSET_VERSION_ALT", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['versionalt.sidecarset.kruise.io/{name}']"}}}]


def test_a_hot_upgrade_sidecar_is_injected_as_two_containers_with_version_annotations():
    injected, _ = inject(pod(), [sidecarset(containers=[HOT])])
    containers = injected["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("envoy-1", "envoy:1"), ("envoy-2", "empty:1"), ("app", "app:1")]
    for c in containers[:2]:
        assert c["env"] == [{"name": "OWN", "value": "1"}, {"name": "IS_INJECTED", "value": "true"}] + version_env(c["name"])
        assert "upgradeStrategy" not in c
    annotations = injected["metadata"]["annotations"]
    assert {k: v for k, v in annotations.items() if "version" in k} == {
        "version.sidecarset.kruise.io/envoy-1": "1", "versionalt.sidecarset.kruise.io/envoy-1": "0",
        "version.sidecarset.kruise.io/envoy-2": "0", "versionalt.sidecarset.kruise.io/envoy-2": "1"}
    assert annotations["kruise.io/sidecarset-working-hotupgrade-container"] == '{"envoy":"envoy-1"}'
    assert json.loads(annotations["kruise.io/sidecarset-hash"])["mesh"]["sidecarList"] == ["envoy"]


@pytest.mark.parametrize("existing, expected", [
    (None, '{"envoy":"envoy-1"}'),
    ('{"zz":"zz-2"}', '{"envoy":"envoy-1","zz":"zz-2"}'),  # the pod's record is kept and extended (a Go map: sorted)
    ("not json", '{"envoy":"envoy-1"}'),  # unreadable: started afresh, as upstream
])
def test_the_working_container_record_extends_the_pods_own(existing, expected):
    annotations = {} if existing is None else {"kruise.io/sidecarset-working-hotupgrade-container": existing}
    injected, _ = inject(pod(annotations), [sidecarset(containers=[HOT])])
    assert injected["metadata"]["annotations"]["kruise.io/sidecarset-working-hotupgrade-container"] == expected


@pytest.mark.parametrize("init, names", [
    ({"name": "proxy", "image": "p:1", "restartPolicy": "Always",
      "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}}, ["proxy-1", "proxy-2"]),
    ({"name": "proxy", "image": "p:1",  # not a native sidecar: HotUpgrade does not apply
      "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}}, ["proxy"]),
])
def test_only_a_native_sidecar_init_container_is_hot_upgraded(init, names):
    injected, _ = inject(pod(), [sidecarset(initContainers=[init], updateStrategy={"type": "NotUpdate"})])
    assert [c["name"] for c in injected["spec"]["initContainers"]] == names


@pytest.mark.parametrize("policy, before, value, after", [
    ("Retain", None, "v", "v"),
    ("Retain", "mine", "v", "mine"),
    ("Overwrite", "mine", "v", "v"),
    ("MergePatchJson", None, '{"a":1}', '{"a":1}'),
    ("MergePatchJson", "", '{"a":1}', '{"a":1}'),
    ("MergePatchJson", '{"b":2,"a":0}', '{"a":1}', '{"a":1,"b":2}'),
    ("MergePatchJson", '{"a":{"x":1,"y":2}}', '{"a":{"x":null}}', '{"a":{"y":2}}'),
    ("Sometimes", "mine", "v", "mine"),  # an unknown policy does nothing (upstream's switch has no default)
])
def test_patch_policies(policy, before, value, after):
    annotations = {} if before is None else {"k": before}
    patch_pod_metadata(annotations, [{"annotations": {"k": value}, "patchPolicy": policy}])
    assert annotations.get("k") == after


@pytest.mark.parametrize("document, patch, result", [
    ('{"n":1.50,"s":"<&>"}', '{"m":2}', '{"m":2,"n":1.50,"s":"\\u003c\\u0026\\u003e"}'),  # numbers as written, Go escapes
    ('[1]', '{"a":null,"b":2}', '{"b":2}'),  # not an object: the patch, nulls pruned
    ('{"a":1}', '[1,null]', '[1,null]'),  # an array patch is returned as is
    ('{"a":{"b":1}}', '{"a":{"c":{"d":null,"e":1}}}', '{"a":{"b":1,"c":{"e":1}}}'),
])
def test_merge_patch_is_evanphx_json_patch(document, patch, result):
    assert merge_patch(document, patch) == result


@pytest.mark.parametrize("document, patch", [("{", '{"a":1}'), ('{"a":1}', "nope"), ("null", "{}"),
                                             ('{"a":1}', "null"), ('{"a":1}', '"text"')])
def test_merge_patch_errors_refuse_the_pod(document, patch):
    with pytest.raises(InjectionError):
        merge_patch(document, patch)


def test_patch_pod_metadata_is_applied_on_create_before_transfer_env_reads_the_pod():
    s = sidecarset(patchPodMetadata=[{"annotations": {"main": "app"}, "patchPolicy": "Retain"}],
                   containers=[{"name": "envoy", "image": "envoy:1", "transferEnv": [
                       {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['main']"}},
                        "envName": "TZ"}]}])
    p = pod()
    p["spec"]["containers"][0]["env"] = [{"name": "TZ", "value": "UTC"}]
    injected, _ = inject(p, [s])
    assert injected["metadata"]["annotations"]["main"] == "app"
    assert {"name": "TZ", "value": "UTC"} in injected["spec"]["containers"][0]["env"]


def rules(*rules) -> dict:
    return {WHITELIST: json.dumps({"rules": list(rules)})}


PATCHED = sidecarset(labels={"team": "mesh"}, patchPodMetadata=[{"annotations": {"mesh.io/config": "{}"},
                                                                 "patchPolicy": "MergePatchJson"}])


@pytest.mark.parametrize("configuration, gate, error", [
    (None, False, "SidecarSet patch metadata whitelist not found"),
    ({}, False, "SidecarSet patch metadata whitelist not found"),
    ({"other": "x"}, False, "SidecarSet patch metadata whitelist not found"),
    (None, True, None),  # the feature gate allows patches without a whitelist
    (rules({"allowedAnnotationKeyExprs": ["^mesh\\.io/.*"]}), False, None),
    (rules({"allowedAnnotationKeyExprs": ["config"]}), False, None),  # unanchored, as Go's MatchString
    (rules({"allowedAnnotationKeyExprs": ["^other/"]}), False, "annotation(mesh.io/config) is not allowed"),
    (rules({"allowedAnnotationKeyExprs": ["^other/"]}), True, "annotation(mesh.io/config) is not allowed"),
    (rules({"selector": {"matchLabels": {"team": "mesh"}}, "allowedAnnotationKeyExprs": ["mesh"]}), False, None),
    (rules({"selector": {"matchLabels": {"team": "db"}}, "allowedAnnotationKeyExprs": ["mesh"]}), False,
     "sidecarSet patch metadata annotation is not allowed"),
    (rules({"selector": {"matchLabels": {"team": "db"}}, "allowedAnnotationKeyExprs": ["mesh"]}), True, None),
    ({WHITELIST: "not json"}, True, "not a whitelist"),
])
def test_the_patch_metadata_whitelist(configuration, gate, error):
    found = whitelist_error(PATCHED, configuration, gate)
    assert (found is None) if error is None else (error in found), found
    errors = validate(PATCHED, configuration=configuration, defaults_allowed=gate)
    assert (errors == []) if error is None else any(error in e and e.startswith("spec.patchPodMetadata") for e in errors)


@pytest.mark.parametrize("text, gate", [("", False), ("AllAlpha=true", True), ("AllAlpha=true,"
                                       "SidecarSetPatchPodMetadataDefaultsAllowed=false", False),
                                       ("AllBeta=true,KruiseDaemon=false", False),
                                       ("SidecarSetPatchPodMetadataDefaultsAllowed=true", True)])
def test_feature_gates_as_upstream_reads_them(text, gate):
    assert gate_values(text)["SidecarSetPatchPodMetadataDefaultsAllowed"] is gate


@pytest.mark.parametrize("spec, field", [
    ({"patchPodMetadata": [{"annotations": {}, "patchPolicy": "Retain"}]}, "no annotations defined"),
    ({"patchPodMetadata": [{"annotations": {"a": "1"}, "patchPolicy": "Retain"},
                           {"annotations": {"a": "2"}, "patchPolicy": "Overwrite"}]}, "patch annotation[a] already exist"),
    ({"patchPodMetadata": [{"annotations": {"bad key!": "1"}, "patchPolicy": "Retain"}]}, "key 'bad key!'"),
    ({"patchPodMetadata": [{"annotations": {"a": "1"}}]}, "no patchPolicy defined"),
    ({"initContainers": [{"name": "n", "image": "x", "restartPolicy": "Always"}],
      "updateStrategy": {"type": "RollingUpdate"}}, "spec.updateStrategy: initContainer n has restartPolicy Always"),
    ({"injectionStrategy": {"revision": {"revisionName": "mesh-1", "policy": "Always"}}},
     "spec.injectionStrategy.revision: not supported"),
    ({"updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "ten"}}, "spec.updateStrategy.maxUnavailable"),
    ({"updateStrategy": {"type": "RollingUpdate", "selector": {}}}, "spec.updateStrategy.selector: an empty"),
    ({"updateStrategy": {"type": "RollingUpdate", "scatterStrategy": [{"key": "a", "value": "1"},
                                                                      {"key": "a", "value": "1"}]}}, "duplicated key=a"),
    ({"updateStrategy": {"type": "RollingUpdate", "priorityStrategy": {
        "weightPriority": [{"weight": 5, "matchSelector": {}}]}}}, "selector can not be empty"),
    ({"containers": [{"name": "e", "image": "x", "restartPolicy": "Always"}]}, "spec.containers[0].restartPolicy"),
    ({"initContainers": [{"name": "i", "image": "x", "restartPolicy": "OnFailure"}],
      "updateStrategy": {"type": "NotUpdate"}}, "spec.initContainers[0].restartPolicy: 'OnFailure'"),
    ({"initContainers": [{"name": "i", "image": "x", "readinessProbe": {"tcpSocket": {"port": 80}}}]},
     "spec.initContainers[0].readinessProbe: may not be set for init containers without restartPolicy=Always"),
    ({"initContainers": [{"name": "i", "image": "x", "resizePolicy": [{"resourceName": "cpu",
                                                                      "restartPolicy": "NotRequired"}]}]},
     "spec.initContainers[0].resizePolicy"),
])
def test_upstream_rules_name_the_field(spec, field):
    errors = validate(sidecarset(**spec), defaults_allowed=True)
    assert any(field in e for e in errors), errors


@pytest.mark.parametrize("name, valid", [("mesh", True), ("Mesh-1", True), ("mesh.v1", False), ("a" * 64, False),
                                         ("mesh\n", False)])
def test_the_name_pattern(name, valid):
    assert (validate(sidecarset(name=name)) == []) is valid


@pytest.mark.parametrize("spec, accepted", [
    ({"initContainers": [{"name": "n", "image": "x", "restartPolicy": "Always"}],
      "updateStrategy": {"type": "NotUpdate"}}, True),  # a native sidecar under NotUpdate
    ({"containers": [{"name": "e", "image": "x", "env": [{"name": "IS_INJECTED", "value": "no"}]}]}, True),
    ({"containers": [{"name": "e", "image": "x", "upgradeStrategy": {"upgradeType": "HotUpgrade"}}]}, True),
    ({"updateStrategy": {"type": "NotUpdate", "maxUnavailable": "ten"}}, True),  # only RollingUpdate is checked
    ({"initContainers": [{"name": "n", "image": "x", "restartPolicy": "Always", "readinessProbe": {
        "tcpSocket": {"port": 80}}, "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}],
      "updateStrategy": {"type": "NotUpdate"}}, True),  # a native sidecar may have probes and a lifecycle
])
def test_what_upstream_accepts_is_accepted(spec, accepted):
    assert (validate(sidecarset(**spec)) == []) is accepted


def test_a_declared_is_injected_stays_first():
    s = sidecarset(containers=[{"name": "e", "image": "x", "env": [{"name": "IS_INJECTED", "value": "no"}]}])
    injected, _ = inject(pod(), [s])
    assert injected["spec"]["containers"][-1]["env"] == [{"name": "IS_INJECTED", "value": "no"},
                                                         {"name": "IS_INJECTED", "value": "true"}]


@pytest.mark.parametrize("first, second, overlap", [
    ({"matchLabels": {"a": "1"}}, {"matchLabels": {"a": "2"}}, False),
    ({"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "2"}}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"matchLabels": {"a": "2"}}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"matchLabels": {"a": "2"}}, True),
    ({"matchLabels": {"a": "1"}}, {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, False),
    ({"matchLabels": {"a": "1"}}, {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"b": "1"}}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, False),
])
def test_selector_overlap_is_upstreams(first, second, overlap):
    assert selectors_overlap(first, second) is overlap


def other(name, **spec):
    return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


@pytest.mark.parametrize("mine, theirs, error", [
    ({}, other("o", containers=[{"name": "envoy", "image": "y"}]), "spec.containers: container envoy already exist"),
    ({"initContainers": [{"name": "i", "image": "x"}]}, other("o", initContainers=[{"name": "i", "image": "y"}]),
     "spec.initContainers: container i already exist"),
    ({"initContainers": [{"name": "i", "image": "x"}]}, other("o", containers=[{"name": "i", "image": "y"}]), None),
    ({"volumes": [{"name": "v", "emptyDir": {}}]}, other("o", volumes=[{"name": "v", "emptyDir": {}}]), None),
    ({"volumes": [{"name": "v", "emptyDir": {}}]}, other("o", volumes=[{"name": "v", "hostPath": {"path": "/x"}}]),
     "spec.volumes: volume v is in conflict"),
    ({"patchPodMetadata": [{"annotations": {"k": "1"}, "patchPolicy": "Overwrite"}]},
     other("o", patchPodMetadata=[{"annotations": {"k": "2"}, "patchPolicy": "MergePatchJson"}]), "annotation k"),
    ({"patchPodMetadata": [{"annotations": {"k": "1"}, "patchPolicy": "MergePatchJson"}]},
     other("o", patchPodMetadata=[{"annotations": {"k": "2"}, "patchPolicy": "MergePatchJson"}]), None),
    ({"patchPodMetadata": [{"annotations": {"k": "1"}, "patchPolicy": "Retain"}]},
     other("o", patchPodMetadata=[{"annotations": {"k": "2"}, "patchPolicy": "Overwrite"}]), None),
    ({"namespace": "a"}, {**other("o", containers=[{"name": "envoy", "image": "y"}]),
                          "spec": {"selector": {"matchLabels": {"app": "web"}}, "namespace": "b",
                                   "containers": [{"name": "envoy", "image": "y"}]}}, None),
    # upstream reads the other's namespaceSelector where its own is meant: never overlapping
    ({"namespaceSelector": {"matchLabels": {"team": "a"}}},
     {"metadata": {"name": "o"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "namespace": "shop",
                                          "containers": [{"name": "envoy", "image": "y"}]}}, None),
])
def test_conflicts_with_other_sidecarsets(mine, theirs, error):
    errors = validate(sidecarset(**mine), [theirs], defaults_allowed=True,
                      namespace_labels=lambda n: {"team": "a"} if n == "shop" else None)
    assert (errors == []) if error is None else any(error in e for e in errors), errors


@pytest.mark.parametrize("working, images, ready", [
    ('{"envoy":"envoy-1"}', {"envoy-1": "envoy:1", "envoy-2": "empty:1"}, True),
    ('{"envoy":"envoy-1"}', {"envoy-1": "envoy:1", "envoy-2": "envoy:2"}, False),  # upgrading: not settled
    ('{"envoy":"envoy-2"}', {"envoy-1": "empty:1", "envoy-2": "envoy:2"}, True),  # flipped
    ('{"envoy":"envoy-2"}', {"envoy-1": "envoy:1", "envoy-2": "envoy:2"}, False),
    ("{}", {"envoy-1": "envoy:1", "envoy-2": "empty:1"}, False),  # unrecorded: <name>-1 is the empty one
])
def test_a_hot_upgrade_pod_counts_ready_once_its_other_container_is_empty(working, images, ready):
    from manager.controller import slim_pod
    from manager.sidecarset import compute_status
    s = sidecarset(containers=[HOT])
    obj = {"metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"},
                        "annotations": {"kruise.io/sidecarset-working-hotupgrade-container": working}},
           "spec": {"containers": [{"name": n, "image": i} for n, i in images.items()]},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    status = compute_status(s, [slim_pod(obj)], {})
    assert (status["matchedPods"], status.get("readyPods", 0)) == (1, int(ready))
