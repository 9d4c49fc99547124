"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Two parts, as in client-go's ``resourcelock`` and ``leaderelection``:

- :class:`LeaseLock` reads and writes one Lease as a :class:`LeaderElectionRecord` (the only
  place a Lease body is built), with optimistic concurrency on the resourceVersion read, so two
  candidates can never both win.
- :class:`LeaderElector` is the state machine over a lock and a clock:

  - A candidate takes the Lease when it has no holder, or when the holder's record has not
    changed for ``lease_duration`` of *our own* clock since we first saw it (clocks of other
    machines are never compared).
  - The leader renews every ``retry_period``, counted from when the last renewal was *sent*
    (a slow answer does not push the next one towards the deadline). One call may take all
    that is left of the ``renew_deadline``, as client-go's does: a renewal answered late but
    within the deadline keeps the leader (a call cut at half the deadline left one short
    retry after it). Past the deadline without a renewal it stops leading at once
    (``on_stopped_leading``), and the manager exits non-zero so the container restarts clean.
  - ``may_act()`` is the write gate of the controller: it is open only while the last
    successful renewal was *sent* less than ``renew_deadline`` ago. Because others wait a
    whole ``lease_duration`` from when they saw that renewal, a leader that was frozen
    (SIGSTOP, a long GC pause) finds its gate shut when it resumes and does not write. The
    gate is asked twice: before a write is built, and again by the HTTP client once the
    request's headers are out, just before its body (``Client.request(guard=...)``), since a
    freeze after the first check used to let one stale write through on thaw (a make test
    run's audit log showed one, 80 ms after the successor took the Lease). What is left is a
    freeze between that second check and the body's send call, with no code between them;
    the Kubernetes API has no fencing token that could close it.
  - Standbys watch the Lease as well as polling it, so a Lease released on SIGTERM is taken
    within the watch latency instead of a retry period.
  - A :class:`Succession` names holders proven dead: this replica's own earlier worker
    processes, reaped by :mod:`manager.supervisor`, and any holder that ran in an earlier
    container of this same pod (the Lease says which pod its holder runs in: the
    :data:`HOLDER_POD_ANNOTATION`, written with every take and renewal). A Lease still naming
    one of them is taken at once (after ``not_before``) instead of after ``lease_duration``,
    still by an update on the resourceVersion read, so it never overrides another candidate.

:class:`NoElection` has the elector's interface for ``--enable-leader-election=false``: it
leads at once and its gate never shuts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator

from . import metrics
from .events import NORMAL, EventRecorder, involved
from kubekit import paths
from kubekit.api import ApiError, Client

if TYPE_CHECKING:
    from .options import Options

log = logging.getLogger("manager.lease")

Callback = Callable[[], None]

# "<pod uid> <holder identity>": the pod the holder runs in. Only the holder writes it, in the
# same update as holderIdentity; a record whose annotation names another identity (an upstream
# manager took the Lease and kept our annotation) says nothing about its holder's pod.
HOLDER_POD_ANNOTATION = "kruise.io/leader-pod-uid"


def now_micro() -> str:
    """A MicroTime as Leases carry it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ElectionConfig:
    """The election's settings; no defaults of its own (they are the manager's options':
    :meth:`from_options`)."""

    namespace: str
    name: str
    identity: str
    lease_duration: float
    renew_deadline: float
    retry_period: float
    pod_uid: str  # the UID of the pod this process runs in (the downward API's POD_UID), "" if unknown

    @classmethod
    def from_options(cls, o: "Options", identity: str, pod_uid: str) -> "ElectionConfig":
        return cls(o.leader_election_namespace, o.leader_election_id, identity, o.leader_election_lease_duration,
                   o.leader_election_renew_deadline, o.leader_election_retry_period, pod_uid)

    def validate(self) -> None:
        from .options import election_timings_problem

        problem = election_timings_problem(self.lease_duration, self.renew_deadline, self.retry_period)
        if problem:
            raise ValueError(problem)


@dataclass(frozen=True)
class LeaderElectionRecord:
    """What a Lease says about its holder (client-go's record, in the Lease's own fields)."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0
    holder_pod_uid: str = ""  # the pod the holder runs in, when the Lease says so for this holder

    @classmethod
    def from_lease(cls, lease: dict) -> "LeaderElectionRecord":
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        pod_uid, _, named = (annotations.get(HOLDER_POD_ANNOTATION) or "").partition(" ")
        return cls(holder=holder,
                   lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   lease_transitions=int(spec.get("leaseTransitions") or 0),
                   holder_pod_uid=pod_uid if holder and named == holder else "")

    def spec(self) -> dict:
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.lease_duration_seconds,
                "acquireTime": self.acquire_time, "renewTime": self.renew_time,
                "leaseTransitions": self.lease_transitions}


