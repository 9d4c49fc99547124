"""The hostlet's pure logic, as a kubelet would read a pod spec (no cluster needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localcluster.hostlet import (MANAGER_PROGRAM, Backoff, HostletError, expand, field_path_value, image_name,
                                  pod_hostname, probe_allowed, probe_url, resolve_program, resource_field_value)
from localcluster.hostlet.runtime import container_argv

APP = Path(__file__).with_name("hostlet_app.py")
PROGRAMS = {"hostlet-app": [sys.executable, str(APP)], "py": [sys.executable]}

def test_expand_follows_kubernetes_rules():
    variables = {"POD_NAME": "web-1", "EMPTY": ""}
    assert expand("--id=$(POD_NAME)", variables) == "--id=web-1"
    assert expand("$(MISSING)-$(EMPTY)x", variables) == "$(MISSING)-x"
    assert expand("$$(POD_NAME) $$ $", variables) == "$(POD_NAME) $ $"


def test_image_name_strips_registry_tag_and_digest():
    assert image_name("registry:5000/openkruise/kruise-manager:v1.5@sha256:ab") == "kruise-manager"
    assert image_name("kruise-manager") == "kruise-manager"


def test_programs_map_command_or_image_and_nothing_else():
    manager = {"image": "openkruise/kruise-manager:v1", "command": ["/manager"], "args": ["--role=all"]}
    assert resolve_program(manager, {}, None) == [*MANAGER_PROGRAM, "--role=all"]
    by_command = {"image": "anything", "command": ["kruise-manager", "--x"], "args": ["--y"]}
    assert resolve_program(by_command, {}, None) == [*MANAGER_PROGRAM, "--x", "--y"]
    assert resolve_program({"image": "busybox", "command": ["sh", "-c", "rm -rf /"]}, {}, None) is None
    assert resolve_program({"image": "x", "command": ["hostlet-app"], "args": ["--port", "1"]}, {}, PROGRAMS) == \
        [sys.executable, str(APP), "--port", "1"]
    hook = lambda container, pod: ["echo", pod["metadata"]["name"]] if container["image"] == "echo" else None
    assert resolve_program({"image": "echo"}, {"metadata": {"name": "p"}}, hook) == ["echo", "p"]
    assert resolve_program({"image": "kruise-manager"}, {}, hook) == MANAGER_PROGRAM


def test_an_images_program_runs_only_for_its_entrypoint():
    """Upstream's kruise-daemon DaemonSet runs the manager image with command /kruise-daemon:
    that is another program, not the manager."""
    daemon = {"image": "openkruise/kruise-manager:v1.8.3", "command": ["/kruise-daemon"], "args": ["-v=5"]}
    assert resolve_program(daemon, {}, None) is None
    assert resolve_program({**daemon, "command": ["/manager"]}, {}, None) == [*MANAGER_PROGRAM, "-v=5"]
    assert resolve_program({**daemon, "command": ["/usr/local/bin/kruise-manager"]}, {}, None) == \
        [*MANAGER_PROGRAM, "-v=5"]
    assert resolve_program({**daemon, "command": []}, {}, None) == [*MANAGER_PROGRAM, "-v=5"]
    assert resolve_program(daemon, {}, {"/kruise-daemon": ["daemon"]}) == ["daemon", "-v=5"]  # when mapped


@pytest.mark.parametrize("spec, hostname", [
    ({"nodeName": "node-1"}, "web-7d9f-abcde"),
    ({"nodeName": "node-1", "hostNetwork": True}, "node-1"),
    ({"nodeName": "node-1", "hostNetwork": True, "hostname": "ignored"}, "node-1"),
    ({"nodeName": "node-1", "hostname": "db-0"}, "db-0"),
])
def test_pod_hostname_as_a_kubelet_sets_it(spec, hostname):
    assert pod_hostname({"metadata": {"name": "web-7d9f-abcde"}, "spec": spec}) == hostname


def test_pod_hostname_is_cut_to_63_characters_without_a_trailing_dash():
    name = "a" * 62 + "-b"
    assert pod_hostname({"metadata": {"name": name}, "spec": {}}) == "a" * 62


def test_a_container_gets_its_hostname_then_its_mounts_then_its_program():
    argv = container_argv("web-1", [("/w/tmp", "/tmp"), ("/w/vol", "/data")], ["prog", "--x"])
    assert argv[:3] == ["unshare", "--uts", "--"]
    assert argv[argv.index("hostlet-container"):] == \
        ["hostlet-container", "web-1", "/w/tmp", "/tmp", "/w/vol", "/data", "--", "prog", "--x"]


def test_downward_api_fields():
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
           "spec": {"nodeName": "n", "serviceAccountName": "sa"},
           "status": {"podIP": "198.18.1.10", "hostIP": "198.18.1.10", "podIPs": [{"ip": "198.18.1.10"}]}}
    assert [field_path_value(pod, f) for f in ("metadata.name", "metadata.namespace", "spec.nodeName",
                                               "status.podIP", "status.hostIP", "metadata.labels['app']")] == \
        ["p", "ns", "n", "198.18.1.10", "198.18.1.10", "web"]
    with pytest.raises(HostletError, match="unsupported fieldRef"):
        field_path_value(pod, "spec.containers")
    container = {"resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}
    assert resource_field_value(container, {"resource": "limits.memory", "divisor": "1Mi"}, {}) == "64"
    assert resource_field_value(container, {"resource": "requests.cpu"}, {}) == "1"  # rounded up
    assert resource_field_value(container, {"resource": "limits.cpu"}, {"cpu": "8"}) == "8"


@pytest.mark.parametrize("path, url", [(None, "http://h:1/"), ("", "http://h:1/"), ("healthz", "http://h:1/healthz"),
                                       ("/readyz", "http://h:1/readyz")])
def test_probe_url_roots_a_relative_path(path, url):
    assert probe_url("http", "h", 1, path) == url


def test_probes_only_reach_the_harness_hosts():
    assert probe_allowed("198.18.3.10") and probe_allowed("198.19.0.4")
    assert not any(probe_allowed(h) for h in ("127.0.0.1", "10.0.0.1", "8.8.8.8", "example.com", "::1"))


def test_backoff_first_restart_immediate_then_doubling_and_reset():
    backoff = Backoff(1, 4)
    assert [backoff.next_delay(0.1) for _ in range(5)] == [0, 1, 2, 4, 4]
    assert backoff.next_delay(10) == 0  # ran longer than the maximum: forgiven




def test_etc_hosts_names_the_containers_hostname():
    from localcluster.hostlet.spec import etc_hosts

    machine = "127.0.0.1 localhost\n127.0.0.1 vm\n"
    pod = {"metadata": {"name": "web-1"}, "spec": {"nodeName": "node-1"}}
    lines = etc_hosts(pod, "198.18.1.10", machine).splitlines()
    assert lines[-1] == "198.18.1.10\tweb-1" and "127.0.0.1\tlocalhost" in lines and "127.0.0.1 vm" not in lines
    host_network = {**pod, "spec": {"nodeName": "node-1", "hostNetwork": True}}
    assert etc_hosts(host_network, "198.18.1.10", machine) == machine + "198.18.1.10\tnode-1\n"


@pytest.mark.parametrize("paths, kept", [
    (["/work/repo", "/work/repo/.cache", "/root/.pyenv"], []),
    (["/tmp/ci-clone", "/tmp/ci-clone/.cache/cluster-1", "/tmp/ci-clone/.venv", "/root/.pyenv"], ["/tmp/ci-clone"]),
    (["/tmp/pytest-1/cluster", "/work/repo", "/tmp/pytest-1/cluster/hostlet"], ["/tmp/pytest-1/cluster"]),
    (["/tmp/a", "/tmp/b", "/tmp/a"], ["/tmp/a", "/tmp/b"]),
    (["/tmp/ab", "/tmp/a"], ["/tmp/a", "/tmp/ab"]),  # a name prefix is not a parent
    (["/tmp"], []),  # /tmp itself is the container's own
])
def test_harness_folders_under_tmp_stay_visible_in_a_private_tmp(paths, kept):
    from localcluster.hostlet.env import kept_under_tmp
    assert kept_under_tmp(paths) == [Path(p) for p in kept]
