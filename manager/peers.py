"""Peer reachability: a replica on a lost machine leaves the Service in seconds, not after the
node lifecycle controller's grace period (50 s by default).

When a machine is lost its kubelet can report nothing, so the replica's pod stays Ready, and
an endpoint, until the node controller gives up on the node; every new connection the Service
routes there hangs until the webhook timeout. Here every replica probes its peers' webhook
servers (HTTPS ``/healthz`` on their pod IPs, verified with the webhook's CA, a fresh connection
each time, every ``--webhook-peer-probe-interval``; only pods that declare the gate below) and
publishes whom it cannot reach as a condition on its own pod
(``kruise.io/webhook-peers-reachable``, written only when it changes). The leader writes the
condition ``kruise.io/webhook-reachable``, which the chart declares in ``spec.readinessGates``:
False takes a peer out (the leader also sets its Ready condition False, as the node controller
would, since a lost kubelet cannot fold the gate into Ready), True lets it back.

Hysteresis: a peer is *unreachable* after ``--webhook-peer-failure-threshold`` failed probes in
a row and *reachable* after ``--webhook-peer-success-threshold`` successes in a row; in between
nothing is written, so one late answer neither takes a replica out nor lets it in.

Safety -- the leader never takes every replica out:

- it never sets False on itself (and sets itself True): the replica that writes stays in;
- it sets False on a peer only when a *witness* agrees: another replica that the leader itself
  reaches now and that publishes that it cannot reach the peer either. The witness, reachable,
  is never marked out in the same pass, so whenever a replica is taken out at least two stay
  in (the leader and its witness). A leader cut off from its peers reaches no witness, so it
  marks no one, however many it sees down; cut off from the apiserver as well (a partitioned
  machine), it cannot write at all, and its renewals fail, so it stops leading within
  ``--leader-election-renew-deadline``; the replicas that still see each other elect a new
  leader after the Lease, which (with the third one as its witness) takes the old one out;
- only pods that declare the gate are probed and written, and a replica whose own pod does not
  declare it publishes nothing (an install without the gate is left as it is); terminating pods
  are never written.

Without a witness (two replicas, or every other replica lost with the one probed) nothing is
taken out early: the node controller's grace period applies, as before. When the leader's own
machine is lost, its replica leaves once the others have elected a new leader (the Lease's
duration), since only a leader writes.

Bootstrapping: a pod that declares the gate is not Ready until the condition is True, so each
replica sets its own gate True once, when its webhook first answers its own readiness check
(without waiting for a leader); after that only the leader writes it. With no leader, gates
stay as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from kubekit import paths

log = logging.getLogger("manager.peers")

GATE = "kruise.io/webhook-reachable"  # the readiness gate the leader writes
VIEW = "kruise.io/webhook-peers-reachable"  # each replica's own view of its peers
VIEW_PREFIX = "cannot reach: "

REACHABLE, UNREACHABLE, UNKNOWN = "reachable", "unreachable", "unknown"


# ---- what the leader decides (pure) --------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    """A replica's pod as the decision needs it."""

    name: str
    gated: bool = True  # declares GATE in spec.readinessGates
    gate: str | None = None  # the GATE condition's status: "True", "False" or None (absent)
    unreachable: frozenset[str] = frozenset()  # whom it publishes it cannot reach
    terminating: bool = False


@dataclass
class Decision:
    writes: dict[str, bool] = field(default_factory=dict)  # pod -> the gate's new status
    withheld: list[str] = field(default_factory=list)  # unreachable, but no witness agrees


def decide(leader: str, peers: dict[str, Peer], reach: dict[str, str]) -> Decision:
    """What the leader writes, from its own verdicts (``reach``: pod -> reachable / unreachable /
    unknown) and the views the peers publish. See the module docstring for the rules."""
    decision = Decision()
    for name, peer in sorted(peers.items()):
        if not peer.gated or peer.terminating:
            continue
        if name == leader:
            if peer.gate != "True":
                decision.writes[name] = True
            continue
        verdict = reach.get(name, UNKNOWN)
        if verdict == REACHABLE and peer.gate != "True":
            decision.writes[name] = True
        elif verdict == UNREACHABLE and peer.gate == "True":
            if any(w != leader and w != name and reach.get(w) == REACHABLE and name in other.unreachable
                   for w, other in peers.items()):
                decision.writes[name] = False
            else:
                decision.withheld.append(name)
    return decision


