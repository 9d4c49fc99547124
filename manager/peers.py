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
would, since a lost kubelet cannot fold the gate into Ready), True lets it back. The one
exception, the leader itself, lost or cut off: its followers take it out (below).

Hysteresis: a peer is *unreachable* after ``--webhook-peer-failure-threshold`` failed probes in
a row and *reachable* after ``--webhook-peer-success-threshold`` successes in a row; in between
nothing is written, so one late answer neither takes a replica out nor lets it in.

A lost or partitioned *leader* cannot take itself out, and waiting for its successor costs the
Lease's duration (15 s by default). So a replica that does not lead (a *follower*) takes the
Lease holder's pod out itself (gate False, Ready False) when all of these hold
(:func:`decide_as_follower`):

1. it cannot reach the leader (its own streak: past the failure threshold);
2. a witness agrees: another replica, not the leader, that this one reaches now, that is in
   (its gate True) and that publishes that it cannot reach the leader either;
3. the leader is *silent*: the Lease's record (holder and renewTime), read by this replica
   within the last ``2 x --leader-election-retry-period``, has not changed for longer than
   that same ``2 x retry period`` of this replica's own clock (no other machine's clock is
   read). A leader that reaches the apiserver renews every retry period, and followers see
   each renewal through their watch of the Lease (or their poll, every retry period): a
   renewing leader is never silent; silence means at least one renewal missed, with a whole
   retry period of margin for the renewal's and the read's latency. A bound of the renew
   deadline (10 s) would be safe as well, but slow, and buys nothing: a leader that cannot
   renew cannot write either (the same apiserver), and one that could is let back at once
   (below). With the defaults: out after ~4 s of silence (the drill's 1 s retry period: 2 s);
4. this replica is in itself (gate True), and the leader's pod declares the gate and is not
   terminating.

A follower writes nothing else: never True, never on itself, never on another follower. It
takes out once per Lease record (holder and renewTime): a leader put back since (by itself,
see below) while the record stays the same is not taken out again by it, so there is no
flapping fight, at most one False and one True per record.

Letting it back: a leader that renews again still leads and sets its own gate True (as
always); one that stopped leading exits, and its next process sets its own gate True when it
first serves (bootstrapping, below); and the next leader lets it in once it reaches it. A
follower never writes True, so it never fights either of them.

Safety -- never every replica out:

- the leader never sets False on itself (and sets itself True): the replica that writes stays in;
- it sets False on a peer only when a *witness* agrees: another replica that the leader itself
  reaches now and that publishes that it cannot reach the peer either. The witness, reachable,
  is never marked out in the same pass, so whenever a replica is taken out at least two stay
  in (the leader and its witness). A leader cut off from its peers reaches no witness, so it
  marks no one, however many it sees down; cut off from the apiserver as well (a partitioned
  machine), it cannot write at all, and its renewals fail, so it stops leading within
  ``--leader-election-renew-deadline``;
- a follower sets False only on the one pod the Lease names, a leader silent for two retry
  periods, and only while it and its witness are in: after its write, at least those two stay
  in. Followers never take each other out, so at most the one silent leader leaves by their
  hand. A leader cut off from its peers only (it still reaches the apiserver) keeps renewing:
  never silent, so no one is taken out (its followers see it unreachable, and wait);
- only pods that declare the gate are probed and written, and a replica whose own pod does not
  declare it publishes and writes nothing (an install without the gate is left as it is);
  terminating pods are never written.

Without a witness (two replicas, or every other replica lost with the one probed) nothing is
taken out early: the node controller's grace period applies, as before (for a lost leader, the
next leader's decision after the Lease, if a witness is left by then). With
``--enable-leader-election=false`` every replica leads: there are no followers.

Bootstrapping: a pod that declares the gate is not Ready until the condition is True, so each
replica sets its own gate True once, when its webhook first answers its own readiness check
(without waiting for a leader); after that only the leader writes it (and the followers, False
on a silent leader). With no leader, gates stay as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kubekit import paths
from kubekit.timestamps import metav1_time

if TYPE_CHECKING:
    from .lease import HolderView

log = logging.getLogger("manager.peers")

GATE = "kruise.io/webhook-reachable"  # the readiness gate the leader writes
VIEW = "kruise.io/webhook-peers-reachable"  # each replica's own view of its peers
VIEW_PREFIX = "cannot reach: "

REACHABLE, UNREACHABLE, UNKNOWN = "reachable", "unreachable", "unknown"
# The gate's reason when False: written by the leader, or by a follower on a silent leader.
UNREACHABLE_REASON, SILENT_LEADER_REASON = "Unreachable", "LeaderUnreachable"


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


def decide_as_follower(me: str, holder: str | None, peers: dict[str, Peer], reach: dict[str, str],
                       silent: bool) -> Decision:
    """What a replica that does not lead writes: False on the Lease holder's pod ``holder`` when
    that leader is ``silent`` (has not renewed for longer than the bound, see the module
    docstring), this replica finds it unreachable, and a witness agrees; nothing else, ever.
    ``withheld``: silent and unreachable, but no witness."""
    decision = Decision()
    target, own = peers.get(holder or ""), peers.get(me)
    if target is None or holder == me or own is None or not target.gated or target.terminating:
        return decision
    if target.gate != "True" or not silent or reach.get(holder) != UNREACHABLE:
        return decision
    if not own.gated or own.gate != "True":  # a replica that is out itself takes no one out
        return decision
    if any(w not in (me, holder) and reach.get(w) == REACHABLE and other.gated and other.gate == "True"
           and not other.terminating and holder in other.unreachable for w, other in peers.items()):
        decision.writes[holder] = False
    else:
        decision.withheld.append(holder)
    return decision


def holder_pod(identity: str, pod_uid: str, pods: dict[str, dict]) -> str | None:
    """The name of the Lease holder's pod among ``pods`` (slim, by name): the pod the Lease names
    by UID, else (no UID in the Lease) the one its identity names, ``<pod>_<uuid>``."""
    if pod_uid:
        return next((name for name, pod in pods.items() if pod["metadata"].get("uid") == pod_uid), None)
    name = identity.rpartition("_")[0]
    return name if name in pods else None


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
    return metav1_time()


# ---- the loop every replica runs -----------------------------------------------------------
class PeerProber:
    """Probes the peers every ``interval`` and publishes this replica's view (one thread);
    applies :func:`decide` while ``leading()``, else :func:`decide_as_follower`, after each
    round, whenever a peer's view changes and when the leader's silence passes ``silence``
    (another thread, so a slow round never delays a write). ``lease()``: the Lease's holder as
    this replica last read it (:meth:`manager.lease.LeaderElector.holder_view`)."""

    def __init__(self, client, namespace: str, pod_name: str, selector: str, port: int,
                 ca_file: Callable[[], str], server_name: str, *, interval: float, timeout: float,
                 failures: int, successes: int, leading: Callable[[], bool], serving: Callable[[], bool],
                 lease: Callable[[], "HolderView | None"] = lambda: None, silence: float = float("inf")):
        from .informer import Informer

        self.client, self.namespace, self.pod_name = client, namespace, pod_name
        self.port, self.ca_file, self.server_name = port, ca_file, server_name
        self.interval, self.timeout = interval, timeout
        self.streaks = Streaks(failures, successes)
        self.leading, self.serving = leading, serving
        self.lease, self.silence = lease, silence
        self._next_pass = interval  # the decide loop's next wait: sooner when a leader's silence is due
        self._marked: tuple[str, str | None] | None = None  # the Lease record whose holder this replica took out
        self._withheld_record: tuple[str, str | None] | None = None  # logged once, while it lasts
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
        """Decide after every probe round and as soon as a peer publishes a new view (a witness
        need not wait for the next round, nor a round for a write); as a follower, also the
        moment the leader's silence passes the bound."""
        while not self._stop.is_set():
            self._wake.wait(self._next_pass)
            self._wake.clear()
            self._next_pass = self.interval
            if self._stop.is_set():
                return
            try:
                if self.pods.synced.is_set() and self.probed:
                    pods = {p["metadata"]["name"]: p for p in self.pods.snapshot()}
                    if self.leading():
                        self._lead(pods, self._unreachable)
                    elif self.pod_name in pods and pods[self.pod_name]["gated"]:
                        self._follow(pods)
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
            message = f"{'reached' if up else 'not reached'} by the leader {self.pod_name}" + (
                "" if up else " and by another replica")
            if self._write_gate(name, up, "Reachable" if up else UNREACHABLE_REASON, message):
                self._written[name] = (up, now)

    def _follow(self, pods: dict[str, dict]) -> None:
        """Not leading: take the Lease holder's pod out when :func:`decide_as_follower` says so,
        once per Lease record (a leader that still writes and puts itself back is not fought)."""
        from . import metrics

        view = self.lease()
        holder = holder_pod(view.holder, view.holder_pod_uid, pods) if view is not None else None
        if holder is None:
            return
        fresh = view.read_s <= self.silence  # a replica that cannot read the Lease knows nothing of it
        silent = fresh and view.unchanged_s > self.silence
        peers = {n: peer_of(p) for n, p in pods.items()}
        reach = {n: self.streaks.verdict(n) for n in peers if n != self.pod_name}
        decision = decide_as_follower(self.pod_name, holder, peers, reach, silent)
        if fresh and not silent and reach.get(holder) == UNREACHABLE:  # decide again the moment it is silent
            self._next_pass = min(self.interval, max(0.05, self.silence - view.unchanged_s + 0.01))
        record = (view.holder, view.renew_time)
        metrics.PEER_MARKS_WITHHELD.inc(len(decision.withheld))
        if decision.withheld and self._withheld_record != record:
            log.warning("the leader's pod %s is unreachable and silent, but no replica this one reaches confirms "
                        "it: left in", holder)
        self._withheld_record = record if decision.withheld else None
        for name, up in decision.writes.items():
            if record == self._marked:
                continue  # taken out once for this record; put back since: not fought
            message = (f"not reached by {self.pod_name} nor by another replica, and its Lease not renewed for "
                       f"{view.unchanged_s:.1f}s")
            if self._write_gate(name, up, SILENT_LEADER_REASON, message):
                self._marked = record

    def _write_gate(self, name: str, up: bool, reason: str, message: str) -> bool:
        """The gate (and, for False, Ready: a lost kubelet cannot fold the gate into Ready, so it
        is written as the node controller does)."""
        from . import metrics

        conditions = [{"type": GATE, "status": "True" if up else "False", "reason": reason, "message": message}]
        if not up:
            conditions.append({"type": "Ready", "status": "False", "reason": "WebhookUnreachable", "message": message})
        if not self._patch(name, conditions):
            return False
        metrics.PEER_GATE_WRITES.labels("True" if up else "False").inc()
        log.info("webhook peer %s marked %s", name, "reachable" if up else "unreachable",
                 extra={"pod": name, "reachable": up, "by": "leader" if self.leading() else "follower"})
        return True

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
