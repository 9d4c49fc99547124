"""Pod-create latency added by the pod webhook: this project's manager against upstream's Go
kruise-manager and a minimal Go webhook that returns the same patch as ours, in ONE run on ONE
cluster, so the machine's drift hits every side alike, for two kinds of pods:

- ``template``: pods identical but for their name, as a ReplicaSet makes them. After the first
  of each second our manager answers them from its memo (``manager/memo.py``);
- ``distinct``: every request differs from every other (a sequence label), so the memo can
  reuse no answer, and their answers come in ``--shapes`` shapes: different container sets
  and env, selected by different SidecarSets (one per shape, one more for the odd shapes).
  Our replicas' memo metrics must show only first encounters for them (no hit, miss or
  probe), or the bench fails.

    python bench/webhook_latency.py [--rounds 20] [--per-round 100] [--c1-rounds 20] [--c1-per-round 40] [--shapes 10] [--skip-upstream]

Sides, each behind the same Service (``kruise-webhook-service``) and the same certificate:

- ``floor``: creates in a namespace the pod webhook's namespaceSelector excludes (no webhook);
- ``go``: ``bench/samepatch`` (net/http, HTTP/2 offered) answering each review with an answer
  our manager gave, captured at the start of the run, so it returns the same patch whatever
  the injection rules are and computes none: a template pod gets the template pod's answer;
  a distinct pod the answer captured for a pod of its shape (checked, when captured, to be
  the same for two pods of a shape but for injection's timestamps). It stands for the cost
  of a Go webhook that returns this patch, not for a Go injection;
- ``ours``: three ``python -m manager`` replicas (this checkout);
- ``upstream``: upstream's kruise-manager v1.8.3 (``localcluster.upstream``: built from the
  Go module, installed from its own kustomize files, three replicas on hostlet nodes),
  injecting the same SidecarSet.

Only one side serves at a time: the Service's EndpointSlice names the serving side's
addresses, and after a swap the previous side's connections are cut (``ss -K`` in its
network namespaces), so the apiserver, which resolves the Service when it dials, reconnects
to the new side. Rounds interleave the sides (``--rounds`` at concurrency 50, then
``--c1-rounds`` at concurrency 1); in its turn a side gets a warm-up of both kinds, then
a round of each kind (which kind first alternates). Creates are server-side dry runs
(``dryRun=All``: every admission step runs, nothing is stored), so thousands of them neither
pile up pods nor wake the managers' controllers. Each side's processes' CPU is read from
/proc around its own rounds, and each replica's share of the admissions from its metrics.

Final line: per kind, added p50/p99 (side minus that kind's floor) per side at concurrency 50
and 1, ratios of ours over upstream and over go, CPU per admission per side; our memo's
counts per kind, replica shares, errors. A timed create that fails or is not injected as
expected, a request served by a side that was not serving, a metric or process that cannot be
read, or a distinct pod that is not a first encounter of our memo makes the exit status 1 (the
figures are printed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubekit import paths  # noqa: E402
from kubekit.api import ApiError, Client  # noqa: E402
from localcluster import build  # noqa: E402
from localcluster.cluster import ClusterOptions, LocalCluster  # noqa: E402
from localcluster.fleet import METRICS_PORT, Fleet  # noqa: E402
from localcluster.hostlet import Hostlet, create_hostlet_nodes  # noqa: E402
from localcluster.upstream import build_upstream, install_upstream, programs  # noqa: E402

NAMESPACE = "kruise-system"
SERVICE = "kruise-webhook-service"
SECRET = "kruise-webhook-certs"
MUTATING = "kruise-mutating-webhook-configuration"
POD_WEBHOOK = "mpod.kb.io"
WEBHOOK_PORT = 9876
WITH, FLOOR_NS = "bench-with", "bench-floor"
SIDES = ("floor", "go", "ours", "upstream")
KINDS = ("template", "distinct")
SHAPE_LABEL = "bench-shape"
MEMO_RESULTS = ("hit", "first", "miss", "bypass", "probe")
UPSTREAM_NODES = ("up-0", "up-1", "up-2")
OUR_ACCOUNT = "kruise-manager-py"  # beside upstream's ServiceAccount and Lease in the same namespace
BENCH_SLICE = f"{SERVICE}-bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc); a process that is gone is an error,
    not zero CPU."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError as err:
        raise RuntimeError(f"process {pid} of a side is gone: {err}") from None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _patch_ops(response: dict) -> list[dict]:
    return json.loads(base64.b64decode(response["patch"])) if response.get("patch") else []


def _injected(response: dict) -> set[str]:
    """The names of the containers an answer's patch sets."""
    return {c.get("name") for op in _patch_ops(response) if op.get("path") == "/spec/containers"
            for c in op.get("value") or []}


