"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

- A candidate takes the Lease when it has no holder, or when the holder's record has not
  changed for ``lease_duration`` of *our own* clock since we first saw it (clocks of other
  machines are never compared). Writes use the resourceVersion read, so two candidates can
  never both win.
- The leader renews every ``retry_period``; each call is bounded by what is left of the
  ``renew_deadline``. Past the deadline without a renewal it stops leading at once and the
  process exits non-zero, so the container restarts clean.
- ``may_act()`` is the write gate of the controller: it is true only while the last
  successful renewal was *sent* less than ``renew_deadline`` ago. Because others wait a
  whole ``lease_duration`` from when they saw that renewal, a leader that was frozen
  (SIGSTOP, a long GC pause) finds its gate shut when it resumes and never writes.
- Standbys watch the Lease as well as polling it, so a Lease released on SIGTERM is taken
  within the watch latency instead of a retry period.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from . import metrics
from .kube import ApiError, Client

log = logging.getLogger("manager.lease")


def now_micro() -> str:
    """A MicroTime as Leases carry it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("leader election needs lease duration > renew deadline > retry period > 0 "
                             f"(got {self.lease_duration}s / {self.renew_deadline}s / {self.retry_period}s)")


class LeaderElector:
    """Run :meth:`run` on a thread; it returns when leadership is lost or :meth:`stop` is called."""

    def __init__(self, client: Client, config: ElectionConfig, *, clock=time.monotonic):
        config.validate()
        self.client = client
        self.config = config
        self.clock = clock
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{config.namespace}/leases/{config.name}"
        self.leading = threading.Event()
        self.lost = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._lease: dict | None = None  # the last version read or written
        self._observed: tuple | None = None  # (holder, renewTime, resourceVersion) last seen
        self._observed_at = 0.0  # our clock when the record last changed
        self._renew_sent_at = 0.0  # our clock when the last successful renewal was sent
        self.last_heartbeat = clock()

    # ---- the gate --------------------------------------------------------------------
    def may_act(self) -> float:
        """Seconds this replica may still write as the leader (0 when it must not)."""
        if not self.leading.is_set() or self.lost.is_set():
            return 0.0
        return max(0.0, self._renew_sent_at + self.config.renew_deadline - self.clock())

    @property
    def holder(self) -> str:
        lease = self._lease or {}
        return lease.get("spec", {}).get("holderIdentity") or ""

    # ---- record bookkeeping ----------------------------------------------------------
    def _observe(self, lease: dict) -> None:
        spec = lease.get("spec", {})
        record = (spec.get("holderIdentity") or "", spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        with self._lock:
            if record[:2] != (self._observed or (None, None))[:2]:
                self._observed_at = self.clock()
            self._observed = record
            self._lease = lease

    def _held_by_other(self) -> bool:
        spec = (self._lease or {}).get("spec", {})
        holder = spec.get("holderIdentity") or ""
        if not holder or holder == self.config.identity:
            return False
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return self._observed_at + duration > self.clock()

    def _expires_in(self) -> float:
        spec = (self._lease or {}).get("spec", {})
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return self._observed_at + duration - self.clock()

    # ---- one attempt -----------------------------------------------------------------
    def try_acquire_or_renew(self, timeout: float, use_cached: bool = False) -> bool:
        """One client-go style attempt; True when we hold the Lease afterwards."""
        sent_at = self.clock()
        stamp = now_micro()
        try:
            if not use_cached or self._lease is None:
                try:
                    self._observe(self.client.get(self.path, timeout=timeout))
                except ApiError as err:
                    if not err.not_found:
                        raise
                    created = self.client.request("POST", self.path.rsplit("/", 1)[0], timeout=timeout, body={
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                        "spec": {"holderIdentity": self.config.identity,
                                 "leaseDurationSeconds": int(self.config.lease_duration),
                                 "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}})
                    self._observe(created)
                    self._renew_sent_at = sent_at
                    return True
            if self._held_by_other():
                return False
            lease = self._lease
            spec = dict(lease.get("spec", {}))
            if spec.get("holderIdentity") != self.config.identity:
                spec["acquireTime"] = stamp
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if spec.get("holderIdentity") else 0)
            spec.update(holderIdentity=self.config.identity, renewTime=stamp,
                        leaseDurationSeconds=int(self.config.lease_duration))
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.config.name, "namespace": self.config.namespace,
                                 "resourceVersion": lease["metadata"]["resourceVersion"]},
                    "spec": spec}
            remaining = timeout - (self.clock() - sent_at)
            if remaining <= 0:
                return False
            updated = self.client.request("PUT", self.path, body=body, timeout=remaining)
            self._observe(updated)
            self._renew_sent_at = sent_at
            return True
        except ApiError as err:
            if err.conflict:
                self._lease = None  # someone else wrote: read again next time
            log.info("lease attempt failed: %s", err)
            return False

    # ---- the loops -------------------------------------------------------------------
    def run(self, on_started_leading=None) -> None:
        """Acquire (blocking), call ``on_started_leading``, renew until lost or stopped."""
        watcher = threading.Thread(target=self._watch, name="lease watch", daemon=True)
        watcher.start()
        if not self._acquire():
            return
        self.leading.set()
        metrics.IS_LEADER.set(1)
        metrics.LEADER_TRANSITIONS.inc()
        log.info("became leader", extra={"lease": self.config.name, "identity": self.config.identity})
        self._record_event("LeaderElection", f"{self.config.identity} became leader")
        if on_started_leading:
            threading.Thread(target=on_started_leading, name="leading", daemon=True).start()
        self._renew()

    def _acquire(self) -> bool:
        use_cached = False
        while not self._stopping.is_set():
            self.last_heartbeat = self.clock()
            if self.try_acquire_or_renew(timeout=self.config.renew_deadline / 2, use_cached=use_cached):
                return True
            # Sleep until the next retry, the moment the observed holder expires, or a
            # watch event (a release) — whichever comes first.
            wait = self.config.retry_period
            if self._lease is not None and self._held_by_other():
                wait = min(wait, max(0.01, self._expires_in() + 0.01))
            woke = self._wake.wait(wait)
            self._wake.clear()
            use_cached = woke and self._lease is not None
        return False

    def _renew(self) -> None:
        config = self.config
        while not self._stopping.is_set():
            self.last_heartbeat = self.clock()
            left = self._renew_sent_at + config.renew_deadline - self.clock()
            if left <= 0:
                self._lose(f"failed to renew within the renew deadline ({config.renew_deadline}s)")
                return
            if self.try_acquire_or_renew(timeout=min(left, config.renew_deadline / 2), use_cached=True):
                self._stopping.wait(config.retry_period)
                continue
            metrics.LEASE_RENEW_FAILURES.inc()
            if self.holder and self.holder != config.identity:
                self._lose(f"the lease is now held by {self.holder}")
                return
            self._stopping.wait(min(config.retry_period, max(0.0, left) / 2 or 0.05))

    def _lose(self, why: str) -> None:
        log.error("leadership lost: %s", why)
        self.lost.set()
        self.leading.clear()
        metrics.IS_LEADER.set(0)

    def _watch(self) -> None:
        """Wake the acquire loop on every change of the Lease (a release above all)."""
        query = {"fieldSelector": f"metadata.name={self.config.name}"}
        collection = self.path.rsplit("/", 1)[0]
        while not self._stopping.is_set() and not self.leading.is_set():
            try:
                listed = self.client.get(collection, timeout=10, **query)
                for item in listed.get("items", []):
                    self._observe(item)
                for event in self.client.watch(collection, listed["metadata"]["resourceVersion"], timeout_s=120, **query):
                    if self._stopping.is_set() or self.leading.is_set():
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._observe(event["object"])
                        self._wake.set()
                    elif event["type"] == "DELETED":
                        self._lease = None
                        self._wake.set()
            except ApiError as err:
                log.info("lease watch ended: %s", err)
                self._stopping.wait(1.0)

    # ---- shutdown --------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def release(self, timeout: float = 2.0) -> bool:
        """Give the Lease up (holder cleared) so a standby takes it without waiting it out."""
        self.stop()
        if not self.leading.is_set() or self.lost.is_set() or self._lease is None:
            return False
        self.leading.clear()
        metrics.IS_LEADER.set(0)
        lease = self._lease
        spec = dict(lease.get("spec", {}))
        if spec.get("holderIdentity") != self.config.identity:
            return False
        stamp = now_micro()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=stamp, acquireTime=stamp)
        try:
            self.client.request("PUT", self.path, timeout=timeout, body={
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": spec})
            log.info("released the lease")
            return True
        except ApiError as err:
            log.warning("could not release the lease: %s", err)
            return False

    def _record_event(self, reason: str, message: str) -> None:
        """An Event on the Lease, as client-go records one (best effort)."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.client.request("POST", f"/api/v1/namespaces/{self.config.namespace}/events", timeout=2, body={
                "metadata": {"generateName": f"{self.config.name}.", "namespace": self.config.namespace},
                "involvedObject": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "name": self.config.name, "namespace": self.config.namespace},
                "reason": reason, "message": message, "type": "Normal", "source": {"component": "kruise-manager"},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1})
        except ApiError as err:
            log.debug("could not record event: %s", err)
