"""The drill's observers: the Lease by watch (every change of holder), the Service's ready
endpoints, the Deployment's ready count and the pods by polling, and each replica's own
pod-webhook counter through the pod proxy — and the figures read off their records (leader
gap, vacancies, endpoint removal, each replica's share)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubekit import paths

from ..inventory import Names
from ..status import pod_ready


def parse_micro(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Sample:
    at: float  # monotonic
    ready_endpoints: frozenset[str]
    ready_replicas: int
    desired: int
    pods: dict[str, tuple[str | None, bool, str | None]]  # name -> (ip, ready, node)
    rolled_out: bool


class Observer:
    """The Lease by watch (every record), and endpoints / Deployment / pods by polling."""

    def __init__(self, api, names: Names, timeout: float, interval: float = 0.2):
        self.api, self.names, self.timeout, self.interval = api, names, timeout, interval
        self.lease_records: list[tuple[float, dict]] = []  # (monotonic received, spec)
        self.samples: list[Sample] = []
        self.read_errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Observer":
        for target, name in ((self._watch_lease, "drill-lease"), (self._poll, "drill-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(3)

    def _watch_lease(self) -> None:
        ns, name = self.names.namespace, self.names.lease
        path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        client = self.api
        while not self._stop.is_set():
            try:
                listing = self.api.request("GET", path, timeout=self.timeout, fieldSelector=f"metadata.name={name}")
                for item in listing.get("items", []):
                    self.lease_records.append((time.monotonic(), item.get("spec") or {}))
                for event in client.watch(path, listing["metadata"].get("resourceVersion", ""), 60,
                                          fieldSelector=f"metadata.name={name}"):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.lease_records.append((time.monotonic(), event["object"].get("spec") or {}))
                    if self._stop.is_set():
                        break
            except Exception as err:  # noqa: BLE001 - recorded; the watch restarts
                self.read_errors.append(f"lease watch: {err}")
                self._stop.wait(0.5)

    def _poll(self) -> None:
        ns, names = self.names.namespace, self.names
        while not self._stop.is_set():
            try:
                slices = self.api.request("GET", paths.endpoint_slices(ns), timeout=self.timeout,
                                          labelSelector=f"kubernetes.io/service-name={names.service}")
                deployment = self.api.request("GET", paths.deployments(ns, names.deployment), timeout=self.timeout)
                pods = self.api.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                        timeout=self.timeout, labelSelector=names.selector)
            except Exception as err:  # noqa: BLE001 - a missed sample, recorded
                self.read_errors.append(f"poll: {err}")
                self._stop.wait(self.interval)
                continue
            ready = frozenset(address for s in slices.get("items", []) for e in s.get("endpoints") or []
                              if (e.get("conditions") or {}).get("ready") for address in e.get("addresses") or [])
            status, spec = deployment.get("status") or {}, deployment.get("spec") or {}
            desired = int(spec.get("replicas", 1))
            rolled_out = (status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
                          and status.get("updatedReplicas", 0) == desired and status.get("replicas", 0) == desired
                          and status.get("availableReplicas", 0) == desired)
            self.samples.append(Sample(
                time.monotonic(), ready, int(status.get("readyReplicas") or 0), desired,
                {p["metadata"]["name"]: (p.get("status", {}).get("podIP"), pod_ready(p), p["spec"].get("nodeName"))
                 for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")},
                rolled_out))
            self._stop.wait(self.interval)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def holder_at(self, moment: float) -> str:
        holder = ""
        for received, spec in self.lease_records:
            if received > moment:
                break
            holder = spec.get("holderIdentity") or ""
        return holder


def leader_gap(records: list[tuple[float, dict]], since: float) -> tuple[float | None, str | None, str | None]:
    """(gap seconds, old holder, new holder) of the first change of holder after ``since``:
    from the old holder's last renewal (or its release) to the new holder's acquireTime, on
    the Lease's own timestamps. (None, old, None) when no one new took it."""
    before = [spec for received, spec in records if received <= since]
    old = (before[-1].get("holderIdentity") or "") if before else ""
    last_old = parse_micro(before[-1].get("renewTime")) if before else None
    for received, spec in records:
        if received <= since:
            continue
        holder = spec.get("holderIdentity") or ""
        if holder == old or not holder:
            last_old = parse_micro(spec.get("renewTime")) or last_old  # a renewal, or the release
            continue
        acquired = parse_micro(spec.get("acquireTime"))
        if acquired is None or last_old is None:
            return None, old, holder
        return max(0.0, (acquired - last_old).total_seconds()), old, holder
    return None, old, None


