"""Pure planning of `rollout tune` and kubectl's reading of rollout status."""

from __future__ import annotations

import pytest

from kruisectl import rollout
from kubekit import kruise


def _deployment(surge="25%", unavailable="25%", when="ScheduleAnyway", replicas=3, generation=1, status=None):
    return {"metadata": {"name": "kruise-controller-manager", "namespace": "kruise-system",
                         "resourceVersion": "42", "generation": generation},
            "spec": {"replicas": replicas,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
                         "containers": [{"name": "manager"}],
                         "topologySpreadConstraints": [
                             {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"},
                             {"maxSkew": 1, "topologyKey": kruise.ZONE_LABEL, "whenUnsatisfiable": when}]}}},
            "status": status or {}}


def test_patch_is_guarded_by_the_resource_version_and_touches_only_what_changes():
    plan = rollout.plan_tune(_deployment(), max_surge="100%", max_unavailable=0, when_unsatisfiable="DoNotSchedule")
    assert plan.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert {"op": "add", "path": "/spec/strategy/rollingUpdate/maxSurge", "value": "100%"} in plan.patch
    assert {"op": "add", "path": "/spec/strategy/rollingUpdate/maxUnavailable", "value": 0} in plan.patch
    assert {"op": "add", "path": "/spec/template/spec/topologySpreadConstraints/1/whenUnsatisfiable",
            "value": "DoNotSchedule"} in plan.patch
    assert plan.effective_after == (3, 0) and plan.effective_before == (1, 0)
    assert len(plan.changes) == 3


def test_unchanged_values_make_no_patch():
    plan = rollout.plan_tune(_deployment(), max_surge="25%")
    assert plan.patch == [] and plan.changes == []


def test_one_flag_is_validated_together_with_the_current_other_value():
    with pytest.raises(ValueError, match="may not both be 0"):
        rollout.plan_tune(_deployment(surge=0, unavailable=1), max_unavailable=0)


def test_spread_policy_needs_a_zone_constraint():
    deployment = _deployment()
    del deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][1]
    with pytest.raises(ValueError, match="no topologySpreadConstraint"):
        rollout.plan_tune(deployment, when_unsatisfiable="DoNotSchedule")


def test_helm_values_carry_the_whole_strategy():
    plan = rollout.plan_tune(_deployment(), max_surge=1)
    assert rollout.helm_values(plan) == {"manager": {
        "updateStrategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
        "topologySpread": {"whenUnsatisfiable": "ScheduleAnyway"}}}


@pytest.mark.parametrize("generation,status,done,failed,text", [
    (2, {"observedGeneration": 1}, False, False, "spec update to be observed"),
    (1, {"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
                                                  "reason": "ProgressDeadlineExceeded"}]},
     False, True, "exceeded its progress deadline"),
    (1, {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3},
     False, False, "1 out of 3 new replicas have been updated"),
    (1, {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3},
     False, False, "1 old replicas are pending termination"),
    (1, {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2},
     False, False, "2 of 3 updated replicas are available"),
    (1, {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
     True, False, "successfully rolled out"),
])
def test_status_reads_like_kubectl(generation, status, done, failed, text):
    state = rollout.rollout_status(_deployment(generation=generation, status=status))
    assert (state.done, state.failed) == (done, failed) and text in state.message