def _timeless(response: dict) -> str:
    """An answer with injection's timestamps (the hash annotations' updateTimestamp) blanked."""
    return _TIMESTAMP.sub("T", json.dumps({**response, "patch": _patch_ops(response)}, sort_keys=True))


def build_samepatch(log=sys.stderr) -> Path:
    """bench/samepatch built with this machine's Go, cached under .cache/bin by its source."""
    source = ROOT / "bench" / "samepatch"
    digest = hashlib.sha256(build._go_version().encode())
    for name in ("go.mod", "main.go"):
        digest.update((source / name).read_bytes())
    binary = build.CACHE_DIR / "bin" / f"samepatch-{digest.hexdigest()[:12]}" / "samepatch"
    if not binary.is_file():
        print(f"building {binary}", file=log)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=source, check=True,
                       env={**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"})
    return binary


class Side:
    """One server: its hosts, its processes (pid per replica) and how to count its admissions."""

    def __init__(self, name: str, hosts: list, pids: list[int], counter):
        self.name, self.hosts, self.pids, self.counter = name, hosts, pids, counter

    def cpu(self) -> list[float]:
        return [cpu_seconds(pid) for pid in self.pids]

    def admissions(self) -> list[float]:
        return [self.counter(host) for host in self.hosts]

    def cut_connections(self) -> None:
        """Close every connection to its webhook port (the apiserver redials the Service)."""
        for host in self.hosts:
            subprocess.run(host.wrap(["ss", "-K", "state", "established", "sport", "=", f":{WEBHOOK_PORT}"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _read(url: str, context=None) -> str:
    """A metrics page; three failures in a row are an error (an unread count is not zero)."""
    for attempt in range(3):
        try:
            return urllib.request.urlopen(url, timeout=5, context=context).read().decode()
        except OSError as err:
            if attempt == 2:
                raise RuntimeError(f"cannot read {url}: {err}") from None
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _metric_sum(url: str, prefix: str, must_contain: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in _read(url).splitlines()
               if line.startswith(prefix) and must_contain in line)


def ours_count(host) -> float:
    return _metric_sum(f"http://{host.ip}:{METRICS_PORT}/metrics", "kruise_manager_webhook_requests_total{",
                       'path="/mutate-pod"')


def ours_connections(hosts) -> float:
    return sum(_metric_sum(f"http://{h.ip}:{METRICS_PORT}/metrics", "kruise_manager_webhook_connections_total", "")
               for h in hosts)


def upstream_count(host) -> float:
    return _metric_sum(f"http://{host.ip}:8080/metrics", "controller_runtime_webhook_requests_total{",
                       'webhook="/mutate-pod"')


def ours_memo(hosts) -> dict[str, float]:
    """Our replicas' memo outcomes (hit, first, miss, bypass) and probes, summed."""
    counts = dict.fromkeys(MEMO_RESULTS, 0.0)
    for host in hosts:
        for line in _read(f"http://{host.ip}:{METRICS_PORT}/metrics").splitlines():
            if line.startswith("kruise_manager_webhook_memo_answers_total{"):
                result = re.search(r'result="([a-z]+)"', line).group(1)
                counts[result] = counts.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
            elif line.startswith("kruise_manager_webhook_memo_probes_total "):
                counts["probe"] += float(line.rsplit(" ", 1)[1])
    return counts


def go_count(host) -> float:
    context = ssl._create_unverified_context()  # the bench's own server; only a counter is read
    return float(_read(f"https://{host.ip}:{WEBHOOK_PORT}/requests", context))


class Bench:
    def __init__(self, args):
        self.args = args
        self.cluster: LocalCluster | None = None
        self.hostlet: Hostlet | None = None
        self.fleet: Fleet | None = None
        self.go_process: subprocess.Popen | None = None
        self.sides: dict[str, Side] = {}
        self.serving: str | None = None
        self.errors: list[str] = []
        self.warmup_errors: list[str] = []
        self.misrouted = 0
        self.shapes = args.shapes

    # ---- set-up --------------------------------------------------------------------------
    def cluster_options(self) -> ClusterOptions:
        return ClusterOptions(scheduler=True, controller_manager=True, network=True)

    def install_managers(self) -> None:
        """The cluster, upstream's three replicas (unless --skip-upstream) and ours."""
        with_upstream = not self.args.skip_upstream
        built = build_upstream() if with_upstream else None
        self.cluster = LocalCluster.start(self.cluster_options())
        self.api = Client.from_kubeconfig(str(self.cluster.kubeconfig), user_agent="webhook-bench",
                                          pool_size=2 * max(50, self.args.concurrency))
        if with_upstream:
            create_hostlet_nodes(self.cluster, list(UPSTREAM_NODES), zones=("zone-a", "zone-b", "zone-c"))
            self.hostlet = Hostlet(self.cluster, list(UPSTREAM_NODES), programs=programs(built)).start()
            install = install_upstream(self.cluster, built, replicas=3)
            upstream_pods = [p for p in self.api.get(paths.pods(NAMESPACE),
                                                     labelSelector="control-plane=controller-manager")["items"]
                             if not p["metadata"].get("deletionTimestamp")]
            hosts = [self.cluster.net.hosts[p["spec"]["nodeName"]] for p in upstream_pods]
            pids = [self.hostlet.process_of(NAMESPACE, p["metadata"]["name"], "manager").pid for p in upstream_pods]
            self.sides["upstream"] = Side("upstream", hosts, pids, upstream_count)
            print(f"upstream ready in {install.ready_s:.0f}s", file=sys.stderr)
            # Ours beside it: its own ServiceAccount and Lease, upstream's Secret (read only).
            self.fleet = Fleet(self.cluster, namespace=NAMESPACE, account=OUR_ACCOUNT, lease_id=OUR_ACCOUNT,
                               extra_args=("--webhook-cert-mode=external", f"--leader-election-id={OUR_ACCOUNT}",
                                           *self.args.manager_arg))
            self.fleet.install(3, webhook_objects=False)
        else:  # ours installs the Service, the Secret and the webhook configurations
            self.fleet = Fleet(self.cluster, namespace=NAMESPACE, extra_args=tuple(self.args.manager_arg)).install(3)
        self.fleet.start_all()
        self.fleet.wait_ready(timeout=90)
        self.sides["ours"] = Side("ours", [r.host for r in self.fleet.replicas],
                                  [r.process.pid for r in self.fleet.replicas], ours_count)

    def setup(self) -> None:
        with_upstream = not self.args.skip_upstream
        samepatch = build_samepatch()
        self.install_managers()
        secret = self._wait_secret()

        for ns, labels in ((WITH, {}), (FLOOR_NS, {})):
            self.api.request("POST", paths.namespaces(), body={"metadata": {"name": ns, "labels": labels}})
        self._exclude_floor_namespace()
        self._take_over_service()
        self.serve("ours")
        for sidecarset in self.sidecarsets():
            self.api.request("POST", paths.sidecarsets(), body=sidecarset)
        answers = {"default": self._capture_answer(secret, self.template_pod(0), {"side"}),
                   "label": SHAPE_LABEL, "byLabel": {}}
        for shape in range(self.shapes):
            first, second = (self._capture_answer(secret, self.distinct_pod(shape, f"capture-{c}-{shape}"),
                                                  self.expected(shape)) for c in "ab")
            if _timeless(first) != _timeless(second):
                raise RuntimeError(f"two pods of shape {shape} got different patches from our manager: "
                                   "the Go side cannot answer distinct pods from one capture per shape")
            answers["byLabel"][f"s{shape}"] = first
        go_host = self.cluster.add_host("bench-samepatch")
        certs = self.cluster.workdir / "samepatch"
        certs.mkdir(exist_ok=True)
        for key in ("tls.crt", "tls.key"):
            (certs / key).write_bytes(secret[key])
        (certs / "answer.json").write_text(json.dumps(answers))
        with open(self.cluster.workdir / "samepatch.log", "ab") as log:
            self.go_process = subprocess.Popen(go_host.wrap(
                [str(samepatch), f"{go_host.ip}:{WEBHOOK_PORT}", str(certs / "tls.crt"), str(certs / "tls.key"),
                 str(certs / "answer.json")]), stdout=log, stderr=subprocess.STDOUT)
        self.sides["go"] = Side("go", [go_host], [self.go_process.pid], go_count)
        self.sides["floor"] = Side("floor", [], [], lambda host: 0.0)
        if not with_upstream:
            self.sides["upstream"] = Side("upstream", [], [], lambda host: 0.0)
        self._wait_for_injection()

    def _wait_secret(self, timeout: float = 60) -> dict[str, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.api.get(paths.secrets(NAMESPACE, SECRET)).get("data") or {}
                if all(data.get(k) for k in ("ca-cert.pem", "tls.crt", "tls.key")):
                    return {k: base64.b64decode(v) for k, v in data.items()}
            except ApiError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Secret {SECRET} has no serving certificate")
            time.sleep(0.5)

    def _exclude_floor_namespace(self) -> None:
        """The pod webhook skips the floor's namespace: in the live webhooks and in upstream's
        template annotation (which its controller rebuilds the configuration from)."""
        path = paths.mutating_webhook_configurations(MUTATING)
        selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                          "values": [FLOOR_NS]}]}
        for _ in range(10):
            config = self.api.get(path)
            for webhook in config["webhooks"]:
                if webhook["name"] == POD_WEBHOOK:
                    webhook["namespaceSelector"] = selector
            annotations = config["metadata"].get("annotations") or {}
            if annotations.get("template"):
                template = json.loads(annotations["template"])
                for webhook in template:
                    if webhook["name"] == POD_WEBHOOK:
                        webhook["namespaceSelector"] = selector
                annotations["template"] = json.dumps(template)
            try:
                self.api.request("PUT", path, body=config)
                return
            except ApiError as err:
                if err.status != 409:
                    raise
        raise RuntimeError(f"could not update {MUTATING}")

    def _take_over_service(self) -> None:
        """The Service without its selector, so only the bench's EndpointSlice names endpoints."""
        self.api.request("PATCH", paths.services(NAMESPACE, SERVICE), body={"spec": {"selector": None}},
                         content_type="application/merge-patch+json")
        service = self.api.get(paths.services(NAMESPACE, SERVICE))
        self.port_name = service["spec"]["ports"][0].get("name", "")
        try:
            self.api.request("DELETE", paths.endpoints(NAMESPACE, SERVICE))
        except ApiError as err:
            if err.status != 404:
                raise

    def _foreign_slices(self) -> list[str]:
        slices = self.api.get(paths.endpoint_slices(NAMESPACE),
                              labelSelector=f"kubernetes.io/service-name={SERVICE}")["items"]
        return [s["metadata"]["name"] for s in slices if s["metadata"]["name"] != BENCH_SLICE]

    def serve(self, name: str) -> None:
        """Point the Service at ``name``'s addresses only; cut the previous side's connections."""
        if name == self.serving or name == "floor":
            return
        body = {"metadata": {"name": BENCH_SLICE, "labels": {"kubernetes.io/service-name": SERVICE}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [h.ip], "conditions": {"ready": True}} for h in self.sides[name].hosts],
                "ports": [{"name": self.port_name, "port": WEBHOOK_PORT, "protocol": "TCP"}]}
        try:
            self.api.request("PUT", paths.endpoint_slices(NAMESPACE, BENCH_SLICE), body=body)
        except ApiError as err:
            if err.status != 404:
                raise
            self.api.request("POST", paths.endpoint_slices(NAMESPACE), body=body)
        for foreign in self._foreign_slices():
            self.api.request("DELETE", paths.endpoint_slices(NAMESPACE, foreign))
        time.sleep(1.0)  # the apiserver's EndpointSlice informer
        if self.serving is not None:
            self.sides[self.serving].cut_connections()
        self.serving = name
        time.sleep(0.3)

    def _capture_answer(self, secret: dict[str, bytes], body: dict, sidecars: set[str]) -> dict:
        """Our manager's answer for a pod, as the apiserver would ask for it: the pod as admitted
        without webhooks (a dry run in the floor namespace), POSTed to a replica, once the
        answer injects ``sidecars``."""
        pod = self.api.request("POST", paths.pods(FLOOR_NS), body=body, dryRun="All")
        for field in ("uid", "creationTimestamp", "resourceVersion"):
            pod["metadata"].pop(field, None)
        pod["metadata"]["namespace"] = WITH
        pod.pop("status", None)
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "capture", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"], "namespace": WITH, "operation": "CREATE",
            "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": True,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}
        context = ssl.create_default_context(cadata=secret["ca-cert.pem"].decode())
        context.check_hostname = False  # the replica's address, its certificate names the Service
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(f"https://{self.fleet.replicas[0].ip}:{WEBHOOK_PORT}/mutate-pod",
                                             data=json.dumps(review).encode(),
                                             headers={"Content-Type": "application/json"})
            response = json.loads(urllib.request.urlopen(request, timeout=10, context=context).read())["response"]
            if sidecars <= _injected(response) or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the SidecarSets are not in the replica's cache yet
        if not sidecars <= _injected(response):
            raise RuntimeError(f"our manager did not inject {sorted(sidecars)} into {pod['metadata']['name']}: "
                               f"{str(response)[:300]}")
        response.pop("uid")
        print(f"captured our answer for {pod['metadata']['name']}: {len(json.loads(base64.b64decode(response['patch'])))} "
              f"patch operations, {len(base64.b64decode(response['patch']))} bytes", file=sys.stderr)
        return response

    def _wait_for_injection(self, timeout: float = 60) -> None:
        """Every side injects a template pod and a pod of every shape as expected."""
        for name in ("go", "upstream", "ours"):
            if not self.sides[name].hosts:
                continue
            self.serve(name)
            deadline = time.monotonic() + timeout
            while not all([self.create(WITH, "template", check=True)[1]]
                          + [self.create(WITH, "distinct", check=True)[1] for _ in range(self.shapes)]):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: pods are not injected: {self.errors[-1:]}")
                time.sleep(0.5)
            self.errors.clear()

    # ---- load ----------------------------------------------------------------------------
    # No ServiceAccount token volume (its random name would make each pod's patch differ from
    # the captured one) and no scheduler (nothing would run the pods anyway).
    @staticmethod
    def template_pod(n: int) -> dict:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"bench-{n}", "labels": {"app": "bench"}},
                "spec": {"automountServiceAccountToken": False, "schedulerName": "bench-none",
                         "containers": [{"name": "app", "image": "registry.local/app:1"}]}}

    @staticmethod
    def distinct_pod(shape: int, seq: str) -> dict:
        """A pod of ``shape`` (1-3 containers with their own images and env, selected by the
        shape's SidecarSets) whose ``bench-seq`` label makes its request unlike any other."""
        containers = [{"name": f"app-{j}", "image": f"registry.local/app-{shape}-{j}:1",
                       "env": [{"name": "SHAPE", "value": f"s{shape}"},
                               {"name": f"OPTION_{j}", "value": "v" * (8 * (shape + 1))}]}
                      for j in range(1 + shape % 3)]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"bench-{seq}",
                             "labels": {"app": "bench-distinct", SHAPE_LABEL: f"s{shape}", "bench-seq": seq}},
                "spec": {"automountServiceAccountToken": False, "schedulerName": "bench-none",
                         "containers": containers}}

    def sidecarsets(self) -> list[dict]:
        """One for the template pods, one per shape, and one more for the odd shapes."""
        def sidecarset(name: str, selector: dict, container: dict, volumes: list | None = None) -> dict:
            return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
                    "spec": {"selector": selector, "containers": [container], "volumes": volumes or []}}
        found = [sidecarset("bench", {"matchLabels": {"app": "bench"}},
                            {"name": "side", "image": "registry.local/side:1"})]
        for shape in range(self.shapes):
            found.append(sidecarset(
                f"bench-shape-{shape}", {"matchLabels": {SHAPE_LABEL: f"s{shape}"}},
                {"name": f"side-{shape}", "image": f"registry.local/side-{shape}:1",
                 "env": [{"name": "LEVEL", "value": "info"}],
                 "volumeMounts": [{"name": f"conf-{shape}", "mountPath": "/etc/side"}]},
                [{"name": f"conf-{shape}", "emptyDir": {}}]))
        odd = [f"s{shape}" for shape in range(1, self.shapes, 2)]
        found.append(sidecarset("bench-odd", {"matchExpressions": [{"key": SHAPE_LABEL, "operator": "In",
                                                                    "values": odd}]},
                                {"name": "side-odd", "image": "registry.local/side-odd:1"}))
        return found

    @staticmethod
    def expected(shape: int | None) -> set[str]:
        """The sidecars a pod of ``shape`` (None: a template pod) must get."""
        if shape is None:
            return {"side"}
        return {f"side-{shape}"} | ({"side-odd"} if shape % 2 else set())

    _counter = iter(range(10**9))
    _lock = threading.Lock()

    def create(self, namespace: str, kind: str, check: bool) -> tuple[float, bool]:
        """One dry-run create of a ``kind`` pod: seconds taken, and whether it got the sidecars
        it must get (every failure, and with ``check`` every pod without them, is an error)."""
        with self._lock:
            n = next(self._counter)
        shape = None if kind == "template" else n % self.shapes
        body = self.template_pod(n) if shape is None else self.distinct_pod(shape, str(n))
        started = time.perf_counter()
        try:
            pod = self.api.request("POST", paths.pods(namespace), body=body, timeout=30,
                                   dryRun="All")
        except ApiError as err:
            self.errors.append(f"{kind} ({self.serving}): {str(err)[:300]}")
            return time.perf_counter() - started, False
        elapsed = time.perf_counter() - started
        injected = self.expected(shape) <= {c["name"] for c in pod["spec"]["containers"]}
        if check and not injected:
            self.errors.append(f"{kind} pod not injected as expected ({self.serving})")
        return elapsed, injected

    def rounds(self, concurrency: int, rounds: int, per_round: int) -> dict:
        """Per kind: each side's create times, its processes' CPU and admissions in its own
        timed rounds, our replicas' accepted connections and memo outcomes."""
        runs = {kind: {"samples": {side: [] for side in SIDES},
                       "cpu": {side: [0.0] * len(self.sides[side].pids) for side in SIDES},
                       "admitted": {side: [0.0] * len(self.sides[side].hosts) for side in SIDES},
                       "connections": 0.0, "memo": dict.fromkeys(MEMO_RESULTS, 0.0)} for kind in KINDS}
        ours = self.sides["ours"].hosts
        with ThreadPoolExecutor(concurrency) as pool:
            for r in range(rounds):
                order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]  # rotate: no side always first
                kinds = KINDS if r % 2 == 0 else KINDS[::-1]
                for side in order:
                    if side != "floor" and not self.sides[side].hosts:
                        continue  # --skip-upstream
                    namespace = FLOOR_NS if side == "floor" else WITH
                    self.serve(side)
                    kept = len(self.errors)
                    list(pool.map(lambda i: self.create(namespace, KINDS[i % 2], side != "floor"),
                                  range(max(concurrency, 10))))
                    self.warmup_errors += self.errors[kept:]  # reported apart: right after a swap
                    del self.errors[kept:]
                    for kind in kinds:
                        run = runs[kind]
                        before = {s: (self.sides[s].cpu(), self.sides[s].admissions()) for s in SIDES}
                        if side == "ours":
                            accepted, memo = ours_connections(ours), ours_memo(ours)
                        results = list(pool.map(lambda _: self.create(namespace, kind, side != "floor"),
                                                range(per_round)))
                        time.sleep(0.1)  # servers count an admission after sending its answer
                        if side == "ours":
                            run["connections"] += ours_connections(ours) - accepted
                            after = ours_memo(ours)
                            for result in MEMO_RESULTS:
                                run["memo"][result] += after[result] - memo[result]
                        run["samples"][side] += [elapsed for elapsed, _ in results]
                        for s in SIDES:
                            cpu_now, count_now = self.sides[s].cpu(), self.sides[s].admissions()
                            delta = [b - a for a, b in zip(before[s][1], count_now)]
                            if s == side:
                                run["cpu"][s] = [c + b - a for c, a, b in zip(run["cpu"][s], before[s][0], cpu_now)]
                                run["admitted"][s] = [x + d for x, d in zip(run["admitted"][s], delta)]
                            else:
                                self.misrouted += int(sum(d for d in delta if d > 0))
        return runs

    # ---- report --------------------------------------------------------------------------
    @staticmethod
    def summarise(run: dict) -> dict:
        """One kind's figures in one phase."""
        ms = lambda s: round(s * 1000, 3)  # noqa: E731
        floor = run["samples"]["floor"]
        added = {}
        for side in ("go", "ours", "upstream"):
            with_ = run["samples"][side]
            if not with_:
                added[side] = {"p50": None, "p99": None}
                continue
            added[side] = {"p50": ms(statistics.median(with_) - statistics.median(floor)),
                           "p99": ms(percentile(with_, 0.99) - percentile(floor, 0.99))}
        cpu = {}
        shares = {}
        for side in ("go", "ours", "upstream"):
            admitted = run["admitted"][side]
            total = sum(admitted)
            # CPU per admission counted by the side itself: no count, no figure
            cpu[side] = round(sum(run["cpu"][side]) * 1000 / total, 3) if total else None
            shares[side] = [round(a / total, 3) for a in admitted] if total else None
        ours_admitted = sum(run["admitted"]["ours"])
        return {"floor_p50_ms": ms(statistics.median(floor)), "floor_p99_ms": ms(percentile(floor, 0.99)),
                "added": added, "cpu_ms_per_admission": cpu, "shares": shares,
                "admitted": {s: round(sum(run["admitted"][s])) for s in ("go", "ours", "upstream")},
                "replica_cpu_s": {s: [round(c, 2) for c in run["cpu"][s]] for s in ("go", "ours", "upstream")},
                "creates_per_side": len(floor),
                "ours_connections_per_admission": round(run["connections"] / ours_admitted, 3) if ours_admitted else None,
                "ours_memo": {k: round(v) for k, v in run["memo"].items()}}

    def stop(self) -> None:
        if self.go_process is not None and self.go_process.poll() is None:
            self.go_process.kill()
            self.go_process.wait()
        if self.fleet is not None:
            self.fleet.stop_all()
        if self.hostlet is not None:
            self.hostlet.stop()
        if self.cluster is not None:
            self.cluster.stop()


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b is not None and b > 0 else None


