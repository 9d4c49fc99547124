"""`kruisectl drill` against the real upstream manager: it refuses while doctor finds an
error, and measures what upstream really does when its leader is deleted gracefully (it does
not release the Lease on shutdown, so leadership stays vacant until the Lease expires). The
drill's count of its load is checked against the apiserver's audit log of the same creates."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from kruisectl.probe import PROBE_CONTAINER
from localcluster.upstream import wait_ready
from tests import audit
from kubekit import kruise

pytestmark = pytest.mark.cluster


def test_the_drill_refuses_while_doctor_finds_an_error(upstream_install):
    result = upstream_install.kruisectl("drill", "run", "replica-crash", "--yes")
    assert result.exit_code == 2
    assert "refusing to drill: doctor: namespace-exclusion" in result.output and "--force" in result.output


def drill_load(event: dict) -> bool:
    """A create of the drill's measured load (its warm-up pods are named otherwise)."""
    pod = event.get("requestObject") or {}
    return (event["verb"] == "create" and event["objectRef"].get("resource") == "pods"
            and not event["objectRef"].get("subresource") and "dryRun=All" in event["requestURI"]
            and (pod.get("metadata") or {}).get("generateName") == "kruisectl-drill-")


def as_answered(event: dict) -> str:
    """What the apiserver answered, in the drill's words."""
    if not 200 <= event["responseStatus"]["code"] < 300:
        return "failed"
    containers = ((event.get("responseObject") or {}).get("spec") or {}).get("containers") or []
    return "admitted" if PROBE_CONTAINER in [c["name"] for c in containers] else "notInjected"


def mutated_by(event: dict) -> set[str]:
    """The webhooks the apiserver recorded as having changed the pod."""
    marks = (json.loads(v) for k, v in (event.get("annotations") or {}).items()
             if k.startswith("mutation.webhook.admission.k8s.io/"))
    return {m["webhook"] for m in marks if m.get("mutated")}


def manager_pods(upstream_install) -> set[str]:
    selector = ",".join(f"{k}={v}" for k, v in kruise.MANAGER_LABELS.items())
    pods = json.loads(upstream_install.kubectl("get", "pods", "-n", upstream_install.namespace, "-l", selector,
                                               "-o", "json").stdout)
    return {p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def test_a_graceful_leader_delete_leaves_leadership_vacant_for_a_lease(upstream_install):
    before = upstream_install.kruisectl("status", "-o", "json")
    leader = json.loads(before.stdout)["leader"]["pod"]
    survivors = manager_pods(upstream_install) - {leader}
    offset = audit.size(upstream_install.audit_log)
    result = upstream_install.kruisectl("drill", "run", "leader-delete", "--yes", "--force", "-o", "json")
    assert result.exit_code == 1, result.output  # a breach of the 1 s leader-gap budget
    (scenario,) = json.loads(result.stdout)["scenarios"]
    assert scenario["victims"] == [leader]
    assert scenario["oldLeader"].startswith(f"{leader}_")
    assert scenario["newLeader"] and not scenario["newLeader"].startswith(f"{leader}_")
    # No release on shutdown: the survivor takes over only once the 15 s Lease has run out.
    assert 10 < scenario["leaderGapS"] < 40, scenario
    assert any(b.startswith("leadership vacant") for b in scenario["breaches"]), scenario["breaches"]
    # Every admission the drill counted is one the apiserver answered, classified alike: the
    # apiserver's audit log records each create of the load with its response code and pod.
    creates = audit.settled(upstream_install.audit_log, offset, drill_load)
    answered = Counter(as_answered(e) for e in creates)
    print(json.dumps({"drill": scenario, "auditLog": {"creates": len(creates), **answered}}))
    assert scenario["requests"] > 0
    assert {k: scenario[k] for k in ("requests", "admitted", "failed", "notInjected")} == \
        {"requests": len(creates), "admitted": answered["admitted"], "failed": answered["failed"],
         "notInjected": answered["notInjected"]}, answered
    assert scenario["notInjected"] == 0
    # ... and the sidecar on each admitted pod came from upstream's pod webhook.
    assert all("mpod.kb.io" in mutated_by(e) for e in creates if as_answered(e) == "admitted")
    # The replica that was neither deleted nor replaced answered throughout, by its own counter.
    assert survivors and all(scenario["shares"].get(pod, 0) > 0 for pod in survivors), (survivors, scenario["shares"])
    wait_ready(upstream_install.cluster, upstream_install.install.replicas, deadline=time.monotonic() + 120)
    assert "kruisectl-probe" not in upstream_install.kubectl("get", "sidecarsets", "-o", "name").stdout