@dataclass(frozen=True)
class Succession:
    """Holders known dead, and the earliest time on the elector's clock at which a Lease still
    naming one of them may be taken (``not_before``: ``--worker-succession-delay`` after the
    last death, or after this container started when the death was its predecessor's).

    - ``dead``: identities of this container's earlier workers. Only a process that saw them
      die may say so: the supervisor, which reaped each one with ``waitpid``.
    - ``pod_uid``: this pod. A holder that ran in this pod under another identity ran in an
      earlier container of it, and the kubelet starts a container only after its previous
      instance exited (a container's processes share its PID namespace, so they all died with
      its first process; a worker also dies with its supervisor, PR_SET_PDEATHSIG). A pod
      deleted and created again is another pod, with another UID: no proof there."""

    dead: frozenset[str]
    not_before: float
    pod_uid: str = ""

    def proves_dead(self, holder: str, holder_pod_uid: str = "") -> bool:
        return holder in self.dead or bool(self.pod_uid and holder_pod_uid == self.pod_uid)

    def free_at(self, holder: str, expires: float, holder_pod_uid: str = "") -> float:
        """When a Lease held by ``holder`` (expiring at ``expires``; running in the pod
        ``holder_pod_uid`` if the Lease says) may be taken."""
        return min(expires, self.not_before) if self.proves_dead(holder, holder_pod_uid) else expires


@dataclass(frozen=True)
class Versioned:
    """A record as read or written, with the resourceVersion the next write must name."""

    record: LeaderElectionRecord
    resource_version: str


class LeaseLock:
    """One Lease through the API: get, create, update (on a resourceVersion), watch, events."""

    def __init__(self, client: Client, namespace: str, name: str):
        self.client = client
        self.namespace = namespace
        self.name = name
        self.collection = paths.leases(namespace)
        self.path = f"{self.collection}/{name}"

    def _versioned(self, lease: dict) -> Versioned:
        return Versioned(LeaderElectionRecord.from_lease(lease), lease["metadata"].get("resourceVersion") or "")

    def _body(self, record: LeaderElectionRecord, resource_version: str | None = None) -> dict:
        metadata = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        if record.holder and record.holder_pod_uid:
            metadata["annotations"] = {HOLDER_POD_ANNOTATION: f"{record.holder_pod_uid} {record.holder}"}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": record.spec()}

    def get(self, timeout: float) -> Versioned:
        """The Lease's record; ApiError (``not_found``) when there is no Lease."""
        return self._versioned(self.client.get(self.path, timeout=timeout))

    def create(self, record: LeaderElectionRecord, timeout: float) -> Versioned:
        return self._versioned(self.client.request("POST", self.collection, body=self._body(record), timeout=timeout))

    def update(self, record: LeaderElectionRecord, resource_version: str, timeout: float) -> Versioned:
        """Write ``record`` if the Lease is still at ``resource_version`` (else ApiError 409)."""
        return self._versioned(self.client.request("PUT", self.path, body=self._body(record, resource_version),
                                                   timeout=timeout))

    def watch(self) -> Iterator[Versioned | None]:
        """The record now, then every change of it (None when the Lease is deleted)."""
        query = {"fieldSelector": f"metadata.name={self.name}"}
        listed = self.client.get(self.collection, timeout=10, **query)
        for item in listed.get("items", []):
            yield self._versioned(item)
        for event in self.client.watch(self.collection, listed["metadata"]["resourceVersion"], timeout_s=120,
                                       **query):
            if event["type"] in ("ADDED", "MODIFIED"):
                yield self._versioned(event["object"])
            elif event["type"] == "DELETED":
                yield None

    def record_event(self, reason: str, message: str) -> None:
        """An Event on the Lease, as client-go records one (best effort)."""
        lease = {"metadata": {"name": self.name, "namespace": self.namespace}}
        EventRecorder(self.client, timeout=2, repeat_after=0).record(
            involved(lease, "coordination.k8s.io/v1", "Lease"), NORMAL, reason, message)


