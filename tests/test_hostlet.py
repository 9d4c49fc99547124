"""The hostlet against the real control plane: nodes kept Ready, pods run as real processes in
the nodes' network-namespace hosts, status from real probes, restarts, graceful deletion."""

from __future__ import annotations

import datetime as dt
import json

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from localcluster.cluster import ClusterOptions, LocalCluster
from localcluster.hostlet import Hostlet, HostletError, create_hostlet_nodes
from tests.conftest import require, wait_for
from tests.namespaces import fresh_namespace

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

APP = Path(__file__).with_name("hostlet_app.py")
PROGRAMS = {"hostlet-app": [sys.executable, str(APP)], "py": [sys.executable]}
NODES = ["hl-0", "hl-1", "hl-2"]


# ---- against the control plane -----------------------------------------------------------
@pytest.fixture(scope="module")
def local():
    require("netns")
    cluster = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, network=True), log=sys.stderr)
    try:
        create_hostlet_nodes(cluster, NODES, zones=("zone-a", "zone-b", "zone-c"))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hostlet(local):
    with Hostlet(local, NODES, programs=PROGRAMS, backoff_initial=1, backoff_max=4, heartbeat_interval=2) as running:
        yield running


@pytest.fixture
def core(local):
    from kubernetes import client

    return client.CoreV1Api(local.api())


@pytest.fixture
def ns(core):
    with fresh_namespace(core, "h") as name:
        yield name


def app_container(port: int, *args: str, readiness: dict | None = None, liveness: dict | None = None) -> dict:
    container = {
        "name": "app", "image": "example.com/hostlet-app:1", "command": ["hostlet-app"],
        "args": ["--port", str(port), *args],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": readiness or {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
                                        "failureThreshold": 1, "timeoutSeconds": 1},
    }
    if liveness:
        container["livenessProbe"] = liveness
    return container


def bare_pod(core, ns: str, name: str, container: dict, node: str = "hl-2", **spec) -> dict:
    body = {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [container], **spec}}
    return core.create_namespaced_pod(ns, body).to_dict()


def pod_status(core, ns: str, name: str):
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_pod(name, ns)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def is_ready(pod) -> bool:
    return pod is not None and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_ready(core, ns: str, name: str, ready: bool = True, timeout: float = 30):
    return wait_for(lambda: (lambda p: p if p is not None and is_ready(p) == ready else None)(pod_status(core, ns, name)),
                    timeout=timeout, what=f"pod {name} ready={ready}")


def get(ip: str, port: int, path: str, **kwargs) -> requests.Response:
    assert ip.startswith("198.18."), ip  # only the harness's own hosts
    session = requests.Session()
    session.trust_env = False
    return session.get(f"http://{ip}:{port}{path}", timeout=5, **kwargs)


def test_nodes_are_ready_and_their_leases_renewed(local, hostlet, core):
    from kubernetes import client

    leases = client.CoordinationV1Api(local.api())
    for name in NODES:
        node = core.read_node(name)
        assert "kwok.x-k8s.io/node" not in (node.metadata.annotations or {})
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        # The node lifecycle controller lifts the not-ready taint on its next pass over a Ready node.
        wait_for(lambda: not [t for t in core.read_node(name).spec.taints or [] if t.key.startswith("node.kubernetes.io/")],
                 timeout=30, what=f"{name}'s node.kubernetes.io taints lifted")
    first = leases.read_namespaced_lease("hl-0", "kube-node-lease")
    assert first.spec.holder_identity == "hl-0"
    assert first.metadata.owner_references[0].kind == "Node"
    wait_for(lambda: leases.read_namespaced_lease("hl-0", "kube-node-lease").spec.renew_time > first.spec.renew_time,
             timeout=10, what="node lease renewal")