def vacancies(lease_records: list[tuple[float, dict]], began_unix: float) -> list[tuple[float, float]]:
    """Each span without a leader, as ``leader_gap`` measures it (the old holder's last renewal
    or its release, to the new holder's acquireTime, on the Lease's own timestamps), in seconds
    from the disruption."""
    spans, holder, last = [], None, None
    for _received, spec in lease_records:
        identity = spec.get("holderIdentity") or ""
        if holder is None or identity == holder or not identity:
            holder = identity if holder is None else holder
            last = parse_micro(spec.get("renewTime")) or last
            continue
        acquired = parse_micro(spec.get("acquireTime"))
        if last is not None and acquired is not None and acquired > last:
            spans.append((round(last.timestamp() - began_unix, 3), round(acquired.timestamp() - began_unix, 3)))
        holder, last = identity, parse_micro(spec.get("renewTime")) or acquired
    return spans


def endpoint_removal(observer: Observer, victims: list[str], began: float, ended: float) -> float | None:
    """Seconds from the disruption until no victim's address was a ready endpoint any more
    (only addresses no surviving pod shares: with host network a replacement may reuse a
    node's address)."""
    before = [s for s in observer.samples if s.at <= began]
    if not before:
        return None
    victim_ips = {ip for name, (ip, _ok, _node) in before[-1].pods.items() if name in victims and ip}
    for sample in observer.samples:
        if sample.at <= began or sample.at > ended:
            continue
        others = {ip for name, (ip, _ok, _node) in sample.pods.items() if name not in victims}
        watched = victim_ips - others
        if not watched:
            return None
        if not watched & sample.ready_endpoints:
            return round(sample.at - began, 2)
    return None


@dataclass
class CounterRead:
    """One read of a replica's pod-webhook counter; ``value`` is None when it could not be read."""

    value: float | None
    started: float | None = None  # the process's start (unix time) when its metrics give it: a restart
    error: str = ""


@dataclass
class ReplicaSeries:
    """Every read of one replica's counter over a window, in order (one per round it was listed in)."""

    reads: list[CounterRead] = field(default_factory=list)
    at_start: bool = False  # listed in the window's first round
    at_end: bool = False  # listed, and not terminating, in the window's last round
    ready: bool = False  # ready at some moment of the window


def _restarted(previous: CounterRead, read: CounterRead) -> bool:
    if previous.started is not None and read.started is not None and abs(read.started - previous.started) > 1.0:
        return True
    return read.value < previous.value


def replica_counts(series: dict[str, ReplicaSeries], window_start: float) -> tuple[dict[str, float], list[str]]:
    """Admissions each replica answered during the window, from its own counter, for every
    replica that was ready during the window (zero included) or whose counter went up.

    A count that cannot be known is an error, never a gap: a replica listed at the start needs
    its read at the start (unless its process started inside the window: it counted from
    zero), one still there at the end its read at the end; one gone before the end keeps its
    last read. A restart (a new process start time, or a counter that went down) adds what the
    new process counted; what the old one counted after its last read (at most one interval of
    the poller) is not known and not counted."""
    counts: dict[str, float] = {}
    errors: list[str] = []
    for name, s in sorted(series.items()):
        known = [r for r in s.reads if r.value is not None]
        failed = [r.error for r in s.reads if r.value is None]
        if not known:
            if s.ready:
                why = failed[-1] if failed else "never listed"
                errors.append(f"replica {name}: its metrics could not be read ({why})")
            continue
        if s.at_start and s.reads[0].value is not None:
            previous, rest = s.reads[0], known[1:]
        elif not s.at_start or (known[0].started is not None and known[0].started >= window_start):
            previous, rest = CounterRead(0.0, known[0].started), known  # a process of the window: from zero
        else:
            errors.append(f"replica {name}: its metrics could not be read at the window's start "
                          f"({s.reads[0].error}): its count before is unknown")
            continue
        if s.at_end and s.reads[-1].value is None:
            errors.append(f"replica {name}: its metrics could not be read at the window's end ({s.reads[-1].error})")
            continue
        total = 0.0
        for read in rest:
            total += read.value if _restarted(previous, read) else read.value - previous.value
            previous = read
        if s.ready or total > 0:
            counts[name] = total
    return counts, errors


