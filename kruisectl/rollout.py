"""The manager Deployment's rollout: its strategy (maxSurge, maxUnavailable, the zone spread's
whenUnsatisfiable), whether the next rollout's surge fits the cluster, its progress as
``kubectl rollout status`` reports it, and restarts.

Changes are JSON patches whose first op tests the resourceVersion that was planned against, so
a Deployment edited meanwhile is never overwritten with a stale plan.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from kubekit import kruise, paths

from .capacity import DEFAULT_MAX_SURGE, DEFAULT_MAX_UNAVAILABLE, SurgeFit, effective_numbers, surge_fit

WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass
class Strategy:
    replicas: int
    max_surge: Any
    max_unavailable: Any
    when_unsatisfiable: str | None  # of the zone spread constraint; None when there is none

    def to_dict(self) -> dict:
        return {"replicas": self.replicas, "maxSurge": self.max_surge, "maxUnavailable": self.max_unavailable,
                "whenUnsatisfiable": self.when_unsatisfiable}


@dataclass
class TunePlan:
    name: str
    namespace: str
    current: Strategy
    proposed: Strategy
    effective_before: tuple[int, int]
    effective_after: tuple[int, int]
    patch: list[dict]  # JSON patch, first op tests the resourceVersion
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    fit: SurgeFit | None = None

    def to_dict(self) -> dict:
        data = {
            "deployment": f"{self.namespace}/{self.name}",
            "current": self.current.to_dict(),
            "proposed": self.proposed.to_dict(),
            "effective": {"surge": self.effective_after[0], "unavailable": self.effective_after[1],
                          "before": {"surge": self.effective_before[0], "unavailable": self.effective_before[1]}},
            "changes": [{"field": f, "from": old, "to": new} for f, old, new in self.changes],
        }
        if self.fit is not None:
            data["capacity"] = {"wanted": self.fit.wanted, "fits": self.fit.fits,
                                "recommendedMaxSurge": self.fit.recommended_max_surge, "reasons": self.fit.reasons}
        return data


def _zone_spread_index(deployment: dict) -> int | None:
    constraints = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("topologySpreadConstraints") or []
    for i, constraint in enumerate(constraints):
        if constraint.get("topologyKey") == kruise.ZONE_LABEL:
            return i
    return None


def read_strategy(deployment: dict) -> Strategy:
    """The strategy as it is (API JSON, camelCase), with Kubernetes' defaults filled in."""
    spec = deployment.get("spec", {})
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    index = _zone_spread_index(deployment)
    when = None
    if index is not None:
        when = spec["template"]["spec"]["topologySpreadConstraints"][index].get("whenUnsatisfiable", "DoNotSchedule")
    return Strategy(
        replicas=int(spec.get("replicas", 1)),
        max_surge=rolling.get("maxSurge", DEFAULT_MAX_SURGE),
        max_unavailable=rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
        when_unsatisfiable=when,
    )


