"""The drill's arithmetic: leader gap from Lease records, budgets, classification summary,
endpoint removal from samples, each replica's count and share from its counter's reads. No
cluster."""

from __future__ import annotations

import pytest

from kruisectl.drill import (ADMITTED, FAILED, NOT_INJECTED, SCENARIOS, WORKER_HEARTBEAT_INTERVAL_S,
                             WORKER_HEARTBEAT_TIMEOUT_S, WORKER_SCENARIOS, Budget, CounterRead, DrillOptions, Observer,
                             Outcome, ReplicaSeries, Sample, Scenario, ScenarioResult, default_budget, endpoint_removal,
                             exec_failure, in_flight, leader_gap, replica_counts, serving, shares_of, summarise,
                             worker_scenario)
from kruisectl.drill.observe import _pod_webhook_requests, _process_start


def spec(holder: str, renew: str, acquire: str = "2026-01-01T00:00:00.000000Z") -> dict:
    return {"holderIdentity": holder, "renewTime": f"2026-01-01T00:00:{renew}Z", "acquireTime":
            acquire if acquire.endswith("Z") else f"2026-01-01T00:00:{acquire}Z"}


@pytest.mark.parametrize("case, records, since, expected", [
    ("release then takeover", [(1, spec("a_1", "01.000000")), (5, spec("a_1", "05.000000")),
                               (6, spec("", "06.000000")), (6.1, spec("b_2", "06.020000", "06.020000"))],
     5.5, (0.02, "a_1", "b_2")),
    ("crash: new holder after the lease ran out", [(1, spec("a_1", "01.000000")), (20, spec("b_2", "17.500000", "17.500000"))],
     2, (16.5, "a_1", "b_2")),
    ("renewals only: nobody new", [(1, spec("a_1", "01.000000")), (3, spec("a_1", "03.000000"))], 2, (None, "a_1", None)),
    ("renewals after the disruption count as the old holder's", [(1, spec("a_1", "01.000000")), (3, spec("a_1", "03.000000")),
                                                                  (9, spec("b_2", "08.000000", "08.000000"))],
     2, (5.0, "a_1", "b_2")),
])
def test_leader_gap(case, records, since, expected):
    gap, old, new = leader_gap(records, since)
    assert (None if gap is None else round(gap, 3), old, new) == expected, case


@pytest.mark.parametrize("name, failed, gap", [("leader-crash", 1, 17.0), ("replica-crash", 1, None),
                                               ("eviction", 0, 1.0), ("rollout", 0, 1.0)])
def test_default_budgets_follow_the_design(name, failed, gap):
    budget = default_budget(SCENARIOS[name], DrillOptions(), lease_duration_s=15)
    assert (budget.failed, budget.not_injected, budget.leader_gap_s) == (failed, 0, gap)


@pytest.mark.parametrize("leader, gap", [(True, 5.0), (False, None)])
def test_a_container_restarted_in_its_pod_is_held_to_the_proven_death_budget_not_the_lease(leader, gap):
    scenario = Scenario("process-crash", "SIGKILL the container's first process", graceful=False,
                        moves_leader=leader, act=lambda target, deadline: [], replaces_victims=False,
                        restarts_in_place=True)
    for lease in (15, 60):
        assert default_budget(scenario, DrillOptions(), lease) == Budget(failed=1, leader_gap_s=gap,
                                                                         within_in_flight=True)
    assert default_budget(scenario, DrillOptions(leader_gap_budget_s=9), 15).leader_gap_s == (9 if leader else None)


def test_overridden_budgets():
    options = DrillOptions(crash_budget=0, leader_gap_budget_s=3)
    assert default_budget(SCENARIOS["leader-crash"], options, 15) == Budget(failed=0, leader_gap_s=3)
    assert default_budget(SCENARIOS["eviction"], options, 15) == Budget(failed=0, leader_gap_s=3)


@pytest.mark.parametrize("result, breaches", [
    (ScenarioResult("x", [], failed=0, not_injected=0, leader_gap_s=0.5, recovery_s=3), []),
    (ScenarioResult("x", [], failed=2, recovery_s=3), ["2 failed admissions (budget 1)"]),
    (ScenarioResult("x", [], not_injected=1, recovery_s=3), ["1 pods admitted without their sidecar (budget 0)"]),
    (ScenarioResult("x", [], leader_gap_s=7.5, recovery_s=3), ["leadership vacant 7.50s (budget 6s)"]),
    (ScenarioResult("x", [], recovery_s=None), ["the Deployment did not get back to its full ready count in time"]),
])
def test_budget_breaches(result, breaches):
    assert Budget(failed=1, leader_gap_s=6).breaches(result) == breaches