class Clock:
    """Monotonic time and interruptible sleeps; tests pass a clock that only advances when told."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep up to ``seconds`` or until ``event`` is set; True when it was set."""
        return event.wait(seconds)


@dataclass(frozen=True)
class _Observation:
    versioned: Versioned
    at: float  # our clock when the record last changed


@dataclass(frozen=True)
class HolderView:
    """The Lease's holder as this replica last read it, for a standby that acts on a leader that
    stopped renewing (:mod:`manager.peers`): times are on this replica's own clock only."""

    holder: str
    holder_pod_uid: str  # the pod the Lease says its holder runs in ("" when it does not say)
    renew_time: str | None  # with ``holder``, names the record (one renewal)
    unchanged_s: float  # since this replica first saw this record: the holder has not renewed since
    read_s: float  # since this replica last read the Lease (a GET, its own write, a watch event)


class LeaderElector:
    """Run :meth:`run` on a thread; it returns when leadership is lost or :meth:`stop` is called.

    ``on_started_leading`` runs on a thread of its own once the Lease is ours;
    ``on_stopped_leading`` runs once when leading ends (lost, or released)."""

    def __init__(self, lock: LeaseLock, config: ElectionConfig, *, on_started_leading: Callback | None = None,
                 on_stopped_leading: Callback | None = None, clock: Clock | None = None, watch: bool = True,
                 succession: Succession | None = None):
        config.validate()
        self.succession = succession
        self.succeeded = ""  # the dead holder this replica took the Lease from, if it did
        self.lock = lock
        self.config = config
        self.clock = clock or Clock()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.watch_enabled = watch
        self.leading = threading.Event()
        self.lost = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._state = threading.Lock()  # guards _observed, shared with the watch thread
        self._writing = threading.Lock()  # one write at a time: a release never races a renewal
        self._observed: _Observation | None = None
        self._read_at = float("-inf")  # our clock when the Lease was last read
        self._renew_sent_at = 0.0  # our clock when the last successful renewal was sent
        self._stopped_once = threading.Lock()
        self.last_heartbeat = self.clock.now()

    # ---- the gate --------------------------------------------------------------------
    def may_act(self) -> float:
        """Seconds this replica may still write as the leader (0 when it must not)."""
        if not self.leading.is_set() or self.lost.is_set():
            return 0.0
        return max(0.0, self._renew_sent_at + self.config.renew_deadline - self.clock.now())

    @property
    def holder(self) -> str:
        observed = self._snapshot()
        return observed.versioned.record.holder if observed else ""

    def holder_view(self) -> HolderView | None:
        """The holder as last read (None before the first read, or with no holder)."""
        with self._state:
            observed, read_at = self._observed, self._read_at
        if observed is None or not observed.versioned.record.holder:
            return None
        record, now = observed.versioned.record, self.clock.now()
        return HolderView(record.holder, record.holder_pod_uid, record.renew_time, now - observed.at, now - read_at)

    # ---- what we saw -----------------------------------------------------------------
    def _snapshot(self) -> _Observation | None:
        with self._state:
            return self._observed

    def _observe(self, versioned: Versioned | None) -> None:
        """Remember a record; its clock restarts only when holder or renew time changed."""
        with self._state:
            if versioned is None:
                self._observed = None
                return
            self._read_at = self.clock.now()
            previous = self._observed.versioned.record if self._observed else None
            record = versioned.record
            changed = previous is None or (record.holder, record.renew_time) != (previous.holder, previous.renew_time)
            self._observed = _Observation(versioned, self.clock.now() if changed else self._observed.at)

    def _duration_of(self, record: LeaderElectionRecord) -> float:
        return float(record.lease_duration_seconds or self.config.lease_duration)

    def _free_at(self, observed: _Observation) -> float:
        """When the observed record may be taken (now or earlier: it is free): when it expires on
        our clock, or, for a holder the succession proves dead, once the succession allows."""
        record = observed.versioned.record
        if not record.holder or record.holder == self.config.identity:
            return float("-inf")
        expires = observed.at + self._duration_of(record)
        return self.succession.free_at(record.holder, expires, record.holder_pod_uid) if self.succession else expires

    def _held_by_other(self, observed: _Observation) -> bool:
        return self._free_at(observed) > self.clock.now()

    # ---- one attempt -----------------------------------------------------------------
    def try_acquire_or_renew(self, timeout: float, use_cached: bool = False) -> bool:
        """One client-go style attempt; True when we hold the Lease afterwards. Once stopped,
        no attempt writes."""
        with self._writing:
            if self._stopping.is_set():
                return False
            return self._attempt(timeout, use_cached)

    def _attempt(self, timeout: float, use_cached: bool) -> bool:
        sent_at = self.clock.now()
        stamp = now_micro()
        ours = LeaderElectionRecord(self.config.identity, int(self.config.lease_duration), stamp, stamp, 0,
                                    holder_pod_uid=self.config.pod_uid)
        try:
            observed = self._snapshot() if use_cached else None
            if observed is None:
                try:
                    self._observe(self.lock.get(timeout=timeout))
                except ApiError as err:
                    if not err.not_found:
                        raise
                    self._observe(self.lock.create(ours, timeout=timeout))
                    self._renew_sent_at = sent_at
                    return True
                observed = self._snapshot()
                if observed is None:  # deleted by the watch between our read and now
                    return False
            if self._held_by_other(observed):
                return False
            current = observed.versioned.record
            if current.holder == self.config.identity:
                record = replace(current, renew_time=stamp, lease_duration_seconds=int(self.config.lease_duration),
                                 holder_pod_uid=self.config.pod_uid)
            else:
                record = replace(ours, lease_transitions=current.lease_transitions + (1 if current.holder else 0))
            remaining = timeout - (self.clock.now() - sent_at)
            if remaining <= 0:
                return False
            self._observe(self.lock.update(record, observed.versioned.resource_version, timeout=remaining))
            self._renew_sent_at = sent_at
            if (current.holder != self.config.identity and self.succession
                    and self.succession.proves_dead(current.holder, current.holder_pod_uid)):
                self.succeeded = current.holder
            return True
        except ApiError as err:
            if err.conflict:
                self._observe(None)  # someone else wrote: read again next time
            log.info("lease attempt failed: %s", err)
            return False

    # ---- the loops -------------------------------------------------------------------
    def run(self) -> None:
        """Acquire (blocking), start leading, renew until lost or stopped."""
        if self.watch_enabled:
            threading.Thread(target=self._watch, name="lease watch", daemon=True).start()
        log.info("trying to acquire the lease", extra={"lease": self.config.name, "identity": self.config.identity,
                                                       "dead_predecessors": len(self.succession.dead)
                                                       if self.succession else 0})
        if not self._acquire():
            return
        self.leading.set()
        metrics.IS_LEADER.set(1)
        metrics.LEADER_TRANSITIONS.inc()
        log.info("became leader", extra={"lease": self.config.name, "identity": self.config.identity,
                                         "succeeded": self.succeeded})
        self.lock.record_event("LeaderElection", f"{self.config.identity} became leader" + (
            f" (succeeding {self.succeeded}, its dead predecessor)" if self.succeeded else ""))
        if self.on_started_leading:
            threading.Thread(target=self.on_started_leading, name="leading", daemon=True).start()
        self._renew()

    def _acquire(self) -> bool:
        use_cached = False
        while not self._stopping.is_set():
            self.last_heartbeat = self.clock.now()
            if self.try_acquire_or_renew(timeout=self.config.renew_deadline / 2, use_cached=use_cached):
                return True
            # Sleep until the next retry, the moment the observed holder expires, or a
            # watch event (a release) — whichever comes first.
            wait = self.config.retry_period
            observed = self._snapshot()
            if observed is not None and self._held_by_other(observed):
                expires_in = self._free_at(observed) - self.clock.now()
                wait = min(wait, max(0.01, expires_in + 0.01))
            woke = self.clock.wait(self._wake, wait)
            self._wake.clear()
            use_cached = woke and self._snapshot() is not None
        return False

    def _renew(self) -> None:
        config = self.config
        while not self._stopping.is_set():
            self.last_heartbeat = self.clock.now()
            left = self._renew_sent_at + config.renew_deadline - self.clock.now()
            if left <= 0:
                self._lose(f"failed to renew within the renew deadline ({config.renew_deadline}s)")
                return
            if self.try_acquire_or_renew(timeout=left, use_cached=True):
                # The next renewal is due a retry period after this one was *sent*: a slow
                # answer must not push it later, closer to the deadline.
                due = self._renew_sent_at + config.retry_period - self.clock.now()
                if due > 0:
                    self.clock.wait(self._stopping, due)
                continue
            if self._stopping.is_set():
                return
            metrics.LEASE_RENEW_FAILURES.inc()
            holder = self.holder
            if holder and holder != config.identity:
                self._lose(f"the lease is now held by {holder}")
                return
            left = self._renew_sent_at + config.renew_deadline - self.clock.now()  # the call took its share
            if left > 0:
                self.clock.wait(self._stopping, min(config.retry_period, left / 2))

    def _lose(self, why: str) -> None:
        log.error("leadership lost: %s", why)
        self.lost.set()
        self._stopped_leading()

    def _stopped_leading(self) -> None:
        """Leave the leader state once, whichever way it ends, and tell the owner."""
        if not self._stopped_once.acquire(blocking=False):
            return
        self.leading.clear()
        metrics.IS_LEADER.set(0)
        if self.on_stopped_leading:
            self.on_stopped_leading()

    def _watch(self) -> None:
        """Wake the acquire loop on every change of the Lease (a release above all)."""
        while not self._stopping.is_set() and not self.leading.is_set():
            try:
                for versioned in self.lock.watch():
                    if self._stopping.is_set() or self.leading.is_set():
                        return
                    self._observe(versioned)
                    self._wake.set()
            except ApiError as err:
                log.info("lease watch ended: %s", err)
                self._stopping.wait(1.0)

    # ---- shutdown --------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def release(self, timeout: float = 2.0) -> bool:
        """Give the Lease up (holder cleared) so a standby takes it without waiting it out.
        Waits for a renewal in flight, so it writes on the version that renewal produced: up to
        ``timeout``, or longer while the gate is open, since that renewal ends when it shuts
        (a slow one would otherwise leave the Lease held, and the standbys waiting it out)."""
        self.stop()
        if not self._writing.acquire(timeout=max(timeout, self.may_act() + 0.1)):
            log.warning("could not release the lease: a renewal is still in flight")
            return False
        try:
            observed = self._snapshot()
            if not self.leading.is_set() or self.lost.is_set() or observed is None:
                return False
            self._stopped_leading()
            current = observed.versioned.record
            if current.holder != self.config.identity:
                return False
            stamp = now_micro()
            released = replace(current, holder="", lease_duration_seconds=1, renew_time=stamp, acquire_time=stamp)
            try:
                self.lock.update(released, observed.versioned.resource_version, timeout=timeout)
                log.info("released the lease")
                return True
            except ApiError as err:
                log.warning("could not release the lease: %s", err)
                return False
        finally:
            self._writing.release()


class NoElection:
    """The elector's interface when leader election is off: lead at once, never lose."""

    def __init__(self, config: ElectionConfig, *, on_started_leading: Callback | None = None,
                 on_stopped_leading: Callback | None = None):
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.leading = threading.Event()
        self.lost = threading.Event()
        self._stopping = threading.Event()

    @property
    def last_heartbeat(self) -> float:
        return time.monotonic()  # nothing here can hang

    @property
    def holder(self) -> str:
        return self.config.identity

    def holder_view(self) -> None:
        return None  # every replica leads: none stands by to watch a leader

    def may_act(self) -> float:
        return float("inf") if self.leading.is_set() else 0.0

    def run(self) -> None:
        self.leading.set()
        metrics.IS_LEADER.set(1)
        if self.on_started_leading:
            threading.Thread(target=self.on_started_leading, name="leading", daemon=True).start()
        self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    def release(self, timeout: float = 2.0) -> bool:
        self.stop()
        if self.leading.is_set():
            self.leading.clear()
            metrics.IS_LEADER.set(0)
            if self.on_stopped_leading:
                self.on_stopped_leading()
        return False
