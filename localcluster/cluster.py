"""A real Kubernetes control plane on this machine: etcd, kube-apiserver and, on request,
kube-controller-manager, kube-scheduler and kwok (simulated nodes and pods).

Everything runs as child processes in one temporary folder with free ports; ``stop()`` ends
them all. Children are also asked to die with their parent (PR_SET_PDEATHSIG), so an
interrupted test run leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kubekit import kruise, paths
from kubekit.api import ApiError, Client

from . import build, network
from .pki import LocalCA, write_service_account_keys
from .processes import die_with_parent

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"  # never addressed: there is no kube-proxy
POD_CIDR = "198.19.0.0/16"  # pod IPs kwok hands out; nothing connects to them
UNUSED_ADVERTISE_ADDRESS = "198.18.0.1"  # network index 0 is never allocated to hosts


PORTS_HANDED = Path(tempfile.gettempdir()) / "kruisectl-ports"  # "port:time" lines, under flock
PORT_HOLD_S = 900.0  # a port handed out is not handed again for this long (any process here)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port for a component to listen on. Picked below the kernel's ephemeral range, so no
    outgoing connection's source port takes it before the component binds, and recorded for all
    processes here, so parallel test workers starting clusters at once never get the same one
    (the kernel's ``bind(0)`` picks from the ephemeral range and forgets at close)."""
    low = _ephemeral_low()
    if low < 12000:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    with open(PORTS_HANDED, "a+") as record:
        fcntl.flock(record, fcntl.LOCK_EX)
        record.seek(0)
        now, handed = time.time(), {}
        for line in record.read().split():
            port, _, at = line.partition(":")
            if port.isdigit() and now - float(at or 0) < PORT_HOLD_S:
                handed[int(port)] = float(at)
        for _ in range(500):
            port = random.randrange(10000, low)
            if port in handed:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("", port))
                except OSError:
                    continue
            handed[port] = now
            record.seek(0)
            record.truncate()
            record.write("".join(f"{p}:{at}\n" for p, at in handed.items()))
            return port
    raise OSError(f"no free port below {low} (the ephemeral range) after 500 tries")