def kind_figures(high: dict, low: dict) -> dict:
    """One kind's figures at the bench's concurrency (``high``) and at 1 (``low``)."""
    a, b = high["added"], low["added"]
    return {
        "added_p50_ms": {s: a[s]["p50"] for s in a}, "added_p99_ms": {s: a[s]["p99"] for s in a},
        "ratio_p50_vs_upstream": ratio(a["ours"]["p50"], a["upstream"]["p50"]),
        "ratio_p99_vs_upstream": ratio(a["ours"]["p99"], a["upstream"]["p99"]),
        "ratio_p50_vs_go": ratio(a["ours"]["p50"], a["go"]["p50"]),
        "ratio_p99_vs_go": ratio(a["ours"]["p99"], a["go"]["p99"]),
        "c1_added_p50_ms": {s: b[s]["p50"] for s in b}, "c1_added_p99_ms": {s: b[s]["p99"] for s in b},
        "c1_ratio_p50_vs_upstream": ratio(b["ours"]["p50"], b["upstream"]["p50"]),
        "c1_ratio_p99_vs_upstream": ratio(b["ours"]["p99"], b["upstream"]["p99"]),
        "c1_ratio_p50_vs_go": ratio(b["ours"]["p50"], b["go"]["p50"]),
        "c1_ratio_p99_vs_go": ratio(b["ours"]["p99"], b["go"]["p99"]),
        "server_cpu_ms_per_admission": high["cpu_ms_per_admission"],
        "c1_server_cpu_ms_per_admission": low["cpu_ms_per_admission"],
        "floor_p50_ms": high["floor_p50_ms"], "c1_floor_p50_ms": low["floor_p50_ms"],
        "replica_share": high["shares"],
    }