def int_or_percent(value: str | None) -> Any:
    """A flag value as the API stores it: ``3`` -> 3, ``50%`` -> "50%" (validated later)."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else text


def plan_tune(deployment: dict, *, max_surge: Any = None, max_unavailable: Any = None,
              when_unsatisfiable: str | None = None) -> TunePlan:
    """Validate the requested values as the apiserver would and build the patch; ValueError
    with a one-line message when they are invalid."""
    metadata = deployment["metadata"]
    if (deployment.get("spec", {}).get("strategy") or {}).get("type") == "Recreate":
        raise ValueError(f"deployment {metadata['name']} uses the Recreate strategy: maxSurge/maxUnavailable do not apply")
    current = read_strategy(deployment)
    proposed = Strategy(
        replicas=current.replicas,
        max_surge=current.max_surge if max_surge is None else max_surge,
        max_unavailable=current.max_unavailable if max_unavailable is None else max_unavailable,
        when_unsatisfiable=current.when_unsatisfiable if when_unsatisfiable is None else when_unsatisfiable,
    )
    if when_unsatisfiable is not None and when_unsatisfiable not in WHEN_UNSATISFIABLE:
        raise ValueError(f"whenUnsatisfiable: {when_unsatisfiable!r} must be one of {', '.join(WHEN_UNSATISFIABLE)}")
    if when_unsatisfiable is not None and current.when_unsatisfiable is None:
        raise ValueError(f"deployment {metadata['name']} has no topologySpreadConstraint on {kruise.ZONE_LABEL} to change")
    after = effective_numbers(proposed.replicas, proposed.max_surge, proposed.max_unavailable)
    try:
        before = effective_numbers(current.replicas, current.max_surge, current.max_unavailable)
    except ValueError:
        before = (0, 0)

    patch: list[dict] = [{"op": "test", "path": "/metadata/resourceVersion", "value": metadata["resourceVersion"]}]
    changes = []
    spec = deployment["spec"]
    if not spec.get("strategy"):
        patch.append({"op": "add", "path": "/spec/strategy", "value": {"type": "RollingUpdate"}})
    if not (spec.get("strategy") or {}).get("rollingUpdate"):
        patch.append({"op": "add", "path": "/spec/strategy/rollingUpdate", "value": {}})
    for name, old, new in (("maxSurge", current.max_surge, proposed.max_surge),
                           ("maxUnavailable", current.max_unavailable, proposed.max_unavailable)):
        if str(old) != str(new):
            patch.append({"op": "add", "path": f"/spec/strategy/rollingUpdate/{name}", "value": new})
            changes.append((f"spec.strategy.rollingUpdate.{name}", old, new))
    if current.when_unsatisfiable != proposed.when_unsatisfiable:
        index = _zone_spread_index(deployment)
        patch.append({"op": "add", "path": f"/spec/template/spec/topologySpreadConstraints/{index}/whenUnsatisfiable",
                      "value": proposed.when_unsatisfiable})
        changes.append((f"spec.template.spec.topologySpreadConstraints[{index}].whenUnsatisfiable",
                        current.when_unsatisfiable, proposed.when_unsatisfiable))
    if not changes:
        patch = []
    return TunePlan(name=metadata["name"], namespace=metadata["namespace"], current=current, proposed=proposed,
                    effective_before=before, effective_after=after, patch=patch, changes=changes)


def proposed_deployment(deployment: dict, plan: TunePlan) -> dict:
    """The deployment as it would be after the plan, for the capacity check."""
    result = copy.deepcopy(deployment)
    strategy = result["spec"].setdefault("strategy", {"type": "RollingUpdate"})
    rolling = strategy.setdefault("rollingUpdate", {})
    rolling["maxSurge"] = plan.proposed.max_surge
    rolling["maxUnavailable"] = plan.proposed.max_unavailable
    index = _zone_spread_index(result)
    if index is not None and plan.proposed.when_unsatisfiable:
        result["spec"]["template"]["spec"]["topologySpreadConstraints"][index]["whenUnsatisfiable"] = \
            plan.proposed.when_unsatisfiable
    return result


def check_capacity(deployment: dict, plan: TunePlan, nodes: list[dict], pods: list[dict]) -> SurgeFit:
    plan.fit = surge_fit(proposed_deployment(deployment, plan), nodes, pods)
    return plan.fit


def helm_values(plan: TunePlan) -> dict:
    """The chart values that make the next ``helm upgrade`` keep this strategy."""
    values: dict = {"manager": {"updateStrategy": {"rollingUpdate": {
        "maxSurge": plan.proposed.max_surge, "maxUnavailable": plan.proposed.max_unavailable}}}}
    if plan.proposed.when_unsatisfiable:
        values["manager"]["topologySpread"] = {"whenUnsatisfiable": plan.proposed.when_unsatisfiable}
    return values


def helm_set_pairs(plan: TunePlan) -> list[str]:
    """The same values as ``--set`` pairs."""
    pairs = [f"manager.updateStrategy.rollingUpdate.maxSurge={plan.proposed.max_surge}",
             f"manager.updateStrategy.rollingUpdate.maxUnavailable={plan.proposed.max_unavailable}"]
    if plan.proposed.when_unsatisfiable:
        pairs.append(f"manager.topologySpread.whenUnsatisfiable={plan.proposed.when_unsatisfiable}")
    return pairs


# --- status, as kubectl rollout status --------------------------------------------------------

@dataclass
class RolloutStatus:
    message: str
    done: bool
    failed: bool  # ProgressDeadlineExceeded: waiting longer will not help by itself

    def to_dict(self) -> dict:
        return {"message": self.message, "done": self.done, "failed": self.failed}


def rollout_status(deployment: dict) -> RolloutStatus:
    """kubectl's reading: the spec must be observed first; then all replicas updated, old ones
    gone, and the updated ones available."""
    name = deployment["metadata"]["name"]
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutStatus("Waiting for deployment spec update to be observed...", False, False)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(f'deployment "{name}" exceeded its progress deadline', False, True)
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < desired:
        return RolloutStatus(f'Waiting for deployment "{name}" rollout to finish: '
                             f"{updated} out of {desired} new replicas have been updated...", False, False)
    if total > updated:
        return RolloutStatus(f'Waiting for deployment "{name}" rollout to finish: '
                             f"{total - updated} old replicas are pending termination...", False, False)
    if available < updated:
        return RolloutStatus(f'Waiting for deployment "{name}" rollout to finish: '
                             f"{available} of {updated} updated replicas are available...", False, False)
    return RolloutStatus(f'deployment "{name}" successfully rolled out', True, False)


def restart_patch(now: dt.datetime | None = None) -> dict:
    """What ``kubectl rollout restart`` sends: a new template annotation, hence a new ReplicaSet."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}}


