"""SidecarSet selection, injection and validation as pure functions (no cluster): every
selector operator, namespace and namespaceSelector, what injection adds and what it never
overwrites, and each validation rule. Through the apiserver: test_sidecarset_admission.py."""

from __future__ import annotations

import json

import pytest

from manager.sidecarset import (HASH_ANNOTATION, INJECTED_LIST_ANNOTATION, compute_status, inject, patch_for,
                                selects, validate)


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
        assert {"name": "IS_INJECTED", "value": "true"} in container["env"]
        assert "podInjectPolicy" not in container
    annotations = injected["metadata"]["annotations"]
    assert annotations[INJECTED_LIST_ANNOTATION] == "logs"
    assert json.loads(annotations[HASH_ANNOTATION])["logs"]["sidecarList"] == ["before", "after"]


def test_transfer_env_and_shared_volumes_come_from_the_app_container():
    s = sidecarset(containers=[{"name": "logger", "image": "l:1", "shareVolumePolicy": {"type": "enabled"},
                                "transferEnv": [{"sourceContainerName": "app", "envName": "REGION"}]}])
    injected, _ = inject(pod(), [s])
    logger = injected["spec"]["containers"][-1]
    env = {e["name"]: e.get("value") for e in logger["env"]}
    assert env["REGION"] == "eu" and "OTHER" not in env
    assert {"name": "data", "mountPath": "/data"} in logger["volumeMounts"]


def test_the_pods_own_entries_always_win_a_name_clash():
    s = sidecarset(containers=[{"name": "app", "image": "intruder:1"}, {"name": "logger", "image": "l:1"}],
                   volumes=[{"name": "data", "hostPath": {"path": "/"}}, {"name": "extra", "emptyDir": {}}])
    injected, _ = inject(pod(), [s])
    assert injected["spec"]["containers"][0]["image"] == "app:1"
    assert names(injected["spec"]["containers"]) == ["app", "logger"]
    volumes = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"] and "extra" in volumes


def test_the_patch_touches_only_what_injection_changed():
    original = pod()
    injected, _ = inject(original, [sidecarset()])
    ops = patch_for(original, injected)
    assert {op["path"] for op in ops} == {"/metadata/annotations", "/spec/containers"}
    assert all(op["op"] == "add" for op in ops)
    assert patch_for(original, original) == []


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
    ({"containers": [{"name": "a", "image": "x", "transferEnv": [{"envName": "X"}]}]}, "transferEnv[0]"),
    ({"containers": [{"name": "a", "image": "x", "env": [{"name": "IS_INJECTED", "value": "1"}]}]}, "IS_INJECTED"),
    ({"volumes": [{"name": "v"}, {"name": "v"}]}, "duplicate volume name"),
    ({"injectionStrategy": {"paused": "yes"}}, "paused"),
])
def test_each_invalid_field_is_named(spec, error):
    errors = validate(sidecarset(**spec))
    assert any(error in e for e in errors), errors


def test_a_valid_sidecarset_has_no_errors_and_a_clash_with_another_is_found():
    assert validate(sidecarset()) == []
    other = sidecarset(name="other")
    assert any("also injected by SidecarSet other" in e for e in validate(sidecarset(), [other]))
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