def memo_problems(kind: str, phases: list[dict]) -> tuple[dict, list[str]]:
    """Our memo's outcomes for one kind over both phases, and what contradicts the kind: a
    distinct pod must be a first encounter each (no hit, miss, bypass or probe), one per
    admission."""
    memo = {k: sum(phase["ours_memo"][k] for phase in phases) for k in MEMO_RESULTS}
    admitted = sum(phase["admitted"]["ours"] for phase in phases)
    answered = memo["hit"] + memo["first"] + memo["miss"] + memo["bypass"]
    memo["admissions"] = admitted
    memo["hit_share"] = round(memo["hit"] / answered, 3) if answered else None
    problems = []
    if answered != admitted:
        problems.append(f"{kind}: our memo answered {answered} pods, our webhook counted {admitted} admissions")
    if kind == "distinct" and (memo["hit"] or memo["miss"] or memo["bypass"] or memo["probe"]):
        problems.append(f"distinct pods: {memo['hit']} memo hits, {memo['miss']} misses, {memo['bypass']} "
                        f"bypasses and {memo['probe']} probes, 0 expected (each a first encounter)")
    if kind == "distinct" and not admitted:
        problems.append("distinct pods: our replicas counted no admission")
    return memo, problems


def add_round_arguments(parser, rounds: int, per_round: int, c1_rounds: int, c1_per_round: int) -> None:
    """The load's shape, shared by the benches that take turns this way."""
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=rounds, help="rounds per side at --concurrency")
    parser.add_argument("--per-round", type=int, default=per_round,
                        help="creates per side, kind and round at --concurrency")
    parser.add_argument("--c1-rounds", type=int, default=c1_rounds, help="rounds per side at concurrency 1")
    parser.add_argument("--c1-per-round", type=int, default=c1_per_round,
                        help="creates per side, kind and round at concurrency 1")


