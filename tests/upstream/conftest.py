"""The real upstream kruise-manager (localcluster.upstream: built from the Go module proxy's
source, installed from its own kustomize install) on a private control plane whose hostlet
nodes run it: one install per session, shared by every test here. Tests may disturb the
manager's pods (a drill, a rollout) but must leave it with all replicas ready."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from kruisectl.cli import cli
from kruisectl.drill import DrillOptions
from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.fleet import Fleet
from localcluster.hostlet import Hostlet, create_hostlet_nodes
from localcluster.upstream import UpstreamBuild, UpstreamInstall, build_upstream, install_upstream, programs
from tests import audit
from tests.conftest import require

NODES = ["up-0", "up-1", "up-2"]
ZONES = ("zone-a", "zone-b", "zone-c")
# The apiserver's record of every pod create in the drill's default probe namespace, with the
# pod it answered: an account of the drill's load that is not the drill's own.
AUDITED = [{"level": "RequestResponse", "verbs": ["create"], "namespaces": [DrillOptions().probe_namespace],
            "resources": [{"group": "", "resources": ["pods"]}]}]


@dataclass
class Upstream:
    """A running upstream install and how to reach it (``install`` says how it came up; read
    the leader and pods live: drills and rollouts change them)."""

    cluster: LocalCluster
    hostlet: Hostlet
    built: UpstreamBuild
    install: UpstreamInstall
    audit_log: Path  # see AUDITED

    @property
    def kubeconfig(self) -> str:
        return str(self.cluster.kubeconfig)

    @property
    def namespace(self) -> str:
        return self.install.namespace

    def kruisectl(self, *args: str):
        """kruisectl as a user runs it against this install (exit code and output)."""
        return CliRunner().invoke(cli, [*args, "--kubeconfig", self.kubeconfig], catch_exceptions=False)

    def report(self, *args: str) -> tuple[int, dict]:
        """Exit code and JSON document of a kruisectl command."""
        result = self.kruisectl(*args, "-o", "json")
        return result.exit_code, json.loads(result.stdout)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The built kubectl against this install."""
        result = subprocess.run([str(self.cluster.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def run_fix(self, command: str, *extra: str) -> subprocess.CompletedProcess:
        """Run a fix kruisectl printed (a ``kubectl …`` command line) as a user pastes it."""
        argv = shlex.split(command)
        assert argv[0] == "kubectl", command
        return self.kubectl(*argv[1:], *extra)

    def api(self):
        return self.cluster.api()


@pytest.fixture(scope="session")
def upstream_install(tmp_path_factory):
    require("netns")
    built = build_upstream(log=sys.stderr)
    audit_log = tmp_path_factory.mktemp("upstream-audit") / "audit.log"
    options = ClusterOptions(scheduler=True, controller_manager=True, network=True,
                             extra_apiserver_args=audit.apiserver_args(AUDITED, audit_log))
    cluster = LocalCluster.start(options, log=sys.stderr)
    hostlet = None
    try:
        create_hostlet_nodes(cluster, NODES, zones=ZONES)
        hostlet = Hostlet(cluster, NODES, programs=programs(built), backoff_initial=1, backoff_max=4,
                          heartbeat_interval=2).start()
        install = install_upstream(cluster, built, replicas=2, log=sys.stderr)
        yield Upstream(cluster, hostlet, built, install, audit_log)
    finally:
        if hostlet is not None:
            hostlet.stop()
        cluster.stop()


@contextlib.contextmanager
def our_manager(*extra_args: str):
    """This project's manager (one replica, webhook and controller) on a control plane of its
    own, the side compared with the session's upstream install."""
    require("netns")
    cluster = LocalCluster.start(ClusterOptions(controller_manager=True, network=True), log=sys.stderr)
    fleet = None
    try:
        fleet = Fleet(cluster, extra_args=extra_args).install(1)
        fleet.start_all()
        fleet.wait_ready(timeout=90)
        yield cluster
    finally:
        if fleet is not None:
            fleet.stop_all()
        cluster.stop()
