"""The leader's decisions on the webhook readiness gate (manager/peers.py), table-driven: who
is taken out, who is let back, and the safety rules (never itself, never without a reachable
witness, so a leader cut off from its peers takes no one out); a follower's decision on a
silent leader (only the Lease holder, only silent, only with a witness, never itself); the
probe streaks' hysteresis; the published view's round trip."""

from __future__ import annotations

import itertools

import pytest

from manager.peers import (GATE, REACHABLE, UNKNOWN, UNREACHABLE, VIEW, Peer, Streaks, decide, decide_as_follower,
                           holder_pod, parse_view, peer_of, slim_pod, view_condition)
from manager.options import validate

U, R, K = UNREACHABLE, REACHABLE, UNKNOWN


def peers(*specs) -> dict[str, Peer]:
    """``("b", "True", {"c"})``: pod b, gate True, publishes it cannot reach c."""
    out = {}
    for spec in specs:
        name, gate, *rest = spec
        out[name] = Peer(name, gate=gate, unreachable=frozenset(rest[0] if rest else ()))
    return out


CASES = [
    # (id, leader, peers, leader's verdicts, expected writes, expected withheld)
    ("all well", "a", peers(("a", "True"), ("b", "True"), ("c", "True")), {"b": R, "c": R}, {}, []),
    ("node loss: witness agrees", "a", peers(("a", "True", {"c"}), ("b", "True", {"c"}), ("c", "True")),
     {"b": R, "c": U}, {"c": False}, []),
    ("node loss: the witness still reaches it", "a", peers(("a", "True", {"c"}), ("b", "True"), ("c", "True")),
     {"b": R, "c": U}, {}, ["c"]),
    ("the witness agrees but the leader does not reach the witness", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"c"}), ("c", "True")), {"b": U, "c": U}, {}, ["b", "c"]),
    ("partitioned leader: sees everyone down, reaches no witness", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"a"}), ("c", "True", {"a"})), {"b": U, "c": U}, {}, ["b", "c"]),
    ("the new leader after a partition takes the old one out", "b",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, {"a": False}, []),
    ("the unreachable one's own claim is no witness", "a",
     peers(("a", "True", {"c"}), ("b", "True"), ("c", "True", {"c"})), {"b": R, "c": U}, {}, ["c"]),
    ("two replicas: no witness exists", "a", peers(("a", "True", {"b"}), ("b", "True", {"a"})), {"b": U}, {}, ["b"]),
    ("zone of two lost out of three: no witness left", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True"), ("c", "True")), {"b": U, "c": U}, {}, ["b", "c"]),
    ("five replicas, a zone of two lost", "a",
     peers(("a", "True", {"d", "e"}), ("b", "True", {"d", "e"}), ("c", "True", {"d"}), ("d", "True"), ("e", "True")),
     {"b": R, "c": R, "d": U, "e": U}, {"d": False, "e": False}, []),
    ("already out: nothing to write", "a", peers(("a", "True"), ("b", "True", {"c"}), ("c", "False")),
     {"b": R, "c": U}, {}, []),
    ("back: reachable again is let in", "a", peers(("a", "True"), ("b", "True"), ("c", "False")),
     {"b": R, "c": R}, {"c": True}, []),
    ("no verdict yet (mixed results): nothing written either way", "a",
     peers(("a", "True"), ("b", "True", {"c"}), ("c", "False"), ("d", "True")), {"b": R, "c": K, "d": K}, {}, []),
    ("a new pod without the condition, reachable, is let in", "a", peers(("a", "True"), ("b", None)),
     {"b": R}, {"b": True}, []),
    ("a new pod without the condition, unreachable, is left alone", "a",
     peers(("a", "True", {"b"}), ("b", None), ("c", "True", {"b"})), {"b": U, "c": R}, {}, []),
    ("the leader sets itself True, never False", "a", peers(("a", "False", {"b"}), ("b", "True")),
     {"b": R}, {"a": True}, []),
    ("the leader missing its condition sets it", "a", peers(("a", None), ("b", "True")), {"b": R}, {"a": True}, []),
]


