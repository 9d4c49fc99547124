"""The chart runs the manager under its supervisor by default (one value turns it off), and
gives the pod's UID for the Events the worker records about its restarts."""

from __future__ import annotations

import pytest

from manager.options import parser

from .conftest import render

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def container(objects, name="kruise-controller-manager"):
    return objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("values, supervised", [((), True), (("manager.supervisor.enabled=false",), False),
                                                (("manager.role=split",), True)])
def test_the_supervisor_runs_by_default_and_one_value_turns_it_off(helm_binary, values, supervised):
    objects = render(helm_binary, *values)
    for (kind, name), obj in objects.items():
        if kind != "Deployment":
            continue
        manager = container(objects, name)
        assert manager["command"] == ["kruise-manager"]
        assert parser({}).parse_args(manager["args"]).supervise is supervised
        env = {e["name"]: e for e in manager["env"]}
        assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"


def test_a_supervisor_value_that_is_not_a_boolean_is_refused(helm_binary):
    assert "/manager/supervisor/enabled" in render(helm_binary, "manager.supervisor.enabled=yes", expect_error=True)


@pytest.mark.parametrize("values, held", [((), True), (("manager.socketHolder.enabled=false",), False),
                                          (("manager.supervisor.enabled=false",), False),  # it needs the supervisor
                                          (("manager.role=split",), True)])
def test_a_socket_holder_shares_an_emptydir_with_the_manager_by_default(helm_binary, values, held):
    objects = render(helm_binary, *values)
    for (kind, name), obj in objects.items():
        if kind != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        manager = spec["containers"][0]
        path = parser({}).parse_args(manager["args"]).socket_holder
        holders = [c for c in spec["containers"] if c["name"] == "socket-holder"]
        if not held:
            assert path == "" and holders == [] and len(spec["containers"]) == 1
            continue
        (holder,) = holders
        assert holder["image"] == manager["image"] and holder["command"] == ["kruise-manager"]
        assert holder["args"][0] == "socket-holder" and f"--path={path}" in holder["args"]
        assert "livenessProbe" not in holder and "readinessProbe" not in holder
        assert holder["resources"]["limits"]["memory"] == "64Mi"
        mounts = {m["name"]: m["mountPath"] for m in holder["volumeMounts"]}
        shared = {m["name"]: m["mountPath"] for m in manager["volumeMounts"]}
        (volume,) = [v for v in spec["volumes"] if v["name"] == "socket-holder"]
        assert "emptyDir" in volume
        assert mounts["socket-holder"] == shared["socket-holder"] and path.startswith(mounts["socket-holder"] + "/")
