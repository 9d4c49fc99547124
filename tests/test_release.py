"""Every printed chart fix addresses the release as helm recorded it: its own namespace (which
need not be the manager's), its name, and a chart reference that exists or says it is a guess.
Pure logic, table-driven; tests/chart/test_release_fixes.py runs the fixes for real."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import shlex
from pathlib import Path

import pytest

from kruisectl.doctor import diagnose
from kruisectl.installation import KRUISECTL_CHART, MANIFESTS, UPSTREAM_CHART, detect
from kruisectl.inventory import Inventory
from kruisectl.release import Release, chart_of_label, decode_record, latest, of, split_note

RECORDED = Path(__file__).parent / "oncall" / "recorded" / "chart-3-replicas-3-zones.json"


def obj(namespace="kruise-system", release=None, release_namespace=None, chart_label=None):
    annotations = {}
    if release:
        annotations["meta.helm.sh/release-name"] = release
    if release_namespace:
        annotations["meta.helm.sh/release-namespace"] = release_namespace
    labels = {"helm.sh/chart": chart_label} if chart_label else {}
    return {"metadata": {"name": "kruise-controller-manager", "namespace": namespace, "annotations": annotations,
                         "labels": labels}}


def record(name="kruise", namespace="default", version="1.8.3", chart="kruise"):
    return {"name": name, "namespace": namespace, "revision": 2, "status": "deployed", "chart": chart,
            "chartVersion": version, "appVersion": version}


@pytest.mark.parametrize("given, summary, error, expected", [
    # upstream's instructions: release in default, manager in kruise-system
    (obj(release="kruise", release_namespace="default"), record(), None,
     Release("kruise", "default", "kruise", "1.8.3")),
    # the record of another release says nothing about this one
    (obj(release="kruise", release_namespace="default"), record(namespace="other"), "x",
     Release("kruise", "default", None, None, "x")),
    # this project's chart labels its objects with the chart's name and version
    (obj(release="r1", release_namespace="rel", chart_label="kruise-0.1.0"), None, "forbidden",
     Release("r1", "rel", "kruise", "0.1.0")),
    (obj(release="r1", release_namespace="rel", chart_label="my-kruise-1.2.3-rc.1"), None, None,
     Release("r1", "rel", "my-kruise", "1.2.3-rc.1")),
    # no namespace annotation: the release is where the object is
    (obj(namespace="kruise-system", release="kruise"), None, None, Release("kruise", "kruise-system")),
    (obj(), None, None, None),  # no helm annotations: not made by helm
    (None, None, None, None),
])
def test_release_of_an_object(given, summary, error, expected):
    assert of(given, summary, error) == expected


@pytest.mark.parametrize("label, expected", [
    ("kruise-0.1.0", ("kruise", "0.1.0")), ("kruise-v1.8.3", ("kruise", "v1.8.3")),
    ("kruise", (None, None)), ("", (None, None)), (None, (None, None)),
])
def test_chart_label(label, expected):
    assert chart_of_label(label) == expected


def helm_secret(release: dict, revision: int, status: str, gzipped: bool = True) -> dict:
    """A release record as helm stores it: JSON, gzip, base64; the Secret base64s it again."""
    raw = json.dumps(release).encode()
    helm_encoded = base64.b64encode(gzip.compress(raw) if gzipped else raw)
    return {"metadata": {"name": f"sh.helm.release.v1.{release['name']}.v{revision}",
                         "labels": {"owner": "helm", "name": release["name"], "status": status,
                                    "version": str(revision)}},
            "data": {"release": base64.b64encode(helm_encoded).decode()}}


def release_json(version: str, revision: int, status: str) -> dict:
    return {"name": "kruise", "namespace": "default", "version": revision, "info": {"status": status},
            "chart": {"metadata": {"name": "kruise", "version": version, "appVersion": version}}}


def test_decode_record():
    secret = helm_secret(release_json("1.8.3", 3, "deployed"), 3, "deployed")
    assert decode_record(secret) == {"name": "kruise", "namespace": "default", "revision": 3, "status": "deployed",
                                     "chart": "kruise", "chartVersion": "1.8.3", "appVersion": "1.8.3"}
    plain = helm_secret(release_json("1.8.2", 1, "deployed"), 1, "deployed", gzipped=False)
    assert decode_record(plain)["chartVersion"] == "1.8.2"
    with pytest.raises(ValueError, match="not a helm release record"):
        decode_record({"metadata": {"name": "x"}, "data": {"release": base64.b64encode(b"not base64!").decode()}})


def test_the_record_helm_upgrades_from_is_the_newest_deployed_revision():
    secrets = [helm_secret(release_json("1.8.2", 9, "superseded"), 9, "superseded"),
               helm_secret(release_json("1.8.3", 10, "deployed"), 10, "deployed"),
               helm_secret(release_json("1.9.0", 11, "failed"), 11, "failed")]
    assert latest(secrets)["chartVersion"] == "1.8.3"
    assert latest(secrets[2:])["chartVersion"] == "1.9.0"  # nothing deployed: the newest
    assert latest([]) is None


UPSTREAM_DEPLOYMENT = {"metadata": {"name": "kruise-controller-manager", "namespace": "kruise-system",
                                    "labels": {"control-plane": "controller-manager"},
                                    "annotations": {"meta.helm.sh/release-name": "kruise",
                                                    "meta.helm.sh/release-namespace": "default"}},
                       "spec": {"template": {"spec": {"containers": [
                           {"name": "manager", "image": "openkruise/kruise-manager:v1.8.3"}]}}}}
OUR_DEPLOYMENT = {"metadata": {"name": "kruise-controller-manager", "namespace": "kruise-mgr",
                               "labels": {"app.kubernetes.io/name": "kruise", "helm.sh/chart": "kruise-0.1.0"},
                               "annotations": {"meta.helm.sh/release-name": "r1",
                                               "meta.helm.sh/release-namespace": "kruise-rel"}},
                  "spec": {"template": {"spec": {"containers": [
                      {"name": "manager", "image": "kruisectl/kruise-manager:0.1.0"}]}}}}
MANIFEST_DEPLOYMENT = {"metadata": {"name": "kruise-controller-manager", "namespace": "kruise-system"},
                       "spec": {"template": {"spec": {"containers": [
                           {"name": "manager", "image": "openkruise/kruise-manager:v1.8.3"}]}}}}


@pytest.mark.parametrize("deployment, summary, error, kind, command, note", [
    # the case: the release in default, the manager in kruise-system
    (UPSTREAM_DEPLOYMENT, record(), None, UPSTREAM_CHART,
     "helm upgrade kruise openkruise/kruise --version 1.8.3 -n default --reuse-values --set manager.replicas=3",
     ["assumes the repository alias openkruise for https://openkruise.github.io/charts/"]),
    # the record could not be read: no version is guessed, and the fix says what to add
    (UPSTREAM_DEPLOYMENT, None, "release record of default/kruise not read: forbidden", UPSTREAM_CHART,
     "helm upgrade kruise openkruise/kruise -n default --reuse-values --set manager.replicas=3",
     ["assumes the repository alias", "chart version unknown (release record of default/kruise not read: forbidden)",
      "add --version"]),
    (OUR_DEPLOYMENT, None, None, KRUISECTL_CHART,
     "kruisectl upgrade -n kruise-rel --release r1 --set manager.replicas=3", []),
    (MANIFEST_DEPLOYMENT, None, None, MANIFESTS,
     "kubectl -n kruise-system scale deployment kruise-controller-manager --replicas=3", []),
])
def test_fixes_name_the_release_namespace_not_the_managers(deployment, summary, error, kind, command, note):
    installed = detect(deployment, deployment["metadata"]["namespace"], "kruise-controller-manager", summary, error)
    assert installed.kind == kind
    printed, said = split_note(installed.fix_replicas(3))
    assert printed == command
    for part in note:
        assert part in said
    assert not note or said, "a guessed reference must say so"
    # paste-able: the shell reads the command and ignores the note
    assert shlex.split(installed.fix_replicas(3), comments=True) == shlex.split(command)


def moved_release(data: dict, release_namespace: str, name: str) -> dict:
    data = copy.deepcopy(data)
    data["deployment"]["metadata"]["annotations"].update({"meta.helm.sh/release-namespace": release_namespace,
                                                          "meta.helm.sh/release-name": name})
    return data


def break_everything_a_chart_value_fixes(data: dict) -> None:
    spec = data["deployment"]["spec"]["template"]["spec"]
    spec["hostNetwork"] = False
    spec.pop("topologySpreadConstraints")
    spec["containers"][0].pop("livenessProbe")
    data["pdbs"] = []
    for webhook in data["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = {}
        webhook["timeoutSeconds"] = 30


def test_every_chart_fix_of_doctor_names_the_release_namespace():
    """A recorded install of this chart, its release moved to another namespace than the
    manager's: every fix doctor prints that upgrades names that namespace and release."""
    data = moved_release(json.loads(RECORDED.read_text()), "kruise-rel", "r1")
    break_everything_a_chart_value_fixes(data)
    findings = {f.check: f for f in diagnose(Inventory.from_dict(data))}
    upgrades = {check: f.remediation for check, f in findings.items() if "upgrade" in f.remediation}
    assert set(upgrades) >= {"host-network", "zone-spread-policy", "liveness-probe", "pdb", "namespace-exclusion",
                             "webhook-timeout"}, upgrades
    for check, fix in upgrades.items():
        for command in split_note(fix)[0].split("; "):
            argv = shlex.split(command)
            assert argv[:2] == ["kruisectl", "upgrade"], (check, fix)
            assert argv[argv.index("-n") + 1] == "kruise-rel" and argv[argv.index("--release") + 1] == "r1", (check, fix)