@pytest.mark.parametrize("leader, pods, reach, writes, withheld", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(leader, pods, reach, writes, withheld):
    decision = decide(leader, pods, reach)
    assert decision.writes == writes
    assert decision.withheld == withheld


def test_pods_without_the_gate_or_terminating_are_never_written():
    pods = {"a": Peer("a", gate="True"), "b": Peer("b", gated=False, gate="True"),
            "c": Peer("c", gate="True", terminating=True), "d": Peer("d", gate="True", unreachable=frozenset("bc")),
            "e": Peer("e", gated=False, gate=None)}
    assert decide("a", pods, {"b": U, "c": U, "d": R, "e": R}).writes == {}


NAMES = "abcd"


def every_world():
    """Every combination, for four replicas, of gates, published views and the leader's verdicts."""
    gates = ("True", "False", None)
    for leader in "ab":
        for gate_of in itertools.product(gates, repeat=len(NAMES)):
            for views in itertools.product((frozenset(), frozenset("cd"), frozenset("abd")), repeat=2):
                for verdicts in itertools.product((R, U, K), repeat=3):
                    pods = {n: Peer(n, gate=g, unreachable=(views[i] - {n}) if i < 2 else frozenset("a"))
                            for i, (n, g) in enumerate(zip(NAMES, gate_of))}
                    others = [n for n in NAMES if n != leader]
                    yield leader, pods, dict(zip(others, verdicts))


def test_safety_holds_in_every_world():
    """Never False on the leader; False only on a peer the leader finds unreachable, confirmed
    by a replica the leader reaches; and whenever something is taken out, the leader and a
    witness stay in: the writes never leave fewer than two gates True."""
    checked = 0
    for leader, pods, reach in every_world():
        decision = decide(leader, pods, reach)
        assert decision.writes.get(leader) is not False
        out = [n for n, up in decision.writes.items() if not up]
        for name in out:
            assert reach[name] == UNREACHABLE
            assert any(w not in (leader, name) and reach.get(w) == REACHABLE and name in pods[w].unreachable
                       for w in pods)
        if out:
            after = {n: ("True" if decision.writes[n] else "False") if n in decision.writes else p.gate
                     for n, p in pods.items()}
            assert after[leader] == "True"
            assert sum(1 for g in after.values() if g == "True") >= 2
        if all(v != REACHABLE for v in reach.values()):  # cut off from every peer: takes no one out
            assert out == []
        checked += 1
    assert checked > 10000


FOLLOWER_CASES = [
    # (id, me, the Lease holder's pod, peers, my verdicts, the holder silent, expected writes, expected withheld)
    ("leader silent, unreachable, a witness agrees: out", "b", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, True,
     {"a": False}, []),
    ("leader still renewing (cut off from its peers only): never", "b", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, False, {}, []),
    ("no witness: the other follower still reaches it", "b", "a",
     peers(("a", "True"), ("b", "True", {"a"}), ("c", "True")), {"a": U, "c": R}, True, {}, ["a"]),
    ("no witness: the one that agrees is not reached", "b", "a",
     peers(("a", "True"), ("b", "True", {"a", "c"}), ("c", "True", {"a"})), {"a": U, "c": U}, True, {}, ["a"]),
    ("no witness: the one that agrees is out itself", "b", "a",
     peers(("a", "True"), ("b", "True", {"a"}), ("c", "False", {"a"})), {"a": U, "c": R}, True, {}, ["a"]),
    ("two replicas: no witness exists", "b", "a", peers(("a", "True"), ("b", "True", {"a"})), {"a": U}, True, {}, ["a"]),
    ("the leader's own claim is no witness", "b", "a",
     peers(("a", "True", {"a"}), ("b", "True", {"a"}), ("c", "True")), {"a": U, "c": R}, True, {}, ["a"]),
    ("self: the holder never takes itself out", "a", "a",
     peers(("a", "True", {"b", "c"}), ("b", "True", {"a"}), ("c", "True", {"a"})), {"b": U, "c": U}, True, {}, []),
    ("a non-leader peer: never by a follower", "b", "a",
     peers(("a", "True", {"c"}), ("b", "True", {"a", "c"}), ("c", "True", {"a"}), ("d", "True", {"c"})),
     {"a": R, "c": U, "d": R}, True, {}, []),
    ("the leader still reachable by me: never", "b", "a",
     peers(("a", "True"), ("b", "True"), ("c", "True", {"a"})), {"a": R, "c": R}, True, {}, []),
    ("no verdict on the leader yet: nothing", "b", "a",
     peers(("a", "True"), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": K, "c": R}, True, {}, []),
    ("already out: nothing to write", "b", "a",
     peers(("a", "False"), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, True, {}, []),
    ("I am out myself: I take no one out", "b", "a",
     peers(("a", "True"), ("b", "False", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, True, {}, []),
    ("no holder known: nothing", "b", None,
     peers(("a", "True"), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, True, {}, []),
    ("the holder's pod is gone: nothing", "b", "z",
     peers(("a", "True"), ("b", "True", {"a"}), ("c", "True", {"a"})), {"a": U, "c": R}, True, {}, []),
    ("five replicas, the leader's zone of two lost: the leader only", "c", "a",
     peers(("a", "True"), ("b", "True"), ("c", "True", {"a", "b"}), ("d", "True", {"a", "b"}), ("e", "True", {"a", "b"})),
     {"a": U, "b": U, "d": R, "e": R}, True, {"a": False}, []),
]


@pytest.mark.parametrize("me, holder, pods, reach, silent, writes, withheld", [c[1:] for c in FOLLOWER_CASES],
                         ids=[c[0] for c in FOLLOWER_CASES])
def test_decide_as_follower(me, holder, pods, reach, silent, writes, withheld):
    decision = decide_as_follower(me, holder, pods, reach, silent)
    assert decision.writes == writes
    assert decision.withheld == withheld


def test_a_follower_never_writes_a_holder_without_the_gate_or_terminating():
    for target in (Peer("a", gated=False, gate="True"), Peer("a", gate="True", terminating=True)):
        pods = {"a": target, "b": Peer("b", gate="True", unreachable=frozenset("a")),
                "c": Peer("c", gate="True", unreachable=frozenset("a"))}
        assert decide_as_follower("b", "a", pods, {"a": U, "c": R}, True).writes == {}


def test_safety_holds_for_followers_in_every_world():
    """A follower writes only False, only on the Lease holder, never on itself, only when the
    holder is silent, unreachable to it and to a witness it reaches that is in; and the marker
    and that witness stay in: never fewer than two gates True after its write."""
    checked = written = 0
    for holder, pods, reach in every_world():
        me = "b" if holder == "a" else "a"
        mine = {n: v for n, v in reach.items() if n != me}
        mine[holder] = reach.get(me, K)  # the verdicts as the follower's own
        for silent in (True, False):
            decision = decide_as_follower(me, holder, pods, mine, silent)
            assert set(decision.writes) <= {holder} and all(up is False for up in decision.writes.values())
            if decision.writes:
                written += 1
                assert silent and mine[holder] == UNREACHABLE and pods[me].gate == "True"
                assert any(w not in (me, holder) and mine.get(w) == REACHABLE and pods[w].gate == "True"
                           and holder in pods[w].unreachable for w in pods)
                after = {n: "False" if n == holder else p.gate for n, p in pods.items()}
                assert sum(1 for g in after.values() if g == "True") >= 2
            checked += 1
    assert checked > 10000 and written > 0


def test_the_holder_pod_is_found_by_the_lease_uid_else_by_the_identity():
    pods = {"m-1": {"metadata": {"name": "m-1", "uid": "u1"}}, "m-2": {"metadata": {"name": "m-2", "uid": "u2"}}}
    assert holder_pod("m-1_0b7c", "u2", pods) == "m-2"  # the Lease's UID wins
    assert holder_pod("m-1_0b7c", "", pods) == "m-1"
    assert holder_pod("m-9_0b7c", "", pods) is None
    assert holder_pod("m-1_0b7c", "u9", pods) is None  # the pod it ran in is gone
    assert holder_pod("node-3", "", pods) is None  # host network: a hostname names no pod here


@pytest.mark.parametrize("failures, successes, results, verdicts", [
    (2, 2, [False], [K]),
    (2, 2, [False, False], [K, U]),
    (2, 2, [False, False, True], [K, U, K]),  # one answer: no verdict, so no write either way
    (2, 2, [False, False, True, True], [K, U, K, R]),
    (2, 2, [True, False, True, False], [K, K, K, K]),  # flapping: never a verdict
    (1, 1, [True, False, True], [R, U, R]),
    (3, 2, [False, False, False, False], [K, K, U, U]),
])
def test_streaks_have_hysteresis(failures, successes, results, verdicts):
    streaks = Streaks(failures, successes)
    seen = []
    for ok in results:
        streaks.record("b", "198.18.0.2", ok)
        seen.append(streaks.verdict("b"))
    assert seen == verdicts


def test_a_peer_at_a_new_address_starts_over_and_gone_peers_are_forgotten():
    streaks = Streaks(2, 2)
    for _ in range(3):
        streaks.record("b", "198.18.0.2", False)
    assert streaks.verdict("b") == U
    streaks.record("b", "198.18.0.9", False)
    assert streaks.verdict("b") == K
    streaks.forget_except(["c"])
    assert streaks.verdict("b") == K


@pytest.mark.parametrize("unreachable", [set(), {"b"}, {"b", "kruise-controller-manager-7d9f-x2"}])
def test_the_published_view_round_trips(unreachable):
    condition = view_condition(unreachable)
    assert condition["type"] == VIEW and condition["status"] == ("False" if unreachable else "True")
    assert parse_view(condition) == frozenset(unreachable)


@pytest.mark.parametrize("condition", [None, {"type": VIEW, "status": "True", "message": "cannot reach: b"},
                                       {"type": VIEW, "status": "False", "message": "something else"}])
def test_a_view_that_names_no_one_claims_nothing(condition):
    assert parse_view(condition) == frozenset()


def test_a_pod_as_the_leader_reads_it():
    pod = {"metadata": {"name": "m-1", "namespace": "kruise-system", "uid": "u"},
           "spec": {"readinessGates": [{"conditionType": GATE}]},
           "status": {"podIP": "198.18.1.3", "conditions": [
               {"type": GATE, "status": "False"}, {"type": "Ready", "status": "False"},
               {"type": "ContainersReady", "status": "True"}, view_condition({"m-2"})]}}
    peer = peer_of(slim_pod(pod))
    assert peer == Peer("m-1", gated=True, gate="False", unreachable=frozenset({"m-2"}), terminating=False)
    bare = peer_of(slim_pod({"metadata": {"name": "m-3", "deletionTimestamp": "x"}, "spec": {}, "status": {}}))
    assert bare == Peer("m-3", gated=False, gate=None, terminating=True)


@pytest.mark.parametrize("args, message", [
    (["--webhook-peer-probe-interval=0"], "--webhook-peer-probe-interval"),
    (["--webhook-peer-probe-timeout=0s"], "--webhook-peer-probe-timeout"),
    (["--webhook-peer-failure-threshold=0"], "--webhook-peer-failure-threshold"),
    (["--webhook-peer-success-threshold=-1"], "--webhook-peer-success-threshold"),
])
def test_bad_settings_are_refused_naming_the_flag(args, message):
    from manager.options import parse

    with pytest.raises(ValueError, match=message):
        validate(parse(args, environ={}))
