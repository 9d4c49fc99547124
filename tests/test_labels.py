"""Label selectors as the apiserver evaluates them (kubekit.labels): every operator, absent
keys, empty selectors, node-selector Gt/Lt, and the text that says why a selector fails."""

from __future__ import annotations

import pytest

from kubekit.labels import requirement_matches, selector_matches, unmatched_requirements


def expr(key, operator, *values):
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


@pytest.mark.parametrize("selector, labels, matches", [
    (None, {"a": "1"}, True),
    ({}, {}, True),
    ({"matchLabels": {}, "matchExpressions": []}, {"a": "1"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchLabels": {"app": "web"}}, {}, False),
    ({"matchExpressions": [expr("tier", "In", "a", "b")]}, {"tier": "b"}, True),
    ({"matchExpressions": [expr("tier", "In", "a")]}, {}, False),
    ({"matchExpressions": [expr("tier", "NotIn", "a")]}, {}, True),
    ({"matchExpressions": [expr("tier", "NotIn", "a")]}, {"tier": "a"}, False),
    ({"matchExpressions": [expr("tier", "Exists")]}, {"tier": ""}, True),
    ({"matchExpressions": [expr("tier", "Exists")]}, {}, False),
    ({"matchExpressions": [expr("tier", "DoesNotExist")]}, {"tier": "x"}, False),
    ({"matchExpressions": [expr("tier", "DoesNotExist")]}, {}, True),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [expr("tier", "Exists")]}, {"app": "web"}, False),
    ({"matchExpressions": [expr("tier", "Bogus", "a")]}, {"tier": "a"}, False),
    # Upstream chart 1.8.3's pod webhook: kruise-system carries control-plane=openkruise.
    ({"matchExpressions": [expr("control-plane", "NotIn", "openkruise"),
                           expr("kubernetes.io/metadata.name", "NotIn", "kube-system")]},
     {"control-plane": "openkruise", "kubernetes.io/metadata.name": "kruise-system"}, False),
    ({"matchExpressions": [expr("control-plane", "NotIn", "openkruise"),
                           expr("kubernetes.io/metadata.name", "NotIn", "kube-system")]},
     {"kubernetes.io/metadata.name": "default"}, True),
])
def test_selector_matches(selector, labels, matches):
    assert selector_matches(selector, labels) is matches


@pytest.mark.parametrize("requirement, labels, matches", [
    (expr("cpu", "Gt", "4"), {"cpu": "8"}, True),
    (expr("cpu", "Gt", "4"), {"cpu": "4"}, False),
    (expr("cpu", "Lt", "4"), {"cpu": "3"}, True),
    (expr("cpu", "Lt", "4"), {"cpu": "x"}, False),
    (expr("cpu", "Gt", "4"), {}, False),
    (expr("cpu", "Gt", "4", "5"), {"cpu": "9"}, False),
])
def test_node_requirements(requirement, labels, matches):
    assert requirement_matches(labels, requirement) is matches


@pytest.mark.parametrize("selector, labels, failed", [
    ({"matchLabels": {"app": "web"}}, {"app": "web"}, []),
    ({"matchLabels": {"app": "web"}}, {}, ["app=web"]),
    ({"matchExpressions": [expr("control-plane", "NotIn", "openkruise"), expr("x", "Exists")]},
     {"control-plane": "openkruise", "x": "1"}, ["control-plane NotIn [openkruise]"]),
    ({"matchExpressions": [expr("x", "Exists")]}, {}, ["x Exists"]),
])
def test_unmatched_requirements(selector, labels, failed):
    assert unmatched_requirements(selector, labels) == failed
