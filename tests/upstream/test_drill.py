"""`kruisectl drill` against the real upstream manager: it refuses while doctor finds an
error, and measures what upstream really does when its leader is deleted gracefully (it does
not release the Lease on shutdown, so leadership stays vacant until the Lease expires)."""

from __future__ import annotations

import json
import time

import pytest

from localcluster.upstream import wait_ready

pytestmark = pytest.mark.cluster


def test_the_drill_refuses_while_doctor_finds_an_error(upstream_install):
    result = upstream_install.kruisectl("drill", "run", "replica-crash", "--yes")
    assert result.exit_code == 2
    assert "refusing to drill: doctor: namespace-exclusion" in result.output and "--force" in result.output


def test_a_graceful_leader_delete_leaves_leadership_vacant_for_a_lease(upstream_install):
    before = upstream_install.kruisectl("status", "-o", "json")
    leader = json.loads(before.stdout)["leader"]["pod"]
    result = upstream_install.kruisectl("drill", "run", "leader-delete", "--yes", "--force", "-o", "json")
    assert result.exit_code == 1, result.output  # a breach of the 1 s leader-gap budget
    (scenario,) = json.loads(result.stdout)["scenarios"]
    assert scenario["victims"] == [leader]
    assert scenario["oldLeader"].startswith(f"{leader}_")
    assert scenario["newLeader"] and not scenario["newLeader"].startswith(f"{leader}_")
    # No release on shutdown: the survivor takes over only once the 15 s Lease has run out.
    assert 10 < scenario["leaderGapS"] < 40, scenario
    assert any(b.startswith("leadership vacant") for b in scenario["breaches"]), scenario["breaches"]
    # Every admission is counted once, the sidecar injected by upstream's webhook on each one admitted.
    assert scenario["requests"] == scenario["admitted"] + scenario["failed"] + scenario["notInjected"] > 0
    assert scenario["notInjected"] == 0
    # Each replica's share read from controller-runtime's own webhook counter.
    assert scenario["shares"] and abs(sum(scenario["shares"].values()) - 1) < 0.01
    wait_ready(upstream_install.cluster, upstream_install.install.replicas, deadline=time.monotonic() + 120)
    assert "kruisectl-probe" not in upstream_install.kubectl("get", "sidecarsets", "-o", "name").stdout