class ClusterError(RuntimeError):
    """The control plane could not be started; the message names the component and its log."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


STOP_TIMEOUT_S = 10.0  # a component's TERM to KILL


@dataclass
class ClusterOptions:
    scheduler: bool = False
    controller_manager: bool = False
    kwok: bool = False
    network: bool = False  # hosts in network namespaces, for webhooks behind Services
    extra_apiserver_args: tuple[str, ...] = ()
    extra_controller_manager_args: tuple[str, ...] = ()  # e.g. the node lifecycle's grace settings


@dataclass
class LocalCluster:
    """Handle on a running local control plane; build with :meth:`start`."""

    workdir: Path
    options: ClusterOptions
    binaries: dict[str, Path]
    apiserver_port: int = 0
    apiserver_ready_s: float = 0.0  # from spawning kube-apiserver to /readyz ok
    components: list[Component] = field(default_factory=list)
    net: network.Network | None = None
    _owns_workdir: bool = False

    # ---- paths -------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) kubeconfig for tools on this machine."""
        return self.workdir / "admin.kubeconfig"

    @property
    def host_kubeconfig(self) -> Path:
        """Admin kubeconfig that works from inside a network-namespace host."""
        return self.workdir / "host-admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def binary(self, name: str) -> Path:
        return self.binaries[name]

    # ---- lifecycle ---------------------------------------------------------------------
    @classmethod
    def start(cls, options: ClusterOptions | None = None, workdir: Path | None = None, log=sys.stderr) -> "LocalCluster":
        options = options or ClusterOptions()
        build.refuse_in_unit_tier("a local control plane was started")
        binaries = build.ensure_binaries(log=log)
        owns = workdir is None
        workdir = Path(workdir or tempfile.mkdtemp(prefix="kruisectl-cluster-"))
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = cls(workdir=workdir, options=options, binaries=binaries, _owns_workdir=owns)
        try:
            cluster._start_all()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_all(self) -> None:
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # always a fresh cluster
        if self.options.network:
            self.net = network.Network.create()
        self._write_pki()
        self._start_etcd()
        self._start_apiserver()
        self.apiserver_ready_s = self.wait_ready()
        if self.options.controller_manager:
            self._start_controller_manager()
        if self.options.scheduler:
            self._start_scheduler()
        if self.options.kwok:
            self._start_kwok()
        if self.options.controller_manager:
            self._wait_for_default_service_account()
        self._write_state()

    def stop(self) -> None:
        """Stop every component, newest first, each gone before the next is asked: kube-apiserver
        shuts down gracefully only while etcd still answers (signalled together, it hung until
        killed, 10 s per cluster). Each gets TERM, then KILL after ``STOP_TIMEOUT_S``."""
        for component in reversed(self.components):
            if component.alive():
                component.process.terminate()
            try:
                component.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                component.process.kill()
                component.process.wait()
        self.components.clear()
        if self.net:
            self.net.destroy()
            self.net = None
        if self._owns_workdir and not os.environ.get("KRUISECTL_KEEP_CLUSTER_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- components --------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> Component:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        handle = open(log, "ab")
        process = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        handle.close()
        component = Component(name=name, process=process, log=log)
        self.components.append(component)
        return component

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        ca = LocalCA()
        self.ca_file.write_bytes(ca.cert_pem)
        (pki / "ca.key").write_bytes(ca.key_pem)
        ips = ["127.0.0.1", "10.96.0.1"] + ([self.net.gateway] if self.net else [])
        dns = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
        cert, key = ca.issue("kube-apiserver", dns_names=dns, ips=tuple(ips), server=True)
        (pki / "apiserver.crt").write_bytes(cert)
        (pki / "apiserver.key").write_bytes(key)
        cert, key = ca.issue("kruisectl-admin", organizations=("system:masters",))
        (pki / "admin.crt").write_bytes(cert)
        (pki / "admin.key").write_bytes(key)
        # The apiserver's own client identity towards webhooks is not needed: webhooks see it
        # anonymous. Service-account token keys:
        write_service_account_keys(pki)
        self.apiserver_port = free_port()
        self._write_kubeconfig(self.kubeconfig, self.server, pki / "admin.crt", pki / "admin.key")
        if self.net:
            self._write_kubeconfig(
                self.host_kubeconfig, f"https://{self.net.gateway}:{self.apiserver_port}", pki / "admin.crt", pki / "admin.key"
            )

    def _write_kubeconfig(self, path: Path, server: str, cert: Path, key: Path, user: str = "admin") -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def write_token_kubeconfig(self, path: Path, token: str, *, for_hosts: bool = False) -> Path:
        """A kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        server = f"https://{self.net.gateway}:{self.apiserver_port}" if for_hosts and self.net else self.server
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "token"}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                str(self.binary("etcd")),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        bind = "0.0.0.0" if self.net else "127.0.0.1"
        # Endpoints may not hold loopback; without hosts, advertise an address nothing dials.
        advertise = self.net.gateway if self.net else UNUSED_ADVERTISE_ADDRESS
        self._spawn(
            "kube-apiserver",
            [
                str(self.binary("kube-apiserver")),
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={self.apiserver_port}",
                f"--bind-address={bind}",
                f"--advertise-address={advertise}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={self.ca_file}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--enable-aggregator-routing=true",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                *self.options.extra_apiserver_args,
            ],
        )

    def _start_controller_manager(self) -> None:
        pki = self.workdir / "pki"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binary("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={self.ca_file}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allocate-node-cidrs=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--concurrent-deployment-syncs=10",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
                *self.options.extra_controller_manager_args,
            ],
        )

    def _start_scheduler(self) -> None:
        self._spawn(
            "kube-scheduler",
            [
                str(self.binary("kube-scheduler")),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ],
        )

    def _start_kwok(self) -> None:
        stages = sorted((self.binary("kwok").parent / "assets").glob("*.yaml"))
        self._spawn(
            "kwok",
            [
                str(self.binary("kwok")),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=198.19.255.254",
                f"--server-address=127.0.0.1:{free_port()}",
                "--node-lease-duration-seconds=40",
                *(f"--config={stage}" for stage in stages),
            ],
        )

    # ---- readiness ---------------------------------------------------------------------
    def run_until(self, stop) -> None:
        """Block until ``stop`` (a threading.Event) is set or a component dies (said on stdout):
        the loop of a supervisor that owns this cluster."""
        while not stop.wait(1):
            dead = [c.name for c in self.components if not c.alive()]
            if dead:
                print(f"component(s) exited: {', '.join(dead)}; stopping", flush=True)
                return

    def client(self, user_agent: str = "localcluster", pool_size: int = 4) -> Client:
        """An admin API client (kubekit's) with ``pool_size`` connections."""
        pki = self.workdir / "pki"
        return Client.for_certificate(self.server, str(self.ca_file), str(pki / "admin.crt"), str(pki / "admin.key"),
                                      user_agent, pool_size)

    def wait_ready(self, timeout: float = 120) -> float:
        """Block until /readyz answers ok; return the seconds it took."""
        started = time.monotonic()
        client = self.client()
        last = ""
        while time.monotonic() - started < timeout:
            for component in self.components:
                if not component.alive():
                    raise ClusterError(f"{component.name} exited ({component.process.returncode}); see {component.log}:\n{_tail(component.log)}")
            try:
                client.get_text("/readyz", timeout=2)
                return time.monotonic() - started
            except ApiError as err:
                last = str(err)[-300:]
            time.sleep(0.2)
        raise ClusterError(f"kube-apiserver not ready after {timeout:.0f}s: {last}")

    def _wait_for_default_service_account(self, timeout: float = 60) -> None:
        """Pods cannot be created in a namespace before its 'default' ServiceAccount exists."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.get(paths.service_accounts("default", "default"), timeout=2)
                return
            except ApiError:
                time.sleep(0.2)
        raise ClusterError("the 'default' ServiceAccount did not appear: is kube-controller-manager running?")

    def _write_state(self) -> None:
        state = {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "pids": {c.name: c.process.pid for c in self.components},
            "network": self.net.index if self.net else None,
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    # ---- nodes and hosts ---------------------------------------------------------------
    def api(self):
        """A kubernetes ApiClient for the admin kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def add_host(self, name: str) -> network.Host:
        if not self.net:
            raise ClusterError("this cluster was started without network=True")
        return self.net.add_host(name)

    def create_nodes(
        self,
        count: int,
        *,
        zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c"),
        bare_metal: int = 0,
        prefix: str = "node",
        cpu: str = "8",
        memory: str = "32Gi",
        pods: str = "110",
        labels: dict[str, str] | None = None,
        with_hosts: bool = False,
        region: str = "region-1",
    ) -> list[dict]:
        """Create ``count`` kwok nodes spread round-robin over ``zones`` and ``bare_metal`` more
        without any topology label. With ``with_hosts`` each node's InternalIP is a real host
        (network namespace), so host-network pods on it are reachable at that address."""
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        created = []
        for i in range(count + bare_metal):
            name = f"{prefix}-{i}"
            node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}
            if i < count and zones:
                node_labels[kruise.ZONE_LABEL] = zones[i % len(zones)]
                node_labels[kruise.REGION_LABEL] = region
            node_labels.update(labels or {})
            address = self.add_host(name).ip if with_hosts else f"198.19.{200 + i // 250}.{i % 250 + 1}"
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": node_labels, "annotations": {KWOK_ANNOTATION: "fake"}},
                "status": {
                    "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                    "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                    "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                },
            }
            created.append(core.create_node(body).to_dict())
        return created


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