@pytest.fixture(scope="module")
def deployment(local, hostlet):
    """Deployment ``web`` (2 host-network replicas, a Service) in its own namespace; its
    ServiceAccount may read pods."""
    from kubernetes import client

    api = local.api()
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    ns = f"web-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "web"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "read-pods"},
                                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "read-pods"}, "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"}})
    container = app_container(18080, "--label=$(POD_NAME)", *(f"--show={v}" for v in
                              ("POD_NAME", "POD_NAMESPACE", "NODE_NAME", "POD_IP", "HOST_IP", "GREETING", "KUBECONFIG")))
    container["ports"][0]["hostPort"] = 18080
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "GREETING", "value": "hello $(POD_NAME)"},
    ]
    labels = {"app": "web"}
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"hostNetwork": True, "serviceAccountName": "web", "containers": [container],
                                       "terminationGracePeriodSeconds": 5}}}})
    core.create_namespaced_service(ns, {"metadata": {"name": "web"},
                                        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 18080}]}})

    def ready_pods():
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        return pods if len(pods) == 2 and all(is_ready(p) for p in pods) else None

    pods = wait_for(ready_pods, timeout=90, what="2 ready replicas of web")
    yield ns, pods
    core.delete_namespace(ns)


def test_deployment_replicas_run_ready_and_reachable(local, core, hostlet, deployment):
    ns, pods = deployment
    assert len({p.spec.node_name for p in pods}) == 2  # one host port per node
    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
        assert pod.status.phase == "Running"
        assert pod.status.pod_ip == pod.status.host_ip == address
        (status,) = pod.status.container_statuses
        assert status.ready and status.started and status.restart_count == 0 and status.state.running
        assert hostlet.process_of(ns, pod.metadata.name).poll() is None
        who = get(address, 18080, "/whoami").json()
        name = pod.metadata.name
        assert who["argv"][2] == f"--label={name}"  # $(VAR) expanded in args
        env = who["env"]
        assert (env["POD_NAME"], env["POD_NAMESPACE"], env["NODE_NAME"]) == (name, ns, pod.spec.node_name)
        assert env["POD_IP"] == env["HOST_IP"] == address
        assert env["GREETING"] == f"hello {name}"
        assert who["pid"] == hostlet.process_of(ns, name).pid
        assert who["hostname"] == pod.spec.node_name  # host network: the node's hostname, as a kubelet sets it
        assert who["hostnameResolvesTo"] == address
        # The credential is the pod's ServiceAccount (bound to it), not an admin's.
        me = get(address, 18080, "/self").json()
        assert (me["pod"], me["uid"], me["secrets"]) == (200, pod.metadata.uid, 403)
        assert "serving on :18080" in hostlet.log_path(ns, name).read_text()


def test_frozen_replica_leaves_the_service_and_comes_back(local, core, hostlet, deployment):
    ns, pods = deployment
    victim = pods[0].metadata.name

    def endpoint_ips(kind: str) -> set[str]:
        subsets = core.read_namespaced_endpoints("web", ns).subsets or []
        return {a.ip for s in subsets for a in (getattr(s, kind) or [])}

    wait_for(lambda: len(endpoint_ips("addresses")) == 2, timeout=30, what="2 ready endpoints")
    hostlet.signal_pod(ns, victim, signal.SIGSTOP)
    try:
        wait_ready(core, ns, victim, ready=False, timeout=15)
        wait_for(lambda: endpoint_ips("not_ready_addresses") == {pods[0].status.pod_ip}, timeout=15,
                 what="the frozen replica moved to notReadyAddresses")
    finally:
        hostlet.signal_pod(ns, victim, signal.SIGCONT)
    pod = wait_ready(core, ns, victim, ready=True, timeout=15)
    assert pod.status.container_statuses[0].restart_count == 0
    wait_for(lambda: len(endpoint_ips("addresses")) == 2, timeout=30, what="2 ready endpoints again")