class Streaks:
    """Consecutive probe results per peer: *unreachable* after ``failures`` failures in a row,
    *reachable* after ``successes`` successes in a row, else unknown (no verdict: nothing is
    written). A peer whose address changed starts over."""

    def __init__(self, failures: int, successes: int):
        self.failures, self.successes = max(1, failures), max(1, successes)
        self._runs: dict[str, tuple[str, bool, int]] = {}  # name -> (address, last result, run length)

    def record(self, name: str, address: str, ok: bool) -> None:
        previous = self._runs.get(name)
        run = previous[2] + 1 if previous and previous[0] == address and previous[1] == ok else 1
        self._runs[name] = (address, ok, run)

    def verdict(self, name: str) -> str:
        run = self._runs.get(name)
        if run is None:
            return UNKNOWN
        if run[1] and run[2] >= self.successes:
            return REACHABLE
        if not run[1] and run[2] >= self.failures:
            return UNREACHABLE
        return UNKNOWN

    def forget_except(self, names) -> None:
        for gone in set(self._runs) - set(names):
            del self._runs[gone]


def parse_view(condition: dict | None) -> frozenset[str]:
    """The names a VIEW condition says its replica cannot reach."""
    if not condition or condition.get("status") != "False":
        return frozenset()
    message = condition.get("message") or ""
    if not message.startswith(VIEW_PREFIX):
        return frozenset()
    return frozenset(n.strip() for n in message[len(VIEW_PREFIX):].split(",") if n.strip())


def view_condition(unreachable: set[str]) -> dict:
    if unreachable:
        return {"type": VIEW, "status": "False", "reason": "PeersUnreachable",
                "message": VIEW_PREFIX + ", ".join(sorted(unreachable))}
    return {"type": VIEW, "status": "True", "reason": "AllPeersReachable", "message": ""}


