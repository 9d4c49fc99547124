"""Pure logic of the upstream installer: what it changes in upstream's objects, the build's
cache key, the hostlet program for upstream's image."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from localcluster import upstream
from localcluster.hostlet import resolve_program

UPSTREAM_LIKE = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kruise-system",
                                                          "labels": {"control-plane": "controller-manager"}}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "kruise-controller-manager", "namespace": "kruise-system"},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"control-plane": "controller-manager"}},
              "template": {"metadata": {"labels": {"control-plane": "controller-manager"}}, "spec": {
                  "containers": [{"name": "manager", "image": "controller:latest", "command": ["/manager"],
                                  "args": ["--enable-leader-election", "--v=5"],
                                  "readinessProbe": {"httpGet": {"path": "readyz", "port": 8000}}}],
                  "serviceAccountName": "kruise-manager"}}}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kruise-daemon", "namespace": "kruise-system"},
     "spec": {"template": {"spec": {"hostNetwork": True, "containers": [
         {"name": "daemon", "image": "controller:latest", "command": ["/kruise-daemon"]}]}}}},
]


def test_localize_changes_only_image_replicas_placement():
    before = copy.deepcopy(UPSTREAM_LIKE)
    after = upstream.localize(UPSTREAM_LIKE, replicas=3, node_selector={"type": "hostlet"})
    assert UPSTREAM_LIKE == before  # the input is left alone
    assert after[0] == before[0]
    pod = after[1]["spec"]["template"]["spec"]
    assert after[1]["spec"]["replicas"] == 3
    assert pod["nodeSelector"] == {"type": "hostlet"}
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] \
        == "kubernetes.io/hostname"
    assert "hostNetwork" not in pod
    manager = pod["containers"][0]
    assert manager["image"] == upstream.IMAGE
    # upstream's command, args, probe and everything else as shipped
    expected = {k: v for k, v in before[1]["spec"]["template"]["spec"]["containers"][0].items() if k != "image"}
    assert {k: v for k, v in manager.items() if k != "image"} == expected
    assert after[2]["spec"]["template"]["spec"]["containers"][0] == {
        "name": "daemon", "image": upstream.IMAGE, "command": ["/kruise-daemon"]}


def test_localize_host_network_and_extra_args_on_request():
    after = upstream.localize(UPSTREAM_LIKE, host_network=True, extra_args=["--leader-election-lease-duration=4s"])
    pod = after[1]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["containers"][0]["args"] == ["--enable-leader-election", "--v=5", "--leader-election-lease-duration=4s"]


def test_localize_refuses_an_install_it_does_not_recognise():
    with pytest.raises(upstream.InstallError, match="no Deployment"):
        upstream.localize([UPSTREAM_LIKE[0], UPSTREAM_LIKE[2]])


def test_cache_key_follows_version_checksum_and_go():
    key = upstream.cache_key("v1.8.3", "h1:abc", "go1.26.8")
    assert key == upstream.cache_key("v1.8.3", "h1:abc", "go1.26.8")
    assert len({key, upstream.cache_key("v1.8.4", "h1:abc", "go1.26.8"), upstream.cache_key("v1.8.3", "h1:abd", "go1.26.8"),
                upstream.cache_key("v1.8.3", "h1:abc", "go1.26.9")}) == 4


def test_the_upstream_manager_container_runs_the_built_binary():
    built = upstream.UpstreamBuild("v1.8.3", Path("/cache/kruise/manager"), Path("/mod"))
    manager = upstream.localize(UPSTREAM_LIKE)[1]["spec"]["template"]["spec"]["containers"][0]
    assert resolve_program(manager, {}, upstream.programs(built)) == [
        "/cache/kruise/manager", "--enable-leader-election", "--v=5"]
    assert built.crds == Path("/mod/config/crd/bases")


# ---- the helpers that hold the cluster tests to independent counts -------------------------
def _pod(containers, init=()):
    return {"spec": {"containers": [{"name": n, "image": i} for n, i in containers],
                     **({"initContainers": [{"name": n, "image": i} for n, i in init]} if init else {})}}


@pytest.mark.parametrize("sent, returned, expected", [
    (_pod([("app", "a:1")]), _pod([("side", "s:1"), ("app", "a:1")], [("init", "i:1")]), ["init", "side"]),
    (_pod([("app", "a:1")]), _pod([("app", "a:2")]), ["app"]),  # a sidecar put in the app container's place
    (_pod([("app", "a:1")], [("own", "o:1")]), _pod([("app", "a:1")], [("own", "o:1")]), []),  # skipped
])
def test_injected_is_what_the_answer_added(sent, returned, expected):
    from tests.upstream.test_injection_parity import injected

    assert injected(sent, returned) == expected


def _event(code, containers=None, generate_name="kruisectl-drill-", uri="/api/v1/namespaces/default/pods?dryRun=All"):
    return {"verb": "create", "objectRef": {"resource": "pods", "namespace": "default"}, "requestURI": uri,
            "requestObject": {"metadata": {"generateName": generate_name}}, "responseStatus": {"code": code},
            **({"responseObject": {"spec": {"containers": [{"name": n} for n in containers]}}}
               if containers is not None else {})}


@pytest.mark.parametrize("event, answered", [
    (_event(201, ["kruisectl-probe", "app"]), "admitted"),
    (_event(201, ["app"]), "notInjected"),
    (_event(500), "failed"),
    (_event(403), "failed"),
])
def test_the_audit_log_classifies_as_the_drill_does(event, answered):
    from tests.upstream.test_drill import as_answered

    assert as_answered(event) == answered


@pytest.mark.parametrize("event, counted", [
    (_event(201, ["app"]), True),
    (_event(201, ["app"], generate_name="kruisectl-warmup-"), False),  # the drill's warm-up, not its load
    (_event(201, ["app"], uri="/api/v1/namespaces/default/pods"), False),  # not a dry run
])
def test_only_the_drills_measured_load_is_counted(event, counted):
    from tests.upstream.test_drill import drill_load

    assert drill_load(event) is counted


def test_the_audit_log_is_read_from_an_offset_without_a_line_still_being_written(tmp_path):
    from tests import audit

    log = tmp_path / "audit.log"
    log.write_text('{"stage": "ResponseComplete", "n": 1}\n')
    offset = audit.size(log)
    log.write_text(log.read_text() + '{"stage": "ResponseStarted", "n": 2}\n{"stage": "ResponseComplete", "n": 3}\n'
                   '{"stage": "ResponseComp')
    assert [e["n"] for e in audit.completed(log)] == [1, 3]
    assert [e["n"] for e in audit.completed(log, offset)] == [3]