def test_doctor_on_an_upstream_release_in_default_prints_its_version():
    data = moved_release(json.loads(RECORDED.read_text()), "default", "kruise")
    deployment = data["deployment"]
    deployment["metadata"]["labels"] = {"control-plane": "controller-manager"}  # upstream's chart labels no more
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "openkruise/kruise-manager:v1.8.3"
    deployment["spec"]["template"]["spec"]["hostNetwork"] = False
    data["helm_release"] = record()
    fix = {f.check: f.remediation for f in diagnose(Inventory.from_dict(data))}["host-network"]
    command, note = split_note(fix)
    assert command == ("helm upgrade kruise openkruise/kruise --version 1.8.3 -n default --reuse-values "
                       "--set manager.hostNetwork=true")
    assert "assumes the repository alias openkruise" in note


def test_rollout_via_helm_upgrades_the_release_or_refuses():
    from kruisectl import rollout
    from kruisectl.commands.rollout import _chart_upgrade
    from kruisectl.errors import KruisectlError

    deployment = copy.deepcopy(OUR_DEPLOYMENT)
    deployment["metadata"]["resourceVersion"] = "1"
    deployment["spec"].update({"replicas": 3, "strategy": {"type": "RollingUpdate",
                                                           "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}})
    plan = rollout.plan_tune(deployment, max_surge=1, max_unavailable=None, when_unsatisfiable=None)
    assert shlex.split(_chart_upgrade(deployment, "kruise-mgr", "kruise-controller-manager", plan)) == [
        "kruisectl", "upgrade", "-n", "kruise-rel", "--release", "r1",
        "--set", "manager.updateStrategy.rollingUpdate.maxSurge=1",
        "--set", "manager.updateStrategy.rollingUpdate.maxUnavailable=0"]
    with pytest.raises(KruisectlError, match="release default/kruise is upstream's chart, which has no values"):
        _chart_upgrade(UPSTREAM_DEPLOYMENT, "kruise-system", "kruise-controller-manager", plan)
    with pytest.raises(KruisectlError, match="was not installed by helm"):
        _chart_upgrade(MANIFEST_DEPLOYMENT, "kruise-system", "kruise-controller-manager", plan)
