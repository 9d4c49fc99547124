"""`kruisectl status` shows the webhook readiness gate the manager's leader writes
(kruise.io/webhook-reachable), and nothing for installs without it (upstream's chart). No
cluster: the recorded install and variants of it."""

from __future__ import annotations

import pytest

from kruisectl.commands.status import _render
from kruisectl.inventory import Inventory
from kruisectl.status import WEBHOOK_GATE, build

from .test_recorded import as_of, recorded


def test_an_install_without_the_gate_reports_none():
    data = recorded()
    report = build(Inventory.from_dict(data), as_of(data))
    assert [r["webhookReachable"] for r in report["replicas"]] == [None] * len(data["pods"])
    assert "peers cannot reach" not in _render(report, wide=False)


@pytest.mark.parametrize("condition, shown", [(None, ""), ("True", "True"), ("False", "False")])
def test_a_replica_taken_out_by_its_peers_says_so(condition, shown):
    data = recorded()
    pod = data["pods"][0]
    pod["spec"]["readinessGates"] = [{"conditionType": WEBHOOK_GATE}]
    conditions = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"]
    conditions.append({"type": "Ready", "status": "True" if condition == "True" else "False"})
    if condition is not None:
        conditions.append({"type": WEBHOOK_GATE, "status": condition})
    pod["status"]["conditions"] = conditions
    report = build(Inventory.from_dict(data), as_of(data))
    row = next(r for r in report["replicas"] if r["pod"] == pod["metadata"]["name"])
    assert row["webhookReachable"] == shown
    assert ("NO (peers cannot reach it)" in _render(report, wide=False)) is (condition == "False")


def test_doctor_names_the_replicas_their_peers_took_out():
    from kruisectl.doctor import diagnose

    data = recorded()
    finding = next(f for f in diagnose(Inventory.from_dict(data), as_of(data)) if f.check == "ready-replicas")
    assert "unreachableByPeers" not in finding.evidence  # upstream's pods, or nobody out: as before
    pod = data["pods"][1]
    pod["spec"]["readinessGates"] = [{"conditionType": WEBHOOK_GATE}]
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"] + [
        {"type": "Ready", "status": "False"}, {"type": WEBHOOK_GATE, "status": "False"}]
    finding = next(f for f in diagnose(Inventory.from_dict(data), as_of(data)) if f.check == "ready-replicas")
    assert finding.evidence["unreachableByPeers"] == [pod["metadata"]["name"]]
    assert pod["metadata"]["name"] not in finding.evidence["ready"]
