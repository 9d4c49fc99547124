"""The upstream install itself: upstream's objects as shipped, its manager running as the
built binary on hostlet nodes, one leader, the kruise-daemon left unstarted."""

from __future__ import annotations

import pytest

from localcluster import upstream

pytestmark = pytest.mark.cluster


def test_upstream_manager_runs_ready_with_one_leader(upstream_install):
    from kubernetes import client

    install = upstream_install.install
    core = client.CoreV1Api(upstream_install.api())
    pods = core.list_namespaced_pod(install.namespace, label_selector="control-plane=controller-manager").items
    assert len(pods) == install.replicas == 2
    assert len({p.spec.node_name for p in pods}) == 2
    assert all(p.spec.containers[0].image == upstream.IMAGE for p in pods)
    holder = upstream_install.kubectl("-n", install.namespace, "get", "lease", "kruise-manager",
                                      "-o", "jsonpath={.spec.holderIdentity}").stdout
    assert holder.rsplit("_", 1)[0] in {p.metadata.name for p in pods}  # controller-runtime: <hostname>_<uuid>
    for pod in pods:
        process = upstream_install.hostlet.process_of(install.namespace, pod.metadata.name)
        assert process.poll() is None and process.args[-1].endswith("--feature-gates=AllAlpha=true,AllBeta=true,EnableExternalCerts=false")
        assert str(upstream_install.built.manager) in process.args


def test_the_kruise_daemon_of_the_manager_image_is_not_run_as_the_manager(upstream_install):
    """Upstream's DaemonSet runs the manager's image with command /kruise-daemon: no local
    program is mapped to it, so its pods stay unstarted instead of running a second manager."""
    from kubernetes import client

    from ..conftest import wait_for

    core = client.CoreV1Api(upstream_install.api())

    def waiting():
        pods = core.list_namespaced_pod("kruise-system", label_selector="control-plane=daemon").items
        states = [p.status.container_statuses[0].state.waiting for p in pods if p.status.container_statuses]
        return pods if len(states) == len(upstream_install.hostlet.nodes) and all(
            s and s.reason == "CreateContainerError" for s in states) else None

    pods = wait_for(waiting, timeout=30, what="kruise-daemon pods waiting with CreateContainerError")
    for pod in pods:
        assert pod.spec.containers[0].image == upstream.IMAGE and pod.spec.containers[0].command == ["/kruise-daemon"]
        assert upstream_install.hostlet.process_of("kruise-system", pod.metadata.name) is None