# --- the API side -----------------------------------------------------------------------------

def read_deployment(client, namespace: str, name: str, timeout: float) -> dict:
    return client.get(paths.deployments(namespace, name), timeout)


def cluster_state(client, timeout: float) -> tuple[list[dict], list[dict]]:
    """Every node and every running or pending pod: what the capacity check needs."""
    nodes = client.get(paths.nodes(), timeout)["items"]
    pods = client.get(paths.pods(), timeout, fieldSelector="status.phase!=Succeeded,status.phase!=Failed")["items"]
    return nodes, pods


def apply_tune(client, namespace: str, name: str, plan: TunePlan, timeout: float, dry_run: bool = False) -> dict:
    """PATCH the planned strategy (its first op tests the planned resourceVersion);
    ``dry_run`` asks the apiserver to validate it without storing it."""
    query = {"dryRun": "All"} if dry_run else {}
    return client.request("PATCH", paths.deployments(namespace, name), body=plan.patch, timeout=timeout,
                          content_type="application/json-patch+json", **query)


def restart(client, namespace: str, name: str, timeout: float) -> dict:
    return client.request("PATCH", paths.deployments(namespace, name), body=restart_patch(), timeout=timeout,
                          content_type="application/strategic-merge-patch+json")


def wait_rolled_out(read, timeout: float | None, on_progress=lambda status: None, interval: float = 1.0,
                    while_unreadable=None) -> RolloutStatus:
    """Poll ``read()`` (the Deployment) until it has rolled out or failed, calling
    ``on_progress`` with each new status; TimeoutError after ``timeout`` seconds (None: no
    limit). A read error ends the wait, unless ``while_unreadable(err)`` turns it into a
    status to keep waiting on (a Deployment not created yet)."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        try:
            state = rollout_status(read())
        except Exception as err:  # noqa: BLE001 - the caller decides what an unreadable Deployment means
            if while_unreadable is None:
                raise
            state = while_unreadable(err)
        if state.message != last:
            on_progress(state)
            last = state.message
        if state.done or state.failed:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for the rollout")
        time.sleep(interval)