def test_killed_process_is_restarted(core, hostlet, ns):
    bare_pod(core, ns, "kill-me", app_container(18081))
    wait_ready(core, ns, "kill-me")
    first = hostlet.process_of(ns, "kill-me")
    hostlet.signal_pod(ns, "kill-me", signal.SIGKILL)
    pod = wait_for(lambda: (lambda p: p if p.status.container_statuses[0].restart_count == 1 and is_ready(p) else None)(
        pod_status(core, ns, "kill-me")), timeout=30, what="restart after SIGKILL")
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 137
    assert status.last_state.terminated.reason == "Error"
    assert first.returncode == -signal.SIGKILL
    second = hostlet.process_of(ns, "kill-me")
    assert second.pid != first.pid and second.poll() is None
    assert hostlet.log_path(ns, "kill-me").name == "1.log"


def test_a_status_another_writer_changed_is_written_again(core, hostlet, ns):
    """As the kubelet's status manager reconciles with the apiserver: the node lifecycle
    controller marks a lost node's pods NotReady (only the condition, in the status
    subresource); a hostlet whose own status did not change since must still say Ready again,
    and a condition that holds carries no reason from when it did not (a bench run left a
    healed node's pod NotReady for good, its containers all ready)."""
    bare_pod(core, ns, "marked", app_container(18090))
    wait_ready(core, ns, "marked")
    marked = {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
              "message": "containers with unready status: [app]",
              "lastTransitionTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    core.patch_namespaced_pod_status("marked", ns, {"status": {"conditions": [marked]}})
    pod = wait_ready(core, ns, "marked", timeout=15)
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == ("True", None, None)
    assert pod.status.container_statuses[0].restart_count == 0  # nothing but the status was touched


def test_liveness_failure_restarts_the_container(core, hostlet, ns):
    liveness = {"httpGet": {"path": "/healthz", "port": 18082}, "periodSeconds": 1, "failureThreshold": 2}
    bare_pod(core, ns, "sick", app_container(18082, liveness=liveness), terminationGracePeriodSeconds=3)
    pod = wait_ready(core, ns, "sick")
    first = hostlet.process_of(ns, "sick")
    assert get(pod.status.pod_ip, 18082, "/healthz").status_code == 200
    assert pod.status.pod_ip.startswith("198.18.")
    session = requests.Session()
    session.trust_env = False
    session.post(f"http://{pod.status.pod_ip}:18082/sick", timeout=5)
    pod = wait_for(lambda: (lambda p: p if p.status.container_statuses[0].restart_count == 1 and is_ready(p) else None)(
        pod_status(core, ns, "sick")), timeout=30, what="restart after liveness failures")
    assert first.poll() is not None
    assert "got SIGTERM" in (hostlet.log_path(ns, "sick").parent / "0.log").read_text()  # killed gracefully
    reasons = {e.reason for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=sick").items}
    assert {"Unhealthy", "Killing", "Started"} <= reasons


def test_exiting_process_crash_loops_with_backoff(core, hostlet, ns):
    container = app_container(18083)
    container["args"] = []  # --port missing: the program exits 2 at once
    bare_pod(core, ns, "crash", container)
    seen = set()

    def looped():
        status = pod_status(core, ns, "crash").status.container_statuses
        if status and status[0].state.waiting:
            seen.add(status[0].state.waiting.reason)
        return status and status[0].restart_count >= 3 and "CrashLoopBackOff" in seen and status[0]

    started = time.monotonic()
    status = wait_for(looped, timeout=40, interval=0.1, what="3 restarts in CrashLoopBackOff")
    assert time.monotonic() - started >= 1 + 2  # back-off 0, 1, 2 s before restarts 1, 2, 3
    assert status.last_state.terminated.exit_code == 2
    assert not status.ready


def test_delete_is_graceful(core, hostlet, ns):
    bare_pod(core, ns, "bye", app_container(18084))
    wait_ready(core, ns, "bye")
    process, log = hostlet.process_of(ns, "bye"), hostlet.log_path(ns, "bye")
    core.delete_namespaced_pod("bye", ns)  # the default 30 s grace period
    wait_for(lambda: pod_status(core, ns, "bye") is None, timeout=20, what="pod finalized")
    assert process.wait(5) == 0
    assert "got SIGTERM" in log.read_text()


def test_grace_period_ends_in_sigkill(core, hostlet, ns):
    bare_pod(core, ns, "stubborn", app_container(18085, "--ignore-term"), terminationGracePeriodSeconds=2)
    wait_ready(core, ns, "stubborn")
    process, log = hostlet.process_of(ns, "stubborn"), hostlet.log_path(ns, "stubborn")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", ns)
    wait_for(lambda: pod_status(core, ns, "stubborn") is None, timeout=20, what="pod finalized")
    assert time.monotonic() - started >= 2
    assert process.wait(5) == -signal.SIGKILL
    assert "got SIGTERM" in log.read_text()


def test_unmapped_container_never_runs(core, hostlet, ns):
    bare_pod(core, ns, "foreign", {"name": "sh", "image": "busybox", "command": ["sh", "-c", "sleep 1000"]})
    status = wait_for(lambda: (lambda s: s and s[0].state.waiting and s[0].state.waiting.reason == "CreateContainerError"
                               and s[0])(pod_status(core, ns, "foreign").status.container_statuses),
                      timeout=20, what="CreateContainerError")
    assert "no local program" in status.state.waiting.message
    assert hostlet.process_of(ns, "foreign") is None
    assert pod_status(core, ns, "foreign").status.phase == "Pending"


def test_empty_dir_is_private_to_the_pod(core, hostlet, ns):
    target = f"/tmp/hostlet-test-{uuid.uuid4().hex[:8]}"
    container = app_container(18086, f"--write={target}")
    container["volumeMounts"] = [{"name": "scratch", "mountPath": target}]
    try:
        bare_pod(core, ns, "scratchy", container, volumes=[{"name": "scratch", "emptyDir": {}}])
        wait_ready(core, ns, "scratchy")
        worker = hostlet.worker(ns, "scratchy")
        assert (worker.dir / "volumes" / "scratch" / "written-by").read_text() == "scratchy"
        assert not Path(target, "written-by").exists()  # the mount did not leak to this machine
    finally:
        subprocess.run(["rmdir", target], capture_output=True)


def test_each_container_has_its_own_hostname_and_tmp(core, hostlet, ns):
    """As under a kubelet: the pod's name as hostname (controller-runtime's leader identity is
    ``<hostname>_<uuid>``) and a /tmp of its own, fresh each run (upstream's manager writes
    its serving certificate to /tmp/kruise-webhook-certs)."""
    private = f"/tmp/hostlet-test-{uuid.uuid4().hex[:8]}"
    names = ("own-a", "own-b")
    for port, name in zip((18090, 18091), names):
        container = app_container(port, f"--write={private}", "--show=HOSTNAME")
        bare_pod(core, ns, name, container)  # both on one node: one network, two hostnames
    for port, name in zip((18090, 18091), names):
        pod = wait_ready(core, ns, name)
        who = get(pod.status.pod_ip, port, "/whoami").json()
        assert who["hostname"] == who["env"]["HOSTNAME"] == name
        assert who["hostnameResolvesTo"] == pod.status.pod_ip  # its /etc/hosts names it, as a kubelet's does
        tmp = hostlet.worker(ns, name).dir / "app" / "tmp"
        assert (tmp / private.lstrip("/").split("/", 1)[1] / "written-by").read_text() == name
    assert not Path(private).exists()  # nothing written to this machine's /tmp
    tmp = hostlet.worker(ns, "own-a").dir / "app" / "tmp"
    (tmp / "left-by-the-first-run").write_text("x")
    hostlet.signal_pod(ns, "own-a", signal.SIGKILL)
    wait_for(lambda: (lambda p: p.status.container_statuses[0].restart_count == 1 and is_ready(p))(
        pod_status(core, ns, "own-a")), timeout=30, what="own-a restarted")
    assert not (tmp / "left-by-the-first-run").exists() and (tmp / Path(private).name).is_dir()  # a fresh /tmp


def test_stop_leaves_no_process_or_thread(local, core, ns):
    create_hostlet_nodes(local, ["hl-solo"], taints=[{"key": "hostlet-solo", "effect": "NoSchedule"}])
    solo = Hostlet(local, ["hl-solo"], programs=PROGRAMS, heartbeat_interval=2).start()
    mount_point = Path(f"/var/tmp/hostlet-test-{uuid.uuid4().hex[:8]}/deeper")
    container = app_container(18087)
    container["volumeMounts"] = [{"name": "scratch", "mountPath": str(mount_point)}]
    try:
        bare_pod(core, ns, "solo", container, node="hl-solo", volumes=[{"name": "scratch", "emptyDir": {}}],
                 tolerations=[{"key": "hostlet-solo", "operator": "Exists"}])
        wait_ready(core, ns, "solo")
        process = solo.process_of(ns, "solo")
        assert mount_point.is_dir()
    finally:
        started = time.monotonic()
        solo.stop()
    assert time.monotonic() - started < 15
    assert process.poll() is not None
    assert not mount_point.parent.exists()  # the mount points it made are gone
    assert not [t for t in solo._threads if t.is_alive()]
    assert not [w for w in solo.workers.values() if w.thread.is_alive()]


def test_refuses_kwok_nodes_and_clusters_without_hosts(local, core):
    core.create_node({"metadata": {"name": "kw-0", "annotations": {"kwok.x-k8s.io/node": "fake"}}})
    with pytest.raises(HostletError, match="kwok"):
        Hostlet(local, ["kw-0"]).start()
    with pytest.raises(HostletError, match="not a host"):
        core.create_node({"metadata": {"name": "nohost-0"}})
        Hostlet(local, ["nohost-0"]).start()


def manager_template(labels: dict) -> dict:
    """The manager's pod as the chart runs it (see the contract of the chart's container)."""
    def field(path: str) -> dict:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    probe = {"periodSeconds": 1, "failureThreshold": 3, "timeoutSeconds": 2}
    return {"metadata": {"labels": labels}, "spec": {
        "hostNetwork": True, "serviceAccountName": "kruise-manager", "terminationGracePeriodSeconds": 10,
        "containers": [{
            "name": "manager", "image": "openkruise/kruise-manager:test", "command": ["kruise-manager"],
            "args": ["--enable-leader-election", "--leader-election-namespace=$(POD_NAMESPACE)",
                     "--metrics-addr=:8080", "--health-probe-addr=:8000", "--role=all"],
            "env": [{"name": "POD_NAME", **field("metadata.name")}, {"name": "POD_NAMESPACE", **field("metadata.namespace")},
                    {"name": "WEBHOOK_PORT", "value": "9876"}, {"name": "WEBHOOK_CERT_DIR", "value": "/tmp/kruise-webhook-certs"}],
            "ports": [{"name": "webhook", "containerPort": 9876, "hostPort": 9876},
                      {"name": "health", "containerPort": 8000}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}, **probe},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "initialDelaySeconds": 5, **probe},
            "volumeMounts": [{"name": "certs", "mountPath": "/tmp/kruise-webhook-certs"}]}],
        "volumes": [{"name": "certs", "emptyDir": {}}]}}


