"""The manager's wiring: which parts run in this process for its ``--role`` (informers, the
webhook server and its handlers, certificates, health, metrics, the leader-elected controller),
in what order they start, and how they stop."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time

from .options import Options

log = logging.getLogger("manager")

PROCESS_STARTED = time.monotonic()  # this process's start, near enough (the module loads first)

# What a worker imports before it serves (its own modules import the rest lazily, at start):
# the supervisor imports them once, and a worker forked from it pays nothing for them.
WORKER_MODULES = ("kubernetes.client", "kubernetes.config", "kubernetes.utils.keepalive", "kubekit.api",
                  "kubekit.kruise", "manager.certs", "manager.controller", "manager.handlers", "manager.health",
                  "manager.informer", "manager.lease", "manager.metrics", "manager.runnable", "manager.webhook",
                  "manager.workloadspread.admission", "manager.workloadspread.controller",
                  "manager.workloadspread.validation")


def preload() -> None:
    """Import :data:`WORKER_MODULES` (none of them starts a thread: the supervisor forks)."""
    for name in WORKER_MODULES:
        importlib.import_module(name)


def run(args: Options, handoff=None) -> int:
    """A manager process's life: build, start, wait until done; its exit code. A worker
    (``handoff`` given) runs this in the process the supervisor forked, or after exec."""
    try:
        manager = Manager(args, handoff)
    except Exception as err:  # bad kubeconfig and the like: one line, not a traceback
        print(f"kruise-manager: error: cannot build the API client: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=manager.shutdown, daemon=True).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=manager.shutdown, daemon=True).start())
    try:
        manager.start()
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    log.info("started", extra={"identity": manager.identity, "role": args.role, "namespace": manager.namespace})
    while not manager.done.wait(0.5):
        pass
    time.sleep(0.05)
    return manager.exit_code


class Manager:
    def __init__(self, args: Options, handoff=None):
        """``handoff``: what the supervisor told this worker (:class:`manager.supervisor.Handoff`),
        None when the manager runs unsupervised."""
        from kubekit.api import Client
        from .health import Health
        from .supervisor import new_identity

        self.args = args
        self.handoff = handoff
        self.identity = handoff.identity if handoff else new_identity()
        self.pod_uid = os.environ.get("POD_UID", "")
        self.namespace = args.leader_election_namespace
        # Aborting connections (SO_LINGER 0): a request not yet sent dies with the process (the
        # supervisor's safety argument relies on it).
        self.client = Client.from_kubeconfig(args.kubeconfig, user_agent=f"kruise-manager/{self.identity}",
                                             pool_size=32, abort_on_close=True)
        # The Lease's own connections (its watch, its reads and writes): a renewal never waits
        # for a connection behind the webhook's and the controllers' calls, nor opens a new one
        # (a TCP and TLS handshake) when the webhook's calls and the informers' watches hold
        # every pooled one: a renewal has at most the renew deadline.
        self.lease_client = Client.from_kubeconfig(args.kubeconfig, user_agent=f"kruise-manager/{self.identity}",
                                                   pool_size=3, abort_on_close=True)
        self.health = Health()
        self.shutting_down = threading.Event()
        self.exit_code = 0
        self.done = threading.Event()
        self.webhook = self.certs = self.elector = self.controller = self.runnables = self.peers = None

    @property
    def runs_webhook(self) -> bool:
        return self.args.role in ("all", "webhook")

    @property
    def runs_controller(self) -> bool:
        return self.args.role in ("all", "controller")

    def start(self) -> None:
        """Build the parts for this role and start them (see :mod:`manager.runnable`)."""
        from . import metrics
        from .runnable import Runnables

        a = self.args
        started = threading.Event()
        # Until every part below is started, readiness must not pass on the few checks it has.
        self.health.readiness["started"] = lambda: None if started.is_set() else "starting"
        self.health.readiness["shutdown"] = lambda: "shutting down" if self.shutting_down.is_set() else None
        handoff = self.handoff
        self.health.serve(a.health_probe_addr, sock=handoff.listener("health") if handoff else None)
        metrics.serve(a.metrics_addr, sock=handoff.listener("metrics") if handoff else None)
        if handoff:
            handoff.start_heartbeat(lambda: self.health.evaluate(self.health.liveness)[0])
            threading.Thread(target=handoff.report, args=(self.client, self.namespace), name="restart report",
                             daemon=True).start()
        self.runnables = Runnables(self.health)
        sidecarsets, namespaces = self._add_informers()
        workloadspreads = self._add_workloadspreads_informer()
        if self.runs_webhook:
            self._add_webhook(sidecarsets, namespaces, workloadspreads)
        if self.runs_controller:
            self._add_controller(sidecarsets, namespaces, workloadspreads)
        if self.runs_webhook and self.runs_controller and self.args.webhook_peer_probe:
            self._add_peers()
        self.runnables.start()
        started.set()

    def _add_informers(self):
        from .handlers import slim_namespace, slim_sidecarset
        from .informer import Informer
        from .runnable import Runnable

        sidecarsets = Informer(self.client, "/apis/apps.kruise.io/v1alpha1/sidecarsets", transform=slim_sidecarset,
                               name="sidecarsets")
        namespaces = Informer(self.client, "/api/v1/namespaces", transform=slim_namespace, name="namespaces")
        self.runnables.add(Runnable("sidecarsets-informer", sidecarsets.start, sidecarsets.stop))
        self.runnables.add(Runnable(
            "informers", namespaces.start, namespaces.stop,
            readiness=lambda: None if sidecarsets.synced.is_set() and namespaces.synced.is_set()
            else "caches not synced (is the SidecarSet CRD installed?)"))
        return sidecarsets, namespaces

    def _add_workloadspreads_informer(self):
        """The WorkloadSpreads the pod webhook and the controller read (cluster-wide, one cache
        for both). Ready once listed, or once
        the API answers that the resource does not exist: a cluster with the SidecarSet CRD
        only is served as one without WorkloadSpreads (the informer keeps listing, so a CRD
        installed later is picked up)."""
        from kubekit import kruise
        from .informer import Informer
        from .runnable import Runnable
        from .workloadspread.admission import slim_workloadspread

        workloadspreads = Informer(self.client, kruise.WORKLOADSPREADS_PATH, transform=slim_workloadspread,
                                   name="workloadspreads")
        self.runnables.add(Runnable(
            "workloadspreads-informer", workloadspreads.start, workloadspreads.stop,
            readiness=lambda: None if workloadspreads.synced.is_set() or workloadspreads.absent.is_set()
            else "WorkloadSpread cache not synced"))
        return workloadspreads

    def _add_webhook(self, sidecarsets, namespaces, workloadspreads) -> None:
        from kubekit import kruise
        from .certs import CertManager, CertOptions
        from .handlers import SidecarSetAdmission
        from .health import heartbeat_check, webhook_self_check
        from .options import gate_values
        from .runnable import Runnable
        from .webhook import WebhookServer
        from .workloadspread.admission import PodMutation, WorkloadSpreadAdmission
        from .workloadspread.validation import validate_request

        a = self.args
        self.certs = CertManager(self.client, CertOptions.from_options(a))
        self.runnables.add(Runnable("webhook-credential", self.certs.start, self.certs.stop,
                                    readiness=lambda: self.certs.problem))
        admission = SidecarSetAdmission(sidecarsets, namespaces, self.namespace, configuration=self._configuration,
                                        gates=gate_values(a.feature_gates))
        spread = WorkloadSpreadAdmission(self.client, workloadspreads, skipped=admission.skipped)
        handlers = {
            kruise.MUTATE_POD_PATH: PodMutation(spread, admission).mutate_pod,
            kruise.VALIDATE_POD_PATH: spread.validate_pod,
            kruise.MUTATE_SIDECARSET_PATH: admission.mutate_sidecarset,
            kruise.VALIDATE_SIDECARSET_PATH: admission.validate_sidecarset}
        # upstream's checks need the namespace's other WorkloadSpreads (one per workload) and
        # the target (the subsets' patches are checked against its pod template)
        handlers[kruise.VALIDATE_WORKLOADSPREAD_PATH] = functools.partial(
            validate_request, others=spread.in_namespace, workload=spread.target_workload)
        self.webhook = WebhookServer(a, handlers)
        own = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(a.webhook_bind_address, a.webhook_bind_address)
        listener = self.handoff.listener("webhook") if self.handoff else None
        # Answer nothing before the caches and the serving certificate are there: a restarted
        # worker finds connections already waiting in the backlog it inherits.
        serve_when = lambda: (sidecarsets.synced.is_set() and namespaces.synced.is_set()  # noqa: E731
                              and (workloadspreads.synced.is_set() or workloadspreads.absent.is_set())
                              and self.webhook.tls.context() is not None)
        self.runnables.add(Runnable(
            "webhook-server", lambda: self.webhook.start(listener=listener, serve_when=serve_when),
            # Drain (--webhook-drain-delay): every answer closes its connection; stop once nothing
            # is in flight (or after --webhook-io-timeout).
            self.webhook.shutdown,
            readiness=webhook_self_check(own, a.webhook_port, self.certs.ca_file, self.certs.dns_names[0], timeout=1.0),
            liveness=heartbeat_check(lambda: self.webhook.last_heartbeat, 20, "the webhook accept loop")))

    def _configuration(self) -> dict | None:
        """The data of upstream's ``kruise-configuration`` ConfigMap in the manager's namespace
        (None when there is none), read as a SidecarSet with patchPodMetadata is validated."""
        from kubekit.api import ApiError
        from .sidecarset import CONFIGURATION_NAME

        try:
            found = self.client.request("GET", f"/api/v1/namespaces/{self.namespace}/configmaps/{CONFIGURATION_NAME}",
                                        timeout=5)
        except ApiError as err:
            if err.not_found:
                return None
            raise
        return found.get("data") or {}

    def _add_controller(self, sidecarsets, namespaces, workloadspreads) -> None:
        from .controller import StatusController
        from .health import heartbeat_check
        from .lease import ElectionConfig, LeaderElector, LeaseLock, NoElection
        from .runnable import Runnable

        a = self.args
        config = ElectionConfig.from_options(a, self.identity, self.pod_uid)
        callbacks = {"on_started_leading": self.runnables.started_leading,
                     "on_stopped_leading": self._stopped_leading}
        if a.enable_leader_election:
            self.elector = LeaderElector(LeaseLock(self.lease_client, self.namespace, a.leader_election_id), config,
                                         succession=self._succession(),
                                         **callbacks)
        else:
            self.elector = NoElection(config, **callbacks)
        self.controller = StatusController(self.client, self.elector, sidecarsets, namespaces)
        # Added last, so stopped first: the Lease is released (a standby takes over at once)
        # before the webhook drains. Started first: the Lease needs only the client.
        self.runnables.add(Runnable(
            "leader-election", lambda: threading.Thread(target=self.elector.run, name="election", daemon=True).start(),
            self.elector.release, first=True,
            liveness=heartbeat_check(lambda: self.elector.last_heartbeat, 30, "the leader election loop")))
        self.runnables.add(Runnable(
            "controller", self.controller.start, self.controller.stop, needs_leader=True,
            liveness=heartbeat_check(lambda: self.controller.last_heartbeat, 30, "the SidecarSet status worker")))
        self._add_workloadspread_controller(workloadspreads)

    def _add_workloadspread_controller(self, workloadspreads) -> None:
        """Leader only, after the SidecarSet controller: it reads that controller's pod cache."""
        from .health import heartbeat_check
        from .runnable import Runnable
        from .workloadspread.controller import WorkloadSpreadController

        controller = self.workloadspread_controller = WorkloadSpreadController(
            self.client, self.elector, workloadspreads, pods=lambda: self.controller.pods,
            configuration=self._configuration)
        self.controller.pod_listeners.append(controller.pod_changed)
        self.runnables.add(Runnable(
            "workloadspread-controller", controller.start, controller.stop, needs_leader=True,
            liveness=heartbeat_check(lambda: controller.last_heartbeat, 30, "the WorkloadSpread worker")))

    def _succession(self):
        """Who this replica may succeed without waiting the lease duration out: its supervisor's
        reaped workers, and holders from earlier containers of this pod (a process run without
        a supervisor is its container's first process: it started after they died)."""
        from .lease import Succession

        if self.handoff:
            return self.handoff.succession(self.pod_uid)
        if self.pod_uid:
            return Succession(frozenset(), PROCESS_STARTED + self.args.worker_succession_delay, self.pod_uid)
        return None

    def _add_peers(self) -> None:
        """Peer probes and, while leading, the readiness gate (see :mod:`manager.peers`); needs
        the pod's own name (the chart's POD_NAME)."""
        import os

        from .peers import PeerProber
        from .runnable import Runnable

        a = self.args
        pod = os.environ.get("POD_NAME", "")
        if not pod:
            log.warning("POD_NAME is not set: peer probes are off")
            return
        serving = self.health.readiness["webhook-server"]
        self.peers = PeerProber(
            self.client, self.namespace, pod, a.webhook_peer_selector, a.webhook_port, self.certs.ca_file,
            self.certs.dns_names[0], interval=a.webhook_peer_probe_interval, timeout=a.webhook_peer_probe_timeout,
            failures=a.webhook_peer_failure_threshold, successes=a.webhook_peer_success_threshold,
            leading=lambda: self.elector.may_act() > 0, serving=lambda: serving() is None,
            lease=lambda: self.elector.holder_view(), silence=2 * a.leader_election_retry_period)
        self.runnables.add(Runnable("webhook-peers", self.peers.start, self.peers.stop))

    def _stopped_leading(self) -> None:
        """Stop all reconciling at once; a lost Lease (not a release on SIGTERM) restarts clean."""
        self.runnables.stopped_leading()
        if self.elector.lost.is_set() and not self.shutting_down.is_set():
            log.error("exiting: leadership lost")
            self.exit_code = 1
            threading.Thread(target=self._exit_after_answering, name="leadership lost", daemon=True).start()

    def _exit_after_answering(self) -> None:
        """The restart after a lost Lease must not cost an admission: the webhook stops taking
        connections and answers what it holds first (no drain delay: a supervised worker's
        listener is the supervisor's copy too, so the connections that come meanwhile wait in
        its backlog for the next worker), then everything stops as on SIGTERM."""
        if self.webhook is not None:
            self.webhook.stop()
        self.shutdown()

    def shutdown(self) -> None:
        """SIGTERM: not ready, stop controlling, hand the Lease over, drain the webhook, stop
        the credential and the informers (each part in reverse order of its start)."""
        if self.shutting_down.is_set():
            return
        self.shutting_down.set()
        log.info("shutting down")
        if self.runnables is not None:
            self.runnables.stop()
        self.done.set()