def test_summary_classifies_and_keeps_the_apiservers_messages():
    outcomes = [Outcome(0, 0.004, ADMITTED)] * 97 + [Outcome(0, 0.5, NOT_INJECTED),
                                                    Outcome(0, 11.0, FAILED, "context deadline exceeded"),
                                                    Outcome(0, 0.1, FAILED, "connection reset by peer")]
    result = ScenarioResult("x", [])
    summarise(result, outcomes, webhook_timeout_s=10)
    assert (result.requests, result.admitted, result.not_injected, result.failed, result.slow) == (100, 97, 1, 2, 1)
    assert result.p50_ms == 4.0 and result.max_ms == 500.0
    assert sorted(result.failures) == ["1x connection reset by peer", "1x context deadline exceeded"]


def sample(at: float, ready: set[str], pods: dict[str, str]) -> Sample:
    return Sample(at, frozenset(ready), len(ready), 3, {n: (ip, True, None) for n, ip in pods.items()}, True)


def test_endpoint_removal_is_when_the_victims_address_left_the_ready_endpoints():
    observer = Observer(api=None, names=None, timeout=1)
    pods = {"a": "198.18.1.2", "b": "198.18.1.3", "c": "198.18.1.4"}
    observer.samples = [sample(0.0, set(pods.values()), pods), sample(1.2, set(pods.values()), pods),
                        sample(1.4, {"198.18.1.3", "198.18.1.4"}, {"b": "198.18.1.3", "c": "198.18.1.4"})]
    assert endpoint_removal(observer, ["a"], began=1.0, ended=5) == 0.4
    # A replacement on the victim's node (host network) reuses its address: nothing to time.
    observer.samples[-1] = sample(1.4, set(pods.values()), {"a2": "198.18.1.2", "b": "198.18.1.3", "c": "198.18.1.4"})
    assert endpoint_removal(observer, ["a"], began=1.0, ended=5) is None


def test_pod_webhook_counters_of_both_managers():
    ours = ('kruise_manager_webhook_requests_total{path="/mutate-pod",result="patched"} 12.0\n'
            'kruise_manager_webhook_requests_total{path="/mutate-pod",result="allowed"} 3.0\n'
            'kruise_manager_webhook_requests_total{path="/validate-apps-kruise-io-v1alpha1-sidecarset",result="allowed"} 9.0\n')
    upstream = ('controller_runtime_webhook_requests_total{code="200",webhook="/mutate-pod"} 40\n'
                'controller_runtime_webhook_requests_total{code="200",webhook="/validate-pod"} 7\n')
    assert _pod_webhook_requests(ours) == 15.0
    assert _pod_webhook_requests(upstream) == 40.0


def test_process_start_time_of_both_managers():
    go = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7649e+09\n"
    assert _process_start(go) == 1.7649e9
    assert _process_start("process_start_time_seconds 1764900000.25\n") == 1764900000.25
    assert _process_start("kruise_manager_webhook_requests_total{} 3.0\n") is None


WINDOW = 1000.0  # unix time of the window's first round
OLD, NEW = 900.0, 1010.0  # process start times: before the window, inside it
UNREADABLE = CounterRead(None, error="ReadTimeoutError: timed out")


def ok(value: float, started: float | None = OLD) -> CounterRead:
    return CounterRead(value, started)


def series(*reads: CounterRead, at_start=True, at_end=True, ready=True) -> ReplicaSeries:
    return ReplicaSeries(list(reads), at_start=at_start, at_end=at_end, ready=ready)