def test_kruise_manager_pods_run_elect_a_leader_and_serve_the_webhook(local, hostlet, core, ns):
    """The manager image maps to ``python -m manager``: its replicas become Ready through their
    real /readyz, the Lease names a pod, and the apiserver calls their webhook via the Service."""
    from kubernetes import client

    from localcluster.fleet import Fleet

    api = local.api()
    fleet = Fleet(local, namespace="kruise-system").install(count=0)
    labels = {"control-plane": "controller-manager"}
    core.patch_namespaced_service("kruise-webhook-service", "kruise-system", {"spec": {"selector": labels}})
    client.AppsV1Api(api).create_namespaced_deployment("kruise-system", {
        "metadata": {"name": "kruise-controller-manager"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": manager_template(labels)}})
    try:
        def ready():
            pods = core.list_namespaced_pod("kruise-system", label_selector="control-plane=controller-manager").items
            return pods if len(pods) == 2 and all(is_ready(p) for p in pods) else None

        pods = wait_for(ready, timeout=120, what="2 ready manager pods")
        names = {p.metadata.name for p in pods}
        def holder():
            try:
                return fleet.lease()["holder"]
            except client.exceptions.ApiException:  # not created yet
                return None

        holder = wait_for(holder, timeout=30, what="a Lease holder")
        assert holder.split("_")[0] in names
        objects = client.CustomObjectsApi(api)
        objects.create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "logger"},
            "spec": {"selector": {"matchLabels": {"app": "logged"}},
                     "containers": [{"name": "logger", "image": "registry.local/logger:1"}]}})
        body = {"metadata": {"name": "logged", "labels": {"app": "logged"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}

        def injected():
            pod = core.create_namespaced_pod(ns, body, dry_run="All")  # the webhook runs on dry runs too
            return "logger" in [c.name for c in pod.spec.containers]

        wait_for(injected, timeout=30, what="the sidecar injected by a manager pod's webhook")
        for pod in pods:
            assert hostlet.process_of("kruise-system", pod.metadata.name).poll() is None
    finally:
        client.AppsV1Api(api).delete_namespaced_deployment("kruise-controller-manager", "kruise-system")
        wait_for(lambda: not core.list_namespaced_pod("kruise-system").items, timeout=60,
                 what="manager pods terminated")  # before their RBAC goes
        fleet.uninstall()


def test_init_containers_run_to_completion_first(core, hostlet, ns):
    write = "import os; open(os.path.join('/tmp/hostlet-init-shared', 'marker'), 'w').write('from init')"
    shared = {"name": "shared", "mountPath": "/tmp/hostlet-init-shared"}
    init = {"name": "prepare", "image": "x", "command": ["py", "-c", write], "volumeMounts": [shared]}
    container = app_container(18088)
    container["volumeMounts"] = [shared]
    bare_pod(core, ns, "initialized", container, initContainers=[init], volumes=[{"name": "shared", "emptyDir": {}}])
    pod = wait_ready(core, ns, "initialized")
    (status,) = pod.status.init_container_statuses
    assert status.state.terminated.exit_code == 0 and status.state.terminated.reason == "Completed"
    assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"
    assert (hostlet.worker(ns, "initialized").dir / "volumes" / "shared" / "marker").read_text() == "from init"

    failing = {"name": "prepare", "image": "x", "command": ["py", "-c", "raise SystemExit(3)"]}
    bare_pod(core, ns, "never", app_container(18089), initContainers=[failing], restartPolicy="Never")
    pod = wait_for(lambda: (lambda p: p if p.status.phase == "Failed" else None)(pod_status(core, ns, "never")),
                   timeout=20, what="pod Failed after its init container failed")
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 3
    assert pod.status.container_statuses[0].state.waiting is not None  # the app never started
    assert pod.status.container_statuses[0].restart_count == 0


def test_restart_policy_never_ends_in_a_phase(core, hostlet, ns):
    done = {"name": "job", "image": "x", "command": ["py", "-c", "print('done')"]}
    bare_pod(core, ns, "ok", done, restartPolicy="Never")
    failed = {"name": "job", "image": "x", "command": ["py", "-c", "raise SystemExit(4)"]}
    bare_pod(core, ns, "bad", failed, restartPolicy="OnFailure")
    pod = wait_for(lambda: (lambda p: p if p.status.phase == "Succeeded" else None)(pod_status(core, ns, "ok")),
                   timeout=20, what="pod Succeeded")
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
    assert "done" in hostlet.log_path(ns, "ok").read_text()
    pod = wait_for(lambda: (lambda p: p if p.status.container_statuses and p.status.container_statuses[0].restart_count >= 1
                            else None)(pod_status(core, ns, "bad")), timeout=20,
                   what="OnFailure restarts a failed container")  # no container status yet: keep waiting
    assert pod.status.phase == "Running"


CHART = Path(__file__).resolve().parents[1] / "charts" / "kruise"


def test_the_charts_manager_runs_on_hostlet_nodes(local, hostlet, core, ns):
    """The demo's path: the real helm installs the chart; the hostlet runs its replicas; they
    become Ready through /readyz, one leads, and their webhook injects a SidecarSet's sidecar."""
    from kubernetes import client

    release_ns = "kruise-chart"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(local.workdir), "KUBECONFIG": str(local.kubeconfig)}
    helm = [str(local.binary("helm")), "-n", release_ns]
    installed = subprocess.run([*helm, "install", "kruise", str(CHART), "--create-namespace",
                                "--set", "manager.replicas=2"], env=env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    try:
        def ready():
            pods = core.list_namespaced_pod(release_ns, label_selector="control-plane=controller-manager").items
            if any(s.restart_count for p in pods for s in p.status.container_statuses or []):
                pytest.fail(f"a replica restarted; its log: {hostlet.log_path(release_ns, pods[0].metadata.name)}")
            return pods if len(pods) == 2 and all(is_ready(p) for p in pods) else None

        pods = wait_for(ready, timeout=120, what="2 ready replicas from the chart")
        lease = client.CoordinationV1Api(local.api()).read_namespaced_lease("kruise-manager", release_ns)
        assert lease.spec.holder_identity.split("_")[0] in {p.metadata.name for p in pods}
        client.CustomObjectsApi(local.api()).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "chart-logger"},
            "spec": {"selector": {"matchLabels": {"app": "charted"}},
                     "containers": [{"name": "logger", "image": "registry.local/logger:1"}]}})
        body = {"metadata": {"name": "charted", "labels": {"app": "charted"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}
        wait_for(lambda: "logger" in [c.name for c in core.create_namespaced_pod(ns, body, dry_run="All").spec.containers],
                 timeout=30, what="the sidecar injected by the chart's manager")

        # The on-call view of this installation: the leader is a pod, on a node, in a zone.
        from click.testing import CliRunner

        from kruisectl.cli import cli

        def kruisectl(*args):
            return CliRunner().invoke(cli, [*args, "--kubeconfig", str(local.kubeconfig), "-n", release_ns],
                                      catch_exceptions=False)

        def status_with_both_endpoints():
            # Ready pods reach the Service's EndpointSlice through the endpoint-slice controller,
            # a moment later (a clean-clone run read one of two): wait for it, then check all.
            found = json.loads(kruisectl("status", "-o", "json").stdout)
            return found if len(found["webhook"]["readyEndpoints"]) == len(pods) else None

        report = wait_for(status_with_both_endpoints, timeout=30, what="both replicas in the webhook's endpoints")
        leader = report["leader"]
        assert leader["pod"] in {p.metadata.name for p in pods} and not leader["stale"]
        assert leader["node"] in NODES and leader["zone"] in ("zone-a", "zone-b", "zone-c")
        assert sorted(report["webhook"]["readyEndpoints"]) == sorted(p.status.pod_ip for p in pods)
        assert report["webhook"]["caBundle"] == "ok"
        result = kruisectl("webhook", "check", "-o", "json", "--probe-namespace", ns)
        findings = {f["check"]: f["level"] for f in json.loads(result.stdout)["findings"]}
        assert result.exit_code == 0, findings
        assert findings["probe/mutating"] == findings["probe/validating"] == "ok"
    finally:
        subprocess.run([*helm, "uninstall", "kruise", "--wait"], env=env, capture_output=True, timeout=120)
        wait_for(lambda: not core.list_namespaced_pod(release_ns).items, timeout=60, what="replicas terminated")


def test_the_hostlet_acts_as_each_node_and_no_more(local, hostlet, core):
    """Its credential is the node's: the Node authorizer lets it renew its own Lease, not
    another node's, and read no Secret that no pod of its needs."""
    from localcluster.hostlet import node_credential

    session = requests.Session()
    session.trust_env = False
    session.cert = tuple(str(p) for p in node_credential(local, "hl-0"))
    session.verify = str(local.ca_file)
    patch = {"headers": {"Content-Type": "application/strategic-merge-patch+json"}, "data": "{}", "timeout": 10}
    assert session.patch(f"{local.server}/api/v1/nodes/hl-0/status", **patch).status_code == 200
    leases = f"{local.server}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert session.get(f"{leases}/hl-0", timeout=10).status_code == 200
    assert session.get(f"{leases}/hl-1", timeout=10).status_code == 403
    assert session.get(f"{local.server}/api/v1/namespaces/kube-system/secrets", timeout=10).status_code == 403


def test_the_charts_split_roles_run_on_hostlet_nodes(local, hostlet, core, ns):
    """manager.role=split: webhook replicas behind the Service, controller replicas apart; the
    Lease is held by a controller pod and the webhook pods inject."""
    from kubernetes import client

    release_ns = "kruise-split"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(local.workdir), "KUBECONFIG": str(local.kubeconfig)}
    helm = [str(local.binary("helm")), "-n", release_ns]
    installed = subprocess.run([*helm, "install", "kruise", str(CHART), "--create-namespace", "--set",
                                "manager.role=split", "--set", "manager.replicas=2", "--set",
                                "manager.controllerReplicas=1"], env=env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    try:
        def ready(selector, count):
            pods = core.list_namespaced_pod(release_ns, label_selector=selector).items
            return pods if len(pods) == count and all(is_ready(p) for p in pods) else None

        webhooks = wait_for(lambda: ready("control-plane=controller-manager", 2), timeout=120, what="webhook replicas")
        (controller,) = wait_for(lambda: ready("control-plane=controller", 1), timeout=120, what="controller replica")
        lease = wait_for(lambda: (lambda l: l if l.spec.holder_identity else None)(
            client.CoordinationV1Api(local.api()).read_namespaced_lease("kruise-manager", release_ns)),
            timeout=30, what="a leader")
        assert lease.spec.holder_identity.split("_")[0] == controller.metadata.name
        endpoints = core.read_namespaced_endpoints("kruise-webhook-service", release_ns)
        assert sorted(a.ip for s in endpoints.subsets for a in s.addresses) == sorted(p.status.pod_ip for p in webhooks)
        client.CustomObjectsApi(local.api()).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "split-logger"},
            "spec": {"selector": {"matchLabels": {"app": "split"}},
                     "containers": [{"name": "logger", "image": "registry.local/logger:1"}]}})
        body = {"metadata": {"name": "split", "labels": {"app": "split"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}
        wait_for(lambda: "logger" in [c.name for c in core.create_namespaced_pod(ns, body, dry_run="All").spec.containers],
                 timeout=30, what="the sidecar injected by the webhook replicas")
        client.CustomObjectsApi(local.api()).delete_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets",
                                                                          "split-logger")
    finally:
        subprocess.run([*helm, "uninstall", "kruise", "--wait"], env=env, capture_output=True, timeout=120)
        wait_for(lambda: not core.list_namespaced_pod(release_ns).items, timeout=60, what="replicas terminated")


def test_memory_limit_is_enforced_by_the_kernel(core, hostlet, ns):
    require("memory", hostlet.memory_limits_unavailable)
    hog = {"name": "hog", "image": "x", "command": ["py", "-c", "import time; b = bytearray(300 << 20); time.sleep(60)"],
           "resources": {"limits": {"memory": "64Mi"}}}
    bare_pod(core, ns, "hog", hog, restartPolicy="Never")
    pod = wait_for(lambda: (lambda p: p if p and p.status.phase == "Failed" else None)(pod_status(core, ns, "hog")),
                   timeout=30, what="the pod over its memory limit Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    fits = {"name": "fits", "image": "x", "command": ["py", "-c", "b = bytearray(8 << 20); print('ok')"],
            "resources": {"limits": {"memory": "64Mi"}}}
    bare_pod(core, ns, "fits", fits, restartPolicy="Never")
    pod = wait_for(lambda: (lambda p: p if p and p.status.phase == "Succeeded" else None)(pod_status(core, ns, "fits")),
                   timeout=30, what="the pod within its memory limit Succeeded")
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
