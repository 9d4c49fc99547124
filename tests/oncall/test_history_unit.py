"""doctor --since's reading of what happened, table-driven: containers' restarts from their
statuses, leader changes from the Lease and its Events, webhook errors from the replicas'
exposition (this manager's counter and controller-runtime's)."""

from __future__ import annotations

import datetime as dt

import pytest

from kruisectl import history
from kruisectl.scrape import Scrape, parse

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
SINCE = NOW - dt.timedelta(hours=1)


def at(minutes_ago: float) -> str:
    return (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name, created_ago=600, restarts=0, finished_ago=None, reason="Error", exit_code=1, waiting=None,
        started_ago=30):
    status = {"name": "manager", "restartCount": restarts, "state": {}, "lastState": {}}
    if finished_ago is not None:
        status["lastState"] = {"terminated": {"finishedAt": at(finished_ago), "reason": reason, "exitCode": exit_code}}
    status["state"] = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": at(started_ago)}}
    return {"metadata": {"name": name, "creationTimestamp": at(created_ago)}, "spec": {"nodeName": "n1"},
            "status": {"containerStatuses": [status], "podIP": "10.0.0.1"}}


def view(**fields) -> history.History:
    return history.History(since=history._stamp(SINCE), now=history._stamp(NOW), window_s=3600, **fields)


def restarts_finding(pods):
    containers, happened = history.restarts(pods, SINCE)
    return history.restarts_finding(view(restarts=containers)), happened


def test_a_restart_in_the_window_is_a_warning_with_its_reason():
    finding, happened = restarts_finding([pod("a", restarts=2, finished_ago=10, reason="OOMKilled", exit_code=137),
                                          pod("b")])
    assert finding.level == "warning"
    assert finding.message == f"1 container(s) restarted since {history._stamp(SINCE)}: a (OOMKilled, exit 137)"
    assert [(h.what, h.subject, h.detail) for h in happened] == [
        ("restart", "a/manager", "OOMKilled, exit 137; 2 restart(s) in all")]


def test_restarts_before_the_window_are_counted_not_warned():
    finding, happened = restarts_finding([pod("a", restarts=3, finished_ago=120)])
    assert finding.level == "ok" and finding.message.endswith("(3 restart(s) before it)")
    assert happened == []


def test_a_crash_loop_now_is_a_warning_even_with_its_last_exit_before_the_window():
    finding, _ = restarts_finding([pod("a", restarts=9, finished_ago=90, waiting="CrashLoopBackOff")])
    assert finding.level == "warning" and "a (Error, exit 1)" in finding.message


def test_replicas_created_in_the_window_are_happenings():
    _, happened = restarts_finding([pod("new", created_ago=5), pod("old", created_ago=500)])
    assert [(h.what, h.subject) for h in happened] == [("replica-created", "new")]


def lease(acquired_ago, transitions=4, holder="b_1"):
    return {"metadata": {"name": "kruise-manager"},
            "spec": {"holderIdentity": holder, "acquireTime": at(acquired_ago), "renewTime": at(0),
                     "leaseTransitions": transitions}}


def event(ago, message, reason="LeaderElection"):
    return {"metadata": {"creationTimestamp": at(ago)}, "reason": reason, "message": message, "lastTimestamp": at(ago)}


@pytest.mark.parametrize("the_lease, events, level, words", [
    (lease(500), [], "ok", "b_1 has led since"),
    (lease(20), [], "info", "the leader changed 1 time(s)"),
    (lease(20), [event(20, "b_1 became leader")], "info", "changed 1 time(s)"),  # the Event and acquireTime agree
    (lease(5), [event(50, "a_1 became leader"), event(30, "c_1 became leader"), event(5, "b_1 became leader"),
                event(40, "other", reason="Killing")], "warning", "changed 3 times"),
    (lease(5), [event(90, "a_1 became leader")], "info", "changed 1 time(s)"),  # the old Event is outside the window
    (None, [], "info", "no Lease holder"),
])
def test_leader_changes(the_lease, events, level, words):
    info, happened = history.leader_changes(the_lease, events, SINCE)
    finding = history.leader_finding(view(leader=info))
    assert finding.level == level and words in finding.message, finding
    assert len(happened) == len(info["changes"])


OURS = """# TYPE kruise_manager_webhook_requests counter
kruise_manager_webhook_requests_total{path="/mutate-pod",result="patched"} 90.0
kruise_manager_webhook_requests_total{path="/mutate-pod",result="error"} 3.0
kruise_manager_webhook_requests_total{path="other",result="bad_request"} 2.0
kruise_manager_webhook_requests_total{path="/validate-apps-kruise-io-v1alpha1-sidecarset",result="denied"} 5.0
"""
UPSTREAM = """# TYPE controller_runtime_webhook_requests_total counter
controller_runtime_webhook_requests_total{code="200",webhook="/mutate-pod"} 40
controller_runtime_webhook_requests_total{code="500",webhook="/mutate-pod"} 4
"""


def test_webhook_counts_of_this_manager_and_of_upstream():
    assert history.webhook_counts(Scrape("a", parse(OURS))) == {
        "requests": 100.0, "errors": 5.0, "byPath": {"/mutate-pod": 3.0, "other": 2.0}}
    assert history.webhook_counts(Scrape("a", parse(UPSTREAM))) == {
        "requests": 44.0, "errors": 4.0, "byPath": {"/mutate-pod": 4.0}}


def test_webhook_finding_levels_and_what_it_counted_since():
    def finding(replicas):
        return history.webhook_finding(view(webhook=replicas))

    clean = {"requests": 10.0, "errors": 0.0, "byPath": {}, "countingSince": at(30), "startedBeforeWindow": False}
    failing = {**clean, "errors": 2.0, "startedBeforeWindow": True}
    assert finding({"a": clean}).level == "ok" and "no webhook error in 10 answers of 1 replica(s)" in \
        finding({"a": clean}).message
    worse = finding({"a": clean, "b": failing, "c": {"error": "forbidden: pods/proxy"}})
    assert worse.level == "warning" and "b: 2 of 10" in worse.message and "not read: c" in worse.message
    assert "1 started before" in worse.message
    unknown = finding({"c": {"error": "forbidden: pods/proxy"}})
    assert unknown.level == "info" and unknown.message.startswith("unknown: no replica's metrics could be read")