@pytest.mark.parametrize("case, replicas, counts, errors", [
    ("a starved replica is counted at zero",
     {"a": series(ok(10), ok(60), ok(110)), "b": series(ok(5), ok(30), ok(55)), "c": series(ok(7), ok(7), ok(7))},
     {"a": 100, "b": 50, "c": 0}, []),
    ("a ready replica unreadable throughout is an error, not a gap",
     {"a": series(ok(10), ok(110)), "b": series(UNREADABLE, UNREADABLE)},
     {"a": 100}, ["replica b: its metrics could not be read (ReadTimeoutError: timed out)"]),
    ("a first read that failed is not a zero: the replica's whole lifetime would be credited",
     {"a": series(ok(10), ok(110)), "b": series(UNREADABLE, ok(5000), ok(5010))},
     {"a": 100}, ["replica b: its metrics could not be read at the window's start (ReadTimeoutError: timed out): "
                  "its count before is unknown"]),
    ("a first read that failed, of a process started inside the window: from zero",
     {"a": series(UNREADABLE, ok(40, NEW), ok(70, NEW))}, {"a": 70}, []),
    ("a replica still there at the end needs its read at the end",
     {"a": series(ok(10), ok(50), UNREADABLE)}, {},
     ["replica a: its metrics could not be read at the window's end (ReadTimeoutError: timed out)"]),
    ("a victim gone before the end keeps its last read",
     {"a": series(ok(10), ok(50), UNREADABLE, at_end=False), "b": series(ok(0), ok(20), ok(90))},
     {"a": 40, "b": 90}, []),
    ("a replica created in the window counts from zero",
     {"a": series(ok(10), ok(50)), "new": series(UNREADABLE, ok(3, NEW), ok(30, NEW), at_start=False)},
     {"a": 40, "new": 30}, []),
    ("a restart (new start time) adds what the new process counted",
     {"a": series(ok(100), ok(150), ok(170, NEW), ok(200, NEW))}, {"a": 50 + 170 + 30}, []),
    ("a restart told by a counter that went down (no start time)",
     {"a": series(ok(100, None), ok(150, None), ok(20, None), ok(25, None))}, {"a": 50 + 20 + 5}, []),
    ("a hung replica unreadable mid-window loses nothing: its counter is cumulative",
     {"a": series(ok(100), UNREADABLE, UNREADABLE, ok(130))}, {"a": 30}, []),
    ("a replica never ready and never read (pending) is no replica of the window",
     {"a": series(ok(0), ok(9)), "pending": series(UNREADABLE, UNREADABLE, ready=False)}, {"a": 9}, []),
    ("a replica never ready that counted nothing is left out; one that counted is in",
     {"a": series(ok(0), ok(9)), "idle": series(ok(4), ok(4), ready=False), "busy": series(ok(4), ok(6), ready=False)},
     {"a": 9, "busy": 2}, []),
    ("seen ready by the observer but never listed by the counters",
     {"a": series(ok(0), ok(9)), "flash": ReplicaSeries(ready=True)}, {"a": 9},
     ["replica flash: its metrics could not be read (never listed)"]),
])
def test_replica_counts(case, replicas, counts, errors):
    assert replica_counts(replicas, WINDOW) == (counts, errors), case


@pytest.mark.parametrize("counts, shares", [
    ({"a": 100, "b": 50, "c": 0}, {"a": 0.667, "b": 0.333, "c": 0.0}),
    ({"a": 1, "b": 1, "c": 2}, {"a": 0.25, "b": 0.25, "c": 0.5}),
    ({"a": 0, "b": 0}, None),  # nothing counted: no share reads as an even split
    ({}, None),
])
def test_shares_keep_the_starved_replicas(counts, shares):
    assert shares_of(counts) == shares


def test_the_report_carries_the_budget_it_was_held_to():
    budget = default_budget(SCENARIOS["replica-delete"], DrillOptions(), lease_duration_s=15)
    row = ScenarioResult("replica-delete", [], budget=budget, errors=["replica x: ..."]).to_dict()
    assert row["budget"] == {"failed": 0, "notInjected": 0, "leaderGapS": None}
    assert row["errors"] == ["replica x: ..."] and row["shares"] is None and row["replicaCounts"] is None


# ---- faults of the manager's worker process ----------------------------------------------
def _nothing(target, pod):
    return None


