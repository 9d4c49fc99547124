"""The chart's real managers on hostlet nodes (as `make demo`): 6 nodes over 3 zones, 3
replicas installed with the real helm, failurePolicy Fail, each a container of `make image`'s
image under the OCI runtime (crun or runc: its PID 1 the supervisor, the manager its worker).
A machine that cannot run them fails the drills, naming what is missing (a partial run,
``KRUISECTL_PARTIAL=oci``, skips and counts them instead): they are never quietly run on
plain processes. Short election timings keep crash drills quick; every other value is the chart's
default."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kruisectl.cli import cli
from kruisectl.drill import ScenarioResult
from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.hostlet import Hostlet, create_hostlet_nodes

from ..conftest import require, wait_for
from .connections import ConnectionLog

NODES = [f"drill-{i}" for i in range(6)]
ZONES = ("zone-a", "zone-b", "zone-c")
HEARTBEAT_S = 2  # the hostlet's node heartbeat (Lease and Ready condition), as a kubelet's
VALUES = {"manager": {"nodeSelector": {"type": "hostlet"},
                      "leaderElection": {"leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "1s"}}}


class Installed:
    def __init__(self, cluster: LocalCluster, hostlet: Hostlet, values_file: str):
        self.cluster, self.hostlet, self.values_file = cluster, hostlet, values_file
        self.namespace = "kruise-system"

    @property
    def runtime(self) -> str:
        """How the replicas run, as the bench reports it: the OCI runtime's name, or
        ``process (why)``."""
        return runtime_of(self.hostlet)

    def kruisectl(self, *args: str):
        env = {"KRUISECTL_HELM": str(self.cluster.binary("helm"))}
        return CliRunner().invoke(cli, [*args, "--kubeconfig", str(self.cluster.kubeconfig)], env=env,
                                  catch_exceptions=False)

    def api(self):
        return self.cluster.api()

    def client(self):
        """kubekit's client, what kruisectl's library takes (as many connections as the drill's load uses)."""
        return self.cluster.client("drill-tests", pool_size=16)

    def ready_pods(self) -> list:
        from kubernetes import client

        pods = client.CoreV1Api(self.api()).list_namespaced_pod(
            self.namespace, label_selector="control-plane=controller-manager").items
        return [p for p in pods if not p.metadata.deletion_timestamp and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]

    def wait_settled(self, replicas: int = 3, timeout: float = 180) -> None:
        from kubernetes import client

        apps = client.AppsV1Api(self.api())

        def settled():
            d = apps.read_namespaced_deployment("kruise-controller-manager", self.namespace)
            s = d.status
            return (s.observed_generation >= d.metadata.generation and (s.ready_replicas or 0) == replicas
                    and (s.replicas or 0) == replicas and (s.available_replicas or 0) == replicas
                    and len(self.ready_pods()) == replicas)

        wait_for(settled, timeout=timeout, interval=0.5, what=f"{replicas} ready manager replicas")


def runtime_of(hostlet: Hostlet) -> str:
    return hostlet.oci.name if hostlet.oci is not None else f"process ({hostlet.oci_unavailable})"


@pytest.fixture(scope="session")
def manager_archive() -> Path:
    """The manager image's OCI archive, built by ``make image``'s code (cached under
    .cache/image: only a changed source rebuilds its layer)."""
    from localcluster import image

    require("oci")
    reason = image.unavailable()
    require("oci", f"the image cannot be built here: {reason}" if reason else None)
    return image.build(log_to=sys.stderr).oci_archive


@contextlib.contextmanager
def install(values: dict, archive: Path, directory: Path, controller_manager_args: tuple[str, ...] = ()):
    """A cluster with the hostlet nodes and the chart installed with ``values``; the replicas
    run from ``archive`` in the OCI runtime (``require("oci")`` when none can run it)."""
    require("netns")
    options = ClusterOptions(scheduler=True, controller_manager=True, network=True,
                             extra_controller_manager_args=tuple(controller_manager_args))
    cluster = LocalCluster.start(options, log=sys.stderr)
    hostlet = None
    try:
        create_hostlet_nodes(cluster, NODES, zones=ZONES)
        hostlet = Hostlet(cluster, NODES, backoff_initial=1, backoff_max=4, heartbeat_interval=HEARTBEAT_S,
                          images=[archive]).start()
        require("oci", None if hostlet.oci is not None else hostlet.oci_unavailable)
        print(f"manager replicas run as: {runtime_of(hostlet)}", file=sys.stderr)
        values_file = directory / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        env = Installed(cluster, hostlet, str(values_file))
        result = env.kruisectl("install", "--wait", "--timeout", "240", "-f", str(values_file))
        assert result.exit_code == 0, result.output
        env.wait_settled()
        yield env
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()


@pytest.fixture(scope="session")
def drill_install(tmp_path_factory, manager_archive):
    """The install the drill modules with no values or timings of their own share (one worker
    runs them one after another: ``SHARED_SESSION_FIXTURES``); a test that needs the three
    replicas settled waits for it (``wait_settled``), whatever ran before it."""
    with install(VALUES, manager_archive, tmp_path_factory.mktemp("drill")) as env:
        yield env


@pytest.fixture(scope="module")
def installed(drill_install):
    """The shared install (``drill_install``); a module with values or controller-manager
    timings of its own (crash supervisor, machine loss) defines its own ``installed``."""
    return drill_install


def pod_ips(installed) -> dict[str, str]:
    from kubernetes import client

    pods = client.CoreV1Api(installed.api()).list_namespaced_pod(installed.namespace).items
    return {p.metadata.name: p.status.pod_ip for p in pods}


def apiserver_connections(installed) -> ConnectionLog:
    """A log of the apiserver's connections to the replicas' webhook port (tests/drill/connections.py)."""
    (apiserver,) = [c for c in installed.cluster.components if c.name == "kube-apiserver"]
    return ConnectionLog(apiserver.process.pid)


def during_fault(scenario, connections: ConnectionLog):
    """``scenario`` with its act marking the fault's instant in ``connections``."""
    original = scenario.act

    def act(target, deadline):
        connections.mark_fault()
        return original(target, deadline)

    scenario.act = act
    return scenario


def only_the_victims_failed(result: ScenarioResult, ips: dict[str, str], connections: ConnectionLog,
                            window_s: float) -> int:
    """A fault may cost one admission per connection the apiserver held or dialled to the victim
    while it was gone (``window_s`` from the fault; tests/drill/connections.py): every failure
    must name the victim's address (reset or refused there) or name none (a timeout, or EOF on a
    connection closed under its request), and there are no more of those than such connections;
    no failure ever names another replica's address. Returns that count of connections."""
    victims = {ips[v] for v in result.victims}
    named = 0
    for failure in result.failures:
        count, message = failure.split("x ", 1)
        assert "mpod.kb.io" in message, failure
        if any(f"{ip}:" in message for ip in victims):
            named += int(count)
            continue
        assert not any(f"{ip}:" in message for ip in ips.values()), (failure, victims)
        assert "deadline exceeded" in message or "Timeout" in message or message.endswith(": EOF"), failure
    held = connections.held_during_fault(victims, window_s)
    unnamed = result.failed - named  # failures past the five messages kept count here too
    print(f"failed {result.failed} ({unnamed} naming no address); the apiserver's connections to the victims "
          f"during the fault: {held}")
    assert unnamed <= held, (f"{unnamed} failures name no address, but the apiserver held only {held} "
                             f"connections to the victims {sorted(victims)} during the fault", result.failures)
    return held


def failed_within_connections(result: ScenarioResult, held: int) -> None:
    """The CLI's budget (``breaches``) with its count of failed admissions at least the
    connections the apiserver held to the victim: a replica that stopped answering without
    dying (hung, partitioned, lost) costs the request sent on each, not just the one in flight."""
    budget = replace(result.budget, failed=max(result.budget.failed, held))
    assert not budget.breaches(result), (budget.breaches(result), result)