def slim_pod(pod: dict) -> dict:
    """What the peer cache keeps of a replica's pod."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("type") in (GATE, VIEW, "Ready")}
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                         "deletionTimestamp": meta.get("deletionTimestamp")},
            "gated": any(g.get("conditionType") == GATE for g in spec.get("readinessGates") or []),
            "ip": status.get("podIP") or "", "conditions": conditions}


def peer_of(slim: dict) -> Peer:
    gate = slim["conditions"].get(GATE)
    return Peer(name=slim["metadata"]["name"], gated=slim["gated"], gate=gate.get("status") if gate else None,
                unreachable=parse_view(slim["conditions"].get(VIEW)),
                terminating=bool(slim["metadata"].get("deletionTimestamp")))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the loop every replica runs -----------------------------------------------------------
class PeerProber:
    """Probes the peers every ``interval`` and publishes this replica's view (one thread);
    while ``leading()``, applies :func:`decide` after each round and whenever a peer's view
    changes (another thread, so a slow round never delays a write)."""

    def __init__(self, client, namespace: str, pod_name: str, selector: str, port: int,
                 ca_file: Callable[[], str], server_name: str, *, interval: float, timeout: float,
                 failures: int, successes: int, leading: Callable[[], bool], serving: Callable[[], bool]):
        from .informer import Informer

        self.client, self.namespace, self.pod_name = client, namespace, pod_name
        self.port, self.ca_file, self.server_name = port, ca_file, server_name
        self.interval, self.timeout = interval, timeout
        self.streaks = Streaks(failures, successes)
        self.leading, self.serving = leading, serving
        self.pods = Informer(client, paths.pods(namespace), transform=slim_pod,
                             on_change=self._changed, name="webhook peers", labelSelector=selector)
        self._wake = threading.Event()
        self._unreachable: set[str] = set()  # this replica's view at its last round
        self.probed = False  # a round has completed: the streaks mean something
        self._written: dict[str, tuple[bool, float]] = {}  # pod -> (gate written, when)
        self.last_round = time.monotonic()
        self.registered = False
        self._withheld: set[str] = set()  # logged once, while it lasts
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer probe")

    def start(self) -> None:
        self.pods.start()
        threading.Thread(target=self._probe_loop, name="webhook peer probes", daemon=True).start()
        threading.Thread(target=self._decide_loop, name="webhook peer gates", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.pods.stop()
        self._pool.shutdown(wait=False)

    def _probe_loop(self) -> None:
        """A probe round every ``interval`` (at once after a round that took longer)."""
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.round()
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.exception("peer probe round failed")
            self.last_round = time.monotonic()
            self._wake.set()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def _decide_loop(self) -> None:
        """While leading, decide after every probe round and as soon as a peer publishes a new
        view (a witness need not wait for the leader's next round, nor a round for a write)."""
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.leading() and self.pods.synced.is_set() and self.probed:
                    self._lead({p["metadata"]["name"]: p for p in self.pods.snapshot()}, self._unreachable)
            except Exception:  # noqa: BLE001 - logged; the next pass tries again
                log.exception("peer gate pass failed")

    def _changed(self, kind: str, old: dict | None, new: dict | None) -> None:
        """A peer's published view changed (the informer's thread): decide again."""
        if new is not None and new["metadata"]["name"] != self.pod_name and \
                (old or {}).get("conditions", {}).get(VIEW) != new["conditions"].get(VIEW):
            self._wake.set()

    def probe(self, ip: str) -> bool:
        from .health import webhook_self_check

        return webhook_self_check(ip, self.port, self.ca_file, self.server_name, self.timeout)() is None

    def round(self) -> None:
        from . import metrics

        if not self.pods.synced.is_set():
            return
        pods = {p["metadata"]["name"]: p for p in self.pods.snapshot()}
        # Only the replicas that declare the gate: the ones this design manages (and never
        # some other pod the selector happens to match).
        peers = {n: p for n, p in pods.items() if n != self.pod_name and p["gated"] and p["ip"]
                 and not p["metadata"]["deletionTimestamp"]}
        results = dict(zip(peers, self._pool.map(lambda p: self.probe(p["ip"]), peers.values())))
        for name, ok in results.items():
            self.streaks.record(name, peers[name]["ip"], ok)
            metrics.PEER_PROBES.labels("ok" if ok else "failed").inc()
        self.streaks.forget_except(peers)
        unreachable = {n for n in peers if self.streaks.verdict(n) == UNREACHABLE}
        self._unreachable = unreachable
        metrics.PEERS_UNREACHABLE.set(len(unreachable))
        self.probed = True
        own = pods.get(self.pod_name)
        if own is not None and own["gated"]:  # a pod without the gate is left as it is
            self._publish(own, unreachable)

    def _publish(self, own: dict, unreachable: set[str]) -> None:
        """This replica's view, when it changed; and its own gate True once, when it first serves."""
        conditions = []
        view = view_condition(unreachable)
        current = own["conditions"].get(VIEW)
        if current is None or (current.get("status"), current.get("message") or "") != (view["status"], view["message"]):
            conditions.append(view)
        register = not self.registered and self.serving()
        if register and own["conditions"].get(GATE, {}).get("status") != "True":
            conditions.append({"type": GATE, "status": "True", "reason": "Serving",
                               "message": "set by the replica itself when its webhook started answering"})
        if (not conditions or self._patch(self.pod_name, conditions)) and register:
            self.registered = True

    def _lead(self, pods: dict[str, dict], unreachable: set[str]) -> None:
        from . import metrics

        peers = {n: peer_of(p) for n, p in pods.items()}
        if self.pod_name in peers:  # the leader's own view, as fresh as this round
            peers[self.pod_name] = Peer(self.pod_name, peers[self.pod_name].gated, peers[self.pod_name].gate,
                                        frozenset(unreachable), peers[self.pod_name].terminating)
        reach = {n: self.streaks.verdict(n) for n in peers if n != self.pod_name}
        decision = decide(self.pod_name, peers, reach)
        metrics.PEER_MARKS_WITHHELD.inc(len(decision.withheld))
        for name in sorted(set(decision.withheld) - self._withheld):
            log.warning("peer %s is unreachable, but no replica this one reaches confirms it: left in", name)
        self._withheld = set(decision.withheld)
        now = time.monotonic()
        for name, up in decision.writes.items():
            if self._written.get(name, (None, 0.0))[0] == up and now - self._written[name][1] < 2 * self.interval:
                continue  # just written; the cache has not caught up yet
            condition = {"type": GATE, "status": "True" if up else "False",
                         "reason": "Reachable" if up else "Unreachable",
                         "message": f"{'reached' if up else 'not reached'} by the leader {self.pod_name}"
                                    + ("" if up else " and by another replica")}
            conditions = [condition]
            if not up:  # a lost kubelet cannot fold the gate into Ready: write it as the node controller does
                conditions.append({"type": "Ready", "status": "False", "reason": "WebhookUnreachable",
                                   "message": condition["message"]})
            if self._patch(name, conditions):
                self._written[name] = (up, now)
                metrics.PEER_GATE_WRITES.labels("True" if up else "False").inc()
                log.info("webhook peer %s marked %s", name, "reachable" if up else "unreachable",
                         extra={"pod": name, "reachable": up})

    def _patch(self, pod: str, conditions: list[dict]) -> bool:
        from kubekit.api import ApiError

        stamp = _now()
        body = {"status": {"conditions": [{**c, "lastTransitionTime": stamp} for c in conditions]}}
        try:
            self.client.request("PATCH", paths.pods(self.namespace, pod, "status"), body=body,
                                timeout=max(1.0, self.interval), content_type="application/strategic-merge-patch+json")
            return True
        except (ApiError, OSError) as err:
            log.warning("cannot write the conditions of pod %s: %s", pod, str(err).splitlines()[0] if str(err) else err)
            return False
        except Exception as err:  # noqa: BLE001 - urllib3's errors: unreachable apiserver
            log.warning("cannot write the conditions of pod %s: %s", pod, err.__class__.__name__)
            return False