@pytest.mark.parametrize("case, outcomes, struck, expected", [
    ("answered before, sent after, and one across the instant", [(0.0, 0.5), (2.0, 0.1), (0.9, 0.3)], [(1.0, 1.0)], 1),
    ("a request that ends as the fault strikes was still outstanding", [(0.5, 0.5)], [(1.0, 1.0)], 1),
    ("a window (an OOM kill between two polls) takes what overlaps it", [(0.0, 1.05), (1.08, 0.01), (1.2, 0.1)],
     [(1.0, 1.1)], 2),
    ("two faults, one request counted once", [(0.0, 10.0), (5.5, 0.1)], [(1.0, 1.0), (5.0, 6.0)], 2),
    ("nothing outstanding", [(0.0, 0.1)], [(1.0, 1.0)], 0),
])
def test_in_flight_is_what_was_outstanding_when_the_fault_struck(case, outcomes, struck, expected):
    assert in_flight([Outcome(start, latency, FAILED) for start, latency in outcomes], struck) == expected, case


@pytest.mark.parametrize("fault, struck", [("worker-crash", True), ("worker-hang", False), ("worker-oom", False)])
def test_only_a_kill_marks_its_own_instant(fault, struck):
    """A SIGKILL's death is the signal's instant; a hang's is the supervisor's later kill and an
    OOM kill's is the kernel's choice (its action reports that one itself)."""
    from kruisectl.drill import Target
    from kruisectl.inventory import Names

    class Leaderless(Target):
        def pods(self):
            return [{"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]

        def leader_pod(self, pods=None):
            return None

    target = Leaderless(None, Names(namespace="kruise-system"), 1)
    scenario = worker_scenario(fault, False, _nothing)
    assert scenario.act(target, 0.0) == ["a"]
    assert bool(target.struck) == struck
    if struck:
        (before, after), = target.struck
        assert before <= after


@pytest.mark.parametrize("fault, leader, gap", [
    ("worker-crash", True, 3.0),  # a proven death: no lease duration to wait out
    ("worker-crash", False, None),
    ("worker-oom", True, 3.0),  # from the death the drill saw (gap_after_death)
    ("worker-hang", True, 3.0 + 5.0 + 1.5),  # plus the time to tell the hang: timeout, a beat, a poll
    ("worker-hang", False, None),
])
def test_worker_fault_budgets_follow_the_design_not_the_lease(fault, leader, gap):
    scenario = worker_scenario(fault, leader, _nothing)
    assert scenario.name == f"{fault}-{'leader' if leader else 'replica'}"
    assert (scenario.graceful, scenario.moves_leader, scenario.replaces_victims) == (False, leader, False)
    for lease in (15, 60):
        budget = default_budget(scenario, DrillOptions(), lease_duration_s=lease)
        assert (budget.failed, budget.not_injected, budget.leader_gap_s) == (1, 0, gap)


@pytest.mark.parametrize("fault, leader, from_death", [
    ("worker-oom", True, True),  # the kernel chooses when: the budget starts at the death seen
    ("worker-oom", False, False),  # no leader to hand over
    ("worker-crash", True, False),  # the signal is the death
    ("worker-hang", True, False),  # its detection time is in the budget already
])
def test_only_the_oom_killers_gap_is_counted_from_the_death(fault, leader, from_death):
    budget = default_budget(worker_scenario(fault, leader, _nothing), DrillOptions(), 15)
    assert budget.gap_after_death is from_death
    assert ("leaderGapFromDeath" in budget.to_dict()) is from_death


@pytest.mark.parametrize("gap, died, breaches", [
    (3.24, 1.6, []),  # a CI run's OOM: 0.8 s beyond the renewal's phase and the handover
    (3.24, 0.2, ["leadership vacant 3.24s (budget 3s from the death at 0.2s)"]),
    (2.9, None, []),  # no death seen: the flat budget
    (3.1, None, ["leadership vacant 3.10s (budget 3s)"]),
    (3.1, -0.5, ["leadership vacant 3.10s (budget 3s)"]),  # a death before the disruption earns nothing
])
def test_a_gap_counted_from_the_death_allows_the_kernels_time_and_no_more(gap, died, breaches):
    budget = Budget(failed=1, leader_gap_s=3.0, gap_after_death=True)
    result = ScenarioResult("worker-oom-leader", ["a"], leader_gap_s=gap, died_s=died, recovery_s=1.0)
    assert budget.breaches(result) == breaches
    assert Budget(failed=1, leader_gap_s=3.0).gap_budget(result) == 3.0  # the flag alone moves it


def test_worker_fault_budgets_take_the_users_overrides():
    options = DrillOptions(crash_budget=0, leader_gap_budget_s=10)
    assert default_budget(worker_scenario("worker-crash", True, _nothing), options, 15) == \
        Budget(failed=0, leader_gap_s=10, within_in_flight=True)


@pytest.mark.parametrize("fault, failed, in_flight, beyond", [
    ("worker-crash", 1, 1, None),  # what was on its connections
    ("worker-crash", 1, 0, "1 failed admissions, 1 beyond the 0 in flight when it died (budget 0)"),
    ("worker-oom", 2, 1, "2 failed admissions, 1 beyond the 1 in flight when it died (budget 0)"),
    ("worker-crash", 1, None, None),  # the instant is not known: the crash budget alone
    ("worker-crash", 6, None, "6 failed admissions (budget 5)"),
    ("worker-hang", 1, None, None),  # a hang has no instant
])
def test_a_proven_death_loses_nothing_beyond_what_was_in_flight(fault, failed, in_flight, beyond):
    budget = default_budget(worker_scenario(fault, False, _nothing), DrillOptions(crash_budget=5), 15)
    assert budget.within_in_flight is (fault != "worker-hang")
    assert ("failedBeyondInFlight" in budget.to_dict()) is (fault != "worker-hang")
    result = ScenarioResult("x", [], failed=failed, in_flight=in_flight, recovery_s=1.0)
    assert budget.breaches(result) == ([beyond] if beyond else [])
    assert Budget(failed=5).breaches(result) == ([beyond] if failed > 5 else [])  # not held to in flight


@pytest.mark.parametrize("crash_budget, failed, in_flight, breaches", [
    (1, 2, 2, []),  # both were on the dead process's connections: the design's whole cost
    (1, 3, 2, ["3 failed admissions, 1 beyond the 2 in flight when it died (budget 0)"]),
    (5, 1, 0, ["1 failed admissions, 1 beyond the 0 in flight when it died (budget 0)"]),
    (0, 0, 0, []),
    (1, 2, None, ["2 failed admissions (budget 1)"]),  # no known instant: the fixed count
])
def test_a_container_killed_in_its_pod_may_lose_what_was_in_flight_however_many(crash_budget, failed, in_flight,
                                                                                 breaches):
    scenario = Scenario("process-crash", "SIGKILL the container's first process", graceful=False,
                        moves_leader=True, act=lambda target, deadline: [], replaces_victims=False,
                        restarts_in_place=True)
    budget = default_budget(scenario, DrillOptions(crash_budget=crash_budget), 15)
    result = ScenarioResult("x", [], failed=failed, in_flight=in_flight, recovery_s=1.0)
    assert budget.breaches(result) == breaches


def test_the_hang_budget_follows_the_managers_heartbeat_timeout_and_interval():
    from manager.options import parse
    from manager.supervisor import HEARTBEAT_INTERVAL

    assert WORKER_HEARTBEAT_TIMEOUT_S == parse([], environ={}).worker_heartbeat_timeout
    assert WORKER_HEARTBEAT_INTERVAL_S == HEARTBEAT_INTERVAL


def test_worker_scenarios_of_a_users_cluster_need_pods_exec_and_offer_no_oom():
    assert sorted(WORKER_SCENARIOS) == ["worker-crash-leader", "worker-crash-replica", "worker-hang-leader",
                                        "worker-hang-replica"]
    for scenario in WORKER_SCENARIOS.values():
        assert set(scenario.rights) == {("create", "pods", "exec"), ("get", "pods", "exec")}, scenario.name
        assert scenario.settled is not None, scenario.name  # waits for the supervisor's restart
    assert not [s.name for s in SCENARIOS.values() if s.rights or s.worker_fault]
    assert set(SCENARIOS).isdisjoint(WORKER_SCENARIOS)


def test_the_command_knows_every_scenario_once():
    from kruisectl.commands.drill import SCENARIO_NAMES

    assert sorted(SCENARIO_NAMES) == sorted([*SCENARIOS, *WORKER_SCENARIOS])
    assert len(set(SCENARIO_NAMES)) == len(SCENARIO_NAMES)


def test_refused_connections_are_counted_among_the_failed():
    outcomes = [Outcome(0, 0.004, ADMITTED)] * 5 + [
        Outcome(0, 0.1, FAILED, 'failed calling webhook "mpod.kb.io": dial tcp 10.0.0.3:9876: connect: '
                                'connection refused'),
        Outcome(0, 0.1, FAILED, "read tcp: connection reset by peer")]
    result = ScenarioResult("x", [])
    summarise(result, outcomes, webhook_timeout_s=10)
    assert (result.failed, result.refused) == (2, 1)
    assert result.to_dict()["refused"] == 1


IN_CONTAINER = """
import json, os, subprocess, sys, time
script, sig, worker_kind = sys.argv[1], sys.argv[2], sys.argv[3]
sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
named = [sys.executable, "-c", "import ctypes, sys, time; ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0); "
         "time.sleep(60)", sys.argv[4]]  # PR_SET_NAME, as the supervisor names a forked worker
worker = (subprocess.Popen(sleep, env={**os.environ, "KRUISE_MANAGER_WORKER": "{}"}) if worker_kind == "exec"
          else subprocess.Popen(named) if worker_kind == "fork" else None)
bystander = subprocess.Popen(sleep)
time.sleep(0.3)
out = subprocess.run([sys.executable, "-c", script, sig], capture_output=True, text=True)
status = None
if worker is not None:
    try:
        status = worker.wait(5)
    except subprocess.TimeoutExpired:
        pass
print(json.dumps({"out": out.stdout.strip(), "rc": out.returncode, "worker": status, "bystander": bystander.poll(),
                  "worker_pid": worker.pid if worker else None}))
for p in (worker, bystander):
    if p is not None:
        p.kill()
"""


@pytest.mark.parametrize("worker_kind", ["exec", "fork", "none"])
def test_the_in_container_script_signals_the_worker_and_nothing_else(worker_kind):
    """SIGNAL_WORKER as the exec runs it, in a PID namespace of its own (as a container's; never
    this machine's processes): the supervised worker (by its name when forked, by its environment
    when started by exec) is killed, a bystander is not; without a worker it says so and exits 3."""
    import json
    import subprocess
    import sys

    from kruisectl.drill import SIGNAL_WORKER, WORKER_NAME
    from manager.supervisor import WORKER_NAME as SUPERVISORS

    assert WORKER_NAME == SUPERVISORS and f'b"{WORKER_NAME}"' in SIGNAL_WORKER
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", IN_CONTAINER,
                               SIGNAL_WORKER, "KILL", worker_kind, WORKER_NAME],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no unshare")
    if done.returncode and "Operation not permitted" in done.stderr:
        pytest.skip("no PID namespace for this user")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["bystander"] is None, report
    if worker_kind != "none":
        assert (report["rc"], report["out"], report["worker"]) == (0, f"signalled {report['worker_pid']}", -9), report
    else:
        assert (report["rc"], report["out"]) == (3, "no supervised worker in this container (--supervise=false?)")


@pytest.mark.parametrize("ready, deleting, expected", [(True, False, True), (True, True, False), (False, False, False)])
def test_a_terminating_replica_is_not_one_the_shares_must_include(ready, deleting, expected):
    pod = {"metadata": {"name": "a", **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})},
           "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    assert serving(pod) is expected


@pytest.mark.parametrize("status, expected", [
    ('{"metadata":{},"status":"Success"}', None),
    ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3",'
     '"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}', None),  # it ran
    ('{"metadata":{},"status":"Failure","message":"error dialing backend: dial tcp 10.0.0.1:10250: connect: '
     'connection refused","reason":"InternalError"}',
     "error dialing backend: dial tcp 10.0.0.1:10250: connect: connection refused"),
    ("", None),
    ("not json\nat all", "not json at all"),
])
def test_an_exec_that_never_ran_says_why(status, expected):
    assert exec_failure(status) == expected


def test_the_plan_names_the_rights_a_worker_scenario_needs():
    from kruisectl.drill import plan
    from kruisectl.inventory import Names

    rows = {r["scenario"]: r for r in plan(Names(namespace="ops"), [SCENARIOS["eviction"],
                                                                    WORKER_SCENARIOS["worker-crash-leader"]],
                                           DrillOptions())}
    assert "needs" not in rows["eviction"]
    assert rows["worker-crash-leader"]["needs"] == ["create pods/exec in ops", "get pods/exec in ops"]