def rounds_problem(args) -> bool:
    """True (and says so) when a count of add_round_arguments is below 1, or ``ss`` is missing."""
    if min(args.concurrency, args.rounds, args.per_round, args.c1_rounds, args.c1_per_round) < 1:
        print("error: every count must be at least 1", file=sys.stderr)
        return True
    if not shutil.which("ss"):
        print("error: the bench needs iproute2's ss to cut connections between rounds", file=sys.stderr)
        return True
    return False


def finish(figures: dict, bench, problems: list[str], started: float) -> int:
    """Print the final JSON line (the figures, then what went wrong) and exit 1 on a problem."""
    print(json.dumps({**figures, "errors": len(bench.errors), "warmup_errors": len(bench.warmup_errors),
                      "misrouted": bench.misrouted, "problems": problems, "run_s": round(time.monotonic() - started)}))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_arguments(parser, rounds=20, per_round=100, c1_rounds=20, c1_per_round=40)
    parser.add_argument("--shapes", type=int, default=10, help="shapes of the distinct pods (at least 2)")
    parser.add_argument("--manager-arg", action="append", default=[], metavar="ARG",
                        help="an extra flag for our replicas (repeatable), e.g. --manager-arg=--webhook-max-requests-per-connection=0")
    parser.add_argument("--skip-upstream", action="store_true",
                        help="only the floor, go and ours (a quicker run; the ratios to upstream stay null)")
    args = parser.parse_args()
    if rounds_problem(args):
        return 2
    if args.shapes < 2:
        print("error: --shapes must be at least 2 (one SidecarSet selects the odd shapes)", file=sys.stderr)
        return 2
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.setup()
        print(f"set up in {time.monotonic() - started:.0f}s", file=sys.stderr)
        runs = bench.rounds(args.concurrency, args.rounds, args.per_round)
        high = {kind: Bench.summarise(runs[kind]) for kind in KINDS}
        print(json.dumps({"concurrency": args.concurrency, **high}), file=sys.stderr)
        runs = bench.rounds(1, args.c1_rounds, args.c1_per_round)
        low = {kind: Bench.summarise(runs[kind]) for kind in KINDS}
        print(json.dumps({"concurrency": 1, **low}), file=sys.stderr)
    finally:
        bench.stop()
    for error in sorted(set(bench.errors + bench.warmup_errors))[:5]:
        print(f"error: {error}", file=sys.stderr)
    memo, problems = {}, []
    for kind in KINDS:
        memo[kind], found = memo_problems(kind, [high[kind], low[kind]])
        problems += found
    if bench.errors:
        problems.append(f"{len(bench.errors)} timed creates failed or were not injected as expected")
    if bench.misrouted:
        problems.append(f"{bench.misrouted} admissions reached a side that was not serving")
    figures = {kind: kind_figures(high[kind], low[kind]) for kind in KINDS}
    return finish({
        "concurrency": args.concurrency, "creates_per_side_and_kind": high["template"]["creates_per_side"],
        "c1_creates_per_side_and_kind": low["template"]["creates_per_side"], "shapes": args.shapes,
        "go_answers": {"template": "the answer ours gave the template pod, captured at the start",
                       "distinct": f"per pod, the answer ours gave a pod of its shape ({args.shapes} captured, "
                                   "one per shape); the same patch as ours, no injection computed"},
        **figures,
        "ours_distinct_over_template_p50": ratio(figures["distinct"]["added_p50_ms"]["ours"],
                                                 figures["template"]["added_p50_ms"]["ours"]),
        "ours_distinct_over_template_cpu": ratio(figures["distinct"]["server_cpu_ms_per_admission"]["ours"],
                                                 figures["template"]["server_cpu_ms_per_admission"]["ours"]),
        "ours_memo": memo,
    }, bench, problems, started)


if __name__ == "__main__":
    sys.exit(main())
