"""The manager's Event recorder against the real apiserver: what it writes, a repeat held back
for ``repeat_after``, and a refused POST reported, never raised."""

from __future__ import annotations

import pytest

from kubekit import paths
from manager.events import NORMAL, WARNING, EventRecorder, involved

pytestmark = pytest.mark.cluster


def written(client, namespace: str) -> list[tuple]:
    items = client.request("GET", paths.events(namespace), timeout=10)["items"]
    return sorted((e["type"], e["reason"], e["message"], e["source"]["component"], e["involvedObject"]["name"],
                   e["involvedObject"].get("uid"), e["count"]) for e in items)


def test_an_event_is_written_once_and_its_repeat_only_after_the_quiet_time(cluster, namespace):
    client, now = cluster.client("events-test"), [1_800_000_000.0]
    recorder = EventRecorder(client, component="events-test", repeat_after=300, clock=lambda: now[0])
    spread = involved({"metadata": {"name": "spread", "namespace": namespace, "uid": "u-1"}},
                      "apps.kruise.io/v1alpha1", "WorkloadSpread")
    assert recorder.record(spread, WARNING, "Failed", "once")
    assert not recorder.record(spread, WARNING, "Failed", "once")  # a repeat: held back
    assert recorder.record(spread, WARNING, "Failed", "another message")
    assert recorder.record(spread, NORMAL, "Failed", "once")  # another type is another Event
    now[0] += 299
    assert not recorder.record(spread, WARNING, "Failed", "once")
    now[0] += 2
    assert recorder.record(spread, WARNING, "Failed", "once")  # the quiet time is over
    assert written(client, namespace) == sorted([
        ("Normal", "Failed", "once", "events-test", "spread", "u-1", 1),
        ("Warning", "Failed", "another message", "events-test", "spread", "u-1", 1),
        ("Warning", "Failed", "once", "events-test", "spread", "u-1", 1),
        ("Warning", "Failed", "once", "events-test", "spread", "u-1", 1)])
    event = client.request("GET", paths.events(namespace), timeout=10)["items"][0]
    assert event["involvedObject"] == {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread",
                                       "name": "spread", "namespace": namespace, "uid": "u-1"}
    assert event["firstTimestamp"] == event["lastTimestamp"] and event["metadata"]["name"].startswith("spread.")


def test_an_event_the_api_refuses_is_reported_not_raised(cluster):
    recorder = EventRecorder(cluster.client("events-test"))
    ref = involved({"metadata": {"name": "x", "namespace": "no-such-namespace-for-events"}}, "v1", "Pod")
    assert recorder.record(ref, WARNING, "Failed", "nowhere to go") is False
    assert recorder.record(ref, WARNING, "Failed", "nowhere to go") is False  # held back as a repeat: never raised