def shares_of(counts: dict[str, float]) -> dict[str, float] | None:
    """Each replica's part of what all counted (zeros kept); None when nothing was counted."""
    total = sum(counts.values())
    if total <= 0:
        return None
    return {name: round(value / total, 3) for name, value in sorted(counts.items())}


class ReplicaCounters:
    """Every replica's pod-webhook counter (this project's
    ``kruise_manager_webhook_requests_total`` or controller-runtime's
    ``controller_runtime_webhook_requests_total`` for upstream), read through the apiserver's
    pod proxy at the start of a window, every ``interval`` during it (so a replica deleted
    meanwhile keeps its last read) and at its end. Terminating replicas are read too: they may
    still be answering."""

    def __init__(self, api, names: Names, timeout: float, interval: float = 1.0, read_timeout: float = 3.0):
        self.api, self.names, self.timeout = api, names, timeout
        self.interval, self.read_timeout = interval, read_timeout
        self.client = api
        self.series: dict[str, ReplicaSeries] = {}
        self.errors: list[str] = []
        self.window_start = 0.0  # unix time of the first round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="drill-metrics")
        self._rounds = threading.Lock()  # one round at a time: each replica's reads stay in order

    def start(self) -> "ReplicaCounters":
        self.window_start = time.time()
        self._round(first=True)
        self._thread = threading.Thread(target=self._loop, name="drill-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The last round, once nothing else is being counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # a round in progress ends first (its requests have timeouts)
        self._round(last=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def counts(self) -> tuple[dict[str, float], list[str]]:
        counts, errors = replica_counts(self.series, self.window_start)
        return counts, self.errors + errors

    def mark_ready(self, names: set[str]) -> None:
        """Replicas another observer saw ready during the window."""
        for name in names:
            self.series.setdefault(name, ReplicaSeries()).ready = True

    def read_now(self) -> None:
        """A round out of turn: just before the disruption, so a victim's last read is its count."""
        self._round()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._round()

    def _read(self, pod: dict) -> CounterRead:
        port = next((p.get("containerPort") for c in pod["spec"].get("containers") or []
                     for p in c.get("ports") or [] if p.get("name") == "metrics"), 8080)
        name = pod["metadata"]["name"]
        try:
            text = self.client.get_text(f"/api/v1/namespaces/{self.names.namespace}/pods/{name}:{port}/proxy/metrics",
                                        self.read_timeout)
        except Exception as err:  # noqa: BLE001 - kept: an unknown count is reported, not skipped
            return CounterRead(None, error=f"{err.__class__.__name__}: {str(err)[:200]}")
        return CounterRead(_pod_webhook_requests(text), _process_start(text))

    def _round(self, first: bool = False, last: bool = False) -> None:
        with self._rounds:
            self._round_locked(first, last)

    def _round_locked(self, first: bool, last: bool) -> None:
        try:
            listing = self.api.request("GET", f"/api/v1/namespaces/{self.names.namespace}/pods",
                                       timeout=self.timeout, labelSelector=self.names.selector)
        except Exception as err:  # noqa: BLE001 - the counts of this round are unknown
            if first or last:
                self.errors.append(f"the replicas could not be listed at the window's {'start' if first else 'end'} "
                                   f"({err.__class__.__name__}: {str(err)[:200]}): no count is known")
            return
        pods = listing.get("items", [])
        for pod, read in zip(pods, self._pool.map(self._read, pods)):
            s = self.series.setdefault(pod["metadata"]["name"], ReplicaSeries(at_start=first))
            s.reads.append(read)
            s.ready = s.ready or serving(pod)
            if last:
                s.at_end = not pod["metadata"].get("deletionTimestamp")


def serving(pod: dict) -> bool:
    """Ready and not terminating: what the Service sends new connections to (an EndpointSlice
    marks a terminating pod's endpoint not ready). A terminating replica's counter still counts
    when it can be read; one that closed its port while its pod lingers is no missing share."""
    return pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")


def _pod_webhook_requests(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kruise_manager_webhook_requests_total{") and 'path="/mutate-pod"' in line:
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("controller_runtime_webhook_requests_total{") and 'webhook="/mutate-pod"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _process_start(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("process_start_time_seconds "):
            return float(line.rsplit(" ", 1)[1])
    return None
